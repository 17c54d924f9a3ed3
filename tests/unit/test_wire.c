/*
 * test_wire.c - the supervisor <-> worker records (wire.h) and the scoreboard
 * (board.h) over real socketpairs, pipes and memfds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "board.h"
#include "unit.h"
#include "wire.h"

static void
close_all(int *fds, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		if (fds[i] >= 0)
			close(fds[i]);
		fds[i] = -1;
	}
}

/* A wire_recv_batch fd array: every slot closed (if open) and marked empty. */
static void
close_batch(int (*fds)[WIRE_MAX_FDS])
{
	for (int i = 0; i < WIRE_RECV_BATCH; i++)
		close_all(fds[i], WIRE_MAX_FDS);
}

/* Sends raw record BUF (LEN bytes) with NFD copies of FD. */
static int
send_raw(int sock, const void *buf, size_t len, int fd, unsigned nfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * (WIRE_PACK_MAX + 1))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (nfd > 0) {
		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfd);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfd);
		for (unsigned i = 0; i < nfd; i++)
			memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd, sizeof(int));
	}
	return sendmsg(sock, &mh, 0) == (ssize_t)len ? 0 : -1;
}

/* Marks every slot of a wire_recv_batch fd array empty, closing nothing. */
static void
empty_batch(int (*fds)[WIRE_MAX_FDS])
{
	for (int i = 0; i < WIRE_RECV_BATCH; i++)
		for (int j = 0; j < WIRE_MAX_FDS; j++)
			fds[i][j] = -1;
}

