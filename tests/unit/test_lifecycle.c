/*
 * test_lifecycle.c - the worker state x event table, driven with a fake worker: no
 * process, no socket, no loop. The fake ops record what the table asked for
 * (RETIRE sent, signals, timers armed, events reported up).
 */
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>

#include "../../supervisor/evq.h"
#include "../../common/log.h"
#include "../../supervisor/lifecycle.h"
#include "unit.h"

static struct {
	int retires, sigterms, sigkills, reports[8];
	uint32_t last_reason, last_arm, last_report_arg;
	int retire_fails;       /* the next send_retire fails */
} rec;

static int
fake_retire(struct worker *w, uint32_t reason, uint32_t deadline_ms)
{
	rec.retires++;
	rec.last_reason = reason;
	if (rec.retire_fails) {
		rec.retire_fails = 0;
		errno = EPIPE;
		return -1;
	}
	return 0;
}

static void
fake_signal(struct worker *w, uint32_t reason)
{
	if (reason == UINT32_MAX)
		rec.sigkills++;
	else {
		rec.sigterms++;
		rec.last_reason = reason;
	}
}

static void
fake_arm(struct worker *w, uint32_t ms)
{
	rec.last_arm = ms;
}

static void
fake_report(struct worker *w, int type, uint32_t arg)
{
	if (type >= 0 && type < 8)
		rec.reports[type]++;
	rec.last_report_arg = arg;
}

static const struct worker_ops fake = { fake_retire, fake_signal, fake_arm, fake_report };

static struct fn_conf conf;
static struct fn_totals totals;
static struct worker w;

static void
fresh(enum wstate s)
{
	memset(&rec, 0, sizeof(rec));
	memset(&w, 0, sizeof(w));
	memset(&totals, 0, sizeof(totals));
	conf.name = "fake";
	conf.limits.drain_timeout_ms = 3000;
	conf.limits.beforeunload_grace_ms = 700;
	w.w_conf = &conf;
	w.w_totals = &totals;
	w.w_pid = 999999;       /* never signalled: the ops are fake */
	w.w_ctl = w.w_status = -1;
	w.w_state = s;
}

/* Start -> ready -> retire -> drained -> exit: clean, no signal, told up twice. */
static void
case_happy_path(void)
{
	fresh(WS_STARTING);
	worker_started(&w);
	UNIT_CHECK(rec.last_arm == START_TIMEOUT_MS);
	UNIT_CHECK(worker_event(&w, WE_READY, 0) == 0 && w.w_state == WS_READY);
	UNIT_CHECK(rec.reports[EVQ_WORKER_READY] == 1 && rec.last_arm == 0 && w.w_was_ready);
	worker_retire(&w, WIRE_REASON_TERMINATION);
	UNIT_CHECK(w.w_state == WS_DRAINING && rec.retires == 1);
	UNIT_CHECK(rec.last_arm == conf.limits.drain_timeout_ms);
	UNIT_CHECK(worker_event(&w, WE_DRAINED, 0) == 0 && w.w_state == WS_DRAINED);
	UNIT_CHECK(rec.last_arm == DRAINED_EXIT_MS);
	worker_on_exit(&w, 0);
	UNIT_CHECK(w.w_state == WS_EXITED);
	UNIT_CHECKF(rec.reports[EVQ_WORKER_GONE] == 1 && rec.last_report_arg == 0,
	    "gone %d arg %u", rec.reports[EVQ_WORKER_GONE], rec.last_report_arg);
	UNIT_CHECK(rec.sigterms == 0 && rec.sigkills == 0 && totals.crashes == 0);
out:;
}

/* Dying on its own in any live state but drained/terminating is a crash. */
static void
case_unexpected_exit_is_a_crash(void)
{
	static const enum wstate live[] = { WS_STARTING, WS_READY, WS_DRAINING };

	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		fresh(live[i]);
		w.w_was_ready = live[i] != WS_STARTING;
		worker_on_exit(&w, SIGKILL);   /* a status that says "killed by 9" */
		UNIT_CHECKF(w.w_state == WS_CRASHED, "from %s: %s", wstate_name(live[i]),
		    wstate_name(w.w_state));
		UNIT_CHECK(totals.crashes == 1);
		/* Crashed before ready: the pool's backoff must hear it. */
		UNIT_CHECK(rec.last_report_arg == (live[i] == WS_STARTING));
	}
out:;
}

/* Terminating: SIGTERM with the reason, then SIGKILL only when the grace passed. */
static void
case_terminate_then_kill(void)
{
	fresh(WS_READY);
	worker_terminate(&w, WIRE_REASON_CPU);
	UNIT_CHECK(w.w_state == WS_TERMINATING && rec.sigterms == 1);
	UNIT_CHECK(rec.last_reason == WIRE_REASON_CPU && w.w_reason == WIRE_REASON_CPU);
	UNIT_CHECK(rec.last_arm == conf.limits.beforeunload_grace_ms);
	UNIT_CHECK(rec.sigkills == 0);
	/* A second terminate changes nothing: one SIGTERM only. */
	UNIT_CHECK(worker_event(&w, WE_TERMINATE, WIRE_REASON_MEMORY) == -1);
	UNIT_CHECK(rec.sigterms == 1 && w.w_reason == WIRE_REASON_CPU);
	UNIT_CHECK(worker_event(&w, WE_TIMER, 0) == 0 && rec.sigkills == 1);
	worker_on_exit(&w, SIGKILL);
	UNIT_CHECK(w.w_state == WS_EXITED && totals.crashes == 0);
	UNIT_CHECK(totals.unloads[WIRE_REASON_CPU] == 1);
out:;
}

