/*
 * memgrow.c - test function: memory that really grows, for the memory cap, the soft
 * memory limit (beforeunload(memory)) and OOM detection.
 *
 * GET /?start=S&mb=N&ms=T&max=M  answers 200 at once and starts a task "memgrow"
 *                 that takes S MB (default 0) at once, then N MB (default 1) every
 *                 T ms (default 100) until it holds M MB (default 1024), writing
 *                 every page so the cgroup is charged, and never frees it
 *                 &oom=K: once its beforeunload hook has run (retired at the soft
 *                 memory limit), the hook takes K MB more at once: past a cap this
 *                 is the kernel's OOM kill, before the supervisor's next look
 * GET /           (no start/mb) 200 "alive\n"
 * Its beforeunload hook logs "beforeunload_hook reason=R deadline_ms=N".
 *
 * Every block is kept in a global list and written through a volatile pointer: a
 * block that is never read again would otherwise be optimised away with its malloc.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "edgevisor.h"
#include "query.h"

struct block {
	struct block *next;
};

struct grow {
	long start, mb, ms, max;
};

static struct block *volatile memgrow_blocks;
static long memgrow_oom_mb;     /* taken by the beforeunload hook (?oom=) */

/* Takes MB megabytes and writes one byte in every page of them. */
static int
take(long mb)
{
	size_t len = (size_t)mb << 20, page = (size_t)sysconf(_SC_PAGESIZE);
	volatile char *p;
	struct block *b;

	if (mb <= 0)
		return 0;
	if ((b = malloc(len)) == NULL)
		return -1;
	p = (volatile char *)b;
	for (size_t off = 0; off < len; off += page)
		p[off] = (char)0xa5;
	b->next = memgrow_blocks;
	memgrow_blocks = b;
	return 0;
}

static int
grow_task(void *arg)
{
	struct grow *g = arg;
	struct timespec ts = { g->ms / 1000, (g->ms % 1000) * 1000000L };
	long held = g->start;
	int rc = 0;

	if (take(g->start) < 0)
		rc = 1;
	while (rc == 0 && held < g->max) {
		if (take(g->mb) < 0)
			rc = 1;
		held += g->mb;
		nanosleep(&ts, NULL);
	}
	free(g);
	return rc;
}

static void
memgrow_unload_cb(edge_ctx *ctx, const char *reason, int64_t deadline_ms, void *arg)
{
	edge_log(ctx, "beforeunload_hook reason=%s deadline_ms=%lld", reason,
	    (long long)deadline_ms);
	if (memgrow_oom_mb > 0) {
		edge_log(ctx, "beforeunload_hook takes %ld MB", memgrow_oom_mb);
		(void)take(memgrow_oom_mb);
	}
}


static int
memgrow_init(edge_ctx *ctx)
{
	return edge_on_beforeunload(ctx, memgrow_unload_cb, NULL);
}

static void
memgrow_handle(edge_req *req, edge_res *res)
{
	struct grow *g;

	if (query_long(req, "start", -1) < 0 && query_long(req, "mb", -1) < 0) {
		edge_res_send(res, 200, "text/plain", "alive\n", 6);
		return;
	}
	if ((g = malloc(sizeof(*g))) == NULL) {
		edge_res_send(res, 507, "text/plain", "no memory\n", 10);
		return;
	}
	g->start = query_long(req, "start", 0);
	g->mb = query_long(req, "mb", 1);
	g->ms = query_long(req, "ms", 100);
	g->max = query_long(req, "max", 1024);
	memgrow_oom_mb = query_long(req, "oom", 0);
	if (g->start < 0 || g->mb < 1 || g->ms < 0 || g->max > 65536 ||
	    edge_wait_until_named(edge_req_ctx(req), "memgrow", 0, grow_task, g) < 0) {
		free(g);
		edge_res_send(res, 503, "text/plain", "no task\n", 8);
		return;
	}
	edge_res_send(res, 200, "text/plain", "growing\n", 8);
}

EDGE_FUNCTION(memgrow_init, memgrow_handle);
