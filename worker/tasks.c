/*
 * tasks.c - background tasks: the C twin of EdgeRuntime.waitUntil.
 *
 * A task is one record (struct edge_task, the public opaque handle) taken from a
 * free list and one slot on the scoreboard, so that the supervisor can name every
 * pending task even after a SIGKILL. Blocking tasks run on a fixed pool of threads
 * and come back to the loop through a done queue and one eventfd; async tasks are
 * ended by the function's own code on the loop. Everything but the pool threads'
 * run of fn(arg) happens on the loop thread, which is the board's only writer.
 *
 * Ownership of a record: the loop owns it, except between the enqueue of a blocking
 * task and the moment the loop pops it off the done queue (the thread owns it then,
 * and the record is never recycled before). A timeout or a shutdown cut ends a task
 * on the board at once, without waiting for its owner to hand the record back:
 * a blocking task's late result and an async task's late edge_task_end() are then
 * ignored. A timed-out or cut async task's record is kept until edge_task_end() is
 * called on it (a function that never ends it leaks one record).
 * A timeout never cancels the function: a queued blocking task still runs later,
 * so that it can release its ARG.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "../common/board.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/text.h"
#include "worker.h"

#define TASK_CHUNK		64	/* records allocated at once, never freed */
#define TASK_COMMON_TIMEOUTS	16	/* distinct timeouts given an O(1) queue */
#define TASK_DEFAULT_THREADS	4

enum task_kind { TASK_BLOCKING, TASK_ASYNC };

/* Where a record is; QUEUED/RUNNING/DONE are changed under pool.mtx only. */
enum task_state {
	TASK_FREE = 0,	/* on the free list */
	TASK_QUEUED,	/* blocking, waiting for a thread */
	TASK_RUNNING,	/* blocking, a thread runs fn(arg) */
	TASK_DONE,	/* blocking, on the done queue */
	TASK_HELD,	/* the loop (or the function, for async) holds it */
};

struct edge_task {
	int64_t t_id;
	char t_name[BOARD_TASK_NAME];
	edge_task_fn t_fn;
	void *t_arg;
	int t_result;			/* fn's return, set by the thread */
	enum task_kind t_kind;
	enum task_state t_state;
	uint32_t t_timeout_ms;
	uint32_t t_slot;		/* index in board->tasks */
	uint64_t t_started_ms;
	uint64_t t_started_us;		/* for the board's task duration histogram */
	bool t_pending;			/* on the board and on tasks.pending */
	bool t_ended;			/* reported already: the result is ignored */
	bool t_timer_set;
	struct event t_timer;
	STAILQ_ENTRY(edge_task) t_q;	/* free list, job queue or done queue */
	TAILQ_ENTRY(edge_task) t_pend;	/* tasks.pending */
};

STAILQ_HEAD(task_queue, edge_task);
TAILQ_HEAD(task_list, edge_task);

struct task_chunk {
	SLIST_ENTRY(task_chunk) c_entry;
	struct edge_task c_tasks[TASK_CHUNK];
};

struct common_timeout {
	uint32_t ct_ms;
	const struct timeval *ct_tv;
};

/* The loop side: only the loop thread touches this. */
static struct {
	struct edge_ctx *ctx;
	struct board *board;
	struct board *own_board;	/* when the worker was given none */
	uint32_t max_pending;
	uint64_t npending;
	int64_t next_id;
	bool cut;			/* tasks_cut_all() ran: no new task */
	struct task_queue free;
	struct task_list pending;
	SLIST_HEAD(, task_chunk) chunks;
	uint32_t *slot_stack;		/* free board slots */
	uint32_t slot_top;
	struct common_timeout timeouts[TASK_COMMON_TIMEOUTS];
	unsigned ntimeouts;
	struct event *wake_ev;
} tasks;

/* Shared with the pool threads, under mtx. */
static struct {
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	struct task_queue jobs;
	struct task_queue done;
	bool stopping;
	int efd;			/* written when done turns non-empty */
	unsigned nthreads;
} pool = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.efd = -1,
};

