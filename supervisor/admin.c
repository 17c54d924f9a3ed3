/*
 * admin.c - the operator's endpoint: /status as JSON (jansson), /metrics
 * as Prometheus text, /health, and POST /reload, /drain/<fn>, /stop; plus the
 * read-only metrics listener (/metrics and /health only). Who may call what is
 * admin_auth.c's. evhttp serves both on the supervisor's own loop and owns their
 * listening sockets. Every handler reads only memory, the workers' scoreboards and
 * a few cgroup files, and answers at once, so the admin never blocks the loop that
 * hands connections to workers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/net.h"
#include "admin.h"
#include "admin_auth.h"
#include "cgroup.h"
#include "durable_watch.h"
#include "limits.h"
#include "pool.h"
#include "reload.h"
#include "state.h"

/* Admin requests are tiny; anything bigger is not ours. */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY    4096
/* A client that sends nothing for this long is dropped. */
#define ADMIN_TIMEOUT_S   10

static struct evhttp *admin_http;
static struct evhttp_bound_socket *admin_bound;
static char admin_addr[512];
/* The socket file we created, and its identity, so we only ever remove our own. */
static char admin_path[NET_UNIX_PATH_MAX];
static struct net_unix_id admin_id;
/* The read-only listener ("metrics"): its own evhttp, so no route leaks across. */
static struct evhttp *metrics_http;
static struct evhttp_bound_socket *metrics_bound;
static char metrics_addr[512];
/* request_cb's argument: which listener a request came in on. */
static const char on_admin = 'a', on_metrics = 'm';

/* One function as the admin shows it: config plus totals of every generation. */
struct fn_view {
	const char *name;
	const struct fn_conf *conf;
	bool current;               /* in the config being served */
	uint32_t gen;               /* generation of its newest pool that is not leaving */
	bool failed;
	uint64_t requests, started, completed, failed_tasks, lost, pending, crashes;
	uint64_t unloads[WIRE_REASON_MAX];
	unsigned nstate[WS_MAX];
	unsigned nworkers;
	/* On-demand sizing: connections waiting for a worker, cold starts, resizes. */
	uint64_t queued, cold_starts, cold_ms_sum, scale_ups, scale_downs;
	uint64_t cold_hist[TOTALS_COLD_BUCKETS + 1];
	/* Request and task durations: gone workers' (totals) plus live boards. */
	struct hist req_hist, task_hist;
	/* Admission: in flight now, waiting at the gate, waits and overload 503s. */
	uint64_t in_flight, admit_queued, queue_waits, queue_ms_sum, rejected_overload;
	uint64_t queue_hist[TOTALS_COLD_BUCKETS + 1];
};

/* One live worker as the admin shows it. */
struct worker_view {
	uint64_t uptime_ms;
	uint64_t mem_current;
	uint64_t mem_peak;          /* 0 = unknown (no cgroup) */
	const char *mem_source;     /* "cgroup" or "rss" */
	uint64_t pids;              /* tasks in its cgroup, 0 = unknown (no pids controller) */
	uint64_t cpu_ms;
	uint64_t requests, conns;
	uint64_t started, completed, failed, pending;
	bool has_oldest;
	char oldest_name[BOARD_TASK_NAME + 1];
	uint64_t oldest_age_ms;
	uint32_t reason;            /* enum wire_reason, NONE if it is not leaving */
};

static void request_cb(struct evhttp_request *req, void *arg);

/* ---- snapshot ---------------------------------------------------------------- */

static void
worker_view(const struct worker *w, uint64_t now, struct worker_view *v)
{
	const struct board *b = w->w_board;
	struct cg_stats cs;

	memset(v, 0, sizeof(*v));
	v->uptime_ms = now - w->w_spawned_ms;
	v->reason = w->w_reason;
	if (b == NULL)
		return;
	v->requests = BOARD_LOAD(&b->requests);
	v->conns = worker_load(w);
	v->started = BOARD_LOAD(&b->tasks_started);
	v->completed = BOARD_LOAD(&b->tasks_completed);
	v->failed = BOARD_LOAD(&b->tasks_failed);
	v->pending = BOARD_LOAD(&b->tasks_pending);
	/* Measured now, from /proc: never the tenant-writable board's figures. */
	{
		uint64_t cpu_ms, rss_kb;

		if (proc_usage(w->w_pid, &cpu_ms, &rss_kb) == 0) {
			v->cpu_ms = cpu_ms;
			v->mem_current = rss_kb * 1024;
		}
	}
	v->mem_source = "rss";
	if (w->w_cgroup[0] && cg_worker_stats(w->w_conf->name, w->w_id, &cs) == 0) {
		/* The cgroup also counts the tenant's children and page cache: what the cap sees. */
		v->mem_current = cs.memory_current;
		v->mem_peak = cs.memory_peak;
		v->pids = cs.pids_current;
		v->mem_source = "cgroup";
		if (cs.cpu_usage_us / 1000 > v->cpu_ms)
			v->cpu_ms = cs.cpu_usage_us / 1000;
	}
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

static struct fn_view *
view_find(struct fn_view *fv, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fv[i].name, name) == 0)
			return &fv[i];
	return NULL;
}

/* P's workers and state, added to its function's view V. */
static void
view_add_pool(struct fn_view *v, const struct pool *p)
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

/*
 * Every function of the running config, then any that only a draining generation
 * still has. Totals are fn_totals (workers that are gone) plus the scoreboards of
 * the live workers, so they grow as requests are served, not when workers exit.
 * Returns a calloc'ed array (the caller frees it) and its length in *N, or NULL.
 */
