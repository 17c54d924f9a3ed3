/*
 * init10ms.c - test function whose init does 10 ms of work before the worker is
 * ready (a function that loads a model, opens a pool, warms a cache): the bench's
 * cold-start figure for a function that is not instant to start.
 *
 * GET /  ->  200 "warm\n"
 */
#include <stdint.h>
#include <time.h>

#include "edgevisor.h"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
init10_init(edge_ctx *ctx)
{
	/* Busy, not asleep: initialisation work costs CPU. */
	volatile uint64_t spin = 0;
	uint64_t end = now_ns() + 10 * 1000000u;

	while (now_ns() < end)
		spin++;
	return 0;
}

static void
init10_handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "warm\n", 5);
}

EDGE_FUNCTION(init10_init, init10_handle);
