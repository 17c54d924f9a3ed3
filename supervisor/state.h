/*
 * state.h - the supervisor's one top-level state (a daemon has one). Written only by
 * the orchestrator (orch.c) and main.c at start-up; other modules read it.
 */
#ifndef SV_STATE_H
#define SV_STATE_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct sv_conf;

struct sv {
	struct event_base *base;
	struct sv_conf *conf;       /* the config in force */
	const char *conf_path;
	const char *worker_path;
	uint32_t gen;               /* the newest generation started */
	uint32_t ready_gen;         /* the newest generation that was all ready */
	bool stopping;
	/* A host drain's window (host_drain.h): /health says "draining" while traffic is
	 * still served, until host_drain_end_ms (clock_ms); then a graceful stop. */
	bool host_draining;
	uint64_t host_drain_end_ms;
	bool fast;
	uint64_t started_ms;
	int exit_code;
	/* The last reload that was refused after it began (a library check failed), for
	 * /status and `edgevisorctl reload --wait` / `deploy`: its generation and why. */
	uint32_t failed_gen;
	char failed_why[512];
};
extern struct sv sv;

#endif
