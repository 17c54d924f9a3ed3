/*
 * orch.c - the orchestrator (see orch.h). Everything that changes what runs is
 * decided here, from events: a worker became ready or was reaped, a pool needs a
 * worker, a library check answered, the operator asked. The lower modules report
 * and return; this file is the only one that frees pools and workers, and it does
 * so only while handling an event, never inside a caller that still holds them.
 */
#include "orch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <event2/event.h>

#include "../common/log.h"
#include "admin.h"
#include "cgroup.h"
#include "check.h"
#include "conf_loader.h"
#include "dispatch.h"
#include "durable_watch.h"
#include "evq.h"
#include "identity.h"
#include "limits.h"
#include "notify.h"
#include "pool.h"
#include "router.h"
#include "spawn.h"

/* Library checks running at once: each is a short-lived process of the tenant's. */
#define CHECK_PARALLEL 8

struct sv sv;

/* The reload in flight (the start is a reload from nothing). */
static struct reload rl;
static bool reload_queued;       /* asked for while one was in flight */
static struct lib_check **checks; /* rl.items[i]'s check in flight, or NULL */
static size_t check_next;        /* the next item to check */
static size_t *leaders;          /* leaders[i]: the item whose check answers for item I */
static unsigned checks_running;

/* Configs of old generations whose pools still drain. */
static struct sv_conf **old_confs;
static size_t nold, oldcap;

static void handle(const struct evq_item *it);
static void act(enum rl_action a);
static struct event *requeue_ev;  /* runs a queued reload on a fresh loop turn */
static void cancel_checks(void);

static void
requeue_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Not after a refused start (the loop is ending) nor while stopping. */
	if (!reload_queued || sv.stopping || sv.exit_code != 0 || sv.conf == NULL)
		return;
	reload_queued = false;
	orch_reload_file();
}

/* A queued reload begins on a later loop turn, never inside the events of the one
 * that just ended (a check's callback, a worker's report, a finished load). */
static void
schedule_requeue(void)
{
	static const struct timeval now = { 0, 0 };

	if (reload_queued && !sv.stopping && requeue_ev != NULL &&
	    !evtimer_pending(requeue_ev, NULL))
		evtimer_add(requeue_ev, &now);
}

static const struct admin_ops admin_ops = {
	orch_reload, orch_stop, orch_drain_function,
};

int
orch_init(void)
{
	if (evq_init(sv.base, handle) < 0 || pool_init(sv.base) < 0 ||
	    conf_loader_init(sv.base) < 0 || durable_watch_init(sv.base) < 0 ||
	    (requeue_ev = evtimer_new(sv.base, requeue_cb, NULL)) == NULL)
		return -1;
	admin_set_ops(&admin_ops);
	lifecycle_init(sv.base);
	spawn_init(sv.base, sv.worker_path);
	dispatch_init(sv.base);
	router_init(sv.base);
	limits_start(sv.base);
	return 0;
}

void
orch_shutdown(void)
{
	if (requeue_ev != NULL)
		event_free(requeue_ev);
	requeue_ev = NULL;
	conf_loader_shutdown();
	cancel_checks();
	durable_watch_shutdown();
	limits_stop();
	dispatch_close_all();
	router_close_all();
	evq_run();
	pools_log_summary();
	pool_shutdown();
	evq_shutdown();
	if (rl.conf != NULL && rl.conf != sv.conf)
		config_free(rl.conf);
	reload_clear(&rl);
	free(checks);
	free(leaders);
	for (size_t i = 0; i < nold; i++)
		config_free(old_confs[i]);
	free(old_confs);
	config_free(sv.conf);
	sv.conf = NULL;
}

const struct reload *
orch_reload_state(void)
{
	return &rl;
}

/* ---- configs and pools going away ----------------------------------------------- */

static void
keep_old_conf(struct sv_conf *c)
{
	if (c == NULL)
		return;
	if (nold == oldcap) {
		size_t ncap = oldcap ? oldcap * 2 : 8;
		struct sv_conf **n = realloc(old_confs, ncap * sizeof(*n));
		if (n == NULL) {
			/* Leaking it beats freeing what draining pools still read. */
			log_error("conf_leak", "msg=\"out of memory\"");
			return;
		}
		old_confs = n;
		oldcap = ncap;
	}
	old_confs[nold++] = c;
}

