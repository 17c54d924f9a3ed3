/*
 * memhog.c - test function: grows its memory by ?mb= MB per request (default 8),
 * touching every page so it really counts against the cgroup, and keeps it.
 *
 * GET /?mb=N  ->  200 "held T MB\n" (T: the total kept so far); 507 if malloc fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgevisor.h"
#include "query.h"

static long memhog_held_mb;

static void
memhog_handle(edge_req *req, edge_res *res)
{
	long mb = query_long(req, "mb", 8);
	char body[64], *p;
	int len;

	if (mb < 0 || mb > 65536 || (p = malloc((size_t)mb << 20)) == NULL) {
		edge_res_send(res, 507, "text/plain", "no memory\n", 10);
		return;
	}
	/* Touch (not just reserve) every page; the block is never freed on purpose. */
	memset(p, 0xa5, (size_t)mb << 20);
	memhog_held_mb += mb;
	len = snprintf(body, sizeof(body), "held %ld MB\n", memhog_held_mb);
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(NULL, memhog_handle);
