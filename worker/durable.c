/*
 * durable.c - the worker's durable-task engine: edge_enqueue*, the handlers per
 * kind, and one store thread that owns the journal (durable_store.h).
 *
 * Threads. The store thread is the only one that touches the store: it takes every
 * enqueue waiting at that moment and records them in one transaction (the group
 * commit: one flush for the batch, however many callers), applies finished
 * attempts, claims due tasks while there is room (concurrency), renews the leases
 * of running attempts at a third of the lease, and purges done tasks whose
 * idempotency window passed. The loop never waits for the disk: edge_enqueue_async
 * and claimed tasks come back to it through one eventfd. Blocking handlers run on
 * the task pool (tasks.c) and hand their result straight to the store thread.
 *
 * Ownership. An enqueue request belongs to its caller until queued, then to the
 * store thread until it is answered (a blocking caller frees it after waking; an
 * async one's is freed by the loop after the callback). An attempt (edge_durable)
 * belongs to the store thread until handed to the loop, then to whoever runs the
 * handler; it is freed when its result is reported (a timed-out async attempt:
 * when edge_durable_done comes after all). A result is its own small record (struct
 * fin), owned by the store thread once queued.
 *
 * Never two attempts at once on purpose: a draining worker stops claiming and gives
 * back what it claimed but did not start (release: not counted as an attempt); its
 * running attempts keep their leases until they end. On SIGTERM the running ones are
 * released too, so another worker takes them without waiting for the lease.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/wire.h"
#include "durable.h"
#include "durable_retry.h"
#include "durable_store.h"
#include "worker.h"

#define DUR_MAX_KINDS        64
#define DUR_BATCH_MAX        1024   /* enqueues per group commit */
#define DUR_POLL_MS          500    /* look for due tasks at least this often */
#define DUR_PURGE_EVERY_MS   60000
#define DUR_DEFAULT_ATTEMPTS 5
#define DUR_DEFAULT_TIMEOUT  30000
#define DUR_STOP_WAIT_MS     2000   /* the store thread's last flush at exit */

struct handler {
	char kind[DURABLE_KIND_MAX + 1];
	unsigned flags;
	edge_durable_fn fn;
	void *arg;
};

struct enq {
	STAILQ_ENTRY(enq) q;
	struct durable_new n;
	char kind[DURABLE_KIND_MAX + 1];
	char *key;
	void *payload;
	int64_t id;
	int err;
	bool blocking;
	bool done;                      /* blocking: answered (under mtx) */
	edge_enqueue_cb cb;
	void *arg;
};

struct edge_durable {
	STAILQ_ENTRY(edge_durable) q;   /* out_claimed */
	LIST_ENTRY(edge_durable) run;   /* dur.running, under mtx */
	struct durable_task t;
	const struct handler *h;
	edge_task *async;               /* loop handlers: keeps the worker from draining */
	struct event timer;
	bool timer_set;
	bool ended;                     /* its result was reported (under mtx) */
	bool on_run;
};

enum fin_op { FIN_FINISH, FIN_RELEASE };

struct fin {
	STAILQ_ENTRY(fin) q;
	int op;
	int64_t id;
	uint32_t attempt;
	int outcome;
	int64_t next_at;
	char why[DURABLE_WHY_MAX + 1];
};

STAILQ_HEAD(enq_q, enq);
STAILQ_HEAD(att_q, edge_durable);
STAILQ_HEAD(fin_q, fin);

static struct {
	/* Set once at init, read-only after. */
	bool on;
	struct edge_ctx *ctx;
	struct wire_durable conf;
	struct durable_store *store;
	char owner[DURABLE_OWNER_MAX + 1];
	struct handler handlers[DUR_MAX_KINDS];
	const char *kinds[DUR_MAX_KINDS];
	size_t nhandlers;               /* fixed once the loop runs (init registers) */
	struct event *wake_ev;
	int efd;
	pthread_t thread;
	bool thread_up;
	bool started;                   /* init is over: handlers are fixed */
	uint64_t async_pending;         /* loop only: async enqueues not answered yet */

