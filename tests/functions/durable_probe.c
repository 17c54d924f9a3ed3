/*
 * durable_probe - drives durable tasks for tests/integration/test_durable.py.
 *
 * POST /enqueue?kind=K&n=N[&key=KEY][&attempts=A][&delay=MS] with the body naming
 * the side file: N tasks of kind K, enqueued async; answers 200 "ids=FIRST,LAST"
 * once all are durable, or 507/503/400 with the errno when one failed.
 * POST /enqueue-block?... the same, one task, with the blocking edge_enqueue.
 *
 * Each handler appends one line "KIND ID ATTEMPT SEQ MS" to the side file (O_APPEND,
 * one write: lines never interleave), MS the wall clock:
 *   slow   (blocking) sleeps 20 ms, succeeds
 *   ok     (blocking) succeeds
 *   flaky  (blocking) asks for a retry until attempt 3, then succeeds
 *   never  (blocking) always asks for a retry
 *   async  (loop) answers 10 ms later from a timer (EDGE_DURABLE_LATER)
 * The payload is "PATH|SEQ".
 * GET /bench answers "hello" once one task (kind ok, due in an hour) is durable:
 * scripts/bench.sh's "one durable enqueue per request".
 * GET /open?path=P tries open(P, O_RDWR) as the tenant: "ok" or "errno=NAME".
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "query.h"

static edge_ctx *self;

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
note(edge_durable *t, const void *payload, size_t len)
{
	char path[512], line[256];
	const char *bar = memchr(payload, '|', len);
	int fd, n;

	if (bar == NULL || (size_t)(bar - (const char *)payload) >= sizeof(path))
		return;
	memcpy(path, payload, (size_t)(bar - (const char *)payload));
	path[bar - (const char *)payload] = '\0';
	n = snprintf(line, sizeof(line), "%s %lld %u %s %lld\n", edge_durable_kind(t),
	    (long long)edge_durable_id(t), edge_durable_attempt(t), bar + 1, now_ms());
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) < 0) {
		edge_log(self, "side file %s: %s", path, strerror(errno));
		return;
	}
	if (write(fd, line, (size_t)n) != n)
		edge_log(self, "side file write: %s", strerror(errno));
	close(fd);
}

static int
run_slow(edge_durable *t, const void *p, size_t len, void *arg)
{
	struct timespec ts = { 0, 20 * 1000000L };

	nanosleep(&ts, NULL);
	note(t, p, len);
	return EDGE_DURABLE_OK;
}

static int
run_ok(edge_durable *t, const void *p, size_t len, void *arg)
{
	note(t, p, len);
	return EDGE_DURABLE_OK;
}

static int
run_flaky(edge_durable *t, const void *p, size_t len, void *arg)
{
	note(t, p, len);
	return edge_durable_attempt(t) < 3 ? EDGE_DURABLE_RETRY : EDGE_DURABLE_OK;
}

static int
run_never(edge_durable *t, const void *p, size_t len, void *arg)
{
	note(t, p, len);
	return EDGE_DURABLE_RETRY;
}

static void
async_later(evutil_socket_t fd, short what, void *arg)
{
	edge_durable *t = arg;

	edge_durable_done(t, EDGE_DURABLE_OK, NULL);
}

static int
run_async(edge_durable *t, const void *p, size_t len, void *arg)
{
	struct timeval tv = { 0, 10000 };

	note(t, p, len);
	if (event_base_once(edge_ctx_base(self), -1, EV_TIMEOUT, async_later, t, &tv) < 0)
		return EDGE_DURABLE_RETRY;
	return EDGE_DURABLE_LATER;
}

struct batch {
	edge_res *res;
	long want, got;
	int64_t first, last;
	int err;
};

static void
answer(struct batch *b)
{
	char body[96];
	int status = 200;

	if (b->err != 0) {
		status = b->err == ENOSPC ? 507 : b->err == EINVAL ? 400 : 503;
		snprintf(body, sizeof(body), "error=%s\n", strerror(b->err));
	} else {
		snprintf(body, sizeof(body), "ids=%lld,%lld\n", (long long)b->first,
		    (long long)b->last);
	}
	edge_res_send(b->res, status, "text/plain", body, strlen(body));
	free(b);
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
	if (++b->got == b->want)
		answer(b);
}

static void
bench_done(edge_ctx *ctx, int64_t id, int err, void *arg)
{
	if (err != 0)
		edge_res_send(arg, 503, "text/plain", "error\n", 6);
	else
		edge_res_send(arg, 200, "text/plain", "hello\n", 6);
}

static void
handle(edge_req *req, edge_res *res)
{
	const char *path = edge_req_path(req);
	struct edge_durable_opts o = { 0 };
	char kind[64] = "ok", key[128], payload[600];
	const void *body;
	size_t blen;
	struct batch *b;
	long n = query_long(req, "n", 1);

	if (strcmp(path, "/bench") == 0) {
		static const struct edge_durable_opts later = { .delay_ms = 3600000 };

		if (edge_enqueue_async(edge_req_ctx(req), "ok", "/dev/null|0", 11, &later,
		    bench_done, res) < 0)
			edge_res_send(res, 503, "text/plain", "error\n", 6);
		return;
	}
	if (strcmp(path, "/open") == 0) {
		char p[512], out[96];
		int fd;

		if (query_str(req, "path", p, sizeof(p)) < 0) {
			edge_res_send(res, 400, "text/plain", "bad\n", 4);
			return;
		}
		fd = open(p, O_RDWR | O_CLOEXEC);
		if (fd >= 0) {
			close(fd);
			snprintf(out, sizeof(out), "ok\n");
		} else {
			snprintf(out, sizeof(out), "errno=%s\n", errno == EACCES ? "EACCES" :
			    errno == ENOENT ? "ENOENT" : strerror(errno));
		}
		edge_res_send(res, 200, "text/plain", out, strlen(out));
		return;
	}
	if (strcmp(path, "/enqueue") != 0 && strcmp(path, "/enqueue-block") != 0) {
		edge_res_send(res, 404, "text/plain", "no\n", 3);
		return;
	}
	body = edge_req_body(req, &blen);
	if (blen == 0 || blen > 500 || n < 1 || n > 100000) {
		edge_res_send(res, 400, "text/plain", "bad\n", 4);
		return;
	}
	query_str(req, "kind", kind, sizeof(kind));
	if (query_str(req, "key", key, sizeof(key)) == 0)
		o.idempotency_key = key;
	o.max_attempts = (uint32_t)query_long(req, "attempts", 0);
	o.delay_ms = (uint32_t)query_long(req, "delay", 0);
	if (strcmp(path, "/enqueue-block") == 0) {
		int len = snprintf(payload, sizeof(payload), "%.*s|0", (int)blen,
		    (const char *)body);
		int64_t id = edge_enqueue(edge_req_ctx(req), kind, payload, (size_t)len, &o);
		char out[64];

		if (id < 0) {
			snprintf(out, sizeof(out), "error=%s\n", strerror(errno));
			edge_res_send(res, errno == ENOSPC ? 507 : 503, "text/plain", out,
			    strlen(out));
			return;
		}
		snprintf(out, sizeof(out), "ids=%lld,%lld\n", (long long)id, (long long)id);
		edge_res_send(res, 200, "text/plain", out, strlen(out));
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
		    (const char *)body, i);

		if (edge_enqueue_async(edge_req_ctx(req), kind, payload, (size_t)len, &o,
		    enqueued, b) < 0) {
			/* Counted as answered with that error; the others still come back. */
			enqueued(edge_req_ctx(req), -1, errno, b);
		}
	}
}

static int
init(edge_ctx *ctx)
{
	self = ctx;
	if (edge_durable_handle(ctx, "slow", EDGE_DURABLE_BLOCKING, run_slow, NULL) < 0 ||
	    edge_durable_handle(ctx, "ok", EDGE_DURABLE_BLOCKING, run_ok, NULL) < 0 ||
	    edge_durable_handle(ctx, "flaky", EDGE_DURABLE_BLOCKING, run_flaky, NULL) < 0 ||
	    edge_durable_handle(ctx, "never", EDGE_DURABLE_BLOCKING, run_never, NULL) < 0 ||
	    edge_durable_handle(ctx, "async", 0, run_async, NULL) < 0) {
		edge_log(ctx, "edge_durable_handle: %s", strerror(errno));
		return -1;
	}
	return 0;
}

EDGE_FUNCTION(init, handle);
