/*
 * pool.c - pools of workers (see pool.h): their list, their size, the paced spawner,
 * respawn backoff, and the function totals that outlive workers and generations.
 */
#include "pool.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/name_index.h"
#include "cgroup.h"
#include "spawn.h"

/* Crashes before ready in a row after which the function is marked failed. */
#define POOL_FAIL_STREAK 8
/* Spawns per loop turn: one, so accepts run between any two. A spawn waits for the
 * child's set-up up to its exec (child_spawn), ~0.1 ms, but milliseconds when the
 * child waits for a CPU; four a turn held every tenant's accepts up to ~17 ms. */
#define SPAWN_BURST 1
/*
 * Start slots: at most START_SLOTS_PER_CPU x the CPUs we may run on of workers
 * starting at once. A worker holds its slot until it is ready or gone, or for
 * START_SLOT_MS at most (an init that sleeps is not taking a CPU). A reload that
 * starts 500 workers then queues them here instead of making 60 exec'ing,
 * initialising workers share two cores with the tenants that serve (and with this
 * loop's own children). A spawn a held connection waits for takes no slot's turn:
 * a cold start is never queued behind a reload.
 */
#define START_SLOTS_PER_CPU 2
#define START_SLOT_MS       50

struct pool_list pools = TAILQ_HEAD_INITIALIZER(pools);
struct pool_list pools_waiting = TAILQ_HEAD_INITIALIZER(pools_waiting);
static TAILQ_HEAD(, fn_totals) totals_list = TAILQ_HEAD_INITIALIZER(totals_list);
static struct name_index totals_ix = NAME_INDEX_INIT;  /* name -> its fn_totals */
static TAILQ_HEAD(, pool) fill_queue = TAILQ_HEAD_INITIALIZER(fill_queue);
static struct event_base *pool_base;
static struct event *pump_ev;
static TAILQ_HEAD(, pool) retire_queue = TAILQ_HEAD_INITIALIZER(retire_queue);
static struct event *retire_ev;
static TAILQ_HEAD(, worker) slots = TAILQ_HEAD_INITIALIZER(slots);  /* oldest first */
static unsigned nslots, slots_max;

/* Workers told to drain per RETIRE_PACE_US by a retirement (pool_retire): a
 * retiring worker wakes, runs its beforeunload hooks and exits, and 500 doing that at
 * once took both cores from the workers that serve. */
#define RETIRE_BURST   8
#define RETIRE_PACE_US 4000

static void spawn_later_cb(evutil_socket_t fd, short what, void *arg);
static void pump_cb(evutil_socket_t fd, short what, void *arg);
static void retire_cb(evutil_socket_t fd, short what, void *arg);

/* START_SLOTS_PER_CPU x the CPUs of our affinity mask (a container's, a cpuset's). */
static unsigned
start_slots(void)
{
	cpu_set_t set;
	long n = 0;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	return (unsigned)(n > 0 ? n : 1) * START_SLOTS_PER_CPU;
}

int
pool_init(struct event_base *base)
{
	pool_base = base;
	slots_max = start_slots();
	pump_ev = evtimer_new(base, pump_cb, NULL);
	retire_ev = evtimer_new(base, retire_cb, NULL);
	return pump_ev != NULL && retire_ev != NULL ? 0 : -1;
}

void
pool_shutdown(void)
{
	if (pump_ev != NULL)
		event_free(pump_ev);
	pump_ev = NULL;
	if (retire_ev != NULL)
		event_free(retire_ev);
	retire_ev = NULL;
}

struct fn_totals *
pool_function(const char *name)
{
	return name_index_find(&totals_ix, name);
}

struct fn_totals *
pool_totals(const char *name)
{
	struct fn_totals *t = pool_function(name);

	if (t != NULL)
		return t;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->next_wid = 1;
	TAILQ_INIT(&t->t_pools);
	if (name_index_add(&totals_ix, t->name, t, NULL) < 0) {
		free(t);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&totals_list, t, t_entry);
	return t;
}

