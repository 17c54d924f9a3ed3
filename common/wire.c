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

static size_t
carry_align(size_t off)
{
	return (off + WIRE_CARRY_ALIGN - 1) & ~(size_t)(WIRE_CARRY_ALIGN - 1);
}

/*
 * The carry at OFF of the N-byte record REC, whose first is of TYPE: whole and
 * sane, MOVE's ROUTED-only fields empty. *NEXT: where the one after it starts, N
 * when it is the last (then it must end the record exactly).
 */
static bool
carry_ok(const char *rec, size_t n, size_t off, uint16_t type, size_t *next)
{
	const struct wire_carry *c = (const void *)(rec + off);
	size_t end;

	if (n - off < WIRE_CARRY_HEAD || c->version != WIRE_VERSION || c->type != type ||
	    c->nbytes > WIRE_CARRY_MAX || c->size != WIRE_CARRY_HEAD + c->nbytes ||
	    c->size > n - off || (c->flags & ~WIRE_CARRY_MORE) != 0 ||
	    c->strip > WIRE_STRIP_MAX || (c->sticky & ~WIRE_STICKY_FLAGS) != 0 ||
	    memchr(c->host, '\0', sizeof(c->host)) == NULL ||
	    memchr(c->prefix, '\0', sizeof(c->prefix)) == NULL ||
	    (type == WIRE_CTL_MOVE && (c->strip != 0 || c->sticky != 0 ||
	    c->host[0] != '\0' || c->prefix[0] != '\0')))
		return false;
	end = off + c->size;
	if (c->flags & WIRE_CARRY_MORE) {
		/* Another follows: it needs room for at least its head. */
		end = carry_align(end);
		if (end >= n)
			return false;
	} else if (end != n)
		return false;
	*next = end;
	return true;
}

/* The checks on a message of N bytes with GOT fds, whatever its type. */
static bool
msg_ok(const union wire_msg *m, size_t n, unsigned got)
{
	size_t off = 0;
	unsigned k = 0;

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
		/* A packed record: every carry checked, one fd each. */
		do {
			if (k == WIRE_PACK_MAX || !carry_ok((const char *)m, n, off, m->h.type, &off))
				return false;
			k++;
		} while (off < n);
		return got == k;
	default:
		return false;
	}
}

/*
 * How many connections a refused record of N bytes meant to carry, for the
 * receiver's books (not its fds: they are closed): its carries as far as their
 * heads can be walked, at least one, at most WIRE_PACK_MAX.
 */
static unsigned
carries_meant(const char *rec, size_t n)
{
	size_t off = 0;
	unsigned k = 0;

	while (k < WIRE_PACK_MAX && n - off >= WIRE_CARRY_HEAD) {
		const struct wire_carry *c = (const void *)(rec + off);

		k++;
		if ((c->flags & WIRE_CARRY_MORE) == 0 || c->size < WIRE_CARRY_HEAD ||
		    c->size > n - off || carry_align(off + c->size) >= n)
			break;
		off = carry_align(off + c->size);
	}
	return k > 0 ? k : 1;
}

const struct wire_carry *
wire_carry_next(const struct wire_carry *c)
{
	if ((c->flags & WIRE_CARRY_MORE) == 0)
		return NULL;
	return (const void *)((const char *)c + carry_align(c->size));
}

/*
 * Every descriptor MH brought: the first MAX into OUT, the rest closed (MAX 0: all
 * closed). Returns how many came - a zero-length record that brought some is a
 * record, not the peer's EOF.
 */
static unsigned
take_fds(struct msghdr *mh, int *out, unsigned max)
{
	unsigned seen = 0;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		unsigned k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *in = (int *)CMSG_DATA(cm);
		for (unsigned i = 0; i < k; i++, seen++) {
			if (seen < max)
				out[seen] = in[i];
			else
				close(in[i]);
		}
	}
	return seen;
}

/*
 * The N bytes MH received into BUF (CAP bytes): at most *NFDS of its fds into FDS,
 * checked by msg_ok, which also bounds the type to what a CAP that small can hold.
 * 1, or -1 (EPROTO) with every fd it brought closed.
 */
static int
take_msg(struct msghdr *mh, size_t n, void *buf, size_t cap, int *fds, unsigned *nfds)
{
	unsigned max = *nfds, got;

	*nfds = 0;
	/* Take every descriptor first, so a bad message never leaks one. */
	got = take_fds(mh, fds, max);
	if (got > max)
		got = max;
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
		/* EOF - unless fds came with it: then a bad record, its fds closed. */
		if (n < 0 || take_fds(&mh, NULL, 0) == 0)
			return n < 0 ? -1 : 0;
		errno = EPROTO;
		return -1;
	}
	return take_msg(&mh, (size_t)n, buf, cap, fds, nfds);
}

