/*
 * delay.c - test function with known durations, for the latency histograms: answers
 * after ?ms= milliseconds (default 0: at once) from a timer of the worker's loop, and
 * with ?task_ms= leaves one async background task named "delay" that ends that many
 * milliseconds after the request arrived.
 *
 * GET /?ms=3&task_ms=20  ->  200 "waited 3\n" after 3 ms; the task ends 20 ms later.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "edgevisor.h"
#include "query.h"

struct delay {
	struct event *d_ev;
	edge_res *d_res;      /* NULL: a task's timer */
	edge_task *d_task;
	long d_ms;
};

static struct event_base *delay_base;

static void
delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delay *d = arg;
	char body[32];
	int len;

	(void)fd;
	(void)what;
	if (d->d_res != NULL) {
		len = snprintf(body, sizeof(body), "waited %ld\n", d->d_ms);
		edge_res_send(d->d_res, 200, "text/plain", body, (size_t)len);
	} else
		edge_task_end(d->d_task, 0, NULL);
	event_free(d->d_ev);
	free(d);
}

/* Runs delay_cb for D after MS milliseconds; returns 0, or -1 (D is the caller's). */
static int
delay_arm(struct delay *d, long ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	d->d_ms = ms;
	if ((d->d_ev = evtimer_new(delay_base, delay_cb, d)) == NULL)
		return -1;
	if (evtimer_add(d->d_ev, &tv) < 0) {
		event_free(d->d_ev);
		return -1;
	}
	return 0;
}

static int
delay_init(edge_ctx *ctx)
{
	delay_base = edge_ctx_base(ctx);
	return 0;
}

static void
delay_handle(edge_req *req, edge_res *res)
{
	long ms = query_long(req, "ms", 0), task_ms = query_long(req, "task_ms", -1);
	struct delay *d;

	if (ms < 0 || ms > 60000 || task_ms > 600000) {
		edge_res_send(res, 400, "text/plain", "bad ms\n", 7);
		return;
	}
	if (task_ms >= 0 && (d = calloc(1, sizeof(*d))) != NULL) {
		if ((d->d_task = edge_task_begin(edge_req_ctx(req), "delay", 0)) == NULL)
			free(d);
		else if (delay_arm(d, task_ms) < 0) {
			edge_task_end(d->d_task, 1, "no_timer");
			free(d);
		}
	}
	if (ms == 0) {
		edge_res_send(res, 200, "text/plain", "waited 0\n", 9);
		return;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		edge_res_send(res, 503, "text/plain", "no memory\n", 10);
		return;
	}
	d->d_res = res;
	if (delay_arm(d, ms) < 0) {
		free(d);
		edge_res_send(res, 503, "text/plain", "no timer\n", 9);
	}
}

EDGE_FUNCTION(delay_init, delay_handle);
