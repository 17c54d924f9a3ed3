/*
 * admin_render.c - /status as JSON (jansson) and /metrics as Prometheus text, from a
 * snapshot (admin_render.h). Runs on admin_job.c's thread: it touches nothing but
 * the snapshot, its output and the thread-safe readers named in the header.
 */
#include "admin_render.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "../common/clock.h"
#include "admin_snap.h"
#include "cgroup.h"
#include "durable_watch.h"
#include "limits.h"

/*
 * The figures of each worker that cost system calls, measured now (from /proc and
 * its cgroup): never the tenant-writable board's. A worker that exited since the
 * snapshot has no /proc entry or cgroup left: its figures stay 0 and "rss".
 */
static void
measure(struct admin_snap *s)
{
	for (size_t i = 0; i < s->nworkers; i++) {
		struct snap_worker *v = &s->workers[i];
		uint64_t cpu_ms, rss_kb;
		struct cg_stats cs;

		if (!v->has_board)
			continue;
		if (proc_usage(v->pid, &cpu_ms, &rss_kb) == 0) {
			v->cpu_ms = cpu_ms;
			v->mem_current = rss_kb * 1024;
		}
		v->mem_source = "rss";
		if (v->cgroup[0] && cg_worker_stats(v->function, v->id, &cs) == 0) {
			/* The cgroup also counts the tenant's children and page cache: what the cap sees. */
			v->mem_current = cs.memory_current;
			v->mem_peak = cs.memory_peak;
			v->pids = cs.pids_current;
			v->mem_source = "cgroup";
			if (cs.cpu_usage_us / 1000 > v->cpu_ms)
				v->cpu_ms = cs.cpu_usage_us / 1000;
		}
	}
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
function_state(const struct snap_fn *v)
{
	if (v->failed)
		return "failed";
	if (v->nstate[WS_READY])
		return "ready";
	if (v->nstate[WS_STARTING])
		return "warming";
	return "cold";
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
scaling_json(const struct snap_fn *v)
{
	json_t *hist = ms_buckets_json(v->cold_hist);

	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
	    "min_workers", (json_int_t)v->min_workers,
	    "max_workers", (json_int_t)v->max_workers,
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
durable_json(const struct snap_fn *v)
{
	struct durable_count c[DW_KINDS_MAX];
	int64_t due, now = clock_wall_ms();
	size_t n;
	json_t *kinds;

	if (v->durable_backend == DURABLE_OFF)
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
	    v->durable_backend == DURABLE_POSTGRESQL ? "postgresql" : "local",
	    "next_due_ms", (json_int_t)due,
	    "kinds", kinds);
}

static json_t *
admission_json(const struct snap_fn *v)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
	    "max_concurrency", (json_int_t)v->max_concurrency,
	    "max_queued", (json_int_t)v->max_queued,
	    "queue_timeout_ms", (json_int_t)v->queue_timeout_ms,
	    "in_flight", (json_int_t)v->in_flight,
	    "queued", (json_int_t)v->admit_queued,
	    "queue_waits", (json_int_t)v->queue_waits,
	    "rejected_overload", (json_int_t)v->rejected_overload,
	    "queue_wait_ms_buckets", ms_buckets_json(v->queue_hist));
}