/* Frees configs no pool refers to any more. */
static void
collect_confs(void)
{
	for (size_t i = 0; i < nold;) {
		struct pool *p;
		bool used = false;

		TAILQ_FOREACH(p, &pools, p_entry)
			if (p->p_owner == old_confs[i])
				used = true;
		if (used) {
			i++;
			continue;
		}
		config_free(old_confs[i]);
		old_confs[i] = old_confs[--nold];
	}
}

static void
check_stopped(void)
{
	if (sv.stopping && TAILQ_EMPTY(&pools) && rl.state == RL_IDLE)
		event_base_loopexit(sv.base, NULL);
}

static void
maybe_free(struct pool *p)
{
	if (!p->p_retiring || !TAILQ_EMPTY(&p->p_workers))
		return;
	/* Connections that never found a worker: say so rather than drop them. */
	dispatch_reject_pending(p);
	pool_free(p);
	collect_confs();
	check_stopped();
}

static void
retire_pool(struct pool *p, uint32_t reason)
{
	struct pool *q;

	pool_retire(p, reason, sv.fast);
	/* Clients held for this pool's cold start are the function's, not this
	 * generation's: the pool that serves the function now takes them. */
	if (p->p_npending > 0 && !sv.stopping &&
	    (q = pool_current(p->p_conf->name, sv.ready_gen)) != NULL && q != p)
		dispatch_move_pending(p, q);
	maybe_free(p);
}

static bool
pool_alive(const struct pool *p)
{
	const struct pool *q;

	TAILQ_FOREACH(q, &pools, p_entry)
		if (q == p)
			return true;
	return false;
}

/* ---- events from below ----------------------------------------------------------------- */

static void
maybe_ready(void)
{
	if (rl.state == RL_STARTING && pools_ready(rl.gen))
		act(reload_step(&rl, RLE_READY));
}

static void
handle(const struct evq_item *it)
{
	struct pool *p = it->pool;

	switch (it->type) {
	case EVQ_WORKER_READY:
		pool_worker_ready(it->worker);
		if (p->p_retiring || sv.stopping)
			worker_retire(it->worker, WIRE_REASON_TERMINATION);
		else
			dispatch_flush_pending(p);
		break;
	case EVQ_WORKER_GONE:
		if (pool_worker_gone(it->worker, it->arg != 0))
			/* Clients held for a worker that will not come hear 503 now. */
			dispatch_reject_pending(p);
		if (!p->p_retiring && !sv.stopping)
			pool_fill(p);
		maybe_free(p);
		break;
	case EVQ_POOL_FILL:
		/* Reported before its pool may have gone (a retired pool empties fast). */
		if (pool_alive(p) && !sv.stopping)
			pool_fill(p);
		break;
	case EVQ_DURABLE_DUE:
		/* Due durable tasks keep one worker even at min_workers 0 (pool_want). */
		if (pool_alive(p)) {
			p->p_durable_due = it->arg != 0;
			if (p->p_durable_due && !p->p_retiring && !sv.stopping)
				pool_fill(p);
		}
		break;
	case EVQ_WORKER_MOVED:
		router_take_moves(it->worker);
		break;
	}
	/* Last, and nothing after it: a switch-over may free pools, P among them. */
	maybe_ready();
}

void
orch_reap(void)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker *w;

		if (lib_check_on_exit(pid, status))
			continue;
		if ((w = pool_find_pid(pid)) != NULL)
			worker_on_exit(w, status);
	}
}

/* ---- library checks ---------------------------------------------------------------------- */

static void check_done(struct lib_check *c, int ok, const char *err, void *arg);

/*
 * Two functions whose library is the same file (device, inode, size, mtime) get one
 * check between them when they load it as the same uid/gid, or when the file is
 * readable by anyone (each tenant has its own dynamic uid): a platform where a
 * thousand tenants run the same runtime .so checks it once. (A folder on the path
 * that some uid cannot enter would then show at that function's first start, as a
 * worker that fails: loud, not silent.)
 */
