/*
 * gate.c - test function for admission (test_admission.py): holds each request
 * ?ms= milliseconds (default 100) on a timer of the worker's loop, then answers
 * with when it began and ended (CLOCK_MONOTONIC ns, one clock for every process on
 * the host) and the ?id= it was given, so that the test can count from the function
 * side how many requests were in its workers at once, across workers.
 *
 * GET /?ms=200&id=7  ->  200 "id=7 pid=P begin=NS end=NS\n"
 *
 * A timer, not a sleep: a sleeping handler would serialise its worker's requests,
 * and the cap would never be what bounds them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "edgevisor.h"
#include "query.h"

struct held {
	struct event h_ev;
	edge_res *h_res;
	long h_id;
	long long h_begin;
};

static struct event_base *gate_base;

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
answer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct held *h = arg;
	char body[128];
	int len;

	(void)fd;
	(void)what;
	len = snprintf(body, sizeof(body), "id=%ld pid=%ld begin=%lld end=%lld\n", h->h_id,
	    (long)getpid(), h->h_begin, now_ns());
	edge_res_send(h->h_res, 200, "text/plain", body, (size_t)len);
	free(h);
}

static int
gate_init(edge_ctx *ctx)
{
	gate_base = edge_ctx_base(ctx);
	return 0;
}

static void
gate_handle(edge_req *req, edge_res *res)
{
	long ms = query_long(req, "ms", 100);
	struct timeval tv;
	struct held *h;

	if (ms < 0 || ms > 60000)
		ms = 100;
	if ((h = malloc(sizeof(*h))) == NULL) {
		edge_res_send(res, 500, "text/plain", "oom\n", 4);
		return;
	}
	h->h_res = res;
	h->h_id = query_long(req, "id", -1);
	h->h_begin = now_ns();
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_assign(&h->h_ev, gate_base, answer_cb, h);
	if (evtimer_add(&h->h_ev, &tv) < 0) {
		free(h);
		edge_res_send(res, 500, "text/plain", "timer\n", 6);
	}
}

EDGE_FUNCTION(gate_init, gate_handle);