static json_t *
function_json(const struct snap_fn *v)
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
	for (size_t i = 0; i < v->nlisten; i++)
		json_array_append_new(listen, json_string(v->listen[i]));
	fn = json_pack("{s:s,s:s,s:s,s:o,s:I,s:b,s:b,s:I,s:o,s:o}",
	    "name", v->name,
	    "policy", v->policy,
	    "library", v->library,
	    "listen", listen,
	    "workers", (json_int_t)v->workers,
	    "current", v->current,
	    "failed", v->failed,
	    "live_workers", (json_int_t)v->nworkers,
	    "states", states,
	    "limits", limits_json(&v->limits));
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
worker_json(const struct snap_worker *v)
{
	json_t *o, *oldest;

	if (v->has_oldest)
		oldest = json_pack("{s:s,s:I}", "name", v->oldest_name,
		    "age_ms", (json_int_t)v->oldest_age_ms);
	else
		oldest = json_null();
	o = json_pack("{s:s,s:I,s:I,s:s,s:I,s:I,s:s?,s:I,s:o,s:s?,s:o,s:I,s:I,s:I}",
	    "function", v->function,
	    "id", (json_int_t)v->id,
	    "pid", (json_int_t)v->pid,
	    "state", wstate_name(v->state),
	    "generation", (json_int_t)v->gen,
	    "uptime_ms", (json_int_t)v->uptime_ms,
	    "cgroup", v->cgroup[0] ? v->cgroup : NULL,
	    "memory_current", (json_int_t)v->mem_current,
	    "memory_peak", v->mem_peak ? json_integer((json_int_t)v->mem_peak) : json_null(),
	    "memory_source", v->mem_source,
	    "pids", v->pids ? json_integer((json_int_t)v->pids) : json_null(),
	    "cpu_ms", (json_int_t)v->cpu_ms,
	    "requests", (json_int_t)v->requests,
	    "connections", (json_int_t)v->conns);
	if (o == NULL) {
		json_decref(oldest);
		return NULL;
	}
	json_object_set_new(o, "max_requests", json_integer((json_int_t)v->max_requests));
	json_object_set_new(o, "tasks", json_pack("{s:I,s:I,s:I,s:I,s:o}",
	    "started", (json_int_t)v->started,
	    "completed", (json_int_t)v->completed,
	    "failed", (json_int_t)v->failed,
	    "pending", (json_int_t)v->pending,
	    "oldest_pending", oldest));
	json_object_set_new(o, "seccomp_denied", json_integer((json_int_t)v->seccomp_denied));
	json_object_set_new(o, "last_unload_reason", v->reason != WIRE_REASON_NONE ?
	    json_string(wire_reason_name(v->reason)) : json_null());
	return o;
}

static json_t *
status_json(const struct admin_snap *s)
{
	json_t *root, *fns, *workers;

	fns = json_array();
	for (size_t i = 0; i < s->nfns; i++)
		json_array_append_new(fns, function_json(&s->fns[i]));
	workers = json_array();
	for (size_t i = 0; i < s->nworkers; i++)
		json_array_append_new(workers, worker_json(&s->workers[i]));
	root = json_pack("{s:{s:I,s:I,s:I,s:I,s:s,s:s,s:s?,s:s?,s:b,s:I,s:o},s:o,s:o}",
	    "supervisor",
	    "pid", (json_int_t)s->pid,
	    "uptime_ms", (json_int_t)s->uptime_ms,
	    "generation", (json_int_t)s->gen,
	    "ready_generation", (json_int_t)s->ready_gen,
	    "config", s->config,
	    "cgroups", s->cgroups,
	    "admin", s->admin,
	    "metrics", s->metrics,
	    "stopping", s->stopping,
	    "workers", (json_int_t)s->live_workers,
	    "reload", json_pack("{s:I,s:s?}", "failed_generation", (json_int_t)s->failed_gen,
	        "failed_why", s->failed_why),
	    "functions", fns,
	    "workers", workers);
	/* What /health answers, and a host drain's window still to run. */
	if (root != NULL) {
		json_t *svo = json_object_get(root, "supervisor");

		json_object_set_new(svo, "health", json_string(s->health));
		json_object_set_new(svo, "health_drain_left_ms",
		    json_integer((json_int_t)s->health_drain_left_ms));
	}
	return root;
}

/* json_dump_callback's writer: straight into the evbuffer, no intermediate string. */
static int
to_evbuffer(const char *buf, size_t len, void *arg)
{
	return evbuffer_add(arg, buf, len);
}