int
wire_recv_batch(int sock, union wire_msg *m, int (*fds)[WIRE_MAX_FDS], unsigned *nfds,
    int *res, unsigned n)
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
		/* A zero-length record is the peer's EOF (recvmmsg counts it as one): the
		 * ones before it are answered now, the EOF by the next call; whatever came
		 * after it is dropped, its fds closed. One with fds is a bad record. */
		if (mm[i].msg_len == 0) {
			if (take_fds(&mm[i].msg_hdr, NULL, 0) == 0) {
				for (int j = i + 1; j < got; j++)
					take_fds(&mm[j].msg_hdr, NULL, 0);
				return i;
			}
			res[i] = -1;
			nfds[i] = 0;
			fds[i][0] = -1;
			continue;
		}
		nfds[i] = WIRE_MAX_FDS;
		res[i] = take_msg(&mm[i].msg_hdr, mm[i].msg_len, &m[i], sizeof(m[i]), fds[i],
		    &nfds[i]);
		if (res[i] < 0) {
			fds[i][0] = -1;         /* closed: nothing of it is the caller's */
			if (mm[i].msg_len >= sizeof(m[i].h) && (m[i].h.type == WIRE_CTL_ROUTED ||
			    m[i].h.type == WIRE_CTL_MOVE))
				nfds[i] = carries_meant((const char *)&m[i], mm[i].msg_len);
		}
	}
	return got;
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
	/* Each carry goes as three pieces around its flags word (the caller's record
	 * stays as it is) and, but for a record's last, the padding to the next. */
	enum { PIECES = 4, MAXN = WIRE_RECV_BATCH * WIRE_PACK_MAX };
	static const char pad[WIRE_CARRY_ALIGN];
	static const uint32_t more = WIRE_CARRY_MORE, last = 0;
	union cbuf {
		char buf[CMSG_SPACE(sizeof(int) * WIRE_PACK_MAX)];
		struct cmsghdr align;
	} cbuf[WIRE_RECV_BATCH];
	struct iovec iov[MAXN * PIECES];
	struct mmsghdr mm[WIRE_RECV_BATCH];
	unsigned count[WIRE_RECV_BATCH], nrec = 0, niov = 0, i = 0, done = 0;
	size_t len[WIRE_RECV_BATCH];
	const size_t fl = offsetof(struct wire_carry, flags);
	int sent;

	if (n == 0 || n > MAXN) {
		errno = EINVAL;
		return -1;
	}
	while (i < n && nrec < WIRE_RECV_BATCH) {
		unsigned first = i, k;
		size_t total = 0, one;
		struct cmsghdr *cm;

		/* As many as fit one record, each checked as its receiver checks it alone;
		 * the first bad one ends the batch, the ones before it still go. */
		for (; i < n && i - first < WIRE_PACK_MAX; i++) {
			one = WIRE_CARRY_HEAD + (c[i]->nbytes <= WIRE_CARRY_MAX ? c[i]->nbytes : 0);
			if (!msg_ok((const union wire_msg *)c[i], one, 1) ||
			    c[i]->type != c[0]->type) {
				n = i;
				break;
			}
			if (i > first && carry_align(total) + one > sizeof(struct wire_carry))
				break;
			total = (i > first ? carry_align(total) : 0) + one;
		}
		if (i == first)
			break;
		k = i - first;
		len[nrec] = total;
		count[nrec] = k;
		mm[nrec].msg_hdr = (struct msghdr){
			.msg_iov = &iov[niov],
			.msg_control = cbuf[nrec].buf, .msg_controllen = CMSG_SPACE(sizeof(int) * k),
		};
		mm[nrec].msg_len = 0;
		for (unsigned j = first; j < i; j++) {
			size_t sz = WIRE_CARRY_HEAD + c[j]->nbytes;

			iov[niov++] = (struct iovec){ .iov_base = (void *)c[j], .iov_len = fl };
			iov[niov++] = (struct iovec){
				.iov_base = (void *)(j + 1 < i ? &more : &last), .iov_len = sizeof(uint32_t),
			};
			iov[niov++] = (struct iovec){
				.iov_base = (char *)c[j] + fl + sizeof(uint32_t),
				.iov_len = sz - fl - sizeof(uint32_t),
			};
			if (j + 1 < i && carry_align(sz) != sz)
				iov[niov++] = (struct iovec){
					.iov_base = (void *)pad, .iov_len = carry_align(sz) - sz,
				};
		}
		mm[nrec].msg_hdr.msg_iovlen = (size_t)(&iov[niov] - mm[nrec].msg_hdr.msg_iov);
		memset(&cbuf[nrec], 0, sizeof(cbuf[nrec]));
		cm = CMSG_FIRSTHDR(&mm[nrec].msg_hdr);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * k);
		memcpy(CMSG_DATA(cm), &fds[first], sizeof(int) * k);
		nrec++;
	}
	if (nrec == 0) {
		errno = EINVAL;
		return -1;
	}
	do
		sent = sendmmsg(sock, mm, nrec, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -1;
	/* A record is sent whole or not at all on a SOCK_SEQPACKET socket; a short one
	 * ends the count there, as the peer would refuse it. */
	for (int r = 0; r < sent && mm[r].msg_len == len[r]; r++)
		done += count[r];
	return (int)done;
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
	bool fds;
	ssize_t n;

	memset(cfg, 0, sizeof(*cfg));
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	/* A config carries no descriptor: any that came are closed, never kept. */
	fds = take_fds(&mh, NULL, 0) > 0;
	if (n == 0 && !fds)
		return 0;
	if (fds || (mh.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) ||
	    wire_config_check(cfg, (size_t)n) < 0) {
		errno = EPROTO;
		return -1;
	}
	return 1;
}