static int
same_object(int a, int b)
{
	struct stat sa, sb;

	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return 0;
	return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* A CONN message carries several descriptors that arrive as new CLOEXEC copies. */
static void
case_conn_fds(void)
{
	int sp[2] = { -1, -1 }, p1[2] = { -1, -1 }, p2[2] = { -1, -1 };
	int sent[5] = { -1, -1, -1, -1, -1 }, got[WIRE_MAX_FDS];
	struct wire_ctl msg = { .version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = 5 };
	struct wire_ctl in;
	unsigned n = WIRE_MAX_FDS, i, j;
	char c = 0;

	for (i = 0; i < WIRE_MAX_FDS; i++)
		got[i] = -1;
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	UNIT_CHECK(pipe2(p1, O_CLOEXEC) == 0 && pipe2(p2, O_CLOEXEC) == 0);
	sent[0] = p1[0];
	sent[1] = p1[1];
	sent[2] = p2[1];
	UNIT_CHECK((sent[3] = eventfd(0, EFD_CLOEXEC)) >= 0);
	UNIT_CHECK((sent[4] = eventfd(0, EFD_CLOEXEC)) >= 0);
	UNIT_CHECK(wire_send_ctl(sp[0], &msg, sent, 5) == 0);
	memset(&in, 0, sizeof(in));
	UNIT_CHECKF(wire_recv_ctl(sp[1], &in, got, &n) == 1, "recv: %s", strerror(errno));
	UNIT_CHECKF(n == 5, "got %u fds, want 5", n);
	UNIT_CHECK(in.version == WIRE_VERSION && in.type == WIRE_CTL_CONN && in.nfds == 5);
	for (i = 0; i < n; i++) {
		UNIT_CHECKF(got[i] >= 0, "fd %u is %d", i, got[i]);
		UNIT_CHECKF(fcntl(got[i], F_GETFD) == FD_CLOEXEC, "fd %d not CLOEXEC", got[i]);
		UNIT_CHECKF(same_object(got[i], sent[i]), "fd %u is another object", i);
		for (j = 0; j < 5; j++)
			UNIT_CHECKF(got[i] != sent[j], "received fd %d reuses a sent one", got[i]);
		for (j = 0; j < i; j++)
			UNIT_CHECKF(got[i] != got[j], "fd %d received twice", got[i]);
	}
	/* The copies work: a byte written on the sent write end reads on the received read end. */
	UNIT_CHECK(write(sent[1], "x", 1) == 1);
	UNIT_CHECK(read(got[0], &c, 1) == 1 && c == 'x');
out:
	close_all(got, WIRE_MAX_FDS);
	close_all(sent, 5);
	close(p2[0]);
	close_all(sp, 2);
}

/* The most fds one message may carry goes through; one more is refused. */
static void
case_conn_max(void)
{
	int sp[2] = { -1, -1 }, fds[WIRE_MAX_FDS + 1], got[WIRE_MAX_FDS];
	struct wire_ctl msg = { .version = WIRE_VERSION, .type = WIRE_CTL_CONN,
	    .nfds = WIRE_MAX_FDS };
	unsigned n = WIRE_MAX_FDS, i;
	int before;

	for (i = 0; i <= WIRE_MAX_FDS; i++)
		fds[i] = -1;
	for (i = 0; i < WIRE_MAX_FDS; i++)
		got[i] = -1;
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	for (i = 0; i <= WIRE_MAX_FDS; i++)
		UNIT_CHECK((fds[i] = eventfd(0, EFD_CLOEXEC)) >= 0);
	before = unit_fd_count();
	UNIT_CHECK(wire_send_ctl(sp[0], &msg, fds, WIRE_MAX_FDS) == 0);
	UNIT_CHECK(wire_recv_ctl(sp[1], &msg, got, &n) == 1);
	UNIT_CHECKF(n == WIRE_MAX_FDS, "got %u fds", n);
	UNIT_CHECK(same_object(got[WIRE_MAX_FDS - 1], fds[WIRE_MAX_FDS - 1]));
	close_all(got, WIRE_MAX_FDS);
	UNIT_CHECK(unit_fd_count() == before);
	msg.nfds = WIRE_MAX_FDS + 1;
	errno = 0;
	UNIT_CHECK(wire_send_ctl(sp[0], &msg, fds, WIRE_MAX_FDS + 1) == -1 &&
	    errno == EINVAL);
	/* The header must agree with the fds handed to send. */
	msg.nfds = 2;
	errno = 0;
	UNIT_CHECK(wire_send_ctl(sp[0], &msg, fds, 1) == -1 && errno == EINVAL);
out:
	close_all(got, WIRE_MAX_FDS);
	close_all(fds, WIRE_MAX_FDS + 1);
	close_all(sp, 2);
}

/* RETIRE carries the reason and deadline; EOF and an empty queue are told apart. */
static void
case_retire(void)
{
	int sp[2] = { -1, -1 }, got[4] = { -1, -1, -1, -1 };
	struct wire_ctl msg = { .version = WIRE_VERSION, .type = WIRE_CTL_RETIRE,
	    .arg = WIRE_REASON_MEMORY, .deadline_ms = 1234 };
	struct wire_ctl in;
	unsigned n = 4;

	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	errno = 0;
	UNIT_CHECK(wire_recv_ctl(sp[1], &in, got, &n) == -1 && errno == EAGAIN);
	n = 4;
	UNIT_CHECK(wire_send_ctl(sp[0], &msg, NULL, 0) == 0);
	memset(&in, 0xff, sizeof(in));
	UNIT_CHECK(wire_recv_ctl(sp[1], &in, got, &n) == 1);
	UNIT_CHECKF(n == 0, "RETIRE came with %u fds", n);
	UNIT_CHECK(in.version == WIRE_VERSION && in.type == WIRE_CTL_RETIRE);
	UNIT_CHECKF(in.arg == WIRE_REASON_MEMORY && in.deadline_ms == 1234 && in.nfds == 0,
	    "arg %u deadline %u nfds %u", in.arg, in.deadline_ms, in.nfds);
	close(sp[0]);
	sp[0] = -1;
	n = 4;
	UNIT_CHECKF(wire_recv_ctl(sp[1], &in, got, &n) == 0, "no EOF after peer closed");
out:
	close_all(got, 4);
	close_all(sp, 2);
}

/* Sends MSG with NSEND fds, receives with room for CAP: must be EPROTO, no fd kept. */
static void
expect_rejected(const struct wire_ctl *msg, unsigned nsend, unsigned cap)
{
	int sp[2] = { -1, -1 }, fds[4] = { -1, -1, -1, -1 }, got[4] = { -1, -1, -1, -1 };
	struct wire_ctl in;
	unsigned n = cap, i;
	int before, after, rc;

	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	for (i = 0; i < nsend; i++)
		UNIT_CHECK((fds[i] = eventfd(0, EFD_CLOEXEC)) >= 0);
	before = unit_fd_count();
	UNIT_CHECK(wire_send_ctl(sp[0], msg, fds, nsend) == 0);
	errno = 0;
	rc = wire_recv_ctl(sp[1], &in, got, &n);
	UNIT_CHECKF(rc == -1 && errno == EPROTO, "recv returned %d (%s)", rc,
	    strerror(errno));
	UNIT_CHECKF(n == 0, "reported %u fds on failure", n);
	after = unit_fd_count();
	UNIT_CHECKF(after == before, "fd count %d before, %d after: leak", before, after);
out:
	close_all(fds, 4);
	close_all(sp, 2);
}

static void
case_bad_version(void)
{
	struct wire_ctl msg = { .version = WIRE_VERSION + 1, .type = WIRE_CTL_CONN, .nfds = 3 };

	expect_rejected(&msg, 3, 4);
}

static void
case_bad_type(void)
{
	struct wire_ctl msg = { .version = WIRE_VERSION, .type = 77, .nfds = 2 };

	expect_rejected(&msg, 2, 4);
}

static void
case_retire_with_fds(void)
{
	struct wire_ctl msg = { .version = WIRE_VERSION, .type = WIRE_CTL_RETIRE, .nfds = 1 };

	expect_rejected(&msg, 1, 4);
}

/* More fds than the receiver has room for: refused whole, the extra ones closed too. */
static void
case_too_many_fds(void)
{
	struct wire_ctl msg = { .version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = 3 };

	expect_rejected(&msg, 3, 1);
}

/* A datagram shorter than the header, sent raw: EPROTO. */
static void
case_short_ctl(void)
{
	int sp[2] = { -1, -1 }, got[2] = { -1, -1 };
	struct wire_ctl in;
	uint16_t v = WIRE_VERSION;
	unsigned n = 2;

	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	UNIT_CHECK(send(sp[0], &v, sizeof(v), 0) == (ssize_t)sizeof(v));
	errno = 0;
	UNIT_CHECK(wire_recv_ctl(sp[1], &in, got, &n) == -1 && errno == EPROTO);
out:
	close_all(got, 2);
	close_all(sp, 2);
}

/* A config record as the supervisor would send it. */
static void
good_config(struct wire_config *c)
{
	memset(c, 0, sizeof(*c));
	c->version = WIRE_VERSION;
	c->type = WIRE_CTL_CONFIG;
	c->size = sizeof(*c);
	c->worker_id = 7;
	c->policy = WIRE_POLICY_ONESHOT;
	c->flags = WIRE_CFG_CHECK_ONLY;
	c->log_level = 3;
	c->request_timeout_ms = 30000;
	c->idle_timeout_ms = 60000;
	c->max_header_bytes = 16384;
	c->max_body_bytes = 1048576;
	c->max_requests = 110;
	c->max_pending_tasks = 16384;
	c->task_threads = 4;
	c->grace_ms = 2000;
	c->fetch_max_concurrent = 256;
	c->fetch_max_queued = 4096;
	c->fetch_max_response_bytes = 1048576;
	c->ws_max_message_bytes = 1048576;
	c->ws_max_buffer_bytes = 1048576;
	snprintf(c->name, sizeof(c->name), "hello");
	snprintf(c->library, sizeof(c->library), "/x/hello.so");
	snprintf(c->cgroup_procs, sizeof(c->cgroup_procs), "/sys/fs/cgroup/memory/e/hello/w7/cgroup.procs");
	c->seccomp = 1;
	c->seccomp_arch = 0xc000003e;
	c->seccomp_n = 3;
	c->seccomp_rules[0] = (struct wire_syscall){ 165, WIRE_SC_ALWAYS };
	c->seccomp_rules[1] = (struct wire_syscall){ 56, WIRE_SC_CLONE_NS };
	c->seccomp_rules[2] = (struct wire_syscall){ 435, WIRE_SC_ENOSYS };
}

/* The config crosses a SEQPACKET socketpair as one message, every field intact. */
static void
case_config(void)
{
	int sp[2] = { -1, -1 };
	static struct wire_config out, in;

	good_config(&out);
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	UNIT_CHECKF(wire_send_config(sp[0], &out) == 0, "send: %s", strerror(errno));
	UNIT_CHECKF(wire_recv_config(sp[1], &in) == 1, "recv: %s", strerror(errno));
	UNIT_CHECK(memcmp(&in, &out, sizeof(in)) == 0);
	UNIT_CHECK(strcmp(wire_policy_name(in.policy), "oneshot") == 0);
	UNIT_CHECK(strcmp(wire_policy_name(WIRE_POLICY_MAX), "unknown") == 0);
	/* An empty cgroup path (cgroups off) is valid. */
	out.cgroup_procs[0] = '\0';
	UNIT_CHECK(wire_send_config(sp[0], &out) == 0);
	UNIT_CHECK(wire_recv_config(sp[1], &in) == 1 && in.cgroup_procs[0] == '\0');
	/* The supervisor gone before sending: EOF. */
	close(sp[0]);
	sp[0] = -1;
	UNIT_CHECK(wire_recv_config(sp[1], &in) == 0);
out:
	close_all(sp, 2);
}

/*
 * Sends LEN bytes of REC raw (bypassing wire_send_config, which checks its input
 * too), with NFDS pipe ends attached, and expects wire_recv_config to refuse it with
 * EPROTO and to leave no descriptor behind. WHAT names the case.
 */
static void
expect_config_refused(const void *rec, size_t len, unsigned nfds, const char *what)
{
	int sp[2] = { -1, -1 }, pp[2] = { -1, -1 }, before = unit_fd_count(), after;
	static struct wire_config in;
	union {
		char buf[CMSG_SPACE(sizeof(int) * 2)];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = (void *)rec, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	if (nfds > 0) {
		UNIT_CHECK(pipe2(pp, O_CLOEXEC) == 0);
		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * 2);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * 2);
		memcpy(CMSG_DATA(cm), pp, sizeof(pp));
	}
	UNIT_CHECKF(sendmsg(sp[0], &mh, 0) == (ssize_t)len, "%s: send: %s", what, strerror(errno));
	close_all(pp, 2);
	errno = 0;
	UNIT_CHECKF(wire_recv_config(sp[1], &in) == -1 && errno == EPROTO,
	    "%s: accepted (errno %d)", what, errno);
	close_all(sp, 2);
	after = unit_fd_count();
	UNIT_CHECKF(after == before, "%s: fd count %d before, %d after", what, before, after);
out:
	close_all(pp, 2);
	close_all(sp, 2);
}

