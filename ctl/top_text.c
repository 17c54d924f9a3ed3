/*
 * top_text.c - the lines of a `edgevisorctl top` frame, formatted once here for both
 * the ncurses screen (top_view.c) and the plain-text frames of --once/--batch
 * (top_text_print). Pure: no terminal, no I/O but the FILE it is given.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "top_text.h"
#include "units.h"

#define NAME_MIN 8
#define NAME_MAX_ 32

const char top_help_table[] =
    "q quit  sort: n name  r req/s  p p99  m memory  c cpu  Up/Down select  "
    "Enter workers";
const char top_help_workers[] = "Esc/Left back  q quit";

static const char *
fmt_rate(double v, char *buf, size_t len)
{
	if (v == TOP_ABSENT)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, v < 10 ? "%.1f" : "%.0f", v);
	return buf;
}

static const char *
fmt_latency(double ms, char *buf, size_t len)
{
	if (ms == TOP_ABSENT)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, ms < 10 ? "%.2f" : ms < 100 ? "%.1f" : "%.0f", ms);
	return buf;
}

static const char *
fmt_pct(double v, char *buf, size_t len)
{
	if (v == TOP_ABSENT)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f%%", v);
	return buf;
}

static const char *
fmt_mem_cap(const struct top_row *r, char *buf, size_t len)
{
	char b[32];

	if (r->mem_cap == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%s%s", fmt_bytes(r->mem_cap, b, sizeof(b)),
		    r->mem_cap_per_worker ? "/w" : "");
	return buf;
}

static const char *
fmt_cpu_cap(const struct top_row *r, char *buf, size_t len)
{
	if (r->cpu_cap == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%lld%%%s", r->cpu_cap, r->cpu_cap_per_worker ? "/w" : "");
	return buf;
}

/* The width of the name column: the longest name, within NAME_MIN..NAME_MAX_. */
int
top_name_width(const struct top_model *m)
{
	int w = NAME_MIN;

	for (size_t i = 0; i < m->nrows; i++) {
		int n = (int)strlen(m->rows[i].name) + (m->rows[i].current ? 0 : 1);

		if (n > w)
			w = n;
	}
	return w > NAME_MAX_ ? NAME_MAX_ : w;
}

void
top_line_supervisor(char *buf, size_t len, const struct top_model *m)
{
	char up[32], clock[16];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
	snprintf(buf, len, "edgevisor pid %lld  generation %lld  up %s  cgroups %s  "
	    "functions %zu  workers %zu  %s  sort %s%s", m->pid, m->generation,
	    fmt_ms((uint64_t)m->uptime_ms, up, sizeof(up)), m->cgroups, m->nrows,
	    m->nworkers, clock, top_sort_name(m->sort), m->stopping ? "  (stopping)" : "");
}

void
top_line_columns(char *buf, size_t len, int nw)
{
	snprintf(buf, len, "  %-*s %-7s %4s %7s %-10s %8s %7s %7s %6s %7s %5s %5s %6s %8s "
	    "%8s %7s %7s", nw, "FUNCTION", "STATE", "GEN", "WORKERS", "STATES", "REQ/S",
	    "P50ms", "P99ms", "TASKS", "TASK/S", "LOST", "COLD", "QUEUED", "MEM", "MEMCAP",
	    "CPU", "CPUCAP");
}

void
top_line_row(char *buf, size_t len, const struct top_row *r, int nw, bool selected)
{
	char name[TOP_NAME_MAX + 2], ws[48], rps[24], p50[24], p99[24], tps[24], q[24];
	char mem[24], mcap[32], cpu[24], ccap[32];

	/* A removed function, still draining, is marked with a trailing '*'. */
	snprintf(name, sizeof(name), "%s%s", r->name, r->current ? "" : "*");
	snprintf(ws, sizeof(ws), "%lld/%lld", r->live, r->workers);
	if (r->queued == TOP_ABSENT)
		snprintf(q, sizeof(q), "-");
	else
		snprintf(q, sizeof(q), "%.0f", r->queued);
	snprintf(buf, len, "%c %-*.*s %-7s %4lld %7s %-10.10s %8s %7s %7s %6lld %7s %5lld "
	    "%5lld %6s %8s %8s %7s %7s", selected ? '>' : ' ', nw, nw, name, r->state,
	    r->generation, ws, r->states, fmt_rate(r->rps, rps, sizeof(rps)),
	    fmt_latency(r->p50_ms, p50, sizeof(p50)), fmt_latency(r->p99_ms, p99, sizeof(p99)),
	    r->tasks_pending, fmt_rate(r->tasks_rate, tps, sizeof(tps)), r->lost,
	    r->cold_starts, q, fmt_bytes(r->mem, mem, sizeof(mem)),
	    fmt_mem_cap(r, mcap, sizeof(mcap)), fmt_pct(r->cpu_pct, cpu, sizeof(cpu)),
	    fmt_cpu_cap(r, ccap, sizeof(ccap)));
}

void
top_line_worker_columns(char *buf, size_t len, int nw)
{
	snprintf(buf, len, "  %-*s %4s %8s %-11s %4s %8s %8s %7s %9s %8s %6s %12s", nw,
	    "FUNCTION", "ID", "PID", "STATE", "GEN", "UPTIME", "MEM", "CPU", "CPU TIME",
	    "REQS", "CONNS", "TASKS PEND/ST");
}

void
top_line_worker(char *buf, size_t len, const struct top_worker *w, int nw)
{
	char up[32], mem[24], cpu[24], ct[32], tasks[48];

	snprintf(tasks, sizeof(tasks), "%lld/%lld", w->tasks_pending, w->tasks_started);
	snprintf(buf, len, "  %-*.*s %4lld %8lld %-11s %4lld %8s %8s %7s %9s %8lld %6lld %12s",
	    nw, nw, w->function, w->id, w->pid, w->state, w->generation,
	    fmt_ms((uint64_t)w->uptime_ms, up, sizeof(up)), fmt_bytes(w->mem, mem, sizeof(mem)),
	    fmt_pct(w->cpu_pct, cpu, sizeof(cpu)), fmt_ms((uint64_t)w->cpu_ms, ct, sizeof(ct)),
	    w->requests, w->connections, tasks);
}

void
top_text_print(FILE *f, const struct top_model *m)
{
	char line[TOP_LINE_MAX];
	int nw = top_name_width(m);

	top_line_supervisor(line, sizeof(line), m);
	fprintf(f, "%s\n\n", line);
	top_line_columns(line, sizeof(line), nw);
	fprintf(f, "%s\n", line);
	for (size_t i = 0; i < m->nrows; i++) {
		top_line_row(line, sizeof(line), &m->rows[i], nw, false);
		fprintf(f, "%s\n", line);
	}
	fputc('\n', f);
	top_line_worker_columns(line, sizeof(line), nw);
	fprintf(f, "%s\n", line);
	for (size_t i = 0; i < m->nworkers; i++) {
		top_line_worker(line, sizeof(line), &m->workers[i], nw);
		fprintf(f, "%s\n", line);
	}
	fputc('\n', f);
	fflush(f);
}
