/*
 * admin.c - the operator's endpoint (SPEC §6): /status as JSON (jansson), /metrics
 * as Prometheus text, /health, and POST /reload, /drain/<fn>, /stop; plus the
 * read-only metrics listener (/metrics and /health only). Who may call what is
 * admin_auth.c's. evhttp serves both on the supervisor's own loop and owns their
 * listening sockets. Every handler reads only memory, the workers' scoreboards and
 * a few cgroup files, and answers at once, so the admin never blocks the loop that
 * hands connections to workers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "admin.h"
#include "admin_auth.h"
#include "cgroup.h"
#include "supervisor.h"

/* Admin requests are tiny; anything bigger is not ours. */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY    4096
/* A client that sends nothing for this long is dropped. */
#define ADMIN_TIMEOUT_S   10

static struct evhttp *admin_http;
static struct evhttp_bound_socket *admin_bound;
static char admin_addr[512];
/* The socket file we created, and its inode, so we only ever remove our own. */
static char admin_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static dev_t admin_dev;
static ino_t admin_ino;
/* The read-only listener ("metrics"): its own evhttp, so no route leaks across. */
static struct evhttp *metrics_http;
static char metrics_addr[512];
/* request_cb's argument: which listener a request came in on. */
static const char on_admin = 'a', on_metrics = 'm';

