/*
 * admin_client.h - edgevisorctl's one way to talk to the admin endpoint
 * (supervisor/admin.c): a blocking HTTP/1.1 request with "Connection: close" over a
 * unix socket or TCP, and the messages of what went wrong.
 *
 * Errors are 0/-1; the reason goes to stderr as "edgevisorctl: ..." unless
 * admin_quiet(true) (the full-screen top owns the terminal), and is always kept for
 * admin_last_error().
 */
#ifndef EV_CTL_ADMIN_CLIENT_H
#define EV_CTL_ADMIN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct reply {
	int code;
	char *body;     /* NUL-terminated, malloc'd: the caller frees it */
	size_t len;
};

/* ADDR as given ("unix:/path", "host:port"); TOKEN "" sends none. 0 or -1 (said). */
int admin_setup(const char *addr, const char *token);
/* Connect/read/write timeout in seconds (default 15). */
void admin_timeout(int seconds);
void admin_quiet(bool quiet);
const char *admin_last_error(void);

/* Says "edgevisorctl: FMT" (or keeps it, when quiet). */
void ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Says WHAT with the "error" member of a JSON error reply, else the raw body. */
void admin_fail_reply(const char *what, const struct reply *r);

/* One request; R gets the reply (R->body to free, also when the code is not 2xx). */
int admin_http(const char *method, const char *path, struct reply *r);
/* Whether the admin endpoint takes a connection now (closed again at once). */
bool admin_reachable(void);
/* Whether the admin endpoint is a unix socket (so the supervisor is on this host). */
bool admin_is_unix(void);
/* GET /status as JSON (the caller decrefs), or NULL (said). */
json_t *admin_get_status(void);

#endif
