/*
 * limits.c - four times a second, every live worker's CPU time, memory and age are
 * compared with its function's limits. Crossing soft_limit_percent (90% by default)
 * retires it with that reason (a replacement starts first); crossing the limit
 * terminates it. Measured here, from outside, so a worker whose loop is stuck in a
 * hog still meets its limit. A worker that stopped reading its hand-offs and making
 * progress for longer than request_timeout_ms is hung (SIGSTOP, a spinning handler):
 * it is terminated and replaced.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/sockios.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "cgroup.h"
#include "evq.h"
#include "limits.h"
#include "pool.h"

#define LIMITS_PERIOD_MS 250

static struct event *limits_ev;
static long clk_tck;
static long page_kb;

/* utime+stime of PID in ms and its RSS in KiB, from /proc/PID/stat. */
int
proc_usage(pid_t pid, uint64_t *cpu_ms, uint64_t *rss_kb)
{
	char path[64], buf[1024], *p;
	unsigned long utime, stime;
	long rss;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces: fields are counted after its ')'. */
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
	    &utime, &stime, &rss) != 3)
		return -1;
	*cpu_ms = (uint64_t)(utime + stime) * 1000 / (uint64_t)clk_tck;
	*rss_kb = (uint64_t)rss * (uint64_t)page_kb;
	return 0;
}

/*
 * Soft: retire with REASON (once); hard: terminate with REASON. A worker still
 * ready when it is seen past the hard limit jumped the soft band between two looks
 * (it is narrower than LIMITS_PERIOD_MS for small limits): it is retired first like
 * any other, so connections already handed to it are answered, and the hard limit
 * applies at the next look if it has not drained by then.
 */
static void
act(struct worker *w, uint32_t reason, uint64_t used, uint64_t limit, const char *unit)
{
	uint32_t soft_pct = w->w_conf->limits.soft_limit_percent;

	if (used >= limit && w->w_state != WS_READY) {
		if (w->w_state != WS_TERMINATING) {
			log_info("limit_hard", "fn=%s wid=%u pid=%d reason=%s used=%llu limit=%llu unit=%s",
			    w->w_conf->name, w->w_id, (int)w->w_pid, wire_reason_name(reason),
			    (unsigned long long)used, (unsigned long long)limit, unit);
			worker_event(w, WE_LIMIT_HARD, reason);
		}
	} else if (used * 100 >= limit * soft_pct && w->w_state == WS_READY) {
		log_info("limit_soft", "fn=%s wid=%u pid=%d reason=%s used=%llu limit=%llu unit=%s",
		    w->w_conf->name, w->w_id, (int)w->w_pid, wire_reason_name(reason),
		    (unsigned long long)used, (unsigned long long)limit, unit);
		/* The table asks for a replacement before this one drains. */
		worker_event(w, WE_LIMIT_SOFT, reason);
	}
}

/*
 * Hung: hand-offs sit unread in its ctl socket (SIOCOUTQ: bytes the peer has not
 * consumed) and neither its requests nor its closed connections moved, for longer
 * than request_timeout_ms - a live loop reads its ctl socket at once, and would have
 * answered 504 by then. Idle keep-alive or silent clients never trigger it: those
 * connections were read. Returns true when W was terminated.
 */
static bool
check_hung(struct worker *w, uint64_t now)
{
	uint32_t timeout = w->w_conf->limits.request_timeout_ms;
	uint64_t req = BOARD_LOAD(&w->w_board->requests);
	uint64_t closed = BOARD_LOAD(&w->w_board->conns_closed);
	int queued = 0;

	if (req != w->w_prog_requests || closed != w->w_prog_closed ||
	    ioctl(w->w_ctl, SIOCOUTQ, &queued) < 0 || queued <= 0) {
		w->w_prog_requests = req;
		w->w_prog_closed = closed;
		w->w_stall_ms = 0;
		return false;
	}
	if (w->w_stall_ms == 0) {
		w->w_stall_ms = now;
		return false;
	}
	if (timeout == 0 || now - w->w_stall_ms <= timeout)
		return false;
	log_warn("worker_hung", "fn=%s wid=%u pid=%d stalled_ms=%llu queued_bytes=%d load=%llu requests=%llu",
	    w->w_conf->name, w->w_id, (int)w->w_pid,
	    (unsigned long long)(now - w->w_stall_ms), queued,
	    (unsigned long long)worker_load(w), (unsigned long long)req);
	/* Capacity first, then the usual way out: SIGTERM, SIGKILL after the grace. */
	if (!w->w_replaced) {
		w->w_replaced = true;
		evq_push(EVQ_POOL_FILL, w->w_pool, NULL, 0);
	}
	worker_terminate(w, WIRE_REASON_TERMINATION);
	/* A stopped worker would sit on its SIGTERM: let it run its hooks and go. */
	kill(w->w_pid, SIGCONT);
	return true;
}

