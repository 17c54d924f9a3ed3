/* hello - the smallest function: 200 "hello\n" to every request. */
#include <edgevisor.h>

static void
handle(edge_req *req, edge_res *res)
{
	(void)req;
	edge_res_send(res, 200, "text/plain", "hello\n", 6);
}

EDGE_FUNCTION(NULL, handle);
