/*
 * main.c - the supervisor: reads the config, opens the listeners, starts a pool per
 * function, and turns signals into start, reload and stop. Everything runs on one
 * libevent loop; signal callbacks run inside it, never in signal context.
 *
 *   SIGTERM          graceful stop: stop accepting, drain every worker, exit 0;
 *                    with health_drain_ms, first /health 503 for that long while
 *                    serving on (host_drain.h)
 *   SIGINT, SIGQUIT  fast stop: SIGTERM (beforeunload) to every worker, then exit
 *   SIGHUP           reload: validate the new file, check and start what changed,
 *                    and once that is ready move connections to it (orch.c)
 *   SIGUSR1          reopen the log file
 *
 * The handled signals are blocked from the first instruction and unblocked only
 * once libevent takes them on the loop, so a signal during start-up is never lost
 * to its default action: a stop then stops cleanly, a reload waits for the start.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "admin.h"
#include "cgroup.h"
#include "check.h"
#include "dispatch.h"
#include "host_drain.h"
#include "identity.h"
#include "notify.h"
#include "child.h"
#include "orch.h"
#include "router.h"
#include "pool.h"

/* The signals we handle: blocked from the first instruction, taken on the loop. */
/* Nice levels the supervisor runs above its workers (child_priority_init). */
#define SV_NICE_BOOST 5

static const int handled[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGCHLD };
#define NHANDLED (sizeof(handled) / sizeof(handled[0]))
static struct event *status_ev;

static void
usage(void)
{
	fprintf(stderr, "usage: edgevisor [-t] [-c FILE] [-w WORKER] [-l LEVEL]\n"
	    "  -c FILE   configuration (default supervisor.conf)\n"
	    "  -t        check the configuration and exit 0 (valid) or 1\n"
	    "  -w PATH   worker binary (default: edgevisor-worker beside this binary)\n"
	    "  -l LEVEL  log level: error, warn, info, debug (overrides the config)\n");
}

/* The worker binary beside our own executable, else the installed one. */
static const char *
default_worker_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	char *slash;

	if (n > 0) {
		path[n] = '\0';
		slash = strrchr(path, '/');
		if (slash != NULL) {
			strcpy(slash + 1, "edgevisor-worker");
			if (access(path, X_OK) == 0)
				return path;
			/* Installed layout: bin/edgevisor and libexec/edgevisor/edgevisor-worker. */
			*slash = '\0';
			slash = strrchr(path, '/');
			if (slash != NULL) {
				strcpy(slash + 1, "libexec/edgevisor/edgevisor-worker");
				if (access(path, X_OK) == 0)
					return path;
			}
		}
	}
	return "edgevisor-worker";
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
		host_drain_sigterm();
		break;
	case SIGINT:
	case SIGQUIT:
		orch_stop(true);
		break;
	case SIGHUP:
		/* The host is on its way out: what a reload would start would only drain. */
		if (sv.host_draining)
			log_info("reload_refused", "why=host_draining");
		else
			orch_reload_file();
		break;
	case SIGUSR1:
		if (log_reopen() < 0)
			log_error("log_reopen_failed", "err=%s", log_qv(strerror(errno)));
		else
			log_info("log_reopened", "config=%s", log_qv(sv.conf_path));
		break;
	case SIGCHLD:
		orch_reap();
		break;
	}
}

static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p;
	uint64_t pending = 0;

	TAILQ_FOREACH(p, &pools, p_entry) {
		struct worker *w;
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			if (w->w_board != NULL)
				pending += BOARD_LOAD(&w->w_board->tasks_pending);
	}
	notify_status("gen %u, %u workers, %llu pending tasks", sv.gen, pools_live_workers(),
	    (unsigned long long)pending);
	/* Workers come and go by the thousand on an on-demand host: give the heap their
	 * freed records back, so an idle supervisor's RSS returns to where it was. */
	malloc_trim(0);
}

/* Hundreds of functions need thousands of fds (listeners, two channels a worker). */
static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * The loop's timers are milliseconds (the admission tick, a flooded listener's
 * pause): on libevent's default coarse clock they would fire on the kernel's tick,
 * 4 ms at HZ=250, four times late. A precise base reads CLOCK_MONOTONIC (vDSO) and
 * arms a timerfd per wait with a timeout, a syscall the loop can afford.
 */
static struct event_base *
new_base(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *base;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return base;
}