static bool
same_check(const struct fn_conf *a, const struct fn_conf *b)
{
	return a->lib_ino != 0 && a->lib_dev == b->lib_dev && a->lib_ino == b->lib_ino &&
	    a->lib_size == b->lib_size && a->lib_mtime_ns == b->lib_mtime_ns &&
	    ((a->uid == b->uid && a->gid == b->gid) || (a->lib_mode & S_IROTH));
}

static bool
needs_check(const struct rl_item *it)
{
	return it->change == RL_ROLLED || it->change == RL_ADDED;
}


static int
find_leaders(void)
{
	size_t *l = calloc(rl.nitems ? rl.nitems : 1, sizeof(*l));

	if (l == NULL)
		return -1;
	for (size_t i = 0; i < rl.nitems; i++) {
		l[i] = i;
		if (!needs_check(&rl.items[i]))
			continue;
		for (size_t j = 0; j < i; j++) {
			if (l[j] == j && needs_check(&rl.items[j]) &&
			    same_check(rl.items[j].new_fc, rl.items[i].new_fc)) {
				l[i] = j;
				break;
			}
		}
	}
	free(leaders);
	leaders = l;
	return 0;
}

/* Starts checks until CHECK_PARALLEL run or none is left to start. */
static void
pump_checks(void)
{
	while (rl.state == RL_CHECKING && checks_running < CHECK_PARALLEL &&
	    check_next < rl.nitems) {
		size_t i = check_next++;
		const struct rl_item *it = &rl.items[i];
		struct lib_check *c;

		if (!needs_check(it) || leaders[i] != i)
			continue;       /* a follower: its leader's result counts for it */
		c = lib_check_start(sv.base, it->new_fc, sv.worker_path, rl.conf->check_timeout_ms,
		    check_done, (void *)(uintptr_t)i);
		if (c == NULL) {
			snprintf(rl.err, sizeof(rl.err), "function %s: cannot start its library check: %s",
			    it->name, strerror(errno));
			act(reload_step(&rl, RLE_CHECK_FAILED));
			return;
		}
		checks[i] = c;
		checks_running++;
	}
}

/* The check made its function's cgroup; a function with no worker keeps none. */
static void
drop_check_cgroup(const char *name)
{
	struct fn_totals *t;
	struct pool *p;

	if (!cg_enabled())
		return;
	if ((t = pool_function(name)) != NULL)
		TAILQ_FOREACH(p, &t->t_pools, p_fn_entry)
			if (p->p_cgroup)
				return;
	cg_function_remove(name);
}

static void
check_done(struct lib_check *c, int ok, const char *err, void *arg)
{
	size_t i = (uintptr_t)arg;

	checks[i] = NULL;
	checks_running--;
	drop_check_cgroup(rl.items[i].name);
	if (!ok) {
		snprintf(rl.err, sizeof(rl.err), "%s", err);
		act(reload_step(&rl, RLE_CHECK_FAILED));
		return;
	}
	/* The leader and every follower it answers for; act() may end this reload
	 * (nothing to start waits), so stop as soon as it is not the same one. */
	{
		uint32_t gen = rl.gen;

		for (size_t j = i; j < rl.nitems && rl.state == RL_CHECKING && rl.gen == gen; j++)
			if (needs_check(&rl.items[j]) && leaders[j] == i)
				act(reload_step(&rl, RLE_CHECK_OK));
		if (rl.gen == gen)
			pump_checks();
	}
}

static void
cancel_checks(void)
{
	for (size_t i = 0; checks != NULL && i < rl.nitems; i++) {
		if (checks[i] != NULL) {
			lib_check_cancel(checks[i]);
			checks[i] = NULL;
		}
	}
	checks_running = 0;
}

/* ---- the reload's actions ------------------------------------------------------------------ */

static void
start_pools(void)
{
	for (size_t i = 0; i < rl.nitems; i++) {
		const struct rl_item *it = &rl.items[i];
		struct pool *p;

		if (it->change != RL_ROLLED && it->change != RL_ADDED)
			continue;
		if ((p = pool_new(rl.conf, it->new_fc, rl.gen)) == NULL) {
			log_error("pool_failed", "fn=%s err=\"out of memory\"", it->name);
			continue;
		}
		pool_fill(p);
	}
}

