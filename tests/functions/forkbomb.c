/*
 * forkbomb.c - test function: a tenant that forks until fork fails, to show that
 * max_pids (the cgroup pids controller) bounds it to its own worker.
 *
 * GET /?do=bomb&n=N   forks up to N children (default 1000, at most 4096) that
 *                     sleep forever; stops at the first failed fork. Answers
 *                     "forked K errno E pids P1 P2 ...\n" (E: that fork's errno,
 *                     0 = none failed; the pid list is cut short if long)
 * GET /               200 "fine\n"
 *
 * The bound on N keeps an uncapped run (a broken cap) harmless on a shared host.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "edgevisor.h"
#include "query.h"

#define BOMB_MAX	4096

static void
do_bomb(edge_req *req, edge_res *res)
{
	long n = query_long(req, "n", 1000), k;
	char body[2048];
	char pids[1800];
	size_t plen = 0;
	int err = 0, len;

	if (n < 0 || n > BOMB_MAX)
		n = BOMB_MAX;
	pids[0] = '\0';
	for (k = 0; k < n; k++) {
		pid_t pid = fork();

		if (pid == 0) {
			/* Only async-signal-safe calls: the parent has threads. */
			for (;;)
				pause();
		}
		if (pid < 0) {
			err = errno;
			break;
		}
		if (plen + 16 < sizeof(pids))
			plen += (size_t)snprintf(pids + plen, sizeof(pids) - plen, " %d",
			    (int)pid);
	}
	len = snprintf(body, sizeof(body), "forked %ld errno %d pids%s\n", k, err, pids);
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

static void
forkbomb_handle(edge_req *req, edge_res *res)
{
	if (query_is(req, "do", "bomb"))
		do_bomb(req, res);
	else
		edge_res_send(res, 200, "text/plain", "fine\n", 5);
}

EDGE_FUNCTION(NULL, forkbomb_handle);
