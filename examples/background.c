/*
 * background - the seed page in C: answer at once, keep working afterwards.
 *
 *   EdgeRuntime.waitUntil(task)        -> edge_wait_until_named() in the handler and in init
 *   addEventListener('beforeunload')   -> edge_on_beforeunload(): told the reason and deadline
 *   addEventListener('unhandledrejection') -> edge_on_task_error(): may prevent the default log
 *
 * GET /?ms=N starts a task that sleeps N ms (default 100) then logs a line; the
 * response does not wait for it. GET /fail starts a task that fails.
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, whatever flags the author builds with */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <edgevisor.h>

static edge_ctx *self;

static int
sleep_then_log(void *arg)
{
	long ms = (long)(intptr_t)arg;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	edge_log(self, "background task done after %ld ms", ms);
	return 0;
}

static int
warm_cache(void *arg)
{
	(void)arg;
	edge_log(self, "cache warmed in init");
	return 0;
}

static int
always_fails(void *arg)
{
	(void)arg;
	return 42;
}

static void
on_unload(edge_ctx *ctx, const char *reason, int64_t deadline_ms, void *arg)
{
	(void)arg;
	edge_log(ctx, "function will be shut down due to %s, %lld ms left", reason,
	    (long long)deadline_ms);
}

static void
on_task_error(edge_ctx *ctx, struct edge_task_error *err, void *arg)
{
	(void)arg;
	edge_log(ctx, "task %lld (%s) failed: %s code=%d", (long long)err->id, err->name,
	    err->reason, err->code);
	/* Like ev.preventDefault(): we logged it ourselves. */
	edge_task_error_prevent_default(err);
}

static int
init(edge_ctx *ctx)
{
	self = ctx;
	edge_on_beforeunload(ctx, on_unload, NULL);
	edge_on_task_error(ctx, on_task_error, NULL);
	return edge_wait_until_named(ctx, "warm_cache", 0, warm_cache, NULL) < 0 ? -1 : 0;
}

static void
handle(edge_req *req, edge_res *res)
{
	const char *q = edge_req_query(req);
	const char *p = strstr(q, "ms=");
	long ms = p ? strtol(p + 3, NULL, 10) : 100;

	if (strcmp(edge_req_path(req), "/fail") == 0) {
		edge_wait_until_named(self, "always_fails", 0, always_fails, NULL);
		edge_res_send(res, 202, "text/plain", "failing task started\n", 21);
		return;
	}
	if (ms < 0 || ms > 600000)
		ms = 100;
	if (edge_wait_until_named(self, "sleep_then_log", 0, sleep_then_log,
	    (void *)(intptr_t)ms) < 0) {
		edge_res_send(res, 503, "text/plain", "busy\n", 5);
		return;
	}
	edge_res_send(res, 200, "text/plain", "accepted\n", 9);
}

EDGE_FUNCTION(init, handle);