	pthread_mutex_t mtx;
	pthread_cond_t cond;            /* wakes the store thread */
	pthread_cond_t answered;        /* wakes blocking enqueuers */
	pthread_cond_t exited;
	struct enq_q enq_in;
	struct fin_q fin_in;
	struct enq_q out_enq;
	struct att_q out_claimed;
	LIST_HEAD(, edge_durable) running;
	uint32_t inflight;              /* claimed, not finished or released */
	bool draining;
	bool stop;                      /* no new request; the thread flushes and exits */
	bool gone;                      /* the thread has exited */
	uint64_t rnd;
} dur = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.answered = PTHREAD_COND_INITIALIZER,
	.exited = PTHREAD_COND_INITIALIZER,
	.efd = -1,
};

static void
abs_time(int64_t ms, struct timespec *ts)
{
	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000;
}

/* Under mtx: xorshift64, seeded from getrandom at init; only jitter needs it. */
static uint64_t
rnd_next(void)
{
	uint64_t x = dur.rnd;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	dur.rnd = x;
	return x;
}

static void
wake_loop(void)
{
	uint64_t one = 1;

	(void)!write(dur.efd, &one, sizeof(one));
}

/* ---- the store thread ---------------------------------------------------------- */

static void
do_enqueue(struct enq_q *batch, size_t n)
{
	struct durable_new *v = calloc(n, sizeof(*v));
	int64_t *ids = calloc(n, sizeof(*ids));
	struct enq *e;
	char err[256] = "";
	bool async = false;
	size_t i = 0;
	int r = -1, code = ENOMEM;

	if (v != NULL && ids != NULL) {
		STAILQ_FOREACH(e, batch, q)
			v[i++] = e->n;
		r = dur.store->ops->enqueue_batch(dur.store, v, n, clock_wall_ms(), ids, NULL, err,
		    sizeof(err));
		code = errno;
		if (r < 0)
			log_warn("durable_enqueue_failed", "tasks=%zu err=%s", n, log_qv(err));
	}
	i = 0;
	pthread_mutex_lock(&dur.mtx);
	while ((e = STAILQ_FIRST(batch)) != NULL) {
		STAILQ_REMOVE_HEAD(batch, q);
		e->id = r == 0 ? ids[i] : -1;
		e->err = r == 0 ? 0 : code;
		i++;
		if (e->blocking) {
			e->done = true;
		} else {
			STAILQ_INSERT_TAIL(&dur.out_enq, e, q);
			async = true;
		}
	}
	pthread_cond_broadcast(&dur.answered);
	pthread_mutex_unlock(&dur.mtx);
	if (async)
		wake_loop();
	free(v);
	free(ids);
}

static void
do_fins(struct fin_q *fins)
{
	const struct durable_ops *ops = dur.store->ops;
	struct fin *f;
	uint32_t n = 0;
	char err[256];

	while ((f = STAILQ_FIRST(fins)) != NULL) {
		int64_t now = clock_wall_ms();
		int r;

		STAILQ_REMOVE_HEAD(fins, q);
		if (f->op == FIN_RELEASE)
			r = ops->release(dur.store, f->id, dur.owner, f->attempt, now, err, sizeof(err));
		else
			r = ops->finish(dur.store, f->id, dur.owner, f->attempt, f->outcome, now,
			    f->next_at, f->why, err, sizeof(err));
		/* A result that cannot be written is not lost work: the lease ends and the
		 * task runs again (at least once). */
		if (r < 0)
			log_warn("durable_finish_failed", "task=%lld err=%s", (long long)f->id,
			    log_qv(err));
		else if (r == 1)
			log_warn("durable_lease_lost", "task=%lld attempt=%u msg=\"claimed again after its lease ended; this result is dropped\"",
			    (long long)f->id, f->attempt);
		else if (f->op == FIN_FINISH && f->outcome == DURABLE_RETRY)
			log_info("durable_retry", "task=%lld attempt=%u next_in_ms=%lld why=%s",
			    (long long)f->id, f->attempt, (long long)(f->next_at - now), log_qv(f->why));
		else if (f->op == FIN_FINISH && f->outcome == DURABLE_FAIL)
			log_warn("durable_dead", "task=%lld attempt=%u why=%s", (long long)f->id,
			    f->attempt, log_qv(f->why));
		else
			log_debug("durable_finished", "task=%lld attempt=%u op=%s", (long long)f->id,
			    f->attempt, f->op == FIN_RELEASE ? "release" : "finish");
		free(f);
		n++;
	}
	pthread_mutex_lock(&dur.mtx);
	dur.inflight -= n;
	pthread_mutex_unlock(&dur.mtx);
}

