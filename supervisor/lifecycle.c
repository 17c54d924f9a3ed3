/*
 * lifecycle.c - the worker state machine, and the only place the reaping rule lives:
 *
 *   starting -> ready -> draining -> drained -> exited
 *                 \          \-> terminating (SIGTERM + reason) -> exited
 *                  \-> terminating                      (SIGKILL after the grace)
 *   any live state -> crashed (it died on its own) -> a replacement is spawned
 *
 * A worker is never killed unless it is terminating, and it is "exited" (a clean
 * end) only if it reported drained or was sent SIGTERM; any other death is a crash,
 * and every task still pending on its scoreboard is counted lost and named.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/text.h"
#include "cgroup.h"
#include "supervisor.h"

/* How long a worker may take to report ready, and to exit after it drained. */
#define START_TIMEOUT_MS 10000
#define DRAINED_EXIT_MS  5000

static const char *const wstate_names[WS_MAX] = {
	[WS_STARTING] = "starting", [WS_READY] = "ready", [WS_DRAINING] = "draining",
	[WS_DRAINED] = "drained", [WS_TERMINATING] = "terminating",
	[WS_EXITED] = "exited", [WS_CRASHED] = "crashed",
};

/* allowed[from] is the set of states a worker may move to from FROM. */
#define S(x) (1u << (x))
static const unsigned allowed[WS_MAX] = {
	[WS_STARTING] = S(WS_READY) | S(WS_DRAINING) | S(WS_TERMINATING) | S(WS_CRASHED),
	[WS_READY] = S(WS_DRAINING) | S(WS_TERMINATING) | S(WS_CRASHED),
	[WS_DRAINING] = S(WS_DRAINED) | S(WS_TERMINATING) | S(WS_CRASHED),
	[WS_DRAINED] = S(WS_TERMINATING) | S(WS_EXITED),
	[WS_TERMINATING] = S(WS_EXITED),
	[WS_EXITED] = 0,
	[WS_CRASHED] = 0,
};
#undef S

static void timer_cb(evutil_socket_t fd, short what, void *arg);

const char *
wstate_name(enum wstate s)
{
	return s < WS_MAX ? wstate_names[s] : "unknown";
}

bool
worker_is_live(const struct worker *w)
{
	return w->w_state != WS_EXITED && w->w_state != WS_CRASHED;
}

int
worker_set_state(struct worker *w, enum wstate to, const char *why)
{
	enum wstate from = w->w_state;

	if (!(allowed[from] & (1u << to))) {
		log_error("worker_state_refused", "fn=%s wid=%u gen=%u pid=%d from=%s to=%s reason=%s",
		    w->w_pool->p_conf->name, w->w_id, w->w_gen, (int)w->w_pid,
		    wstate_name(from), wstate_name(to), why);
		return -1;
	}
	w->w_state = to;
	log_info("worker_state", "fn=%s wid=%u gen=%u pid=%d from=%s to=%s reason=%s pending=%llu",
	    w->w_pool->p_conf->name, w->w_id, w->w_gen, (int)w->w_pid,
	    wstate_name(from), wstate_name(to), why,
	    w->w_board ? (unsigned long long)BOARD_LOAD(&w->w_board->tasks_pending) : 0ULL);
	return 0;
}

static void
arm_timer(struct worker *w, uint32_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (w->w_timer == NULL)
		w->w_timer = evtimer_new(sv.base, timer_cb, w);
	if (w->w_timer != NULL)
		evtimer_add(w->w_timer, &tv);
}

/* Called by spawn once the child exists: it has START_TIMEOUT_MS to get ready. */
static void
start_deadline(struct worker *w)
{
	arm_timer(w, START_TIMEOUT_MS);
}

void
worker_retire(struct worker *w, uint32_t reason)
{
	const struct fn_limits *lim = &w->w_pool->p_conf->limits;
	struct wire_ctl msg = {
		.version = WIRE_VERSION, .type = WIRE_CTL_RETIRE, .arg = reason,
		.deadline_ms = lim->drain_timeout_ms + lim->beforeunload_grace_ms,
	};

	if (w->w_state != WS_READY && w->w_state != WS_STARTING)
		return;
	if (worker_set_state(w, WS_DRAINING, wire_reason_name(reason)) < 0)
		return;
	w->w_reason = reason;
	if (wire_send_ctl(w->w_ctl, &msg, NULL, 0) < 0) {
		/* It cannot hear us: it is dying or hung. SIGTERM is the other way in. */
		log_warn("retire_send_failed", "fn=%s wid=%u pid=%d err=\"%s\"",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, strerror(errno));
		worker_terminate(w, reason ? reason : WIRE_REASON_TERMINATION);
		return;
	}
	arm_timer(w, lim->drain_timeout_ms);
}

