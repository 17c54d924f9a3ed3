/*
 * lifecycle.c - the worker state machine (see lifecycle.h), and the only place the
 * reaping rule lives: a worker is never killed unless it is terminating, and it is
 * "exited" (a clean end) only if it reported drained or was sent SIGTERM; any other
 * death is a crash, and every task still pending on its scoreboard is counted lost
 * and named.
 *
 * What a state does on an event is one row of table[state][event]: the state it
 * moves to and the action it runs. allowed[] is the older, coarser rule (which
 * moves are legal at all); every move the table makes is checked against it.
 */
#include "lifecycle.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/names.h"
#include "../common/text.h"
#include "cgroup.h"
#include "evq.h"

static struct event_base *lc_base;

static const char *const wstate_names[WS_MAX] = {
	[WS_STARTING] = "starting", [WS_READY] = "ready", [WS_DRAINING] = "draining",
	[WS_DRAINED] = "drained", [WS_TERMINATING] = "terminating",
	[WS_EXITED] = "exited", [WS_CRASHED] = "crashed",
};

static const char *const wevent_names[WE_MAX] = {
	[WE_READY] = "ready", [WE_LIMIT_SOFT] = "limit_soft", [WE_LIMIT_HARD] = "limit_hard",
	[WE_DRAINED] = "drained", [WE_RETIRE] = "retire", [WE_TERMINATE] = "terminate",
	[WE_TIMER] = "timer", [WE_EXIT] = "exit",
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

/* ---- the real side effects ------------------------------------------------------ */

static void timer_cb(evutil_socket_t fd, short what, void *arg);

static int
real_send_retire(struct worker *w, uint32_t reason, uint32_t deadline_ms)
{
	struct wire_ctl msg = {
		.version = WIRE_VERSION, .type = WIRE_CTL_RETIRE, .arg = reason,
		.deadline_ms = deadline_ms,
	};

	return wire_send_ctl(w->w_ctl, &msg, NULL, 0);
}

static void
real_signal(struct worker *w, uint32_t reason)
{
	union sigval v = { .sival_int = (int)reason };

	if (reason == UINT32_MAX) {
		kill(w->w_pid, SIGKILL);
		return;
	}
	/* sigqueue carries the reason: the worker reads it from its signalfd. */
	if (sigqueue(w->w_pid, SIGTERM, v) < 0 && errno != ESRCH)
		log_warn("sigterm_failed", "fn=%s wid=%u pid=%d err=%s", w->w_conf->name,
		    w->w_id, (int)w->w_pid, log_qv(strerror(errno)));
}

static void
real_arm(struct worker *w, uint32_t ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	if (ms == 0) {
		if (w->w_timer != NULL)
			evtimer_del(w->w_timer);
		return;
	}
	if (w->w_timer == NULL)
		w->w_timer = evtimer_new(lc_base, timer_cb, w);
	if (w->w_timer != NULL)
		evtimer_add(w->w_timer, &tv);
}

static void
real_report(struct worker *w, int type, uint32_t arg)
{
	evq_push((enum evq_type)type, w->w_pool, w, arg);
}

static const struct worker_ops real_ops = {
	real_send_retire, real_signal, real_arm, real_report,
};
static const struct worker_ops *ops = &real_ops;

void
lifecycle_set_ops(const struct worker_ops *o)
{
	ops = o != NULL ? o : &real_ops;
}

void
lifecycle_init(struct event_base *base)
{
	lc_base = base;
}

/* ---- actions: what a row does after the state changed ---------------------------- */

typedef void (*action_fn)(struct worker *w, uint32_t reason);

static void
a_ready(struct worker *w, uint32_t reason)
{
	w->w_was_ready = true;
	ops->arm(w, 0);
	ops->report(w, EVQ_WORKER_READY, 0);
}

static void
a_terminate(struct worker *w, uint32_t reason)
{
	if (w->w_reason == WIRE_REASON_NONE)
		w->w_reason = reason;
	ops->signal(w, reason);
	ops->arm(w, w->w_conf->limits.beforeunload_grace_ms);
}

static void
a_retire(struct worker *w, uint32_t reason)
{
	const struct fn_limits *lim = &w->w_conf->limits;

	w->w_reason = reason;
	if (ops->send_retire(w, reason, lim->drain_timeout_ms + lim->beforeunload_grace_ms) < 0) {
		/* It cannot hear us: it is dying or hung. SIGTERM is the other way in. */
		log_warn("retire_send_failed", "fn=%s wid=%u pid=%d err=%s", w->w_conf->name,
		    w->w_id, (int)w->w_pid, log_qv(strerror(errno)));
		worker_event(w, WE_TERMINATE, reason ? reason : WIRE_REASON_TERMINATION);
		return;
	}
	ops->arm(w, lim->drain_timeout_ms);
}

/* Capacity first: a replacement is asked for before this one leaves. */
static void
replace(struct worker *w)
{
	if (w->w_replaced)
		return;
	w->w_replaced = true;
	ops->report(w, EVQ_POOL_FILL, 0);
}

static void
a_replace_retire(struct worker *w, uint32_t reason)
{
	replace(w);
	a_retire(w, reason);
}

static void
a_replace_terminate(struct worker *w, uint32_t reason)
{
	replace(w);
	a_terminate(w, reason);
}

static void
a_start_timeout(struct worker *w, uint32_t reason)
{
	log_warn("start_timeout", "fn=%s wid=%u pid=%d ms=%u", w->w_conf->name, w->w_id,
	    (int)w->w_pid, START_TIMEOUT_MS);
	a_terminate(w, WIRE_REASON_TERMINATION);
}

static void
a_drain_timeout(struct worker *w, uint32_t reason)
{
	log_info("drain_timeout", "fn=%s wid=%u pid=%d pending=%llu", w->w_conf->name,
	    w->w_id, (int)w->w_pid,
	    w->w_board ? (unsigned long long)BOARD_LOAD(&w->w_board->tasks_pending) : 0ULL);
	a_terminate(w, WIRE_REASON_TERMINATION);
}

/* It said drained and should exit now; if it does not, SIGTERM after a while. */
static void
a_drained(struct worker *w, uint32_t reason)
{
	ops->arm(w, DRAINED_EXIT_MS);
}

static void
a_kill(struct worker *w, uint32_t reason)
{
	/* The only SIGKILL of a worker: it had SIGTERM and the whole grace. */
	log_warn("worker_kill", "fn=%s wid=%u pid=%d grace_ms=%u", w->w_conf->name, w->w_id,
	    (int)w->w_pid, w->w_conf->limits.beforeunload_grace_ms);
	ops->signal(w, UINT32_MAX);
}

/* REASON here: 1 when it never became ready (worker_on_exit decides). */
static void
a_gone(struct worker *w, uint32_t reason)
{
	ops->arm(w, 0);
	ops->report(w, EVQ_WORKER_GONE, reason);
}

/* ---- the table --------------------------------------------------------------------- */

struct row {
	bool on;             /* false: the event is ignored in this state */
	enum wstate to;
	action_fn act;
};

#define IGNORE { false, WS_MAX, NULL }
#define GO(to, act) { true, to, act }

static const struct row table[WS_MAX][WE_MAX] = {
	[WS_STARTING] = {
		[WE_READY] = GO(WS_READY, a_ready),
		[WE_LIMIT_SOFT] = IGNORE,
		[WE_LIMIT_HARD] = GO(WS_TERMINATING, a_replace_terminate),
		[WE_DRAINED] = IGNORE,
		[WE_RETIRE] = GO(WS_DRAINING, a_retire),
		[WE_TERMINATE] = GO(WS_TERMINATING, a_terminate),
		[WE_TIMER] = GO(WS_TERMINATING, a_start_timeout),
		[WE_EXIT] = GO(WS_CRASHED, a_gone),
	},
	[WS_READY] = {
		[WE_READY] = IGNORE,
		[WE_LIMIT_SOFT] = GO(WS_DRAINING, a_replace_retire),
		[WE_LIMIT_HARD] = GO(WS_TERMINATING, a_replace_terminate),
		[WE_DRAINED] = IGNORE,
		[WE_RETIRE] = GO(WS_DRAINING, a_retire),
		[WE_TERMINATE] = GO(WS_TERMINATING, a_terminate),
		[WE_TIMER] = IGNORE,
		[WE_EXIT] = GO(WS_CRASHED, a_gone),
	},
	[WS_DRAINING] = {
		[WE_READY] = IGNORE,
		[WE_LIMIT_SOFT] = IGNORE,
		[WE_LIMIT_HARD] = GO(WS_TERMINATING, a_replace_terminate),
		[WE_DRAINED] = GO(WS_DRAINED, a_drained),
		[WE_RETIRE] = IGNORE,
		[WE_TERMINATE] = GO(WS_TERMINATING, a_terminate),
		[WE_TIMER] = GO(WS_TERMINATING, a_drain_timeout),
		[WE_EXIT] = GO(WS_CRASHED, a_gone),
	},
	[WS_DRAINED] = {
		[WE_READY] = IGNORE,
		[WE_LIMIT_SOFT] = IGNORE,
		[WE_LIMIT_HARD] = GO(WS_TERMINATING, a_replace_terminate),
		[WE_DRAINED] = IGNORE,
		[WE_RETIRE] = IGNORE,
		[WE_TERMINATE] = GO(WS_TERMINATING, a_terminate),
		[WE_TIMER] = GO(WS_TERMINATING, a_terminate),
		[WE_EXIT] = GO(WS_EXITED, a_gone),
	},
	[WS_TERMINATING] = {
		[WE_READY] = IGNORE,
		[WE_LIMIT_SOFT] = IGNORE,
		[WE_LIMIT_HARD] = IGNORE,
		[WE_DRAINED] = IGNORE,
		[WE_RETIRE] = IGNORE,
		[WE_TERMINATE] = IGNORE,
		[WE_TIMER] = GO(WS_TERMINATING, a_kill),
		[WE_EXIT] = GO(WS_EXITED, a_gone),
	},
	/* Reaped: nothing moves it again. */
	[WS_EXITED] = { IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE },
	[WS_CRASHED] = { IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE },
};

const char *
wstate_name(enum wstate s)
{
	return NAME_OF(wstate_names, s);
}

const char *
wevent_name(enum wevent e)
{
	return NAME_OF(wevent_names, e);
}

bool
worker_is_live(const struct worker *w)
{
	return w->w_state != WS_EXITED && w->w_state != WS_CRASHED;
}

/* Runs the row; WHY is what the transition line says (a reason, "ready", an exit). */
static int
run(struct worker *w, enum wevent ev, uint32_t reason, const char *why)
{
	enum wstate from = w->w_state;
	const struct row *r;

	if (from >= WS_MAX || ev >= WE_MAX)
		return -1;
	r = &table[from][ev];
	if (!r->on)
		return -1;
	if (r->to != from) {
		if (!(allowed[from] & (1u << r->to))) {
			/* A table row the legal-transitions rule forbids: a bug, said loudly. */
			log_error("worker_state_refused", "fn=%s wid=%u gen=%u pid=%d from=%s to=%s event=%s",
			    w->w_conf->name, w->w_id, w->w_gen, (int)w->w_pid, wstate_name(from),
			    wstate_name(r->to), wevent_name(ev));
			return -1;
		}
		w->w_state = r->to;
		log_info("worker_state", "fn=%s wid=%u gen=%u pid=%d from=%s to=%s reason=%s pending=%llu",
		    w->w_conf->name, w->w_id, w->w_gen, (int)w->w_pid, wstate_name(from),
		    wstate_name(r->to), why,
		    w->w_board ? (unsigned long long)BOARD_LOAD(&w->w_board->tasks_pending) : 0ULL);
	}
	if (r->act != NULL)
		r->act(w, reason);
	return 0;
}

int
worker_event(struct worker *w, enum wevent ev, uint32_t reason)
{
	const char *why;

	switch (ev) {
	case WE_READY: why = "ready"; break;
	case WE_DRAINED: why = "drained"; break;
	case WE_TIMER: why = "timeout"; break;
	default: why = wire_reason_name(reason); break;
	}
	return run(w, ev, reason, why);
}

void
worker_retire(struct worker *w, uint32_t reason)
{
	worker_event(w, WE_RETIRE, reason);
}

void
worker_terminate(struct worker *w, uint32_t reason)
{
	worker_event(w, WE_TERMINATE, reason);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_event(arg, WE_TIMER, WIRE_REASON_NONE);
}

/* The worker's reason for failing at start; its bytes may come from tenant code. */
static void
log_init_failed(const struct worker *w, const struct wire_status *st)
{
	char why[sizeof(st->text)];

	text_sanitize(why, sizeof(why), st->text, sizeof(st->text), 0);
	log_error("worker_init_failed", "fn=%s wid=%u pid=%d why=%s",
	    w->w_conf->name, w->w_id, (int)w->w_pid, log_qv(why));
}

void
worker_on_status(struct worker *w, const struct wire_status *st)
{
	/* Replayed after the worker was reaped: only what it said counts (drained, its
	 * reason); no signal to a pid that may be reused, no work for a dead worker. */
	if (w->w_dead) {
		if (st->type == WIRE_ST_DRAINED)
			worker_event(w, WE_DRAINED, WIRE_REASON_NONE);
		else if (st->type == WIRE_ST_LIMIT && w->w_reason == WIRE_REASON_NONE)
			w->w_reason = st->reason;
		else if (st->type == WIRE_ST_INIT_FAILED)
			log_init_failed(w, st);
		return;
	}
	switch (st->type) {
	case WIRE_ST_READY:
		worker_event(w, WE_READY, WIRE_REASON_NONE);
		break;
	case WIRE_ST_LIMIT:
		log_info("worker_limit", "fn=%s wid=%u pid=%d reason=%s hard=%u", w->w_conf->name,
		    w->w_id, (int)w->w_pid, wire_reason_name(st->reason), st->hard);
		worker_event(w, st->hard ? WE_LIMIT_HARD : WE_LIMIT_SOFT, st->reason);
		break;
	case WIRE_ST_DRAINED:
		worker_event(w, WE_DRAINED, WIRE_REASON_NONE);
		break;
	case WIRE_ST_INIT_FAILED:
		log_init_failed(w, st);
		break;
	default:
		log_warn("status_unknown", "fn=%s wid=%u type=%u", w->w_conf->name, w->w_id,
		    st->type);
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
		    w->w_conf->name, w->w_id, (int)w->w_pid, (unsigned long long)id, name,
		    (unsigned long long)(now - t->started_ms));
	}
	/* The counter is the truth if the slot table overflowed the log. */
	if (BOARD_LOAD(&b->tasks_pending) > lost)
		lost = BOARD_LOAD(&b->tasks_pending);
	return lost;
}