/* Claims up to MAX due tasks; returns when to look again. */
static int64_t
do_claim(size_t max, int64_t now)
{
	const struct durable_ops *ops = dur.store->ops;
	struct durable_task *ts = calloc(max, sizeof(*ts));
	size_t n = 0;
	int64_t at = 0;
	char err[256];

	if (ts == NULL)
		return now + DUR_POLL_MS;
	if (ops->claim(dur.store, dur.owner, now, dur.conf.lease_ms, dur.kinds, dur.nhandlers, max,
	    ts, &n, err, sizeof(err)) < 0) {
		log_warn("durable_claim_failed", "err=%s", log_qv(err));
		free(ts);
		return now + DUR_POLL_MS;
	}
	if (n > 0) {
		pthread_mutex_lock(&dur.mtx);
		for (size_t i = 0; i < n; i++) {
			struct edge_durable *a = calloc(1, sizeof(*a));

			if (a == NULL) {
				/* Left claimed: its lease ends and it runs again. */
				durable_task_clear(&ts[i]);
				continue;
			}
			a->t = ts[i];
			dur.inflight++;
			STAILQ_INSERT_TAIL(&dur.out_claimed, a, q);
		}
		pthread_mutex_unlock(&dur.mtx);
		wake_loop();
	}
	free(ts);
	if (n == max)
		return now;
	if (ops->next_due(dur.store, &at, err, sizeof(err)) < 0)
		return now + DUR_POLL_MS;
	/* Due already but not ours to claim (held by another worker, or a kind this
	 * worker has no handler for): look again later, not at once. */
	return at > now && at < now + DUR_POLL_MS ? at : now + DUR_POLL_MS;
}