/* Soft limit: a replacement is asked for first, then RETIRE with the reason. */
static void
case_soft_limit_replaces_then_retires(void)
{
	fresh(WS_READY);
	UNIT_CHECK(worker_event(&w, WE_LIMIT_SOFT, WIRE_REASON_MEMORY) == 0);
	UNIT_CHECK(rec.reports[EVQ_POOL_FILL] == 1 && w.w_replaced);
	UNIT_CHECK(w.w_state == WS_DRAINING && rec.retires == 1);
	UNIT_CHECK(rec.last_reason == WIRE_REASON_MEMORY);
	/* Already leaving: a second soft limit is ignored, no second replacement. */
	UNIT_CHECK(worker_event(&w, WE_LIMIT_SOFT, WIRE_REASON_CPU) == -1);
	UNIT_CHECK(rec.reports[EVQ_POOL_FILL] == 1);
	/* The hard limit still terminates it, without another replacement. */
	UNIT_CHECK(worker_event(&w, WE_LIMIT_HARD, WIRE_REASON_MEMORY) == 0);
	UNIT_CHECK(w.w_state == WS_TERMINATING && rec.reports[EVQ_POOL_FILL] == 1);
out:;
}

/* Deadlines: start, drain and after-drained timers all lead to SIGTERM. */
static void
case_timers(void)
{
	static const enum wstate from[] = { WS_STARTING, WS_DRAINING, WS_DRAINED };

	for (size_t i = 0; i < sizeof(from) / sizeof(from[0]); i++) {
		fresh(from[i]);
		UNIT_CHECK(worker_event(&w, WE_TIMER, 0) == 0);
		UNIT_CHECKF(w.w_state == WS_TERMINATING && rec.sigterms == 1, "from %s",
		    wstate_name(from[i]));
	}
	/* Ready has no deadline: a stray timer does nothing. */
	fresh(WS_READY);
	UNIT_CHECK(worker_event(&w, WE_TIMER, 0) == -1 && w.w_state == WS_READY);
out:;
}

/* A RETIRE the worker cannot hear turns into SIGTERM at once. */
static void
case_retire_unheard_terminates(void)
{
	fresh(WS_READY);
	rec.retire_fails = 1;
	worker_retire(&w, WIRE_REASON_EARLY_DROP);
	UNIT_CHECK(w.w_state == WS_TERMINATING && rec.sigterms == 1);
	UNIT_CHECK(rec.last_reason == WIRE_REASON_EARLY_DROP);
out:;
}

/* Reaped is final: no event moves it, nothing is signalled. */
static void
case_reaped_is_final(void)
{
	fresh(WS_READY);
	worker_on_exit(&w, 0);
	for (int ev = 0; ev < WE_MAX; ev++)
		UNIT_CHECKF(worker_event(&w, (enum wevent)ev, WIRE_REASON_TERMINATION) == -1,
		    "%s moved a crashed worker", wevent_name((enum wevent)ev));
	UNIT_CHECK(rec.sigterms == 0 && rec.sigkills == 0 && rec.retires == 0);
out:;
}

/* A worker that drained before it was ever ready did not crash at start. */
static void
case_drained_before_ready_is_clean(void)
{
	fresh(WS_STARTING);
	worker_retire(&w, WIRE_REASON_TERMINATION);
	UNIT_CHECK(worker_event(&w, WE_DRAINED, 0) == 0);
	worker_on_exit(&w, 0);
	UNIT_CHECK(w.w_state == WS_EXITED && rec.last_report_arg == 0);
out:;
}

/* Every (state, event) either is ignored or lands in a state the legal-transitions
 * rule allows; no event is handled from a reaped state. */
static void
case_table_is_total_and_legal(void)
{
	for (int s = 0; s < WS_MAX; s++) {
		for (int e = 0; e < WE_MAX; e++) {
			enum wstate to;
			int r;

			if (e == WE_EXIT)
				continue;       /* worker_on_exit's own path, cases above */
			fresh((enum wstate)s);
			r = worker_event(&w, (enum wevent)e, WIRE_REASON_TERMINATION);
			to = w.w_state;
			if (s == WS_EXITED || s == WS_CRASHED)
				UNIT_CHECKF(r == -1 && (int)to == s, "%s x %s", wstate_name(s),
				    wevent_name((enum wevent)e));
			/* A live worker never becomes reaped by anything but its exit. */
			UNIT_CHECKF(s == WS_EXITED || s == WS_CRASHED ||
			    (to != WS_EXITED && to != WS_CRASHED), "%s x %s -> %s",
			    wstate_name(s), wevent_name((enum wevent)e), wstate_name(to));
		}
	}
out:;
}

int
main(int argc, char **argv)
{
	log_level = LOG_LVL_ERROR;   /* the transition lines are not the verdict */
	lifecycle_set_ops(&fake);
	unit_run("happy_path", case_happy_path);
	unit_run("unexpected_exit_is_a_crash", case_unexpected_exit_is_a_crash);
	unit_run("terminate_then_kill", case_terminate_then_kill);
	unit_run("soft_limit_replaces_then_retires", case_soft_limit_replaces_then_retires);
	unit_run("timers", case_timers);
	unit_run("retire_unheard_terminates", case_retire_unheard_terminates);
	unit_run("reaped_is_final", case_reaped_is_final);
	unit_run("drained_before_ready_is_clean", case_drained_before_ready_is_clean);
	unit_run("table_is_total_and_legal", case_table_is_total_and_legal);
	return unit_exit();
}
