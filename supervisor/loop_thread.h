/*
 * loop_thread.h - work done on a thread of its own whose result is handed back to
 * the supervisor's loop through a pipe (loop_thread.c): the one way conf_loader.c
 * and admin_job.c do it. The thread writes the address of its job to the pipe when
 * it is done; the loop's callback reads it, joins the thread and owns the job again.
 */
#ifndef SV_LOOP_THREAD_H
#define SV_LOOP_THREAD_H

#include <pthread.h>

#include <event2/event.h>

struct loop_pipe {
	int fd[2];                  /* read end on the loop, write end for the threads */
	struct event *ev;
};
#define LOOP_PIPE_INIT { { -1, -1 }, NULL }

/* Opens P with CB called on BASE when a job's address can be read. 0 or -1. */
int loop_pipe_open(struct loop_pipe *p, struct event_base *base, event_callback_fn cb);
/* Closes P (joining is the caller's). */
void loop_pipe_close(struct loop_pipe *p);
/* Starts FN(ARG) on a joinable thread with every signal blocked (the signals are
 * the loop's). 0, or an error number. */
int loop_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
/* On the thread, last: hands JOB to the loop. A failure is logged as EV. */
void loop_thread_done(struct loop_pipe *p, void *job, const char *ev);
/* On the loop: the next job's address from P's read end, or NULL when none is there. */
void *loop_pipe_read(struct loop_pipe *p);

#endif
