/*
 * top_model.c - /status documents to the rows of `edgevisorctl top` (see
 * top_model.h): per function and per worker, with the rates from the previous
 * document, and their sort orders.
 *
 * Workers by state are written as letters and counts, "R2 D1": S starting, R ready,
 * D draining, d drained, T terminating, X exited, C crashed (any other state: its
 * first letter), in that order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "top_model.h"

static const char *const state_order[] = {
	"starting", "ready", "draining", "drained", "terminating", "exited", "crashed",
};
static const char state_letter[] = "SRDdTXC";

void
top_model_init(struct top_model *m)
{
	memset(m, 0, sizeof(*m));
	m->sort = TOP_SORT_NAME;
}

void
top_model_free(struct top_model *m)
{
	free(m->rows);
	free(m->workers);
	json_decref(m->prev);
	top_model_init(m);
}

static long long
num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

/* A number (integer or real) at KEY of O, TOP_ABSENT if there is none. */
static double
opt_num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : TOP_ABSENT;
}

static void
copy(char *dst, size_t len, json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));

	snprintf(dst, len, "%s", s ? s : dflt);
}

/* CUR - PREV per second over DT; a counter that went down counts as 0. */
static double
rate(long long cur, long long prev, double dt)
{
	return cur >= prev ? (double)(cur - prev) / dt : 0.0;
}

/*
 * The previous document's functions by "1:name" (current) or "0:name" (removed,
 * draining) and its workers by pid, so that matching N functions costs N lookups,
 * not N^2 comparisons (a host with a thousand functions refreshes every second).
 */
static json_t *
index_prev(json_t *prev)
{
	json_t *idx = json_object(), *o;
	char key[TOP_NAME_MAX + 32];
	size_t i;

	if (idx == NULL || prev == NULL)
		return idx;
	json_array_foreach(json_object_get(prev, "functions"), i, o) {
		snprintf(key, sizeof(key), "f%d:%s", json_is_true(json_object_get(o, "current")),
		    json_string_value(json_object_get(o, "name")) ?
		    json_string_value(json_object_get(o, "name")) : "");
		json_object_set(idx, key, o);
	}
	json_array_foreach(json_object_get(prev, "workers"), i, o) {
		snprintf(key, sizeof(key), "w%lld", num(o, "pid"));
		json_object_set(idx, key, o);
	}
	return idx;
}

static json_t *
prev_function(json_t *idx, const char *name, bool current)
{
	char key[TOP_NAME_MAX + 32];

	snprintf(key, sizeof(key), "f%d:%s", current, name);
	return json_object_get(idx, key);
}

static json_t *
prev_worker(json_t *idx, long long pid)
{
	char key[32];

	snprintf(key, sizeof(key), "w%lld", pid);
	return json_object_get(idx, key);
}

static void
states_text(json_t *states, char *buf, size_t len)
{
	size_t off = 0;
	const char *k;
	json_t *v;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(state_order) / sizeof(state_order[0]); i++) {
		long long n = num(states, state_order[i]);

		if (n > 0 && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%c%lld", off ? " " : "",
			    state_letter[i], n);
	}
	json_object_foreach(states, k, v) {
		bool known = false;

		for (size_t i = 0; i < sizeof(state_order) / sizeof(state_order[0]); i++)
			known = known || strcmp(k, state_order[i]) == 0;
		if (!known && json_integer_value(v) > 0 && off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%c%lld", off ? " " : "",
			    k[0], (long long)json_integer_value(v));
	}
	if (off == 0)
		snprintf(buf, len, "-");
}