/* One function as the admin shows it: config plus totals of every generation. */
struct fn_view {
	const char *name;
	const struct fn_conf *conf;
	bool current;               /* in the config being served */
	bool failed;
	uint64_t requests, started, completed, failed_tasks, lost, pending, crashes;
	uint64_t unloads[WIRE_REASON_MAX];
	unsigned nstate[WS_MAX];
	unsigned nworkers;
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
static void proc_rss(pid_t pid, uint64_t *bytes);

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
	v->cpu_ms = BOARD_LOAD(&b->cpu_ms);
	v->mem_current = BOARD_LOAD(&b->rss_kb) * 1024;
	v->mem_source = "rss";
	proc_rss(w->w_pid, &v->mem_current);
	if (w->w_cgroup[0] && cg_worker_stats(w->w_pool->p_conf->name, w->w_id, &cs) == 0) {
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

/* The worker's resident set now (its board copy is refreshed once a second). */
static void
proc_rss(pid_t pid, uint64_t *bytes)
{
	char path[64];
	unsigned long long size, resident;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return;
	if (fscanf(f, "%llu %llu", &size, &resident) == 2 && resident > 0)
		*bytes = resident * (uint64_t)sysconf(_SC_PAGESIZE);
	fclose(f);
}

static struct fn_view *
view_find(struct fn_view *fv, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(fv[i].name, name) == 0)
			return &fv[i];
	return NULL;
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
	size_t max = 0, cnt = 0;

	if (sv.conf != NULL)
		max = sv.conf->nfunctions;
	TAILQ_FOREACH(p, &sv.pools, p_entry)
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
	TAILQ_FOREACH(p, &sv.pools, p_entry) {
		struct worker *w;

		if ((v = view_find(fv, cnt, p->p_conf->name)) == NULL) {
			v = &fv[cnt++];
			v->name = p->p_conf->name;
			v->conf = p->p_conf;
		}
		if (!p->p_retiring && p->p_failed)
			v->failed = true;
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
		}
	}
	for (size_t i = 0; i < cnt; i++) {
		struct fn_totals *t = pool_totals(fv[i].name);

		if (t == NULL)
			continue;
		fv[i].requests += t->requests;
		fv[i].started += t->tasks_started;
		fv[i].completed += t->tasks_completed;
		fv[i].failed_tasks += t->tasks_failed;
		fv[i].lost = t->tasks_lost;
		fv[i].crashes = t->crashes;
		memcpy(fv[i].unloads, t->unloads, sizeof(fv[i].unloads));
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
	    "function", w->w_pool->p_conf->name,
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
	TAILQ_FOREACH(p, &sv.pools, p_entry) {
		struct worker *w;
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			json_array_append_new(workers, worker_json(w, now));
	}
	root = json_pack("{s:{s:I,s:I,s:I,s:I,s:s,s:s,s:s?,s:s?,s:b,s:I},s:o,s:o}",
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
	    "functions", fns,
	    "workers", workers);
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
		TAILQ_FOREACH(p, &sv.pools, p_entry) {
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

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	sv_stop(false);
}

/* The stop reply is out: now stop (a client gone early is covered by the timer). */
static void
stop_sent_cb(struct evhttp_request *req, void *arg)
{
	sv_stop(false);
}

static void
do_reload(struct evhttp_request *req)
{
	uint32_t gen = sv.gen;

	if (sv.stopping) {
		reply_error(req, 409, "Conflict", "the supervisor is stopping");
		return;
	}
	sv_reload();
	/* sv_reload() says nothing back: a new generation number means it started. */
	if (sv.gen == gen) {
		reply_error(req, 409, "Conflict", "reload refused or the config is invalid; "
		    "the old config keeps serving (see the log)");
		return;
	}
	reply_json(req, 202, "Accepted", json_pack("{s:s,s:I}", "result", "reloading",
	    "generation", (json_int_t)sv.gen));
}

static void
do_drain(struct evhttp_request *req, const char *enc)
{
	char *name = evhttp_uridecode(enc, 0, NULL);

	if (name == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (sv.stopping)
		reply_error(req, 409, "Conflict", "the supervisor is stopping");
	else if (*name == '\0' || sv_drain_function(name) < 0)
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

/* 200 while serving; 503 before the first generation is ready and once stopping. */
static void
do_health(struct evhttp_request *req)
{
	const char *state = sv.stopping ? "stopping" : sv.ready_gen == 0 ? "starting" :
	    "serving";
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
	    strncmp(path, "/drain/", 7) == 0) {
		if (post) {
			log_info("admin_request", "method=POST path=%s via=%s", path,
			    admin_path[0] ? "unix" : "tcp");
			if (path[1] == 'r')
				do_reload(req);
			else if (path[1] == 's')
				do_stop(req);
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
	    "POST /drain/NAME, POST /stop)");
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

/* Binds and listens on a unix socket at PATH, replacing a stale one. Returns the fd. */
static int
listen_unix(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[sizeof(sun.sun_path)];
	struct stat st;
	mode_t old;
	char *slash;
	int fd = -1, probe, saved;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix:%s: path too long", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	strcpy(dir, path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (make_dirs(dir) < 0) {
			snprintf(err, errlen, "unix:%s: cannot create %s: %s", path, dir,
			    strerror(errno));
			return -1;
		}
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "unix:%s: the path exists and is not a socket", path);
			return -1;
		}
		/* Someone answering there is another supervisor: do not steal its socket. */
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (probe >= 0 && (connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0 ||
		    errno == EAGAIN)) {
			close(probe);
			snprintf(err, errlen, "unix:%s: in use by a running process "
			    "(another edgevisor?)", path);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		if (unlink(path) < 0 && errno != ENOENT) {
			snprintf(err, errlen, "unix:%s: cannot remove the stale socket: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	/* Born 0600: no window in which another user could connect. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		saved = errno;
		umask(old);
		errno = saved;
		goto fail;
	}
	umask(old);
	if (chmod(path, 0600) < 0 || listen(fd, 64) < 0 || stat(path, &st) < 0) {
		saved = errno;
		unlink(path);
		errno = saved;
		goto fail;
	}
	admin_dev = st.st_dev;
	admin_ino = st.st_ino;
	return fd;
fail:
	saved = errno;
	snprintf(err, errlen, "unix:%s: %s", path, strerror(saved));
	if (fd >= 0)
		close(fd);
	return -1;
}

static bool
is_loopback(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&ss)->sin6_addr);
	return false;
}

/* Binds "host:port" or "[v6]:port" on HTTP; LOOPBACK_ONLY refuses anything else. */
static struct evhttp_bound_socket *
listen_tcp(struct evhttp *http, const char *addr, bool loopback_only, char *err,
    size_t errlen)
{
	struct evhttp_bound_socket *bs;
	char host[256];
	const char *colon = strrchr(addr, ':');
	size_t hlen;
	long port;

	if (colon == NULL || (port = strtol(colon + 1, NULL, 10)) <= 0 || port > 65535) {
		snprintf(err, errlen, "%s: must be \"unix:/path\" or \"host:port\"", addr);
		return NULL;
	}
	hlen = (size_t)(colon - addr);
	if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
		addr++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		snprintf(err, errlen, "%.*s: bad host", (int)(colon - addr), addr);
		return NULL;
	}
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	bs = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
	if (bs == NULL) {
		snprintf(err, errlen, "%s:%ld: cannot listen: %s", host, port, strerror(errno));
		return NULL;
	}
	if (loopback_only && !is_loopback(evhttp_bound_socket_get_fd(bs))) {
		evhttp_del_accept_socket(http, bs);
		snprintf(err, errlen, "%s:%ld: the admin endpoint must be on loopback or a "
		    "unix socket (\"metrics\" may listen anywhere)", host, port);
		return NULL;
	}
	return bs;
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
	char old_path[sizeof(admin_path)];
	dev_t old_dev = admin_dev;
	ino_t old_ino = admin_ino;
	int fd;

	if (old_http != NULL && strcmp(addr, admin_addr) == 0)
		return 0;
	if ((http = new_http(&on_admin, err, errlen)) == NULL)
		return -1;
	strcpy(old_path, admin_path);
	if (strncmp(addr, "unix:", 5) == 0) {
		/* A new socket at the same path as the old one replaces it below. */
		if ((fd = listen_unix(addr + 5, err, errlen)) < 0)
			goto fail;
		if ((bs = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
			snprintf(err, errlen, "%s: cannot serve: %s", addr, strerror(errno));
			close(fd);
			unlink(addr + 5);
			goto fail;
		}
		snprintf(admin_path, sizeof(admin_path), "%s", addr + 5);
	} else {
		if ((bs = listen_tcp(http, addr, true, err, errlen)) == NULL)
			goto fail;
		admin_path[0] = '\0';
	}
	/* The old endpoint goes only once the new one listens. */
	if (old_http != NULL) {
		evhttp_free(old_http);
		if (old_path[0] && strcmp(old_path, admin_path) != 0) {
			struct stat st;
			if (stat(old_path, &st) == 0 && st.st_dev == old_dev && st.st_ino == old_ino)
				unlink(old_path);
		}
	}
	admin_http = http;
	admin_bound = bs;
	snprintf(admin_addr, sizeof(admin_addr), "%s", addr);
	log_info("admin_listen", "addr=%s", addr);
	return 0;
fail:
	evhttp_free(http);
	return -1;
}

/* Opens the metrics listener at ADDR; the old one (if any) goes once it listens. */
static int
metrics_open(const char *addr, char *err, size_t errlen)
{
	struct evhttp *http;

	if (metrics_http != NULL && strcmp(addr, metrics_addr) == 0)
		return 0;
	if ((http = new_http(&on_metrics, err, errlen)) == NULL)
		return -1;
	if (listen_tcp(http, addr, false, err, errlen) == NULL) {
		evhttp_free(http);
		return -1;
	}
	if (metrics_http != NULL)
		evhttp_free(metrics_http);
	metrics_http = http;
	snprintf(metrics_addr, sizeof(metrics_addr), "%s", addr);
	log_info("metrics_listen", "addr=%s", addr);
	return 0;
}

static void
metrics_close(void)
{
	if (metrics_http == NULL)
		return;
	evhttp_free(metrics_http);
	metrics_http = NULL;
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
}

static void
admin_close(void)
{
	struct stat st;

	if (admin_http == NULL)
		return;
	evhttp_free(admin_http);
	admin_http = NULL;
	admin_bound = NULL;
	/* Only our own socket: a newer supervisor may have taken the path. */
	if (admin_path[0] && stat(admin_path, &st) == 0 && st.st_dev == admin_dev &&
	    st.st_ino == admin_ino)
		unlink(admin_path);
	admin_path[0] = '\0';
	admin_addr[0] = '\0';
}
