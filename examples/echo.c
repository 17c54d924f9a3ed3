/* echo - answers with what it was sent: method, path, query, the X-Echo header, body. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <edgevisor.h>

static void
handle(edge_req *req, edge_res *res)
{
	const char *echo = edge_req_header(req, "X-Echo");
	size_t blen = 0, cap, n;
	const void *body = edge_req_body(req, &blen);
	char *out;

	cap = blen + 1024;
	out = malloc(cap);
	if (out == NULL) {
		edge_res_send(res, 500, "text/plain", "out of memory\n", 14);
		return;
	}
	n = (size_t)snprintf(out, cap, "method=%s\npath=%s\nquery=%s\nx-echo=%s\nbody=",
	    edge_req_method(req), edge_req_path(req), edge_req_query(req), echo ? echo : "");
	if (n >= cap - blen)
		n = cap - blen - 1;
	memcpy(out + n, body, blen);
	edge_res_header(res, "X-Body-Length", blen ? "nonzero" : "0");
	edge_res_send(res, 200, "text/plain", out, n + blen);
	free(out);
}

EDGE_FUNCTION(NULL, handle);
