/*
 * conf_loader.c - a config load on a thread, its result on the loop (conf_loader.h).
 *
 * One load at a time. The thread owns its job until it writes the job's address to
 * the pipe (loop_thread.h); from then on the loop owns it (reads it, joins the
 * thread, hands the config to the callback). The thread is created with every
 * signal blocked, as the supervisor's main thread has them, so no signal is ever
 * delivered to it.
 */
#include "conf_loader.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "loop_thread.h"

struct job {
	char *path;
	struct sv_conf *conf;
	char err[1024];
	conf_loaded_fn cb;
	void *arg;
};

static struct loop_pipe done = LOOP_PIPE_INIT;
static pthread_t thread;
static struct job *running;   /* the job whose thread is not joined yet */

static void *
load_main(void *arg)
{
	struct job *j = arg;

	j->conf = config_load(j->path, j->err, sizeof(j->err));
	loop_thread_done(&done, j, "conf_loader_failed");
	return NULL;
}

static void
job_free(struct job *j)
{
	config_free(j->conf);
	free(j->path);
	free(j);
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct job *j;
	struct sv_conf *conf;

	if ((j = loop_pipe_read(&done)) == NULL || j != running)
		return;
	pthread_join(thread, NULL);
	running = NULL;
	conf = j->conf;
	j->conf = NULL;
	j->cb(conf, conf == NULL ? j->err : NULL, j->arg);
	job_free(j);
}

int
conf_loader_init(struct event_base *base)
{
	return loop_pipe_open(&done, base, done_cb);
}

void
conf_loader_shutdown(void)
{
	if (running != NULL) {
		pthread_join(thread, NULL);
		/* Its address is in the pipe (or the write failed): drop it either way. */
		while (loop_pipe_read(&done) != NULL)
			;
		job_free(running);
		running = NULL;
	}
	loop_pipe_close(&done);
}

bool
conf_loader_busy(void)
{
	return running != NULL;
}

int
conf_loader_start(const char *path, conf_loaded_fn cb, void *arg)
{
	struct job *j;
	int rc;

	if (running != NULL) {
		errno = EBUSY;
		return -1;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL || (j->path = strdup(path)) == NULL) {
		free(j);
		return -1;
	}
	j->cb = cb;
	j->arg = arg;
	if ((rc = loop_thread_start(&thread, load_main, j)) != 0) {
		job_free(j);
		errno = rc;
		return -1;
	}
	running = j;
	return 0;
}
