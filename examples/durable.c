/*
 * durable - the seed's background example with a task that cannot be lost.
 *
 *   EdgeRuntime.waitUntil(fetch(hook))   -> edge_enqueue_async(): recorded in the
 *                                           function's journal before we answer
 *   (the work itself)                    -> the "notify" handler, run by some worker
 *                                           of the function, now or after a crash
 *
 * POST /orders?hook=URL with a body: answers 202 once a "notify" task is durable; the
 * task POSTs the body to URL with edge_fetch. A 2xx ends it, a 5xx or a network error
 * retries it (exponential backoff, 8 attempts, then dead: `edgevisorctl tasks NAME`),
 * a 4xx is a permanent failure. An Idempotency-Key header makes a client's retry of
 * the same POST record one task, not two. Delivery is at least once: the hook must
 * take the same notification twice (it carries the key for that).
 *
 * Needs "durable": {"backend": "local"} in the function's config.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <edgevisor.h>

/* Payload: "URL\nKEY\nBODY". */
static int
notify(edge_durable *task, const void *payload, size_t len, void *arg);

static void
notified(edge_ctx *ctx, const struct edge_fetch_res *res, void *arg)
{
	edge_durable *task = arg;
	char why[128];

	if (res->error != NULL) {
		snprintf(why, sizeof(why), "%s", res->error);
		edge_durable_done(task, EDGE_DURABLE_RETRY, why);
	} else if (res->status >= 200 && res->status < 300) {
		edge_durable_done(task, EDGE_DURABLE_OK, NULL);
	} else {
		snprintf(why, sizeof(why), "hook answered %d", res->status);
		edge_durable_done(task, res->status >= 500 ? EDGE_DURABLE_RETRY : EDGE_DURABLE_FAIL,
		    why);
	}
}

static int
notify(edge_durable *task, const void *payload, size_t len, void *arg)
{
	edge_ctx *ctx = arg;
	const char *p = payload, *nl1 = memchr(p, '\n', len), *nl2;
	char url[1024], key[256];
	struct edge_fetch_header h[2] = { { "Content-Type", "application/json" } };
	struct edge_fetch_req req = { .method = "POST", .url = url, .headers = h, .nheaders = 1,
		.timeout_ms = 10000, .name = "notify" };

	if (nl1 == NULL || (nl2 = memchr(nl1 + 1, '\n', len - (size_t)(nl1 + 1 - p))) == NULL ||
	    (size_t)(nl1 - p) >= sizeof(url) || (size_t)(nl2 - nl1 - 1) >= sizeof(key))
		return EDGE_DURABLE_FAIL;   /* not ours to retry: it will never parse */
	snprintf(url, sizeof(url), "%.*s", (int)(nl1 - p), p);
	snprintf(key, sizeof(key), "%.*s", (int)(nl2 - nl1 - 1), nl1 + 1);
	if (key[0] != '\0') {
		h[1] = (struct edge_fetch_header){ "Idempotency-Key", key };
		req.nheaders = 2;
	}
	req.body = nl2 + 1;
	req.body_len = len - (size_t)(nl2 + 1 - p);
	if (edge_fetch(ctx, &req, notified, task) < 0)
		return errno == EINVAL || errno == EACCES ? EDGE_DURABLE_FAIL : EDGE_DURABLE_RETRY;
	return EDGE_DURABLE_LATER;  /* notified() ends the attempt */
}


static void
recorded(edge_ctx *ctx, int64_t id, int err, void *arg)
{
	edge_res *res = arg;
	char body[96];

	if (err != 0) {
		snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", strerror(err));
		edge_res_send(res, err == ENOSPC ? 507 : 503, "application/json", body, strlen(body));
		return;
	}
	snprintf(body, sizeof(body), "{\"task\":%lld}\n", (long long)id);
	edge_res_send(res, 202, "application/json", body, strlen(body));
}

static void
handle(edge_req *req, edge_res *res)
{
	const char *q = edge_req_query(req), *key = edge_req_header(req, "Idempotency-Key");
	struct edge_durable_opts opts = { .max_attempts = 8, .idempotency_key = key };
	const void *body;
	size_t blen, n;
	char *payload;

	if (strcmp(edge_req_method(req), "POST") != 0 || strcmp(edge_req_path(req), "/orders") != 0 ||
	    strncmp(q, "hook=", 5) != 0) {
		edge_res_send(res, 404, "text/plain", "POST /orders?hook=URL\n", 22);
		return;
	}
	body = edge_req_body(req, &blen);
	n = strlen(q + 5) + 1 + (key != NULL ? strlen(key) : 0) + 1 + blen;
	if ((payload = malloc(n + 1)) == NULL) {
		edge_res_send(res, 503, "text/plain", "busy\n", 5);
		return;
	}
	n = (size_t)snprintf(payload, n + 1, "%s\n%s\n", q + 5, key != NULL ? key : "");
	memcpy(payload + n, body, blen);
	/* Copied by the call: the journal has it once recorded() is told so. */
	if (edge_enqueue_async(edge_req_ctx(req), "notify", payload, n + blen, &opts, recorded,
	    res) < 0)
		edge_res_send(res, errno == EINVAL ? 400 : 503, "text/plain", "not recorded\n", 13);
	free(payload);
}

static int
init(edge_ctx *ctx)
{
	return edge_durable_handle(ctx, "notify", 0, notify, ctx);
}

EDGE_FUNCTION(init, handle);
