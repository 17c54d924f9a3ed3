/*
 * wire.h - the one wire format between the supervisor and its workers.
 *
 * Two channels and a shared page per worker, all set up by the supervisor before
 * exec and found by the worker on fixed descriptors (argv carries nothing but the
 * program name):
 *   WIRE_CTL_FD     SOCK_SEQPACKET socketpair, supervisor -> worker. The first
 *                   message is one struct wire_config (everything the worker is
 *                   told: function, library, limits, policy), queued before fork so
 *                   it is there when the worker starts. Every later message is one
 *                   struct wire_ctl plus, for WIRE_CTL_CONN, up to WIRE_MAX_FDS
 *                   accepted sockets in one SCM_RIGHTS control message, or up to
 *                   WIRE_PACK_MAX struct wire_carry with a socket each
 *                   (WIRE_CTL_ROUTED). The worker sends one way only:
 *                   WIRE_CTL_MOVE, routed connections it gives back (next
 *                   request for another route), packed the same way.
 *   WIRE_STATUS_FD  pipe, worker -> supervisor. Fixed-size struct wire_status
 *                   records; sizeof <= PIPE_BUF so every write is atomic.
 *   WIRE_BOARD_FD   memfd holding the worker's scoreboard (see board.h).
 * Every record starts with the version; a peer with another version is refused.
 */
#ifndef EV_WIRE_H
#define EV_WIRE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 4   /* 2: the worker is configured by a wire_config record, not argv;
                          * 3: it carries the fetch and WebSocket caps and the
                          *    durable-task settings; routed connections travel with
                          *    their unread bytes (wire_carry) both ways;
                          * 4: one record may hold several carries (WIRE_CARRY_MORE) */

#define WIRE_CTL_FD    3
#define WIRE_STATUS_FD 4
#define WIRE_BOARD_FD  5

/* Most fds one hand-off message carries: a deep accept backlog costs one sendmsg. */
#define WIRE_MAX_FDS 32

/* Why a worker is asked to leave; also the beforeunload reason. */
enum wire_reason {
	WIRE_REASON_NONE = 0,
	WIRE_REASON_CPU,
	WIRE_REASON_MEMORY,
	WIRE_REASON_WALL_CLOCK,
	WIRE_REASON_EARLY_DROP,
	WIRE_REASON_TERMINATION,
	WIRE_REASON_MAX
};

enum wire_ctl_type {
	WIRE_CTL_CONN = 1,   /* fds attached: accepted client sockets */
	WIRE_CTL_RETIRE = 2, /* stop taking work, drain, report DRAINED; arg = reason */
	WIRE_CTL_CONFIG = 3, /* struct wire_config: the first message, and only then */
	WIRE_CTL_ROUTED = 4, /* wire_carry + 1 fd, packed: connections from a shared listener */
	WIRE_CTL_MOVE = 5,   /* worker -> supervisor, wire_carry + 1 fd, packed: given back */
	WIRE_CTL_ROUTES = 6, /* the shared listeners' routes changed; arg = their new epoch */
};

/* How the worker's life relates to its connections (the config's "policy"). */
enum wire_policy {
	WIRE_POLICY_PER_WORKER = 0,
	WIRE_POLICY_PER_REQUEST,
	WIRE_POLICY_ONESHOT,
	WIRE_POLICY_MAX
};

/* wire_config.flags */
#define WIRE_CFG_CHECK_ONLY 0x1u  /* load the library, check it, print "ok", exit; no init */
#define WIRE_CFG_FLAGS      WIRE_CFG_CHECK_ONLY

/*
 * The worker's syscall filter (worker/sandbox.c), as the supervisor resolved it
 * from the function's "seccomp" (supervisor/seccomp_profile.c): each rule one
 * syscall number of seccomp_arch and how it is refused. The denial counts in the
 * scoreboard are indexed like the rules.
 */
#define WIRE_SECCOMP_MAX 128
enum wire_sc_kind {
	WIRE_SC_ALWAYS = 0,      /* every call: EPERM, counted */
	WIRE_SC_CLONE_NS,        /* only with a CLONE_NEW* flag in arg 0: EPERM, counted */
	WIRE_SC_PERSONALITY,     /* anything but the query personality(0xffffffff) */
	WIRE_SC_ENOSYS,          /* ENOSYS, not counted: clone3, whose flags a filter
	                          * cannot read; glibc falls back to clone */
	WIRE_SC_KIND_MAX
};
struct wire_syscall {
	int32_t nr;
	uint32_t kind;           /* enum wire_sc_kind */
};