static struct fn_view *
collect(size_t *n)
{
	struct fn_view *fv, *v;
	struct fn_conf *fc;
	struct pool *p;
	size_t max = 0, cnt = 0, ncur;

	if (sv.conf != NULL)
		max = sv.conf->nfunctions;
	TAILQ_FOREACH(p, &pools, p_entry)
		max++;
	if ((fv = calloc(max ? max : 1, sizeof(*fv))) == NULL)
		return NULL;
	if (sv.conf != NULL) {
		TAILQ_FOREACH(fc, &sv.conf->functions, entry) {
			fv[cnt].name = fc->name;
			fv[cnt].conf = fc;
			fv[cnt].current = true;
			cnt++;
		}
	}
	/* Each function's own pools through its record (no scan of every pool per
	 * function: /metrics is scraped on the loop), then the pools of functions only
	 * a draining generation still has (few: searched among themselves). */
	for (size_t i = 0; i < cnt; i++) {
		struct fn_totals *t = pool_function(fv[i].name);

		if (t != NULL)
			TAILQ_FOREACH(p, &t->t_pools, p_fn_entry)
				view_add_pool(&fv[i], p);
	}
	ncur = cnt;
	TAILQ_FOREACH(p, &pools, p_entry) {
		if (sv.conf != NULL && config_find(sv.conf, p->p_conf->name) != NULL)
			continue;
		if ((v = view_find(fv + ncur, cnt - ncur, p->p_conf->name)) == NULL) {
			v = &fv[cnt++];
			v->name = p->p_conf->name;
			v->conf = p->p_conf;
		}
		view_add_pool(v, p);
	}
	for (size_t i = 0; i < cnt; i++) {
		struct fn_totals *t = pool_function(fv[i].name);

		if (t == NULL)
			continue;
		fv[i].requests += t->requests;
		fv[i].started += t->tasks_started;
		fv[i].completed += t->tasks_completed;
		fv[i].failed_tasks += t->tasks_failed;
		fv[i].lost = t->tasks_lost;
		fv[i].crashes = t->crashes;
		memcpy(fv[i].unloads, t->unloads, sizeof(fv[i].unloads));
		fv[i].cold_starts = t->cold_starts;
		fv[i].cold_ms_sum = t->cold_ms_sum;
		fv[i].scale_ups = t->scale_ups;
		fv[i].scale_downs = t->scale_downs;
		memcpy(fv[i].cold_hist, t->cold_hist, sizeof(fv[i].cold_hist));
		hist_add(&fv[i].req_hist, &t->req_hist);
		hist_add(&fv[i].task_hist, &t->task_hist);
		fv[i].queue_waits = t->queue_waits;
		fv[i].queue_ms_sum = t->queue_ms_sum;
		fv[i].rejected_overload = t->rejected_overload;
		memcpy(fv[i].queue_hist, t->queue_hist, sizeof(fv[i].queue_hist));
	}
	*n = cnt;
	return fv;
}

/* ---- GET /status -------------------------------------------------------------- */

static json_t *
limits_json(const struct fn_limits *l)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	    "s:I,s:I,s:I,s:I,s:I}",
	    "memory_mb", (json_int_t)l->memory_mb,
	    "function_memory_mb", (json_int_t)l->function_memory_mb,
	    "cpu_percent", (json_int_t)l->cpu_percent,
	    "function_cpu_percent", (json_int_t)l->function_cpu_percent,
	    "cpu_time_ms", (json_int_t)l->cpu_time_ms,
	    "wall_clock_ms", (json_int_t)l->wall_clock_ms,
	    "request_timeout_ms", (json_int_t)l->request_timeout_ms,
	    "idle_timeout_ms", (json_int_t)l->idle_timeout_ms,
	    "idle_worker_ms", (json_int_t)l->idle_worker_ms,
	    "max_requests", (json_int_t)l->max_requests,
	    "drain_timeout_ms", (json_int_t)l->drain_timeout_ms,
	    "beforeunload_grace_ms", (json_int_t)l->beforeunload_grace_ms,
	    "max_header_bytes", (json_int_t)l->max_header_bytes,
	    "max_body_bytes", (json_int_t)l->max_body_bytes,
	    "soft_limit_percent", (json_int_t)l->soft_limit_percent,
	    "max_pending_tasks", (json_int_t)l->max_pending_tasks,
	    "task_threads", (json_int_t)l->task_threads,
	    "nofile", (json_int_t)l->nofile,
	    "max_connections", (json_int_t)l->max_connections,
	    "max_pids", (json_int_t)l->max_pids,
	    "function_max_pids", (json_int_t)l->function_max_pids);
}

/* cold (no live worker), warming (starting, none ready), ready, failed. */
static const char *
function_state(const struct fn_view *v)
{
	if (v->failed)
		return "failed";
	if (v->nstate[WS_READY])
		return "ready";
	if (v->nstate[WS_STARTING])
		return "warming";
	return "cold";
}

static json_t *
scaling_json(const struct fn_view *v)
{
	json_t *hist = json_object();
	char le[16];

	for (unsigned i = 0; hist != NULL && i <= TOTALS_COLD_BUCKETS; i++) {
		if (i < TOTALS_COLD_BUCKETS)
			snprintf(le, sizeof(le), "%u", totals_cold_bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		json_object_set_new(hist, le, json_integer((json_int_t)v->cold_hist[i]));
	}
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
	    "min_workers", (json_int_t)v->conf->min_workers,
	    "max_workers", (json_int_t)v->conf->max_workers,
	    "queued", (json_int_t)v->queued,
	    "cold_starts", (json_int_t)v->cold_starts,
	    "scale_ups", (json_int_t)v->scale_ups,
	    "scale_downs", (json_int_t)v->scale_downs,
	    "cold_start_ms_buckets", hist);
}

/* {"count", "sum_ms", "p50_ms", "p99_ms"}: the quantiles estimated from H's buckets
 * (hist_quantile), null while it is empty. */
static json_t *
latency_json(const struct hist *h)
{
	double p50 = hist_quantile(h, 0.5), p99 = hist_quantile(h, 0.99);

	return json_pack("{s:I,s:f,s:o,s:o}",
	    "count", (json_int_t)hist_count(h),
	    "sum_ms", h->sum_us / 1000.0,
	    "p50_ms", p50 < 0 ? json_null() : json_real(p50 / 1000.0),
	    "p99_ms", p99 < 0 ? json_null() : json_real(p99 / 1000.0));
}

/*
 * The function's durable tasks per kind, from durable_watch.c's last read of its
 * journal (at most a second old); null when the function has no "durable".
 */
static json_t *
durable_json(const struct fn_view *v)
{
	struct durable_count c[DW_KINDS_MAX];
	int64_t due, now = clock_wall_ms();
	size_t n;
	json_t *kinds;

	if (v->conf->durable.backend == DURABLE_OFF)
		return json_null();
	n = durable_watch_counts(v->name, c, DW_KINDS_MAX, &due);
	kinds = json_object();
	for (size_t i = 0; i < n; i++)
		json_object_set_new(kinds, c[i].kind, json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
		    "pending", (json_int_t)c[i].pending, "retrying", (json_int_t)c[i].retrying,
		    "running", (json_int_t)c[i].running, "dead", (json_int_t)c[i].dead,
		    "enqueued", (json_int_t)c[i].enqueued, "succeeded", (json_int_t)c[i].succeeded,
		    "retried", (json_int_t)c[i].retried, "failed", (json_int_t)c[i].failed,
		    "oldest_age_s", c[i].oldest_ms > 0 ? (now - c[i].oldest_ms) / 1000.0 : 0.0));
	return json_pack("{s:s,s:I,s:o}", "backend",
	    v->conf->durable.backend == DURABLE_POSTGRESQL ? "postgresql" : "local",
	    "next_due_ms", (json_int_t)due,
	    "kinds", kinds);
}

