/*
 * ctor_sleep3.c - test function whose library constructor sleeps 3 s: loading it
 * (dlopen) takes that long, in the supervisor's library check as in a worker. A check
 * with check_timeout_ms below 3000 must give up on it without stalling anything else.
 * Once loaded it answers like hello.
 */
#include <errno.h>
#include <time.h>

#include "edgevisor.h"

__attribute__((constructor)) static void
ctor_sleep3(void)
{
	struct timespec left = { 3, 0 };

	/* The whole 3 s even if a signal interrupts the sleep. */
	while (nanosleep(&left, &left) < 0 && errno == EINTR)
		;
}

static void
ctor_sleep3_handle(edge_req *req, edge_res *res)
{
	(void)req;
	edge_res_send(res, 200, "text/plain", "slept\n", 6);
}

EDGE_FUNCTION(NULL, ctor_sleep3_handle);
