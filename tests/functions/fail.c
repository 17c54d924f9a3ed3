/*
 * fail.c - test function for task errors (the 'unhandledrejection' twin).
 *
 * GET /?mode=fail           a task "fail" that returns 7
 * GET /?mode=timeout&ms=N   a task "timeout" with a 50 ms timeout that sleeps N ms
 *                           (default 500)
 * GET /?mode=async          an async task "async" ended as failed ("boom")
 * &handled=1                the error hook calls preventDefault for that task
 *                           (its name then ends in "_handled")
 * The error hook logs "error_hook id=.. name=.. reason=.. code=.." for every error.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "edgevisor.h"
#include "query.h"

static int
fail_task(void *arg)
{
	return 7;
}

static int
sleep_task(void *arg)
{
	long ms = (long)(intptr_t)arg;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		;
	return 0;
}

static void
error_cb(edge_ctx *ctx, struct edge_task_error *err, void *arg)
{
	edge_log(ctx, "error_hook id=%lld name=%s reason=%s code=%d",
	    (long long)err->id, err->name ? err->name : "", err->reason ? err->reason : "",
	    err->code);
	if (err->name != NULL && strstr(err->name, "_handled") != NULL)
		edge_task_error_prevent_default(err);
}

static int
fail_init(edge_ctx *ctx)
{
	return edge_on_task_error(ctx, error_cb, NULL);
}

static void
fail_handle(edge_req *req, edge_res *res)
{
	edge_ctx *ctx = edge_req_ctx(req);
	int handled = query_is(req, "handled", "1");
	char name[32], body[64];
	int64_t id = -1;
	edge_task *t;
	int len;

	if (query_is(req, "mode", "timeout")) {
		snprintf(name, sizeof(name), "timeout%s", handled ? "_handled" : "");
		id = edge_wait_until_named(ctx, name, 50, sleep_task,
		    (void *)(intptr_t)query_long(req, "ms", 500));
	} else if (query_is(req, "mode", "async")) {
		snprintf(name, sizeof(name), "async%s", handled ? "_handled" : "");
		if ((t = edge_task_begin(ctx, name, 0)) != NULL) {
			id = edge_task_id(t);
			edge_task_end(t, 1, "boom");
		}
	} else {
		snprintf(name, sizeof(name), "fail%s", handled ? "_handled" : "");
		id = edge_wait_until_named(ctx, name, 0, fail_task, NULL);
	}
	len = snprintf(body, sizeof(body), "task %lld\n", (long long)id);
	edge_res_send(res, id > 0 ? 200 : 503, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(fail_init, fail_handle);
