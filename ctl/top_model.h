/*
 * top_model.h - the rows of `edgevisorctl top`, computed from /status documents:
 * no I/O, no terminal, so tests/unit/test_top_model.c can feed it two snapshots.
 *
 * Rates (req/s, tasks/s, CPU %) are deltas between the previous document and this
 * one over the time between them; a counter that went down (a function re-created)
 * counts as 0 for that interval. A figure /status does not carry is TOP_ABSENT and
 * is shown as "-": rates before a second snapshot, latency without the "latency"
 * object, queued without "admission" or "scaling".
 */
#ifndef EV_CTL_TOP_MODEL_H
#define EV_CTL_TOP_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define TOP_ABSENT (-1.0)
#define TOP_NAME_MAX 64

enum top_sort { TOP_SORT_NAME, TOP_SORT_RPS, TOP_SORT_P99, TOP_SORT_MEM, TOP_SORT_CPU };

struct top_row {
	char name[TOP_NAME_MAX + 1];
	char state[16];             /* cold, warming, ready, failed */
	bool current;               /* false: removed from the config, draining */
	long long generation;
	long long live, workers;    /* live workers / the configured size */
	char states[64];            /* workers by state: "R2 D1" (see top_model.c) */
	long long requests;
	double rps;
	double p50_ms, p99_ms;
	long long tasks_pending;
	double tasks_rate;          /* tasks started per second */
	long long lost, cold_starts;
	double queued;              /* admission.queued, else scaling.queued */
	uint64_t mem;               /* memory_current summed over its workers */
	uint64_t mem_cap;           /* bytes, 0: none */
	bool mem_cap_per_worker;    /* memory_mb (each worker), not function_memory_mb */
	double cpu_pct;             /* of one core, summed over its workers */
	long long cpu_cap;          /* percent, 0: none */
	bool cpu_cap_per_worker;
};

struct top_worker {
	char function[TOP_NAME_MAX + 1];
	char state[16];
	long long id, pid, generation, uptime_ms;
	uint64_t mem;
	double cpu_pct;
	long long cpu_ms, requests, connections, tasks_pending, tasks_started;
};

struct top_model {
	struct top_row *rows;
	size_t nrows;
	struct top_worker *workers; /* grouped by function name, then id */
	size_t nworkers;
	enum top_sort sort;
	double interval_s;          /* between the last two snapshots; 0: only one */
	/* the supervisor line */
	long long pid, generation, uptime_ms;
	char cgroups[16];
	bool stopping;
	/* private: the previous snapshot */
	json_t *prev;
	double prev_t;
};

void top_model_init(struct top_model *m);
void top_model_free(struct top_model *m);
/* Recomputes the rows from ST, a /status document taken at NOW_S (a monotonic clock,
 * seconds); keeps a reference to ST for the next rates. 0, or -1 if ST is not a
 * /status document (the model is unchanged). */
int top_model_update(struct top_model *m, json_t *st, double now_s);
void top_model_sort(struct top_model *m, enum top_sort key);
/* The workers of function NAME: *FIRST and their count (0: none). */
size_t top_model_workers_of(const struct top_model *m, const char *name,
    const struct top_worker **first);
/* The sort for a key of the help line ('n', 'r', 'p', 'm', 'c'), -1 for another. */
int top_sort_key(int ch);
const char *top_sort_name(enum top_sort s);

#endif
