/*
 * admin_auth.c - the admin endpoint's access rule (admin_auth.h): the unix socket is
 * its own proof (only root can connect to a 0600 root socket), TCP needs the bearer
 * token.
 */
#include "admin_auth.h"
#include "admin_reply.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/token.h"

/* A tenant may hammer the TCP port: at most DENY_LOG_BURST denial lines per
 * interval; the next line logged says how many were left out. */
#define DENY_LOG_INTERVAL_MS 1000
#define DENY_LOG_BURST       10

static char auth_token[TOKEN_MAX + 1];
static bool auth_has_token;

void
admin_auth_set_token(const char *token)
{
	explicit_bzero(auth_token, sizeof(auth_token));
	auth_has_token = token != NULL;
	if (token != NULL)
		memcpy(auth_token, token, sizeof(auth_token));
}

bool
admin_auth_public(const char *path)
{
	return strcmp(path, "/metrics") == 0 || strcmp(path, "/health") == 0;
}

/* Whether REQ came over a unix socket (the socket, not the config, decides). */
static bool
over_unix(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	return ss.ss_family == AF_UNIX;
}

static void
log_denied(struct evhttp_request *req, const char *path, const char *why)
{
	static uint64_t window_ms;
	static unsigned logged, suppressed;
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	uint64_t now = clock_ms();
	char *peer = NULL, safe[128];
	ev_uint16_t port = 0;
	size_t n = 0;

	if (window_ms == 0 || now - window_ms >= DENY_LOG_INTERVAL_MS) {
		window_ms = now;
		logged = 0;
	}
	if (logged >= DENY_LOG_BURST) {
		suppressed++;
		return;
	}
	logged++;
	if (conn != NULL)
		evhttp_connection_get_peer(conn, &peer, &port);
	/* The path is the caller's: only its safe characters go into the line. */
	for (const char *c = path; *c != '\0' && n + 1 < sizeof(safe); c++)
		safe[n++] = (*c > 0x20 && *c < 0x7f && *c != '"' && *c != '\\') ? *c : '?';
	safe[n] = '\0';
	log_warn("admin_denied", "path=%s peer=%s:%u why=%s suppressed=%u", safe,
	    peer ? peer : "?", (unsigned)port, why, suppressed);
	suppressed = 0;
}

/* Answers CODE with {"error": MSG}; WWW, if any, is the WWW-Authenticate challenge. */
static void
deny(struct evhttp_request *req, int code, const char *reason, const char *www,
    const char *msg)
{
	if (www != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", www);
	admin_reply_error(req, code, reason, msg);
}

bool
admin_auth_privileged(struct evhttp_request *req, const char *path)
{
	const char *h;
	size_t len;

	if (over_unix(req))
		return true;
	if (!auth_has_token) {
		log_denied(req, path, "tcp_without_token");
		deny(req, 403, "Forbidden", NULL, "over TCP only GET /metrics and GET /health are "
		    "served; use the unix socket, or set admin_token_file to allow bearer "
		    "tokens");
		return false;
	}
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
		log_denied(req, path, "no_token");
		deny(req, 401, "Unauthorized", "Bearer realm=\"edgevisor\"", "this route needs Authorization: Bearer "
		    "<the token in admin_token_file>");
		return false;
	}
	for (h += 7; *h == ' '; h++)
		;
	len = strlen(h);
	while (len > 0 && h[len - 1] == ' ')
		len--;
	if (!token_equal(h, len, auth_token)) {
		log_denied(req, path, "bad_token");
		deny(req, 401, "Unauthorized",
		    "Bearer realm=\"edgevisor\", error=\"invalid_token\"", "invalid bearer token");
		return false;
	}
	return true;
}
