/*
 * supervisor.h - the supervisor's shared types: workers, pools (one per function and
 * generation) and listeners, and the calls between its modules.
 *
 *   main.c       signals, config, start/reload/stop orchestration
 *   lifecycle.c  the worker state machine (the reaping rule lives here, only here)
 *   pool.c       pools: spawning, respawn backoff, readiness, counters
 *   dispatch.c   listeners, accept, and the hand-off of sockets to workers
 *   spawn.c      fork + exec of one worker (child.c: what a tenant process is told
 *                and does before exec; check.c: the library check, check.h)
 *   limits.c     the once-a-second look at every worker's CPU, memory and age
 */
#ifndef SV_SUPERVISOR_H
#define SV_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>
#include "../common/list.h"
#include <sys/types.h>

#include "../common/board.h"
#include "../common/wire.h"
#include "config.h"

struct event;
struct event_base;

/* Accepted connections held while no worker is ready (start, respawn). */
#define POOL_PENDING_MAX 1024

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

struct pool;

struct worker {
	TAILQ_ENTRY(worker) w_entry;
	struct pool *w_pool;
	uint32_t w_id;              /* unique within the function, names its cgroup */
	uint32_t w_gen;
	pid_t w_pid;
	enum wstate w_state;
	int w_ctl;                  /* our end of the SEQPACKET socketpair */
	int w_status;               /* read end of the status pipe */
	struct event *w_status_ev;
	struct event *w_timer;      /* start, drain or kill deadline */
	struct board *w_board;      /* shared scoreboard (mapped) */
	uint32_t w_board_slots;     /* its size as we made it: the worker can write the header */
	uint64_t w_sent;            /* connections handed over */
	uint64_t w_spawned_ms;
	uint32_t w_reason;          /* why it is leaving (enum wire_reason) */
	bool w_sigterm_sent;
	bool w_drained;             /* it reported DRAINED */
	bool w_used;                /* per_request/oneshot: took its connection */
	bool w_replaced;            /* a replacement was started for it */
	bool w_unreachable;         /* a hand-off failed for good: it is dying */
	bool w_full;                /* its hand-off queue was full this round */
	int w_exit_status;          /* from waitpid */
	unsigned w_nbatch;          /* fds waiting to be sent in one message */
	int w_batch[WIRE_MAX_FDS];
	char w_cgroup[256];         /* "" when cgroups are off */
	struct wire_counts w_final; /* counts when it left */
	/* Hang detection (limits.c): the scoreboard's progress when last seen moving,
	 * and since when hand-offs have sat unread in its ctl socket with no progress. */
	uint64_t w_prog_requests;
	uint64_t w_prog_closed;
	uint64_t w_stall_ms;        /* 0 = not stalled */
	uint64_t w_idle_since_ms;   /* idle_worker_ms: when it was last seen busy */
	uint64_t w_idle_requests;
	bool w_was_ready;           /* reached READY once (a hung init is a crash) */
	bool w_dead;                /* reaped: replaying its last records only */
};
TAILQ_HEAD(worker_list, worker);

/* Totals of a function that outlive its workers (kept across generations). */
struct fn_totals {
	TAILQ_ENTRY(fn_totals) t_entry;
	char name[40];
	uint32_t next_wid;          /* worker ids are unique per function, all generations */
	uint64_t requests;
	uint64_t tasks_started;
	uint64_t tasks_completed;
	uint64_t tasks_failed;
	uint64_t tasks_lost;
	uint64_t crashes;
	uint64_t unloads[WIRE_REASON_MAX];
};

struct pool {
	TAILQ_ENTRY(pool) p_entry;
	struct fn_conf *p_conf;     /* owned by p_owner, the generation's config */
	struct sv_conf *p_owner;
	uint32_t p_gen;
	bool p_retiring;            /* an old generation: drain, never respawn */
	bool p_failed;              /* workers crash at start: stop spinning */
	struct worker_list p_workers;
	struct fn_totals *p_totals; /* shared by every generation of this function */
	uint32_t p_crash_streak;    /* crashes before ready, for backoff */
	uint64_t p_next_spawn_ms;
	struct event *p_spawn_ev;   /* deferred (backed-off) respawn */
	int *p_pending;             /* accepted fds waiting for a ready worker */
	unsigned p_npending;
};
TAILQ_HEAD(pool_list, pool);

