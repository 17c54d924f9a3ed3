/*
 * wire.h - the one wire format between the supervisor and its workers.
 *
 * Two channels per worker, both set up by the supervisor before exec and found by
 * the worker on fixed descriptors:
 *   WIRE_CTL_FD     SOCK_SEQPACKET socketpair, supervisor -> worker. One message is
 *                   one struct wire_ctl plus, for WIRE_CTL_CONN, up to WIRE_MAX_FDS
 *                   accepted sockets in one SCM_RIGHTS control message.
 *   WIRE_STATUS_FD  pipe, worker -> supervisor. Fixed-size struct wire_status
 *                   records; sizeof <= PIPE_BUF so every write is atomic.
 *   WIRE_BOARD_FD   memfd holding the worker's scoreboard (see scoreboard.h).
 * Every record starts with the version; a peer with another version is refused.
 */
#ifndef EV_WIRE_H
#define EV_WIRE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_VERSION 1

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
};

struct wire_ctl {
	uint16_t version;
	uint16_t type;
	uint32_t arg;          /* RETIRE: enum wire_reason */
	uint32_t deadline_ms;  /* RETIRE: ms until the supervisor escalates to SIGTERM */
	uint32_t nfds;         /* CONN: number of fds in the control message */
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

/* Writes one status record (atomic, never partial). Returns 0 or -1 with errno. */
int wire_send_status(int fd, const struct wire_status *st);

/*
 * Reads one status record. Returns 1 for a record, 0 at EOF, -1 with errno
 * (EAGAIN, or EPROTO for a short or foreign record).
 */
int wire_recv_status(int fd, struct wire_status *st);

#endif
