/*
 * main.c - the supervisor: reads the config, opens the listeners, starts a pool per
 * function, and turns signals into start, reload and stop. Everything runs on one
 * libevent loop; signal callbacks run inside it, never in signal context.
 *
 *   SIGTERM          graceful stop: stop accepting, drain every worker, exit 0
 *   SIGINT, SIGQUIT  fast stop: SIGTERM (beforeunload) to every worker, then exit
 *   SIGHUP           reload: validate the new file, start a new generation, and once
 *                    it is ready send new connections to it and drain the old one
 *   SIGUSR1          reopen the log file
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "admin.h"
#include "cgroup.h"
#include "check.h"
#include "identity.h"
#include "notify.h"
#include "supervisor.h"

struct sv sv;

/* A reload in flight: the new generation starts; the old one serves until it is ready. */
static struct sv_conf *pending_conf;
/* Configs of old generations whose pools still drain. */
static struct sv_conf *old_confs[64];
static unsigned nold_confs;
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

/* Every function's library loads and has our API version (see spawn_check_library). */
static int
check_libraries(struct sv_conf *conf, char *err, size_t errlen)
{
	struct fn_conf *fc;

	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (spawn_check_library(fc, sv.worker_path, err, errlen) < 0)
			return -1;
	return 0;
}

/* "required" cgroups: every cap a function asks for must have its controller. */
static int
check_cgroups(struct sv_conf *conf, char *err, size_t errlen)
{
	struct fn_conf *fc;

	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (cg_check_function(fc, err, errlen) < 0)
			return -1;
	return 0;
}

static void
start_pools(struct sv_conf *conf)
{
	struct fn_conf *fc;

	TAILQ_FOREACH(fc, &conf->functions, entry) {
		struct pool *p = pool_new(conf, fc, sv.gen);
		if (p == NULL) {
			log_error("pool_failed", "fn=%s err=\"out of memory\"", fc->name);
			continue;
		}
		pool_start(p);
	}
}

/* Frees configs no pool refers to any more. */
static void
collect_confs(void)
{
	for (unsigned i = 0; i < nold_confs;) {
		struct pool *p;
		bool used = false;

		TAILQ_FOREACH(p, &sv.pools, p_entry)
			if (p->p_owner == old_confs[i])
				used = true;
		if (used) {
			i++;
			continue;
		}
		config_free(old_confs[i]);
		old_confs[i] = old_confs[--nold_confs];
	}
}

/* The new generation is ready: switch listeners to it and drain the old one. */
static void
finish_reload(void)
{
	char err[512];
	struct pool *p, *tmp, *q;

	dispatch_bind_pools();
	/* _SAFE: retiring an empty pool frees it at once. */
	TAILQ_FOREACH_SAFE(p, &sv.pools, p_entry, tmp) {
		bool keep = false;

		if (p->p_owner == pending_conf || p->p_retiring)
			continue;
		/* The new generation of this function failed to start: the old workers
		 * go on serving it until a reload that works. */
		TAILQ_FOREACH(q, &sv.pools, p_entry)
			if (q->p_owner == pending_conf && q->p_failed &&
			    strcmp(q->p_conf->name, p->p_conf->name) == 0)
				keep = true;
		if (keep)
			log_warn("reload_kept_old", "fn=%s gen=%u msg=\"new workers fail to start; the old ones keep serving\"",
			    p->p_conf->name, p->p_gen);
		else
			pool_retire(p, WIRE_REASON_TERMINATION);
	}
	if (nold_confs < sizeof(old_confs) / sizeof(old_confs[0]))
		old_confs[nold_confs++] = sv.conf;
	else
		log_warn("reload_conf_leak", "msg=\"too many generations draining\"");
	sv.conf = pending_conf;
	pending_conf = NULL;
	/* The admin endpoint follows the file too (same address: nothing happens). */
	if (admin_start(sv.conf, err, sizeof(err)) < 0)
		log_error("admin_failed", "msg=\"%s\"", err);
	log_info("reload_done", "gen=%u", sv.gen);
	collect_confs();
}

