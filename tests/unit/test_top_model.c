/*
 * test_top_model.c - the rows of `edgevisorctl top` from two /status snapshots two
 * seconds apart: rates from the deltas (a counter that went down is 0, not
 * negative), CPU % from cpu_ms, memory summed with its cap, figures /status does not
 * carry absent, and each sort order; and the text lines of a frame show them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../ctl/top_model.h"
#include "../../ctl/top_text.h"
#include "unit.h"

/* One /status document: alpha (2 workers, per-worker caps, no latency object),
 * beta (function caps, latency and admission), gamma (its counters reset). */
static json_t *
snapshot(long long a_req, long long a_tasks, long long a1_cpu, long long a2_cpu,
    long long b_req, long long b_cpu, long long g_req, int with_new_worker)
{
	char doc[4096];
	json_error_t je;
	json_t *o;

	snprintf(doc, sizeof(doc),
	    "{\"supervisor\": {\"pid\": 42, \"generation\": 3, \"uptime_ms\": 5000,"
	    "  \"cgroups\": \"v1\", \"stopping\": false},"
	    " \"functions\": ["
	    "  {\"name\": \"gamma\", \"state\": \"ready\", \"current\": true, \"generation\": 3,"
	    "   \"workers\": 1, \"live_workers\": 1, \"states\": {\"ready\": 1},"
	    "   \"limits\": {}, \"scaling\": {\"queued\": 2, \"cold_starts\": 4},"
	    "   \"totals\": {\"requests\": %lld, \"tasks_started\": 0, \"tasks_lost\": 1}},"
	    "  {\"name\": \"alpha\", \"state\": \"ready\", \"current\": true, \"generation\": 1,"
	    "   \"workers\": 2, \"live_workers\": 2, \"states\": {\"ready\": 2, \"draining\": 0},"
	    "   \"limits\": {\"memory_mb\": 64, \"cpu_percent\": 50},"
	    "   \"scaling\": {\"queued\": 0, \"cold_starts\": 0},"
	    "   \"totals\": {\"requests\": %lld, \"tasks_started\": %lld, \"tasks_pending\": 3}},"
	    "  {\"name\": \"beta\", \"state\": \"ready\", \"current\": true, \"generation\": 2,"
	    "   \"workers\": 1, \"live_workers\": 2, \"states\": {\"draining\": 1, \"ready\": 1},"
	    "   \"limits\": {\"memory_mb\": 32, \"function_memory_mb\": 256,"
	    "     \"function_cpu_percent\": 150},"
	    "   \"latency\": {\"p50_ms\": 1.5, \"p99_ms\": 12.25},"
	    "   \"admission\": {\"queued\": 7}, \"scaling\": {\"queued\": 0},"
	    "   \"totals\": {\"requests\": %lld, \"tasks_started\": 4}}],"
	    " \"workers\": ["
	    "  {\"function\": \"beta\", \"id\": 1, \"pid\": 201, \"state\": \"ready\","
	    "   \"generation\": 2, \"memory_current\": 10485760, \"cpu_ms\": %lld,"
	    "   \"requests\": 9, \"tasks\": {\"pending\": 0, \"started\": 4}},"
	    "  {\"function\": \"alpha\", \"id\": 2, \"pid\": 102, \"state\": \"ready\","
	    "   \"generation\": 1, \"memory_current\": 2097152, \"cpu_ms\": %lld,"
	    "   \"requests\": 1, \"tasks\": {\"pending\": 1, \"started\": 2}},"
	    "  {\"function\": \"alpha\", \"id\": 1, \"pid\": 101, \"state\": \"ready\","
	    "   \"generation\": 1, \"memory_current\": 1048576, \"cpu_ms\": %lld,"
	    "   \"requests\": 2, \"tasks\": {\"pending\": 2, \"started\": 8}}%s]}",
	    g_req, a_req, a_tasks, b_req, b_cpu, a2_cpu, a1_cpu,
	    with_new_worker ?
	    ", {\"function\": \"gamma\", \"id\": 5, \"pid\": 305, \"state\": \"starting\","
	    "   \"generation\": 3, \"memory_current\": 4096, \"cpu_ms\": 500}" : "");
	if ((o = json_loads(doc, 0, &je)) == NULL)
		fprintf(stderr, "snapshot: %s at %d\n", je.text, je.position);
	return o;
}

