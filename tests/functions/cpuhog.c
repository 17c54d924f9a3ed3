/*
 * cpuhog.c - test function: burns CPU for cgroup CPU caps and the CPU-time budget.
 *
 * GET /?ms=N        spins on the loop thread until it has used N ms of CPU (default
 *                   100), then answers 200 "spun N\n"
 * GET /?ms=N&task=1 answers at once and spins in a background task "cpuhog" instead
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "edgevisor.h"
#include "query.h"

static long
cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void
spin(long ms)
{
	long end = cpu_ms() + ms;
	volatile uint64_t x = 0;

	while (cpu_ms() < end)
		for (int i = 0; i < 10000; i++)
			x += (uint64_t)i * 2654435761u;
}

static int
spin_task(void *arg)
{
	spin((long)(intptr_t)arg);
	return 0;
}

static void
cpuhog_handle(edge_req *req, edge_res *res)
{
	long ms = query_long(req, "ms", 100);
	char body[64];
	int len;

	if (query_is(req, "task", "1")) {
		if (edge_wait_until_named(edge_req_ctx(req), "cpuhog", 0, spin_task,
		    (void *)(intptr_t)ms) < 0) {
			edge_res_send(res, 503, "text/plain", "busy\n", 5);
			return;
		}
	} else
		spin(ms);
	len = snprintf(body, sizeof(body), "spun %ld\n", ms);
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(NULL, cpuhog_handle);