void
worker_terminate(struct worker *w, uint32_t reason)
{
	union sigval v = { .sival_int = (int)reason };

	if (!worker_is_live(w) || w->w_state == WS_TERMINATING)
		return;
	if (worker_set_state(w, WS_TERMINATING, wire_reason_name(reason)) < 0)
		return;
	if (w->w_reason == WIRE_REASON_NONE)
		w->w_reason = reason;
	/* sigqueue carries the reason: the worker reads it from its signalfd. */
	if (sigqueue(w->w_pid, SIGTERM, v) < 0 && errno != ESRCH)
		log_warn("sigterm_failed", "fn=%s wid=%u pid=%d err=\"%s\"",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, strerror(errno));
	w->w_sigterm_sent = true;
	arm_timer(w, w->w_pool->p_conf->limits.beforeunload_grace_ms);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	switch (w->w_state) {
	case WS_STARTING:
		log_warn("start_timeout", "fn=%s wid=%u pid=%d ms=%u",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, START_TIMEOUT_MS);
		worker_terminate(w, WIRE_REASON_TERMINATION);
		break;
	case WS_DRAINING:
		log_info("drain_timeout", "fn=%s wid=%u pid=%d pending=%llu",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid,
		    (unsigned long long)BOARD_LOAD(&w->w_board->tasks_pending));
		worker_terminate(w, WIRE_REASON_TERMINATION);
		break;
	case WS_DRAINED:
		worker_terminate(w, WIRE_REASON_TERMINATION);
		break;
	case WS_TERMINATING:
		/* The only SIGKILL of a worker: it had SIGTERM and the whole grace. */
		log_warn("worker_kill", "fn=%s wid=%u pid=%d grace_ms=%u",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid,
		    w->w_pool->p_conf->limits.beforeunload_grace_ms);
		kill(w->w_pid, SIGKILL);
		break;
	default:
		break;
	}
}

/* The worker's reason for failing at start; its bytes may come from tenant code. */
static void
log_init_failed(const struct worker *w, const struct wire_status *st)
{
	char why[sizeof(st->text)];

	text_sanitize(why, sizeof(why), st->text, sizeof(st->text), 0);
	log_error("worker_init_failed", "fn=%s wid=%u pid=%d why=%s",
	    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, log_qv(why));
}

void
worker_on_status(struct worker *w, const struct wire_status *st)
{
	/* Replayed after the worker was reaped: only what it said counts (drained, its
	 * reason); no signal to a pid that may be reused, no work for a dead worker. */
	if (w->w_dead) {
		if (st->type == WIRE_ST_DRAINED) {
			w->w_final = st->counts;
			w->w_drained = true;
			if (w->w_state == WS_DRAINING)
				worker_set_state(w, WS_DRAINED, "drained");
		} else if (st->type == WIRE_ST_LIMIT && w->w_reason == WIRE_REASON_NONE) {
			w->w_reason = st->reason;
		} else if (st->type == WIRE_ST_INIT_FAILED) {
			log_init_failed(w, st);
		}
		return;
	}
	switch (st->type) {
	case WIRE_ST_READY:
		if (w->w_state != WS_STARTING)
			break;
		if (worker_set_state(w, WS_READY, "ready") == 0) {
			w->w_was_ready = true;
			evtimer_del(w->w_timer);
			w->w_pool->p_crash_streak = 0;
			pool_worker_ready(w);
		}
		break;
	case WIRE_ST_LIMIT:
		log_info("worker_limit", "fn=%s wid=%u pid=%d reason=%s hard=%u",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid,
		    wire_reason_name(st->reason), st->hard);
		if (st->hard)
			worker_terminate(w, st->reason);
		else if (w->w_state == WS_READY) {
			/* Capacity first: the replacement starts before this one drains. */
			w->w_replaced = true;
			worker_retire(w, st->reason);
			pool_fill(w->w_pool);
		}
		break;
	case WIRE_ST_DRAINED:
		w->w_final = st->counts;
		w->w_drained = true;
		if (w->w_state == WS_DRAINING && worker_set_state(w, WS_DRAINED, "drained") == 0)
			arm_timer(w, DRAINED_EXIT_MS);
		break;
	case WIRE_ST_INIT_FAILED:
		log_init_failed(w, st);
		break;
	default:
		log_warn("status_unknown", "fn=%s wid=%u type=%u", w->w_pool->p_conf->name,
		    w->w_id, st->type);
		break;
	}
}

