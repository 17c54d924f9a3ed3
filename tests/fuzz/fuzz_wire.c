/*
 * fuzz_wire.c - libFuzzer target for the control records a worker can send the
 * supervisor (common/wire.c: wire_recv_batch, wire_carry_next).
 *
 * A tenant's worker writes whatever it likes on its control socket, so every record
 * is hostile input. The first input byte says how many descriptors ride along (0..10,
 * copies of /dev/null); the rest is the record, sent whole on a SOCK_SEQPACKET
 * socketpair and received as the supervisor receives it. Besides "no crash, no
 * undefined behaviour", it checks the contract: every descriptor is either handed to
 * the caller or closed (none leaks); an accepted record of carries walks, through
 * wire_carry_next, to exactly as many carries as descriptors, each lying inside the
 * record and whole; a refused one leaves the caller nothing open.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEND_FDS 10

static int sp[2] = { -1, -1 };
static int devnull = -1;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int sz = 4 * (int)sizeof(union wire_msg);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) < 0 ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		perror("fuzz_wire setup");
		abort();
	}
	/* Room for the largest record in the queue at once. */
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	return 0;
}

/* Descriptors open in this process now. */
static int
open_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 1024; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			n++;
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	unsigned nfds[WIRE_RECV_BATCH], nsend;
	int res[WIRE_RECV_BATCH], before, r, given = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int) * MAX_SEND_FDS)];
		struct cmsghdr align;
	} cb;
	struct iovec iov;
	struct msghdr mh;

	if (size < 1 || size - 1 > sizeof(union wire_msg))
		return 0;
	nsend = data[0] % (MAX_SEND_FDS + 1);
	iov.iov_base = (void *)(data + 1);
	iov.iov_len = size - 1;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nsend > 0) {
		struct cmsghdr *cm;

		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nsend);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nsend);
		for (unsigned i = 0; i < nsend; i++)
			memcpy(CMSG_DATA(cm) + i * sizeof(int), &devnull, sizeof(int));
	}
	before = open_fds();
	if (sendmsg(sp[0], &mh, MSG_DONTWAIT) != (ssize_t)iov.iov_len)
		abort();
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	/* An empty record reads as the peer's EOF (0): nothing else may come of it. */
	if (r != 1 && !(r == 0 && iov.iov_len == 0))
		abort();
	if (r == 1 && res[0] == 1) {
		given = (int)nfds[0];
		if (m[0].h.type == WIRE_CTL_ROUTED || m[0].h.type == WIRE_CTL_MOVE) {
			const struct wire_carry *c = &m[0].carry;
			const char *end = (const char *)&m[0] + iov.iov_len;
			unsigned k = 0;
			volatile char sink = 0;

			for (; c != NULL; c = wire_carry_next(c), k++) {
				const char *at = (const char *)c;

				if (at < (const char *)&m[0] || at + WIRE_CARRY_HEAD > end ||
				    at + c->size > end || c->size != WIRE_CARRY_HEAD + c->nbytes ||
				    memchr(c->host, '\0', sizeof(c->host)) == NULL ||
				    memchr(c->prefix, '\0', sizeof(c->prefix)) == NULL)
					abort();
				for (uint32_t i = 0; i < c->nbytes; i++)
					sink ^= c->bytes[i];
			}
			(void)sink;
			if (k != nfds[0] || k == 0 || k > WIRE_PACK_MAX)
				abort();
		}
	} else if (r == 1 && fds[0][0] != -1)
		abort();
	/* What was handed over is ours to close; nothing else may be left open. */
	if (open_fds() != before + given)
		abort();
	for (int i = 0; i < given; i++)
		close(fds[0][i]);
	return 0;
}
