/*
 * totals.h - a function's record that outlives its workers and its config
 * generations: its counters (lifecycle.c adds a reaped worker's figures) and the
 * list of its live pools (pool.c keeps one record per function name, found by name
 * in O(log n), so nothing per function scans every pool).
 */
#ifndef SV_TOTALS_H
#define SV_TOTALS_H

#include <stdint.h>

#include "../common/hist.h"
#include "../common/list.h"
#include "../common/wire.h"

#define TOTALS_COLD_BUCKETS 12

struct pool;

struct fn_totals {
	TAILQ_ENTRY(fn_totals) t_entry;
	char name[64];
	TAILQ_HEAD(, pool) t_pools;  /* its live pools, every generation (pool.p_fn_entry) */
	uint32_t next_wid;          /* worker ids are unique per function, all generations */
	uint64_t requests;
	uint64_t tasks_started;
	uint64_t tasks_completed;
	uint64_t tasks_failed;
	uint64_t tasks_lost;
	uint64_t crashes;
	uint64_t unloads[WIRE_REASON_MAX];
	/* On-demand pools: connections that waited for a worker to start (a cold start),
	 * how long they waited (accepted -> handed over) by bucket, and pool resizes. */
	uint64_t cold_starts;
	uint64_t cold_ms_sum;
	uint64_t cold_hist[TOTALS_COLD_BUCKETS + 1]; /* the last one: above the largest bound */
	uint64_t scale_ups;
	uint64_t scale_downs;
	/* Request and task durations the gone workers measured (their boards'). */
	struct hist req_hist;
	struct hist task_hist;
	/* Admission (max_concurrency): connections that waited in its queue, how long
	 * (accepted -> handed over, same buckets as cold starts), and 503s for overload
	 * (queue full, or waited past queue_timeout_ms). */
	uint64_t queue_waits;
	uint64_t queue_ms_sum;
	uint64_t queue_hist[TOTALS_COLD_BUCKETS + 1];
	uint64_t rejected_overload;
	uint64_t overload_log_ms;   /* its last ev=admission_overload line */
	uint64_t overload_logged;   /* rejected_overload as of that line */
};

/* Upper bounds (ms) of the cold-start histogram's buckets. */
static const uint32_t totals_cold_bounds[TOTALS_COLD_BUCKETS] = {
	1, 2, 3, 5, 10, 25, 50, 100, 250, 1000, 2500, 10000,
};

static inline void
totals_cold_start(struct fn_totals *t, uint64_t ms)
{
	unsigned i = 0;

	while (i < TOTALS_COLD_BUCKETS && ms > totals_cold_bounds[i])
		i++;
	t->cold_hist[i]++;
	t->cold_starts++;
	t->cold_ms_sum += ms;
}

static inline void
totals_queue_wait(struct fn_totals *t, uint64_t ms)
{
	unsigned i = 0;

	while (i < TOTALS_COLD_BUCKETS && ms > totals_cold_bounds[i])
		i++;
	t->queue_hist[i]++;
	t->queue_waits++;
	t->queue_ms_sum += ms;
}

#endif
