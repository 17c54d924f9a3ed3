/*
 * admin_job.c - admin pages rendered on a thread, answered on the loop (admin_job.h).
 *
 * Ownership: a job belongs to the loop until its thread is created, then to the
 * thread (which renders, frees the snapshot and writes the job's address to the
 * pipe), then to the loop again, which joins the thread, answers the job's waiters
 * and frees it (loop_thread.h, as conf_loader.c does). The thread touches only the
 * job's snapshot and output buffer, never a request or a waiter. One thread per
 * job, created with every signal blocked.
 *
 * A waiter is one request waiting for a page. Its connection's close callback is
 * ours while it waits (an admin connection carries one request at a time: evhttp
 * reads the next only after the answer), and is removed before the answer is sent.
 */
#include "admin_job.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../common/clock.h"
#include "../common/list.h"
#include "../common/log.h"
#include "admin_reply.h"
#include "loop_thread.h"

#define ADMIN_JOB_PAGES 4   /* distinct pages served (two today) */

struct slot;

struct waiter {
	TAILQ_ENTRY(waiter) entry;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	struct slot *slot;
	struct waiter_list *list;   /* the list it is on: a job's, or its slot's next */
};
TAILQ_HEAD(waiter_list, waiter);

struct job {
	struct slot *slot;
	pthread_t thread;
	void *snap;
	struct evbuffer *out;
	int rc;
	struct waiter_list waiters;
	uint64_t take_us;           /* the snapshot's time on the loop */
	uint64_t render_us;         /* the thread's */
};

struct slot {
	const struct admin_page *page;
	struct job *running;        /* its thread not joined yet */
	struct waiter_list next;    /* arrived while it runs: the next job's */
	unsigned nwaiting;          /* in running's and in next */
};

/* What a shared answer's body points at: the rendered buffer, pulled up into one
 * block, freed when the last answer that references it is written or dropped. */
struct body {
	struct evbuffer *buf;
	unsigned refs;
};

static struct slot slots[ADMIN_JOB_PAGES];
static struct loop_pipe done = LOOP_PIPE_INIT;

/* ---- answers ------------------------------------------------------------------- */

static void
body_unref(const void *data, size_t len, void *arg)
{
	struct body *body = arg;

	if (--body->refs == 0) {
		evbuffer_free(body->buf);
		free(body);
	}
}

/* W leaves its list; its connection's close callback is no longer ours. */
static void
waiter_unlink(struct waiter *w)
{
	TAILQ_REMOVE(w->list, w, entry);
	w->slot->nwaiting--;
	if (w->evcon != NULL)
		evhttp_connection_set_closecb(w->evcon, NULL, NULL);
}

/*
 * W's connection is being freed. Either libevent frees W's request right after
 * this (it is still on the connection: the evhttp is freed) or it detached the
 * request from a connection that failed (it has no connection now) and it is ours.
 * Either way it is never answered.
 */
static void
waiter_closed(struct evhttp_connection *evcon, void *arg)
{
	struct waiter *w = arg;

	log_debug("admin_client_gone", "path=%s", w->slot->page->path);
	waiter_unlink(w);
	if (evhttp_request_get_connection(w->req) == NULL)
		evhttp_request_free(w->req);
	free(w);
}

/* Answers every waiter of J (its render, or 500) and frees J. */
static void
job_answer(struct job *j)
{
	const struct admin_page *page = j->slot->page;
	struct body *body = NULL;
	struct waiter *w, *tmp;
	size_t len = 0;
	unsigned n = 0;
	void *data = NULL;

	if (j->rc == 0 && (body = calloc(1, sizeof(*body))) != NULL) {
		len = evbuffer_get_length(j->out);
		data = evbuffer_pullup(j->out, -1);   /* one block already: job_main */
		body->buf = j->out;
		/* One reference for this loop: no answer frees it before the last is made. */
		body->refs = 1;
		j->out = NULL;
	}
	TAILQ_FOREACH_SAFE(w, &j->waiters, entry, tmp) {
		struct evbuffer *b = NULL;

		waiter_unlink(w);
		n++;
		if (body != NULL && (b = evbuffer_new()) != NULL &&
		    (len == 0 || evbuffer_add_reference(b, data, len, body_unref, body) == 0)) {
			if (len > 0)
				body->refs++;
			admin_reply(w->req, 200, "OK", page->content_type, b);
		} else
			admin_reply_error(w->req, 500, "Internal Server Error", "cannot build the reply");
		if (b != NULL)
			evbuffer_free(b);
		free(w);
	}
	if (body != NULL)
		body_unref(NULL, 0, body);
	log_debug("admin_render", "path=%s rc=%d answers=%u bytes=%zu take_us=%llu render_us=%llu",
	    page->path, j->rc, n, len, (unsigned long long)j->take_us,
	    (unsigned long long)j->render_us);
	if (j->out != NULL)
		evbuffer_free(j->out);
	if (j->snap != NULL)
		page->drop(j->snap);
	free(j);
}

/* ---- jobs ---------------------------------------------------------------------- */