/* Every way a config record can be wrong is refused with EPROTO. */
static void
case_config_bad(void)
{
	static struct wire_config c;
	static char longer[sizeof(struct wire_config) + 8];
	static const struct {
		const char *what;
		size_t off;       /* a uint32_t field (or the uint16_t version/type) */
		int wide;
		uint32_t value;
	} fields[] = {
		{ "wrong version", offsetof(struct wire_config, version), 0, WIRE_VERSION + 1 },
		{ "wrong type", offsetof(struct wire_config, type), 0, WIRE_CTL_CONN },
		{ "wrong size field", offsetof(struct wire_config, size), 1, sizeof(struct wire_config) - 1 },
		{ "bad policy", offsetof(struct wire_config, policy), 1, WIRE_POLICY_MAX },
		{ "huge policy", offsetof(struct wire_config, policy), 1, 0xffffffffu },
		{ "unknown flag", offsetof(struct wire_config, flags), 1, 0x80 },
		{ "bad log level", offsetof(struct wire_config, log_level), 1, 4 },
		{ "zero request timeout", offsetof(struct wire_config, request_timeout_ms), 1, 0 },
		{ "zero idle timeout", offsetof(struct wire_config, idle_timeout_ms), 1, 0 },
		{ "header cap too small", offsetof(struct wire_config, max_header_bytes), 1, WIRE_HEADER_MIN - 1 },
		{ "header cap too big", offsetof(struct wire_config, max_header_bytes), 1, WIRE_HEADER_MAX + 1 },
		{ "no pending tasks", offsetof(struct wire_config, max_pending_tasks), 1, 0 },
		{ "no task threads", offsetof(struct wire_config, task_threads), 1, 0 },
		{ "too many task threads", offsetof(struct wire_config, task_threads), 1, WIRE_THREADS_MAX + 1 },
		{ "no fetch transfers", offsetof(struct wire_config, fetch_max_concurrent), 1, 0 },
		{ "no fetch response bytes", offsetof(struct wire_config, fetch_max_response_bytes), 1, 0 },
		{ "no ws message bytes", offsetof(struct wire_config, ws_max_message_bytes), 1, 0 },
		{ "no ws buffer", offsetof(struct wire_config, ws_max_buffer_bytes), 1, 0 },
		{ "seccomp mode 2", offsetof(struct wire_config, seccomp), 1, 2 },
		{ "too many seccomp rules", offsetof(struct wire_config, seccomp_n), 1, WIRE_SECCOMP_MAX + 1 },
		{ "seccomp pad", offsetof(struct wire_config, seccomp_pad), 1, 1 },
		{ "negative syscall", offsetof(struct wire_config, seccomp_rules[0].nr), 1, 0xffffffffu },
		{ "syscall 4096", offsetof(struct wire_config, seccomp_rules[1].nr), 1, 4096 },
		{ "unknown rule kind", offsetof(struct wire_config, seccomp_rules[2].kind), 1, WIRE_SC_KIND_MAX },
		{ "a rule past seccomp_n", offsetof(struct wire_config, seccomp_rules[3].nr), 1, 101 },
		{ "a kind past seccomp_n", offsetof(struct wire_config, seccomp_rules[WIRE_SECCOMP_MAX - 1].kind), 1, 1 },
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		good_config(&c);
		if (fields[i].wide)
			memcpy((char *)&c + fields[i].off, &fields[i].value, 4);
		else {
			uint16_t v = (uint16_t)fields[i].value;
			memcpy((char *)&c + fields[i].off, &v, 2);
		}
		UNIT_CHECKF(wire_config_check(&c, sizeof(c)) == -1 && errno == EPROTO,
		    "%s: passes the check", fields[i].what);
		expect_config_refused(&c, sizeof(c), 0, fields[i].what);
		/* The sender refuses it too: a bad record never leaves the supervisor. */
		errno = 0;
		UNIT_CHECKF(wire_send_config(-1, &c) == -1 && errno == EINVAL,
		    "%s: sent", fields[i].what);
	}
	/* Unterminated strings: each field filled to its last byte. */
	good_config(&c);
	memset(c.name, 'a', sizeof(c.name));
	expect_config_refused(&c, sizeof(c), 0, "unterminated name");
	good_config(&c);
	memset(c.library, 'l', sizeof(c.library));
	expect_config_refused(&c, sizeof(c), 0, "unterminated library");
	good_config(&c);
	memset(c.cgroup_procs, 'p', sizeof(c.cgroup_procs));
	expect_config_refused(&c, sizeof(c), 0, "unterminated cgroup path");
	good_config(&c);
	c.name[0] = '\0';
	expect_config_refused(&c, sizeof(c), 0, "empty name");
	good_config(&c);
	c.library[0] = '\0';
	expect_config_refused(&c, sizeof(c), 0, "empty library");
	/* Off means no rules and no arch: a filter is on or it is not. */
	good_config(&c);
	c.seccomp = 0;
	expect_config_refused(&c, sizeof(c), 0, "seccomp off with rules");
	c.seccomp_n = 0;
	expect_config_refused(&c, sizeof(c), 0, "seccomp off with an arch");
	c.seccomp_arch = 0;
	memset(c.seccomp_rules, 0, sizeof(c.seccomp_rules));
	UNIT_CHECK(wire_config_check(&c, sizeof(c)) == 0);
	/* Short, long and foreign records. */
	good_config(&c);
	expect_config_refused(&c, sizeof(c) - 1, 0, "short record");
	expect_config_refused(&c, 4, 0, "header only");
	memcpy(longer, &c, sizeof(c));
	expect_config_refused(longer, sizeof(longer), 0, "long record");
	{
		struct wire_ctl ctl = { .version = WIRE_VERSION, .type = WIRE_CTL_RETIRE };
		expect_config_refused(&ctl, sizeof(ctl), 0, "a wire_ctl instead");
	}
	/* A valid record with descriptors attached: refused, and they are closed. */
	expect_config_refused(&c, sizeof(c), 2, "config with fds");
out:
	;
}