struct pool *
pool_new(struct sv_conf *owner, const struct fn_conf *conf, uint32_t gen)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->p_owner = owner;
	p->p_conf = conf;
	p->p_gen = gen;
	p->p_totals = pool_totals(conf->name);
	p->p_spawn_ev = evtimer_new(pool_base, spawn_later_cb, p);
	if (p->p_totals == NULL || p->p_spawn_ev == NULL) {
		if (p->p_spawn_ev)
			event_free(p->p_spawn_ev);
		free(p);
		return NULL;
	}
	TAILQ_INIT(&p->p_workers);
	TAILQ_INSERT_TAIL(&pools, p, p_entry);
	TAILQ_INSERT_TAIL(&p->p_totals->t_pools, p, p_fn_entry);
	return p;
}

void
pool_adopt(struct pool *p, struct sv_conf *owner, const struct fn_conf *conf, uint32_t gen)
{
	struct worker *w;

	p->p_owner = owner;
	p->p_conf = conf;
	p->p_gen = gen;
	TAILQ_FOREACH(w, &p->p_workers, w_entry)
		w->w_conf = conf;
}

/* Another pool of P's function has a live worker (they share the function cgroup). */
static bool
function_busy(const struct pool *p)
{
	const struct pool *q;
	const struct worker *w;

	TAILQ_FOREACH(q, &p->p_totals->t_pools, p_fn_entry)
		if (q != p)
			TAILQ_FOREACH(w, &q->p_workers, w_entry)
				if (worker_is_live(w))
					return true;
	return false;
}

/*
 * A function's cgroup exists only while it has workers: a host with a thousand
 * tenants mostly at zero holds no cgroup for them. Its caps are written again when
 * it is made; nothing of it needs to outlive its workers (its usage counters reset).
 */
static void
cgroup_up(struct pool *p)
{
	const struct pool *q;

	if (!cg_enabled() || p->p_cgroup)
		return;
	TAILQ_FOREACH(q, &p->p_totals->t_pools, p_fn_entry)
		if (q->p_cgroup) {
			p->p_cgroup = true;     /* an older generation made it */
			return;
		}
	if (cg_function_setup(p->p_conf) < 0)
		log_warn("cgroup_function_failed", "fn=%s err=%s", p->p_conf->name,
		    log_qv(strerror(errno)));
	p->p_cgroup = true;
}

static void
cgroup_down(struct pool *p)
{
	struct pool *q;

	if (!p->p_cgroup || function_busy(p))
		return;
	TAILQ_FOREACH(q, &p->p_totals->t_pools, p_fn_entry)
		q->p_cgroup = false;
	cg_function_remove(p->p_conf->name);
}

static void
slot_release(struct worker *w)
{
	if (!w->w_slot)
		return;
	TAILQ_REMOVE(&slots, w, w_slot_entry);
	w->w_slot = false;
	nslots--;
}

/* Frees the slots held longer than START_SLOT_MS; returns when the oldest left
 * expires (ms from NOW), or 0 when none is held. */
static uint64_t
slots_expire(uint64_t now)
{
	struct worker *w;

	while ((w = TAILQ_FIRST(&slots)) != NULL) {
		if (now - w->w_spawned_ms < START_SLOT_MS)
			return w->w_spawned_ms + START_SLOT_MS - now;
		slot_release(w);
	}
	return 0;
}

/* A slot freed: the spawner may go on (on a later loop turn, never inside this). */
static void
kick(void)
{
	static const struct timeval now = { 0, 0 };

	if (!TAILQ_EMPTY(&fill_queue) && pump_ev != NULL)
		evtimer_add(pump_ev, &now);
}

/* Starts one worker in P; returns it or NULL. */
static struct worker *
pool_spawn(struct pool *p)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	cgroup_up(p);
	w->w_pool = p;
	w->w_conf = p->p_conf;
	w->w_totals = p->p_totals;
	w->w_gen = p->p_gen;
	w->w_id = p->p_totals->next_wid++;
	w->w_ctl = w->w_status = -1;
	if (spawn_worker(w) < 0) {
		log_error("spawn_failed", "fn=%s wid=%u err=%s", p->p_conf->name, w->w_id,
		    log_qv(strerror(errno)));
		free(w);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&p->p_workers, w, w_entry);
	TAILQ_INSERT_TAIL(&slots, w, w_slot_entry);
	w->w_slot = true;
	nslots++;
	return w;
}

