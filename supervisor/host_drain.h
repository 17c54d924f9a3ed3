/*
 * host_drain.h - taking a whole host out of a load balancer's rotation before it
 * stops. A host drain first turns /health to 503 "draining" while every function
 * keeps serving for the config's health_drain_ms (the load balancer's checks see it
 * and move traffic away), then stops gracefully as SIGTERM always did: listeners
 * close, every worker drains, the supervisor exits 0. All of it is one timer on the
 * loop. Begun by POST /drain (`edgevisorctl drain --all`) and, unless
 * "sigterm_health_drain" is false, by SIGTERM.
 */
#ifndef SV_HOST_DRAIN_H
#define SV_HOST_DRAIN_H

#include <stdint.h>

enum host_drain_result {
	HD_BEGUN,     /* the window began now (or the stop, for a window of 0) */
	HD_DRAINING,  /* a window was already running: unchanged */
	HD_STOPPING,  /* the workers were already draining */
};

/* Begins a host drain with a window of MS (none before the first generation is
 * ready: no balancer sends a starting host traffic); VIA names the caller for the
 * log. */
enum host_drain_result host_drain_begin(uint32_t ms, const char *via);
/* SIGTERM: the first begins a host drain (when configured and the host was serving),
 * one during the window ends the window now, one during the stop makes it fast. */
void host_drain_sigterm(void);
/* Frees the timer (at exit). */
void host_drain_shutdown(void);

#endif