/* Status records cross a pipe intact; EOF reads as 0. */
static void
case_status(void)
{
	int p[2] = { -1, -1 };
	struct wire_status st, in;

	UNIT_CHECK(pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0);
	memset(&st, 0, sizeof(st));
	st.version = WIRE_VERSION;
	st.type = WIRE_ST_DRAINED;
	st.counts.requests = 1000000007ull;
	st.counts.tasks_started = 12;
	st.counts.tasks_completed = 10;
	st.counts.tasks_failed = 2;
	snprintf(st.text, sizeof(st.text), "all done");
	UNIT_CHECK(wire_send_status(p[1], &st) == 0);
	st.type = WIRE_ST_LIMIT;
	st.reason = WIRE_REASON_CPU;
	st.hard = 1;
	UNIT_CHECK(wire_send_status(p[1], &st) == 0);

	memset(&in, 0, sizeof(in));
	UNIT_CHECK(wire_recv_status(p[0], &in) == 1);
	UNIT_CHECK(in.version == WIRE_VERSION && in.type == WIRE_ST_DRAINED);
	UNIT_CHECKF(in.counts.requests == 1000000007ull && in.counts.tasks_started == 12 &&
	    in.counts.tasks_completed == 10 && in.counts.tasks_failed == 2,
	    "counts differ");
	UNIT_CHECK(strcmp(in.text, "all done") == 0);
	UNIT_CHECK(wire_recv_status(p[0], &in) == 1);
	UNIT_CHECK(in.type == WIRE_ST_LIMIT && in.reason == WIRE_REASON_CPU && in.hard == 1);
	errno = 0;
	UNIT_CHECK(wire_recv_status(p[0], &in) == -1 && errno == EAGAIN);
	close(p[1]);
	p[1] = -1;
	UNIT_CHECK(wire_recv_status(p[0], &in) == 0);
out:
	close_all(p, 2);
}

/* A record cut short, or from another version, is EPROTO. */
static void
case_status_bad(void)
{
	int p[2] = { -1, -1 };
	struct wire_status st, in;

	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	memset(&st, 0, sizeof(st));
	st.version = WIRE_VERSION;
	st.type = WIRE_ST_READY;
	UNIT_CHECK(write(p[1], &st, sizeof(st) / 2) == (ssize_t)(sizeof(st) / 2));
	errno = 0;
	UNIT_CHECK(wire_recv_status(p[0], &in) == -1 && errno == EPROTO);
	st.version = WIRE_VERSION + 1;
	UNIT_CHECK(wire_send_status(p[1], &st) == 0);
	errno = 0;
	UNIT_CHECK(wire_recv_status(p[0], &in) == -1 && errno == EPROTO);
out:
	close_all(p, 2);
}

static void
case_reason_names(void)
{
	for (int i = 0; i < WIRE_REASON_MAX; i++) {
		const char *name = wire_reason_name((uint32_t)i);

		UNIT_CHECKF(name != NULL && strcmp(name, "unknown") != 0, "reason %d unnamed", i);
		UNIT_CHECKF(wire_reason_parse(name) == i, "%s does not parse back to %d", name, i);
	}
	UNIT_CHECK(strcmp(wire_reason_name(WIRE_REASON_WALL_CLOCK), "wall_clock") == 0);
	UNIT_CHECK(strcmp(wire_reason_name(WIRE_REASON_EARLY_DROP), "early_drop") == 0);
	UNIT_CHECK(strcmp(wire_reason_name(WIRE_REASON_MAX), "unknown") == 0);
	UNIT_CHECK(strcmp(wire_reason_name(0xffffffffu), "unknown") == 0);
	UNIT_CHECK(wire_reason_parse("bogus") == -1);
	UNIT_CHECK(wire_reason_parse("") == -1);
out:
	;
}

/* Two mappings of one board see each other's writes; its size is sealed. */
static void
case_board(void)
{
	struct board *a = NULL, *b = NULL;
	int fd = -1;

	UNIT_CHECK((fd = board_create(8, &a)) >= 0);
	UNIT_CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC);
	UNIT_CHECK(board_map(fd, &b) == 0);
	UNIT_CHECK(a != b);
	UNIT_CHECK(b->version == BOARD_VERSION && b->task_slots == 8);
	BOARD_ADD(&b->requests, 5);
	BOARD_ADD(&b->requests, 2);
	UNIT_CHECKF(BOARD_LOAD(&a->requests) == 7, "requests %llu",
	    (unsigned long long)BOARD_LOAD(&a->requests));
	snprintf(b->tasks[7].name, BOARD_TASK_NAME, "save_log");
	BOARD_STORE(&b->tasks[7].id, 42);
	UNIT_CHECK(BOARD_LOAD(&a->tasks[7].id) == 42);
	UNIT_CHECK(strcmp(a->tasks[7].name, "save_log") == 0);
	errno = 0;
	UNIT_CHECK(ftruncate(fd, 4096 * 16) == -1 && errno == EPERM);
out:
	board_unmap(b, 8);
	board_unmap(a, 8);
	if (fd >= 0)
		close(fd);
}

