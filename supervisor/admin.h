/*
 * admin.h - the operator's HTTP endpoint, served on the supervisor's own loop:
 *   GET  /status          JSON: supervisor, functions (with totals), workers
 *   GET  /metrics         Prometheus text exposition format 0.0.4
 *   POST /reload          same as SIGHUP
 *   POST /drain/<name>    replace every worker of one function
 *   POST /stop            same as SIGTERM (graceful)
 * edgevisorctl (ctl/main.c) is its client.
 */
#ifndef SV_ADMIN_H
#define SV_ADMIN_H

#include <stddef.h>

/*
 * Opens ADDR and serves the endpoint on sv.base. ADDR is "unix:/path" (the parent
 * directory is created 0755 if missing, the path is claimed as net_unix_claim says,
 * the socket is born 0600) or a loopback "host:port" / "[v6]:port" (the endpoint has
 * no authentication, so other addresses are refused). Called again with another address
 * it opens the new one first, then closes the old; with the same address it does
 * nothing. Returns 0, or -1 with a one-line reason in ERR.
 */
int admin_start(const char *addr, char *err, size_t errlen);

/* Closes the listener and every admin connection; removes the socket file we made. */
void admin_stop(void);

#endif
