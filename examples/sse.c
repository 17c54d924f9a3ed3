/*
 * sse - server-sent events: GET /?ms=500&n=10 streams one event every ms
 * milliseconds (default 1000), n of them (default 0: until the client leaves or the
 * worker drains). Each event carries its number and the wall-clock time (ms) at
 * which it was produced, so a client can see them arrive one by one:
 *
 *   curl -N 'http://127.0.0.1:8083/?ms=500&n=5'
 *
 * A slow client does not make the worker buffer without bound: an event that does
 * not fit (edge_res_write returns 1) is skipped; the client can tell by the gap in
 * the ids. When the worker drains, the stream says goodbye and ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include <edgevisor.h>

struct sse {
	edge_res *res;
	struct event *timer;
	long sent, n, skipped;
};

static void
sse_finish(struct sse *s)
{
	event_free(s->timer);
	edge_res_end(s->res);
	free(s);
}

static int
sse_send(struct sse *s, const char *event)
{
	struct timespec ts;
	char buf[160];
	int len;

	clock_gettime(CLOCK_REALTIME, &ts);
	len = snprintf(buf, sizeof(buf), "%sid: %ld\ndata: {\"n\":%ld,\"ms\":%lld,\"skipped\":%ld}\n\n",
	    event, s->sent + 1, s->sent + 1,
	    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, s->skipped);
	return edge_res_write(s->res, buf, (size_t)len);
}

static void
sse_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sse *s = arg;
	int r;

	(void)fd;
	(void)what;
	if ((r = sse_send(s, "")) < 0) {
		sse_finish(s);       /* the client is gone */
		return;
	}
	if (r == 1)
		s->skipped++;        /* no room: this event is dropped, not queued */
	s->sent++;
	if (s->n > 0 && s->sent >= s->n)
		sse_finish(s);
}

static void
sse_event(edge_res *res, enum edge_stream_event ev, void *arg)
{
	struct sse *s = arg;

	(void)res;
	if (ev == EDGE_STREAM_DRAINING)
		sse_send(s, "event: bye\n");
	if (ev != EDGE_STREAM_WRITABLE)
		sse_finish(s);
}

static long
query_num(const edge_req *req, const char *key, long def)
{
	const char *q = edge_req_query(req), *p;
	size_t klen = strlen(key);

	for (p = q; p != NULL && *p != '\0'; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return strtol(p + klen + 1, NULL, 10);
	return def;
}

static void
handle(edge_req *req, edge_res *res)
{
	struct timeval tv;
	struct sse *s;
	long ms = query_num(req, "ms", 1000);

	if (ms < 1)
		ms = 1;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		edge_res_send(res, 503, "text/plain", "no memory\n", 10);
		return;
	}
	s->res = res;
	s->n = query_num(req, "n", 0);
	s->timer = event_new(edge_ctx_base(edge_req_ctx(req)), -1, EV_PERSIST, sse_tick, s);
	edge_res_header(res, "Cache-Control", "no-cache");
	if (s->timer == NULL || edge_res_start(res, 200, "text/event-stream", sse_event, s) < 0) {
		if (s->timer != NULL)
			event_free(s->timer);
		free(s);
		edge_res_send(res, 503, "text/plain", "cannot stream\n", 14);
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = ms % 1000 * 1000;
	event_add(s->timer, &tv);
}

EDGE_FUNCTION(NULL, handle);