/* board_map refuses a file too small for its header, or of another version. */
static void
case_board_bad(void)
{
	struct board *b = NULL, *a = NULL;
	int fd = -1, fd2 = -1;

	UNIT_CHECK((fd = memfd_create("t", MFD_CLOEXEC)) >= 0);
	UNIT_CHECK(ftruncate(fd, 8) == 0);
	errno = 0;
	UNIT_CHECK(board_map(fd, &b) == -1 && errno == EPROTO);
	UNIT_CHECK((fd2 = board_create(2, &a)) >= 0);
	a->version = BOARD_VERSION + 1;
	errno = 0;
	UNIT_CHECK(board_map(fd2, &b) == -1 && errno == EPROTO);
	a->version = BOARD_VERSION;
	a->task_slots = 3;   /* now disagrees with the file size */
	errno = 0;
	UNIT_CHECK(board_map(fd2, &b) == -1 && errno == EPROTO);
	a->task_slots = 2;
out:
	board_unmap(a, 2);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
}

/* A routed connection travels with its bytes; the receiver gets both, checked. */
static void
case_carry(void)
{
	static struct wire_carry c;
	static union wire_msg m;
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 }, got[2] = { -1, -1 };
	unsigned n = 2;

	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	memset(&c, 0, sizeof(c));
	c.version = WIRE_VERSION;
	c.type = WIRE_CTL_ROUTED;
	c.listener = 7;
	c.strip = 13;
	c.nbytes = 5;
	c.size = WIRE_CARRY_HEAD + 5;
	memcpy(c.bytes, "GET /", 5);
	UNIT_CHECK(wire_send_carry(sp[0], &c, p[0]) == 0);
	UNIT_CHECK(wire_recv_msg(sp[1], &m, got, &n) == 1);
	UNIT_CHECK(n == 1 && same_object(got[0], p[0]));
	UNIT_CHECK(m.h.type == WIRE_CTL_ROUTED && m.carry.listener == 7 && m.carry.strip == 13);
	UNIT_CHECK(m.carry.nbytes == 5 && memcmp(m.carry.bytes, "GET /", 5) == 0);
	close_all(got, 1);
	/* The largest carry goes through whole. */
	c.type = WIRE_CTL_MOVE;
	c.strip = 0;
	c.nbytes = WIRE_CARRY_MAX;
	c.size = WIRE_CARRY_HEAD + WIRE_CARRY_MAX;
	memset(c.bytes, 'x', WIRE_CARRY_MAX);
	n = 2;
	UNIT_CHECK(wire_send_carry(sp[0], &c, p[1]) == 0);
	UNIT_CHECK(wire_recv_msg(sp[1], &m, got, &n) == 1 && n == 1);
	UNIT_CHECK(m.h.type == WIRE_CTL_MOVE && m.carry.nbytes == WIRE_CARRY_MAX &&
	    m.carry.bytes[WIRE_CARRY_MAX - 1] == 'x');
	close_all(got, 1);
	/* The fixed-record receiver takes none of it. */
	c.nbytes = 3;
	c.size = WIRE_CARRY_HEAD + 3;
	n = 2;
	UNIT_CHECK(wire_send_carry(sp[0], &c, p[1]) == 0);
	errno = 0;
	UNIT_CHECK(wire_recv_ctl(sp[1], &m.ctl, got, &n) == -1 && errno == EPROTO && n == 0);
out:
	close_all(got, 2);
	close_all(sp, 2);
	close_all(p, 2);
}

/* Raw messages that break one rule each: refused, their fd closed. */
static void
case_carry_bad(void)
{
	static struct wire_carry c;
	static union wire_msg m;
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 }, got[2] = { -1, -1 };
	unsigned n;
	int before, k;

	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	for (k = 0; k < 9; k++) {
		unsigned nfd = 1;
		size_t len;

		memset(&c, 0, sizeof(c));
		c.version = WIRE_VERSION;
		c.type = WIRE_CTL_ROUTED;
		c.nbytes = 4;
		c.size = WIRE_CARRY_HEAD + 4;
		switch (k) {
		case 0: c.size++; break;                          /* size disagrees */
		case 1: c.type = WIRE_CTL_MOVE; c.strip = 1; break; /* MOVE strips nothing */
		case 2: c.flags = 2; break;                       /* unknown flag */
		case 3: nfd = 0; break;                           /* no socket */
		case 4: nfd = 2; break;                           /* two sockets */
		case 5: c.strip = WIRE_STRIP_MAX + 1; break;
		case 6: c.type = WIRE_CTL_MOVE; c.sticky = WIRE_STICKY; break; /* MOVE keeps nothing */
		case 7: memset(c.host, 'x', sizeof(c.host)); break; /* unterminated */
		case 8: c.flags = WIRE_CARRY_MORE; break;         /* "more" and nothing after */
		}
		len = WIRE_CARRY_HEAD + 4;
		/* The sender refuses what the receiver would. */
		if (nfd == 1) {
			errno = 0;
			UNIT_CHECKF(wire_send_carry(sp[0], &c, p[0]) == -1 && errno == EINVAL,
			    "case %d sent", k);
		}
		UNIT_CHECK(send_raw(sp[0], &c, len, p[0], nfd) == 0);
		before = unit_fd_count();
		n = 2;
		errno = 0;
		UNIT_CHECKF(wire_recv_msg(sp[1], &m, got, &n) == -1 && errno == EPROTO && n == 0,
		    "case %d accepted", k);
		UNIT_CHECKF(unit_fd_count() == before, "case %d leaked an fd", k);
	}
out:
	close_all(sp, 2);
	close_all(p, 2);
}

/*
 * wire_recv_batch: every queued record in one call, each checked as wire_recv_msg
 * checks it (a malformed one refused alone, its fds closed), fewer than asked for
 * when the queue ran dry, EAGAIN when empty, 0 at EOF.
 */
