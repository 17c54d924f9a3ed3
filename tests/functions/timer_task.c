/*
 * timer_task.c - benchmark function: answers at once and leaves N async background
 * tasks that end after ?ms= milliseconds (default 200) on a timer of the worker's
 * loop. The response never waits for them.
 *
 * GET /?ms=200&n=1  ->  200 "pid=P started=N bytes=B\n", B being what one task of
 * ours allocates (its malloc chunk), so that the bench can tell the runtime's cost
 * per pending task from the task's own.
 *
 * Async tasks, not edge_wait_until: a 200 ms sleep on the blocking pool would cap a
 * worker at task_threads * 5 tasks a second, far below what wrk asks for.
 */
#include <malloc.h>
#include <stdlib.h>
#include <stdio.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "edgevisor.h"
#include "query.h"

struct timer_task {
	struct event tt_ev;
	edge_task *tt_task;
};

static struct event_base *tt_base;
static const struct timeval *tt_common;	/* O(1) queue for the last duration asked */
static long tt_common_ms = -1;
static long tt_pid;		/* getpid() once: it is a syscall (through seccomp) */

static void
timer_task_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct timer_task *tt = arg;

	(void)fd;
	(void)what;
	edge_task_end(tt->tt_task, 0, NULL);
	free(tt);
}

static int
timer_task_init(edge_ctx *ctx)
{
	tt_base = edge_ctx_base(ctx);
	tt_pid = (long)getpid();
	return 0;
}

/* Every task of a run has the same duration: one common-timeout queue serves all. */
static const struct timeval *
timer_tv(long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (ms != tt_common_ms) {
		tt_common = event_base_init_common_timeout(tt_base, &tv);
		tt_common_ms = tt_common != NULL ? ms : -1;
	}
	return tt_common;
}

static void
timer_task_handle(edge_req *req, edge_res *res)
{
	long ms = query_long(req, "ms", 200), n = query_long(req, "n", 1), i;
	const struct timeval *tv;
	struct timer_task *tt = NULL;
	size_t bytes = 0;
	char body[96];
	int len;

	if (ms < 0 || ms > 600000)
		ms = 200;
	tv = timer_tv(ms);
	for (i = 0; i < n; i++) {
		if ((tt = malloc(sizeof(*tt))) == NULL)
			break;
		bytes = malloc_usable_size(tt) + sizeof(size_t);
		if ((tt->tt_task = edge_task_begin(edge_req_ctx(req), "timer", 0)) == NULL) {
			free(tt);
			break;
		}
		evtimer_assign(&tt->tt_ev, tt_base, timer_task_done_cb, tt);
		if (tv == NULL || evtimer_add(&tt->tt_ev, tv) < 0) {
			edge_task_end(tt->tt_task, 1, "timer_failed");
			free(tt);
			break;
		}
	}
	len = snprintf(body, sizeof(body), "pid=%ld started=%ld bytes=%zu\n", tt_pid,
	    i, bytes);
	edge_res_send(res, i == n ? 200 : 503, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(timer_task_init, timer_task_handle);