int
admin_render_status(struct admin_snap *s, struct evbuffer *out)
{
	json_t *root;
	int rc;

	measure(s);
	if ((root = status_json(s)) == NULL)
		return -1;
	rc = json_dump_callback(root, to_evbuffer, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (rc < 0 || evbuffer_add(out, "\n", 1) < 0)
		return -1;
	return 0;
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
fn_samples(struct evbuffer *out, const struct snap_fn *fv, size_t n, const char *name,
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
duration_family(struct evbuffer *out, const struct snap_fn *fv, size_t n, const char *name,
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

/* A Prometheus histogram family NAME (seconds) kept in ms with the cold-start bounds:
 * each view's buckets at HIST_OFF, its sum (ms) at SUM_OFF, its count at COUNT_OFF. */
static void
ms_histogram(struct evbuffer *out, const struct snap_fn *fv, size_t n, const char *name,
    const char *help, size_t hist_off, size_t sum_off, size_t count_off)
{
	char e[128];

	family(out, name, "histogram", help);
	for (size_t i = 0; i < n; i++) {
		const char *v = (const char *)&fv[i];
		const uint64_t *hist = (const uint64_t *)(v + hist_off);
		uint64_t cum = 0;

		lesc(fv[i].name, e, sizeof(e));
		for (unsigned b = 0; b <= TOTALS_COLD_BUCKETS; b++) {
			cum += hist[b];
			if (b < TOTALS_COLD_BUCKETS)
				evbuffer_add_printf(out, "%s_bucket{function=\"%s\",le=\"%g\"} %llu\n",
				    name, e, totals_cold_bounds[b] / 1000.0, (unsigned long long)cum);
			else
				evbuffer_add_printf(out, "%s_bucket{function=\"%s\",le=\"+Inf\"} %llu\n",
				    name, e, (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "%s_sum{function=\"%s\"} %.3f\n", name, e,
		    *(const uint64_t *)(v + sum_off) / 1000.0);
		evbuffer_add_printf(out, "%s_count{function=\"%s\"} %llu\n", name, e,
		    (unsigned long long)*(const uint64_t *)(v + count_off));
	}
}

/* Durable tasks per function and kind (durable_watch.c's last read of the journals). */
static void
durable_metrics(struct evbuffer *out, const struct snap_fn *fv, size_t n)
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
			size_t k = fv[i].durable_backend == DURABLE_OFF ? 0 :
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

int
admin_render_metrics(struct admin_snap *s, struct evbuffer *out)
{
	const struct snap_fn *fv = s->fns;
	size_t n = s->nfns;
	char e[128];

	measure(s);
	family(out, "edgevisor_uptime_seconds", "gauge", "Seconds since the supervisor started.");
	evbuffer_add_printf(out, "edgevisor_uptime_seconds %.3f\n", s->uptime_ms / 1000.0);
	family(out, "edgevisor_generation", "gauge", "Config generation (1 at start, +1 per reload).");
	evbuffer_add_printf(out, "edgevisor_generation %u\n", s->gen);

	fn_samples(out, fv, n, "edgevisor_requests_total", "counter",
	    "Requests answered by the function's workers.", offsetof(struct snap_fn, requests));
	fn_samples(out, fv, n, "edgevisor_tasks_started_total", "counter",
	    "Background tasks started.", offsetof(struct snap_fn, started));
	fn_samples(out, fv, n, "edgevisor_tasks_completed_total", "counter",
	    "Background tasks that completed.", offsetof(struct snap_fn, completed));
	fn_samples(out, fv, n, "edgevisor_tasks_failed_total", "counter",
	    "Background tasks that failed, timed out or were cut by shutdown.",
	    offsetof(struct snap_fn, failed_tasks));
	fn_samples(out, fv, n, "edgevisor_tasks_lost_total", "counter",
	    "Background tasks still pending when their worker died or was killed.",
	    offsetof(struct snap_fn, lost));
	fn_samples(out, fv, n, "edgevisor_tasks_pending", "gauge",
	    "Background tasks pending now.", offsetof(struct snap_fn, pending));
	fn_samples(out, fv, n, "edgevisor_worker_crashes_total", "counter",
	    "Workers that died without being asked to.", offsetof(struct snap_fn, crashes));

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
	    offsetof(struct snap_fn, queued));
	fn_samples(out, fv, n, "edgevisor_scale_ups_total", "counter",
	    "Workers started above min_workers for load.", offsetof(struct snap_fn, scale_ups));
	fn_samples(out, fv, n, "edgevisor_scale_downs_total", "counter",
	    "Workers retired for idleness above min_workers.",
	    offsetof(struct snap_fn, scale_downs));
	ms_histogram(out, fv, n, "edgevisor_cold_start_seconds",
	    "Accepted to handed over, for connections that waited for a worker to start.",
	    offsetof(struct snap_fn, cold_hist), offsetof(struct snap_fn, cold_ms_sum),
	    offsetof(struct snap_fn, cold_starts));
	duration_family(out, fv, n, "edgevisor_request_duration_seconds",
	    "Request complete to answer queued (a stream: to its end), measured by the worker.",
	    offsetof(struct snap_fn, req_hist));
	duration_family(out, fv, n, "edgevisor_task_duration_seconds",
	    "Background task started to ended (completed, failed or timed out), measured by the worker.",
	    offsetof(struct snap_fn, task_hist));
	family(out, "edgevisor_max_workers", "gauge",
	    "The function's max_workers: the most workers its pool may run at once.");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "edgevisor_max_workers{function=\"%s\"} %u\n",
		    lesc(fv[i].name, e, sizeof(e)), (unsigned)fv[i].max_workers);
	family(out, "edgevisor_worker_memory_limit_bytes", "gauge",
	    "The function's memory_mb cap per worker, in bytes (0 = none).");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "edgevisor_worker_memory_limit_bytes{function=\"%s\"} %llu\n",
		    lesc(fv[i].name, e, sizeof(e)),
		    (unsigned long long)fv[i].limits.memory_mb * 1024 * 1024);
	durable_metrics(out, fv, n);
	fn_samples(out, fv, n, "edgevisor_overload_rejections_total", "counter",
	    "Connections answered 503 by the admission gate (queue full or queue_timeout_ms).",
	    offsetof(struct snap_fn, rejected_overload));
	fn_samples(out, fv, n, "edgevisor_in_flight_connections", "gauge",
	    "Connections handed to the function's workers and not yet closed.",
	    offsetof(struct snap_fn, in_flight));
	ms_histogram(out, fv, n, "edgevisor_queue_wait_seconds",
	    "Accepted to handed over, for connections that waited at the admission gate.",
	    offsetof(struct snap_fn, queue_hist), offsetof(struct snap_fn, queue_ms_sum),
	    offsetof(struct snap_fn, queue_waits));
	family(out, "edgevisor_function_failed", "gauge",
	    "1 when the function's workers keep dying before ready (not respawned until reload).");
	for (size_t i = 0; i < n; i++)
		evbuffer_add_printf(out, "edgevisor_function_failed{function=\"%s\"} %d\n",
		    lesc(fv[i].name, e, sizeof(e)), fv[i].failed ? 1 : 0);

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
		for (size_t i = 0; i < s->nworkers; i++) {
			const struct snap_worker *v = &s->workers[i];
			double val = 0;

			switch (f) {
			case 0: val = (double)v->mem_current; break;
			case 1: val = v->cpu_ms / 1000.0; break;
			case 2: val = (double)v->conns; break;
			case 3: val = (double)v->requests; break;
			case 4: val = (double)v->pending; break;
			case 5: val = v->has_oldest ? v->oldest_age_ms / 1000.0 : 0; break;
			}
			evbuffer_add_printf(out, "%s{function=\"%s\",worker=\"%u\"} %.17g\n",
			    wf[f].name, lesc(v->function, e, sizeof(e)), v->id, val);
		}
	}
	return 0;
}
