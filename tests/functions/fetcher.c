/*
 * fetcher.c - test and bench function for edge_fetch. The target URL is always the
 * last query parameter, to=, taken raw (it may hold its own '?' and '&').
 *
 * GET /one?n=N&name=S&timeout=MS&redirects=R&allow=PAT&to=URL
 *     N fetches (default 1) of URL named S (default "fetch"); each callback logs
 *     "fetch_cb id=.. name=.. status=.. error=.. body_len=.."; allow= first adds PAT to
 *     the function's allow-list. Answers "ids=FIRST..LAST" at once, or 403 (EACCES),
 *     400 (EINVAL), 503 (other refusals) with "refused errno=E".
 * GET /many?n=N&c=C&to=URL
 *     N fetches in all, C at a time (default: all N at once); when the last ends it
 *     logs "fetch_batch n=N ok=O failed=F non200=X bytes=B ms=T" (T from the first
 *     start to the last end). One batch at a time: 409 while one runs.
 * The task-error hook logs "error_hook id=.. name=.. reason=.." and marks it handled.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgevisor.h"
#include "query.h"

static edge_ctx *self;

static struct {
	long n, c, started, ended, ok, failed, non200;
	size_t bytes;
	struct timespec t0;
	char url[2048];
	int running;
} batch;

/* The raw value after "to=" (the last parameter), or NULL. */
static const char *
query_to(const edge_req *req)
{
	const char *q = edge_req_query(req), *p = strstr(q, "to=");

	return p != NULL && (p == q || p[-1] == '&') ? p + 3 : NULL;
}

/* KEY's value copied into OUT (up to '&'), or DEF. */
static const char *
query_word(const edge_req *req, const char *key, char *out, size_t len, const char *def)
{
	const char *q = edge_req_query(req);
	size_t klen = strlen(key), n;

	while (q != NULL && *q != '\0') {
		if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
			n = strcspn(q + klen + 1, "&");
			if (n >= len)
				n = len - 1;
			memcpy(out, q + klen + 1, n);
			out[n] = '\0';
			return out;
		}
		q = strchr(q, '&');
		if (q != NULL)
			q++;
	}
	return def;
}

static void
on_error(edge_ctx *ctx, struct edge_task_error *e, void *arg)
{
	edge_log(ctx, "error_hook id=%lld name=%s reason=%s", (long long)e->id, e->name,
	    e->reason);
	edge_task_error_prevent_default(e);
}

static void
one_cb(edge_ctx *ctx, const struct edge_fetch_res *r, void *arg)
{
	edge_log(ctx, "fetch_cb id=%lld name=%s status=%d error=%s body_len=%zu",
	    (long long)r->id, (const char *)arg, r->status, r->error ? r->error : "none",
	    r->body_len);
}

static void batch_cb(edge_ctx *ctx, const struct edge_fetch_res *r, void *arg);

/* Starts batch fetches until C are in flight or N were started. */
static void
batch_fill(void)
{
	struct edge_fetch_req req = { .url = batch.url, .name = "batch" };

	while (batch.started < batch.n && batch.started - batch.ended < batch.c) {
		if (edge_fetch(self, &req, batch_cb, NULL) < 0) {
			/* Counted as ended and failed: the batch still finishes. */
			batch.failed++;
			batch.ended++;
		}
		batch.started++;
	}
}

static void
batch_cb(edge_ctx *ctx, const struct edge_fetch_res *r, void *arg)
{
	struct timespec t1;

	batch.ended++;
	if (r->error != NULL)
		batch.failed++;
	else
		batch.ok++;
	if (r->error == NULL && r->status != 200)
		batch.non200++;
	batch.bytes += r->body_len;
	if (batch.ended < batch.n) {
		batch_fill();
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	batch.running = 0;
	edge_log(ctx, "fetch_batch n=%ld ok=%ld failed=%ld non200=%ld bytes=%zu ms=%.1f",
	    batch.n, batch.ok, batch.failed, batch.non200, batch.bytes,
	    (double)(t1.tv_sec - batch.t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - batch.t0.tv_nsec) / 1e6);
}

static void
reply(edge_res *res, int status, const char *fmt, long a, long b)
{
	char body[96];
	int len = snprintf(body, sizeof(body), fmt, a, b);

	edge_res_send(res, status, "text/plain", body, (size_t)len);
}

static int
fetcher_init(edge_ctx *ctx)
{
	self = ctx;
	return edge_on_task_error(ctx, on_error, NULL);
}

static void
fetcher_handle(edge_req *req, edge_res *res)
{
	static char names[64][32];
	static unsigned next_name;
	const char *to = query_to(req), *path = edge_req_path(req);
	char pat[256], *name;
	struct edge_fetch_req fr = { 0 };
	long n = query_long(req, "n", 1);
	int64_t first = -1, id = -1;

	if (to == NULL || strlen(to) >= sizeof(batch.url) || n < 1 || n > 100000) {
		reply(res, 400, "want to=URL last, n in 1..100000\n", 0, 0);
		return;
	}
	if (strcmp(path, "/many") == 0) {
		if (batch.running) {
			reply(res, 409, "a batch runs\n", 0, 0);
			return;
		}
		memset(&batch, 0, sizeof(batch));
		batch.running = 1;
		batch.n = n;
		batch.c = query_long(req, "c", n);
		if (batch.c < 1)
			batch.c = 1;
		strcpy(batch.url, to);
		clock_gettime(CLOCK_MONOTONIC, &batch.t0);
		batch_fill();
		reply(res, 200, "started=%ld of %ld\n", batch.started, n);
		return;
	}
	if (query_word(req, "allow", pat, sizeof(pat), NULL) != NULL &&
	    edge_fetch_allow(self, pat) < 0) {
		reply(res, 400, "allow refused errno=%ld\n", errno, 0);
		return;
	}
	/* The callback's ARG names the fetch: a small ring of names outlives it. */
	name = names[next_name++ % 64];
	query_word(req, "name", name, sizeof(names[0]), "fetch");
	fr.url = to;
	fr.name = name;
	fr.timeout_ms = (uint32_t)query_long(req, "timeout", 0);
	fr.max_redirects = (uint32_t)query_long(req, "redirects", 0);
	for (long i = 0; i < n; i++) {
		if ((id = edge_fetch(self, &fr, one_cb, name)) < 0) {
			reply(res, errno == EACCES ? 403 : errno == EINVAL ? 400 : 503,
			    "refused errno=%ld\n", errno, 0);
			return;
		}
		if (first < 0)
			first = id;
	}
	reply(res, 200, "ids=%ld..%ld\n", (long)first, (long)id);
}

EDGE_FUNCTION(fetcher_init, fetcher_handle);