static void *
store_main(void *unused)
{
	int64_t next_claim = 0, next_renew = 0, next_purge = 0;
	struct enq_q batch;
	struct fin_q fins;
	struct edge_durable *a;
	char err[256];

	pthread_mutex_lock(&dur.mtx);
	for (;;) {
		int64_t now = clock_wall_ms();
		bool can_claim = !dur.draining && !dur.stop && dur.nhandlers > 0 &&
		    dur.inflight < dur.conf.concurrency;
		size_t n = 0;

		if (STAILQ_EMPTY(&dur.enq_in) && STAILQ_EMPTY(&dur.fin_in)) {
			if (dur.stop)
				break;
			if (!(can_claim && now >= next_claim) &&
			    !(dur.inflight > 0 && now >= next_renew) && now < next_purge) {
				int64_t wake = next_purge;
				struct timespec ts;

				if (can_claim && next_claim < wake)
					wake = next_claim;
				if (dur.inflight > 0 && next_renew < wake)
					wake = next_renew;
				abs_time(wake, &ts);
				pthread_cond_timedwait(&dur.cond, &dur.mtx, &ts);
				continue;
			}
		}
		STAILQ_INIT(&batch);
		while (n < DUR_BATCH_MAX && !STAILQ_EMPTY(&dur.enq_in)) {
			struct enq *e = STAILQ_FIRST(&dur.enq_in);
			STAILQ_REMOVE_HEAD(&dur.enq_in, q);
			STAILQ_INSERT_TAIL(&batch, e, q);
			n++;
		}
		STAILQ_INIT(&fins);
		STAILQ_CONCAT(&fins, &dur.fin_in);
		pthread_mutex_unlock(&dur.mtx);

		if (n > 0) {
			do_enqueue(&batch, n);
			next_claim = now;
		}
		if (!STAILQ_EMPTY(&fins)) {
			do_fins(&fins);
			next_claim = now;
		}
		pthread_mutex_lock(&dur.mtx);
		can_claim = !dur.draining && !dur.stop && dur.nhandlers > 0 &&
		    dur.inflight < dur.conf.concurrency;
		size_t room = can_claim ? dur.conf.concurrency - dur.inflight : 0;
		bool held = dur.inflight > 0;
		pthread_mutex_unlock(&dur.mtx);
		now = clock_wall_ms();
		if (room > 0 && now >= next_claim) {
			next_claim = do_claim(room, now);
			if (next_renew <= now)
				next_renew = now + dur.conf.lease_ms / 3;
			held = true;
		}
		if (held && now >= next_renew) {
			if (dur.store->ops->renew(dur.store, dur.owner, now, dur.conf.lease_ms, err,
			    sizeof(err)) < 0)
				log_warn("durable_renew_failed", "err=%s", log_qv(err));
			next_renew = now + dur.conf.lease_ms / 3;
		}
		if (now >= next_purge) {
			uint64_t gone = 0;

			if (dur.store->ops->purge(dur.store, now - (int64_t)dur.conf.idem_window_ms,
			    &gone, err, sizeof(err)) < 0)
				log_warn("durable_purge_failed", "err=%s", log_qv(err));
			else if (gone > 0)
				log_debug("durable_purged", "tasks=%llu", (unsigned long long)gone);
			next_purge = now + DUR_PURGE_EVERY_MS;
		}
		pthread_mutex_lock(&dur.mtx);
	}
	/* Claimed tasks the loop never took: back to the journal, not counted. */
	while ((a = STAILQ_FIRST(&dur.out_claimed)) != NULL) {
		STAILQ_REMOVE_HEAD(&dur.out_claimed, q);
		pthread_mutex_unlock(&dur.mtx);
		if (dur.store->ops->release(dur.store, a->t.id, dur.owner, a->t.attempt, clock_wall_ms(),
		    err, sizeof(err)) < 0)
			log_warn("durable_release_failed", "task=%lld err=%s", (long long)a->t.id,
			    log_qv(err));
		durable_task_clear(&a->t);
		free(a);
		pthread_mutex_lock(&dur.mtx);
	}
	dur.gone = true;
	pthread_cond_broadcast(&dur.exited);
	pthread_cond_broadcast(&dur.answered);
	pthread_mutex_unlock(&dur.mtx);
	return NULL;
}

/* ---- results --------------------------------------------------------------------- */

/* Under mtx: queues a result for the store thread. */
static void
push_fin(const struct edge_durable *a, int op, int outcome, int64_t next_at, const char *why)
{
	struct fin *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return;   /* the lease ends and the task runs again */
	f->op = op;
	f->id = a->t.id;
	f->attempt = a->t.attempt;
	f->outcome = outcome;
	f->next_at = next_at;
	snprintf(f->why, sizeof(f->why), "%s", why != NULL ? why : "");
	STAILQ_INSERT_TAIL(&dur.fin_in, f, q);
	pthread_cond_signal(&dur.cond);
}

/*
 * Under mtx: turns a handler's RESULT into the store's outcome (a RETRY past the
 * last attempt is dead) and queues it. Returns false when the attempt had ended
 * already (timed out, or released at shutdown): then nothing is queued.
 */