/* Buckets (ms) of a histogram kept with the cold-start bounds, as a JSON object. */
static json_t *
ms_buckets_json(const uint64_t *hist)
{
	json_t *o = json_object();
	char le[16];

	for (unsigned i = 0; o != NULL && i <= TOTALS_COLD_BUCKETS; i++) {
		if (i < TOTALS_COLD_BUCKETS)
			snprintf(le, sizeof(le), "%u", totals_cold_bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		json_object_set_new(o, le, json_integer((json_int_t)hist[i]));
	}
	return o;
}

static json_t *
admission_json(const struct fn_view *v)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
	    "max_concurrency", (json_int_t)v->conf->max_concurrency,
	    "max_queued", (json_int_t)v->conf->max_queued,
	    "queue_timeout_ms", (json_int_t)v->conf->queue_timeout_ms,
	    "in_flight", (json_int_t)v->in_flight,
	    "queued", (json_int_t)v->admit_queued,
	    "queue_waits", (json_int_t)v->queue_waits,
	    "rejected_overload", (json_int_t)v->rejected_overload,
	    "queue_wait_ms_buckets", ms_buckets_json(v->queue_hist));
}

static json_t *
function_json(const struct fn_view *v)
{
	json_t *fn, *unloads, *states, *listen;

	unloads = json_object();
	for (int r = WIRE_REASON_NONE + 1; r < WIRE_REASON_MAX; r++)
		json_object_set_new(unloads, wire_reason_name(r), json_integer((json_int_t)v->unloads[r]));
	states = json_object();
	for (int s = 0; s < WS_MAX; s++)
		if (v->nstate[s])
			json_object_set_new(states, wstate_name(s), json_integer(v->nstate[s]));
	listen = json_array();
	for (size_t i = 0; i < v->conf->nlisten; i++)
		json_array_append_new(listen, json_string(v->conf->listen[i]));
	fn = json_pack("{s:s,s:s,s:s,s:o,s:I,s:b,s:b,s:I,s:o,s:o}",
	    "name", v->name,
	    "policy", config_policy_name(v->conf->policy),
	    "library", v->conf->library,
	    "listen", listen,
	    "workers", (json_int_t)v->conf->workers,
	    "current", v->current,
	    "failed", v->failed,
	    "live_workers", (json_int_t)v->nworkers,
	    "states", states,
	    "limits", limits_json(&v->conf->limits));
	if (fn == NULL)
		return NULL;
	json_object_set_new(fn, "state", json_string(function_state(v)));
	json_object_set_new(fn, "generation", json_integer((json_int_t)v->gen));
	json_object_set_new(fn, "scaling", scaling_json(v));
	json_object_set_new(fn, "latency", latency_json(&v->req_hist));
	json_object_set_new(fn, "task_latency", latency_json(&v->task_hist));
	json_object_set_new(fn, "durable", durable_json(v));
	json_object_set_new(fn, "admission", admission_json(v));
	json_object_set_new(fn, "totals", json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
	    "requests", (json_int_t)v->requests,
	    "tasks_started", (json_int_t)v->started,
	    "tasks_completed", (json_int_t)v->completed,
	    "tasks_failed", (json_int_t)v->failed_tasks,
	    "tasks_lost", (json_int_t)v->lost,
	    "tasks_pending", (json_int_t)v->pending,
	    "crashes", (json_int_t)v->crashes,
	    "unloads", unloads));
	return fn;
}

static json_t *
worker_json(const struct worker *w, uint64_t now)
{
	struct worker_view v;
	json_t *o, *oldest;

	worker_view(w, now, &v);
	if (v.has_oldest)
		oldest = json_pack("{s:s,s:I}", "name", v.oldest_name,
		    "age_ms", (json_int_t)v.oldest_age_ms);
	else
		oldest = json_null();
	o = json_pack("{s:s,s:I,s:I,s:s,s:I,s:I,s:s?,s:I,s:o,s:s?,s:o,s:I,s:I,s:I}",
	    "function", w->w_conf->name,
	    "id", (json_int_t)w->w_id,
	    "pid", (json_int_t)w->w_pid,
	    "state", wstate_name(w->w_state),
	    "generation", (json_int_t)w->w_gen,
	    "uptime_ms", (json_int_t)v.uptime_ms,
	    "cgroup", w->w_cgroup[0] ? w->w_cgroup : NULL,
	    "memory_current", (json_int_t)v.mem_current,
	    "memory_peak", v.mem_peak ? json_integer((json_int_t)v.mem_peak) : json_null(),
	    "memory_source", v.mem_source,
	    "pids", v.pids ? json_integer((json_int_t)v.pids) : json_null(),
	    "cpu_ms", (json_int_t)v.cpu_ms,
	    "requests", (json_int_t)v.requests,
	    "connections", (json_int_t)v.conns);
	if (o == NULL) {
		json_decref(oldest);
		return NULL;
	}
	json_object_set_new(o, "max_requests", json_integer((json_int_t)w->w_max_requests));
	json_object_set_new(o, "tasks", json_pack("{s:I,s:I,s:I,s:I,s:o}",
	    "started", (json_int_t)v.started,
	    "completed", (json_int_t)v.completed,
	    "failed", (json_int_t)v.failed,
	    "pending", (json_int_t)v.pending,
	    "oldest_pending", oldest));
	json_object_set_new(o, "seccomp_denied", json_integer(w->w_board == NULL ? 0 : (json_int_t)BOARD_LOAD(&w->w_board->seccomp_denied)));
	json_object_set_new(o, "last_unload_reason", v.reason != WIRE_REASON_NONE ?
	    json_string(wire_reason_name(v.reason)) : json_null());
	return o;
}

/* What /health says: starting (no generation ready yet), serving, draining (a host
 * drain's window: still serving, the balancer should move away), stopping. */
