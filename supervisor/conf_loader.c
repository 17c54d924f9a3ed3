/*
 * conf_loader.c - a config load on a thread, its result on the loop (conf_loader.h).
 *
 * One load at a time. The thread owns its job until it writes the job's address to
 * the pipe; from then on the loop owns it (reads it, joins the thread, hands the
 * config to the callback). The thread is created with every signal blocked, as the
 * supervisor's main thread has them, so no signal is ever delivered to it.
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

struct job {
	char *path;
	struct sv_conf *conf;
	char err[1024];
	conf_loaded_fn cb;
	void *arg;
};

static int pipefd[2] = { -1, -1 };
static struct event *done_ev;
static pthread_t thread;
static struct job *running;   /* the job whose thread is not joined yet */

static void *
load_main(void *arg)
{
	struct job *j = arg;
	ssize_t n;

	j->conf = config_load(j->path, j->err, sizeof(j->err));
	/* A pointer is far below PIPE_BUF: the write is whole or fails whole. */
	do
		n = write(pipefd[1], &j, sizeof(j));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(j))
		log_error("conf_loader_failed", "err=%s", log_qv(strerror(errno)));
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

	if (read(fd, &j, sizeof(j)) != (ssize_t)sizeof(j) || j != running)
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
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(pipefd[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (done_ev = event_new(base, pipefd[0], EV_READ | EV_PERSIST, done_cb, NULL)) == NULL ||
	    event_add(done_ev, NULL) < 0) {
		conf_loader_shutdown();
		return -1;
	}
	return 0;
}

void
conf_loader_shutdown(void)
{
	if (running != NULL) {
		struct job *j;

		pthread_join(thread, NULL);
		/* Its address is in the pipe (or the write failed): drop it either way. */
		while (pipefd[0] >= 0 && read(pipefd[0], &j, sizeof(j)) == (ssize_t)sizeof(j))
			;
		job_free(running);
		running = NULL;
	}
	if (done_ev != NULL)
		event_free(done_ev);
	done_ev = NULL;
	for (int i = 0; i < 2; i++) {
		if (pipefd[i] >= 0)
			close(pipefd[i]);
		pipefd[i] = -1;
	}
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
	sigset_t all, old;
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
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&thread, NULL, load_main, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		job_free(j);
		errno = rc;
		return -1;
	}
	running = j;
	return 0;
}
