/*
 * unload.c - test function for beforeunload: its hook logs
 * "beforeunload_hook reason=R deadline_ms=N", so tests can see the reason and the
 * deadline the worker was given.
 *
 * GET /?ms=N  answers 200 at once and starts a task "unload_task" sleeping N ms
 *             (none when N is 0, the default) that logs "unload_task done ms=N".
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "edgevisor.h"
#include "query.h"

static edge_ctx *unload_ctx;

static void
unload_cb(edge_ctx *ctx, const char *reason, int64_t deadline_ms, void *arg)
{
	edge_log(ctx, "beforeunload_hook reason=%s deadline_ms=%lld", reason,
	    (long long)deadline_ms);
}

static int
unload_task(void *arg)
{
	long ms = (long)(intptr_t)arg;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		;
	edge_log(unload_ctx, "unload_task done ms=%ld", ms);
	return 0;
}

static int
unload_init(edge_ctx *ctx)
{
	unload_ctx = ctx;
	return edge_on_beforeunload(ctx, unload_cb, NULL);
}

static void
unload_handle(edge_req *req, edge_res *res)
{
	long ms = query_long(req, "ms", 0);

	if (ms > 0 && edge_wait_until_named(edge_req_ctx(req), "unload_task", 0,
	    unload_task, (void *)(intptr_t)ms) < 0) {
		edge_res_send(res, 503, "text/plain", "no task\n", 8);
		return;
	}
	edge_res_send(res, 200, "text/plain", "ok\n", 3);
}

EDGE_FUNCTION(unload_init, unload_handle);
