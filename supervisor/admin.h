/*
 * admin.h - the operator's HTTP endpoint, served on the supervisor's own loop:
 *   GET  /status          JSON: supervisor, functions (with totals), workers
 *   GET  /metrics         Prometheus text exposition format 0.0.4
 *   GET  /health          200 {"status":"serving"}, 503 when starting or stopping
 *   POST /reload          same as SIGHUP
 *   POST /drain/<name>    replace every worker of one function
 *   POST /stop            same as SIGTERM (graceful)
 * edgevisorctl (ctl_main.c) is its client. Over TCP only /metrics and /health are
 * open; the rest needs the admin_token_file's bearer token (admin_auth.h). The
 * "metrics" listener serves /metrics and /health and nothing else.
 */
#ifndef SV_ADMIN_H
#define SV_ADMIN_H

#include <stddef.h>

/*
 * Serves CONF's endpoints on sv.base with its admin token. "admin" is "unix:/path"
 * (the parent directory is created 0755 if missing, a stale socket is replaced, the
 * socket is made 0600) or a loopback "host:port" / "[v6]:port"; "metrics" is any
 * "host:port". Called again (a reload) it opens a changed address first, then closes
 * the old one; an unchanged one is kept; one now NULL is closed. Returns 0, or -1
 * with a one-line reason in ERR.
 */
struct sv_conf;
int admin_start(const struct sv_conf *conf, char *err, size_t errlen);

/* Closes both listeners and their connections; removes the socket file we made. */
void admin_stop(void);

#endif