static const char *
health_state(void)
{
	if (sv.stopping)
		return "stopping";
	if (sv.host_draining)
		return "draining";
	return sv.ready_gen == 0 ? "starting" : "serving";
}

static json_t *
status_json(void)
{
	uint64_t now = clock_ms();
	struct fn_view *fv;
	struct pool *p;
	json_t *root, *fns, *workers;
	size_t n = 0;

	if ((fv = collect(&n)) == NULL)
		return NULL;
	fns = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(fns, function_json(&fv[i]));
	free(fv);
	workers = json_array();
	TAILQ_FOREACH(p, &pools, p_entry) {
		struct worker *w;
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			json_array_append_new(workers, worker_json(w, now));
	}
	root = json_pack("{s:{s:I,s:I,s:I,s:I,s:s,s:s,s:s?,s:s?,s:b,s:I,s:o},s:o,s:o}",
	    "supervisor",
	    "pid", (json_int_t)getpid(),
	    "uptime_ms", (json_int_t)(now - sv.started_ms),
	    "generation", (json_int_t)sv.gen,
	    "ready_generation", (json_int_t)sv.ready_gen,
	    "config", sv.conf_path,
	    "cgroups", cg_describe(),
	    "admin", admin_addr[0] ? admin_addr : NULL,
	    "metrics", metrics_addr[0] ? metrics_addr : NULL,
	    "stopping", sv.stopping,
	    "workers", (json_int_t)pools_live_workers(),
	    "reload", json_pack("{s:I,s:s?}", "failed_generation", (json_int_t)sv.failed_gen,
	        "failed_why", sv.failed_gen ? sv.failed_why : NULL),
	    "functions", fns,
	    "workers", workers);
	/* What /health answers, and a host drain's window still to run. */
	if (root != NULL) {
		json_t *svo = json_object_get(root, "supervisor");

		json_object_set_new(svo, "health", json_string(health_state()));
		json_object_set_new(svo, "health_drain_left_ms", json_integer(
		    sv.host_draining && sv.host_drain_end_ms > now ?
		    (json_int_t)(sv.host_drain_end_ms - now) : 0));
	}
	return root;
}

/* ---- GET /metrics ------------------------------------------------------------- */

/* A label value escaped as the exposition format wants: \\, \" and \n. */
static const char *
lesc(const char *s, char *buf, size_t len)
{
	size_t o = 0;

	for (; *s != '\0' && o + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			buf[o++] = '\\';
			buf[o++] = *s;
		} else if (*s == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else
			buf[o++] = *s;
	}
	buf[o] = '\0';
	return buf;
}

static void
family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One per-function sample of family NAME for each function, from the field at OFF. */
static void
fn_samples(struct evbuffer *out, const struct fn_view *fv, size_t n, const char *name,
    const char *type, const char *help, size_t off)
{
	char e[128];

	family(out, name, type, help);
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "%s{function=\"%s\"} %llu\n", name,
		    lesc(fv[i].name, e, sizeof(e)),
		    (unsigned long long)*(const uint64_t *)((const char *)&fv[i] + off));
}

