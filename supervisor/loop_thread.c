/*
 * loop_thread.c - threads that hand their result back to the loop (loop_thread.h).
 */
#include "loop_thread.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"

int
loop_pipe_open(struct loop_pipe *p, struct event_base *base, event_callback_fn cb)
{
	if (pipe2(p->fd, O_CLOEXEC) < 0)
		return -1;
	if (fcntl(p->fd[0], F_SETFL, O_NONBLOCK) < 0 ||
	    (p->ev = event_new(base, p->fd[0], EV_READ | EV_PERSIST, cb, NULL)) == NULL ||
	    event_add(p->ev, NULL) < 0) {
		loop_pipe_close(p);
		return -1;
	}
	return 0;
}

void
loop_pipe_close(struct loop_pipe *p)
{
	if (p->ev != NULL)
		event_free(p->ev);
	p->ev = NULL;
	for (int i = 0; i < 2; i++) {
		if (p->fd[i] >= 0)
			close(p->fd[i]);
		p->fd[i] = -1;
	}
}

int
loop_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

void
loop_thread_done(struct loop_pipe *p, void *job, const char *ev)
{
	ssize_t n;

	/* A pointer is far below PIPE_BUF: the write is whole or fails whole. The
	 * write end blocks and never fills (each user has one job in flight); it can
	 * only fail once the loop has closed the pipe at exit, and the loop frees the
	 * job itself then (it joins the thread first). */
	do
		n = write(p->fd[1], &job, sizeof(job));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(job))
		log_error(ev, "err=%s", log_qv(strerror(errno)));
}

void *
loop_pipe_read(struct loop_pipe *p)
{
	void *job;

	if (p->fd[0] < 0 || read(p->fd[0], &job, sizeof(job)) != (ssize_t)sizeof(job))
		return NULL;
	return job;
}
