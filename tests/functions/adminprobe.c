/*
 * adminprobe.c - test function: a tenant trying the supervisor's TCP admin and
 * metrics ports from inside its worker (issue 13: tenants share the host's loopback).
 *
 * GET /?port=N[&token=T] sends, each on a fresh connection to 127.0.0.1:N,
 *   POST /stop, POST /reload, POST /drain/probe, GET /status, GET /metrics, GET /health
 * (with "Authorization: Bearer T" when a token is given) and answers one line per
 * request: "METHOD PATH STATUS" with the HTTP status it got, or the errno name when
 * it got none (e.g. ECONNREFUSED).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "edgevisor.h"
#include "query.h"

/* One request; writes the status ("401") or errno name into OUT. */
static void
probe(int port, const char *method, const char *path, const char *token, char *out,
    size_t outlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { 5, 0 };
	char req[512], resp[64];
	size_t got = 0;
	ssize_t n;
	int fd, len, code;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(out, outlen, "%s", strerrorname_np(errno));
		return;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		snprintf(out, outlen, "%s", strerrorname_np(errno));
		goto out;
	}
	len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
	    "Content-Length: 0\r\n%s%s%s\r\n", method, path, token ? "Authorization: Bearer " : "",
	    token ? token : "", token ? "\r\n" : "");
	if (write(fd, req, (size_t)len) != len) {
		snprintf(out, outlen, "%s", strerrorname_np(errno));
		goto out;
	}
	while (got < sizeof(resp) - 1 && (n = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)n;
	resp[got] = '\0';
	if (sscanf(resp, "HTTP/1.%*d %d", &code) == 1)
		snprintf(out, outlen, "%d", code);
	else
		snprintf(out, outlen, "%s", got == 0 ? "EOF" : "garbage");
out:
	close(fd);
}

static void
adminprobe_handle(edge_req *req, edge_res *res)
{
	static const char *const reqs[][2] = {
		{ "POST", "/stop" }, { "POST", "/reload" }, { "POST", "/drain/probe" },
		{ "GET", "/status" }, { "GET", "/metrics" }, { "GET", "/health" },
	};
	char token[300], body[1024], got[32];
	long port = query_long(req, "port", 0);
	int len = 0;
	bool has_token = query_str(req, "token", token, sizeof(token)) == 0;

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		probe((int)port, reqs[i][0], reqs[i][1], has_token ? token : NULL, got,
		    sizeof(got));
		len += snprintf(body + len, sizeof(body) - (size_t)len, "%s %s %s\n",
		    reqs[i][0], reqs[i][1], got);
	}
	len += snprintf(body + len, sizeof(body) - (size_t)len, "uid %d\n", (int)getuid());
	edge_res_send(res, 200, "text/plain", body, (size_t)len);
}

EDGE_FUNCTION(NULL, adminprobe_handle);
