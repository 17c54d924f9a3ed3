/*
 * limits.h - the periodic look at every live worker (limits.c): CPU time, memory and
 * age against its function's limits, hung workers, idle workers. It acts through the
 * state machine (lifecycle.h), which asks for replacements itself.
 */
#ifndef SV_LIMITS_H
#define SV_LIMITS_H

#include <stdint.h>
#include <sys/types.h>

struct event_base;

void limits_start(struct event_base *base);
void limits_stop(void);
/* PID's CPU time (utime + stime, ms) and RSS (KiB) from /proc/PID/stat. 0 or -1.
 * Thread-safe once limits_start ran (admin_render.c calls it off the loop). */
int proc_usage(pid_t pid, uint64_t *cpu_ms, uint64_t *rss_kb);

#endif
