/*
 * hostile.c - test function: a tenant that misbehaves on request, to show the
 * supervisor contains it to its own worker, cgroup and uid.
 *
 * GET /?do=fork&n=3    forks N children that sleep (and ignore SIGTERM) forever;
 *                      answers "pids P1 P2 ...\n"
 * GET /?do=fdleak&n=N  opens N fds (dup of /dev/null) and never closes them;
 *                      answers "fds N errno E\n" (E: first error, 0 = none)
 * GET /?do=leak&mb=N   mallocs and touches N MiB and never frees it
 * GET /?do=spin        spins forever on the loop thread (never answers)
 * GET /?do=exit        exit(0) from the handler, with ?tasks=N pending tasks first
 * GET /                200 "fine\n"
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgevisor.h"
#include "query.h"

static int
sleep_task(void *arg)
{
	struct timespec ts = { 3600, 0 };

	while (nanosleep(&ts, &ts) == -1)
		;
	return 0;
}

static void
do_fork(edge_req *req, edge_res *res)
{
	long n = query_long(req, "n", 1);
	char body[512];
	int len = snprintf(body, sizeof(body), "pids");

	for (long i = 0; i < n && i < 32; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			/* A stray that would outlive its worker if nothing killed it. */
			signal(SIGTERM, SIG_IGN);
			signal(SIGHUP, SIG_IGN);
			for (;;)
				pause();
		}
		if (pid > 0 && len < (int)sizeof(body) - 16)
			len += snprintf(body + len, sizeof(body) - (size_t)len, " %d", (int)pid);
	}
	len += snprintf(body + len, sizeof(body) - (size_t)len, "\n");
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

static void
do_fdleak(edge_req *req, edge_res *res)
{
	long n = query_long(req, "n", 1), i;
	int err = 0;
	char body[64];
	int len;

	for (i = 0; i < n; i++) {
		if (open("/dev/null", O_RDONLY) < 0) {
			err = errno;
			break;
		}
	}
	len = snprintf(body, sizeof(body), "fds %ld errno %d\n", i, err);
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

/* Kept reachable, so the compiler cannot drop the allocation as dead. */
static void *volatile leaked;

static void
do_leak(edge_req *req, edge_res *res)
{
	size_t sz = (size_t)query_long(req, "mb", 1) << 20;
	char *p = malloc(sz);

	if (p != NULL) {
		memset(p, 0xa5, sz);   /* touched: really resident */
		*(void **)p = leaked;  /* a chain of every block, never freed */
		leaked = p;
	}
	edge_res_send(res, p ? 200 : 500, "text/plain", p ? "leaked\n" : "nomem\n", p ? 7 : 6);
}

static void
hostile_handle(edge_req *req, edge_res *res)
{
	if (query_is(req, "do", "fork")) {
		do_fork(req, res);
	} else if (query_is(req, "do", "fdleak")) {
		do_fdleak(req, res);
	} else if (query_is(req, "do", "leak")) {
		do_leak(req, res);
	} else if (query_is(req, "do", "spin")) {
		volatile uint64_t x = 0;

		for (;;)
			x++;
	} else if (query_is(req, "do", "exit")) {
		long n = query_long(req, "tasks", 0);

		for (long i = 0; i < n; i++)
			edge_wait_until_named(edge_req_ctx(req), "doomed", 0, sleep_task, NULL);
		exit(0);
	} else {
		edge_res_send(res, 200, "text/plain", "fine\n", 5);
	}
}

EDGE_FUNCTION(NULL, hostile_handle);