/* The supervisor's one state (a daemon has one). */
struct sv {
	struct event_base *base;
	struct sv_conf *conf;
	const char *conf_path;
	const char *worker_path;
	uint32_t gen;
	uint32_t ready_gen;         /* the newest generation that was all ready */
	struct pool_list pools;     /* every live pool, old generations included */
	bool stopping;
	bool fast;
	bool announced_ready;       /* ev=ready sent for the current generation */
	uint64_t started_ms;
	int exit_code;
};
extern struct sv sv;

/* lifecycle.c */
const char *wstate_name(enum wstate s);
/* Moves W to TO after checking the transition table; logs it. Returns 0, or -1 (and
 * logs an error) for a transition the table does not allow. */
int worker_set_state(struct worker *w, enum wstate to, const char *why);
/* READY or STARTING -> DRAINING: no new work, RETIRE sent with REASON. */
void worker_retire(struct worker *w, uint32_t reason);
/* -> TERMINATING: SIGTERM carrying REASON via sigqueue, SIGKILL after the grace. */
void worker_terminate(struct worker *w, uint32_t reason);
/* A status record arrived from W. */
void worker_on_status(struct worker *w, const struct wire_status *st);
/* waitpid() reported W gone with STATUS. Frees W. */
void worker_on_exit(struct worker *w, int status);
bool worker_is_live(const struct worker *w);
/* The child exists: arm its start deadline. */
void worker_started(struct worker *w);

/* pool.c */
struct pool *pool_new(struct sv_conf *owner, struct fn_conf *conf, uint32_t gen);
/* Totals of function NAME across generations (created on first use). */
struct fn_totals *pool_totals(const char *name);
int pool_start(struct pool *p);
/* Starts one worker in P; returns it or NULL. */
struct worker *pool_spawn(struct pool *p);
/* Keeps P at its size of ready (or starting) workers; spawns with backoff. */
void pool_fill(struct pool *p);
/* The pool has no worker left and is retiring: frees it. */
void pool_maybe_free(struct pool *p);
void pool_retire(struct pool *p, uint32_t reason);
struct pool *pool_current(const char *fn);
struct worker *pool_find_pid(pid_t pid);
/* Some worker of P is starting (a held connection will find it). */
bool pool_starting(const struct pool *p);
void pool_worker_ready(struct worker *w);
void pool_worker_gone(struct worker *w, bool crashed_before_ready);
bool pools_ready(uint32_t gen);
unsigned pools_live_workers(void);
/* Summary lines at exit. */
void pools_log_summary(void);

/* main.c: a worker became ready / a pool emptied: see whether start, reload or
 * stop can move on. */
void sv_check_ready(void);
void sv_check_stopped(void);
/* What the admin endpoint and signals ask for (main.c). */
void sv_reload(void);
void sv_stop(bool fast);
/* Replaces every worker of function NAME: fresh ones start, the old ones drain.
 * Returns 0, or -1 when there is no such function. */
int sv_drain_function(const char *name);

/* dispatch.c */
int dispatch_listen(struct sv_conf *conf, char *err, size_t errlen);
/* Points every listener at the current pool of its function; closes stale ones. */
void dispatch_bind_pools(void);
void dispatch_close_all(void);
/* Hands queued connections to W's pool now that W is ready. */
void dispatch_flush_pending(struct pool *p);
/* P cannot serve them (failed): every held connection hears 503. */
void dispatch_reject_pending(struct pool *p);
/* Worker W stops taking work: send it nothing more. */
uint64_t worker_load(const struct worker *w);

/* spawn.c */
/* Forks and execs the worker for W (W's fds and board prepared here). */
int spawn_worker(struct worker *w);
/* check.c: loads FC's library in a throw-away worker as the tenant, waiting for it
 * on a private loop (LIB_CHECK_TIMEOUT_MS); 0, or -1 and ERR says why. Kept until
 * main.c starts checks with lib_check_start (check.h). */
int spawn_check_library(const struct fn_conf *fc, const char *worker_path, char *err,
    size_t errlen);

/* limits.c */
void limits_start(void);
void limits_stop(void);

#endif