static void
case_recv_batch(void)
{
	static struct wire_carry c;
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	struct wire_ctl two = { .version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = 2 };
	struct wire_ctl bad = { .version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = 3 };
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 };
	unsigned nfds[WIRE_RECV_BATCH];
	int res[WIRE_RECV_BATCH], before, r;

	empty_batch(fds);
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	errno = 0;
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == -1 && errno == EAGAIN);
	memset(&c, 0, sizeof(c));
	c.version = WIRE_VERSION;
	c.type = WIRE_CTL_MOVE;
	for (int i = 0; i < 3; i++) {
		c.listener = (uint32_t)i + 1;
		c.nbytes = (uint32_t)i;
		c.size = (uint32_t)(WIRE_CARRY_HEAD + (size_t)i);
		memset(c.bytes, 'a' + i, (size_t)i);
		UNIT_CHECK(wire_send_carry(sp[0], &c, p[i % 2]) == 0);
		if (i == 1) {   /* between them, a CONN of two fds and one claiming three */
			UNIT_CHECK(wire_send_ctl(sp[0], &two, p, 2) == 0);
			UNIT_CHECK(send(sp[0], &bad, sizeof(bad), 0) == (ssize_t)sizeof(bad));
		}
	}
	before = unit_fd_count();
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	UNIT_CHECKF(r == 5, "got %d", r);
	UNIT_CHECK(res[0] == 1 && res[1] == 1 && res[2] == 1 && res[3] == -1 && res[4] == 1);
	UNIT_CHECK(nfds[0] == 1 && nfds[1] == 1 && nfds[2] == 2 && nfds[3] == 0 && nfds[4] == 1);
	UNIT_CHECK(m[0].carry.listener == 1 && m[0].carry.nbytes == 0 && same_object(fds[0][0], p[0]));
	UNIT_CHECK(m[1].carry.listener == 2 && m[1].carry.nbytes == 1 && m[1].carry.bytes[0] == 'b' &&
	    same_object(fds[1][0], p[1]));
	UNIT_CHECK(m[4].carry.listener == 3 && m[4].carry.nbytes == 2 &&
	    memcmp(m[4].carry.bytes, "cc", 2) == 0 && same_object(fds[4][0], p[0]));
	UNIT_CHECK(wire_carry_next(&m[4].carry) == NULL);
	/* The refused one's fds are closed: only the five taken are new. */
	UNIT_CHECK(unit_fd_count() == before + 5);
	for (int i = 0; i < r; i++)
		close_all(fds[i], nfds[i]);
	/* More than a batch: a full one, then the rest. */
	c.nbytes = 0;
	c.size = WIRE_CARRY_HEAD;
	for (int i = 0; i < WIRE_RECV_BATCH + 1; i++)
		UNIT_CHECK(wire_send_carry(sp[0], &c, p[0]) == 0);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == WIRE_RECV_BATCH);
	for (int i = 0; i < WIRE_RECV_BATCH; i++)
		close_all(fds[i], nfds[i]);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 1 && res[0] == 1);
	close_all(fds[0], 1);
	/* A record, then the peer's EOF: the record first, the EOF next. */
	UNIT_CHECK(wire_send_carry(sp[0], &c, p[1]) == 0);
	close_all(sp, 1);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 1 && res[0] == 1);
	close_all(fds[0], 1);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 0);
	errno = 0;
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH + 1) == -1 &&
	    errno == EINVAL);
out:
	close_batch(fds);
	close_all(sp, 2);
	close_all(p, 2);
}

/*
 * wire_recv_batch (the worker's side): a CONN of several fds, a carry and a refused
 * record in one call, each record's fds its own; EAGAIN when empty, 0 at EOF.
 */
static void
case_recv_batch_fds(void)
{
	static struct wire_carry c;
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	struct wire_ctl three = { .version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = 3 };
	struct wire_ctl bad = { .version = WIRE_VERSION + 1, .type = WIRE_CTL_CONN, .nfds = 1 };
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 }, sent[3];
	unsigned nfds[WIRE_RECV_BATCH];
	int res[WIRE_RECV_BATCH], before, r;

	empty_batch(fds);
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	errno = 0;
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == -1 && errno == EAGAIN);
	sent[0] = p[0], sent[1] = p[1], sent[2] = p[0];
	UNIT_CHECK(wire_send_ctl(sp[0], &three, sent, 3) == 0);
	UNIT_CHECK(wire_send_ctl(sp[0], &bad, p, 1) == 0);
	memset(&c, 0, sizeof(c));
	c.version = WIRE_VERSION;
	c.type = WIRE_CTL_ROUTED;
	c.listener = 7;
	c.nbytes = 2;
	c.size = (uint32_t)(WIRE_CARRY_HEAD + 2);
	memcpy(c.bytes, "GE", 2);
	UNIT_CHECK(wire_send_carry(sp[0], &c, p[1]) == 0);
	before = unit_fd_count();
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	UNIT_CHECKF(r == 3, "got %d", r);
	UNIT_CHECK(res[0] == 1 && nfds[0] == 3 && m[0].h.type == WIRE_CTL_CONN);
	UNIT_CHECK(same_object(fds[0][0], p[0]) && same_object(fds[0][1], p[1]) &&
	    same_object(fds[0][2], p[0]));
	UNIT_CHECK(res[1] == -1 && nfds[1] == 0 && fds[1][0] == -1);
	UNIT_CHECK(res[2] == 1 && nfds[2] == 1 && m[2].carry.listener == 7 &&
	    memcmp(m[2].carry.bytes, "GE", 2) == 0 && same_object(fds[2][0], p[1]));
	/* The refused one's fd is closed: only the four taken are new. */
	UNIT_CHECK(unit_fd_count() == before + 4);
	close_all(fds[0], 3);
	close_all(fds[2], 1);
	close_all(sp, 1);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 0);
out:
	close_batch(fds);
	close_all(sp, 2);
	close_all(p, 2);
}

/* The carries of record I (RES and NFDS as wire_recv_batch gave them): how many,
 * each checked against C[FIRST + k] and its fd against SFDS[FIRST + k]. */
static unsigned
packed_ok(const union wire_msg *m, const int *fds, unsigned nfds,
    const struct wire_carry *c, const int *sfds, unsigned first)
{
	const struct wire_carry *x = &m->carry;
	unsigned k = 0;

	for (; x != NULL; x = wire_carry_next(x), k++) {
		const struct wire_carry *want = &c[first + k];

		if (k >= nfds || x->listener != want->listener || x->nbytes != want->nbytes ||
		    memcmp(x->bytes, want->bytes, x->nbytes) != 0 || x->type != want->type ||
		    !same_object(fds[k], sfds[first + k]))
			return 0;
	}
	return k == nfds ? k : 0;
}

/*
 * wire_send_carries: a batch goes packed, as few records as the size bound and
 * WIRE_PACK_MAX allow, each carry received whole with its fd in order; the
 * caller's carries are not written; a bad first one is EINVAL (nothing sent), a bad
 * later one ends the batch.
 */