static void task_wake_cb(evutil_socket_t, short, void *);
static void task_timeout_cb(evutil_socket_t, short, void *);
static void *task_thread_main(void *);

/* Takes a record off the free list, allocating a chunk when it is empty. */
static struct edge_task *
task_alloc(void)
{
	struct task_chunk *c;
	struct edge_task *t;

	if (STAILQ_EMPTY(&tasks.free)) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		SLIST_INSERT_HEAD(&tasks.chunks, c, c_entry);
		for (unsigned i = 0; i < TASK_CHUNK; i++)
			STAILQ_INSERT_TAIL(&tasks.free, &c->c_tasks[i], t_q);
	}
	t = STAILQ_FIRST(&tasks.free);
	STAILQ_REMOVE_HEAD(&tasks.free, t_q);
	return t;
}

/* Returns a record the loop holds to the free list. */
static void
task_recycle(struct edge_task *t)
{
	t->t_state = TASK_FREE;
	t->t_fn = NULL;
	t->t_arg = NULL;
	t->t_id = 0;
	STAILQ_INSERT_HEAD(&tasks.free, t, t_q);
}

/* Copies NAME for logs and the board: logfmt-safe, truncated, never empty. */
static void
task_set_name(struct edge_task *t, const char *name)
{
	if (name == NULL || *name == '\0')
		name = "task";
	text_sanitize(t->t_name, sizeof(t->t_name), name, sizeof(t->t_name), TEXT_TOKEN);
}

/* A timeout libevent can keep in an O(1) queue, or the plain value. */
static const struct timeval *
task_timeval(uint32_t ms, struct timeval *tv)
{
	struct common_timeout *ct;
	const struct timeval *ctv;

	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
	for (unsigned i = 0; i < tasks.ntimeouts; i++)
		if (tasks.timeouts[i].ct_ms == ms)
			return tasks.timeouts[i].ct_tv;
	if (tasks.ntimeouts == TASK_COMMON_TIMEOUTS)
		return tv;
	if ((ctv = event_base_init_common_timeout(tasks.ctx->base, tv)) == NULL)
		return tv;
	ct = &tasks.timeouts[tasks.ntimeouts++];
	ct->ct_ms = ms;
	ct->ct_tv = ctv;
	return ctv;
}

/*
 * Starts a task: a record, a board slot, its timer. Returns the record, or NULL
 * (errno set) when the worker is shutting down or holds its maximum of tasks.
 */
static struct edge_task *
task_start(struct edge_ctx *ctx, enum task_kind kind, const char *name,
    uint32_t timeout_ms)
{
	struct board_task *slot;
	struct edge_task *t;
	struct timeval tv;

	if (ctx == NULL || ctx != tasks.ctx) {
		errno = EINVAL;
		return NULL;
	}
	if (ctx->terminating || tasks.cut) {
		errno = ESHUTDOWN;
		return NULL;
	}
	if (tasks.npending >= tasks.max_pending || tasks.slot_top == 0) {
		errno = EAGAIN;
		return NULL;
	}
	if ((t = task_alloc()) == NULL)
		return NULL;

	t->t_id = tasks.next_id++;
	task_set_name(t, name);
	t->t_kind = kind;
	t->t_state = TASK_HELD;
	t->t_result = 0;
	t->t_timeout_ms = timeout_ms;
	t->t_started_us = clock_us();
	t->t_started_ms = t->t_started_us / 1000;
	t->t_ended = false;
	t->t_timer_set = false;
	t->t_slot = tasks.slot_stack[--tasks.slot_top];

	/* The name is written before the id publishes the slot to the supervisor. */
	slot = &tasks.board->tasks[t->t_slot];
	memcpy(slot->name, t->t_name, sizeof(slot->name));
	slot->started_ms = t->t_started_ms;
	slot->deadline_ms = timeout_ms;
	BOARD_STORE(&slot->id, (uint64_t)t->t_id);
	BOARD_BUMP(&tasks.board->tasks_started, 1);
	BOARD_BUMP(&tasks.board->tasks_pending, 1);
	t->t_pending = true;
	TAILQ_INSERT_TAIL(&tasks.pending, t, t_pend);
	tasks.npending++;

	if (timeout_ms > 0) {
		event_assign(&t->t_timer, ctx->base, -1, 0, task_timeout_cb, t);
		if (event_add(&t->t_timer, task_timeval(timeout_ms, &tv)) == 0)
			t->t_timer_set = true;
		else
			log_warn("task_timer", "task_id=%lld error=event_add",
			    (long long)t->t_id);
	}
	return t;
}