static void
check_worker(struct worker *w, uint64_t now)
{
	const struct fn_limits *l = &w->w_conf->limits;
	uint64_t cpu_ms = 0, rss_kb = 0, mem, req;
	struct cg_stats cs;
	struct pool_counts c;

	if (w->w_state != WS_READY && w->w_state != WS_DRAINING)
		return;
	/* Only a worker with hand-offs outstanding can be hung (its load counts them). */
	if (w->w_state == WS_READY && worker_load(w) > 0 && check_hung(w, now))
		return;
	if (l->wall_clock_ms)
		act(w, WIRE_REASON_WALL_CLOCK, now - w->w_spawned_ms, l->wall_clock_ms, "ms");
	/* /proc only when a limit needs it: a thousand idle workers cost no reads. */
	if ((l->cpu_time_ms || l->memory_mb) && worker_is_live(w) &&
	    proc_usage(w->w_pid, &cpu_ms, &rss_kb) == 0) {
		w->w_cpu_ms = cpu_ms;
		w->w_rss_kb = rss_kb;
		if (l->cpu_time_ms)
			act(w, WIRE_REASON_CPU, cpu_ms, l->cpu_time_ms, "ms");
	}
	if (l->memory_mb && worker_is_live(w) && rss_kb) {
		/* The cgroup's count includes what the kernel charges the tenant (page cache,
		 * its children); without cgroups RSS is the best we have. The hard limit with
		 * cgroups is the kernel's OOM kill, detected at exit. */
		mem = rss_kb * 1024;
		if (w->w_cgroup[0] && cg_worker_stats(w->w_conf->name, w->w_id, &cs) == 0)
			mem = cs.memory_current;
		if (w->w_cgroup[0] && mem >= (uint64_t)l->memory_mb << 20)
			mem = ((uint64_t)l->memory_mb << 20) - 1;
		act(w, WIRE_REASON_MEMORY, mem >> 10, (uint64_t)l->memory_mb << 10, "KiB");
	}
	/* Idle = no connection, no task, and no request since the last look. */
	req = BOARD_LOAD(&w->w_board->requests);
	if (worker_load(w) > 0 || BOARD_LOAD(&w->w_board->tasks_pending) > 0 ||
	    req != w->w_idle_requests || w->w_idle_since_ms == 0) {
		w->w_idle_requests = req;
		w->w_idle_since_ms = now;
	}
	if (w->w_state != WS_READY || w->w_replaced || w->w_used)
		return;
	/* Above its floor and idle long enough: the pool shrinks by this one. A worker
	 * with a pending task is never idle, so no background work is cut for it. */
	if (w->w_conf->max_workers > w->w_conf->min_workers &&
	    now - w->w_idle_since_ms >= w->w_conf->scale_idle_ms) {
		pool_count(w->w_pool, &c);
		if (c.ready > w->w_conf->min_workers) {
			pool_scaled_down(w);
			return;
		}
	}
	if (l->idle_worker_ms && now - w->w_idle_since_ms >= l->idle_worker_ms) {
		/* Idle and past its idle time: drop it early (a fresh one keeps the pool). */
		w->w_replaced = true;
		worker_retire(w, WIRE_REASON_EARLY_DROP);
		evq_push(EVQ_POOL_FILL, w->w_pool, NULL, 0);
	}
}

static void
limits_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pool *p;
	struct worker *w, *tmp;
	uint64_t now = clock_ms();

	TAILQ_FOREACH(p, &pools, p_entry)
		TAILQ_FOREACH_SAFE(w, &p->p_workers, w_entry, tmp)
			check_worker(w, now);
}

void
limits_start(struct event_base *base)
{
	struct timeval tv = { 0, LIMITS_PERIOD_MS * 1000 };

	clk_tck = sysconf(_SC_CLK_TCK);
	page_kb = sysconf(_SC_PAGESIZE) / 1024;
	limits_ev = event_new(base, -1, EV_PERSIST, limits_cb, NULL);
	if (limits_ev != NULL)
		event_add(limits_ev, &tv);
}

void
limits_stop(void)
{
	if (limits_ev != NULL)
		event_free(limits_ev);
	limits_ev = NULL;
}
