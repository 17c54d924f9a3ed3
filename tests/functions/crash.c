/*
 * crash.c - test function: dies on request, to test crash detection and respawn.
 *
 * GET /?how=segv   writes through a NULL pointer (SIGSEGV)
 * GET /?how=abort  abort() (SIGABRT)
 * GET /?how=exit   exit(?code=, default 3) without answering
 * GET /            200 "alive\n"
 */
#include <signal.h>
#include <stdlib.h>

#include "edgevisor.h"
#include "query.h"

static void
crash_handle(edge_req *req, edge_res *res)
{
	if (query_is(req, "how", "segv")) {
		volatile int *p = NULL;

		*p = 1;
		raise(SIGSEGV);  /* in case the write was not fatal */
	} else if (query_is(req, "how", "abort"))
		abort();
	else if (query_is(req, "how", "exit"))
		exit((int)query_long(req, "code", 3));
	edge_res_send(res, 200, "text/plain", "alive\n", 6);
}

EDGE_FUNCTION(NULL, crash_handle);