/* The pool of NAME serving before this reload (owned by the config in force). */
static struct pool *
serving_pool(const char *name)
{
	struct fn_totals *t = pool_function(name);
	struct pool *p;

	if (t != NULL)
		TAILQ_FOREACH(p, &t->t_pools, p_fn_entry)
			if (!p->p_retiring && p->p_gen < rl.gen)
				return p;
	return NULL;
}

static struct pool *
new_pool(const char *name)
{
	struct fn_totals *t = pool_function(name);
	struct pool *p;

	if (t != NULL)
		TAILQ_FOREACH(p, &t->t_pools, p_fn_entry)
			if (p->p_gen == rl.gen && !p->p_retiring)
				return p;
	return NULL;
}

/* The new generation is ready: move listeners, keep what is kept, retire the rest. */
static void
switch_over(void)
{
	char err[512];

	sv.ready_gen = rl.gen;
	dispatch_commit();
	router_commit();
	for (size_t i = 0; i < rl.nitems; i++) {
		const struct rl_item *it = &rl.items[i];
		struct pool *np, *p;

		switch (it->change) {
		case RL_KEPT:
			if ((p = serving_pool(it->name)) != NULL)
				pool_adopt(p, rl.conf, it->new_fc, rl.gen);
			break;
		case RL_ROLLED:
			np = new_pool(it->name);
			if (np != NULL && np->p_failed && serving_pool(it->name) != NULL) {
				/* The old workers go on serving it until a reload that works. */
				log_warn("reload_kept_old", "fn=%s gen=%u msg=\"new workers fail to start; the old ones keep serving\"",
				    it->name, rl.gen);
				retire_pool(np, WIRE_REASON_TERMINATION);
				break;
			}
			while ((p = serving_pool(it->name)) != NULL)
				retire_pool(p, WIRE_REASON_TERMINATION);
			break;
		case RL_REMOVED:
			while ((p = serving_pool(it->name)) != NULL)
				retire_pool(p, WIRE_REASON_TERMINATION);
			break;
		default:
			break;
		}
	}
	keep_old_conf(sv.conf);
	sv.conf = rl.conf;
	durable_watch_config(sv.conf);
	/* The admin endpoint follows the file too (same address: nothing happens). */
	if (admin_start(sv.conf, err, sizeof(err)) < 0)
		log_error("admin_failed", "msg=%s", log_qv(err));
	/* The old config is freed once finish() has logged the plan: the names of
	 * removed functions live in it. */
}

static void
finish(void)
{
	char kept[256], rolled[512], added[512], removed[512];
	bool first = rl.gen == 1;

	if (!first) {
		reload_names(&rl, RL_KEPT, kept, sizeof(kept));
		reload_names(&rl, RL_ROLLED, rolled, sizeof(rolled));
		reload_names(&rl, RL_ADDED, added, sizeof(added));
		reload_names(&rl, RL_REMOVED, removed, sizeof(removed));
		log_info("reload_done", "gen=%u kept=%u rolled=%u added=%u removed=%u kept_fns=%s rolled_fns=%s added_fns=%s removed_fns=%s",
		    rl.gen, rl.count[RL_KEPT], rl.count[RL_ROLLED], rl.count[RL_ADDED],
		    rl.count[RL_REMOVED], log_qv(kept), log_qv(rolled), log_qv(added), log_qv(removed));
	}
	log_info("ready", "gen=%u workers=%u", rl.gen, pools_live_workers());
	notify_ready();
	reload_clear(&rl);
}

