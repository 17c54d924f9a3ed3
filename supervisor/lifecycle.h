/*
 * lifecycle.h - one worker process as the supervisor sees it, and its state machine.
 *
 * lifecycle.c owns struct worker's state and every transition: what each state does
 * on each event is one row of a state x event table (lifecycle.c), and the reaping
 * rule lives there only. It reports what the rest of the supervisor must know (a
 * worker became ready, needs a replacement, was reaped) as events on the queue
 * (evq.h) and never calls up. Its side effects on the process (the RETIRE message,
 * signals, timers) go through struct worker_ops, so the table is unit-tested with a
 * fake worker and no process (tests/unit/test_lifecycle.c).
 *
 *   starting -> ready -> draining -> drained -> exited
 *                 \          \-> terminating (SIGTERM + reason) -> exited
 *                  \-> terminating                      (SIGKILL after the grace)
 *   any live state -> crashed (it died on its own) -> a replacement is spawned
 */
#ifndef SV_LIFECYCLE_H
#define SV_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/board.h"
#include "../common/list.h"
#include "../common/wire.h"
#include "config.h"
#include "totals.h"

struct event;
struct event_base;
struct pool;

enum wstate {
	WS_STARTING = 0,
	WS_READY,
	WS_DRAINING,
	WS_DRAINED,
	WS_TERMINATING,
	WS_EXITED,
	WS_CRASHED,
	WS_MAX
};

/* What can happen to a worker: its status records, the supervisor's decisions, its
 * deadline timer, its exit. */
enum wevent {
	WE_READY = 0,      /* status: init ran */
	WE_LIMIT_SOFT,     /* status or limits.c: past the soft limit (reason) */
	WE_LIMIT_HARD,     /* status or limits.c: past the hard limit (reason) */
	WE_DRAINED,        /* status: no connection, no task left */
	WE_RETIRE,         /* supervisor: stop taking work and drain (reason) */
	WE_TERMINATE,      /* supervisor: SIGTERM now (reason) */
	WE_TIMER,          /* the deadline of the current state passed */
	WE_EXIT,           /* reaped (waitpid) */
	WE_MAX
};

struct dispatch_carry;

struct worker {
	TAILQ_ENTRY(worker) w_entry;
	TAILQ_ENTRY(worker) w_slot_entry; /* pool.c's start slots, while w_slot */
	bool w_slot;                /* holds one of pool.c's start slots */
	struct pool *w_pool;        /* its pool (the orchestrator's to use, not ours) */
	const struct fn_conf *w_conf; /* its function's config (kept current by pool.c) */
	struct fn_totals *w_totals; /* its function's totals (outlive the worker) */
	uint32_t w_id;              /* unique within the function, names its cgroup */
	uint32_t w_gen;             /* the generation that started it */
	pid_t w_pid;
	enum wstate w_state;
	int w_ctl;                  /* our end of the SEQPACKET socketpair */
	int w_status;               /* read end of the status pipe */
	struct event *w_status_ev;
	struct event *w_ctl_ev;      /* readable: it gives a routed connection back */
	struct event *w_timer;      /* the current state's deadline */
	struct board *w_board;      /* shared scoreboard (mapped; tenant-writable) */
	uint32_t w_board_slots;     /* its size as we made it: the worker can write the header */
	uint64_t w_sent;            /* connections handed over */
	uint64_t w_spawned_ms;
	uint32_t w_max_requests;    /* its recycling budget, jitter included (0 = none) */
	uint32_t w_reason;          /* why it is leaving (enum wire_reason) */
	bool w_used;                /* per_request/oneshot: took its connection */
	bool w_replaced;            /* a replacement was asked for it */
	bool w_unreachable;         /* a hand-off failed for good: it is dying */
	bool w_full;                /* its hand-off queue was full this round */
	bool w_was_ready;           /* reached READY once (a hung init is a crash) */
	bool w_dead;                /* reaped: replaying its last records only */
	unsigned w_nbatch;          /* fds waiting to be sent in one message */
	int w_batch[WIRE_MAX_FDS];
	/* Routed connections waiting for the end of a carry batch (dispatch.c), each
	 * with its bytes: sent together as one packed record. */
	unsigned w_ncarry;
	bool w_listed;              /* in dispatch.c's list of workers to flush */
	int w_carry_fd[WIRE_PACK_MAX];
	struct dispatch_carry *w_carry[WIRE_PACK_MAX];
	char w_cgroup[256];         /* "" when cgroups are off */
	/* Measured by the supervisor (limits.c), never read back from the scoreboard
	 * the tenant can write: these are the figures /status and /metrics report. */
	uint64_t w_cpu_ms;
	uint64_t w_rss_kb;
	/* Hang detection (limits.c): the scoreboard's progress when last seen moving,
	 * and since when hand-offs have sat unread in its ctl socket with no progress. */
	uint64_t w_prog_requests;
	uint64_t w_prog_closed;
	uint64_t w_stall_ms;        /* 0 = not stalled */
	uint64_t w_idle_since_ms;   /* idle_worker_ms: when it was last seen busy */
	uint64_t w_idle_requests;
};
TAILQ_HEAD(worker_list, worker);

/* What the table does to the world. The real ones signal the process and push
 * events; tests install fakes. */
struct worker_ops {
	/* RETIRE on the ctl socket; 0, or -1 when the worker cannot hear it. */
	int (*send_retire)(struct worker *w, uint32_t reason, uint32_t deadline_ms);
	/* SIGTERM carrying REASON (sigqueue), or SIGKILL when REASON is UINT32_MAX. */
	void (*signal)(struct worker *w, uint32_t reason);
	/* Arms the state's deadline in MS; 0 disarms it. */
	void (*arm)(struct worker *w, uint32_t ms);
	/* Tells the orchestrator (enum evq_type; ARG as in evq.h). */
	void (*report)(struct worker *w, int type, uint32_t arg);
};

/* How long a worker may take to report ready, and to exit after it drained. */
#define START_TIMEOUT_MS 10000
#define DRAINED_EXIT_MS  5000

const char *wstate_name(enum wstate s);
const char *wevent_name(enum wevent e);
bool worker_is_live(const struct worker *w);
/* The only way a worker changes state: runs the table's row for (state, EV); REASON
 * goes with LIMIT_*, RETIRE and TERMINATE. Returns 0, or -1 when the table ignores
 * the event in this state. */
int worker_event(struct worker *w, enum wevent ev, uint32_t reason);
/* Shorthands for the supervisor's decisions. */
void worker_retire(struct worker *w, uint32_t reason);
void worker_terminate(struct worker *w, uint32_t reason);
/* A status record from W's pipe. */
void worker_on_status(struct worker *w, const struct wire_status *st);
/* waitpid() reported W gone with STATUS: accounts for it (lost tasks, totals, OOM),
 * runs WE_EXIT and releases its fds, timers and cgroup. W stays allocated and on its
 * pool until the orchestrator handles EVQ_WORKER_GONE. */
void worker_on_exit(struct worker *w, int status);
/* The child exists and its channels are set: arm its start deadline. */
void worker_started(struct worker *w);
/* Connections open in W: what we sent minus what its scoreboard says it closed. */
uint64_t worker_load(const struct worker *w);
/* Replaces the ops (tests); NULL restores the real ones. */
void lifecycle_set_ops(const struct worker_ops *ops);
/* The loop timers are created on. */
void lifecycle_init(struct event_base *base);

#endif
