/*
 * initfail.c - test function whose init fails: its workers never become ready, so
 * the supervisor must back off and mark the function failed instead of spinning.
 */
#include "edgevisor.h"

static int
initfail_init(edge_ctx *ctx)
{
	edge_log(ctx, "initfail init returns -1");
	return -1;
}

static void
initfail_handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "unreachable\n", 12);
}

EDGE_FUNCTION(initfail_init, initfail_handle);
