/*
 * admin_snap.h - what /status and /metrics show, copied out of the running
 * supervisor on its loop (admin_snap.c) and rendered on a thread of its own
 * (admin_render.c, admin_job.c).
 *
 * A snapshot owns everything it holds: strings are copied, nothing points at a
 * worker, pool, scoreboard or config (a reload or a reaped worker frees those while
 * the thread works). The only pointers to shared memory are string literals
 * (policy and cgroup-version names). Taking one reads memory only: the loop's
 * counters, the function totals and the live workers' scoreboards, never a file.
 * The /proc and cgroup figures of each worker are read later, on the render thread,
 * into the fields marked "measured".
 */
#ifndef SV_ADMIN_SNAP_H
#define SV_ADMIN_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/board.h"
#include "../common/hist.h"
#include "../common/wire.h"
#include "config.h"
#include "lifecycle.h"
#include "totals.h"

/* One function: its configuration (copied) and its totals over every generation. */
struct snap_fn {
	char *name;
	const char *policy;         /* config_policy_name: a literal */
	char *library;
	char **listen;
	size_t nlisten;
	uint32_t workers, min_workers, max_workers;
	uint32_t max_concurrency, max_queued, queue_timeout_ms;
	uint32_t durable_backend;   /* enum fn_durable_backend */
	struct fn_limits limits;
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

/* One live worker. */
struct snap_worker {
	char function[64];          /* its function's name (names are at most 32) */
	uint32_t id, gen;
	pid_t pid;
	enum wstate state;
	uint64_t uptime_ms;
	uint32_t max_requests;
	char cgroup[256];           /* "" when cgroups are off */
	uint64_t requests, conns;
	uint64_t started, completed, failed, pending;
	uint64_t seccomp_denied;
	bool has_oldest;
	char oldest_name[BOARD_TASK_NAME + 1];
	uint64_t oldest_age_ms;
	uint32_t reason;            /* enum wire_reason, NONE if it is not leaving */
	bool has_board;
	/* Measured on the render thread (admin_render_measure). */
	uint64_t mem_current;
	uint64_t mem_peak;          /* 0 = unknown (no cgroup) */
	const char *mem_source;     /* "cgroup" or "rss" */
	uint64_t pids;              /* tasks in its cgroup, 0 = unknown (no pids controller) */
	uint64_t cpu_ms;
};

struct admin_snap {
	uint64_t now_ms;            /* clock_ms() when it was taken */
	pid_t pid;
	uint64_t uptime_ms;
	uint32_t gen, ready_gen;
	char *config;
	const char *cgroups;        /* cg_describe: a literal */
	char *admin, *metrics;      /* the listeners' addresses, NULL = none */
	bool stopping;
	unsigned live_workers;
	uint32_t failed_gen;
	char *failed_why;           /* NULL unless failed_gen */
	const char *health;         /* what /health answers: a literal */
	uint64_t health_drain_left_ms;
	struct snap_fn *fns;        /* the config's functions, then draining-only ones */
	size_t nfns;
	struct snap_worker *workers; /* in the order of the pool list */
	size_t nworkers;
};

/*
 * On the loop: the snapshot of now. ADMIN and METRICS are the listeners' addresses
 * ("" = none), HEALTH what /health answers. NULL when out of memory.
 */
struct admin_snap *admin_snap_take(const char *admin, const char *metrics, const char *health);
/* Frees SNAP (any thread: it shares nothing). NULL is a no-op. */
void admin_snap_free(struct admin_snap *snap);

#endif