/* Takes a pending task off the board: its slot freed, counted as done or failed. */
static void
task_finish(struct edge_task *t, bool failed)
{
	struct board_task *slot = &tasks.board->tasks[t->t_slot];
	uint64_t now = clock_us();

	if (t->t_timer_set) {
		event_del(&t->t_timer);
		t->t_timer_set = false;
	}
	TAILQ_REMOVE(&tasks.pending, t, t_pend);
	t->t_pending = false;
	t->t_ended = true;
	tasks.npending--;
	BOARD_STORE(&slot->id, 0);
	hist_observe(&tasks.board->task_hist, now >= t->t_started_us ? now - t->t_started_us : 0);
	BOARD_BUMP(failed ? &tasks.board->tasks_failed : &tasks.board->tasks_completed, 1);
	BOARD_BUMP(&tasks.board->tasks_pending, (uint64_t)-1);
	tasks.slot_stack[tasks.slot_top++] = t->t_slot;
}

/* Ends a pending task with CODE; a failure (non-zero) reaches the error hooks. */
static void
task_end_pending(struct edge_task *t, int code, const char *reason)
{
	task_finish(t, code != 0);
	if (code != 0)
		hooks_task_error(t->t_id, t->t_name,
		    reason != NULL && *reason != '\0' ? reason : "failed", code);
}

/* After a task ended: a retiring worker may now be drained. */
static void
task_after_end(void)
{
	if (tasks.ctx->retiring)
		worker_check_drained();
}

static void
task_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct edge_task *t = arg;

	t->t_timer_set = false;
	if (!t->t_pending)
		return;
	/* The record stays with its owner (thread or function) until handed back. */
	task_finish(t, true);
	hooks_task_error(t->t_id, t->t_name, "timeout", 0);
	task_after_end();
}

/* The eventfd fired: ends every task the pool threads finished since. */
static void
task_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct task_queue done = STAILQ_HEAD_INITIALIZER(done);
	struct edge_task *t;
	uint64_t n;
	bool ended = false;

	/* Read first: a thread that finds the queue empty after our swap writes again. */
	(void)!read(pool.efd, &n, sizeof(n));
	pthread_mutex_lock(&pool.mtx);
	STAILQ_CONCAT(&done, &pool.done);
	STAILQ_FOREACH(t, &done, t_q)
		t->t_state = TASK_HELD;
	pthread_mutex_unlock(&pool.mtx);

	while ((t = STAILQ_FIRST(&done)) != NULL) {
		STAILQ_REMOVE_HEAD(&done, t_q);
		if (!t->t_ended) {
			task_end_pending(t, t->t_result, NULL);
			ended = true;
		}
		task_recycle(t);
	}
	if (ended)
		task_after_end();
}

