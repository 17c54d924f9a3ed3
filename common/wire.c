/*
 * wire.c - sending and checking the supervisor <-> worker records of wire.h.
 */
#include "wire.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const wire_reason_names[WIRE_REASON_MAX] = {
	[WIRE_REASON_NONE] = "none",
	[WIRE_REASON_CPU] = "cpu",
	[WIRE_REASON_MEMORY] = "memory",
	[WIRE_REASON_WALL_CLOCK] = "wall_clock",
	[WIRE_REASON_EARLY_DROP] = "early_drop",
	[WIRE_REASON_TERMINATION] = "termination",
};

const char *
wire_reason_name(uint32_t reason)
{
	return reason < WIRE_REASON_MAX ? wire_reason_names[reason] : "unknown";
}

int
wire_reason_parse(const char *name)
{
	for (int i = 0; i < WIRE_REASON_MAX; i++)
		if (strcmp(name, wire_reason_names[i]) == 0)
			return i;
	return -1;
}

int
wire_send_ctl(int sock, const struct wire_ctl *msg, const int *fds, unsigned nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t n;

	if (nfds > WIRE_MAX_FDS || msg->nfds != nfds) {
		errno = EINVAL;
		return -1;
	}
	if (nfds > 0) {
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != sizeof(*msg)) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

static void
close_fds(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

int
wire_recv_ctl(int sock, struct wire_ctl *msg, int *fds, unsigned *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = msg, .iov_len = sizeof(*msg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *cm;
	unsigned got = 0, cap = *nfds;
	ssize_t n;

	*nfds = 0;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	/* Take every descriptor first, so a bad message never leaks one. */
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < k; i++) {
			if (got < cap)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	if ((size_t)n != sizeof(*msg) || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ||
	    msg->version != WIRE_VERSION || msg->nfds != got ||
	    (msg->type != WIRE_CTL_CONN && msg->type != WIRE_CTL_RETIRE) ||
	    (msg->type == WIRE_CTL_RETIRE && got != 0)) {
		close_fds(fds, got);
		errno = EPROTO;
		return -1;
	}
	*nfds = got;
	return 1;
}

int
wire_send_status(int fd, const struct wire_status *st)
{
	ssize_t n;

	do
		n = write(fd, st, sizeof(*st));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != sizeof(*st)) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

int
wire_recv_status(int fd, struct wire_status *st)
{
	ssize_t n;

	do
		n = read(fd, st, sizeof(*st));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	if ((size_t)n != sizeof(*st) || st->version != WIRE_VERSION) {
		errno = EPROTO;
		return -1;
	}
	return 1;
}
