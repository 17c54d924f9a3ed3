/* whoami - answers "<function> <path>\n": which function a routed request reached,
 * and the path it saw (tests/integration/test_routing.py). With ?hold=1 it never
 * answers (logs "whoami holding" instead): a request in flight for a crash test. */
#include <stdio.h>

#include "edgevisor.h"
#include "query.h"

static edge_ctx *whoami_ctx;

static int
whoami_init(edge_ctx *ctx)
{
	whoami_ctx = ctx;
	return 0;
}

static void
handle(edge_req *req, edge_res *res)
{
	char out[512];
	int n;

	if (query_long(req, "hold", 0) == 1) {
		edge_log(whoami_ctx, "whoami holding");
		return;
	}
	n = snprintf(out, sizeof(out), "%s %s\n", edge_ctx_function(edge_req_ctx(req)),
	    edge_req_path(req));
	if (n < 0 || (size_t)n >= sizeof(out))
		n = 0;
	edge_res_send(res, 200, "text/plain", out, (size_t)n);
}

EDGE_FUNCTION(whoami_init, handle);
