/*
 * ctor_sleep.c - test function whose library constructor sleeps 3 s: the library
 * check must refuse it with a timeout (LIB_CHECK_TIMEOUT_MS) and leave no process
 * behind, without holding the supervisor's loop (tests/integration/test_check.py).
 */
#include <unistd.h>

#include "edgevisor.h"

__attribute__((constructor)) static void
ctor_sleep(void)
{
	sleep(3);
}

static void
handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "slept\n", 6);
}

EDGE_FUNCTION(NULL, handle);
