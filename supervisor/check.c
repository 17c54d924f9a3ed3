/*
 * check.c - stand-in for the asynchronous library check: runs the synchronous
 * spawn_check_library() and reports from the loop. Replaced by the real one.
 */
#include "check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "spawn.h"

struct lib_check {
	struct event *ev;
	lib_check_cb cb;
	void *arg;
	int ok;
	char err[512];
};

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lib_check *c = arg;

	event_free(c->ev);
	c->cb(c, c->ok, c->err, c->arg);
	free(c);
}

struct lib_check *
lib_check_start(struct event_base *base, const struct fn_conf *fc, const char *worker_path,
    uint32_t timeout_ms, lib_check_cb cb, void *arg)
{
	struct lib_check *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->cb = cb;
	c->arg = arg;
	c->ev = evtimer_new(base, done_cb, c);
	if (c->ev == NULL) {
		free(c);
		return NULL;
	}
	c->ok = spawn_check_library(fc, worker_path, c->err, sizeof(c->err)) == 0;
	if (c->ok)
		c->err[0] = '\0';
	event_active(c->ev, EV_TIMEOUT, 0);
	return c;
}

void
lib_check_cancel(struct lib_check *c)
{
	event_free(c->ev);
	free(c);
}

int
lib_check_on_exit(pid_t pid, int status)
{
	return 0;
}

int
lib_check_all_sync(const struct sv_conf *conf, const char *worker_path, unsigned n,
    char *err, size_t errlen)
{
	struct fn_conf *fc;

	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (spawn_check_library(fc, worker_path, err, errlen) < 0)
			return -1;
	return 0;
}