/* The dead worker's figures go to its function's totals; an OOM kill names memory. */
static uint64_t
account(struct worker *w, int status, bool clean)
{
	struct fn_totals *t = w->w_totals;
	struct board *b = w->w_board;
	uint64_t lost;

	/* A worker that drained with nothing pending has no slot to name: scanning its
	 * table (max_pending_tasks slots, a megabyte by default) for each of 500 workers
	 * leaving a reload would fault in half a gigabyte on the loop. */
	if (w->w_state == WS_DRAINED && b != NULL && BOARD_LOAD(&b->tasks_pending) == 0)
		lost = 0;
	else
		lost = count_lost(w);

	if (b != NULL) {
		t->requests += BOARD_LOAD(&b->requests);
		t->tasks_started += BOARD_LOAD(&b->tasks_started);
		t->tasks_completed += BOARD_LOAD(&b->tasks_completed);
		t->tasks_failed += BOARD_LOAD(&b->tasks_failed);
		hist_add(&t->req_hist, &b->req_hist);
		hist_add(&t->task_hist, &b->task_hist);
	}
	t->tasks_lost += lost;
	/* An OOM kill arrives as SIGKILL we did not send: the reason is memory. */
	if (!clean && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && w->w_cgroup[0]) {
		struct cg_stats cs;
		if (cg_worker_stats(w->w_conf->name, w->w_id, &cs) == 0 && cs.oom_kills > 0) {
			w->w_reason = WIRE_REASON_MEMORY;
			log_warn("worker_oom", "fn=%s wid=%u pid=%d oom_kills=%llu", w->w_conf->name,
			    w->w_id, (int)w->w_pid, (unsigned long long)cs.oom_kills);
		}
	}
	/* Counted once, after the OOM check: a worker retired at the soft memory limit
	 * and then OOM-killed is one memory unload, not two. */
	if (w->w_reason < WIRE_REASON_MAX && w->w_reason != WIRE_REASON_NONE)
		t->unloads[w->w_reason]++;
	if (!clean)
		t->crashes++;
	return lost;
}

