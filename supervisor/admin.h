/*
 * admin.h - the operator's HTTP endpoint, served on the supervisor's own loop:
 *   GET  /status          JSON: supervisor, functions (with totals), workers
 *   GET  /metrics         Prometheus text exposition format 0.0.4
 *   GET  /health          200 {"status":"serving"}, 503 when starting or stopping
 *   POST /reload          same as SIGHUP
 *   POST /drain/<name>    replace every worker of one function
 *   POST /drain           host drain: /health 503 for health_drain_ms, then stop
 *   POST /stop            graceful stop now
 * /status and /metrics are rendered off the loop (admin_job.h), the rest is
 * answered on it at once. edgevisorctl (ctl/main.c) is its client. Over TCP only
 * /metrics and /health are open; the rest needs the admin_token_file's bearer token
 * (admin_auth.h). The "metrics" listener serves /metrics and /health and nothing
 * else.
 */
#ifndef SV_ADMIN_H
#define SV_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host_drain.h"

struct reload;

/* What the endpoint asks of the orchestrator (it never calls it by name). */
struct admin_ops {
	/* 0: begun (SEEN was shown the plan), 1: queued behind the one in flight,
	 * -1: refused (ERR). */
	int (*reload)(void (*seen)(const struct reload *plan, void *arg), void *arg,
	    char *err, size_t errlen);
	void (*stop)(bool fast);
	/* 0, or -1 when there is no such function. */
	int (*drain)(const char *name);
};

/* Sets the commands; before admin_start. */
void admin_set_ops(const struct admin_ops *ops);
/* Sets what POST /drain calls (host_drain_begin, given by main.c: the host drain sits
 * above the orchestrator, so orch.c's ops cannot name it). Returns an enum
 * host_drain_result. */
void admin_set_host_drain(enum host_drain_result (*begin)(uint32_t ms, const char *via));

/*
 * Serves CONF's endpoints on sv.base with its admin token. "admin" is "unix:/path"
 * (the parent directory is created 0755 if missing, the path is claimed as
 * net_unix_claim says, the socket is born 0600) or a loopback "host:port" /
 * "[v6]:port"; "metrics" is any
 * "host:port". Called again (a reload) it opens a changed address first, then closes
 * the old one; an unchanged one is kept; one now NULL is closed. Returns 0, or -1
 * with a one-line reason in ERR.
 */
struct sv_conf;
int admin_start(const struct sv_conf *conf, char *err, size_t errlen);

/* Closes both listeners and their connections; removes the socket file we made. */
void admin_stop(void);

#endif
