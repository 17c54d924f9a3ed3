/*
 * slow.c - test function: answers at once and leaves N background tasks named "slow"
 * that sleep ?ms= milliseconds (default 100), for drain, reaping and lost-task tests.
 *
 * GET /?ms=500&n=2  ->  200 "started 2\n"; each task logs "slow done ms=500" at its end.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "edgevisor.h"
#include "query.h"

static edge_ctx *slow_ctx;

static int
slow_task(void *arg)
{
	long ms = (long)(intptr_t)arg;
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1)
		;
	edge_log(slow_ctx, "slow done ms=%ld", ms);
	return 0;
}

static int
slow_init(edge_ctx *ctx)
{
	slow_ctx = ctx;
	return 0;
}

static void
slow_handle(edge_req *req, edge_res *res)
{
	long ms = query_long(req, "ms", 100), n = query_long(req, "n", 1), i;
	char body[64];
	int len;

	for (i = 0; i < n; i++) {
		if (edge_wait_until_named(edge_req_ctx(req), "slow", 0, slow_task,
		    (void *)(intptr_t)ms) < 0)
			break;
	}
	len = snprintf(body, sizeof(body), "started %ld\n", i);
	edge_res_send(res, i == n ? 200 : 503, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(slow_init, slow_handle);