#define WIRE_NAME_LEN 64    /* function names are [A-Za-z0-9_-]{1,32} */
#define WIRE_PATH_LEN 4096  /* fixed here, not PATH_MAX: the record's size is the format */

/*
 * A function's durable tasks (its "durable" config, worker/durable.c), resolved by
 * the supervisor: every number >= 1 when the backend is not OFF.
 */
enum wire_durable_backend {
	WIRE_DURABLE_OFF = 0,
	WIRE_DURABLE_LOCAL,          /* PATH: the SQLite journal, in a 0700 dir of the uid */
	WIRE_DURABLE_POSTGRESQL,     /* PATH: the connection string itself, read by the
	                              * supervisor from the root-only dsn_file */
	WIRE_DURABLE_MAX
};
struct wire_durable {
	uint32_t backend;            /* enum wire_durable_backend */
	uint32_t lease_ms;           /* a claimed attempt's lease, renewed at a third */
	uint32_t retry_base_ms;      /* backoff after the first failed attempt */
	uint32_t retry_max_ms;       /* backoff cap */
	uint32_t concurrency;        /* attempts running at once per worker */
	uint32_t idem_window_ms;     /* a done task's idempotency key holds this long */
	uint64_t max_bytes;          /* the function's journal cap; 0 = none */
	char path[WIRE_PATH_LEN];
};

/*
 * The worker's whole configuration, the first message on WIRE_CTL_FD. Strings are
 * fixed-size and must be NUL-terminated inside their field; numbers are the limits
 * as the supervisor resolved them (max_requests already carries its per-worker
 * jitter). wire_recv_config refuses anything it cannot take as it is.
 */
struct wire_config {
	uint16_t version;
	uint16_t type;               /* WIRE_CTL_CONFIG */
	uint32_t size;               /* sizeof(struct wire_config) */
	uint32_t worker_id;          /* unique within the function; names its cgroup */
	uint32_t policy;             /* enum wire_policy */
	uint32_t flags;              /* WIRE_CFG_* */
	uint32_t log_level;          /* enum log_level (log.h): 0 error .. 3 debug */
	uint32_t request_timeout_ms; /* >= 1 */
	uint32_t idle_timeout_ms;    /* >= 1 */
	uint32_t max_header_bytes;   /* WIRE_HEADER_MIN .. WIRE_HEADER_MAX */
	uint32_t max_body_bytes;
	uint32_t max_requests;       /* 0 = never recycle */
	uint32_t max_pending_tasks;  /* >= 1 */
	uint32_t task_threads;       /* 1 .. WIRE_THREADS_MAX */
	uint32_t grace_ms;           /* beforeunload grace before SIGKILL */
	char name[WIRE_NAME_LEN];    /* the function */
	char library[WIRE_PATH_LEN]; /* its .so */
	/* The cgroup.procs file listing every process of the worker's own cgroup
	 * (given by supervisor/cgroup.c, v1 or v2), "" when cgroups are off: on its
	 * way out the worker kills whatever else is in it. */
	char cgroup_procs[WIRE_PATH_LEN];
	uint32_t seccomp;            /* 0: no filter; 1: install seccomp_rules */
	uint32_t seccomp_arch;       /* AUDIT_ARCH_* the numbers are for (0 when off) */
	uint32_t seccomp_n;          /* rules used; the rest must be zero */
	uint32_t seccomp_pad;
	struct wire_syscall seccomp_rules[WIRE_SECCOMP_MAX];
	/* edge_fetch and WebSocket caps (the limits keys of the same names). */
	uint32_t fetch_max_concurrent;     /* >= 1 */
	uint32_t fetch_max_queued;
	uint32_t fetch_max_response_bytes; /* >= 1 */
	uint32_t ws_max_message_bytes;     /* >= 1 */
	uint32_t ws_max_buffer_bytes;      /* >= 1 */
	struct wire_durable durable; /* durable tasks; backend WIRE_DURABLE_OFF = none */
};

#define WIRE_HEADER_MIN  1024u
#define WIRE_HEADER_MAX  1048576u
#define WIRE_THREADS_MAX 256u
#define WIRE_LOG_LEVEL_MAX 3u

struct wire_ctl {
	uint16_t version;
	uint16_t type;
	uint32_t arg;          /* RETIRE: enum wire_reason */
	uint32_t deadline_ms;  /* RETIRE: ms until the supervisor escalates to SIGTERM */
	uint32_t nfds;         /* CONN: number of fds in the control message */
};

