/*
 * cgroup.h - the only module that knows about cgroups (and the only user of
 * libcgroup). The rest of the supervisor sees one tree, whatever the kernel has:
 *   <base>/supervisor        the supervisor itself (v2: a leaf, "no internal processes")
 *   <base>/<function>        the tenant's total caps
 *   <base>/<function>/w<ID>  one per worker
 * <base> is the supervisor's own cgroup plus cgroup_parent from the config. On v1
 * the same tree is built in the cpu, cpuacct, memory (and, if mounted, pids)
 * hierarchies; on v2 in the unified hierarchy (a delegated subtree under systemd).
 * Detected once, at cg_init.
 */
#ifndef SV_CGROUP_H
#define SV_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct event_base;

struct cg_stats {
	uint64_t memory_current;   /* bytes */
	uint64_t memory_peak;      /* bytes (v1 max_usage, v2 memory.peak if present) */
	uint64_t cpu_usage_us;
	uint64_t nr_throttled;
	uint64_t oom_kills;        /* v2 memory.events oom_kill; v1 oom_control oom_kill */
	uint64_t pids_current;     /* tasks (processes and threads); 0 without pids */
};

/*
 * Detects the hierarchy, builds <base> and <base>/supervisor, moves the supervisor
 * there and removes stale function cgroups of an earlier run. MODE off: returns 0,
 * disabled. auto: on failure returns 0, disabled, with the reason in ERR (the caller
 * warns once). required: on failure returns -1 with the reason in ERR.
 */
int cg_init(enum cg_mode mode, const char *parent, char *err, size_t errlen);
bool cg_enabled(void);
const char *cg_describe(void);     /* "v1", "v2" or "off" */

/*
 * A function asking for max_pids where there is no pids controller: in "required"
 * mode -1 with the reason in ERR (the config is refused); in "auto" one warning
 * per run and 0 (the cap is not enforced).
 */
int cg_check_function(const struct fn_conf *fn, char *err, size_t errlen);
/* cg_check_function for every function of CONF. */
int cg_check_conf(const struct sv_conf *conf, char *err, size_t errlen);

/* Creates or updates <base>/<fn> with the function-wide caps. */
int cg_function_setup(const struct fn_conf *fn);
/* Removes <base>/<fn> (after its workers' cgroups). */
int cg_function_remove(const char *fn);

/* Creates <base>/<fn>/w<id> with the per-worker caps; PATH gets its relative path. */
int cg_worker_create(const struct fn_conf *fn, uint32_t id, char *path, size_t pathlen);
/* Moves PID into the worker's cgroup (called before the worker execs). */
int cg_worker_attach(const char *fn, uint32_t id, pid_t pid);
/*
 * The absolute path of the one cgroup.procs file that lists every process of the
 * worker's cgroup (v2: the unified hierarchy; v1: the memory one), for the worker
 * itself to kill its strays with. 0, or -1 with errno (ENOENT: cgroups are off).
 */
int cg_worker_procs(const char *fn, uint32_t id, char *buf, size_t len);
/* The worker's memory, CPU and task counts. Thread-safe (stack buffers, the state
 * cg_init fixed): admin_render.c calls it off the loop. */
int cg_worker_stats(const char *fn, uint32_t id, struct cg_stats *out);
/* Kills every process left in the worker's cgroup (a tenant's stray children). */
int cg_worker_kill(const char *fn, uint32_t id);
/* Removes the worker's cgroup, killing what is left; see cg_set_base for when
 * this waits and when a busy cgroup is retried later. */
int cg_worker_remove(const char *fn, uint32_t id);

/*
 * A library check's cgroup, <base>/<fn>/check-<ID>, with the per-worker caps (and
 * <base>/<fn> with the function's if this is its first use). The check is moved
 * in before it execs (cg_check_attach, async-signal-safe like cg_worker_attach).
 */
int cg_check_create(const struct fn_conf *fn, uint32_t id);
int cg_check_attach(const char *fn, uint32_t id, pid_t pid);
/* Its cgroup.procs (see cg_worker_procs). */
int cg_check_procs(const char *fn, uint32_t id, char *buf, size_t len);
/* One round of SIGKILL to everything in it (cgroup.kill on v2 where present);
 * never waits. Returns how many processes it saw, or -1. */
int cg_check_kill(const char *fn, uint32_t id);
/* Removes it (see cg_worker_remove). */
int cg_check_remove(const char *fn, uint32_t id);

/*
 * The loop busy cgroups are removed from. With BASE set, nothing here waits on a
 * cgroup: cg_*_kill is one round of SIGKILL and cg_*_remove one attempt, a busy
 * cgroup retried from a timer on BASE (every 20 ms, given up and logged after
 * 2 s). Without it (before the loop, at exit, in unit tests) both wait, bounded, in
 * 10 ms rounds as they always did. cg_set_base(NULL), and cg_shutdown, finish what
 * is pending first. Returns 0, or -1 (no timer: stays without a base).
 */
int cg_set_base(struct event_base *base);

/* Removes everything below <base> this run created (at exit). */
void cg_shutdown(void);

#endif