static bool
near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static const struct top_row *
row(const struct top_model *m, const char *name)
{
	for (size_t i = 0; i < m->nrows; i++)
		if (strcmp(m->rows[i].name, name) == 0)
			return &m->rows[i];
	return NULL;
}

/* The row names in display order, "alpha,beta,gamma". */
static const char *
order(const struct top_model *m)
{
	static char buf[256];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < m->nrows; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? "," : "",
		    m->rows[i].name);
	return buf;
}

static void
case_rates(void)
{
	struct top_model m;
	json_t *s1 = snapshot(100, 0, 100, 0, 50, 1000, 500, 0);
	json_t *s2 = snapshot(300, 10, 300, 100, 60, 3000, 20, 1);
	const struct top_row *a, *b, *g;
	const struct top_worker *w;

	top_model_init(&m);
	UNIT_CHECK(s1 != NULL && s2 != NULL);
	UNIT_CHECK(top_model_update(&m, s1, 10.0) == 0);
	/* One snapshot: no rates yet. */
	UNIT_CHECK(m.nrows == 3 && m.interval_s == 0);
	a = row(&m, "alpha");
	UNIT_CHECK(a != NULL && a->rps == TOP_ABSENT && a->tasks_rate == TOP_ABSENT &&
	    a->cpu_pct == TOP_ABSENT);
	UNIT_CHECK(top_model_update(&m, s2, 12.0) == 0);
	UNIT_CHECK(near(m.interval_s, 2.0) && m.pid == 42 && m.generation == 3 &&
	    strcmp(m.cgroups, "v1") == 0);
	a = row(&m, "alpha");
	b = row(&m, "beta");
	g = row(&m, "gamma");
	UNIT_CHECK(a != NULL && b != NULL && g != NULL);
	UNIT_CHECKF(near(a->rps, 100) && near(a->tasks_rate, 5), "alpha rps %g tasks/s %g",
	    a->rps, a->tasks_rate);
	/* (200 + 100) ms of CPU over 2 s: 15% of one core. */
	UNIT_CHECKF(near(a->cpu_pct, 15), "alpha cpu %g", a->cpu_pct);
	UNIT_CHECK(a->mem == 3 * 1048576 && a->mem_cap == 64 * 1048576ull &&
	    a->mem_cap_per_worker && a->cpu_cap == 50 && a->cpu_cap_per_worker);
	UNIT_CHECK(a->p50_ms == TOP_ABSENT && a->p99_ms == TOP_ABSENT && near(a->queued, 0));
	UNIT_CHECKF(strcmp(a->states, "R2") == 0, "alpha states %s", a->states);
	UNIT_CHECK(a->tasks_pending == 3 && a->live == 2 && a->workers == 2);
	UNIT_CHECKF(near(b->rps, 5) && near(b->tasks_rate, 0) && near(b->cpu_pct, 100),
	    "beta rps %g tasks/s %g cpu %g", b->rps, b->tasks_rate, b->cpu_pct);
	UNIT_CHECK(near(b->p50_ms, 1.5) && near(b->p99_ms, 12.25));
	/* admission.queued wins over scaling.queued; function caps over worker caps. */
	UNIT_CHECK(near(b->queued, 7) && b->mem_cap == 256 * 1048576ull &&
	    !b->mem_cap_per_worker && b->cpu_cap == 150 && !b->cpu_cap_per_worker);
	UNIT_CHECKF(strcmp(b->states, "R1 D1") == 0, "beta states %s", b->states);
	/* A counter that went down (500 -> 20) is no negative rate. */
	UNIT_CHECKF(near(g->rps, 0), "gamma rps %g", g->rps);
	UNIT_CHECK(near(g->queued, 2) && g->cold_starts == 4 && g->lost == 1);
	/* Its worker is new: its memory counts, its CPU has no rate yet. */
	UNIT_CHECK(g->mem == 4096 && near(g->cpu_pct, 0));
	/* Drill-down: grouped by function, by id. */
	UNIT_CHECK(top_model_workers_of(&m, "alpha", &w) == 2);
	UNIT_CHECK(w[0].pid == 101 && w[1].pid == 102);
	UNIT_CHECKF(near(w[0].cpu_pct, 10) && near(w[1].cpu_pct, 5), "cpu %g %g",
	    w[0].cpu_pct, w[1].cpu_pct);
	UNIT_CHECK(w[0].tasks_pending == 2 && w[0].requests == 2);
	UNIT_CHECK(top_model_workers_of(&m, "gamma", &w) == 1 && w[0].cpu_pct == TOP_ABSENT);
	UNIT_CHECK(top_model_workers_of(&m, "nosuch", &w) == 0 && w == NULL);
out:
	top_model_free(&m);
	json_decref(s1);
	json_decref(s2);
}

