/*
 * admin_job.h - admin pages rendered off the supervisor's loop (admin_job.c).
 *
 * A page (GET /status, GET /metrics) is a snapshot taken on the loop (memory only)
 * and a render of it on a thread of its own (file reads, JSON, text); the result
 * comes back to the loop through a pipe, as conf_loader.c's config does, and is sent
 * there. At most one render per page is under way. Requests that arrive meanwhile
 * wait for the next one, which starts as soon as it ends from a snapshot taken then,
 * so every answer shows the state at or after its request arrived; they all share
 * that one render. At most ADMIN_JOB_WAITERS requests wait per page: more are
 * answered 503 with Retry-After at once.
 *
 * Request lifetime: libevent 2.1 frees an incoming request itself when its
 * connection is freed (the evhttp freed: an admin endpoint moved by a reload, or the
 * exit), and detaches it from a connection that failed before the answer (it is
 * then ours to free). A waiting request's connection close callback covers both: the
 * request is dropped, never answered.
 */
#ifndef SV_ADMIN_JOB_H
#define SV_ADMIN_JOB_H

#include <stdint.h>

struct event_base;
struct evbuffer;
struct evhttp_request;

#define ADMIN_JOB_WAITERS 64

struct admin_page {
	const char *path;          /* "/status": for the log */
	const char *content_type;
	/* On the loop: what the render needs, copied (shares nothing that can be freed
	 * meanwhile), or NULL when out of memory (answered 500). */
	void *(*take)(void *arg);
	/* On the job's thread: SNAP into OUT; 0, or -1 (answered 500). */
	int (*render)(void *snap, struct evbuffer *out);
	/* Frees SNAP (on the job's thread, or on the loop if no thread could start). */
	void (*drop)(void *snap);
	void *arg;                 /* take's */
};

/* Sets up the result pipe on BASE. 0 or -1. */
int admin_job_init(struct event_base *base);
/* Waits for the renders under way, drops them and every waiting request (the
 * caller frees the evhttps after: they free the requests still on a connection). */
void admin_job_shutdown(void);
/* Answers REQ (GET or HEAD) with PAGE, rendered off the loop. PAGE must stay valid
 * until admin_job_shutdown. */
void admin_job_serve(const struct admin_page *page, struct evhttp_request *req);

#endif
