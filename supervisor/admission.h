/*
 * admission.h - a function's admission policy (max_concurrency, max_queued,
 * queue_timeout_ms): whether a new connection goes to a worker now, waits in the
 * supervisor or is refused; how many waiters may go; the refusal itself (503 +
 * Retry-After, counted and logged); waiters past their deadline.
 *
 * dispatch.c applies it: it owns the hand-off, the held queue's order and the tick
 * that serves waiters. This module only reads pools (pool_in_flight: the
 * scoreboards) and writes to the fds it is given to refuse, so it calls nothing
 * above it.
 */
#ifndef SV_ADMISSION_H
#define SV_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>

struct pool;

enum admission_verdict {
	ADMIT_GO,               /* below the cap (or none): to a worker */
	ADMIT_WAIT,             /* at the cap, room in the queue: hold it */
	ADMIT_REFUSE,           /* at the cap, max_queued wait already: 503 now */
};

/* FRESH: a connection not held before, which queues behind any that wait (order);
 * a held one handed on again does not. */
enum admission_verdict admission_check(const struct pool *p, bool fresh);
/* How many of P's waiters may go to a worker now, at most MAX. */
unsigned admission_room(const struct pool *p, unsigned max);
/* Counts one refusal of P's (and logs it, once a second at most). */
void admission_refused(struct pool *p);
/* Answers FD 503 + Retry-After without blocking and closes it (the fd is ours). */
void admission_answer(int fd);
/* Both at once: P's connection FD refused now. */
void admission_refuse(struct pool *p, int fd);
/* P's waiters past queue_timeout_ms at NOW are refused; the rest keep their order. */
void admission_expire(struct pool *p, uint64_t now);

#endif
