/*
 * admin_snap.c - the snapshot /status and /metrics are rendered from, taken on the
 * supervisor's loop (admin_snap.h). Memory reads and copies only: what costs a
 * system call per worker (/proc, cgroup files) is left to the render thread.
 */
#include "admin_snap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/clock.h"
#include "cgroup.h"
#include "pool.h"
#include "state.h"

/* The function's configuration, copied into V. 0, or -1 when out of memory. */
static int
copy_conf(struct snap_fn *v, const struct fn_conf *fc)
{
	v->policy = config_policy_name(fc->policy);
	v->workers = fc->workers;
	v->min_workers = fc->min_workers;
	v->max_workers = fc->max_workers;
	v->max_concurrency = fc->max_concurrency;
	v->max_queued = fc->max_queued;
	v->queue_timeout_ms = fc->queue_timeout_ms;
	v->durable_backend = fc->durable.backend;
	v->limits = fc->limits;
	if ((v->name = strdup(fc->name)) == NULL || (v->library = strdup(fc->library)) == NULL)
		return -1;
	if (fc->nlisten > 0 && (v->listen = calloc(fc->nlisten, sizeof(*v->listen))) == NULL)
		return -1;
	for (size_t i = 0; i < fc->nlisten; i++) {
		if ((v->listen[i] = strdup(fc->listen[i])) == NULL)
			return -1;
		v->nlisten++;
	}
	return 0;
}

static struct snap_fn *
fn_find(struct snap_fn *fv, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fv[i].name, name) == 0)
			return &fv[i];
	return NULL;
}

/* P's workers and state, added to its function's view V. */
static void
add_pool(struct snap_fn *v, const struct pool *p)
{
	const struct worker *w;

	if (!p->p_retiring && p->p_failed)
		v->failed = true;
	if (!p->p_retiring && p->p_gen > v->gen)
		v->gen = p->p_gen;
	v->queued += p->p_npending;
	v->admit_queued += p->p_nadmit;
	v->in_flight += pool_in_flight(p);
	TAILQ_FOREACH(w, &p->p_workers, w_entry) {
		const struct board *b = w->w_board;

		v->nworkers++;
		v->nstate[w->w_state < WS_MAX ? w->w_state : WS_CRASHED]++;
		if (b == NULL)
			continue;
		v->requests += BOARD_LOAD(&b->requests);
		v->started += BOARD_LOAD(&b->tasks_started);
		v->completed += BOARD_LOAD(&b->tasks_completed);
		v->failed_tasks += BOARD_LOAD(&b->tasks_failed);
		v->pending += BOARD_LOAD(&b->tasks_pending);
		hist_add(&v->req_hist, &b->req_hist);
		hist_add(&v->task_hist, &b->task_hist);
	}
}

static void
add_totals(struct snap_fn *v, const struct fn_totals *t)
{
	v->requests += t->requests;
	v->started += t->tasks_started;
	v->completed += t->tasks_completed;
	v->failed_tasks += t->tasks_failed;
	v->lost = t->tasks_lost;
	v->crashes = t->crashes;
	memcpy(v->unloads, t->unloads, sizeof(v->unloads));
	v->cold_starts = t->cold_starts;
	v->cold_ms_sum = t->cold_ms_sum;
	v->scale_ups = t->scale_ups;
	v->scale_downs = t->scale_downs;
	memcpy(v->cold_hist, t->cold_hist, sizeof(v->cold_hist));
	hist_add(&v->req_hist, &t->req_hist);
	hist_add(&v->task_hist, &t->task_hist);
	v->queue_waits = t->queue_waits;
	v->queue_ms_sum = t->queue_ms_sum;
	v->rejected_overload = t->rejected_overload;
	memcpy(v->queue_hist, t->queue_hist, sizeof(v->queue_hist));
}

/*
 * Every function of the running config, then any that only a draining generation
 * still has. Totals are fn_totals (workers that are gone) plus the scoreboards of
 * the live workers, so they grow as requests are served, not when workers exit.
 */
static int
take_functions(struct admin_snap *s)
{
	struct fn_conf *fc;
	struct pool *p;
	size_t max = 0, ncur;

	if (sv.conf != NULL)
		max = sv.conf->nfunctions;
	TAILQ_FOREACH(p, &pools, p_entry)
		max++;
	if ((s->fns = calloc(max ? max : 1, sizeof(*s->fns))) == NULL)
		return -1;
	if (sv.conf != NULL) {
		TAILQ_FOREACH(fc, &sv.conf->functions, entry) {
			struct snap_fn *v = &s->fns[s->nfns++];

			v->current = true;
			if (copy_conf(v, fc) < 0)
				return -1;
		}
	}
	/* Each function's own pools through its record (no scan of every pool per
	 * function), then the pools of functions only a draining generation still has
	 * (few: searched among themselves). */
	for (size_t i = 0; i < s->nfns; i++) {
		struct fn_totals *t = pool_function(s->fns[i].name);

		if (t != NULL)
			TAILQ_FOREACH(p, &t->t_pools, p_fn_entry)
				add_pool(&s->fns[i], p);
	}
	ncur = s->nfns;
	TAILQ_FOREACH(p, &pools, p_entry) {
		struct snap_fn *v;

		if (sv.conf != NULL && config_find(sv.conf, p->p_conf->name) != NULL)
			continue;
		if ((v = fn_find(s->fns + ncur, s->nfns - ncur, p->p_conf->name)) == NULL) {
			v = &s->fns[s->nfns++];
			if (copy_conf(v, p->p_conf) < 0)
				return -1;
		}
		add_pool(v, p);
	}
	for (size_t i = 0; i < s->nfns; i++) {
		struct fn_totals *t = pool_function(s->fns[i].name);

		if (t != NULL)
			add_totals(&s->fns[i], t);
	}
	return 0;
}