void
pool_count(const struct pool *p, struct pool_counts *c)
{
	const struct worker *w;

	memset(c, 0, sizeof(*c));
	c->min_load = UINT64_MAX;
	TAILQ_FOREACH(w, &p->p_workers, w_entry) {
		if (!worker_is_live(w))
			continue;
		c->live++;
		if (w->w_state == WS_STARTING) {
			c->starting++;
		} else if (w->w_state == WS_READY) {
			uint64_t load;

			if (w->w_used || w->w_replaced)
				continue;
			c->ready++;
			load = worker_load(w) + BOARD_LOAD(&w->w_board->tasks_pending);
			if (load < c->min_load)
				c->min_load = load;
		} else {
			c->leaving++;
		}
	}
}

unsigned
pool_want(const struct pool *p)
{
	const struct fn_conf *fc = p->p_conf;
	struct pool_counts c;
	unsigned want, have;

	pool_count(p, &c);
	have = c.starting + c.ready;
	want = fc->min_workers;
	if (want == 0 && p->p_durable_due)
		want = 1;
	if (p->p_npending > 0 && c.ready == 0) {
		/* Connections wait and nothing can take them: enough workers for them. */
		unsigned need = (p->p_npending + fc->scale_target - 1) / fc->scale_target;
		if (need > want)
			want = need;
		if (c.starting > want)
			want = c.starting;
	} else if (c.ready > 0 && c.min_load != UINT64_MAX && c.min_load >= fc->scale_target &&
	    c.starting == 0 && clock_ms() - p->p_scaled_down_ms >= fc->scale_idle_ms) {
		/* Every ready worker is loaded: one more (one at a time, paced). */
		if (have + 1 > want)
			want = have + 1;
	} else if (have > want) {
		want = have;            /* shrinking is the idle check's business (limits.c) */
	}
	return want < fc->max_workers ? want : fc->max_workers;
}

/* Workers that count towards the pool's size: starting, or ready and still free. */
static unsigned
pool_capacity(const struct pool *p)
{
	struct pool_counts c;

	pool_count(p, &c);
	return c.starting + c.ready;
}

static int
hold(struct pool *p, int fd, uint64_t now_ms, bool admit)
{
	if (p->p_npending == p->p_pending_cap) {
		unsigned ncap = p->p_pending_cap ? p->p_pending_cap * 2 : 16;
		struct held_conn *n;

		if (ncap > POOL_PENDING_MAX)
			return -1;
		n = realloc(p->p_pending, ncap * sizeof(*n));
		if (n == NULL)
			return -1;
		p->p_pending = n;
		p->p_pending_cap = ncap;
	}
	p->p_pending[p->p_npending].fd = fd;
	p->p_pending[p->p_npending].since_ms = now_ms;
	p->p_pending[p->p_npending].carry = NULL;
	p->p_pending[p->p_npending].admit = admit;
	p->p_npending++;
	p->p_nadmit += admit;
	return 0;
}

int
pool_hold(struct pool *p, int fd, uint64_t now_ms)
{
	return hold(p, fd, now_ms, false);
}

int
pool_hold_admit(struct pool *p, int fd, uint64_t since_ms)
{
	return hold(p, fd, since_ms, true);
}

/*
 * From the scoreboards: what we handed over minus what the worker says it closed.
 * The board is tenant-written, so a figure above what we sent counts as none: a
 * tenant can only lie its own function into more or fewer connections, never
 * another's.
 */
uint64_t
pool_in_flight(const struct pool *p)
{
	const struct worker *w;
	uint64_t n = 0, closed;

	TAILQ_FOREACH(w, &p->p_workers, w_entry) {
		if (!worker_is_live(w) || w->w_board == NULL)
			continue;
		closed = BOARD_LOAD(&w->w_board->conns_closed);
		if (closed < w->w_sent)
			n += w->w_sent - closed;
	}
	return n;
}

