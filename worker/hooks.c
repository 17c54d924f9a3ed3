/*
 * hooks.c - the function's event hooks: beforeunload (told why and how long the
 * worker has left) and task errors (the twin of 'unhandledrejection'), plus the
 * small edge_ctx accessors and edge_log().
 *
 * Hooks are called on the loop thread only. A failing task is normal: it is told
 * to the hooks and logged, never a reason for the worker to stop.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/queue.h>

#include "../common/board.h"
#include "../common/log.h"
#include "../common/wire.h"
#include "worker.h"

struct hook {
	TAILQ_ENTRY(hook) h_entry;
	union {
		edge_unload_fn unload;
		edge_task_error_fn error;
	} h_fn;
	void *h_arg;
};

static struct edge_ctx *hooks_ctx;

void
hooks_init(struct edge_ctx *ctx)
{
	hooks_ctx = ctx;
	TAILQ_INIT(&ctx->unload_hooks);
	TAILQ_INIT(&ctx->error_hooks);
	ctx->unload_fired = false;
}

/* Appends a hook to LIST; returns 0, or -1 with errno. */
static int
hook_add(struct hook_list *list, struct hook *h)
{
	if (h == NULL)
		return -1;
	TAILQ_INSERT_TAIL(list, h, h_entry);
	return 0;
}

int
edge_on_beforeunload(edge_ctx *ctx, edge_unload_fn fn, void *arg)
{
	struct hook *h;

	if (ctx == NULL || fn == NULL || ctx != hooks_ctx) {
		errno = EINVAL;
		return -1;
	}
	if ((h = calloc(1, sizeof(*h))) != NULL) {
		h->h_fn.unload = fn;
		h->h_arg = arg;
	}
	return hook_add(&ctx->unload_hooks, h);
}

int
edge_on_task_error(edge_ctx *ctx, edge_task_error_fn fn, void *arg)
{
	struct hook *h;

	if (ctx == NULL || fn == NULL || ctx != hooks_ctx) {
		errno = EINVAL;
		return -1;
	}
	if ((h = calloc(1, sizeof(*h))) != NULL) {
		h->h_fn.error = fn;
		h->h_arg = arg;
	}
	return hook_add(&ctx->error_hooks, h);
}

void
edge_task_error_prevent_default(struct edge_task_error *err)
{
	if (err != NULL)
		err->handled = 1;
}

/*
 * Runs every beforeunload hook with REASON (enum wire_reason) and DEADLINE_MS, once
 * per worker life; records the reason on the board for the supervisor.
 */
void
hooks_fire_beforeunload(uint32_t reason, int64_t deadline_ms)
{
	struct edge_ctx *ctx = hooks_ctx;
	struct hook *h;
	const char *name = wire_reason_name(reason);
	unsigned n = 0;

	if (ctx == NULL || ctx->unload_fired)
		return;
	ctx->unload_fired = true;
	if (ctx->board != NULL)
		__atomic_store_n(&ctx->board->unload_reason, reason, __ATOMIC_RELEASE);
	TAILQ_FOREACH(h, &ctx->unload_hooks, h_entry)
		n++;
	/* Logged before the hooks run: a hook that hangs until SIGKILL still left a trace. */
	log_info("beforeunload", "reason=%s deadline_ms=%lld hooks=%u", name,
	    (long long)deadline_ms, n);
	TAILQ_FOREACH(h, &ctx->unload_hooks, h_entry)
		h->h_fn.unload(ctx, name, deadline_ms, h->h_arg);
}

/*
 * Tells every task-error hook that task ID (NAME) failed with REASON and CODE; logs
 * a warning unless a hook marked it handled.
 */
void
hooks_task_error(int64_t id, const char *name, const char *reason, int code)
{
	struct edge_task_error err;
	struct edge_ctx *ctx = hooks_ctx;
	struct hook *h;

	if (name == NULL)
		name = "task";
	if (reason == NULL)
		reason = "failed";
	err = (struct edge_task_error){
		.id = id,
		.name = name,
		.reason = reason,
		.code = code,
		.handled = 0,
	};
	if (ctx != NULL) {
		TAILQ_FOREACH(h, &ctx->error_hooks, h_entry)
			h->h_fn.error(ctx, &err, h->h_arg);
	}
	/* An async task's reason is the function's text: one quoted logfmt value. */
	if (!err.handled)
		log_warn("task_error", "task_id=%lld task_name=%s reason=%s code=%d handled=0",
		    (long long)id, log_qv(name), log_qv(reason), code);
	else
		log_debug("task_error", "task_id=%lld task_name=%s reason=%s code=%d handled=1",
		    (long long)id, log_qv(name), log_qv(reason), code);
}

struct event_base *
edge_ctx_base(edge_ctx *ctx)
{
	return ctx != NULL ? ctx->base : NULL;
}

const char *
edge_ctx_function(const edge_ctx *ctx)
{
	return ctx != NULL && ctx->conf.name != NULL ? ctx->conf.name : "";
}

/* A log line from the function; only stack buffers, so any thread may call it. */
void
edge_log(edge_ctx *ctx, const char *fmt, ...)
{
	char msg[1024], esc[2048];
	va_list ap;

	if (log_level < LOG_LVL_INFO || fmt == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("function_log", "msg=%s", log_quote(esc, sizeof(esc), msg));
}
