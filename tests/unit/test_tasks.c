/*
 * test_tasks.c - background tasks and hooks (worker/tasks.c, worker/hooks.c) on a
 * real event base, a real scoreboard (memfd) and the real task thread pool. The
 * test plays main.c's part: it defines wk and the two calls the library makes back.
 */
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "board.h"
#include "clock.h"
#include "log.h"
#include "unit.h"
#include "wire.h"
#include "worker.h"

#define MAX_PENDING	10050
#define HOLD_TASKS	10000

struct edge_ctx wk;

static unsigned drained_calls;
static char log_path[] = "/tmp/test_tasks.XXXXXX";

/* What the task-error hook saw. */
struct seen_error {
	int64_t id;
	char name[64];
	char reason[64];
	int code;
};
static struct seen_error errs[64];
static unsigned nerrs;
static bool prevent;

static unsigned unload_calls;
static char unload_reason[32];
static int64_t unload_deadline;

static atomic_uint ran;
static atomic_bool slow_done;
static atomic_bool gate;
static atomic_uint gate_ran;

void
worker_check_drained(void)
{
	drained_calls++;
}

void
worker_report_limit(uint32_t reason, bool hard)
{
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Runs the loop until COND holds or MS pass; OK gets the final COND. */
#define WAIT_FOR(ok, cond, ms) do {					\
	uint64_t d_ = clock_ms() + (ms);				\
	while (!(cond) && clock_ms() < d_)				\
		event_base_loop(wk.base, EVLOOP_ONCE);			\
	(ok) = (cond);							\
} while (0)

/* Runs the loop for MS: only to give a thing that must NOT happen its chance. */
static void
run_loop_for(unsigned ms)
{
	uint64_t d = clock_ms() + ms;

	while (clock_ms() < d)
		event_base_loop(wk.base, EVLOOP_ONCE);
}

static int
sleep_task(void *arg)
{
	sleep_ms(20);
	atomic_fetch_add(&ran, 1);
	return 0;
}

static int
count_task(void *arg)
{
	atomic_fetch_add(&ran, 1);
	return 0;
}

static int
fail_task(void *arg)
{
	return (int)(intptr_t)arg;
}

static int
slow_task(void *arg)
{
	sleep_ms(300);
	atomic_store(&slow_done, true);
	return 0;
}

static int
gate_task(void *arg)
{
	uint64_t d = clock_ms() + 10000;

	while (!atomic_load(&gate) && clock_ms() < d)
		sleep_ms(1);
	atomic_fetch_add(&gate_ran, 1);
	return 0;
}

static int
log_task(void *arg)
{
	edge_log(&wk, "from a task thread n=%d", 42);
	return 0;
}

static void
error_hook(edge_ctx *ctx, struct edge_task_error *err, void *arg)
{
	struct seen_error *e = &errs[nerrs % 64];

	e->id = err->id;
	snprintf(e->name, sizeof(e->name), "%s", err->name);
	snprintf(e->reason, sizeof(e->reason), "%s", err->reason);
	e->code = err->code;
	nerrs++;
	if (prevent)
		edge_task_error_prevent_default(err);
}

static void
unload_hook(edge_ctx *ctx, const char *reason, int64_t deadline_ms, void *arg)
{
	unload_calls++;
	snprintf(unload_reason, sizeof(unload_reason), "%s", reason);
	unload_deadline = deadline_ms;
}

static struct seen_error *
last_error(void)
{
	return &errs[(nerrs - 1) % 64];
}