void
pool_hold_done(struct pool *p)
{
	if (p->p_npending > 0)
		return;
	/* A thousand pools that each held a burst once keep no arrays for it. */
	free(p->p_pending);
	p->p_pending = NULL;
	p->p_pending_cap = 0;
}

void
pool_scaled_down(struct worker *w)
{
	/* No growth for load for a while after shrinking (pool_want): a worker kept
	 * busy by a long task alone must not make its pool grow, shrink, grow... */
	w->w_pool->p_scaled_down_ms = clock_ms();
	w->w_totals->scale_downs++;
	log_info("scale_down", "fn=%s wid=%u pid=%d", w->w_conf->name, w->w_id, (int)w->w_pid);
	worker_retire(w, WIRE_REASON_EARLY_DROP);
}

/* Backoff after crashes before ready: 100 ms, 200, 400, ... capped at 1 s a spawn. */
static uint64_t
backoff_ms(uint32_t streak)
{
	uint64_t ms = 100;

	for (uint32_t i = 1; i < streak && ms < 1000; i++)
		ms *= 2;
	return ms < 1000 ? ms : 1000;
}

static void
unqueue(struct pool *p)
{
	if (!p->p_fill_queued)
		return;
	TAILQ_REMOVE(&fill_queue, p, p_fill_entry);
	p->p_fill_queued = false;
}

/*
 * Connections wait for a worker of P: a cold start, which goes ahead of the pools
 * that only fill up and past the start slots. Those held by the admission gate wait
 * for room in workers P has, not for a start.
 */
static bool
pool_cold(const struct pool *p)
{
	return p->p_npending > p->p_nadmit;
}

void
pool_fill(struct pool *p)
{
	static const struct timeval now = { 0, 0 };

	if (p->p_retiring || p->p_failed)
		return;
	if (p->p_fill_queued) {
		if (pool_cold(p)) {
			if (TAILQ_FIRST(&fill_queue) != p) {
				TAILQ_REMOVE(&fill_queue, p, p_fill_entry);
				TAILQ_INSERT_HEAD(&fill_queue, p, p_fill_entry);
			}
			/* Even at the head: the pump may be waiting for a slot to expire. */
			if (!evtimer_pending(pump_ev, NULL) || nslots >= slots_max)
				evtimer_add(pump_ev, &now);
		}
		return;
	}
	if (pool_capacity(p) >= pool_want(p))
		return;
	if (pool_cold(p))
		TAILQ_INSERT_HEAD(&fill_queue, p, p_fill_entry);
	else
		TAILQ_INSERT_TAIL(&fill_queue, p, p_fill_entry);
	p->p_fill_queued = true;
	if (pool_cold(p) && nslots >= slots_max) {
		/* The pump may be waiting for a slot to expire: not this one. */
		evtimer_add(pump_ev, &now);
		return;
	}
	/* A zero timer, not event_active: it runs after the loop has polled I/O. */
	if (!evtimer_pending(pump_ev, NULL))
		evtimer_add(pump_ev, &now);
}

/* One spawn for P if it still needs one. Returns true when P needs no more now. */
static bool
fill_one(struct pool *p, uint64_t now)
{
	unsigned want = pool_want(p), have = pool_capacity(p);

	if (p->p_retiring || p->p_failed || have >= want)
		return true;
	if (p->p_crash_streak > 0) {
		/* After a crash: one spawn at a time, spaced by the backoff. */
		if (now < p->p_next_spawn_ms) {
			uint64_t d = p->p_next_spawn_ms - now;
			struct timeval tv = { .tv_sec = d / 1000, .tv_usec = (d % 1000) * 1000 };
			if (!evtimer_pending(p->p_spawn_ev, NULL))
				evtimer_add(p->p_spawn_ev, &tv);
			return true;
		}
		p->p_next_spawn_ms = now + backoff_ms(p->p_crash_streak);
		pool_spawn(p);
		return true;
	}
	if (pool_spawn(p) == NULL) {
		/* Logged. Out of fds or processes for now: try again a little later. */
		static const struct timeval later = { 0, 200000 };

		if (!evtimer_pending(p->p_spawn_ev, NULL))
			evtimer_add(p->p_spawn_ev, &later);
		return true;
	}
	/* Above the floor, a spawn is the pool growing for its load. */
	if (have >= p->p_conf->min_workers)
		p->p_totals->scale_ups++;
	return have + 1 >= want;
}

