/*
 * host_drain.c - the host drain (see host_drain.h): a window in which /health says
 * "draining" and traffic is still served, then orch_stop(false). It writes only the
 * host-drain fields of sv; /health (admin.c) reads them.
 */
#include "host_drain.h"

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "config.h"
#include "notify.h"
#include "orch.h"
#include "state.h"

static struct event *window_ev;
static uint64_t began_ms;

/* The window is over (its timer, or cut short): the workers drain now. */
static void
end_window(const char *via)
{
	if (window_ev != NULL)
		event_del(window_ev);
	if (!sv.host_draining)
		return;
	sv.host_draining = false;
	if (sv.stopping)
		return;          /* a fast stop came first */
	log_info("host_drain", "phase=workers via=%s waited_ms=%llu", via,
	    (unsigned long long)(clock_ms() - began_ms));
	orch_stop(false);
}

static void
window_cb(evutil_socket_t fd, short what, void *arg)
{
	end_window("timer");
}

enum host_drain_result
host_drain_begin(uint32_t ms, const char *via)
{
	struct timeval tv;

	if (sv.stopping)
		return HD_STOPPING;
	if (sv.host_draining)
		return HD_DRAINING;
	/* Before the first generation is ready /health said "starting": no balancer
	 * sends traffic here, so there is nothing to move away. */
	if (sv.ready_gen == 0)
		ms = 0;
	began_ms = clock_ms();
	log_info("host_drain", "phase=health via=%s health_drain_ms=%u", via, ms);
	/* The service is on its way down from now on, whoever asked. */
	notify_stopping();
	if (ms == 0) {
		log_info("host_drain", "phase=workers via=%s waited_ms=0", via);
		orch_stop(false);
		return HD_BEGUN;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	if (window_ev == NULL)
		window_ev = evtimer_new(sv.base, window_cb, NULL);
	if (window_ev == NULL || evtimer_add(window_ev, &tv) < 0) {
		/* No timer, no window: still a clean stop, only without the head start. */
		log_error("host_drain_failed", "msg=\"cannot arm the window timer\"");
		orch_stop(false);
		return HD_BEGUN;
	}
	sv.host_draining = true;
	sv.host_drain_end_ms = began_ms + ms;
	return HD_BEGUN;
}

void
host_drain_sigterm(void)
{
	const struct sv_conf *c = sv.conf;

	if (sv.stopping) {
		/* A second SIGTERM during a graceful stop means: now. */
		orch_stop(true);
		return;
	}
	if (sv.host_draining) {
		end_window("sigterm");
		return;
	}
	if (c != NULL && c->sigterm_health_drain && c->health_drain_ms > 0)
		host_drain_begin(c->health_drain_ms, "sigterm");
	else
		orch_stop(false);
}

void
host_drain_shutdown(void)
{
	if (window_ev != NULL)
		event_free(window_ev);
	window_ev = NULL;
}