static bool
report(struct edge_durable *a, int result, const char *why)
{
	int outcome = DURABLE_OK;
	int64_t next_at = 0;
	char buf[DURABLE_WHY_MAX + 1];

	if (a->ended)
		return false;
	a->ended = true;
	if (a->on_run) {
		LIST_REMOVE(a, run);
		a->on_run = false;
	}
	if (result == EDGE_DURABLE_FAIL) {
		outcome = DURABLE_FAIL;
	} else if (result != EDGE_DURABLE_OK) {
		if (why == NULL)
			why = result == EDGE_DURABLE_RETRY ? "retry" : "bad result";
		if (a->t.attempt >= a->t.max_attempts) {
			outcome = DURABLE_FAIL;
			snprintf(buf, sizeof(buf), "attempts used up: %s", why);
			why = buf;
		} else {
			outcome = DURABLE_RETRY;
			next_at = clock_wall_ms() + (int64_t)durable_backoff_ms(a->t.attempt,
			    dur.conf.retry_base_ms, dur.conf.retry_max_ms, rnd_next());
		}
	}
	push_fin(a, FIN_FINISH, outcome, next_at, why);
	return true;
}

static void
attempt_free(struct edge_durable *a)
{
	if (a->timer_set)
		event_del(&a->timer);
	durable_task_clear(&a->t);
	free(a);
}

/* A pool thread: runs a blocking handler and reports its result. */
static int
blocking_run(void *arg)
{
	struct edge_durable *a = arg;
	int r = a->h->fn(a, a->t.payload, a->t.len, a->h->arg);
	bool mine;

	if (r == EDGE_DURABLE_LATER)
		r = EDGE_DURABLE_RETRY;
	pthread_mutex_lock(&dur.mtx);
	mine = report(a, r, r == EDGE_DURABLE_OK ? NULL : "handler failed");
	pthread_mutex_unlock(&dur.mtx);
	/* Not mine: released at shutdown; the loop is gone, the process exits. */
	if (mine) {
		durable_task_clear(&a->t);
		free(a);
	}
	/* The attempt's outcome is the journal's (logged as durable_retry/durable_dead),
	 * not a failed background task. */
	return 0;
}

static void
timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct edge_durable *a = arg;
	bool mine;

	a->timer_set = false;
	pthread_mutex_lock(&dur.mtx);
	mine = report(a, EDGE_DURABLE_RETRY, "timeout");
	pthread_mutex_unlock(&dur.mtx);
	if (mine && a->async != NULL) {
		edge_task *t = a->async;

		a->async = NULL;
		edge_task_end(t, 1, "timeout");
	}
	/* The record stays until edge_durable_done: the handler still holds it. */
}

void
edge_durable_done(edge_durable *a, int result, const char *why)
{
	edge_task *t;
	bool mine;

	if (a == NULL)
		return;
	pthread_mutex_lock(&dur.mtx);
	mine = report(a, result, why);
	pthread_mutex_unlock(&dur.mtx);
	t = a->async;
	a->async = NULL;
	attempt_free(a);
	if (mine && t != NULL)
		edge_task_end(t, 0, NULL);
}

/* ---- the loop side ---------------------------------------------------------------- */

static const struct handler *
find_handler(const char *kind)
{
	for (size_t i = 0; i < dur.nhandlers; i++)
		if (strcmp(dur.handlers[i].kind, kind) == 0)
			return &dur.handlers[i];
	return NULL;
}

/* Gives a claimed attempt back without running it. */
static void
give_back(struct edge_durable *a)
{
	pthread_mutex_lock(&dur.mtx);
	a->ended = true;
	if (a->on_run) {
		LIST_REMOVE(a, run);
		a->on_run = false;
	}
	push_fin(a, FIN_RELEASE, 0, 0, NULL);
	pthread_mutex_unlock(&dur.mtx);
	attempt_free(a);
}

