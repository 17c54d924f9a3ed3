/*
 * initcrash.c - test function whose init crashes (SIGSEGV): its workers die before
 * ready, so the supervisor must report it, back off and mark the function failed.
 */
#include <signal.h>

#include "edgevisor.h"

static int
initcrash_init(edge_ctx *ctx)
{
	/* raise, not a NULL write: UBSan would turn that into exit(1), not a crash. */
	signal(SIGSEGV, SIG_DFL);
	raise(SIGSEGV);
	return 0;
}

static void
initcrash_handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "unreachable\n", 12);
}

EDGE_FUNCTION(initcrash_init, initcrash_handle);