/* W's plain values: what its scoreboard says now (tenant-reported), its identity. */
static void
take_worker(struct snap_worker *v, const struct worker *w, uint64_t now)
{
	const struct board *b = w->w_board;

	snprintf(v->function, sizeof(v->function), "%s", w->w_conf->name);
	snprintf(v->cgroup, sizeof(v->cgroup), "%s", w->w_cgroup);
	v->id = w->w_id;
	v->gen = w->w_gen;
	v->pid = w->w_pid;
	v->state = w->w_state;
	v->uptime_ms = now - w->w_spawned_ms;
	v->max_requests = w->w_max_requests;
	v->reason = w->w_reason;
	if (b == NULL)
		return;          /* memory_source stays null: nothing was measured */
	v->mem_source = "rss";
	v->has_board = true;
	v->requests = BOARD_LOAD(&b->requests);
	v->conns = worker_load(w);
	v->started = BOARD_LOAD(&b->tasks_started);
	v->completed = BOARD_LOAD(&b->tasks_completed);
	v->failed = BOARD_LOAD(&b->tasks_failed);
	v->pending = BOARD_LOAD(&b->tasks_pending);
	v->seccomp_denied = BOARD_LOAD(&b->seccomp_denied);
	if (v->reason == WIRE_REASON_NONE)
		v->reason = BOARD_LOAD(&b->unload_reason);
	if (v->pending == 0)
		return;
	/* Stop at the last pending task: the table can be large and mostly empty. */
	for (uint32_t i = 0, seen = 0; i < w->w_board_slots && seen < v->pending; i++) {
		const struct board_task *t = &b->tasks[i];
		uint64_t started;

		if (BOARD_LOAD(&t->id) == 0)
			continue;
		seen++;
		started = BOARD_LOAD(&t->started_ms);
		if (v->has_oldest && now - started <= v->oldest_age_ms)
			continue;
		v->has_oldest = true;
		v->oldest_age_ms = started <= now ? now - started : 0;
		/* The worker may reuse the slot meanwhile: a bounded copy, shown as is. */
		board_copy_name(v->oldest_name, t);
	}
}

static int
take_workers(struct admin_snap *s)
{
	const struct pool *p;
	const struct worker *w;
	size_t n = 0;

	TAILQ_FOREACH(p, &pools, p_entry)
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			n++;
	if ((s->workers = calloc(n ? n : 1, sizeof(*s->workers))) == NULL)
		return -1;
	TAILQ_FOREACH(p, &pools, p_entry)
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			take_worker(&s->workers[s->nworkers++], w, s->now_ms);
	return 0;
}

struct admin_snap *
admin_snap_take(const char *admin, const char *metrics, const char *health)
{
	struct admin_snap *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->now_ms = clock_ms();
	s->pid = getpid();
	s->uptime_ms = s->now_ms - sv.started_ms;
	s->gen = sv.gen;
	s->ready_gen = sv.ready_gen;
	s->cgroups = cg_describe();
	s->stopping = sv.stopping;
	s->live_workers = pools_live_workers();
	s->failed_gen = sv.failed_gen;
	s->health = health;
	s->health_drain_left_ms = sv.host_draining && sv.host_drain_end_ms > s->now_ms ?
	    sv.host_drain_end_ms - s->now_ms : 0;
	if ((s->config = strdup(sv.conf_path)) == NULL ||
	    (admin[0] && (s->admin = strdup(admin)) == NULL) ||
	    (metrics[0] && (s->metrics = strdup(metrics)) == NULL) ||
	    (sv.failed_gen && (s->failed_why = strdup(sv.failed_why)) == NULL) ||
	    take_functions(s) < 0 || take_workers(s) < 0) {
		admin_snap_free(s);
		return NULL;
	}
	return s;
}

void
admin_snap_free(struct admin_snap *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; s->fns != NULL && i < s->nfns; i++) {
		struct snap_fn *v = &s->fns[i];

		for (size_t j = 0; j < v->nlisten; j++)
			free(v->listen[j]);
		free(v->listen);
		free(v->library);
		free(v->name);
	}
	free(s->fns);
	free(s->workers);
	free(s->config);
	free(s->admin);
	free(s->metrics);
	free(s->failed_why);
	free(s);
}