static void
run_attempt(struct edge_durable *a)
{
	struct edge_ctx *ctx = dur.ctx;
	int r;

	a->h = find_handler(a->t.kind);
	if (a->h == NULL || ctx->retiring || ctx->terminating) {
		give_back(a);
		return;
	}
	pthread_mutex_lock(&dur.mtx);
	LIST_INSERT_HEAD(&dur.running, a, run);
	a->on_run = true;
	pthread_mutex_unlock(&dur.mtx);
	log_debug("durable_run", "task=%lld kind=%s attempt=%u", (long long)a->t.id, a->t.kind,
	    a->t.attempt);
	if (a->h->flags & EDGE_DURABLE_BLOCKING) {
		/* The pool thread owns A from here. */
		if (edge_wait_until_named(ctx, a->t.kind, 0, blocking_run, a) < 0)
			give_back(a);
		return;
	}
	if ((a->async = edge_task_begin(ctx, a->t.kind, 0)) == NULL) {
		give_back(a);
		return;
	}
	if (a->t.timeout_ms > 0) {
		struct timeval tv = { a->t.timeout_ms / 1000, (a->t.timeout_ms % 1000) * 1000 };

		event_assign(&a->timer, ctx->base, -1, 0, timeout_cb, a);
		a->timer_set = event_add(&a->timer, &tv) == 0;
	}
	r = a->h->fn(a, a->t.payload, a->t.len, a->h->arg);
	if (r != EDGE_DURABLE_LATER)
		edge_durable_done(a, r, r == EDGE_DURABLE_OK ? NULL : "handler failed");
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct enq_q enqs = STAILQ_HEAD_INITIALIZER(enqs);
	struct att_q claimed = STAILQ_HEAD_INITIALIZER(claimed);
	struct edge_durable *a;
	struct enq *e;
	uint64_t n;

	(void)!read(dur.efd, &n, sizeof(n));
	pthread_mutex_lock(&dur.mtx);
	STAILQ_CONCAT(&enqs, &dur.out_enq);
	STAILQ_CONCAT(&claimed, &dur.out_claimed);
	pthread_mutex_unlock(&dur.mtx);
	while ((e = STAILQ_FIRST(&enqs)) != NULL) {
		STAILQ_REMOVE_HEAD(&enqs, q);
		dur.async_pending--;
		if (e->cb != NULL)
			e->cb(dur.ctx, e->id, e->err, e->arg);
		free(e->payload);
		free(e->key);
		free(e);
	}
	while ((a = STAILQ_FIRST(&claimed)) != NULL) {
		STAILQ_REMOVE_HEAD(&claimed, q);
		run_attempt(a);
	}
	if (dur.ctx->retiring)
		worker_check_drained();
}

/* ---- the API ------------------------------------------------------------------------ */

int
edge_durable_handle(edge_ctx *ctx, const char *kind, unsigned flags, edge_durable_fn fn,
    void *arg)
{
	struct handler *h;

	if (!dur.on) {
		errno = ENOTSUP;
		return -1;
	}
	if (ctx != dur.ctx || fn == NULL || !durable_kind_valid(kind) ||
	    (flags & ~EDGE_DURABLE_BLOCKING) != 0 || dur.started) {
		errno = EINVAL;
		return -1;
	}
	if (find_handler(kind) != NULL) {
		errno = EEXIST;
		return -1;
	}
	if (dur.nhandlers == DUR_MAX_KINDS) {
		errno = ENOSPC;
		return -1;
	}
	h = &dur.handlers[dur.nhandlers];
	snprintf(h->kind, sizeof(h->kind), "%s", kind);
	h->flags = flags;
	h->fn = fn;
	h->arg = arg;
	dur.kinds[dur.nhandlers] = h->kind;
	pthread_mutex_lock(&dur.mtx);
	dur.nhandlers++;
	pthread_mutex_unlock(&dur.mtx);
	return 0;
}