/*
 * A connection of a shared listener with the bytes already read from it. ROUTED
 * (supervisor -> worker): the worker parses BYTES before it reads the socket, and
 * the function sees the first request's path without its first STRIP bytes. MOVE
 * (worker -> supervisor): every earlier response is written; BYTES are what the
 * worker read and did not consume (the next request's head, pipelined data), STRIP 0.
 * Sent as WIRE_CARRY_HEAD + nbytes bytes; size says the same.
 *
 * PACKED: one record holds up to WIRE_PACK_MAX carries of one type, each but the
 * last flagged WIRE_CARRY_MORE, the next starting at the first WIRE_CARRY_ALIGN
 * boundary after it (wire_carry_next), the record's fds one per carry in order,
 * and the whole no longer than sizeof(struct wire_carry). Every move pays a record's
 * cost (an skb, the fd list, a wakeup) - the larger part of the cost of passing an
 * fd - so a loop turn's moves share one.
 *
 * STICKY (ROUTED only): the route that chose this worker takes every later request
 * on the connection whose Host is HOST (lower case, no port; WIRE_STICKY_NOHOST: no
 * Host at all) and whose path lies under PREFIX, as long as the routes' EPOCH is the
 * newest the worker heard of (WIRE_CTL_ROUTES). Such requests stay in the worker,
 * path stripped like the first; any other goes back (MOVE).
 */
#define WIRE_CARRY_MAX   65536u
#define WIRE_STRIP_MAX   4096u
#define WIRE_ROUTE_LEN   256u     /* = ROUTE_HOST_LEN = ROUTE_PATH_LEN */
#define WIRE_STICKY        0x1u
#define WIRE_STICKY_NOHOST 0x2u
#define WIRE_STICKY_FLAGS  (WIRE_STICKY | WIRE_STICKY_NOHOST)
#define WIRE_CARRY_MORE    0x1u   /* flags: another carry follows in this record */
#define WIRE_CARRY_ALIGN   8u
#define WIRE_PACK_MAX      8u
struct wire_carry {
	uint16_t version;
	uint16_t type;         /* WIRE_CTL_ROUTED or WIRE_CTL_MOVE */
	uint32_t size;         /* WIRE_CARRY_HEAD + nbytes */
	uint32_t listener;     /* the shared listener's id (ROUTED), echoed back (MOVE) */
	uint32_t strip;        /* ROUTED: path bytes the function does not see */
	uint32_t nbytes;       /* <= WIRE_CARRY_MAX */
	uint32_t flags;        /* WIRE_CARRY_MORE or 0 */
	uint32_t epoch;        /* ROUTED: the routes' epoch when this was decided */
	uint32_t sticky;       /* ROUTED: WIRE_STICKY_* (0 for MOVE) */
	char host[WIRE_ROUTE_LEN];   /* NUL-terminated; "" unless sticky */
	char prefix[WIRE_ROUTE_LEN]; /* NUL-terminated; "" unless sticky */
	char bytes[WIRE_CARRY_MAX];
};
#define WIRE_CARRY_HEAD offsetof(struct wire_carry, bytes)

/* Any message on WIRE_CTL_FD after the config; h.type says which member holds. */
union wire_msg {
	struct { uint16_t version, type; } h;
	struct wire_ctl ctl;
	struct wire_carry carry;
};

enum wire_status_type {
	WIRE_ST_READY = 1,     /* init ran; the worker takes connections */
	WIRE_ST_LIMIT = 2,     /* reason crossed: hard = 0 retire me, hard = 1 terminate me */
	WIRE_ST_DRAINED = 3,   /* no connection, no pending task: the worker exits now */
	WIRE_ST_INIT_FAILED = 4, /* library or init failed; the worker exits non-zero */
};

struct wire_counts {
	uint64_t requests;
	uint64_t tasks_started;
	uint64_t tasks_completed;
	uint64_t tasks_failed;
	uint64_t tasks_pending;
};

struct wire_status {
	uint16_t version;
	uint16_t type;
	uint32_t reason;       /* LIMIT: enum wire_reason */
	uint32_t hard;         /* LIMIT */
	uint32_t pad;
	struct wire_counts counts; /* DRAINED */
	char text[96];         /* INIT_FAILED: why, NUL-terminated */
};

_Static_assert(sizeof(struct wire_status) <= PIPE_BUF, "status record must be atomic");

const char *wire_reason_name(uint32_t reason);
/* Maps a name back to enum wire_reason; returns -1 for an unknown name. */
int wire_reason_parse(const char *name);

/*
 * Sends one control message with NFDS descriptors attached. Ownership: the fds stay
 * the caller's in every case; on success the caller closes its copies. Returns 0,
 * or -1 with errno (EAGAIN when the worker's queue is full).
 */