/* A Prometheus histogram family NAME (seconds) from the struct hist at OFF of each view. */
static void
duration_family(struct evbuffer *out, const struct fn_view *fv, size_t n, const char *name,
    const char *help, size_t off)
{
	char e[128];

	family(out, name, "histogram", help);
	for (size_t i = 0; i < n; i++) {
		const struct hist *h = (const struct hist *)((const char *)&fv[i] + off);
		uint64_t cum = 0;

		lesc(fv[i].name, e, sizeof(e));
		for (unsigned b = 0; b <= HIST_BOUNDS; b++) {
			cum += h->buckets[b];
			if (b < HIST_BOUNDS)
				evbuffer_add_printf(out, "%s_bucket{function=\"%s\",le=\"%g\"} %llu\n",
				    name, e, hist_bounds_us[b] / 1e6, (unsigned long long)cum);
			else
				evbuffer_add_printf(out, "%s_bucket{function=\"%s\",le=\"+Inf\"} %llu\n",
				    name, e, (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "%s_sum{function=\"%s\"} %.6f\n", name, e, h->sum_us / 1e6);
		evbuffer_add_printf(out, "%s_count{function=\"%s\"} %llu\n", name, e,
		    (unsigned long long)cum);
	}
}

/* Durable tasks per function and kind (durable_watch.c's last read of the journals). */
static void
durable_metrics(struct evbuffer *out, const struct fn_view *fv, size_t n)
{
	static const struct {
		const char *name, *type, *help;
	} df[] = {
		{ "edgevisor_durable_tasks", "gauge",
		    "Durable tasks in the journal now, by state (pending, retrying, running, dead)." },
		{ "edgevisor_durable_enqueued_total", "counter", "Durable tasks recorded." },
		{ "edgevisor_durable_succeeded_total", "counter", "Durable tasks that succeeded." },
		{ "edgevisor_durable_retried_total", "counter",
		    "Durable attempts that failed and were retried (or cut by a crash)." },
		{ "edgevisor_durable_dead_total", "counter", "Durable tasks that went dead." },
		{ "edgevisor_durable_oldest_age_seconds", "gauge",
		    "Age of the oldest pending or running durable task (0 when none)." },
	};
	struct durable_count *c = calloc(DW_KINDS_MAX, sizeof(*c));
	int64_t now = clock_wall_ms(), due;
	char e[128];

	if (c == NULL)
		return;
	for (size_t f = 0; f < sizeof(df) / sizeof(df[0]); f++) {
		family(out, df[f].name, df[f].type, df[f].help);
		for (size_t i = 0; i < n; i++) {
			size_t k = fv[i].conf->durable.backend == DURABLE_OFF ? 0 :
			    durable_watch_counts(fv[i].name, c, DW_KINDS_MAX, &due);

			lesc(fv[i].name, e, sizeof(e));
			for (size_t j = 0; j < k; j++) {
				const struct durable_count *d = &c[j];
				const char *kind = d->kind;   /* [A-Za-z0-9_.:-]: nothing to escape */

				switch (f) {
				case 0:
					evbuffer_add_printf(out, "%s{function=\"%s\",kind=\"%s\",state=\"pending\"} %llu\n"
					    "%s{function=\"%s\",kind=\"%s\",state=\"retrying\"} %llu\n"
					    "%s{function=\"%s\",kind=\"%s\",state=\"running\"} %llu\n"
					    "%s{function=\"%s\",kind=\"%s\",state=\"dead\"} %llu\n",
					    df[f].name, e, kind, (unsigned long long)d->pending,
					    df[f].name, e, kind, (unsigned long long)d->retrying,
					    df[f].name, e, kind, (unsigned long long)d->running,
					    df[f].name, e, kind, (unsigned long long)d->dead);
					break;
				case 5:
					evbuffer_add_printf(out, "%s{function=\"%s\",kind=\"%s\"} %.3f\n",
					    df[f].name, e, kind,
					    d->oldest_ms > 0 ? (now - d->oldest_ms) / 1000.0 : 0.0);
					break;
				default:
					evbuffer_add_printf(out, "%s{function=\"%s\",kind=\"%s\"} %llu\n",
					    df[f].name, e, kind, (unsigned long long)(f == 1 ? d->enqueued :
					    f == 2 ? d->succeeded : f == 3 ? d->retried : d->failed));
				}
			}
		}
	}
	free(c);
}

static void
metrics_text(struct evbuffer *out)
{
	uint64_t now = clock_ms();
	struct fn_view *fv;
	struct pool *p;
	struct worker *w;
	char e[128];
	size_t n = 0;

	if ((fv = collect(&n)) == NULL)
		return;
	family(out, "edgevisor_uptime_seconds", "gauge", "Seconds since the supervisor started.");
	evbuffer_add_printf(out, "edgevisor_uptime_seconds %.3f\n", (now - sv.started_ms) / 1000.0);
	family(out, "edgevisor_generation", "gauge", "Config generation (1 at start, +1 per reload).");
	evbuffer_add_printf(out, "edgevisor_generation %u\n", sv.gen);

	fn_samples(out, fv, n, "edgevisor_requests_total", "counter",
	    "Requests answered by the function's workers.", offsetof(struct fn_view, requests));
	fn_samples(out, fv, n, "edgevisor_tasks_started_total", "counter",
	    "Background tasks started.", offsetof(struct fn_view, started));
	fn_samples(out, fv, n, "edgevisor_tasks_completed_total", "counter",
	    "Background tasks that completed.", offsetof(struct fn_view, completed));
	fn_samples(out, fv, n, "edgevisor_tasks_failed_total", "counter",
	    "Background tasks that failed, timed out or were cut by shutdown.",
	    offsetof(struct fn_view, failed_tasks));
	fn_samples(out, fv, n, "edgevisor_tasks_lost_total", "counter",
	    "Background tasks still pending when their worker died or was killed.",
	    offsetof(struct fn_view, lost));
	fn_samples(out, fv, n, "edgevisor_tasks_pending", "gauge",
	    "Background tasks pending now.", offsetof(struct fn_view, pending));
	fn_samples(out, fv, n, "edgevisor_worker_crashes_total", "counter",
	    "Workers that died without being asked to.", offsetof(struct fn_view, crashes));

	family(out, "edgevisor_unloads_total", "counter",
	    "Workers that left, by beforeunload reason.");
	for (size_t i = 0; i < n; i++)
		for (int r = WIRE_REASON_NONE + 1; r < WIRE_REASON_MAX; r++)
			evbuffer_add_printf(out, "edgevisor_unloads_total{function=\"%s\",reason=\"%s\"} %llu\n",
			    lesc(fv[i].name, e, sizeof(e)), wire_reason_name(r),
			    (unsigned long long)fv[i].unloads[r]);
	family(out, "edgevisor_workers", "gauge", "Live workers by state.");
	for (size_t i = 0; i < n; i++)
		for (int s = 0; s < WS_MAX; s++)
			if (s != WS_EXITED && s != WS_CRASHED)
				evbuffer_add_printf(out, "edgevisor_workers{function=\"%s\",state=\"%s\"} %u\n",
				    lesc(fv[i].name, e, sizeof(e)), wstate_name(s), fv[i].nstate[s]);
	fn_samples(out, fv, n, "edgevisor_queued_connections", "gauge",
	    "Connections waiting in the supervisor for a worker of the function.",
	    offsetof(struct fn_view, queued));
	fn_samples(out, fv, n, "edgevisor_scale_ups_total", "counter",
	    "Workers started above min_workers for load.", offsetof(struct fn_view, scale_ups));
	fn_samples(out, fv, n, "edgevisor_scale_downs_total", "counter",
	    "Workers retired for idleness above min_workers.",
	    offsetof(struct fn_view, scale_downs));
	family(out, "edgevisor_cold_start_seconds", "histogram",
	    "Accepted to handed over, for connections that waited for a worker to start.");
	for (size_t i = 0; i < n; i++) {
		uint64_t cum = 0;

		lesc(fv[i].name, e, sizeof(e));
		for (unsigned b = 0; b <= TOTALS_COLD_BUCKETS; b++) {
			cum += fv[i].cold_hist[b];
			if (b < TOTALS_COLD_BUCKETS)
				evbuffer_add_printf(out, "edgevisor_cold_start_seconds_bucket{function=\"%s\",le=\"%g\"} %llu\n",
				    e, totals_cold_bounds[b] / 1000.0, (unsigned long long)cum);
			else
				evbuffer_add_printf(out, "edgevisor_cold_start_seconds_bucket{function=\"%s\",le=\"+Inf\"} %llu\n",
				    e, (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "edgevisor_cold_start_seconds_sum{function=\"%s\"} %.3f\n",
		    e, fv[i].cold_ms_sum / 1000.0);
		evbuffer_add_printf(out, "edgevisor_cold_start_seconds_count{function=\"%s\"} %llu\n",
		    e, (unsigned long long)fv[i].cold_starts);
	}
	duration_family(out, fv, n, "edgevisor_request_duration_seconds",
	    "Request complete to answer queued (a stream: to its end), measured by the worker.",
	    offsetof(struct fn_view, req_hist));
	duration_family(out, fv, n, "edgevisor_task_duration_seconds",
	    "Background task started to ended (completed, failed or timed out), measured by the worker.",
	    offsetof(struct fn_view, task_hist));
	family(out, "edgevisor_max_workers", "gauge",
	    "The function's max_workers: the most workers its pool may run at once.");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "edgevisor_max_workers{function=\"%s\"} %u\n",
		    lesc(fv[i].name, e, sizeof(e)), (unsigned)fv[i].conf->max_workers);
	family(out, "edgevisor_worker_memory_limit_bytes", "gauge",
	    "The function's memory_mb cap per worker, in bytes (0 = none).");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "edgevisor_worker_memory_limit_bytes{function=\"%s\"} %llu\n",
		    lesc(fv[i].name, e, sizeof(e)),
		    (unsigned long long)fv[i].conf->limits.memory_mb * 1024 * 1024);
	durable_metrics(out, fv, n);
	fn_samples(out, fv, n, "edgevisor_overload_rejections_total", "counter",
	    "Connections answered 503 by the admission gate (queue full or queue_timeout_ms).",
	    offsetof(struct fn_view, rejected_overload));
	fn_samples(out, fv, n, "edgevisor_in_flight_connections", "gauge",
	    "Connections handed to the function's workers and not yet closed.",
	    offsetof(struct fn_view, in_flight));
	family(out, "edgevisor_queue_wait_seconds", "histogram",
	    "Accepted to handed over, for connections that waited at the admission gate.");
	for (size_t i = 0; i < n; i++) {
		uint64_t cum = 0;

		lesc(fv[i].name, e, sizeof(e));
		for (unsigned b = 0; b <= TOTALS_COLD_BUCKETS; b++) {
			cum += fv[i].queue_hist[b];
			if (b < TOTALS_COLD_BUCKETS)
				evbuffer_add_printf(out, "edgevisor_queue_wait_seconds_bucket{function=\"%s\",le=\"%g\"} %llu\n",
				    e, totals_cold_bounds[b] / 1000.0, (unsigned long long)cum);
			else
				evbuffer_add_printf(out, "edgevisor_queue_wait_seconds_bucket{function=\"%s\",le=\"+Inf\"} %llu\n",
				    e, (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "edgevisor_queue_wait_seconds_sum{function=\"%s\"} %.3f\n",
		    e, fv[i].queue_ms_sum / 1000.0);
		evbuffer_add_printf(out, "edgevisor_queue_wait_seconds_count{function=\"%s\"} %llu\n",
		    e, (unsigned long long)fv[i].queue_waits);
	}
	family(out, "edgevisor_function_failed", "gauge",
	    "1 when the function's workers keep dying before ready (not respawned until reload).");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "edgevisor_function_failed{function=\"%s\"} %d\n",
		    lesc(fv[i].name, e, sizeof(e)), fv[i].failed ? 1 : 0);
	free(fv);

	/* Per worker: one walk per family keeps each family's samples together. */
	static const struct {
		const char *name, *type, *help;
	} wf[] = {
		{ "edgevisor_worker_memory_bytes", "gauge", "Worker memory (cgroup usage, else RSS)." },
		{ "edgevisor_worker_cpu_seconds_total", "counter", "Worker CPU time." },
		{ "edgevisor_worker_connections", "gauge", "Connections open in the worker." },
		{ "edgevisor_worker_requests_total", "counter", "Requests the worker answered." },
		{ "edgevisor_worker_tasks_pending", "gauge", "Background tasks pending in the worker." },
		{ "edgevisor_worker_oldest_task_age_seconds", "gauge",
		    "Age of the worker's oldest pending task (0 when none)." },
	};
	for (size_t f = 0; f < sizeof(wf) / sizeof(wf[0]); f++) {
		family(out, wf[f].name, wf[f].type, wf[f].help);
		TAILQ_FOREACH(p, &pools, p_entry) {
			TAILQ_FOREACH(w, &p->p_workers, w_entry) {
				struct worker_view v;
				double val = 0;

				worker_view(w, now, &v);
				switch (f) {
				case 0: val = (double)v.mem_current; break;
				case 1: val = v.cpu_ms / 1000.0; break;
				case 2: val = (double)v.conns; break;
				case 3: val = (double)v.requests; break;
				case 4: val = (double)v.pending; break;
				case 5: val = v.has_oldest ? v.oldest_age_ms / 1000.0 : 0; break;
				}
				evbuffer_add_printf(out, "%s{function=\"%s\",worker=\"%u\"} %.17g\n",
				    wf[f].name, lesc(p->p_conf->name, e, sizeof(e)), w->w_id, val);
			}
		}
	}
}

/* ---- requests ------------------------------------------------------------------ */

static void
reply(struct evhttp_request *req, int code, const char *reason, const char *type,
    struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

/* Replies with OBJ as JSON (stolen). */
static void
reply_json(struct evhttp_request *req, int code, const char *reason, json_t *obj)
{
	struct evbuffer *b = evbuffer_new();
	char *s = obj ? json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

	json_decref(obj);
	if (b == NULL || s == NULL) {
		free(s);
		if (b)
			evbuffer_free(b);
		evhttp_send_error(req, 500, "cannot build the reply");
		return;
	}
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	free(s);
	reply(req, code, reason, "application/json", b);
	evbuffer_free(b);
}

static void
reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	reply_json(req, code, reason, json_pack("{s:s}", "error", msg));
}

/* What the endpoint asks the orchestrator for (admin_set_ops); NULL until set. */
static const struct admin_ops *ops;
static enum host_drain_result (*host_drain)(uint32_t ms, const char *via);

void
admin_set_ops(const struct admin_ops *o)
{
	ops = o;
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	ops->stop(false);
}

void
admin_set_host_drain(enum host_drain_result (*begin)(uint32_t ms, const char *via))
{
	host_drain = begin;
}

/* The stop reply is out: now stop (a client gone early is covered by the timer). */
static void
stop_sent_cb(struct evhttp_request *req, void *arg)
{
	ops->stop(false);
}

static json_t *
plan_names(const struct reload *r, enum rl_change c)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < r->nitems; i++)
		if (r->items[i].change == c)
			json_array_append_new(a, json_string(r->items[i].name));
	return a;
}

/* The reload answer, built while the plan exists. */
static void
plan_seen(const struct reload *plan, void *arg)
{
	json_t **out = arg;

	*out = json_pack("{s:s,s:I,s:o,s:o,s:o,s:o}",
	    "result", "reloading", "generation", (json_int_t)plan->gen,
	    "kept", plan_names(plan, RL_KEPT), "rolled", plan_names(plan, RL_ROLLED),
	    "added", plan_names(plan, RL_ADDED), "removed", plan_names(plan, RL_REMOVED));
}

static void
do_reload(struct evhttp_request *req)
{
	json_t *answer = NULL;
	char err[1024];
	int r;

	if (sv.stopping || sv.host_draining) {
		reply_error(req, 409, "Conflict", sv.stopping ? "the supervisor is stopping" :
		    "the host is draining");
		return;
	}
	r = ops->reload(plan_seen, &answer, err, sizeof(err));
	if (r < 0) {
		reply_error(req, 409, "Conflict", err);
		return;
	}
	if (r > 0) {
		reply_json(req, 202, "Accepted", json_pack("{s:s,s:I}", "result", "queued",
		    "generation", (json_int_t)sv.gen + 1));
		return;
	}
	/* Begun: what it changes is known now; whether it lands, /status and the log say. */
	reply_json(req, 202, "Accepted", answer);
}

static void
do_drain(struct evhttp_request *req, const char *enc)
{
	char *name = evhttp_uridecode(enc, 0, NULL);

	if (name == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (sv.stopping || sv.host_draining)
		reply_error(req, 409, "Conflict", sv.stopping ? "the supervisor is stopping" :
		    "the host is draining");
	else if (*name == '\0' || ops->drain(name) < 0)
		reply_error(req, 404, "Not Found", "no such function");
	else
		reply_json(req, 202, "Accepted", json_pack("{s:s,s:s}", "result", "draining",
		    "function", name));
	free(name);
}

static void
do_stop(struct evhttp_request *req)
{
	struct timeval tv = { 1, 0 };

	evhttp_request_set_on_complete_cb(req, stop_sent_cb, NULL);
	event_base_once(sv.base, -1, EV_TIMEOUT, stop_cb, NULL, &tv);
	reply_json(req, 202, "Accepted", json_pack("{s:s}", "result", "stopping"));
}

/*
 * The host drain: 202 at once, also when one is under way already (a preStop hook or
 * a deploy script may ask twice), saying the phase and the window still to run.
 */
static void
do_host_drain(struct evhttp_request *req)
{
	uint32_t ms = sv.conf != NULL ? sv.conf->health_drain_ms : 0;
	uint64_t now = clock_ms();
	enum host_drain_result r = host_drain(ms, "admin");

	reply_json(req, 202, "Accepted", json_pack("{s:s,s:b,s:I,s:I,s:I}",
	    "result", sv.host_draining ? "draining" : "stopping",
	    "already", r != HD_BEGUN,
	    "health_drain_ms", (json_int_t)ms,
	    "health_drain_left_ms", (json_int_t)(sv.host_draining && sv.host_drain_end_ms > now ?
	        sv.host_drain_end_ms - now : 0),
	    "pid", (json_int_t)getpid()));
}

/* 200 while serving; 503 before the first generation is ready, during a host drain
 * and once stopping. */
static void
do_health(struct evhttp_request *req)
{
	const char *state = health_state();
	bool up = strcmp(state, "serving") == 0;

	reply_json(req, up ? 200 : 503, up ? "OK" : "Service Unavailable",
	    json_pack("{s:s,s:I}", "status", state, "generation", (json_int_t)sv.ready_gen));
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	bool post = cmd == EVHTTP_REQ_POST;
	const char *allow = NULL;

	if (path == NULL || *path == '\0')
		path = "/";
	/* Decided before routing, so a route added later is private by default. */
	if (!admin_auth_public(path)) {
		if (arg == &on_metrics) {
			reply_error(req, 404, "Not Found", "no such endpoint on the metrics "
			    "listener (GET /metrics, GET /health)");
			return;
		}
		if (!admin_auth_privileged(req, path))
			return;
	}
	if (strcmp(path, "/health") == 0) {
		if (get) {
			do_health(req);
			return;
		}
		allow = "GET, HEAD";
	} else if (strcmp(path, "/status") == 0) {
		if (get) {
			json_t *st = status_json();
			if (st == NULL)
				reply_error(req, 500, "Internal Server Error", "out of memory");
			else
				reply_json(req, 200, "OK", st);
			return;
		}
		allow = "GET, HEAD";
	} else if (strcmp(path, "/metrics") == 0) {
		if (get) {
			struct evbuffer *b = evbuffer_new();
			if (b == NULL) {
				evhttp_send_error(req, 500, NULL);
				return;
			}
			metrics_text(b);
			reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b);
			evbuffer_free(b);
			return;
		}
		allow = "GET, HEAD";
	} else if (strcmp(path, "/reload") == 0 || strcmp(path, "/stop") == 0 ||
	    strcmp(path, "/drain") == 0 || strncmp(path, "/drain/", 7) == 0) {
		if (post) {
			log_info("admin_request", "method=POST path=%s via=%s", log_qv(path),
			    admin_path[0] ? "unix" : "tcp");
			if (path[1] == 'r')
				do_reload(req);
			else if (path[1] == 's')
				do_stop(req);
			else if (path[6] == '\0')
				do_host_drain(req);
			else
				do_drain(req, path + 7);
			return;
		}
		allow = "POST";
	}
	if (allow != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		reply_error(req, 405, "Method Not Allowed", "method not allowed");
		return;
	}
	reply_error(req, 404, "Not Found",
	    "no such endpoint (GET /status, GET /metrics, GET /health, POST /reload, "
	    "POST /drain, POST /drain/NAME, POST /stop)");
}

/* ---- listening ------------------------------------------------------------------ */

/* mkdir -p DIR with mode 0755 for what it creates. */
static int
make_dirs(const char *dir)
{
	char buf[sizeof(admin_path)];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

/* Creates the directory the socket file PATH goes in, if it is missing. */
static int
make_parent(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(admin_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (make_dirs(dir) < 0) {
		snprintf(err, errlen, "unix:%s: cannot create %s: %s", path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Listens on A: a unix socket born 0600 (its file's identity goes to *ID, so that
 * we only ever remove our own), or a loopback port - the endpoint has no
 * authentication. Returns the fd, or -1 with the reason in ERR.
 */
static int
admin_listen(const char *addr, const struct net_addr *a, struct net_unix_id *id,
    char *err, size_t errlen)
{
	static const struct net_listen_opts opts = {
		.backlog = 64, .loopback_only = true, .unix_mode = 0600,
	};
	char msg[256];
	int fd;

	if (a->kind == NET_UNIX && make_parent(a->path, err, errlen) < 0)
		return -1;
	if ((fd = net_listen(a, &opts, msg, sizeof(msg))) < 0) {
		snprintf(err, errlen, "%s: %s", addr, msg);
		return -1;
	}
	if (a->kind == NET_UNIX && net_unix_id(a->path, id) < 0) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		close(fd);
		unlink(a->path);
		return -1;
	}
	return fd;
}

/*
 * An endpoint that is replaced or closed stops listening at once, but its evhttp is
 * freed a moment later: the request that replaced it (a POST /reload that moves the
 * admin endpoint) is still being answered on it.
 */
#define RETIRED_MAX 8
static struct evhttp *retired[RETIRED_MAX];
static struct event *retired_ev;

static void
free_retired(void)
{
	for (int i = 0; i < RETIRED_MAX; i++) {
		if (retired[i] != NULL)
			evhttp_free(retired[i]);
		retired[i] = NULL;
	}
}

static void
retired_cb(evutil_socket_t fd, short what, void *arg)
{
	free_retired();
}

static void
retire_http(struct evhttp *http, struct evhttp_bound_socket *bs)
{
	static const struct timeval later = { 1, 0 };

	if (bs != NULL)
		evhttp_del_accept_socket(http, bs);
	if (retired_ev == NULL)
		retired_ev = evtimer_new(sv.base, retired_cb, NULL);
	for (int i = 0; i < RETIRED_MAX; i++) {
		if (retired[i] == NULL) {
			retired[i] = http;
			if (retired_ev != NULL)
				evtimer_add(retired_ev, &later);
			return;
		}
	}
	/* Eight endpoints replaced within a second: the oldest is long answered. */
	evhttp_free(retired[0]);
	memmove(retired, retired + 1, (RETIRED_MAX - 1) * sizeof(retired[0]));
	retired[RETIRED_MAX - 1] = http;
}

/* A new evhttp for the admin or the metrics listener (ON: on_admin, on_metrics). */
static struct evhttp *
new_http(const char *on, char *err, size_t errlen)
{
	struct evhttp *http = evhttp_new(sv.base);

	if (http == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return NULL;
	}
	evhttp_set_gencb(http, request_cb, (void *)on);
	evhttp_set_timeout(http, ADMIN_TIMEOUT_S);
	evhttp_set_max_headers_size(http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(http, ADMIN_MAX_BODY);
	return http;
}

/* Opens the admin endpoint at ADDR (see admin_start). */
static int
admin_open(const char *addr, char *err, size_t errlen)
{
	struct evhttp *http, *old_http = admin_http;
	struct evhttp_bound_socket *bs;
	struct net_addr a;
	struct net_unix_id id = { 0 };
	const char *why;
	int fd;

	if (old_http != NULL && strcmp(addr, admin_addr) == 0)
		return 0;
	if (net_parse(addr, &a, &why) < 0) {
		snprintf(err, errlen, "%s: %s", addr, why);
		return -1;
	}
	if ((http = new_http(&on_admin, err, errlen)) == NULL)
		return -1;
	if ((fd = admin_listen(addr, &a, &id, err, errlen)) < 0)
		goto fail;
	if ((bs = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		snprintf(err, errlen, "%s: cannot serve: %s", addr, strerror(errno));
		close(fd);
		if (a.kind == NET_UNIX)
			unlink(a.path);
		goto fail;
	}
	/* The old endpoint goes only once the new one listens. */
	if (old_http != NULL) {
		retire_http(old_http, admin_bound);
		if (admin_path[0])
			net_unix_release(admin_path, &admin_id);
	}
	admin_http = http;
	admin_bound = bs;
	snprintf(admin_path, sizeof(admin_path), "%s", a.kind == NET_UNIX ? a.path : "");
	admin_id = id;
	snprintf(admin_addr, sizeof(admin_addr), "%s", addr);
	log_info("admin_listen", "addr=%s", log_qv(addr));
	return 0;
fail:
	evhttp_free(http);
	return -1;
}

/* Opens the metrics listener at ADDR (any TCP address); the old one goes once it
 * listens. */
static int
metrics_open(const char *addr, char *err, size_t errlen)
{
	static const struct net_listen_opts opts = { .backlog = 64 };
	struct evhttp_bound_socket *bs;
	struct evhttp *http;
	struct net_addr a;
	const char *why;
	char msg[256];
	int fd;

	if (metrics_http != NULL && strcmp(addr, metrics_addr) == 0)
		return 0;
	if (net_parse(addr, &a, &why) < 0) {
		snprintf(err, errlen, "%s: %s", addr, why);
		return -1;
	}
	if (a.kind == NET_UNIX) {
		snprintf(err, errlen, "%s: the metrics listener is TCP only", addr);
		return -1;
	}
	if ((http = new_http(&on_metrics, err, errlen)) == NULL)
		return -1;
	if ((fd = net_listen(&a, &opts, msg, sizeof(msg))) < 0) {
		snprintf(err, errlen, "%s: %s", addr, msg);
		evhttp_free(http);
		return -1;
	}
	if ((bs = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		snprintf(err, errlen, "%s: cannot serve: %s", addr, strerror(errno));
		close(fd);
		evhttp_free(http);
		return -1;
	}
	if (metrics_http != NULL)
		retire_http(metrics_http, metrics_bound);
	metrics_http = http;
	metrics_bound = bs;
	snprintf(metrics_addr, sizeof(metrics_addr), "%s", addr);
	log_info("metrics_listen", "addr=%s", log_qv(addr));
	return 0;
}

static void
metrics_close(void)
{
	if (metrics_http == NULL)
		return;
	retire_http(metrics_http, metrics_bound);
	metrics_http = NULL;
	metrics_bound = NULL;
	metrics_addr[0] = '\0';
}

static void admin_close(void);

int
admin_start(const struct sv_conf *conf, char *err, size_t errlen)
{
	/* The token first: a listener that opens below must never serve without it. */
	admin_auth_set_token(conf->admin_token);
	if (conf->admin == NULL)
		admin_close();
	else if (admin_open(conf->admin, err, errlen) < 0)
		return -1;
	if (conf->metrics == NULL)
		metrics_close();
	else if (metrics_open(conf->metrics, err, errlen) < 0)
		return -1;
	return 0;
}

void
admin_stop(void)
{
	admin_close();
	metrics_close();
	admin_auth_set_token(NULL);
	/* At exit no request is in flight: free them now. */
	free_retired();
	if (retired_ev != NULL)
		event_free(retired_ev);
	retired_ev = NULL;
}

static void
admin_close(void)
{
	if (admin_http == NULL)
		return;
	retire_http(admin_http, admin_bound);
	admin_http = NULL;
	admin_bound = NULL;
	/* Only our own socket: a newer supervisor may have taken the path. */
	if (admin_path[0])
		net_unix_release(admin_path, &admin_id);
	admin_path[0] = '\0';
	admin_addr[0] = '\0';
}
