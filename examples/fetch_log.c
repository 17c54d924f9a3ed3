/*
 * fetch_log - the seed's shape with an outbound call: answer at once, then tell a
 * logging endpoint about the request in the background.
 *
 *   GET /anything?to=http://127.0.0.1:9000/log
 *
 * answers "logged in the background\n" at once, then POSTs "GET /anything" to the
 * URL in to= (the last query parameter, taken as it is) with edge_fetch(). The fetch
 * is a background task: the worker does not drain before it ended. Its outcome is
 * logged by the callback; a failure (unreachable, timeout, too large) also reaches
 * the task-error hook, which logs it too.
 */
#include <stdio.h>
#include <string.h>

#include <edgevisor.h>

static void
on_logged(edge_ctx *ctx, const struct edge_fetch_res *res, void *arg)
{
	if (res->error != NULL)
		edge_log(ctx, "log fetch %lld failed: %s", (long long)res->id, res->error);
	else
		edge_log(ctx, "log fetch %lld answered %d (%zu bytes)", (long long)res->id,
		    res->status, res->body_len);
}

static void
on_task_error(edge_ctx *ctx, struct edge_task_error *err, void *arg)
{
	edge_log(ctx, "task %lld (%s) failed: %s", (long long)err->id, err->name, err->reason);
	edge_task_error_prevent_default(err);
}

static int
init(edge_ctx *ctx)
{
	return edge_on_task_error(ctx, on_task_error, NULL);
}

static void
handle(edge_req *req, edge_res *res)
{
	static const struct edge_fetch_header hdrs[] = { { "Content-Type", "text/plain" } };
	const char *q = edge_req_query(req), *to = strstr(q, "to=");
	char line[512];
	int len = snprintf(line, sizeof(line), "%s %s", edge_req_method(req), edge_req_path(req));
	struct edge_fetch_req fr = {
		.method = "POST",
		.headers = hdrs,
		.nheaders = 1,
		.body = line,
		.body_len = len > 0 && (size_t)len < sizeof(line) ? (size_t)len : 0,
		.timeout_ms = 5000,
		.name = "log_request",
	};

	/*
	 * edge_fetch copies the request and starts it from the loop later, so the
	 * response below goes out first: the client never waits for the endpoint. (It
	 * is called before edge_res_send because the request's strings end there.)
	 */
	if (to == NULL)
		edge_log(edge_req_ctx(req), "no ?to= given: nothing to log to");
	else if ((fr.url = to + 3, edge_fetch(edge_req_ctx(req), &fr, on_logged, NULL)) < 0)
		edge_log(edge_req_ctx(req), "log fetch refused: %m");
	edge_res_send(res, 200, "text/plain", "logged in the background\n", 25);
}

EDGE_FUNCTION(init, handle);