static void
fail(void)
{
	bool first = sv.conf == NULL;

	cancel_checks();
	dispatch_abort();
	router_abort();
	if (sv.stopping) {
		log_info("reload_abandoned", "gen=%u", rl.gen);
	} else if (first) {
		/* Nothing serves yet: a start that cannot check its libraries is refused. */
		fprintf(stderr, "%s: %s\n", sv.conf_path, rl.err);
		log_error("library_invalid", "config=%s msg=%s", log_qv(sv.conf_path), log_qv(rl.err));
		sv.exit_code = 1;
		event_base_loopexit(sv.base, NULL);
	} else {
		log_error("reload_failed", "gen=%u msg=%s", rl.gen, log_qv(rl.err));
		sv.failed_gen = rl.gen;
		snprintf(sv.failed_why, sizeof(sv.failed_why), "%s", rl.err);
		notify_ready();
	}
	/* Its number is not given again: a "reload --wait" or deploy that asked for it
	 * must not mistake a later reload for it (sv.failed_gen names it). */
	config_free(rl.conf);
	reload_clear(&rl);
}

static void
act(enum rl_action a)
{
	switch (a) {
	case RLA_NONE:
		break;
	case RLA_CHECK:
		pump_checks();
		break;
	case RLA_START:
		start_pools();
		maybe_ready();
		break;
	case RLA_SWITCH:
		switch_over();
		act(reload_step(&rl, RLE_SWITCHED));
		return;
	case RLA_FINISH:
		finish();
		collect_confs();
		break;
	case RLA_FAIL:
		fail();
		break;
	case RLA_ABANDON:
		/* Its pools were retired with the rest by the stop. */
		dispatch_abort();
		router_abort();
		keep_old_conf(rl.conf);
		reload_clear(&rl);
		collect_confs();
		break;
	case RLA_INVALID:
		log_error("reload_event_invalid", "state=%s", rl_state_name(rl.state));
		return;
	}
	if (rl.state == RL_IDLE) {
		schedule_requeue();
		check_stopped();
	}
}

/* Plans the change from sv.conf to CONF, shows the plan to SEEN (if any: before
 * anything runs, since a reload with nothing to start ends within this call), and
 * begins it. 0 or -1 (ERR). */
