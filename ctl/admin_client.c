/*
 * admin_client.c - the HTTP-over-unix-socket (or TCP) client of the admin endpoint,
 * shared by every edgevisorctl command (main.c) and by top (top.c).
 *
 * One blocking HTTP/1.1 request with "Connection: close" per call. libevent 2.1's
 * evhttp client cannot use a unix socket (its connect step always replaces the
 * bufferevent's fd with a new TCP socket), so the request is written by hand and the
 * reply - always Content-Length framed by evhttp_send_reply - is split into status
 * line, headers and body with evbuffer_readln; the JSON is parsed with jansson.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "../common/net.h"
#include "../common/token.h"
#include "admin_client.h"

static const char *addr = "?";
static struct net_addr admin;       /* addr parsed */
static char token[TOKEN_MAX + 1];   /* "" = send none */
static int io_timeout_s = 15;
static bool quiet;
static char last_error[512];

void
ctl_fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if (!quiet)
		fprintf(stderr, "edgevisorctl: %s\n", last_error);
}

void
admin_quiet(bool q)
{
	quiet = q;
}

const char *
admin_last_error(void)
{
	return last_error;
}

void
admin_timeout(int seconds)
{
	io_timeout_s = seconds;
}

int
admin_setup(const char *a, const char *tok)
{
	const char *why;

	addr = a;
	if (net_parse(addr, &admin, &why) < 0) {
		ctl_fail("%s: %s", addr, why);
		return -1;
	}
	snprintf(token, sizeof(token), "%s", tok ? tok : "");
	return 0;
}

/* Splits a Connection: close response held in BUF. Returns 0 or -1 (message given). */
static int
parse_reply(struct evbuffer *buf, struct reply *r)
{
	char *line;
	long clen = -1;
	int minor;
	size_t n;

	if ((line = evbuffer_readln(buf, &n, EVBUFFER_EOL_CRLF)) == NULL ||
	    sscanf(line, "HTTP/1.%d %d", &minor, &r->code) != 2) {
		ctl_fail("%s: not an HTTP reply", addr);
		free(line);
		return -1;
	}
	free(line);
	for (;;) {
		if ((line = evbuffer_readln(buf, &n, EVBUFFER_EOL_CRLF)) == NULL) {
			ctl_fail("%s: truncated reply headers", addr);
			return -1;
		}
		if (n == 0) {
			free(line);
			break;
		}
		if (strncasecmp(line, "Content-Length:", 15) == 0)
			clen = strtol(line + 15, NULL, 10);
		else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			ctl_fail("%s: unexpected chunked reply", addr);
			free(line);
			return -1;
		}
		free(line);
	}
	r->len = evbuffer_get_length(buf);
	if (clen >= 0 && (size_t)clen != r->len) {
		ctl_fail("%s: reply body is %zu bytes, Content-Length says %ld", addr, r->len,
		    clen);
		return -1;
	}
	if ((r->body = malloc(r->len + 1)) == NULL) {
		ctl_fail("out of memory");
		return -1;
	}
	evbuffer_remove(buf, r->body, r->len);
	r->body[r->len] = '\0';
	return 0;
}

int
admin_http(const char *method, const char *path, struct reply *r)
{
	struct evbuffer *buf = NULL;
	char req[1024];
	int fd, len, rc = -1;
	ssize_t got;

	memset(r, 0, sizeof(*r));
	/* A wedged supervisor must not hang the operator's shell. */
	if ((fd = net_connect(&admin, io_timeout_s)) < 0) {
		ctl_fail("cannot connect to %s: %s", addr, strerror(errno));
		return -1;
	}
	len = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: edgevisor\r\n"
	    "User-Agent: edgevisorctl\r\nConnection: close\r\nContent-Length: 0\r\n"
	    "%s%s%s\r\n", method, path, token[0] ? "Authorization: Bearer " : "", token,
	    token[0] ? "\r\n" : "");
	if (len < 0 || (size_t)len >= sizeof(req)) {
		ctl_fail("request too long");
		goto out;
	}
	for (int off = 0; off < len; off += (int)got) {
		got = write(fd, req + off, (size_t)(len - off));
		if (got < 0) {
			if (errno == EINTR) {
				got = 0;
				continue;
			}
			ctl_fail("%s: write: %s", addr, strerror(errno));
			goto out;
		}
	}
	if ((buf = evbuffer_new()) == NULL) {
		ctl_fail("out of memory");
		goto out;
	}
	while ((got = evbuffer_read(buf, fd, 65536)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ctl_fail("%s: read: %s", addr,
			    errno == EAGAIN ? "timed out" : strerror(errno));
			goto out;
		}
	}
	rc = parse_reply(buf, r);
out:
	if (buf)
		evbuffer_free(buf);
	close(fd);
	return rc;
}

void
admin_fail_reply(const char *what, const struct reply *r)
{
	json_t *o = json_loads(r->body, 0, NULL);
	const char *msg = json_string_value(json_object_get(o, "error"));

	ctl_fail("%s: %s (HTTP %d)", what, msg ? msg : r->body, r->code);
	json_decref(o);
}

json_t *
admin_get_status(void)
{
	struct reply r;
	json_error_t je;
	json_t *o;

	if (admin_http("GET", "/status", &r) < 0)
		return NULL;
	if (r.code != 200) {
		admin_fail_reply("status", &r);
		free(r.body);
		return NULL;
	}
	o = json_loads(r.body, 0, &je);
	free(r.body);
	if (o == NULL)
		ctl_fail("%s: bad JSON in /status: %s", addr, je.text);
	return o;
}

bool
admin_reachable(void)
{
	int fd = net_connect(&admin, io_timeout_s);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

bool
admin_is_unix(void)
{
	return admin.kind == NET_UNIX;
}