static void
pump_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval again = { 0, 0 };
	uint64_t now = clock_ms();
	unsigned budget = SPAWN_BURST;
	struct pool *p;
	/* Slots past their time are freed first; WAIT: until the oldest one's is up. */
	uint64_t wait = slots_expire(now);

	while (budget > 0 && (p = TAILQ_FIRST(&fill_queue)) != NULL) {
		bool done;

		/* Held connections first (pool_fill put them ahead), past the cap. */
		if (nslots >= slots_max && !pool_cold(p)) {
			/* Full: a worker getting ready or gone kicks us; else the oldest
			 * slot's expiry does. */
			struct timeval tv = { .tv_sec = wait / 1000, .tv_usec = (wait % 1000) * 1000 };

			evtimer_add(pump_ev, &tv);
			return;
		}
		done = fill_one(p, now);
		budget--;
		if (done)
			unqueue(p);
	}
	if (!TAILQ_EMPTY(&fill_queue))
		evtimer_add(pump_ev, &again);
}

static void
spawn_later_cb(evutil_socket_t fd, short what, void *arg)
{
	pool_fill(arg);
}

void
pool_worker_ready(struct worker *w)
{
	w->w_pool->p_crash_streak = 0;
	if (w->w_slot) {
		slot_release(w);
		kick();
	}
}

bool
pool_worker_gone(struct worker *w, bool crashed_before_ready)
{
	struct pool *p = w->w_pool;
	bool failed_now = false;

	TAILQ_REMOVE(&p->p_workers, w, w_entry);
	if (w->w_slot) {
		slot_release(w);
		kick();
	}
	free(w);
	if (TAILQ_EMPTY(&p->p_workers))
		cgroup_down(p);
	if (crashed_before_ready) {
		p->p_crash_streak++;
		if (p->p_crash_streak >= POOL_FAIL_STREAK && !p->p_failed) {
			p->p_failed = true;
			unqueue(p);
			log_error("function_failed", "fn=%s crashes=%u msg=\"workers die before ready; not respawning until reload\"",
			    p->p_conf->name, p->p_crash_streak);
			failed_now = true;
		}
	}
	return failed_now;
}

static void
retire_unqueue(struct pool *p)
{
	if (p->p_retire_queued) {
		TAILQ_REMOVE(&retire_queue, p, p_retire_entry);
		p->p_retire_queued = false;
	}
}

void
pool_retire(struct pool *p, uint32_t reason, bool fast)
{
	static const struct timeval now = { 0, 0 };
	struct worker *w, *tmp;

	p->p_retiring = true;
	unqueue(p);
	evtimer_del(p->p_spawn_ev);
	if (fast) {
		retire_unqueue(p);
		TAILQ_FOREACH_SAFE(w, &p->p_workers, w_entry, tmp)
			worker_terminate(w, reason);
		return;
	}
	p->p_retire_reason = reason;
	if (!p->p_retire_queued) {
		TAILQ_INSERT_TAIL(&retire_queue, p, p_retire_entry);
		p->p_retire_queued = true;
	}
	if (retire_ev != NULL && !evtimer_pending(retire_ev, NULL))
		evtimer_add(retire_ev, &now);
}

/* Tells the queued retiring pools' workers, whole pools, about RETIRE_BURST a turn. */
static void
retire_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval pace = { 0, RETIRE_PACE_US };
	unsigned told = 0;
	struct pool *p;

	while (told < RETIRE_BURST && (p = TAILQ_FIRST(&retire_queue)) != NULL) {
		struct worker *w, *tmp;

		retire_unqueue(p);
		TAILQ_FOREACH_SAFE(w, &p->p_workers, w_entry, tmp) {
			worker_retire(w, p->p_retire_reason);
			told++;
		}
	}
	if (!TAILQ_EMPTY(&retire_queue))
		evtimer_add(retire_ev, &pace);
}

