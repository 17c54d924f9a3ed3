/*
 * memhog.c - test function: grows its memory by ?mb= MB per request (default 8),
 * touching every page so it really counts against the cgroup, and keeps it.
 *
 * GET /?mb=N  ->  200 "held T MB\n" (T: the total kept so far); 507 if malloc fails.
 */
#include <stdio.h>
#include <stdlib.h>

#include "edgevisor.h"
#include "query.h"

static long memhog_held_mb;
/* Every block stays reachable from here, so the compiler cannot drop the writes. */
static void **memhog_blocks;
static size_t memhog_nblocks;

static void
memhog_handle(edge_req *req, edge_res *res)
{
	long mb = query_long(req, "mb", 8);
	char body[64], *p;
	void **more;
	int len;

	if (mb < 0 || mb > 65536 || (p = malloc((size_t)mb << 20)) == NULL) {
		edge_res_send(res, 507, "text/plain", "no memory\n", 10);
		return;
	}
	more = realloc(memhog_blocks, (memhog_nblocks + 1) * sizeof(*more));
	if (more == NULL) {
		free(p);
		edge_res_send(res, 507, "text/plain", "no memory\n", 10);
		return;
	}
	memhog_blocks = more;
	memhog_blocks[memhog_nblocks++] = p;
	/* Touch (not just reserve) every page, through volatile so it really happens;
	 * the block is never freed on purpose. */
	for (size_t off = 0; off < ((size_t)mb << 20); off += 4096)
		((volatile char *)p)[off] = (char)0xa5;
	memhog_held_mb += mb;
	len = snprintf(body, sizeof(body), "held %ld MB\n", memhog_held_mb);
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(NULL, memhog_handle);