void
worker_on_exit(struct worker *w, int status)
{
	struct wire_status st;
	bool clean, before_ready;
	char how[32];
	uint64_t lost;

	/* SIGCHLD can overtake the worker's last records (DRAINED just before it
	 * exited): read what is left in the pipe before judging how it ended. */
	w->w_dead = true;
	while (w->w_status >= 0 && wire_recv_status(w->w_status, &st) == 1)
		worker_on_status(w, &st);
	clean = w->w_state == WS_DRAINED || w->w_state == WS_TERMINATING;
	/* Never ready: a crash at start even if it was terminated for hanging in init,
	 * so the backoff and the failed mark see it (one that drained did not crash). */
	before_ready = !w->w_was_ready && w->w_state != WS_DRAINED;
	if (WIFSIGNALED(status))
		snprintf(how, sizeof(how), "signal=%d", WTERMSIG(status));
	else
		snprintf(how, sizeof(how), "code=%d", WEXITSTATUS(status));
	lost = account(w, status, clean);
	run(w, WE_EXIT, before_ready, how);
	log_info("worker_exit", "fn=%s wid=%u gen=%u pid=%d %s lost=%llu reason=%s",
	    w->w_conf->name, w->w_id, w->w_gen, (int)w->w_pid, how, (unsigned long long)lost,
	    wire_reason_name(w->w_reason));

	/* Whatever the tenant left behind in the cgroup goes with the worker. */
	if (w->w_cgroup[0]) {
		cg_worker_kill(w->w_conf->name, w->w_id);
		cg_worker_remove(w->w_conf->name, w->w_id);
		w->w_cgroup[0] = '\0';
	}
	if (w->w_timer) {
		event_free(w->w_timer);
		w->w_timer = NULL;
	}
	if (w->w_status_ev) {
		event_free(w->w_status_ev);
		w->w_status_ev = NULL;
	}
	if (w->w_ctl_ev) {
		event_free(w->w_ctl_ev);
		w->w_ctl_ev = NULL;
	}
	for (unsigned i = 0; i < w->w_nbatch; i++)
		close(w->w_batch[i]);
	w->w_nbatch = 0;
	for (unsigned i = 0; i < w->w_ncarry; i++) {
		close(w->w_carry_fd[i]);
		free(w->w_carry[i]);
	}
	w->w_ncarry = 0;
	if (w->w_ctl >= 0)
		close(w->w_ctl);
	if (w->w_status >= 0)
		close(w->w_status);
	w->w_ctl = w->w_status = -1;
	board_unmap(w->w_board, w->w_board_slots);
	w->w_board = NULL;
}

void
worker_started(struct worker *w)
{
	ops->arm(w, START_TIMEOUT_MS);
}

uint64_t
worker_load(const struct worker *w)
{
	return w->w_board ? w->w_sent - BOARD_LOAD(&w->w_board->conns_closed) : 0;
}
