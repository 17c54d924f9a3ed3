/*
 * wire.c - sending and checking the supervisor <-> worker records of wire.h.
 */
#include "wire.h"

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
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

/* The checks on a message of N bytes with GOT fds, whatever its type. */
static bool
msg_ok(const union wire_msg *m, size_t n, unsigned got)
{
	if (n < sizeof(m->h) || m->h.version != WIRE_VERSION)
		return false;
	switch (m->h.type) {
	case WIRE_CTL_CONN:
	case WIRE_CTL_RETIRE:
	case WIRE_CTL_ROUTES:
		return n == sizeof(m->ctl) && m->ctl.nfds == got &&
		    (m->h.type == WIRE_CTL_CONN || got == 0);
	case WIRE_CTL_ROUTED:
	case WIRE_CTL_MOVE:
		return n >= WIRE_CARRY_HEAD && got == 1 && m->carry.nbytes <= WIRE_CARRY_MAX &&
		    m->carry.size == n && n == WIRE_CARRY_HEAD + m->carry.nbytes &&
		    m->carry.flags == 0 && m->carry.strip <= WIRE_STRIP_MAX &&
		    (m->carry.sticky & ~WIRE_STICKY_FLAGS) == 0 &&
		    memchr(m->carry.host, '\0', sizeof(m->carry.host)) != NULL &&
		    memchr(m->carry.prefix, '\0', sizeof(m->carry.prefix)) != NULL &&
		    (m->h.type == WIRE_CTL_ROUTED || (m->carry.strip == 0 &&
		    m->carry.sticky == 0 && m->carry.host[0] == '\0' && m->carry.prefix[0] == '\0'));
	default:
		return false;
	}
}

/*
 * The N bytes MH received into BUF (CAP bytes): at most *NFDS of its fds into FDS,
 * checked by msg_ok, which also bounds the type to what a CAP that small can hold.
 * 1, or -1 (EPROTO) with every fd it brought closed.
 */
static int
take_msg(struct msghdr *mh, size_t n, void *buf, size_t cap, int *fds, unsigned *nfds)
{
	struct cmsghdr *cm;
	unsigned got = 0, max = *nfds;

	*nfds = 0;
	/* Take every descriptor first, so a bad message never leaks one. */
	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < k; i++) {
			if (got < max)
				fds[got++] = in[i];
			else
				close(in[i]);
		}
	}
	if ((mh->msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || !msg_ok(buf, n, got) ||
	    (n > sizeof(struct wire_ctl) && cap == sizeof(struct wire_ctl))) {
		close_fds(fds, got);
		errno = EPROTO;
		return -1;
	}
	*nfds = got;
	return 1;
}

/* One message into BUF (CAP bytes), as take_msg checks it. */
static int
recv_any(int sock, void *buf, size_t cap, int *fds, unsigned *nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t n;

	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		*nfds = 0;
		return n < 0 ? -1 : 0;
	}
	return take_msg(&mh, (size_t)n, buf, cap, fds, nfds);
}

/*
 * Up to N records in one recvmmsg, record i's fds (at most PER) into FDS[i * PER ..],
 * their count into NFDS[i] when NFDS is not NULL (else each takes one at most, -1
 * for none). As wire_recv_msgs returns.
 */
static int
recv_batch(int sock, union wire_msg *m, int *fds, unsigned per, unsigned *nfds, int *res,
    unsigned n)
{
	union cbuf {
		char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
		struct cmsghdr align;
	} cbuf[WIRE_RECV_BATCH];
	struct iovec iov[WIRE_RECV_BATCH];
	struct mmsghdr mm[WIRE_RECV_BATCH];
	int got;

	if (n == 0 || n > WIRE_RECV_BATCH) {
		errno = EINVAL;
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		iov[i] = (struct iovec){ .iov_base = &m[i], .iov_len = sizeof(m[i]) };
		mm[i].msg_hdr = (struct msghdr){
			.msg_iov = &iov[i], .msg_iovlen = 1,
			.msg_control = cbuf[i].buf, .msg_controllen = sizeof(cbuf[i].buf),
		};
		mm[i].msg_len = 0;
	}
	do
		got = recvmmsg(sock, mm, n, MSG_CMSG_CLOEXEC | MSG_DONTWAIT, NULL);
	while (got < 0 && errno == EINTR);
	if (got <= 0)
		return got;
	for (int i = 0; i < got; i++) {
		unsigned k = per;

		/* A zero-length record is the peer's EOF (recvmmsg counts it as one): the
		 * ones before it are answered now, the EOF by the next call. */
		if (mm[i].msg_len == 0)
			return i;
		fds[(size_t)i * per] = -1;
		res[i] = take_msg(&mm[i].msg_hdr, mm[i].msg_len, &m[i], sizeof(m[i]),
		    &fds[(size_t)i * per], &k);
		if (res[i] < 0) {
			fds[(size_t)i * per] = -1;
			k = 0;
		}
		if (nfds != NULL)
			nfds[i] = k;
	}
	return got;
}