static struct enq *
enq_new(edge_ctx *ctx, const char *kind, const void *payload, size_t len,
    const struct edge_durable_opts *o)
{
	struct enq *e;

	if (!dur.on) {
		errno = ENOTSUP;
		return NULL;
	}
	if (ctx != dur.ctx || !durable_kind_valid(kind) || len > DURABLE_PAYLOAD_MAX ||
	    (payload == NULL && len > 0) ||
	    (o != NULL && o->idempotency_key != NULL && (o->idempotency_key[0] == '\0' ||
	    strlen(o->idempotency_key) > DURABLE_KEY_MAX))) {
		errno = EINVAL;
		return NULL;
	}
	if ((e = calloc(1, sizeof(*e))) == NULL || (e->payload = malloc(len + 1)) == NULL ||
	    (o != NULL && o->idempotency_key != NULL &&
	    (e->key = strdup(o->idempotency_key)) == NULL)) {
		if (e != NULL)
			free(e->payload);
		free(e);
		errno = ENOMEM;
		return NULL;
	}
	if (len > 0)
		memcpy(e->payload, payload, len);
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	e->n = (struct durable_new){
		.kind = e->kind, .payload = e->payload, .len = len, .idem_key = e->key,
		.run_at_ms = clock_wall_ms() + (o != NULL ? (int64_t)o->delay_ms : 0),
		.max_attempts = o != NULL && o->max_attempts > 0 ? o->max_attempts :
		    DUR_DEFAULT_ATTEMPTS,
		.timeout_ms = o != NULL && o->timeout_ms > 0 ? o->timeout_ms : DUR_DEFAULT_TIMEOUT,
	};
	return e;
}

static void
enq_free(struct enq *e)
{
	free(e->payload);
	free(e->key);
	free(e);
}

/* Under mtx: queues E, or refuses when the thread is stopping. */
static int
enq_push(struct enq *e)
{
	if (dur.stop || dur.gone || !dur.thread_up) {
		errno = ESHUTDOWN;
		return -1;
	}
	STAILQ_INSERT_TAIL(&dur.enq_in, e, q);
	pthread_cond_signal(&dur.cond);
	return 0;
}

int64_t
edge_enqueue(edge_ctx *ctx, const char *kind, const void *payload, size_t len,
    const struct edge_durable_opts *opts)
{
	struct enq *e = enq_new(ctx, kind, payload, len, opts);
	int64_t id;
	int err;

	if (e == NULL)
		return -1;
	e->blocking = true;
	pthread_mutex_lock(&dur.mtx);
	if (enq_push(e) < 0) {
		pthread_mutex_unlock(&dur.mtx);
		enq_free(e);
		return -1;
	}
	while (!e->done)
		pthread_cond_wait(&dur.answered, &dur.mtx);
	pthread_mutex_unlock(&dur.mtx);
	id = e->id;
	err = e->err;
	enq_free(e);
	if (id < 0)
		errno = err;
	return id;
}

int
edge_enqueue_async(edge_ctx *ctx, const char *kind, const void *payload, size_t len,
    const struct edge_durable_opts *opts, edge_enqueue_cb cb, void *arg)
{
	struct enq *e;
	int r;

	if (ctx != NULL && ctx->terminating) {
		errno = ESHUTDOWN;
		return -1;
	}
	if ((e = enq_new(ctx, kind, payload, len, opts)) == NULL)
		return -1;
	e->cb = cb;
	e->arg = arg;
	pthread_mutex_lock(&dur.mtx);
	r = enq_push(e);
	pthread_mutex_unlock(&dur.mtx);
	if (r < 0) {
		enq_free(e);
		return -1;
	}
	dur.async_pending++;
	return 0;
}

int64_t
edge_durable_id(const edge_durable *a)
{
	return a != NULL ? a->t.id : -1;
}

uint32_t
edge_durable_attempt(const edge_durable *a)
{
	return a != NULL ? a->t.attempt : 0;
}

uint32_t
edge_durable_max_attempts(const edge_durable *a)
{
	return a != NULL ? a->t.max_attempts : 0;
}

const char *
edge_durable_kind(const edge_durable *a)
{
	return a != NULL ? a->t.kind : "";
}

/* ---- lifecycle ---------------------------------------------------------------------- */

