/*
 * evq.c - the event queue (see evq.h): a growable ring of events and one libevent
 * event that is made active whenever the ring is not empty.
 */
#include "evq.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../common/log.h"

static struct evq_item *ring;
static size_t cap, head, count;
static struct event *run_ev;
static evq_handler handler;

static void run_cb(evutil_socket_t fd, short what, void *arg);

int
evq_init(struct event_base *base, evq_handler h)
{
	handler = h;
	cap = 256;
	ring = calloc(cap, sizeof(*ring));
	run_ev = event_new(base, -1, 0, run_cb, NULL);
	if (ring == NULL || run_ev == NULL) {
		evq_shutdown();
		return -1;
	}
	return 0;
}

void
evq_shutdown(void)
{
	if (run_ev != NULL)
		event_free(run_ev);
	run_ev = NULL;
	free(ring);
	ring = NULL;
	cap = head = count = 0;
}

/* Doubles the ring, keeping the order. */
static int
grow(void)
{
	struct evq_item *n = calloc(cap * 2, sizeof(*n));

	if (n == NULL)
		return -1;
	for (size_t i = 0; i < count; i++)
		n[i] = ring[(head + i) % cap];
	free(ring);
	ring = n;
	head = 0;
	cap *= 2;
	return 0;
}

void
evq_push(enum evq_type type, struct pool *p, struct worker *w, uint32_t arg)
{
	struct evq_item *it;

	if (count == cap && grow() < 0) {
		/* Out of memory with thousands of events queued: nothing sane is left. */
		log_error("fatal", "msg=\"event queue: out of memory\"");
		abort();
	}
	it = &ring[(head + count) % cap];
	it->type = type;
	it->pool = p;
	it->worker = w;
	it->arg = arg;
	count++;
	if (run_ev != NULL && count == 1)
		event_active(run_ev, 0, 0);
}

void
evq_run(void)
{
	/* A handler may push more: they run in this same pass, in order. */
	while (count > 0) {
		struct evq_item it = ring[head];

		head = (head + 1) % cap;
		count--;
		handler(&it);
	}
}

static void
run_cb(evutil_socket_t fd, short what, void *arg)
{
	evq_run();
}
