/*
 * worker.h - what the parts of the worker process share: its configuration (the
 * wire_config record, first on WIRE_CTL_FD), the one edge_ctx, and the calls between the lifecycle (main.c), the HTTP
 * connections (http.c), background tasks (tasks.c) and the hooks (hooks.c).
 *
 * Threads: everything here runs on the loop thread, except the task pool's threads,
 * which only run task functions and hand results back through tasks.c's queue.
 */
#ifndef WK_WORKER_H
#define WK_WORKER_H

#include <stdbool.h>
#include <stdint.h>
#include "../common/list.h"

#include "../common/board.h"
#include "edgevisor.h"

struct event_base;

enum wk_policy { WK_PER_WORKER = 0, WK_PER_REQUEST, WK_ONESHOT };

struct wk_conf {
	const char *name;
	const char *library;
	uint32_t index;               /* worker id within its function */
	enum wk_policy policy;
	uint32_t request_timeout_ms;
	uint32_t idle_timeout_ms;
	uint32_t max_header_bytes;
	uint32_t max_body_bytes;
	uint32_t max_requests;        /* after this many, ask to be retired (early_drop);
	                               * the supervisor's jitter is already in it */
	uint32_t max_pending_tasks;
	uint32_t task_threads;
	uint32_t grace_ms;            /* beforeunload grace before SIGKILL */
	uint32_t fetch_max_concurrent;
	uint32_t fetch_max_queued;
	uint32_t fetch_max_response_bytes;
	uint32_t ws_max_message_bytes;
	uint32_t ws_max_buffer_bytes;
};

struct hook;
TAILQ_HEAD(hook_list, hook);

struct edge_ctx {
	struct event_base *base;
	struct wk_conf conf;
	struct board *board;
	const struct edge_function *fn;
	bool retiring;                /* no new work: finish, then report drained */
	bool terminating;             /* SIGTERM seen: hooks ran, exiting */
	bool unload_fired;            /* beforeunload runs once per worker */
	struct hook_list unload_hooks;
	struct hook_list error_hooks;
};

/* The worker's one context (a worker process runs one function). */
extern struct edge_ctx wk;

/* main.c: re-checks "no connection and no pending task" while retiring. */
void worker_check_drained(void);
/* main.c: asks the supervisor to retire (hard = 0) or terminate (hard = 1) us. */
void worker_report_limit(uint32_t reason, bool hard);

/* http.c: the connections handed over by the supervisor. */
int http_init(struct edge_ctx *ctx);
/* Takes ownership of FD (an accepted, non-blocking client socket); on failure closes it. */
void http_adopt(int fd);
struct wire_carry;
/* A connection of a shared listener with the bytes already read from it: those are
 * parsed first; after its first request it goes back to the supervisor (http.c). */
void http_adopt_routed(int fd, const struct wire_carry *wc);
/* The shared listeners' routes changed (WIRE_CTL_ROUTES): connections kept for a
 * route of an older epoch give their next request back. */
void http_routes_epoch(uint32_t epoch);
/* Closes idle keep-alive connections; busy ones close after their response. */
void http_retire(void);
unsigned http_conn_count(void);
void http_shutdown(void);

/* tasks.c: background tasks (edge_wait_until*, edge_task_begin/end). */
int tasks_init(struct edge_ctx *ctx);
uint64_t tasks_pending(void);
/* Shutdown: every pending task reaches the task-error hook as "cut"; they stay on
 * the board as pending, so the supervisor counts them lost. */
void tasks_cut_all(void);
void tasks_shutdown(void);

/* hooks.c: beforeunload and task-error hooks. */
void hooks_init(struct edge_ctx *ctx);
/* Runs every beforeunload hook once per worker life; later calls do nothing. */
void hooks_fire_beforeunload(uint32_t reason, int64_t deadline_ms);
/* Tells the task-error hooks; logs the error when no hook marked it handled. */
void hooks_task_error(int64_t id, const char *name, const char *reason, int code);

#endif
