/*
 * ctor_probe.c - test function whose library constructor reports, as the process
 * that loads it (the library check, then each worker), what it runs under: one
 * line "pid=N uid=N seccomp=N unshare=ERR" appended to the file named by
 * $EDGEVISOR_TEST_CTOR_LOG (tests/integration/test_hostile_tenant.py). The
 * constructor runs before init, so this shows the filter is in place before any
 * tenant code, the check's included.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgevisor.h"

__attribute__((constructor)) static void
ctor_probe(void)
{
	const char *path = getenv("EDGEVISOR_TEST_CTOR_LOG");
	char line[256], mode[16] = "?";
	FILE *st;
	int fd, n, rc;

	if (path == NULL)
		return;
	if ((st = fopen("/proc/self/status", "re")) != NULL) {
		while (fgets(line, sizeof(line), st) != NULL)
			if (sscanf(line, "Seccomp: %15s", mode) == 1)
				break;
		fclose(st);
	}
	/* Single-threaded in the check: without a filter this would succeed. */
	rc = unshare(CLONE_NEWUSER);
	n = snprintf(line, sizeof(line), "pid=%d uid=%d seccomp=%s unshare=%s\n",
	    (int)getpid(), (int)getuid(), mode, rc == 0 ? "ok" : strerrorname_np(errno));
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)) >= 0) {
		if (write(fd, line, (size_t)n) < 0)
			n = 0;
		close(fd);
	}
}

static void
probe_handle(edge_req *req, edge_res *res)
{
	edge_res_send(res, 200, "text/plain", "probe\n", 6);
}

EDGE_FUNCTION(NULL, probe_handle);