static int
begin(struct sv_conf *conf, orch_plan_fn seen, void *arg, char *err, size_t errlen)
{
	struct lib_check **nc;

	if (reload_plan(&rl, sv.conf, conf, sv.gen + 1) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* A kept function whose pool failed, or is not the config's, starts afresh. */
	for (size_t i = 0; i < rl.nitems; i++) {
		struct pool *p;

		if (rl.items[i].change != RL_KEPT)
			continue;
		p = pool_current(rl.items[i].name, sv.ready_gen);
		if (p == NULL || p->p_failed || p->p_owner != sv.conf)
			reload_force_roll(&rl, i);
	}
	nc = calloc(rl.nitems ? rl.nitems : 1, sizeof(*nc));
	if (nc == NULL || find_leaders() < 0) {
		free(nc);
		reload_clear(&rl);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(checks);
	checks = nc;
	check_next = 0;
	checks_running = 0;
	sv.gen = rl.gen;
	if (sv.conf != NULL)
		log_info("reload_plan", "gen=%u kept=%u rolled=%u added=%u removed=%u checks=%u",
		    rl.gen, rl.count[RL_KEPT], rl.count[RL_ROLLED], rl.count[RL_ADDED],
		    rl.count[RL_REMOVED], rl.checks_pending);
	if (seen != NULL)
		seen(&rl, arg);
	act(reload_step(&rl, RLE_BEGIN));
	return 0;
}

void
orch_start(struct sv_conf *conf)
{
	char err[256];

	if (begin(conf, NULL, NULL, err, sizeof(err)) < 0) {
		log_error("start_failed", "msg=%s", log_qv(err));
		config_free(conf);
		sv.exit_code = 1;
		event_base_loopexit(sv.base, NULL);
	}
}

/* Whether a reload may begin now: 0; 1 when it is queued behind the one under way
 * (or a load); -1 while stopping. */
static int
reload_gate(char *err, size_t errlen)
{
	if (sv.stopping) {
		snprintf(err, errlen, "the supervisor is stopping");
		return -1;
	}
	if (rl.state != RL_IDLE || conf_loader_busy()) {
		/* One at a time: this one runs when the one in flight is done, reading the
		 * file as it is then. */
		if (!reload_queued)
			log_info("reload_queued", "gen=%u state=%s", rl.gen,
			    conf_loader_busy() ? "loading" : rl_state_name(rl.state));
		reload_queued = true;
		return 1;
	}
	notify_reloading();
	log_info("reload", "config=%s", log_qv(sv.conf_path));
	return 0;
}

/* CONF (loaded, ours) becomes the reload: 0, or -1 with ERR (CONF freed). Its new
 * dynamic uids are recorded here, once its cgroups check passed. */
static int
reload_with(struct sv_conf *conf, orch_plan_fn seen, void *arg, char *err, size_t errlen)
{
	if (cg_check_conf(conf, err, errlen) < 0 || identity_apply(conf, err, errlen) < 0 ||
	    dispatch_listen(conf, err, errlen) < 0 || router_listen(conf, err, errlen) < 0 ||
	    begin(conf, seen, arg, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	/* Whatever of the new listeners was opened is closed again (no-ops otherwise). */
	router_abort();
	dispatch_abort();
	log_error("reload_failed", "msg=%s", log_qv(err));
	config_free(conf);
	notify_ready();
	return -1;
}

int
orch_reload(orch_plan_fn seen, void *arg, char *err, size_t errlen)
{
	char buf[1024], ebuf[1024];
	struct sv_conf *conf;
	int rc;

	if (err == NULL) {
		err = ebuf;
		errlen = sizeof(ebuf);
	}
	if ((rc = reload_gate(err, errlen)) != 0)
		return rc;
	if ((conf = config_load(sv.conf_path, buf, sizeof(buf))) == NULL) {
		snprintf(err, errlen, "invalid config: %s", buf);
		log_error("reload_failed", "msg=%s", log_qv(err));
		notify_ready();
		return -1;
	}
	return reload_with(conf, seen, arg, err, errlen);
}

static void
file_loaded(struct sv_conf *conf, const char *why, void *arg)
{
	char err[1024];

	if (sv.stopping) {
		config_free(conf);
		log_info("reload_abandoned", "gen=%u", sv.gen + 1);
		check_stopped();
		return;
	}
	if (conf == NULL) {
		snprintf(err, sizeof(err), "invalid config: %s", why);
		log_error("reload_failed", "msg=%s", log_qv(err));
		notify_ready();
	} else {
		reload_with(conf, NULL, NULL, err, sizeof(err));
	}
	if (rl.state == RL_IDLE)
		schedule_requeue();
}

void
orch_reload_file(void)
{
	char err[256];

	if (reload_gate(err, sizeof(err)) != 0)
		return;
	if (conf_loader_start(sv.conf_path, file_loaded, NULL) < 0) {
		/* No thread to be had: load it here, as POST /reload does. */
		char buf[1024];
		struct sv_conf *conf;

		log_warn("conf_loader_failed", "err=%s", log_qv(strerror(errno)));
		conf = config_load(sv.conf_path, buf, sizeof(buf));
		file_loaded(conf, buf, NULL);
	}
}

void
orch_stop(bool fast)
{
	struct pool *p, *tmp;

	if (sv.stopping && (!fast || sv.fast))
		return;
	log_info("stop", "mode=%s", fast ? "fast" : "graceful");
	notify_stopping();
	sv.stopping = true;
	sv.fast = fast;
	reload_queued = false;
	dispatch_close_all();
	router_close_all();
	/* Held clients would wait out the drain for workers that will not take them. */
	TAILQ_FOREACH(p, &pools, p_entry)
		dispatch_reject_pending(p);
	TAILQ_FOREACH_SAFE(p, &pools, p_entry, tmp) {
		struct worker *w, *wtmp;

		if (!p->p_retiring) {
			retire_pool(p, WIRE_REASON_TERMINATION);
			continue;
		}
		if (fast)
			TAILQ_FOREACH_SAFE(w, &p->p_workers, w_entry, wtmp)
				worker_terminate(w, WIRE_REASON_TERMINATION);
	}
	if (rl.state != RL_IDLE)
		act(reload_step(&rl, RLE_ABORT));
	check_stopped();
}

int
orch_drain_function(const char *name)
{
	struct pool *p = pool_current(name, sv.ready_gen);
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
