/*
 * hist_cost.c - what timing a request costs the worker (scripts/bench.sh, phase wrk):
 * the two clock reads and the histogram update worker/http.c adds to each request
 * (count_request), run N times on a scoreboard-like histogram; prints ns of CPU time
 * per request (CPU time, not wall: on a shared machine the wall clock counts the time
 * other processes had the core).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "hist.h"

static double
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000;
	static struct hist h;
	uint64_t t1, start;
	double c0;

	if (n <= 0)
		return 2;
	c0 = cpu_ns();
	for (long i = 0; i < n; i++) {
		start = clock_us();                 /* conn_dispatch */
		t1 = clock_us();                    /* count_request */
		hist_observe(&h, t1 - start);
	}
	c0 = cpu_ns() - c0;
	if (hist_count(&h) != (uint64_t)n)
		return 1;
	printf("%.1f\n", c0 / (double)n);
	return 0;
}