int
wire_recv_msgs(int sock, union wire_msg *m, int *fds, int *res, unsigned n)
{
	return recv_batch(sock, m, fds, 1, NULL, res, n);
}

int
wire_recv_batch(int sock, union wire_msg *m, int (*fds)[WIRE_MAX_FDS], unsigned *nfds,
    int *res, unsigned n)
{
	return recv_batch(sock, m, &fds[0][0], WIRE_MAX_FDS, nfds, res, n);
}

int
wire_recv_ctl(int sock, struct wire_ctl *msg, int *fds, unsigned *nfds)
{
	int r = recv_any(sock, msg, sizeof(*msg), fds, nfds);

	/* This one takes only the fixed records. */
	if (r == 1 && msg->type != WIRE_CTL_CONN && msg->type != WIRE_CTL_RETIRE) {
		close_fds(fds, *nfds);
		*nfds = 0;
		errno = EPROTO;
		return -1;
	}
	return r;
}

int
wire_recv_msg(int sock, union wire_msg *m, int *fds, unsigned *nfds)
{
	return recv_any(sock, m, sizeof(*m), fds, nfds);
}

int
wire_send_carry(int sock, const struct wire_carry *c, int fd)
{
	int r = wire_send_carries(sock, &c, &fd, 1);

	if (r == 0)
		errno = EPROTO;         /* sent short: the peer would refuse it */
	return r == 1 ? 0 : -1;
}

