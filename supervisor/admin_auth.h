/*
 * admin_auth.h - who may call which admin route (issue 13: tenants share the host's
 * loopback, so loopback is no identity).
 *
 *   GET /metrics, GET /health    anyone who reaches a listener: read-only counters
 *   everything else              /status (it names every tenant's workers and tasks),
 *                                POST /reload, /drain/<fn>, /stop, and any route added
 *                                later: only the admin unix socket (0600, root), or
 *                                TCP with "Authorization: Bearer <admin_token_file>";
 *                                with no token configured, never over TCP.
 */
#ifndef SV_ADMIN_AUTH_H
#define SV_ADMIN_AUTH_H

#include <stdbool.h>

struct evhttp_request;

/* The token TCP callers must present (NUL-padded TOKEN_MAX + 1 bytes), or NULL for
 * none; copied. */
void admin_auth_set_token(const char *token);

/* Whether PATH is served to anyone (GET /metrics and GET /health). */
bool admin_auth_public(const char *path);

/*
 * May REQ, which arrived on the admin listener, use a privileged route? Returns
 * true, or false after answering it: 403 when TCP has no token configured, 401 with
 * WWW-Authenticate: Bearer when the token is missing or wrong. Denials are logged
 * (rate-limited), never with what the caller sent.
 */
bool admin_auth_privileged(struct evhttp_request *req, const char *path);

#endif