void
pool_free(struct pool *p)
{
	bool other;

	unqueue(p);
	retire_unqueue(p);
	if (p->p_waiting)
		TAILQ_REMOVE(&pools_waiting, p, p_wait_entry);
	TAILQ_REMOVE(&pools, p, p_entry);
	TAILQ_REMOVE(&p->p_totals->t_pools, p, p_fn_entry);
	other = !TAILQ_EMPTY(&p->p_totals->t_pools);
	if (cg_enabled() && !other && p->p_cgroup)
		cg_function_remove(p->p_conf->name);
	event_free(p->p_spawn_ev);
	free(p->p_pending);
	free(p);
}

struct pool *
pool_current(const char *fn, uint32_t ready_gen)
{
	struct pool *p, *ready = NULL, *newest = NULL, *failed = NULL;
	struct fn_totals *t = pool_function(fn);

	if (t == NULL)
		return NULL;
	TAILQ_FOREACH(p, &t->t_pools, p_fn_entry) {
		if (p->p_retiring)
			continue;
		if (p->p_failed) {
			if (failed == NULL || p->p_gen > failed->p_gen)
				failed = p;
			continue;
		}
		if (p->p_gen <= ready_gen && (ready == NULL || p->p_gen > ready->p_gen))
			ready = p;
		if (newest == NULL || p->p_gen > newest->p_gen)
			newest = p;
	}
	return ready ? ready : newest ? newest : failed;
}

struct worker *
pool_find_pid(pid_t pid)
{
	struct pool *p;
	struct worker *w;

	TAILQ_FOREACH(p, &pools, p_entry)
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			if (w->w_pid == pid && !w->w_dead)
				return w;
	return NULL;
}

bool
pool_starting(const struct pool *p)
{
	const struct worker *w;

	if (p->p_failed || p->p_retiring)
		return false;
	if (p->p_fill_queued || evtimer_pending(p->p_spawn_ev, NULL))
		return true;
	TAILQ_FOREACH(w, &p->p_workers, w_entry)
		if (w->w_state == WS_STARTING)
			return true;
	return false;
}

static unsigned
pool_ready_count(const struct pool *p)
{
	const struct worker *w;
	unsigned n = 0;

	TAILQ_FOREACH(w, &p->p_workers, w_entry)
		if (w->w_state == WS_READY)
			n++;
	return n;
}

bool
pools_ready(uint32_t gen)
{
	struct pool *p;

	TAILQ_FOREACH(p, &pools, p_entry)
		if (p->p_gen == gen && !p->p_failed && !p->p_retiring &&
		    pool_ready_count(p) < p->p_conf->min_workers)
			return false;
	return true;
}

unsigned
pools_live_workers(void)
{
	struct pool *p;
	struct worker *w;
	unsigned n = 0;

	TAILQ_FOREACH(p, &pools, p_entry)
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			if (worker_is_live(w))
				n++;
	return n;
}

void
pools_log_summary(void)
{
	struct fn_totals *t, *tmp;
	struct fn_totals all = { 0 };

	TAILQ_FOREACH_SAFE(t, &totals_list, t_entry, tmp) {
		log_info("function_summary", "fn=%s requests=%llu tasks_started=%llu tasks_completed=%llu tasks_failed=%llu tasks_lost=%llu crashes=%llu",
		    t->name, (unsigned long long)t->requests,
		    (unsigned long long)t->tasks_started, (unsigned long long)t->tasks_completed,
		    (unsigned long long)t->tasks_failed, (unsigned long long)t->tasks_lost,
		    (unsigned long long)t->crashes);
		all.requests += t->requests;
		all.tasks_started += t->tasks_started;
		all.tasks_completed += t->tasks_completed;
		all.tasks_failed += t->tasks_failed;
		all.tasks_lost += t->tasks_lost;
		TAILQ_REMOVE(&totals_list, t, t_entry);
		free(t);
	}
	log_info("summary", "requests=%llu tasks_started=%llu tasks_completed=%llu tasks_failed=%llu tasks_lost=%llu",
	    (unsigned long long)all.requests, (unsigned long long)all.tasks_started,
	    (unsigned long long)all.tasks_completed, (unsigned long long)all.tasks_failed,
	    (unsigned long long)all.tasks_lost);
}