static void
case_sort(void)
{
	struct top_model m;
	json_t *s1 = snapshot(100, 0, 100, 0, 50, 1000, 500, 0);
	json_t *s2 = snapshot(300, 10, 300, 100, 60, 3000, 20, 1);

	top_model_init(&m);
	UNIT_CHECK(s1 != NULL && s2 != NULL);
	UNIT_CHECK(top_model_update(&m, s1, 1.0) == 0 && top_model_update(&m, s2, 3.0) == 0);
	UNIT_CHECKF(strcmp(order(&m), "alpha,beta,gamma") == 0, "name: %s", order(&m));
	top_model_sort(&m, TOP_SORT_RPS);
	UNIT_CHECKF(strcmp(order(&m), "alpha,beta,gamma") == 0, "req/s: %s", order(&m));
	top_model_sort(&m, TOP_SORT_P99);
	/* Only beta has a p99; the absent ones follow by name. */
	UNIT_CHECKF(strcmp(order(&m), "beta,alpha,gamma") == 0, "p99: %s", order(&m));
	top_model_sort(&m, TOP_SORT_MEM);
	UNIT_CHECKF(strcmp(order(&m), "beta,alpha,gamma") == 0, "memory: %s", order(&m));
	top_model_sort(&m, TOP_SORT_CPU);
	UNIT_CHECKF(strcmp(order(&m), "beta,alpha,gamma") == 0, "cpu: %s", order(&m));
	/* The order is kept across updates (memory: not a rate, the same again). */
	top_model_sort(&m, TOP_SORT_MEM);
	UNIT_CHECK(top_model_update(&m, s2, 4.0) == 0);
	UNIT_CHECKF(m.sort == TOP_SORT_MEM && strcmp(order(&m), "beta,alpha,gamma") == 0,
	    "after an update: %s", order(&m));
	UNIT_CHECK(top_sort_key('r') == TOP_SORT_RPS && top_sort_key('p') == TOP_SORT_P99 &&
	    top_sort_key('m') == TOP_SORT_MEM && top_sort_key('n') == TOP_SORT_NAME &&
	    top_sort_key('c') == TOP_SORT_CPU && top_sort_key('x') == -1);
out:
	top_model_free(&m);
	json_decref(s1);
	json_decref(s2);
}

static void
case_not_status(void)
{
	struct top_model m;
	json_t *s1 = snapshot(100, 0, 100, 0, 50, 1000, 500, 0), *bad = json_object();

	top_model_init(&m);
	UNIT_CHECK(s1 != NULL && top_model_update(&m, s1, 1.0) == 0);
	json_object_set_new(bad, "functions", json_string("no"));
	UNIT_CHECK(top_model_update(&m, bad, 2.0) == -1);
	/* Unchanged: the rows and the base of the next rates. */
	UNIT_CHECK(m.nrows == 3 && m.prev == s1 && m.prev_t == 1.0);
out:
	top_model_free(&m);
	json_decref(s1);
	json_decref(bad);
}

/* A rolled function: its removed generation still drains beside the current one;
 * each worker counts in the row of its generation, an unknown one in the current. */
static void
case_namesakes(void)
{
	static const char doc[] =
	    "{\"supervisor\": {}, \"functions\": ["
	    " {\"name\": \"alpha\", \"current\": false, \"generation\": 1},"
	    " {\"name\": \"alpha\", \"current\": true, \"generation\": 2}],"
	    " \"workers\": ["
	    " {\"function\": \"alpha\", \"id\": 1, \"pid\": 11, \"generation\": 1,"
	    "  \"memory_current\": 1000},"
	    " {\"function\": \"alpha\", \"id\": 2, \"pid\": 12, \"generation\": 2,"
	    "  \"memory_current\": 20000},"
	    " {\"function\": \"alpha\", \"id\": 3, \"pid\": 13, \"generation\": 7,"
	    "  \"memory_current\": 300000}]}";
	struct top_model m;
	json_t *st = json_loads(doc, 0, NULL);

	top_model_init(&m);
	UNIT_CHECK(st != NULL && top_model_update(&m, st, 1.0) == 0 && m.nrows == 2);
	/* By name: the current one first. */
	UNIT_CHECK(m.rows[0].current && !m.rows[1].current);
	UNIT_CHECKF(m.rows[0].mem == 320000 && m.rows[1].mem == 1000, "mem %llu %llu",
	    (unsigned long long)m.rows[0].mem, (unsigned long long)m.rows[1].mem);
out:
	top_model_free(&m);
	json_decref(st);
}