int
durable_init(struct edge_ctx *ctx, const struct wire_durable *conf)
{
	struct durable_conf dc = { 0 };
	char err[256], host[64] = "host";

	dur.ctx = ctx;
	STAILQ_INIT(&dur.enq_in);
	STAILQ_INIT(&dur.fin_in);
	STAILQ_INIT(&dur.out_enq);
	STAILQ_INIT(&dur.out_claimed);
	LIST_INIT(&dur.running);
	if (conf->backend == WIRE_DURABLE_OFF)
		return 0;
	dur.conf = *conf;
	dc.backend = conf->backend == WIRE_DURABLE_LOCAL ? DURABLE_BACKEND_LOCAL :
	    DURABLE_BACKEND_POSTGRESQL;
	if (conf->backend == WIRE_DURABLE_LOCAL)
		dc.path = dur.conf.path;
	else
		dc.dsn = dur.conf.path;  /* the connection string (wire.h) */
	dc.function = ctx->conf.name;
	dc.max_bytes = conf->max_bytes;
	dc.idem_window_ms = conf->idem_window_ms;
	dur.store = durable_store_open(&dc, 0, err, sizeof(err));
	if (dur.store == NULL) {
		/* never the DSN: it holds a password */
		log_error("durable_open_failed", "backend=%u path=%s err=%s", conf->backend,
		    conf->backend == WIRE_DURABLE_LOCAL ? log_qv(conf->path) : "-", log_qv(err));
		return -1;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(dur.owner, sizeof(dur.owner), "%s:%d:%u", host, (int)getpid(), ctx->conf.index);
	if (getrandom(&dur.rnd, sizeof(dur.rnd), 0) != sizeof(dur.rnd) || dur.rnd == 0)
		dur.rnd = (uint64_t)clock_wall_ms() | 1;
	dur.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (dur.efd < 0)
		return -1;
	dur.wake_ev = event_new(ctx->base, dur.efd, EV_READ | EV_PERSIST, wake_cb, NULL);
	if (dur.wake_ev == NULL || event_add(dur.wake_ev, NULL) < 0)
		return -1;
	dur.on = true;
	/* The thread starts after init (durable_start): handlers are all registered,
	 * and init may still enqueue (blocking) because enq_push needs the thread: so
	 * start it now and let it claim only once durable_start says so. */
	dur.draining = true;
	if (pthread_create(&dur.thread, NULL, store_main, NULL) != 0)
		return -1;
	dur.thread_up = true;
	return 0;
}

void
durable_start(void)
{
	if (!dur.on)
		return;
	dur.started = true;
	pthread_mutex_lock(&dur.mtx);
	dur.draining = dur.ctx->retiring;
	pthread_cond_signal(&dur.cond);
	pthread_mutex_unlock(&dur.mtx);
}

void
durable_retire(void)
{
	if (!dur.on)
		return;
	pthread_mutex_lock(&dur.mtx);
	dur.draining = true;
	pthread_mutex_unlock(&dur.mtx);
}

bool
durable_busy(void)
{
	return dur.on && dur.async_pending > 0;
}

void
durable_stop(bool cut)
{
	struct edge_durable *a;
	struct timespec ts;
	int r = 0;

	if (!dur.on || !dur.thread_up)
		return;
	pthread_mutex_lock(&dur.mtx);
	if (cut) {
		/* SIGTERM: what still runs is given back for another worker; a late result
		 * is ignored (report() sees ended). */
		while ((a = LIST_FIRST(&dur.running)) != NULL) {
			LIST_REMOVE(a, run);
			a->on_run = false;
			a->ended = true;
			push_fin(a, FIN_RELEASE, 0, 0, NULL);
		}
	}
	dur.stop = true;
	dur.draining = true;
	pthread_cond_signal(&dur.cond);
	abs_time(clock_wall_ms() + DUR_STOP_WAIT_MS, &ts);
	while (!dur.gone && r == 0)
		r = pthread_cond_timedwait(&dur.exited, &dur.mtx, &ts);
	pthread_mutex_unlock(&dur.mtx);
	if (r != 0)
		log_warn("durable_stop_slow", "msg=\"the journal did not answer in time; unfinished attempts run again after their lease\"");
}