static void
fill_row(struct top_row *r, json_t *fn, json_t *idx, double dt)
{
	json_t *t = json_object_get(fn, "totals"), *sc = json_object_get(fn, "scaling");
	json_t *lim = json_object_get(fn, "limits"), *lat = json_object_get(fn, "latency");
	json_t *adm = json_object_get(fn, "admission"), *p = NULL;
	long long fmem = num(lim, "function_memory_mb"), wmem = num(lim, "memory_mb");
	long long fcpu = num(lim, "function_cpu_percent"), wcpu = num(lim, "cpu_percent");

	memset(r, 0, sizeof(*r));
	copy(r->name, sizeof(r->name), fn, "name", "?");
	copy(r->state, sizeof(r->state), fn, "state", "?");
	r->current = json_is_true(json_object_get(fn, "current"));
	r->generation = num(fn, "generation");
	r->live = num(fn, "live_workers");
	r->workers = num(fn, "workers");
	states_text(json_object_get(fn, "states"), r->states, sizeof(r->states));
	r->requests = num(t, "requests");
	r->tasks_pending = num(t, "tasks_pending");
	r->lost = num(t, "tasks_lost");
	r->cold_starts = num(sc, "cold_starts");
	r->p50_ms = opt_num(lat, "p50_ms");
	r->p99_ms = opt_num(lat, "p99_ms");
	r->queued = opt_num(adm, "queued");
	if (r->queued == TOP_ABSENT)
		r->queued = opt_num(sc, "queued");
	r->mem_cap = (uint64_t)(fmem > 0 ? fmem : wmem > 0 ? wmem : 0) * 1024 * 1024;
	r->mem_cap_per_worker = fmem <= 0 && wmem > 0;
	r->cpu_cap = fcpu > 0 ? fcpu : wcpu > 0 ? wcpu : 0;
	r->cpu_cap_per_worker = fcpu <= 0 && wcpu > 0;
	if (dt > 0)
		p = prev_function(idx, r->name, r->current);
	if (p != NULL) {
		json_t *pt = json_object_get(p, "totals");

		r->rps = rate(r->requests, num(pt, "requests"), dt);
		r->tasks_rate = rate(num(t, "tasks_started"), num(pt, "tasks_started"), dt);
		r->cpu_pct = 0;     /* summed from its workers */
	} else {
		r->rps = r->tasks_rate = r->cpu_pct = TOP_ABSENT;
	}
}

/* Indexes the rows in IDX for row_of: "g<generation>:name" and "n:name" (the current
 * one if a removed namesake still drains) to the row's index. */
static void
index_rows(json_t *idx, const struct top_row *rows, size_t n)
{
	char key[TOP_NAME_MAX + 32];

	for (size_t i = 0; i < n; i++) {
		json_t *named;

		snprintf(key, sizeof(key), "g%lld:%s", rows[i].generation, rows[i].name);
		json_object_set_new(idx, key, json_integer((json_int_t)i));
		snprintf(key, sizeof(key), "n:%s", rows[i].name);
		named = json_object_get(idx, key);
		if (named == NULL || (rows[i].current &&
		    !rows[json_integer_value(named)].current))
			json_object_set_new(idx, key, json_integer((json_int_t)i));
	}
}

/* The row worker W belongs to: the one of its name and generation, else the current
 * one of its name, else any of its name; NULL if none. */
static struct top_row *
row_of(struct top_model *m, json_t *idx, const struct top_worker *w)
{
	char key[TOP_NAME_MAX + 32];
	json_t *i;

	snprintf(key, sizeof(key), "g%lld:%s", w->generation, w->function);
	if ((i = json_object_get(idx, key)) == NULL) {
		snprintf(key, sizeof(key), "n:%s", w->function);
		i = json_object_get(idx, key);
	}
	return i != NULL ? &m->rows[json_integer_value(i)] : NULL;
}

static int
cmp_worker(const void *a, const void *b)
{
	const struct top_worker *x = a, *y = b;
	int c = strcmp(x->function, y->function);

	if (c != 0)
		return c;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : (x->pid > y->pid) - (x->pid < y->pid);
}