static void *
job_main(void *arg)
{
	struct job *j = arg;
	uint64_t t0 = clock_us();

	j->rc = j->slot->page->render(j->snap, j->out);
	/* One block, made here: a megabyte copied on the loop would stall it. */
	if (j->rc == 0 && evbuffer_get_length(j->out) > 0 && evbuffer_pullup(j->out, -1) == NULL)
		j->rc = -1;
	j->slot->page->drop(j->snap);
	j->snap = NULL;
	j->render_us = clock_us() - t0;
	loop_thread_done(&done, j, "admin_job_failed");
	return NULL;
}

/* Starts a job for every request waiting on S: its snapshot now, its render on a
 * thread. Without a snapshot or a thread they are answered 500 at once. */
static void
job_start(struct slot *s)
{
	const struct admin_page *page = s->page;
	struct waiter *w;
	struct job *j;
	uint64_t t0;
	int rc;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		struct waiter *tmp;

		TAILQ_FOREACH_SAFE(w, &s->next, entry, tmp) {
			waiter_unlink(w);
			admin_reply_error(w->req, 500, "Internal Server Error", "out of memory");
			free(w);
		}
		return;
	}
	j->slot = s;
	j->rc = -1;
	TAILQ_INIT(&j->waiters);
	TAILQ_CONCAT(&j->waiters, &s->next, entry);
	TAILQ_FOREACH(w, &j->waiters, entry)
		w->list = &j->waiters;
	t0 = clock_us();
	j->snap = page->take(page->arg);
	j->take_us = clock_us() - t0;
	if (j->snap == NULL || (j->out = evbuffer_new()) == NULL) {
		job_answer(j);
		return;
	}
	if ((rc = loop_thread_start(&j->thread, job_main, j)) != 0) {
		log_warn("admin_job_failed", "path=%s err=%s", page->path, log_qv(strerror(rc)));
		job_answer(j);
		return;
	}
	s->running = j;
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j;

	while ((j = loop_pipe_read(&done)) != NULL) {
		struct slot *s = j->slot;

		if (s < slots || s >= slots + ADMIN_JOB_PAGES || s->running != j)
			continue;
		pthread_join(j->thread, NULL);
		s->running = NULL;
		job_answer(j);
		/* Those that came while it ran get a snapshot of now. */
		if (!TAILQ_EMPTY(&s->next))
			job_start(s);
	}
}

int
admin_job_init(struct event_base *base)
{
	if (done.ev != NULL)
		return 0;
	for (size_t i = 0; i < ADMIN_JOB_PAGES; i++)
		TAILQ_INIT(&slots[i].next);
	return loop_pipe_open(&done, base, done_cb);
}

/* Drops W unanswered: a request still on its connection is freed with it (the
 * evhttp is freed after this), a detached one now. */
static void
waiter_drop(struct waiter *w)
{
	waiter_unlink(w);
	if (evhttp_request_get_connection(w->req) == NULL)
		evhttp_request_free(w->req);
	free(w);
}

void
admin_job_shutdown(void)
{
	for (size_t i = 0; i < ADMIN_JOB_PAGES; i++) {
		struct slot *s = &slots[i];
		struct waiter *w, *tmp;
		struct job *j = s->running;

		if (s->page == NULL)
			continue;
		if (j != NULL) {
			/* Its address is in the pipe (or the write failed): drained below. */
			pthread_join(j->thread, NULL);
			s->running = NULL;
			TAILQ_FOREACH_SAFE(w, &j->waiters, entry, tmp)
				waiter_drop(w);
			if (j->out != NULL)
				evbuffer_free(j->out);
			free(j);
		}
		TAILQ_FOREACH_SAFE(w, &s->next, entry, tmp)
			waiter_drop(w);
		s->page = NULL;
	}
	loop_pipe_close(&done);
}

static struct slot *
slot_for(const struct admin_page *page)
{
	for (size_t i = 0; i < ADMIN_JOB_PAGES; i++)
		if (slots[i].page == page)
			return &slots[i];
	for (size_t i = 0; i < ADMIN_JOB_PAGES; i++)
		if (slots[i].page == NULL) {
			slots[i].page = page;
			return &slots[i];
		}
	return NULL;
}

void
admin_job_serve(const struct admin_page *page, struct evhttp_request *req)
{
	struct slot *s = done.ev != NULL ? slot_for(page) : NULL;
	struct waiter *w;

	if (s == NULL) {
		admin_reply_error(req, 500, "Internal Server Error", "no render for this page");
		return;
	}
	if (s->nwaiting >= ADMIN_JOB_WAITERS) {
		/* A flood: bounded, and told when to come back. */
		evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
		admin_reply_error(req, 503, "Service Unavailable", "too many requests for this page at once");
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		admin_reply_error(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	w->req = req;
	w->evcon = evhttp_request_get_connection(req);
	w->slot = s;
	w->list = &s->next;
	TAILQ_INSERT_TAIL(&s->next, w, entry);
	s->nwaiting++;
	if (w->evcon != NULL)
		evhttp_connection_set_closecb(w->evcon, waiter_closed, w);
	if (s->running == NULL)
		job_start(s);
}
