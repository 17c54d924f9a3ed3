/*
 * fleet_v1.c - the function test_haproxy.py deploys across its hosts: answers
 * "fleet v1\n" at once and leaves one async background task ("fleet_record") that
 * ends after ?ms= milliseconds (default 50) on a timer of the worker's loop, so a
 * drain that lost work would show it as tasks lost. fleet_v2.c is the same function
 * answering "fleet v2\n": the new version of a rolling deploy.
 */
#include <stdlib.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "edgevisor.h"
#include "query.h"

#ifndef FLEET_VERSION
#define FLEET_VERSION "v1"
#endif

struct fleet_task {
	struct event ev;
	edge_task *task;
};

static struct event_base *fleet_base;

static void
fleet_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fleet_task *t = arg;

	edge_task_end(t->task, 0, NULL);
	free(t);
}

static int
fleet_init(edge_ctx *ctx)
{
	fleet_base = edge_ctx_base(ctx);
	return 0;
}

static void
fleet_handle(edge_req *req, edge_res *res)
{
	static const char body[] = "fleet " FLEET_VERSION "\n";
	long ms = query_long(req, "ms", 50);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct fleet_task *t;

	if (ms < 0 || ms > 60000) {
		edge_res_send(res, 400, "text/plain", "bad ms\n", 7);
		return;
	}
	/* A task that cannot start is a failed request: the test counts non-2xx. */
	if ((t = malloc(sizeof(*t))) == NULL ||
	    (t->task = edge_task_begin(edge_req_ctx(req), "fleet_record", 0)) == NULL) {
		free(t);
		edge_res_send(res, 503, "text/plain", "no task\n", 8);
		return;
	}
	evtimer_assign(&t->ev, fleet_base, fleet_done_cb, t);
	if (evtimer_add(&t->ev, &tv) < 0) {
		edge_task_end(t->task, 1, "timer_failed");
		free(t);
		edge_res_send(res, 503, "text/plain", "no timer\n", 9);
		return;
	}
	edge_res_send(res, 200, "text/plain", body, sizeof(body) - 1);
}

EDGE_FUNCTION(fleet_init, fleet_handle);