int
top_model_update(struct top_model *m, json_t *st, double now_s)
{
	json_t *fns = json_object_get(st, "functions"), *ws = json_object_get(st, "workers");
	json_t *sv = json_object_get(st, "supervisor"), *o, *idx;
	struct top_row *rows;
	struct top_worker *wk;
	double dt = m->prev != NULL && now_s > m->prev_t ? now_s - m->prev_t : 0;
	size_t i, nf, nw;

	if (!json_is_object(sv) || !json_is_array(fns) || !json_is_array(ws))
		return -1;
	nf = json_array_size(fns);
	nw = json_array_size(ws);
	rows = calloc(nf ? nf : 1, sizeof(*rows));
	wk = calloc(nw ? nw : 1, sizeof(*wk));
	idx = index_prev(dt > 0 ? m->prev : NULL);
	if (rows == NULL || wk == NULL || idx == NULL) {
		free(rows);
		free(wk);
		json_decref(idx);
		return -1;
	}
	free(m->rows);
	free(m->workers);
	m->rows = rows;
	m->nrows = nf;
	m->workers = wk;
	m->nworkers = nw;
	json_array_foreach(fns, i, o)
		fill_row(&rows[i], o, idx, dt);
	index_rows(idx, rows, nf);
	json_array_foreach(ws, i, o) {
		struct top_worker *w = &wk[i];
		json_t *t = json_object_get(o, "tasks"), *p = dt > 0 ? prev_worker(idx,
		    num(o, "pid")) : NULL;
		struct top_row *r;

		copy(w->function, sizeof(w->function), o, "function", "?");
		copy(w->state, sizeof(w->state), o, "state", "?");
		w->id = num(o, "id");
		w->pid = num(o, "pid");
		w->generation = num(o, "generation");
		w->uptime_ms = num(o, "uptime_ms");
		w->mem = (uint64_t)num(o, "memory_current");
		w->cpu_ms = num(o, "cpu_ms");
		w->requests = num(o, "requests");
		w->connections = num(o, "connections");
		w->tasks_pending = num(t, "pending");
		w->tasks_started = num(t, "started");
		/* cpu_ms over dt seconds: ms per s / 10 is percent of one core */
		w->cpu_pct = p != NULL ? rate(w->cpu_ms, num(p, "cpu_ms"), dt) / 10.0 : TOP_ABSENT;
		if ((r = row_of(m, idx, w)) != NULL) {
			r->mem += w->mem;
			if (r->cpu_pct != TOP_ABSENT && w->cpu_pct != TOP_ABSENT)
				r->cpu_pct += w->cpu_pct;
		}
	}
	json_decref(idx);
	qsort(wk, nw, sizeof(*wk), cmp_worker);
	m->pid = num(sv, "pid");
	m->generation = num(sv, "generation");
	m->uptime_ms = num(sv, "uptime_ms");
	copy(m->cgroups, sizeof(m->cgroups), sv, "cgroups", "?");
	m->stopping = json_is_true(json_object_get(sv, "stopping"));
	m->interval_s = dt;
	json_decref(m->prev);
	m->prev = json_incref(st);
	m->prev_t = now_s;
	top_model_sort(m, m->sort);
	return 0;
}

/* Larger first; an absent figure after every present one. */
static int
desc(double a, double b)
{
	return a > b ? -1 : a < b ? 1 : 0;
}

static int
cmp_row(const void *a, const void *b, void *arg)
{
	const struct top_row *x = a, *y = b;
	enum top_sort sort_by = *(const enum top_sort *)arg;
	int c = 0;

	switch (sort_by) {
	case TOP_SORT_RPS: c = desc(x->rps, y->rps); break;
	case TOP_SORT_P99: c = desc(x->p99_ms, y->p99_ms); break;
	case TOP_SORT_MEM: c = desc((double)x->mem, (double)y->mem); break;
	case TOP_SORT_CPU: c = desc(x->cpu_pct, y->cpu_pct); break;
	case TOP_SORT_NAME: break;
	}
	if (c == 0)
		c = strcmp(x->name, y->name);
	if (c == 0)     /* the current function before its removed namesake */
		c = (int)y->current - (int)x->current;
	return c;
}

void
top_model_sort(struct top_model *m, enum top_sort key)
{
	m->sort = key;
	qsort_r(m->rows, m->nrows, sizeof(*m->rows), cmp_row, &key);
}

size_t
top_model_workers_of(const struct top_model *m, const char *name,
    const struct top_worker **first)
{
	size_t i = 0, n = 0;

	while (i < m->nworkers && strcmp(m->workers[i].function, name) != 0)
		i++;
	while (i + n < m->nworkers && strcmp(m->workers[i + n].function, name) == 0)
		n++;
	*first = n ? &m->workers[i] : NULL;
	return n;
}

int
top_sort_key(int ch)
{
	switch (ch) {
	case 'n': return TOP_SORT_NAME;
	case 'r': return TOP_SORT_RPS;
	case 'p': return TOP_SORT_P99;
	case 'm': return TOP_SORT_MEM;
	case 'c': return TOP_SORT_CPU;
	default: return -1;
	}
}

const char *
top_sort_name(enum top_sort s)
{
	switch (s) {
	case TOP_SORT_RPS: return "req/s";
	case TOP_SORT_P99: return "p99";
	case TOP_SORT_MEM: return "memory";
	case TOP_SORT_CPU: return "cpu";
	case TOP_SORT_NAME: break;
	}
	return "name";
}
