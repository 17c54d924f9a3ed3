/*
 * badapi.c - test function built for another API version: the supervisor must refuse
 * it with a clear error at -t, at start and at reload, never run it.
 */
#include "edgevisor.h"

static void
badapi_handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "unreachable\n", 12);
}

/* EDGE_FUNCTION by hand, with a version no worker has. */
__attribute__((visibility("default"))) const struct edge_function edge_function_entry = {
	EDGE_API_VERSION + 98, NULL, badapi_handle
};
