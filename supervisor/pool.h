/*
 * pool.h - a function's pool of workers for one config generation, and the list of
 * every live pool.
 *
 * pool.c owns struct pool and the pool list: creating pools, keeping them at size
 * through a paced spawner (one spawn per loop turn, and at most a few workers
 * starting at once: start slots, so starting 500 workers never holds the loop nor
 * takes the CPUs from the tenants that serve), respawn backoff after crashes, and the function totals that
 * outlive workers and generations. It starts and retires workers (spawn.c,
 * lifecycle.c) and never calls up: the orchestrator tells it what happened.
 */
#ifndef SV_POOL_H
#define SV_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/list.h"
#include "config.h"
#include "lifecycle.h"
#include "totals.h"

struct event;
struct event_base;

/* Accepted connections held while no worker is ready (cold start, respawn). */
#define POOL_PENDING_MAX 1024
_Static_assert(POOL_PENDING_MAX == CONF_MAX_QUEUED, "max_queued is bounded by the held array");

struct held_conn {
	int fd;
	uint64_t since_ms;          /* when it was accepted */
	struct dispatch_carry *carry; /* a routed connection's extras (dispatch.h), or NULL */
	bool admit;                 /* held by the admission gate (max_concurrency reached:
	                             * queue_timeout_ms), not for a worker (cold_wait_ms) */
};

/* A pool's workers by state, counted in one pass. */
struct pool_counts {
	unsigned starting;
	unsigned ready;             /* ready and free: not used up, no replacement asked */
	unsigned leaving;           /* draining, drained, terminating */
	unsigned live;              /* all of the above, and used or replaced ready ones */
	uint64_t min_load;          /* the least-loaded free ready worker's connections + tasks */
};

struct pool {
	TAILQ_ENTRY(pool) p_entry;
	TAILQ_ENTRY(pool) p_fn_entry;   /* in p_totals->t_pools: its function's pools */
	TAILQ_ENTRY(pool) p_fill_entry; /* in the spawner's queue while p_fill_queued */
	TAILQ_ENTRY(pool) p_retire_entry; /* its workers still to be told (p_retire_queued) */
	const struct fn_conf *p_conf;   /* owned by p_owner, the generation's config */
	struct sv_conf *p_owner;
	uint32_t p_gen;
	bool p_retiring;            /* leaving: drain, never respawn */
	bool p_failed;              /* workers crash at start: stop spinning */
	bool p_fill_queued;
	bool p_retire_queued;       /* retiring: its workers are told a few pools a turn */
	uint32_t p_retire_reason;
	bool p_cgroup;              /* its function cgroup exists (made with the first worker) */
	bool p_durable_due;         /* durable tasks are due: at least one worker (durable_watch.c) */
	struct worker_list p_workers; /* live ones, and reaped ones until the orchestrator frees them */
	struct fn_totals *p_totals; /* shared by every generation of this function */
	uint32_t p_crash_streak;    /* crashes before ready, for backoff */
	uint64_t p_next_spawn_ms;
	uint64_t p_scaled_down_ms;  /* when it last shrank for idleness (0 = never) */
	struct event *p_spawn_ev;   /* deferred (backed-off) respawn */
	struct held_conn *p_pending; /* accepted fds waiting for a ready worker (grown on use) */
	unsigned p_npending, p_pending_cap;
	unsigned p_nadmit;          /* of those, held by the admission gate (dispatch.c) */
	TAILQ_ENTRY(pool) p_wait_entry; /* in pools_waiting while p_waiting */
	bool p_waiting;
	uint64_t p_refuse_win_us;   /* refusal pacing (dispatch.c): the current window's start */
	unsigned p_refuse_n;        /* and the refusals answered at once in it */
};
TAILQ_HEAD(pool_list, pool);

/* Every live pool, old generations included (read by dispatch, limits, admin). */
extern struct pool_list pools;
/* Pools with connections held by the admission gate, in dispatch.c's round-robin
 * order (dispatch.c links and unlinks them; pool_free unlinks a pool still in it). */
extern struct pool_list pools_waiting;

int pool_init(struct event_base *base);
void pool_shutdown(void);
struct pool *pool_new(struct sv_conf *owner, const struct fn_conf *conf, uint32_t gen);
/* A reload kept P's function as it was: P and its workers now belong to OWNER's
 * generation GEN, with CONF (equal to the old one) as their config. */
void pool_adopt(struct pool *p, struct sv_conf *owner, const struct fn_conf *conf, uint32_t gen);
/* Totals of function NAME across generations (created on first use). */
struct fn_totals *pool_totals(const char *name);
/* The record of function NAME if it has one (never creates): its t_pools lists its
 * live pools (iterate with p_fn_entry). */
struct fn_totals *pool_function(const char *name);
/* Asks the spawner to bring P to its size (ready or starting workers); with backoff
 * after crashes. Never forks inside this call. */
void pool_fill(struct pool *p);
/*
 * Retires P: it takes nothing new and never respawns from now on; its workers are
 * told to drain from the next loop turn on, a few every few ms (RETIRE_BURST per
 * RETIRE_PACE_US; FAST: all terminated now). A 500-function reload retires 500 pools at its switch-over: told
 * in one callback, they held every other tenant's connections ~70 ms. P is freed
 * once empty.
 */
void pool_retire(struct pool *p, uint32_t reason, bool fast);
/* P has no worker left: frees it (its held connections must be gone: dispatch). */
void pool_free(struct pool *p);
/* W became ready: its pool's crash streak ends. */
void pool_worker_ready(struct worker *w);
/* Reaped W leaves its pool and is freed. Returns true when that marked the pool
 * failed (too many crashes before ready). */
bool pool_worker_gone(struct worker *w, bool crashed_before_ready);
/*
 * The pool that takes FN's new connections: the newest generation up to READY_GEN
 * (during a reload the old one serves until the new one is ready), else the newest
 * one (a function a reload added, or the first start); a failed pool only when
 * nothing else is left.
 */
struct pool *pool_current(const char *fn, uint32_t ready_gen);
struct worker *pool_find_pid(pid_t pid);
/* A worker of P is starting or about to be (a held connection will find it). */
bool pool_starting(const struct pool *p);
void pool_count(const struct pool *p, struct pool_counts *c);
/* How many live workers P wants now: min_workers, more while connections wait or its
 * ready workers are loaded past scale_target, never above max_workers. */
unsigned pool_want(const struct pool *p);
/* Holds FD for P's next ready worker; -1 when the queue is full. */
int pool_hold(struct pool *p, int fd, uint64_t now_ms);
/* The same, held by the admission gate (counted in p_nadmit). */
int pool_hold_admit(struct pool *p, int fd, uint64_t since_ms);
/* Connections handed to P's live workers and not yet closed by them: what the
 * admission gate counts against max_concurrency. */
uint64_t pool_in_flight(const struct pool *p);
/* The held connections were handed on: frees their array if none is left. */
void pool_hold_done(struct pool *p);
/* W's function scaled down: no replacement (counted). */
void pool_scaled_down(struct worker *w);
/* Every pool of generation GEN has min_workers ready (failed ones excepted). */
bool pools_ready(uint32_t gen);
unsigned pools_live_workers(void);
/* Summary lines at exit; frees the totals. */
void pools_log_summary(void);

#endif