void
sv_check_ready(void)
{
	if (sv.stopping || sv.announced_ready)
		return;
	/* Readiness of the generation being started (the newest one). */
	if (!pools_ready(sv.gen))
		return;
	if (pending_conf != NULL)
		finish_reload();
	sv.announced_ready = true;
	sv.ready_gen = sv.gen;
	log_info("ready", "gen=%u workers=%u", sv.gen, pools_live_workers());
	notify_ready();
}

void
sv_check_stopped(void)
{
	collect_confs();
	if (sv.stopping && TAILQ_EMPTY(&sv.pools))
		event_base_loopexit(sv.base, NULL);
}

void
sv_stop(bool fast)
{
	struct pool *p, *tmp;

	if (sv.stopping && (!fast || sv.fast))
		return;
	log_info("stop", "mode=%s", fast ? "fast" : "graceful");
	notify_stopping();
	sv.stopping = true;
	sv.fast = fast;
	dispatch_close_all();
	TAILQ_FOREACH_SAFE(p, &sv.pools, p_entry, tmp) {
		struct worker *w, *wtmp;

		if (!p->p_retiring) {
			pool_retire(p, WIRE_REASON_TERMINATION);
			continue;
		}
		if (fast)
			TAILQ_FOREACH_SAFE(w, &p->p_workers, w_entry, wtmp)
				worker_terminate(w, WIRE_REASON_TERMINATION);
	}
	sv_check_stopped();
}

void
sv_reload(void)
{
	char err[1024];
	struct sv_conf *conf;

	if (sv.stopping)
		return;
	notify_reloading();
	log_info("reload", "config=%s", sv.conf_path);
	if (pending_conf != NULL) {
		/* No READY=1 here: the reload in flight sends it when its workers are ready. */
		log_warn("reload_refused", "msg=\"a reload is still starting its workers\"");
		return;
	}
	conf = config_load(sv.conf_path, err, sizeof(err));
	if (conf == NULL || check_libraries(conf, err, sizeof(err)) < 0 ||
	    check_cgroups(conf, err, sizeof(err)) < 0) {
		log_error("reload_failed", "msg=\"%s\"", err);
		config_free(conf);
		notify_ready();
		return;
	}
	if (identity_apply(conf, err, sizeof(err)) < 0 ||
	    dispatch_listen(conf, err, sizeof(err)) < 0) {
		log_error("reload_failed", "msg=\"%s\"", err);
		config_free(conf);
		notify_ready();
		return;
	}
	pending_conf = conf;
	sv.gen++;
	sv.announced_ready = false;
	start_pools(conf);
	sv_check_ready();
}

int
sv_drain_function(const char *name)
{
	struct pool *p = pool_current(name);
	struct worker *w, *tmp;

	if (p == NULL)
		return -1;
	log_info("drain_function", "fn=%s", name);
	TAILQ_FOREACH_SAFE(w, &p->p_workers, w_entry, tmp) {
		if (w->w_state != WS_READY)
			continue;
		w->w_replaced = true;
		worker_retire(w, WIRE_REASON_EARLY_DROP);
	}
	pool_fill(p);
	return 0;
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGTERM:
		/* A second SIGTERM during a graceful stop means: now. */
		sv_stop(sv.stopping);
		break;
	case SIGINT:
	case SIGQUIT:
		sv_stop(true);
		break;
	case SIGHUP:
		sv_reload();
		break;
	case SIGUSR1:
		if (log_reopen() < 0)
			log_error("log_reopen_failed", "err=\"%s\"", strerror(errno));
		else
			log_info("log_reopened", "config=%s", sv.conf_path);
		break;
	}
}

static void
sigchld_cb(evutil_socket_t sig, short what, void *arg)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker *w = pool_find_pid(pid);
		if (w != NULL)
			worker_on_exit(w, status);
		else
			(void)lib_check_on_exit(pid, status);
	}
}

static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p;
	uint64_t pending = 0;

	TAILQ_FOREACH(p, &sv.pools, p_entry) {
		struct worker *w;
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			pending += BOARD_LOAD(&w->w_board->tasks_pending);
	}
	notify_status("gen %u, %u workers, %llu pending tasks", sv.gen, pools_live_workers(),
	    (unsigned long long)pending);
}