/* Whether the log file holds NEEDLE. */
static bool
log_has(const char *needle)
{
	static char buf[1 << 20];
	FILE *f;
	size_t n;

	if ((f = fopen(log_path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static unsigned
slots_used(void)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < wk.board->task_slots; i++)
		if (BOARD_LOAD(&wk.board->tasks[i].id) != 0)
			n++;
	return n;
}

static struct board_task *
slot_of(int64_t id)
{
	for (uint32_t i = 0; i < wk.board->task_slots; i++)
		if (BOARD_LOAD(&wk.board->tasks[i].id) == (uint64_t)id)
			return &wk.board->tasks[i];
	return NULL;
}

static long
rss_bytes(void)
{
	long size, res;
	FILE *f;

	if ((f = fopen("/proc/self/statm", "r")) == NULL)
		return -1;
	if (fscanf(f, "%ld %ld", &size, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static void
case_blocking_100(void)
{
	uint64_t started = wk.board->tasks_started;
	uint64_t completed = wk.board->tasks_completed;
	uint64_t failed = wk.board->tasks_failed;
	struct board_task *slot;
	int64_t id, prev = 0, first = 0;
	bool ok;

	atomic_store(&ran, 0);
	for (int i = 0; i < 100; i++) {
		id = edge_wait_until(&wk, sleep_task, NULL);
		UNIT_CHECKF(id > prev, "id %lld after %lld", (long long)id, (long long)prev);
		if (i == 0)
			first = id;
		prev = id;
	}
	UNIT_CHECKF(first == 1, "first id %lld", (long long)first);
	UNIT_CHECKF(tasks_pending() > 0, "nothing pending right after submit");
	slot = slot_of(prev);
	UNIT_CHECKF(slot != NULL && strcmp(slot->name, "task") == 0,
	    "last task not on the board as \"task\"");
	WAIT_FOR(ok, wk.board->tasks_completed == completed + 100, 5000);
	UNIT_CHECKF(ok, "completed %llu of 100",
	    (unsigned long long)(wk.board->tasks_completed - completed));
	UNIT_CHECKF(atomic_load(&ran) == 100, "ran %u", atomic_load(&ran));
	UNIT_CHECK(wk.board->tasks_started == started + 100);
	UNIT_CHECK(wk.board->tasks_failed == failed);
	UNIT_CHECKF(wk.board->tasks_pending == 0, "board pending %llu",
	    (unsigned long long)wk.board->tasks_pending);
	UNIT_CHECK(tasks_pending() == 0);
	UNIT_CHECKF(slots_used() == 0, "%u slots still used", slots_used());
out:
	;
}

/* Tasks that finish while the loop sleeps are all ended by one loop run. */
static void
case_eventfd_batching(void)
{
	uint64_t completed = wk.board->tasks_completed;
	uint64_t d;
	unsigned iters = 0;

	atomic_store(&ran, 0);
	for (int i = 0; i < 200; i++)
		UNIT_CHECK(edge_wait_until_named(&wk, "burst", 0, count_task, NULL) > 0);
	d = clock_ms() + 5000;
	while (atomic_load(&ran) < 200 && clock_ms() < d)
		sleep_ms(1);
	UNIT_CHECKF(atomic_load(&ran) == 200, "ran %u", atomic_load(&ran));
	while (wk.board->tasks_completed < completed + 200 && iters < 50) {
		event_base_loop(wk.base, EVLOOP_ONCE);
		iters++;
	}
	UNIT_CHECKF(wk.board->tasks_completed == completed + 200, "completed %llu",
	    (unsigned long long)(wk.board->tasks_completed - completed));
	UNIT_CHECKF(iters <= 3, "%u loop runs for 200 finished tasks", iters);
	UNIT_CHECK(tasks_pending() == 0);
out:
	;
}

static void
case_failing_task(void)
{
	uint64_t failed = wk.board->tasks_failed;
	unsigned n0 = nerrs;
	char needle[160];
	int64_t id, id2;
	bool ok;

	prevent = false;
	id = edge_wait_until_named(&wk, "fail-job", 0, fail_task, (void *)(intptr_t)7);
	UNIT_CHECK(id > 0);
	WAIT_FOR(ok, nerrs == n0 + 1, 5000);
	UNIT_CHECKF(ok, "error hook not called");
	UNIT_CHECK(last_error()->id == id);
	UNIT_CHECKF(strcmp(last_error()->name, "fail-job") == 0, "name %s", last_error()->name);
	UNIT_CHECKF(strcmp(last_error()->reason, "failed") == 0, "reason %s",
	    last_error()->reason);
	UNIT_CHECK(last_error()->code == 7);
	UNIT_CHECK(wk.board->tasks_failed == failed + 1);
	UNIT_CHECK(tasks_pending() == 0);
	snprintf(needle, sizeof(needle), "lvl=warn proc=test ev=task_error task_id=%lld "
	    "task_name=fail-job reason=failed code=7 handled=0", (long long)id);
	UNIT_CHECKF(log_has(needle), "no warn line: %s", needle);

	prevent = true;
	id2 = edge_wait_until_named(&wk, "fail-job", 0, fail_task, (void *)(intptr_t)-2);
	WAIT_FOR(ok, nerrs == n0 + 2, 5000);
	prevent = false;
	UNIT_CHECKF(ok, "error hook not called for the second task");
	UNIT_CHECK(last_error()->id == id2 && last_error()->code == -2);
	snprintf(needle, sizeof(needle), "task_id=%lld ", (long long)id2);
	UNIT_CHECKF(!log_has(needle), "prevented error still logged");
out:
	prevent = false;
}

static void
case_timeout(void)
{
	uint64_t completed = wk.board->tasks_completed;
	uint64_t failed = wk.board->tasks_failed;
	unsigned n0 = nerrs;
	uint64_t t0, dt;
	int64_t id;
	bool ok;

	atomic_store(&slow_done, false);
	t0 = clock_ms();
	id = edge_wait_until_named(&wk, "slow", 50, slow_task, NULL);
	UNIT_CHECK(id > 0);
	UNIT_CHECK(slot_of(id) != NULL && slot_of(id)->deadline_ms == 50);
	WAIT_FOR(ok, nerrs == n0 + 1, 5000);
	dt = clock_ms() - t0;
	UNIT_CHECKF(ok, "no timeout reported");
	UNIT_CHECKF(strcmp(last_error()->reason, "timeout") == 0, "reason %s",
	    last_error()->reason);
	UNIT_CHECK(last_error()->id == id && last_error()->code == 0);
	UNIT_CHECKF(strcmp(last_error()->name, "slow") == 0, "name %s", last_error()->name);
	UNIT_CHECKF(dt >= 45 && dt < 280, "timeout after %llu ms", (unsigned long long)dt);
	UNIT_CHECKF(!atomic_load(&slow_done), "task finished before its timeout fired");
	UNIT_CHECK(wk.board->tasks_failed == failed + 1);
	UNIT_CHECK(tasks_pending() == 0 && wk.board->tasks_pending == 0);
	UNIT_CHECK(slot_of(id) == NULL);

	/* The late completion must change nothing. */
	WAIT_FOR(ok, atomic_load(&slow_done), 5000);
	UNIT_CHECKF(ok, "slow task never finished");
	UNIT_CHECK(edge_wait_until_named(&wk, "marker", 0, count_task, NULL) > 0);
	WAIT_FOR(ok, wk.board->tasks_completed == completed + 1, 5000);
	UNIT_CHECKF(ok, "marker not completed");
	run_loop_for(100);
	UNIT_CHECKF(wk.board->tasks_completed == completed + 1, "late completion counted");
	UNIT_CHECK(wk.board->tasks_failed == failed + 1);
	UNIT_CHECKF(nerrs == n0 + 1, "%u extra error reports", nerrs - n0 - 1);
out:
	;
}

static void
case_async(void)
{
	uint64_t completed = wk.board->tasks_completed;
	uint64_t failed = wk.board->tasks_failed;
	unsigned n0 = nerrs;
	struct board_task *slot;
	edge_task *t;
	int64_t id;
	bool ok;

	UNIT_CHECK(edge_ctx_base(&wk) == wk.base);
	t = edge_task_begin(&wk, "upload", 0);
	UNIT_CHECK(t != NULL);
	id = edge_task_id(t);
	UNIT_CHECK(id > 0);
	UNIT_CHECK(tasks_pending() == 1 && wk.board->tasks_pending == 1);
	slot = slot_of(id);
	UNIT_CHECKF(slot != NULL && strcmp(slot->name, "upload") == 0, "no board slot");
	UNIT_CHECK(slot->started_ms <= clock_ms() && slot->started_ms + 1000 > clock_ms());
	edge_task_end(t, 0, NULL);
	UNIT_CHECK(wk.board->tasks_completed == completed + 1);
	UNIT_CHECK(tasks_pending() == 0 && slot_of(id) == NULL);
	UNIT_CHECK(nerrs == n0);

	t = edge_task_begin(&wk, "db write", 0);
	UNIT_CHECK(t != NULL);
	id = edge_task_id(t);
	edge_task_end(t, 3, "conn refused");
	UNIT_CHECK(nerrs == n0 + 1);
	UNIT_CHECK(last_error()->id == id && last_error()->code == 3);
	UNIT_CHECKF(strcmp(last_error()->reason, "conn refused") == 0, "reason %s",
	    last_error()->reason);
	UNIT_CHECKF(strcmp(last_error()->name, "db_write") == 0, "name %s",
	    last_error()->name);
	UNIT_CHECK(wk.board->tasks_failed == failed + 1);
	/* The function's reason is its text, quoted: not mangled into a word. */
	UNIT_CHECK(log_has("task_name=db_write reason=\"conn refused\" code=3 handled=0"));

	t = edge_task_begin(&wk, NULL, 30);
	UNIT_CHECK(t != NULL);
	id = edge_task_id(t);
	WAIT_FOR(ok, nerrs == n0 + 2, 5000);
	UNIT_CHECKF(ok, "async timeout not reported");
	UNIT_CHECK(last_error()->id == id);
	UNIT_CHECK(strcmp(last_error()->reason, "timeout") == 0);
	UNIT_CHECK(strcmp(last_error()->name, "task") == 0);
	UNIT_CHECK(wk.board->tasks_failed == failed + 2);
	UNIT_CHECK(tasks_pending() == 0);
	/* Ending it after its timeout is harmless. */
	edge_task_end(t, 0, NULL);
	UNIT_CHECK(wk.board->tasks_completed == completed + 1);
	UNIT_CHECK(wk.board->tasks_failed == failed + 2);
	UNIT_CHECK(nerrs == n0 + 2);
	UNIT_CHECK(wk.board->tasks_started == wk.board->tasks_completed +
	    wk.board->tasks_failed + wk.board->tasks_pending);
out:
	;
}

static void
case_retiring(void)
{
	uint64_t completed = wk.board->tasks_completed;
	edge_task *t;
	bool ok;

	wk.retiring = true;
	drained_calls = 0;
	UNIT_CHECKF(edge_wait_until(&wk, count_task, NULL) > 0, "refused while retiring");
	WAIT_FOR(ok, wk.board->tasks_completed == completed + 1, 5000);
	UNIT_CHECK(ok);
	UNIT_CHECKF(drained_calls >= 1, "worker_check_drained not called");
	t = edge_task_begin(&wk, "late", 0);
	UNIT_CHECK(t != NULL);
	drained_calls = 0;
	edge_task_end(t, 0, NULL);
	UNIT_CHECK(drained_calls == 1);
out:
	wk.retiring = false;
}

static void
case_edge_log(void)
{
	uint64_t completed = wk.board->tasks_completed;
	bool ok;

	edge_log(&wk, "he said \"%s\"\nbye", "hi");
	UNIT_CHECK(log_has("ev=function_log msg=\"he said \\\"hi\\\"\\nbye\"\n"));
	UNIT_CHECK(edge_wait_until(&wk, log_task, NULL) > 0);
	WAIT_FOR(ok, wk.board->tasks_completed == completed + 1, 5000);
	UNIT_CHECK(ok);
	UNIT_CHECK(log_has("ev=function_log msg=\"from a task thread n=42\""));
	UNIT_CHECK(strcmp(edge_ctx_function(&wk), "hello") == 0);
out:
	;
}

/* 10,000 async tasks held at once; then the pending limit. */
static void
case_hold_10k(void)
{
	uint64_t completed = wk.board->tasks_completed;
	edge_task **held = NULL;
	unsigned nheld = 0, extra = 0;
	long rss0, rss1;
	double per;

	held = calloc(MAX_PENDING + 1, sizeof(*held));
	UNIT_CHECK(held != NULL);
	memset(held, 0xff, (MAX_PENDING + 1) * sizeof(*held));   /* fault it in now */
	memset(held, 0, (MAX_PENDING + 1) * sizeof(*held));
	rss0 = rss_bytes();
	for (; nheld < HOLD_TASKS; nheld++) {
		held[nheld] = edge_task_begin(&wk, "hold", 60000);
		UNIT_CHECKF(held[nheld] != NULL, "begin %u failed", nheld);
	}
	rss1 = rss_bytes();
	UNIT_CHECK(rss0 > 0 && rss1 > 0);
	per = (double)(rss1 - rss0) / HOLD_TASKS;
	printf("# %d pending async tasks (60 s timeout each): rss +%ld KiB, "
	    "%.0f bytes per task (board slot: %zu)\n", HOLD_TASKS, (rss1 - rss0) / 1024,
	    per, sizeof(struct board_task));
	UNIT_CHECKF(per < 2048, "%.0f bytes per pending task", per);
	UNIT_CHECK(tasks_pending() == HOLD_TASKS);
	UNIT_CHECK(wk.board->tasks_pending == HOLD_TASKS);
	UNIT_CHECK(slots_used() == HOLD_TASKS);

	/* Up to the maximum, then refused. */
	while (nheld < MAX_PENDING + 1) {
		held[nheld] = edge_task_begin(&wk, "extra", 0);
		if (held[nheld] == NULL)
			break;
		nheld++;
		extra++;
	}
	UNIT_CHECKF(extra == MAX_PENDING - HOLD_TASKS, "%u extra accepted", extra);
	atomic_store(&ran, 0);
	UNIT_CHECK(edge_wait_until(&wk, count_task, NULL) == -1);
	UNIT_CHECK(edge_wait_until_named(&wk, "x", 10, count_task, NULL) == -1);
	UNIT_CHECK(tasks_pending() == MAX_PENDING);
	UNIT_CHECK(wk.board->tasks_pending == MAX_PENDING);

	/* One end frees one place. */
	edge_task_end(held[--nheld], 0, NULL);
	UNIT_CHECK(edge_wait_until(&wk, count_task, NULL) > 0);
out:
	while (nheld > 0)
		edge_task_end(held[--nheld], 0, NULL);
	free(held);
	{
		bool ok;

		WAIT_FOR(ok, tasks_pending() == 0, 5000);
		if (!ok)
			unit_fail(__LINE__, "%llu still pending", (unsigned long long)tasks_pending());
	}
	if (wk.board->tasks_completed < completed + MAX_PENDING)
		unit_fail(__LINE__, "completed only %llu",
		    (unsigned long long)(wk.board->tasks_completed - completed));
	if (slots_used() != 0)
		unit_fail(__LINE__, "%u slots used", slots_used());
	if (atomic_load(&ran) != 1)
		unit_fail(__LINE__, "refused task ran (%u)", atomic_load(&ran));
}

static void
case_beforeunload(void)
{
	UNIT_CHECK(edge_on_beforeunload(&wk, NULL, NULL) == -1);
	UNIT_CHECK(edge_on_beforeunload(NULL, unload_hook, NULL) == -1);
	UNIT_CHECK(edge_on_task_error(&wk, NULL, NULL) == -1);
	unload_calls = 0;
	hooks_fire_beforeunload(WIRE_REASON_MEMORY, 1500);
	UNIT_CHECKF(unload_calls == 2, "%u hook calls", unload_calls);
	UNIT_CHECKF(strcmp(unload_reason, "memory") == 0, "reason %s", unload_reason);
	UNIT_CHECK(unload_deadline == 1500);
	UNIT_CHECK(wk.unload_fired);
	UNIT_CHECK(wk.board->unload_reason == WIRE_REASON_MEMORY);
	UNIT_CHECK(log_has("ev=beforeunload reason=memory deadline_ms=1500 hooks=2"));
	hooks_fire_beforeunload(WIRE_REASON_TERMINATION, 100);
	UNIT_CHECKF(unload_calls == 2, "fired twice");
	UNIT_CHECK(wk.board->unload_reason == WIRE_REASON_MEMORY);
out:
	;
}

/* Shutdown: every pending task is reported "cut" and stays pending on the board. */
static void
case_cut_all(void)
{
	uint64_t completed = wk.board->tasks_completed;
	uint64_t failed = wk.board->tasks_failed;
	int64_t ids[5];
	edge_task *a[2] = { NULL, NULL };
	unsigned n0 = nerrs, found;
	bool ok;

	atomic_store(&gate, false);
	atomic_store(&gate_ran, 0);
	for (int i = 0; i < 3; i++) {
		ids[i] = edge_wait_until_named(&wk, "upload", i == 0 ? 5000 : 0,
		    gate_task, NULL);
		UNIT_CHECK(ids[i] > 0);
	}
	for (int i = 0; i < 2; i++) {
		a[i] = edge_task_begin(&wk, "stream", i == 0 ? 5000 : 0);
		UNIT_CHECK(a[i] != NULL);
		ids[3 + i] = edge_task_id(a[i]);
	}
	UNIT_CHECK(tasks_pending() == 5);

	wk.terminating = true;
	tasks_cut_all();
	UNIT_CHECKF(nerrs == n0 + 5, "%u cut reports", nerrs - n0);
	found = 0;
	for (unsigned i = n0; i < nerrs; i++) {
		struct seen_error *e = &errs[i % 64];

		UNIT_CHECKF(strcmp(e->reason, "cut") == 0 && e->code == 0, "reason %s",
		    e->reason);
		for (int j = 0; j < 5; j++)
			if (e->id == ids[j])
				found |= 1u << j;
	}
	UNIT_CHECKF(found == 0x1f, "ids reported: mask %x", found);
	UNIT_CHECK(wk.board->tasks_pending == 5 && tasks_pending() == 5);
	for (int j = 0; j < 5; j++)
		UNIT_CHECKF(slot_of(ids[j]) != NULL, "task %lld left the board",
		    (long long)ids[j]);
	UNIT_CHECK(edge_wait_until(&wk, count_task, NULL) == -1);
	UNIT_CHECK(edge_task_begin(&wk, "late", 0) == NULL);

	/* Late ends and completions change nothing. */
	edge_task_end(a[0], 0, NULL);
	edge_task_end(a[1], 1, "x");
	atomic_store(&gate, true);
	WAIT_FOR(ok, atomic_load(&gate_ran) == 3, 5000);
	UNIT_CHECK(ok);
	run_loop_for(100);
	UNIT_CHECKF(nerrs == n0 + 5, "%u reports", nerrs - n0);
	UNIT_CHECK(wk.board->tasks_completed == completed);
	UNIT_CHECK(wk.board->tasks_failed == failed);
	UNIT_CHECK(wk.board->tasks_pending == 5);
out:
	atomic_store(&gate, true);
}

/* Whether thread TID (of this process) has SIGTERM blocked; -1 if unreadable. */
static int
sigterm_blocked(const char *tid)
{
	char path[64], line[128];
	unsigned long long mask = 0;
	int found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "SigBlk: %llx", &mask) == 1)
			found = (mask >> (SIGTERM - 1)) & 1;
	fclose(f);
	return found;
}

/* SIGTERM must reach the loop thread (its signalfd), never a task thread. */
static void
case_signals_blocked(void)
{
	char self[32];
	struct dirent *de;
	DIR *d;
	unsigned blocked = 0;

	snprintf(self, sizeof(self), "%d", getpid());
	UNIT_CHECKF(sigterm_blocked(self) == 0, "SIGTERM blocked on the loop thread");
	UNIT_CHECK((d = opendir("/proc/self/task")) != NULL);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' && strcmp(de->d_name, self) != 0 &&
		    sigterm_blocked(de->d_name) == 1)
			blocked++;
	closedir(d);
	UNIT_CHECKF(blocked >= wk.conf.task_threads, "%u threads block SIGTERM", blocked);
out:
	;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

int
main(int argc, char **argv)
{
	struct timeval ten_ms = { 0, 10000 };
	struct event *tick;
	int fd, bfd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((fd = mkstemp(log_path)) < 0 || log_open_file(log_path) < 0) {
		printf("not ok - setup: log file: %s\n", strerror(errno));
		return 1;
	}
	close(fd);
	log_set_proc("test");

	wk.conf.name = "hello";
	wk.conf.max_pending_tasks = MAX_PENDING;
	wk.conf.task_threads = 4;
	if ((wk.base = event_base_new()) == NULL ||
	    (bfd = board_create(MAX_PENDING, &wk.board)) < 0) {
		printf("not ok - setup: base or board: %s\n", strerror(errno));
		return 1;
	}
	/* Bounds every EVLOOP_ONCE run, so that waits check their deadline. */
	tick = event_new(wk.base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &ten_ms);
	hooks_init(&wk);
	if (tasks_init(&wk) < 0) {
		printf("not ok - setup: tasks_init: %s\n", strerror(errno));
		return 1;
	}
	if (edge_on_task_error(&wk, error_hook, NULL) < 0 ||
	    edge_on_beforeunload(&wk, unload_hook, NULL) < 0 ||
	    edge_on_beforeunload(&wk, unload_hook, NULL) < 0) {
		printf("not ok - setup: hooks\n");
		return 1;
	}

	unit_run("tasks: 100 blocking tasks complete, board clean", case_blocking_100);
	/* After tasks ran: every pool thread has started and set its own mask. */
	unit_run("tasks: task threads block SIGTERM, the loop does not", case_signals_blocked);
	unit_run("tasks: one loop run ends a burst of finished tasks", case_eventfd_batching);
	unit_run("tasks: failing task reaches the error hook, prevent_default", case_failing_task);
	unit_run("tasks: timeout reported, late completion ignored", case_timeout);
	unit_run("tasks: async begin/end, failure, timeout", case_async);
	unit_run("tasks: retiring accepts tasks and checks drained", case_retiring);
	unit_run("tasks: edge_log escapes, works from a task thread", case_edge_log);
	unit_run("tasks: 10000 pending held, max_pending refused", case_hold_10k);
	unit_run("hooks: beforeunload fires once with reason and deadline", case_beforeunload);
	unit_run("tasks: cut_all reports every pending task as cut", case_cut_all);

	tasks_shutdown();
	event_free(tick);
	event_base_free(wk.base);
	board_unmap(wk.board, wk.board->task_slots);
	close(bfd);
	if (unit_nfailed == 0)
		unlink(log_path);
	else
		printf("# worker log kept in %s\n", log_path);
	return unit_exit();
}