static void
case_send_carries(void)
{
	enum { N = WIRE_PACK_MAX + 3 };
	static struct wire_carry c[N];
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	const struct wire_carry *q[N];
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 }, sfds[N], res[WIRE_RECV_BATCH], r;
	unsigned nfds[WIRE_RECV_BATCH];

	empty_batch(fds);
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	for (int i = 0; i < N; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].version = WIRE_VERSION;
		c[i].type = WIRE_CTL_MOVE;
		c[i].listener = (uint32_t)i + 1;
		/* Odd lengths: every carry but a record's last is padded. */
		c[i].nbytes = (uint32_t)i + 1;
		c[i].size = (uint32_t)(WIRE_CARRY_HEAD + (size_t)i + 1);
		memset(c[i].bytes, 'a' + i, (size_t)i + 1);
		sfds[i] = p[i % 2];
		q[i] = &c[i];
	}
	/* Three: one record. */
	r = wire_send_carries(sp[0], q, sfds, 3);
	UNIT_CHECKF(r == 3, "sent %d", r);
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	UNIT_CHECKF(r == 1 && res[0] == 1 && nfds[0] == 3, "got %d records", r);
	UNIT_CHECK(packed_ok(&m[0], fds[0], nfds[0], c, sfds, 0) == 3);
	for (int i = 0; i < N; i++)
		UNIT_CHECKF(c[i].flags == 0, "carry %d written", i);
	close_all(fds[0], WIRE_MAX_FDS);
	/* More than a record holds: WIRE_PACK_MAX, then the rest. */
	r = wire_send_carries(sp[0], q, sfds, N);
	UNIT_CHECKF(r == N, "sent %d", r);
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	UNIT_CHECKF(r == 2 && res[0] == 1 && res[1] == 1, "got %d records", r);
	UNIT_CHECK(packed_ok(&m[0], fds[0], nfds[0], c, sfds, 0) == WIRE_PACK_MAX);
	UNIT_CHECK(packed_ok(&m[1], fds[1], nfds[1], c, sfds, WIRE_PACK_MAX) == 3);
	close_all(fds[0], WIRE_MAX_FDS);
	close_all(fds[1], WIRE_MAX_FDS);
	/* Past the size bound: two large carries take a record each. */
	c[0].nbytes = c[1].nbytes = WIRE_CARRY_MAX / 2 + 1;
	c[0].size = c[1].size = WIRE_CARRY_HEAD + WIRE_CARRY_MAX / 2 + 1;
	memset(c[0].bytes, 'y', c[0].nbytes);
	memset(c[1].bytes, 'z', c[1].nbytes);
	UNIT_CHECK(wire_send_carries(sp[0], q, sfds, 3) == 3);
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	UNIT_CHECKF(r == 2, "got %d records", r);
	UNIT_CHECK(packed_ok(&m[0], fds[0], nfds[0], c, sfds, 0) == 1);
	UNIT_CHECK(packed_ok(&m[1], fds[1], nfds[1], c, sfds, 1) == 2);
	close_all(fds[0], WIRE_MAX_FDS);
	close_all(fds[1], WIRE_MAX_FDS);
	c[0].nbytes = 1, c[1].nbytes = 2;
	c[0].size = WIRE_CARRY_HEAD + 1, c[1].size = WIRE_CARRY_HEAD + 2;
	/* A bad size second: the first goes alone. */
	c[1].size++;
	UNIT_CHECK(wire_send_carries(sp[0], q, sfds, 3) == 1);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 1 && res[0] == 1 &&
	    nfds[0] == 1 && m[0].carry.listener == 1 && wire_carry_next(&m[0].carry) == NULL);
	close_all(fds[0], WIRE_MAX_FDS);
	c[1].size--;
	/* Two types in one batch: the second type ends it. */
	c[1].type = WIRE_CTL_ROUTED;
	UNIT_CHECK(wire_send_carries(sp[0], q, sfds, 3) == 1);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 1 && nfds[0] == 1);
	close_all(fds[0], WIRE_MAX_FDS);
	c[1].type = WIRE_CTL_MOVE;
	errno = 0;
	c[0].flags = WIRE_CARRY_MORE;   /* the caller's flags must be 0 */
	UNIT_CHECK(wire_send_carries(sp[0], q, sfds, 2) == -1 && errno == EINVAL);
	c[0].flags = 0;
	errno = 0;
	UNIT_CHECK(wire_send_carries(sp[0], q, sfds, 0) == -1 && errno == EINVAL);
	/* More than a batch may hold: refused before any is looked at. */
	{
		static const struct wire_carry *many[WIRE_RECV_BATCH * WIRE_PACK_MAX + 1];
		static int mfds[WIRE_RECV_BATCH * WIRE_PACK_MAX + 1];

		for (unsigned i = 0; i < WIRE_RECV_BATCH * WIRE_PACK_MAX + 1; i++)
			many[i] = &c[0], mfds[i] = p[0];
		errno = 0;
		UNIT_CHECK(wire_send_carries(sp[0], many, mfds, WIRE_RECV_BATCH * WIRE_PACK_MAX + 1) ==
		    -1 && errno == EINVAL);
	}
	errno = 0;
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == -1 && errno == EAGAIN);
out:
	close_batch(fds);
	close_all(sp, 2);
	close_all(p, 2);
}

/*
 * A zero-length record that brings descriptors is a bad record, not the peer's EOF:
 * refused with its fds closed, and the records after it still read (found by
 * fuzz_wire: read as EOF, its fds stayed open and unseen).
 */
static void
case_empty_with_fds(void)
{
	static struct wire_carry c;
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 }, one[2] = { -1, -1 };
	unsigned nfds[WIRE_RECV_BATCH], n = 2;
	int res[WIRE_RECV_BATCH], before, r;

	empty_batch(fds);
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	memset(&c, 0, sizeof(c));
	c.version = WIRE_VERSION;
	c.type = WIRE_CTL_MOVE;
	c.size = WIRE_CARRY_HEAD;
	UNIT_CHECK(send_raw(sp[0], "", 0, p[0], 2) == 0);
	UNIT_CHECK(wire_send_carry(sp[0], &c, p[1]) == 0);
	before = unit_fd_count();
	r = wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH);
	UNIT_CHECKF(r == 2, "got %d", r);
	UNIT_CHECK(res[0] == -1 && nfds[0] == 0 && res[1] == 1 && nfds[1] == 1 &&
	    same_object(fds[1][0], p[1]));
	UNIT_CHECK(unit_fd_count() == before + 1);
	close_all(fds[1], 1);
	/* The same for the one-record reader. */
	UNIT_CHECK(send_raw(sp[0], "", 0, p[0], 2) == 0);
	before = unit_fd_count();
	errno = 0;
	UNIT_CHECK(wire_recv_msg(sp[1], &m[0], one, &n) == -1 && errno == EPROTO && n == 0);
	UNIT_CHECK(unit_fd_count() == before);
	/* Without fds it still reads as the EOF it may be. */
	close_all(sp, 1);
	UNIT_CHECK(wire_recv_batch(sp[1], m, fds, nfds, res, WIRE_RECV_BATCH) == 0);
