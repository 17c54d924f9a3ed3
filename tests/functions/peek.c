/*
 * peek.c - test function: a tenant trying to reach what is not its own, reporting
 * each attempt in its response body, one "name result" line each ("ok" or the errno
 * name), so the test can tell a refusal from a success.
 *
 * GET /?file=/path&pid=N&pid2=M&sock=/path
 *   read  open(file) for reading
 *   kill  kill(pid, 0) - may it signal the supervisor?
 *   kill2 kill(pid2, 0) - may it signal another tenant's worker?
 *   admin connect() to the unix socket at sock
 *   ppid  getppid() (informative)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "edgevisor.h"
#include "query.h"

static const char *
result(int rc)
{
	return rc == 0 ? "ok" : strerrorname_np(errno);
}

static void
peek_handle(edge_req *req, edge_res *res)
{
	char path[256], body[1024];
	int len = 0, fd, rc;
	long pid;

	if (query_str(req, "file", path, sizeof(path)) == 0) {
		fd = open(path, O_RDONLY);
		rc = fd < 0 ? -1 : 0;
		len += snprintf(body + len, sizeof(body) - (size_t)len, "read %s\n", result(rc));
		if (fd >= 0)
			close(fd);
	}
	if ((pid = query_long(req, "pid", 0)) > 0) {
		rc = kill((pid_t)pid, 0);
		len += snprintf(body + len, sizeof(body) - (size_t)len, "kill %s\n", result(rc));
	}
	if ((pid = query_long(req, "pid2", 0)) > 0) {
		rc = kill((pid_t)pid, 0);
		len += snprintf(body + len, sizeof(body) - (size_t)len, "kill2 %s\n", result(rc));
	}
	if (query_str(req, "sock", path, sizeof(path)) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		memcpy(sun.sun_path, path, strnlen(path, sizeof(sun.sun_path) - 1));
		rc = s < 0 ? -1 : connect(s, (struct sockaddr *)&sun, sizeof(sun));
		len += snprintf(body + len, sizeof(body) - (size_t)len, "admin %s\n", result(rc));
		if (s >= 0)
			close(s);
	}
	len += snprintf(body + len, sizeof(body) - (size_t)len, "ppid %d\nuid %d\n",
	    (int)getppid(), (int)getuid());
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(NULL, peek_handle);