int
main(int argc, char **argv)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1 };
	struct event *sig_ev[6] = { NULL };
	struct timeval status_tv = { 5, 0 };
	const char *level = NULL;
	char err[1024];
	bool check = false;
	int c, lvl;

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
	sv.conf = config_load(sv.conf_path, err, sizeof(err));
	if (sv.conf == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (sv.worker_path == NULL)
		sv.worker_path = default_worker_path();
	if (check_libraries(sv.conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", sv.conf_path, err);
		if (!check)
			log_error("library_invalid", "config=%s msg=\"%s\"", sv.conf_path, err);
		config_free(sv.conf);
		return 1;
	}
	if (check) {
		printf("%s: ok\n", sv.conf_path);
		config_free(sv.conf);
		return 0;
	}
	if (level == NULL)
		level = sv.conf->log_level;
	if (level != NULL && log_parse_level(level, &lvl) == 0)
		log_level = lvl;
	if (sv.conf->log_file != NULL && log_open_file(sv.conf->log_file) < 0) {
		fprintf(stderr, "edgevisor: log_file %s: %s\n", sv.conf->log_file, strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	srandom((unsigned)getpid() ^ (unsigned)clock_ms());
	TAILQ_INIT(&sv.pools);
	sv.gen = 1;
	sv.started_ms = clock_ms();
	sv.base = event_base_new();
	if (sv.base == NULL) {
		log_error("fatal", "msg=\"event_base_new failed\"");
		return 2;
	}
	if (cg_init(sv.conf->cgroups, sv.conf->cgroup_parent, err, sizeof(err)) < 0) {
		log_error("cgroups_required", "msg=\"%s\"", err);
		fprintf(stderr, "edgevisor: cgroups required but unavailable: %s\n", err);
		return 1;
	}
	if (check_cgroups(sv.conf, err, sizeof(err)) < 0) {
		log_error("cgroups_required", "msg=\"%s\"", err);
		fprintf(stderr, "edgevisor: cgroups required but unavailable: %s\n", err);
		cg_shutdown();
		return 1;
	}
	if (identity_apply(sv.conf, err, sizeof(err)) < 0) {
		log_error("identity_failed", "msg=\"%s\"", err);
		fprintf(stderr, "edgevisor: %s\n", err);
		cg_shutdown();
		return 1;
	}
	/* From here on a busy cgroup's removal is retried from the loop, never waited for. */
	if (cg_enabled() && cg_set_base(sv.base) < 0)
		log_warn("cgroup_retry_off", "msg=\"busy cgroups are waited for\"");
	if (!cg_enabled() && sv.conf->cgroups == CG_MODE_AUTO)
		log_warn("cgroups_off", "msg=\"CPU and memory caps are OFF: %s\"", err);
	log_info("start", "pid=%d config=%s cgroups=%s worker=%s", (int)getpid(), sv.conf_path,
	    cg_describe(), sv.worker_path);
	if (dispatch_listen(sv.conf, err, sizeof(err)) < 0) {
		log_error("listen_failed", "msg=\"%s\"", err);
		cg_shutdown();
		return 1;
	}
	if (admin_start(sv.conf, err, sizeof(err)) < 0) {
		log_error("admin_failed", "msg=\"%s\"", err);
		cg_shutdown();
		return 1;
	}
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		sig_ev[i] = evsignal_new(sv.base, sigs[i], signal_cb, NULL);
		event_add(sig_ev[i], NULL);
	}
	sig_ev[5] = evsignal_new(sv.base, SIGCHLD, sigchld_cb, NULL);
	event_add(sig_ev[5], NULL);
	status_ev = event_new(sv.base, -1, EV_PERSIST, status_cb, NULL);
	event_add(status_ev, &status_tv);

	start_pools(sv.conf);
	dispatch_bind_pools();
	limits_start();
	event_base_dispatch(sv.base);
	admin_stop();

	limits_stop();
	dispatch_close_all();
	pools_log_summary();
	cg_shutdown();
	for (size_t i = 0; i < 6; i++)
		if (sig_ev[i])
			event_free(sig_ev[i]);
	event_free(status_ev);
	if (pending_conf)
		config_free(pending_conf);
	nold_confs = 0;
	config_free(sv.conf);
	event_base_free(sv.base);
	log_info("exit", "code=%d", sv.exit_code);
	return sv.exit_code;
}
