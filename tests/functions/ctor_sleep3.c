/*
 * ctor_sleep3.c - test function whose library constructor sleeps 3 s: loading it
 * (dlopen) takes that long, in the supervisor's library check as in a worker. A check
 * with check_timeout_ms below 3000 must give up on it (kill the loading process)
 * without stalling anything else. Once loaded it answers "slept".
 *
 * Evidence for a test, opt-in: if a directory named after this .so plus ".d" exists
 * (e.g. /tmp/x/ctor_sleep3.so.d for /tmp/x/ctor_sleep3.so), a process that got past
 * the sleep leaves an empty file named after its pid there. A check killed at its
 * timeout leaves none.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "edgevisor.h"

__attribute__((constructor)) static void
ctor_sleep3(void)
{
	struct timespec left = { 3, 0 };
	char path[4096];
	Dl_info info;
	int fd;

	/* The whole 3 s even if a signal interrupts the sleep. */
	while (nanosleep(&left, &left) < 0 && errno == EINTR)
		;
	if (dladdr((void *)ctor_sleep3, &info) == 0 || info.dli_fname == NULL)
		return;
	if (snprintf(path, sizeof(path), "%s.d/%d", info.dli_fname, (int)getpid()) >=
	    (int)sizeof(path))
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0)
		close(fd);
}

static void
ctor_sleep3_handle(edge_req *req, edge_res *res)
{
	(void)req;
	edge_res_send(res, 200, "text/plain", "slept\n", 6);
}

EDGE_FUNCTION(NULL, ctor_sleep3_handle);