int
main(int argc, char **argv)
{
	struct event *sig_ev[NHANDLED] = { NULL };
	struct timeval status_tv = { 5, 0 };
	const char *level = NULL;
	struct sv_conf *conf;
	sigset_t block, old;
	char err[1024];
	bool check = false, orch = false;
	int c, lvl, rc = 1;

	/* First: a SIGTERM or SIGHUP from here on waits for the loop. */
	sigemptyset(&block);
	for (size_t i = 0; i < NHANDLED; i++)
		sigaddset(&block, handled[i]);
	sigprocmask(SIG_BLOCK, &block, &old);

	sv.conf_path = "supervisor.conf";
	while ((c = getopt(argc, argv, "tc:w:l:h")) != -1) {
		switch (c) {
		case 't': check = true; break;
		case 'c': sv.conf_path = optarg; break;
		case 'w': sv.worker_path = optarg; break;
		case 'l': level = optarg; break;
		default: usage(); return c == 'h' ? 0 : 2;
		}
	}
	log_set_proc("supervisor");
	conf = config_load(sv.conf_path, err, sizeof(err));
	if (conf == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (sv.worker_path == NULL)
		sv.worker_path = default_worker_path();
	if (check) {
		/* -t: the same library checks a start makes, then nothing. */
		rc = lib_check_all_sync(conf, sv.worker_path, 8, err, sizeof(err));
		if (rc < 0)
			fprintf(stderr, "%s: %s\n", sv.conf_path, err);
		else
			printf("%s: ok\n", sv.conf_path);
		config_free(conf);
		return rc < 0 ? 1 : 0;
	}
	if (level == NULL)
		level = conf->log_level;
	if (level != NULL && log_parse_level(level, &lvl) == 0)
		log_level = lvl;
	if (conf->log_file != NULL && log_open_file(conf->log_file) < 0) {
		fprintf(stderr, "edgevisor: log_file %s: %s\n", conf->log_file, strerror(errno));
		config_free(conf);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	srandom((unsigned)getpid() ^ (unsigned)clock_ms());
	sv.gen = 0;
	sv.started_ms = clock_ms();
	sv.base = new_base();
	if (sv.base == NULL) {
		log_error("fatal", "msg=\"event_base_new_with_config failed\"");
		config_free(conf);
		return 2;
	}
	if (cg_init(conf->cgroups, conf->cgroup_parent, err, sizeof(err)) < 0 ||
	    cg_check_conf(conf, err, sizeof(err)) < 0) {
		log_error("cgroups_required", "msg=%s", log_qv(err));
		fprintf(stderr, "edgevisor: cgroups required but unavailable: %s\n", err);
		goto out;
	}
	/* The dynamic uids this config picked are recorded for good (identity.h). */
	if (identity_apply(conf, err, sizeof(err)) < 0) {
		log_error("identity_failed", "msg=%s", log_qv(err));
		fprintf(stderr, "edgevisor: %s\n", err);
		goto out;
	}
	/* From here on a busy cgroup's removal is retried from the loop, never waited for. */
	if (cg_enabled() && cg_set_base(sv.base) < 0)
		log_warn("cgroup_retry_off", "msg=\"busy cgroups are waited for\"");
	if (!cg_enabled() && conf->cgroups == CG_MODE_AUTO) {
		char msg[1100];

		snprintf(msg, sizeof(msg), "CPU and memory caps are OFF: %s", err);
		log_warn("cgroups_off", "msg=%s", log_qv(msg));
	}
	log_info("start", "pid=%d config=%s cgroups=%s worker=%s functions=%zu", (int)getpid(),
	    log_qv(sv.conf_path), cg_describe(), log_qv(sv.worker_path), conf->nfunctions);
	/* The control plane ahead of its tenants (child.h); without root it stays level. */
	if (geteuid() == 0 && child_priority_init(SV_NICE_BOOST) < 0)
		log_warn("priority_unchanged", "err=%s", log_qv(strerror(errno)));
	if (orch_init() < 0) {
		log_error("fatal", "msg=\"out of memory\"");
		goto out;
	}
	orch = true;
	if (dispatch_listen(conf, err, sizeof(err)) < 0) {
		log_error("listen_failed", "msg=%s", log_qv(err));
		goto out;
	}
	if (router_listen(conf, err, sizeof(err)) < 0) {
		log_error("listen_failed", "msg=%s", log_qv(err));
		goto out;
	}
	admin_set_host_drain(host_drain_begin);
	if (admin_start(conf, err, sizeof(err)) < 0) {
		log_error("admin_failed", "msg=%s", log_qv(err));
		goto out;
	}
	for (size_t i = 0; i < NHANDLED; i++) {
		sig_ev[i] = evsignal_new(sv.base, handled[i], signal_cb, NULL);
		if (sig_ev[i] == NULL || event_add(sig_ev[i], NULL) < 0) {
			log_error("fatal", "msg=\"cannot take signal %d on the loop\"", handled[i]);
			goto out;
		}
	}
	status_ev = event_new(sv.base, -1, EV_PERSIST, status_cb, NULL);
	if (status_ev != NULL)
		event_add(status_ev, &status_tv);
	/* libevent handles them now: what arrived meanwhile is delivered on the loop. */
	sigprocmask(SIG_SETMASK, &old, NULL);

	orch_start(conf);
	conf = NULL;                 /* the orchestrator's now */
	event_base_dispatch(sv.base);
	rc = sv.exit_code;
out:
	admin_stop();
	host_drain_shutdown();
	if (orch)
		orch_shutdown();    /* closes listeners, frees what it was given */
	cg_shutdown();
	config_free(conf);
	if (status_ev)
		event_free(status_ev);
	for (size_t i = 0; i < NHANDLED; i++)
		if (sig_ev[i])
			event_free(sig_ev[i]);
	event_base_free(sv.base);
	if (orch)
		log_info("exit", "code=%d", rc);
	return rc;
}