/* A pool thread: runs queued tasks until told to stop. */
static void *
task_thread_main(void *unused)
{
	struct edge_task *t;
	edge_task_fn fn;
	void *arg;
	uint64_t one = 1;
	bool wake;
	int rc;

	pthread_mutex_lock(&pool.mtx);
	for (;;) {
		while (STAILQ_EMPTY(&pool.jobs) && !pool.stopping)
			pthread_cond_wait(&pool.cond, &pool.mtx);
		if (pool.stopping)
			break;
		t = STAILQ_FIRST(&pool.jobs);
		STAILQ_REMOVE_HEAD(&pool.jobs, t_q);
		t->t_state = TASK_RUNNING;
		fn = t->t_fn;
		arg = t->t_arg;
		pthread_mutex_unlock(&pool.mtx);

		rc = fn(arg);

		pthread_mutex_lock(&pool.mtx);
		t->t_result = rc;
		t->t_state = TASK_DONE;
		/* One wake-up per burst: the loop drains the whole queue at once. */
		wake = STAILQ_EMPTY(&pool.done);
		STAILQ_INSERT_TAIL(&pool.done, t, t_q);
		if (wake) {
			pthread_mutex_unlock(&pool.mtx);
			(void)!write(pool.efd, &one, sizeof(one));
			pthread_mutex_lock(&pool.mtx);
		}
	}
	pool.nthreads--;
	pthread_mutex_unlock(&pool.mtx);
	return NULL;
}

/*
 * Sets up the task table and starts the pool (with every signal blocked in its
 * threads, so that SIGTERM reaches the loop's signalfd). Returns 0 or -1.
 */
