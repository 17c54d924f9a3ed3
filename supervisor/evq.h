/*
 * evq.h - the supervisor's event queue: how lower modules tell the orchestrator what
 * happened without calling it.
 *
 * lifecycle.c, dispatch.c and limits.c push events and return; the orchestrator
 * (orch.c) is the only consumer, and it runs them from a libevent callback of its
 * own, after the callback that pushed them has returned. So no module ever calls up
 * into the orchestrator, and no decision runs inside a caller whose objects it may
 * free (a pool freed while a worker's exit handler still walks it). Events are kept
 * in push order.
 */
#ifndef SV_EVQ_H
#define SV_EVQ_H

#include <stdint.h>

struct event_base;
struct pool;
struct worker;

enum evq_type {
	EVQ_WORKER_READY = 1,  /* W reported ready (it is READY now) */
	EVQ_WORKER_GONE,       /* W was reaped (EXITED or CRASHED); arg: 1 = it never became ready */
	EVQ_POOL_FILL,         /* P may be below size (a worker left, was used, or is leaving) */
	EVQ_DURABLE_DUE,       /* P's function has durable tasks due (arg 1) or none now (0) */
	EVQ_WORKER_MOVED,      /* W's control socket is readable: routed connections given back */
};

struct evq_item {
	enum evq_type type;
	struct pool *pool;
	struct worker *worker;
	uint32_t arg;
};

typedef void (*evq_handler)(const struct evq_item *it);

/* Sets up the queue on BASE; HANDLER gets every event, in order. 0 or -1. */
int evq_init(struct event_base *base, evq_handler handler);
void evq_shutdown(void);
/* Queues one event. The objects it names stay valid until it is handled: only the
 * orchestrator frees workers and pools, and only while handling events. */
void evq_push(enum evq_type type, struct pool *p, struct worker *w, uint32_t arg);
/* Handles every queued event now (the orchestrator, e.g. before it exits). */
void evq_run(void);

#endif
