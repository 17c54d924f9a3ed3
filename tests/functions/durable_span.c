/*
 * durable_span - durable tasks whose attempts are observable from outside, for
 * tests/integration/test_durable_pg.py (several supervisors on one PostgreSQL).
 *
 * POST /enqueue?n=N[&us=U] with the body naming the side file: N tasks of kind
 * "span", enqueued async; answers 200 "ids=FIRST,LAST" once all are durable, or 503
 * "error=..." (507 for ENOSPC) as soon as one failed.
 *
 * The "span" handler (blocking) appends "start ID ATTEMPT PID NS" before and "end ID
 * ATTEMPT PID NS" after sleeping U microseconds (NS: CLOCK_MONOTONIC, one clock for
 * every process of the host), one write each (O_APPEND: lines never interleave), so
 * the test sees every attempt's interval and can check none overlaps another of the
 * same task. The payload is "PATH|U".
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "query.h"

static edge_ctx *self;

static void
mark(const char *path, const char *what, edge_durable *t)
{
	struct timespec ts;
	char line[160];
	int fd, n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "%s %lld %u %d %lld\n", what,
	    (long long)edge_durable_id(t), edge_durable_attempt(t), (int)getpid(),
	    (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0) {
		edge_log(self, "side file %s: %s", path, strerror(errno));
		return;
	}
	if (write(fd, line, (size_t)n) != n)
		edge_log(self, "side file write: %s", strerror(errno));
	close(fd);
}

static int
run_span(edge_durable *t, const void *p, size_t len, void *arg)
{
	char path[512];
	const char *bar = memchr(p, '|', len);
	long us;

	if (bar == NULL || (size_t)(bar - (const char *)p) >= sizeof(path))
		return EDGE_DURABLE_FAIL;
	memcpy(path, p, (size_t)(bar - (const char *)p));
	path[bar - (const char *)p] = '\0';
	us = strtol(bar + 1, NULL, 10);
	mark(path, "start", t);
	if (us > 0) {
		struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };

		nanosleep(&ts, NULL);
	}
	mark(path, "end", t);
	return EDGE_DURABLE_OK;
}

struct batch {
	edge_res *res;
	long want, got;
	int64_t first, last;
	int err;
	int answered;
};

static void
answer(struct batch *b)
{
	char body[96];
	int status = 200;

	if (b->err != 0) {
		status = b->err == ENOSPC ? 507 : 503;
		snprintf(body, sizeof(body), "error=%s\n", strerror(b->err));
	} else {
		snprintf(body, sizeof(body), "ids=%lld,%lld\n", (long long)b->first,
		    (long long)b->last);
	}
	edge_res_send(b->res, status, "text/plain", body, strlen(body));
	b->answered = 1;
}

static void
enqueued(edge_ctx *ctx, int64_t id, int err, void *arg)
{
	struct batch *b = arg;

	if (err != 0 && b->err == 0)
		b->err = err;
	if (id > 0) {
		if (b->first == 0 || id < b->first)
			b->first = id;
		if (id > b->last)
			b->last = id;
	}
	b->got++;
	/* a failure is told at once; the batch is freed when every answer is in */
	if (!b->answered && (b->err != 0 || b->got == b->want))
		answer(b);
	if (b->got == b->want)
		free(b);
}

static void
handle(edge_req *req, edge_res *res)
{
	char payload[600];
	const void *body;
	size_t blen;
	struct batch *b;
	long n = query_long(req, "n", 1), us = query_long(req, "us", 0);

	if (strcmp(edge_req_path(req), "/enqueue") != 0) {
		edge_res_send(res, 404, "text/plain", "no\n", 3);
		return;
	}
	body = edge_req_body(req, &blen);
	if (blen == 0 || blen > 500 || n < 1 || n > 100000 || us < 0 || us > 10000000) {
		edge_res_send(res, 400, "text/plain", "bad\n", 4);
		return;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL) {
		edge_res_send(res, 500, "text/plain", "oom\n", 4);
		return;
	}
	b->res = res;
	b->want = n;
	for (long i = 0; i < n; i++) {
		int len = snprintf(payload, sizeof(payload), "%.*s|%ld", (int)blen,
		    (const char *)body, us);

		if (edge_enqueue_async(edge_req_ctx(req), "span", payload, (size_t)len, NULL,
		    enqueued, b) < 0)
			enqueued(edge_req_ctx(req), -1, errno, b);
	}
}

static int
init(edge_ctx *ctx)
{
	self = ctx;
	if (edge_durable_handle(ctx, "span", EDGE_DURABLE_BLOCKING, run_span, NULL) < 0) {
		edge_log(ctx, "edge_durable_handle: %s", strerror(errno));
		return -1;
	}
	return 0;
}

EDGE_FUNCTION(init, handle);