int
wire_send_carries(int sock, const struct wire_carry *const *c, const int *fds, unsigned n)
{
	union cbuf {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cbuf[WIRE_RECV_BATCH];
	struct iovec iov[WIRE_RECV_BATCH];
	struct mmsghdr mm[WIRE_RECV_BATCH];
	int sent;

	if (n == 0 || n > WIRE_RECV_BATCH) {
		errno = EINVAL;
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		size_t len = WIRE_CARRY_HEAD + (c[i]->nbytes <= WIRE_CARRY_MAX ? c[i]->nbytes : 0);
		struct cmsghdr *cm;

		/* The first bad one ends the batch: the ones before it still go. */
		if (!msg_ok((const union wire_msg *)c[i], len, 1)) {
			if (i == 0) {
				errno = EINVAL;
				return -1;
			}
			n = i;
			break;
		}
		iov[i] = (struct iovec){ .iov_base = (void *)c[i], .iov_len = len };
		memset(&cbuf[i], 0, sizeof(cbuf[i]));
		mm[i].msg_hdr = (struct msghdr){
			.msg_iov = &iov[i], .msg_iovlen = 1,
			.msg_control = cbuf[i].buf, .msg_controllen = sizeof(cbuf[i].buf),
		};
		mm[i].msg_len = 0;
		cm = CMSG_FIRSTHDR(&mm[i].msg_hdr);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fds[i], sizeof(int));
	}
	do
		sent = sendmmsg(sock, mm, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -1;
	/* A record is sent whole or not at all on a SOCK_SEQPACKET socket; a short one
	 * ends the count there, as the peer would refuse it. */
	for (int i = 0; i < sent; i++)
		if (mm[i].msg_len != iov[i].iov_len)
			return i;
	return sent;
}

/* Sends one fixed-size record whole (a socket: SOCK; else a pipe). 0 or -1; a
 * short write, which a record must never be, is EPROTO. */
static int
put_record(int fd, const void *rec, size_t len, bool sock)
{
	ssize_t n;

	do
		n = sock ? send(fd, rec, len, MSG_NOSIGNAL) : write(fd, rec, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if ((size_t)n != len) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

int
wire_send_status(int fd, const struct wire_status *st)
{
	return put_record(fd, st, sizeof(*st), false);
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

static const char *const wire_policy_names[WIRE_POLICY_MAX] = {
	[WIRE_POLICY_PER_WORKER] = "per_worker",
	[WIRE_POLICY_PER_REQUEST] = "per_request",
	[WIRE_POLICY_ONESHOT] = "oneshot",
};

const char *
wire_policy_name(uint32_t policy)
{
	return policy < WIRE_POLICY_MAX ? wire_policy_names[policy] : "unknown";
}

/* A fixed-size string field must end inside itself; EMPTY_OK or it must not be empty. */
static bool
field_ok(const char *s, size_t len, bool empty_ok)
{
	return memchr(s, '\0', len) != NULL && (empty_ok || s[0] != '\0');
}

/* The filter: on with rules of known kinds, or off with none; unused slots zero. */
static bool
seccomp_ok(const struct wire_config *cfg)
{
	if (cfg->seccomp > 1 || cfg->seccomp_n > WIRE_SECCOMP_MAX || cfg->seccomp_pad != 0 ||
	    (cfg->seccomp == 0 && (cfg->seccomp_n != 0 || cfg->seccomp_arch != 0)))
		return false;
	for (uint32_t i = 0; i < WIRE_SECCOMP_MAX; i++) {
		const struct wire_syscall *r = &cfg->seccomp_rules[i];

		if (i >= cfg->seccomp_n ? r->nr != 0 || r->kind != 0 :
		    r->nr < 0 || r->nr > 4095 || r->kind >= WIRE_SC_KIND_MAX)
			return false;
	}
	return true;
}

static bool
durable_ok(const struct wire_durable *d)
{
	if (d->backend == WIRE_DURABLE_OFF) {
		static const struct wire_durable zero;
		return memcmp(d, &zero, sizeof(zero)) == 0;
	}
	return d->backend < WIRE_DURABLE_MAX && d->lease_ms >= 1 && d->retry_base_ms >= 1 &&
	    d->retry_max_ms >= d->retry_base_ms && d->concurrency >= 1 &&
	    field_ok(d->path, sizeof(d->path), false);
}

int
wire_config_check(const struct wire_config *cfg, size_t len)
{
	if (len != sizeof(*cfg) || cfg->version != WIRE_VERSION ||
	    cfg->type != WIRE_CTL_CONFIG || cfg->size != sizeof(*cfg) ||
	    cfg->policy >= WIRE_POLICY_MAX || (cfg->flags & ~WIRE_CFG_FLAGS) != 0 ||
	    cfg->log_level > WIRE_LOG_LEVEL_MAX ||
	    cfg->request_timeout_ms == 0 || cfg->idle_timeout_ms == 0 ||
	    cfg->max_header_bytes < WIRE_HEADER_MIN || cfg->max_header_bytes > WIRE_HEADER_MAX ||
	    cfg->max_pending_tasks == 0 ||
	    cfg->task_threads == 0 || cfg->task_threads > WIRE_THREADS_MAX ||
	    cfg->fetch_max_concurrent == 0 || cfg->fetch_max_response_bytes == 0 ||
	    cfg->ws_max_message_bytes == 0 || cfg->ws_max_buffer_bytes == 0 ||
	    !field_ok(cfg->name, sizeof(cfg->name), false) ||
	    !field_ok(cfg->library, sizeof(cfg->library), false) ||
	    !field_ok(cfg->cgroup_procs, sizeof(cfg->cgroup_procs), true) ||
	    !seccomp_ok(cfg) || !durable_ok(&cfg->durable)) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

int
wire_send_config(int sock, const struct wire_config *cfg)
{
	if (wire_config_check(cfg, sizeof(*cfg)) < 0) {
		errno = EINVAL;
		return -1;
	}
	return put_record(sock, cfg, sizeof(*cfg), true);
}

int
wire_recv_config(int sock, struct wire_config *cfg)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * WIRE_MAX_FDS)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = cfg, .iov_len = sizeof(*cfg) };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf),
	};
	struct cmsghdr *cm;
	bool fds = false;
	ssize_t n;

	memset(cfg, 0, sizeof(*cfg));
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	if (n == 0)
		return 0;
	/* A config carries no descriptor: any that came are closed, never kept. */
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < k; i++)
			close(in[i]);
		fds = true;
	}
	if (fds || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ||
	    wire_config_check(cfg, (size_t)n) < 0) {
		errno = EPROTO;
		return -1;
	}
	return 1;
}
