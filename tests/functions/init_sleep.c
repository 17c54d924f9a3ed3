/*
 * init_sleep.c - test function whose init sleeps 300 ms before the worker is ready (a
 * function that waits on something at start, taking no CPU meanwhile): it holds a
 * start slot (supervisor/pool.c) without using a core, so the slots' expiry shows.
 *
 * GET /  ->  200 "slept\n"
 */
#include <time.h>

#include "edgevisor.h"

static int
sleep_init(edge_ctx *ctx)
{
	struct timespec ts = { 0, 300 * 1000000L };

	while (nanosleep(&ts, &ts) != 0)
		;
	return 0;
}

static void
sleep_handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "slept\n", 6);
}

EDGE_FUNCTION(sleep_init, sleep_handle);