/* The whitespace-separated words of LINE, in WORDS[0..n). */
static int
words(char *line, char **w, int max)
{
	int n = 0;

	for (char *t = strtok(line, " "); t != NULL && n < max; t = strtok(NULL, " "))
		w[n++] = t;
	return n;
}

static void
case_text(void)
{
	struct top_model m;
	json_t *s1 = snapshot(100, 0, 100, 0, 50, 1000, 500, 0);
	json_t *s2 = snapshot(300, 10, 300, 100, 60, 3000, 20, 1);
	char line[TOP_LINE_MAX], *w[32], *frame = NULL;
	size_t flen = 0;
	FILE *f = NULL;
	int n;

	top_model_init(&m);
	UNIT_CHECK(s1 != NULL && s2 != NULL);
	UNIT_CHECK(top_model_update(&m, s1, 1.0) == 0 && top_model_update(&m, s2, 3.0) == 0);
	/* Header: FUNCTION STATE GEN WORKERS STATES REQ/S P50ms P99ms TASKS TASK/S LOST
	 * COLD QUEUED MEM MEMCAP CPU CPUCAP; beta's states "R1 D1" are two words. */
	top_line_row(line, sizeof(line), row(&m, "beta"), top_name_width(&m), true);
	UNIT_CHECKF(line[0] == '>', "%s", line);
	n = words(line + 1, w, 32);
	UNIT_CHECKF(n == 18, "%d words: %s", n, line);
	UNIT_CHECKF(strcmp(w[0], "beta") == 0 && strcmp(w[3], "2/1") == 0 &&
	    strcmp(w[4], "R1") == 0 && strcmp(w[5], "D1") == 0 && strcmp(w[6], "5.0") == 0 &&
	    strcmp(w[7], "1.50") == 0 && strcmp(w[8], "12.2") == 0 && strcmp(w[13], "7") == 0 &&
	    strcmp(w[15], "256.0M") == 0 && strcmp(w[16], "100.0%") == 0 &&
	    strcmp(w[17], "150%") == 0, "beta: %s", line);
	top_line_row(line, sizeof(line), row(&m, "alpha"), top_name_width(&m), false);
	UNIT_CHECKF(line[0] == ' ', "%s", line);
	n = words(line, w, 32);
	UNIT_CHECKF(n == 17 && strcmp(w[5], "100") == 0 && strcmp(w[6], "-") == 0 &&
	    strcmp(w[7], "-") == 0 && strcmp(w[9], "5.0") == 0 && strcmp(w[14], "64.0M/w") == 0 &&
	    strcmp(w[15], "15.0%") == 0 && strcmp(w[16], "50%/w") == 0, "alpha: %s", line);
	/* A plain frame: the supervisor line, every function and every worker. */
	UNIT_CHECK((f = open_memstream(&frame, &flen)) != NULL);
	top_text_print(f, &m);
	fclose(f);
	f = NULL;
	UNIT_CHECKF(strncmp(frame, "edgevisor pid 42  generation 3", 30) == 0, "%s", frame);
	UNIT_CHECK(strstr(frame, " 101 ") && strstr(frame, " 102 ") && strstr(frame, " 201 ") &&
	    strstr(frame, " 305 ") && strstr(frame, "gamma"));
out:
	if (f != NULL)
		fclose(f);
	free(frame);
	top_model_free(&m);
	json_decref(s1);
	json_decref(s2);
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("rates", case_rates);
	unit_run("sort", case_sort);
	unit_run("not_status", case_not_status);
	unit_run("namesakes", case_namesakes);
	unit_run("text", case_text);
	return unit_exit();
}