int
tasks_init(struct edge_ctx *ctx)
{
	sigset_t all, old;
	pthread_attr_t attr;
	pthread_t tid;
	uint32_t nslots, nthreads;
	int rc = 0, saved;

	if (ctx == NULL || ctx->base == NULL) {
		errno = EINVAL;
		return -1;
	}
	memset(&tasks, 0, sizeof(tasks));
	tasks.ctx = ctx;
	tasks.next_id = 1;
	STAILQ_INIT(&tasks.free);
	TAILQ_INIT(&tasks.pending);
	SLIST_INIT(&tasks.chunks);
	STAILQ_INIT(&pool.jobs);
	STAILQ_INIT(&pool.done);

	nslots = ctx->board != NULL ? ctx->board->task_slots : ctx->conf.max_pending_tasks;
	if (ctx->board == NULL) {
		/* No supervisor (a manual run): keep the same table privately. */
		if ((tasks.own_board = calloc(1, board_size(nslots))) == NULL)
			return -1;
		tasks.own_board->version = BOARD_VERSION;
		tasks.own_board->task_slots = nslots;
		ctx->board = tasks.own_board;
	}
	tasks.board = ctx->board;
	tasks.max_pending = ctx->conf.max_pending_tasks;
	if (tasks.max_pending == 0 || tasks.max_pending > nslots)
		tasks.max_pending = nslots;
	if (nslots > 0 && (tasks.slot_stack = calloc(nslots, sizeof(uint32_t))) == NULL)
		goto fail;
	/* Lowest slots on top: the supervisor scans a dense prefix. */
	for (uint32_t i = 0; i < nslots; i++)
		tasks.slot_stack[i] = nslots - 1 - i;
	tasks.slot_top = nslots;

	if ((pool.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail;
	tasks.wake_ev = event_new(ctx->base, pool.efd, EV_READ | EV_PERSIST,
	    task_wake_cb, NULL);
	if (tasks.wake_ev == NULL || event_add(tasks.wake_ev, NULL) < 0)
		goto fail;

	nthreads = ctx->conf.task_threads > 0 ? ctx->conf.task_threads :
	    TASK_DEFAULT_THREADS;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Threads inherit the mask: no signal is ever delivered to a task thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (uint32_t i = 0; i < nthreads; i++) {
		if ((rc = pthread_create(&tid, &attr, task_thread_main, NULL)) != 0)
			break;
		pthread_mutex_lock(&pool.mtx);
		pool.nthreads++;
		pthread_mutex_unlock(&pool.mtx);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (pool.nthreads == 0) {
		errno = rc != 0 ? rc : EAGAIN;
		goto fail;
	}
	return 0;
fail:
	saved = errno;
	if (tasks.wake_ev != NULL)
		event_free(tasks.wake_ev);
	tasks.wake_ev = NULL;
	if (pool.efd >= 0)
		close(pool.efd);
	pool.efd = -1;
	free(tasks.slot_stack);
	tasks.slot_stack = NULL;
	if (tasks.own_board != NULL) {
		ctx->board = NULL;
		free(tasks.own_board);
		tasks.own_board = NULL;
	}
	tasks.ctx = NULL;
	errno = saved;
	return -1;
}

uint64_t
tasks_pending(void)
{
	return tasks.npending;
}

int64_t
edge_wait_until(edge_ctx *ctx, edge_task_fn fn, void *arg)
{
	return edge_wait_until_named(ctx, NULL, 0, fn, arg);
}

/*
 * Queues FN(ARG) for the pool. Returns the task id, or -1 (FN not called) when
 * the worker is shutting down or at its maximum of pending tasks.
 */
int64_t
edge_wait_until_named(edge_ctx *ctx, const char *name, uint32_t timeout_ms,
    edge_task_fn fn, void *arg)
{
	struct edge_task *t;

	if (fn == NULL) {
		errno = EINVAL;
		return -1;
	}
	if ((t = task_start(ctx, TASK_BLOCKING, name, timeout_ms)) == NULL)
		return -1;
	t->t_fn = fn;
	t->t_arg = arg;
	pthread_mutex_lock(&pool.mtx);
	t->t_state = TASK_QUEUED;
	STAILQ_INSERT_TAIL(&pool.jobs, t, t_q);
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	return t->t_id;
}

/* Begins an async task; see edgevisor.h. */
edge_task *
edge_task_begin(edge_ctx *ctx, const char *name, uint32_t timeout_ms)
{
	return task_start(ctx, TASK_ASYNC, name, timeout_ms);
}

/*
 * Ends an async task. On a task that timed out or was cut, it only releases the
 * record: its end was reported already.
 */
void
edge_task_end(edge_task *t, int status, const char *reason)
{
	if (t == NULL || t->t_kind != TASK_ASYNC || t->t_state != TASK_HELD)
		return;
	if (t->t_ended) {
		task_recycle(t);
		return;
	}
	/* A hook that ends this very task again finds it busy and is ignored. */
	t->t_state = TASK_DONE;
	task_end_pending(t, status, reason);
	task_recycle(t);
	task_after_end();
}

int64_t
edge_task_id(const edge_task *t)
{
	return t != NULL ? t->t_id : -1;
}

/* Takes T off the pending list and stops its timer (its board slot stays). */
static void
unlink_pending(struct edge_task *t)
{
	if (t->t_timer_set) {
		event_del(&t->t_timer);
		t->t_timer_set = false;
	}
	TAILQ_REMOVE(&tasks.pending, t, t_pend);
	t->t_pending = false;
}

/*
 * Shutdown: every pending task is reported "cut". They stay pending on the board
 * (slot and counter), so that the supervisor counts them lost after we exit.
 */
void
tasks_cut_all(void)
{
	struct edge_task *t;

	if (tasks.ctx == NULL)
		return;
	tasks.cut = true;
	/* Re-read the head each time: a hook may end other tasks meanwhile. */
	while ((t = TAILQ_FIRST(&tasks.pending)) != NULL) {
		unlink_pending(t);
		t->t_ended = true;
		hooks_task_error(t->t_id, t->t_name, "cut", 0);
	}
}

/*
 * Stops the pool without waiting for a running task (threads are detached and the
 * process exits next) and detaches everything from the event base. The eventfd
 * stays open: a thread still in fn(arg) writes to it when it returns.
 */
void
tasks_shutdown(void)
{
	struct edge_task *t;

	if (tasks.ctx == NULL)
		return;
	pthread_mutex_lock(&pool.mtx);
	pool.stopping = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	if (tasks.wake_ev != NULL) {
		event_free(tasks.wake_ev);
		tasks.wake_ev = NULL;
	}
	while ((t = TAILQ_FIRST(&tasks.pending)) != NULL) {
		unlink_pending(t);
	}
	tasks.cut = true;
}
