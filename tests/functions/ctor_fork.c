/*
 * ctor_fork.c - test function whose library constructor double-forks a daemon
 * (setsid, SIGTERM ignored, sleeps an hour) and returns at once: the check passes,
 * and neither the check nor, once the supervisor stops, a worker may leave that
 * process behind (tests/integration/test_check.py). The daemon keeps stdout and
 * stderr open, as a careless one does, so nothing may wait for their EOF. With
 * EDGEVISOR_TEST_CTOR_SLEEP set the constructor then sleeps 3 s, so the check's
 * timeout has to kill it with its daemon (tests/unit/test_check.c).
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgevisor.h"

__attribute__((constructor)) static void
ctor_fork(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		setsid();
		if (fork() == 0) {
			signal(SIGTERM, SIG_IGN);
			sleep(3600);
		}
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	if (getenv("EDGEVISOR_TEST_CTOR_SLEEP") != NULL)
		sleep(3);
}

static void
handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "forked\n", 7);
}

EDGE_FUNCTION(NULL, handle);