/* Names every task still pending on the board of a dead worker: they are lost. */
static uint64_t
count_lost(struct worker *w)
{
	struct board *b = w->w_board;
	uint64_t lost = 0, now = clock_ms();

	if (b == NULL)
		return 0;
	for (uint32_t i = 0; i < w->w_board_slots; i++) {
		struct board_task *t = &b->tasks[i];
		uint64_t id = BOARD_LOAD(&t->id);

		char name[BOARD_TASK_NAME + 1];

		if (id == 0)
			continue;
		lost++;
		board_copy_name(name, t);
		log_warn("task_lost", "fn=%s wid=%u pid=%d task_id=%llu task_name=%s age_ms=%llu",
		    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, (unsigned long long)id,
		    name, (unsigned long long)(now - t->started_ms));
	}
	/* The counter is the truth if the slot table overflowed the log. */
	if (BOARD_LOAD(&b->tasks_pending) > lost)
		lost = BOARD_LOAD(&b->tasks_pending);
	return lost;
}

void
worker_on_exit(struct worker *w, int status)
{
	struct pool *p = w->w_pool;
	struct fn_totals *t = p->p_totals;
	struct board *b = w->w_board;
	struct wire_status st;
	bool clean, before_ready;
	char how[32];
	uint64_t lost;

	/* SIGCHLD can overtake the worker's last records (DRAINED just before it
	 * exited): read what is left in the pipe before judging how it ended. */
	w->w_dead = true;
	while (wire_recv_status(w->w_status, &st) == 1)
		worker_on_status(w, &st);
	clean = w->w_state == WS_DRAINED || w->w_state == WS_TERMINATING;
	/* Never ready: a crash at start even if it was terminated for hanging in init,
	 * so the backoff and the failed mark see it. */
	before_ready = !w->w_was_ready && !(w->w_state == WS_DRAINED);

	w->w_exit_status = status;
	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "signal=%d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "code=%d", WEXITSTATUS(status));
	lost = count_lost(w);
	if (b != NULL) {
		t->requests += BOARD_LOAD(&b->requests);
		t->tasks_started += BOARD_LOAD(&b->tasks_started);
		t->tasks_completed += BOARD_LOAD(&b->tasks_completed);
		t->tasks_failed += BOARD_LOAD(&b->tasks_failed);
	}
	t->tasks_lost += lost;
	/* An OOM kill arrives as SIGKILL we did not send: the reason is memory. */
	if (!clean && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && w->w_cgroup[0]) {
		struct cg_stats cs;
		if (cg_worker_stats(p->p_conf->name, w->w_id, &cs) == 0 && cs.oom_kills > 0) {
			w->w_reason = WIRE_REASON_MEMORY;
			log_warn("worker_oom", "fn=%s wid=%u pid=%d oom_kills=%llu", p->p_conf->name,
			    w->w_id, (int)w->w_pid, (unsigned long long)cs.oom_kills);
		}
	}
	/* Counted once, after the OOM check: a worker retired at the soft memory limit
	 * and then OOM-killed is one memory unload, not two. */
	if (w->w_reason < WIRE_REASON_MAX && w->w_reason != WIRE_REASON_NONE)
		t->unloads[w->w_reason]++;
	if (clean) {
		worker_set_state(w, WS_EXITED, how);
	} else {
		t->crashes++;
		worker_set_state(w, WS_CRASHED, how);
	}
	log_info("worker_exit", "fn=%s wid=%u gen=%u pid=%d %s lost=%llu reason=%s",
	    p->p_conf->name, w->w_id, w->w_gen, (int)w->w_pid, how,
	    (unsigned long long)lost, wire_reason_name(w->w_reason));

	/* Whatever the tenant left behind in the cgroup goes with the worker. */
	if (w->w_cgroup[0]) {
		cg_worker_kill(p->p_conf->name, w->w_id);
		cg_worker_remove(p->p_conf->name, w->w_id);
	}
	if (w->w_timer)
		event_free(w->w_timer);
	if (w->w_status_ev)
		event_free(w->w_status_ev);
	for (unsigned i = 0; i < w->w_nbatch; i++)
		close(w->w_batch[i]);
	close(w->w_ctl);
	close(w->w_status);
	board_unmap(b, w->w_board_slots);
	TAILQ_REMOVE(&p->p_workers, w, w_entry);
	pool_worker_gone(w, before_ready);
	free(w);
	pool_maybe_free(p);
}

void
worker_started(struct worker *w)
{
	start_deadline(w);
}