out:
	close_batch(fds);
	close_all(sp, 2);
	close_all(p, 2);
}

/* Packed records that break one rule each: refused whole, every fd closed. */
static void
case_packed_bad(void)
{
	/* Twice a record: each carry pointer then has its whole struct inside. */
	static union { struct wire_carry c[2]; char b[2 * sizeof(struct wire_carry)]; } rec;
	static union wire_msg m;
	int sp[2] = { -1, -1 }, p[2] = { -1, -1 }, got[WIRE_MAX_FDS];
	const size_t one = WIRE_CARRY_HEAD + 4, step = (one + WIRE_CARRY_ALIGN - 1) &
	    ~(size_t)(WIRE_CARRY_ALIGN - 1);

	for (int i = 0; i < WIRE_MAX_FDS; i++)
		got[i] = -1;
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
	UNIT_CHECK(pipe2(p, O_CLOEXEC) == 0);
	for (int k = 0; k < 8; k++) {
		unsigned ncarry = 2, nfd = 2, n = WIRE_MAX_FDS;
		size_t len;
		int before;

		memset(&rec, 0, sizeof(rec));
		if (k == 5)
			ncarry = nfd = WIRE_PACK_MAX + 1;
		for (unsigned i = 0; i < ncarry; i++) {
			struct wire_carry *c = (void *)(rec.b + i * step);

			c->version = WIRE_VERSION;
			c->type = WIRE_CTL_MOVE;
			c->nbytes = 4;
			c->size = (uint32_t)one;
			c->flags = i + 1 < ncarry ? WIRE_CARRY_MORE : 0;
		}
		len = step * (ncarry - 1) + one;
		switch (k) {
		case 0: nfd = 1; break;                   /* a carry without its fd */
		case 1: nfd = 3; break;                   /* an fd without its carry */
		case 2: ((struct wire_carry *)(rec.b + step))->type = WIRE_CTL_ROUTED; break;
		case 3: len -= 1; break;                  /* the last one cut short */
		case 4: len += 8; break;                  /* bytes after the last */
		case 5: break;                            /* one past WIRE_PACK_MAX */
		case 6: ((struct wire_carry *)(rec.b + step))->strip = 1; break; /* a bad second */
		case 7: ((struct wire_carry *)rec.b)->flags = 0; break; /* a first without MORE */
		}
		UNIT_CHECK(send_raw(sp[0], rec.b, len, p[0], nfd) == 0);
		before = unit_fd_count();
		errno = 0;
		UNIT_CHECKF(wire_recv_msg(sp[1], &m, got, &n) == -1 && errno == EPROTO && n == 0,
		    "case %d accepted", k);
		UNIT_CHECKF(unit_fd_count() == before, "case %d leaked an fd", k);
	}
	/* Refused in a batch, a record of carries counts the connections it meant to
	 * bring (the receiver's books), none of its fds left open. */
	{
		static union wire_msg mb[WIRE_RECV_BATCH];
		static int bfds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
		unsigned bn[WIRE_RECV_BATCH];
		int bres[WIRE_RECV_BATCH], before;

		memset(&rec, 0, sizeof(rec));
		for (unsigned i = 0; i < 3; i++) {
			struct wire_carry *c = (void *)(rec.b + i * step);

			c->version = WIRE_VERSION;
			c->type = WIRE_CTL_ROUTED;
			c->nbytes = 4;
			c->size = (uint32_t)one;
			c->flags = i + 1 < 3 ? WIRE_CARRY_MORE : 0;
		}
		UNIT_CHECK(send_raw(sp[0], rec.b, 2 * step + one, p[0], 2) == 0);   /* one fd short */
		before = unit_fd_count();
		UNIT_CHECK(wire_recv_batch(sp[1], mb, bfds, bn, bres, WIRE_RECV_BATCH) == 1);
		UNIT_CHECKF(bres[0] == -1 && bn[0] == 3 && bfds[0][0] == -1, "res %d meant %u",
		    bres[0], bn[0]);
		UNIT_CHECK(unit_fd_count() == before);
	}
	/* The same record, unbroken, is taken with both fds. */
	{
		unsigned n = WIRE_MAX_FDS;
		size_t len = step + one;

		memset(&rec, 0, sizeof(rec));
		for (unsigned i = 0; i < 2; i++) {
			struct wire_carry *c = (void *)(rec.b + i * step);

			c->version = WIRE_VERSION;
			c->type = WIRE_CTL_MOVE;
			c->nbytes = 4;
			c->size = (uint32_t)one;
			c->flags = i == 0 ? WIRE_CARRY_MORE : 0;
		}
		UNIT_CHECK(send_raw(sp[0], rec.b, len, p[0], 2) == 0);
		UNIT_CHECK(wire_recv_msg(sp[1], &m, got, &n) == 1 && n == 2);
		UNIT_CHECK(wire_carry_next(&m.carry) != NULL &&
		    wire_carry_next(wire_carry_next(&m.carry)) == NULL);
		close_all(got, n);
	}
out:
	close_all(got, WIRE_MAX_FDS);
	close_all(sp, 2);
	close_all(p, 2);
}

int
main(int argc, char **argv)
{
	int before, after;

	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	before = unit_fd_count();
	unit_run("conn_fds", case_conn_fds);
	unit_run("conn_max_fds", case_conn_max);
	unit_run("retire_round_trip", case_retire);
	unit_run("bad_version_rejected", case_bad_version);
	unit_run("bad_type_rejected", case_bad_type);
	unit_run("retire_with_fds_rejected", case_retire_with_fds);
	unit_run("too_many_fds_rejected", case_too_many_fds);
	unit_run("short_ctl_rejected", case_short_ctl);
	unit_run("config_round_trip", case_config);
	unit_run("config_refused", case_config_bad);
	unit_run("status_round_trip", case_status);
	unit_run("status_short_or_foreign", case_status_bad);
	unit_run("reason_names", case_reason_names);
	unit_run("carry_round_trip", case_carry);
	unit_run("carry_refused", case_carry_bad);
	unit_run("recv_batch", case_recv_batch);
	unit_run("recv_batch_fds", case_recv_batch_fds);
	unit_run("send_carries", case_send_carries);
	unit_run("packed_refused", case_packed_bad);
	unit_run("empty_record_with_fds_refused", case_empty_with_fds);
	unit_run("board_shared", case_board);
	unit_run("board_map_checks", case_board_bad);
	after = unit_fd_count();
	unit_result("no_fd_leak", before == after ? NULL : "fd count changed across the cases");
	return unit_exit();
}