int wire_send_ctl(int sock, const struct wire_ctl *msg, const int *fds, unsigned nfds);

/*
 * Receives one control message. Descriptors arrive CLOEXEC and become the caller's
 * (at most *NFDS of them, into FDS); the header is checked (version, type, length,
 * MSG_CTRUNC, fd count agreeing with the header) before any descriptor is trusted,
 * and on any failure every received fd is closed. Returns 1 for a message, 0 at EOF,
 * -1 with errno (EAGAIN: nothing to read; EPROTO: malformed message).
 */
int wire_recv_ctl(int sock, struct wire_ctl *msg, int *fds, unsigned *nfds);

/* Sends C (ROUTED or MOVE, checked like its receiver checks it) with FD: the batch
 * below with one. The fd stays the caller's. Returns 0, or -1 with errno (EAGAIN:
 * queue full; EINVAL; EPROTO: sent short). */
int wire_send_carry(int sock, const struct wire_carry *c, int fd);

/*
 * Sends the N (<= WIRE_RECV_BATCH * WIRE_PACK_MAX) carries C[i], each with FDS[i],
 * packed: as few records as the size bound allows, in one sendmmsg, each carry
 * checked as its receiver checks it (the first bad one ends the batch; all must be
 * of one type). The carries' flags must be 0: the records get WIRE_CARRY_MORE as
 * they are sent, C is not written. The fds stay the caller's. Returns how many went,
 * in order (fewer than N: the rest did not go, e.g. the queue filled), or -1 with
 * errno when none did.
 */
int wire_send_carries(int sock, const struct wire_carry *const *c, const int *fds,
    unsigned n);

/*
 * Receives one message of any type but the config, like wire_recv_ctl: CONN and
 * RETIRE as there, ROUTES with no fd; ROUTED and MOVE a packed record of carries,
 * one fd each, every carry's size agreeing with the bytes received, nbytes <=
 * WIRE_CARRY_MAX, flags WIRE_CARRY_MORE on all but the last, strip <=
 * WIRE_STRIP_MAX, host and prefix terminated, known sticky flags (MOVE: strip,
 * sticky 0 and empty strings), all of the record's type. Anything else is EPROTO
 * with every received fd closed. At most *NFDS fds.
 */
int wire_recv_msg(int sock, union wire_msg *m, int *fds, unsigned *nfds);

/* The carry after C in a record wire_recv_msg or wire_recv_batch accepted, or NULL
 * when C is its last. */
const struct wire_carry *wire_carry_next(const struct wire_carry *c);

/*
 * Up to N (<= WIRE_RECV_BATCH) records in one call (recvmmsg), each checked as
 * wire_recv_msg checks one: RES[i] 1 with its NFDS[i] fds in FDS[i] (a CONN batch,
 * or a carry's each), or -1 (EPROTO, its fds closed; NFDS[i] 0, or for a record of
 * carries how many connections it meant to bring, at least 1: the receiver's load
 * books count them as lost). Returns how many
 * (fewer than N: none was left), 0 at EOF, -1 with errno (EAGAIN: nothing to read).
 * One syscall for every record the peer queued since the last read, none to learn
 * that it is empty.
 */
#define WIRE_RECV_BATCH 8
int wire_recv_batch(int sock, union wire_msg *m, int (*fds)[WIRE_MAX_FDS], unsigned *nfds,
    int *res, unsigned n);

/*
 * Sends the config record (no descriptors). Returns 0, or -1 with errno (EINVAL
 * when CFG would not pass wire_config_check: the sender is checked like the peer).
 */
int wire_send_config(int sock, const struct wire_config *cfg);

/*
 * Receives the config record, waiting for it unless SOCK is non-blocking. A
 * descriptor attached to it is closed (a config carries none) and the record
 * refused. Returns 1 for a valid record, 0 at EOF, -1 with errno (EPROTO: short,
 * long or foreign record, unterminated string, unknown policy or flag, a limit out
 * of range).
 */
int wire_recv_config(int sock, struct wire_config *cfg);

/* The checks wire_recv_config makes on a record of LEN bytes: 0, or -1 (EPROTO). */
int wire_config_check(const struct wire_config *cfg, size_t len);

const char *wire_policy_name(uint32_t policy);

/* Writes one status record (atomic, never partial). Returns 0 or -1 with errno. */
int wire_send_status(int fd, const struct wire_status *st);

/*
 * Reads one status record. Returns 1 for a record, 0 at EOF, -1 with errno
 * (EAGAIN, or EPROTO for a short or foreign record).
 */
int wire_recv_status(int fd, struct wire_status *st);

#endif
