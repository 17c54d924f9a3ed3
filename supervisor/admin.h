/*
 * admin.h - the operator's HTTP endpoint, served on the supervisor's own loop:
 *   GET  /status          JSON: supervisor, functions (with totals), workers
 *   GET  /metrics         Prometheus text exposition format 0.0.4
 *   POST /reload          same as SIGHUP
 *   POST /drain/<name>    replace every worker of one function
 *   POST /stop            same as SIGTERM (graceful)
 * edgevisorctl (ctl_main.c) is its client.
 */
#ifndef SV_ADMIN_H
#define SV_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct reload;

/* What the endpoint asks of the orchestrator (it never calls it by name). */
struct admin_ops {
	/* 0: begun (*PLAN set), 1: queued behind the one in flight, -1: refused (ERR). */
	int (*reload)(const struct reload **plan, char *err, size_t errlen);
	void (*stop)(bool fast);
	/* 0, or -1 when there is no such function. */
	int (*drain)(const char *name);
};

/* Sets the commands; before admin_start. */
void admin_set_ops(const struct admin_ops *ops);

/*
 * Opens ADDR and serves the endpoint on sv.base. ADDR is "unix:/path" (the parent
 * directory is created 0755 if missing, a stale socket is replaced, the socket is
 * made 0600) or a loopback "host:port" / "[v6]:port" (the endpoint has no
 * authentication, so other addresses are refused). Called again with another address
 * it opens the new one first, then closes the old; with the same address it does
 * nothing. Returns 0, or -1 with a one-line reason in ERR.
 */
int admin_start(const char *addr, char *err, size_t errlen);

/* Closes the listener and every admin connection; removes the socket file we made. */
void admin_stop(void);

#endif
