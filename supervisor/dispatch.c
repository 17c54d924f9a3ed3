/*
 * dispatch.c - the listeners and the hot path: accept4 a burst of connections, give
 * each to the least-loaded ready worker of its function, and hand them over in one
 * sendmsg per worker (SCM_RIGHTS), then close our copies. No allocation, no JSON:
 * a worker's load is what we sent minus what its scoreboard says it closed.
 *
 * Listeners outlive config generations: a reload keeps the socket of an address that
 * stays, so no connection is refused while pools are swapped.
 *
 * Admission: dispatch_to_pool() is the one way a new connection reaches a pool, and
 * it asks admission.c first. With max_concurrency set, a connection past the cap
 * waits in the pool's held array (the cold-start queue, in order) or hears 503 +
 * Retry-After when max_queued already wait: at once, or under a flood at the
 * refusal pace (refuse(), REFUSE_QUEUE_MAX). In flight comes from the
 * scoreboards (no message per request), so a freed slot is seen by looking at them
 * every ADMIT_TICK_US while anyone waits; each tick serves the waiting functions
 * round-robin, ADMIT_QUANTUM each per round.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/net.h"
#include "admission.h"
#include "dispatch.h"
#include "evq.h"
#include "pool.h"
#include "state.h"

_Static_assert(sizeof(((struct dispatch_carry *)0)->host) == WIRE_ROUTE_LEN &&
    sizeof(((struct dispatch_carry *)0)->prefix) == WIRE_ROUTE_LEN, "carry strings");

#define ACCEPT_BURST 64
#define LISTEN_BACKLOG 4096
#define DEFER_ACCEPT_S 1	/* a silent connection is accepted after about this */
#define ADMIT_TICK_US 1000	/* waiters see a freed slot within about this */
#define ADMIT_QUANTUM 16	/* per waiting function per round of a tick */
#define ADMIT_BUDGET 256	/* per tick across functions: bounds a tick's time */
/*
 * Refusals after which a function's own listener pauses for REFUSED_PAUSE_US: each
 * 503 costs the loop a few syscalls (and loopback's delivery), so a tenant flooding
 * past its bound would otherwise take the supervisor's whole core from the others.
 * Paced, its excess waits in its listener's backlog for a moment, then hears 503.
 */
#define REFUSED_BURST 4
#define REFUSED_PAUSE_US 1000
/*
 * A shared listener cannot pause for one tenant: each connection is accepted and
 * peeked before its function is known. Past REFUSED_BURST a window, a function's
 * refusals wait here instead and are answered REFUSED_BURST a window, oldest first:
 * a flooding client that waits for its answer before it reconnects (wrk, a retry
 * loop) is slowed to that pace, and the loop stays free for the others. Bounded:
 * when it is full a refusal is answered at once, never dropped. One queue for all
 * functions, in order: while a flood's refusals wait, another function's wait
 * behind them (at most REFUSE_QUEUE_MAX / REFUSED_BURST ms). Refusals of waiters
 * past their deadline (admission_expire) are answered at once: max_queued bounds
 * them.
 */
#define REFUSE_QUEUE_MAX 256

struct listener {
	TAILQ_ENTRY(listener) l_entry;
	char l_addr[256];
	char l_fn[64];               /* the function it serves */
	char l_newfn[64];            /* the one it serves once the pending config commits */
	int l_fd;
	struct net_addr l_na;        /* l_addr parsed */
	struct net_unix_id l_id;     /* a unix socket file: ours to remove at close */
	bool l_seen;                 /* named by the pending config */
	bool l_fresh;                /* opened for the pending config */
	struct event *l_ev;
	struct event *l_pause_ev;    /* EMFILE: accept again a little later */
	unsigned l_pauses;           /* pauses in the current out-of-fds episode */
};

static TAILQ_HEAD(, listener) listeners = TAILQ_HEAD_INITIALIZER(listeners);
static struct event_base *dispatch_base;
static struct event *expire_ev;      /* held connections' deadline sweep */
static struct event *admit_ev;       /* admission waiters: freed slots, deadlines */

static const char busy_response[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Content-Length: 20\r\nConnection: close\r\n\r\nno worker available\n";

static void accept_cb(evutil_socket_t fd, short what, void *arg);
static void resume_cb(evutil_socket_t fd, short what, void *arg);

/* Refusals waiting for their answer (a ring, oldest at refuse_head); the fds are ours. */
static int refuse_q[REFUSE_QUEUE_MAX];
static unsigned refuse_head, refuse_n;
static struct event *refuse_ev;

/* Arms timer EV (if it exists and is not armed yet) to fire in US microseconds. */
static void
arm_once(struct event *ev, long us)
{
	struct timeval tick = { 0, us };

	if (ev != NULL && !evtimer_pending(ev, NULL))
		evtimer_add(ev, &tick);
}

/* Answers up to MAX queued refusals, oldest first. */
static void
refuse_drain(unsigned max)
{
	while (refuse_n > 0 && max-- > 0) {
		admission_answer(refuse_q[refuse_head]);
		refuse_head = (refuse_head + 1) % REFUSE_QUEUE_MAX;
		refuse_n--;
	}
}

static void
refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	refuse_drain(REFUSED_BURST);
	if (refuse_n > 0)
		arm_once(refuse_ev, REFUSED_PAUSE_US);
}

/* P refuses FD (ours): counted now; answered now, or past P's burst in its window
 * (or behind others waiting) paced from the queue. */
static void
refuse(struct pool *p, int fd)
{
	uint64_t now = clock_us();

	admission_refused(p);
	if (now - p->p_refuse_win_us >= REFUSED_PAUSE_US) {
		p->p_refuse_win_us = now;
		p->p_refuse_n = 0;
	}
	/* While refusals wait, a new one waits behind them: under a flood the queue never
	 * empties, and the tick's REFUSED_BURST is the whole pace. */
	if ((p->p_refuse_n < REFUSED_BURST && refuse_n == 0) || refuse_n == REFUSE_QUEUE_MAX ||
	    refuse_ev == NULL) {
		p->p_refuse_n++;
		admission_answer(fd);
		return;
	}
	refuse_q[(refuse_head + refuse_n++) % REFUSE_QUEUE_MAX] = fd;
	arm_once(refuse_ev, REFUSED_PAUSE_US);
}

/* The pool cannot take this connection: tell the client, never leave it hanging. */
static void
reject_carry(int fd, struct dispatch_carry *cy)
{
	free(cy);
	(void)!send(fd, busy_response, sizeof(busy_response) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

static void expire_cb(evutil_socket_t fd, short what, void *arg);
static void admit_cb(evutil_socket_t fd, short what, void *arg);

void
dispatch_init(struct event_base *base)
{
	dispatch_base = base;
	expire_ev = evtimer_new(base, expire_cb, NULL);
	admit_ev = evtimer_new(base, admit_cb, NULL);
	refuse_ev = evtimer_new(base, refuse_cb, NULL);
}

static void
arm_admit(void)
{
	arm_once(admit_ev, ADMIT_TICK_US);
}

/* P has (or may have) admission waiters: the tick serves it. */
static void
wait_add(struct pool *p)
{
	if (!p->p_waiting) {
		TAILQ_INSERT_TAIL(&pools_waiting, p, p_wait_entry);
		p->p_waiting = true;
	}
	arm_admit();
}

static void
wait_del(struct pool *p)
{
	if (p->p_waiting) {
		TAILQ_REMOVE(&pools_waiting, p, p_wait_entry);
		p->p_waiting = false;
	}
}

/* Takes P's held connections out into HELD (in order); returns how many. */
static unsigned
take_pending(struct pool *p, struct held_conn *held)
{
	unsigned n = p->p_npending;

	/* The array is freed once empty (NULL): memcpy from NULL is undefined, even for 0. */
	if (n > 0)
		memcpy(held, p->p_pending, n * sizeof(held[0]));
	p->p_npending = 0;
	p->p_nadmit = 0;
	return n;
}

/* A held connection went to a worker after waiting since SINCE: which wait it was. */
static void
count_wait(struct pool *p, const struct held_conn *h, uint64_t now)
{
	if (h->admit)
		totals_queue_wait(p->p_totals, now - h->since_ms);
	else
		totals_cold_start(p->p_totals, now - h->since_ms);
}

/* Someone is held: make sure the sweep runs. */
static void
arm_expiry(void)
{
	static const struct timeval tick = { 0, 100000 };

	if (expire_ev != NULL && !evtimer_pending(expire_ev, NULL))
		evtimer_add(expire_ev, &tick);
}

/* A worker whose queue was full (a failed batch) gets another chance each round:
 * an accept round, a tick serving waiters, a ready worker taking the held ones. */
static void
new_round(struct pool *p)
{
	struct worker *w;

	TAILQ_FOREACH(w, &p->p_workers, w_entry)
		w->w_full = false;
}

/*
 * The ready worker with the fewest open connections, or NULL. In a carry batch, one
 * the batch already queued connections for takes more while it is within a
 * record's worth of the fewest: one record and one wakeup for the batch's moves to
 * a function rather than one per worker (the next batch starts from the least
 * loaded again).
 */
static struct worker *
pick(struct pool *p)
{
	struct worker *w, *best = NULL, *slow = NULL, *queued = NULL;
	uint64_t best_load = UINT64_MAX, slow_load = UINT64_MAX, queued_load = 0, load;
	uint32_t cap = p->p_conf->limits.max_connections;

	TAILQ_FOREACH(w, &p->p_workers, w_entry) {
		if (w->w_state != WS_READY || w->w_used || w->w_unreachable || w->w_full)
			continue;
		/* w_sent counts a connection from the moment it is queued for W (w_batch,
		 * w_carry): worker_load already has them. */
		load = worker_load(w);
		if (load >= cap)
			continue;
		/* Stalled (hand-offs unread, nothing moving: limits.c may judge it hung):
		 * only when no other worker can take the connection - a slow worker still
		 * beats a 503. */
		if (w->w_stall_ms != 0) {
			if (load < slow_load) {
				slow = w;
				slow_load = load;
			}
			continue;
		}
		if (w->w_ncarry > 0 && queued == NULL) {
			queued = w;
			queued_load = load;
		}
		/* On a tie, the one given fewer so far: idle workers share a burst. */
		if (load < best_load || (load == best_load && w->w_sent < best->w_sent)) {
			best = w;
			best_load = load;
		}
	}
	if (queued != NULL && queued_load <= best_load + WIRE_PACK_MAX)
		return queued;
	return best != NULL ? best : slow;
}

static void assign(struct pool *p, int fd);
enum placed { SENT, HELD, REJECTED };
static enum placed assign_at(struct pool *p, int fd, uint64_t since, struct dispatch_carry *cy);

/*
 * Our copies of the fds sent in this accept round, closed together at its end.
 * accept4 hands out the lowest free numbers, so a round's fds are mostly one run of
 * consecutive numbers - even when they went to several workers - and each run
 * costs one close_range instead of a close per connection.
 */
static int sent_fds[ACCEPT_BURST + POOL_PENDING_MAX];
static unsigned nsent;
/* Between dispatch_carry_batch_begin and _end: routed connections' copies wait for
 * the batch's end too (a worker's moves come in one read, their fds mostly a run). */
static bool carry_batch;

static void
close_sent(void)
{
	unsigned i, j, n = nsent;
	int fd;

	nsent = 0;
	/* Insertion sort: a round holds at most a few dozen fds. */
	for (i = 1; i < n; i++) {
		fd = sent_fds[i];
		for (j = i; j > 0 && sent_fds[j - 1] > fd; j--)
			sent_fds[j] = sent_fds[j - 1];
		sent_fds[j] = fd;
	}
	for (i = 0; i < n; i = j) {
		/* A run of consecutive numbers, all of them ours to close. */
		for (j = i + 1; j < n && sent_fds[j] == sent_fds[j - 1] + 1; j++)
			;
		if (j - i == 1 || close_range((unsigned)sent_fds[i], (unsigned)sent_fds[j - 1], 0) < 0)
			for (unsigned k = i; k < j; k++)
				close(sent_fds[k]);
	}
}

/*
 * Sends W's batch. If the worker cannot take it (gone: EPIPE/ECONNRESET; full:
 * EAGAIN), it gets no more this round and the connections go to another worker, are
 * held for one that is starting, or hear 503 - they never reached W.
 */
static int
flush(struct worker *w)
{
	struct wire_ctl msg = {
		.version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = w->w_nbatch,
	};
	unsigned n = w->w_nbatch;
	int fds[WIRE_MAX_FDS], saved;

	if (n == 0)
		return 0;
	w->w_nbatch = 0;
	if (wire_send_ctl(w->w_ctl, &msg, w->w_batch, n) == 0) {
		/* Sent: the worker owns them now; our copies go at the round's end. */
		if (nsent + n > sizeof(sent_fds) / sizeof(sent_fds[0]))
			close_sent();
		memcpy(sent_fds + nsent, w->w_batch, n * sizeof(int));
		nsent += n;
		return 0;
	}
	saved = errno;
	log_warn("handoff_failed", "fn=%s wid=%u pid=%d fds=%u err=%s",
	    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, n, log_qv(strerror(saved)));
	/* Gone for good only when its end of the socket is: anything else (a full
	 * queue, ENOBUFS) only skips it for this round. */
	if (saved == EPIPE || saved == ECONNRESET || saved == ECONNREFUSED)
		w->w_unreachable = true;
	else
		w->w_full = true;
	w->w_sent -= n;
	memcpy(fds, w->w_batch, n * sizeof(int));
	for (unsigned i = 0; i < n; i++)
		assign(w->w_pool, fds[i]);
	return -1;
}

/* A worker of P is starting, or can be: a held client will be served. */
static bool
can_start(const struct pool *p)
{
	struct pool_counts c;

	if (p->p_failed || p->p_retiring)
		return false;
	if (pool_starting(p))
		return true;
	pool_count(p, &c);
	return c.starting + c.ready < p->p_conf->max_workers;
}

/*
 * In a carry batch, the routed connections given to a worker wait in its w_carry
 * queue for the batch's end and go packed in one record (wire_send_carries): the
 * record, not the fd, is most of what passing one costs, and the moves one read
 * brought mostly go to a few workers. Outside a batch (a first request, a waiter
 * let in) each goes at once.
 */
static struct worker *carry_ws[WIRE_RECV_BATCH * WIRE_PACK_MAX]; /* each once (w_listed) */
static unsigned ncarry_ws;

/*
 * Sends W's N routed connections FDS, with CYS their bytes (wire_carry): returns
 * how many went from the first (their CYS freed, fds ours to close at the round's
 * end or now); W is marked like a failed batch when not all did.
 */
static unsigned
send_carries(struct worker *w, const int *fds, struct dispatch_carry *const *cys, unsigned n)
{
	static struct wire_carry wc[WIRE_PACK_MAX];
	const struct wire_carry *q[WIRE_PACK_MAX];
	int sent, saved;

	for (unsigned i = 0; i < n; i++) {
		const struct dispatch_carry *cy = cys[i];

		wc[i].version = WIRE_VERSION;
		wc[i].type = WIRE_CTL_ROUTED;
		wc[i].listener = cy->listener;
		wc[i].strip = cy->strip;
		wc[i].epoch = cy->epoch;
		wc[i].sticky = cy->sticky;
		memcpy(wc[i].host, cy->host, sizeof(wc[i].host));
		memcpy(wc[i].prefix, cy->prefix, sizeof(wc[i].prefix));
		wc[i].nbytes = cy->nbytes;
		wc[i].flags = 0;
		wc[i].size = (uint32_t)(WIRE_CARRY_HEAD + cy->nbytes);
		memcpy(wc[i].bytes, cy->bytes, cy->nbytes);
		q[i] = &wc[i];
	}
	sent = wire_send_carries(w->w_ctl, q, fds, n);
	saved = sent < 0 ? errno : EAGAIN;      /* fewer than all: the queue filled */
	for (int i = 0; i < sent; i++) {
		free(cys[i]);
		if (!carry_batch)
			close(fds[i]);
		else {
			if (nsent == sizeof(sent_fds) / sizeof(sent_fds[0]))
				close_sent();
			sent_fds[nsent++] = fds[i];
		}
	}
	if (sent < 0)
		sent = 0;
	if ((unsigned)sent == n)
		return n;
	log_warn("handoff_failed", "fn=%s wid=%u pid=%d fds=%u routed=1 err=%s",
	    w->w_pool->p_conf->name, w->w_id, (int)w->w_pid, n - (unsigned)sent,
	    log_qv(strerror(saved)));
	if (saved == EPIPE || saved == ECONNRESET || saved == ECONNREFUSED)
		w->w_unreachable = true;
	else
		w->w_full = true;
	return (unsigned)sent;
}

/* Sends W's carry queue; what it cannot take goes to another worker (queued again
 * while the batch lasts), is held, or is refused - it never reached W. */
static void
flush_carries(struct worker *w)
{
	int fds[WIRE_PACK_MAX];
	struct dispatch_carry *cys[WIRE_PACK_MAX];
	unsigned n = w->w_ncarry, sent;

	w->w_ncarry = 0;
	if (n == 0)
		return;
	memcpy(fds, w->w_carry_fd, n * sizeof(int));
	memcpy(cys, w->w_carry, n * sizeof(cys[0]));
	sent = send_carries(w, fds, cys, n);
	w->w_sent -= n - sent;
	for (unsigned i = sent; i < n; i++)
		assign_at(w->w_pool, fds[i], cys[i]->since_ms, cys[i]);
}

/*
 * A routed connection, with its bytes, placed at SINCE: 0 sent or queued for the
 * batch's end (FD and CY are the worker's way's now), -1 W cannot take it now
 * (marked like a failed batch). A per_request worker's goes at once, its retirement
 * right behind; so does one for a worker the full list has no room for.
 */
static int
send_carry(struct worker *w, int fd, struct dispatch_carry *cy, uint64_t since)
{
	if (!carry_batch || w->w_pool->p_conf->policy != POLICY_PER_WORKER ||
	    (!w->w_listed && ncarry_ws == sizeof(carry_ws) / sizeof(carry_ws[0])))
		return send_carries(w, &fd, &cy, 1) == 1 ? 0 : -1;
	if (!w->w_listed) {
		w->w_listed = true;
		carry_ws[ncarry_ws++] = w;
	}
	cy->since_ms = since;
	w->w_carry_fd[w->w_ncarry] = fd;
	w->w_carry[w->w_ncarry++] = cy;
	/* A full record goes now; the worker stays listed, its queue empty. */
	if (w->w_ncarry == WIRE_PACK_MAX)
		flush_carries(w);
	return 0;
}

/*
 * Gives FD to a worker of P (batched), holds it while none is ready but one is
 * starting or can start (a cold start: the pool is asked to grow, the spawn happens
 * later, off this path), or rejects it. SINCE: when it was accepted.
 */
static enum placed
assign_at(struct pool *p, int fd, uint64_t since, struct dispatch_carry *cy)
{
	struct worker *w;

again:
	w = (p != NULL) ? pick(p) : NULL;
	/* Only a stalled worker is left but a fresh one is on its way: wait for that. */
	if (w != NULL && w->w_stall_ms != 0 && pool_starting(p) && pool_hold(p, fd, since) == 0) {
		p->p_pending[p->p_npending - 1].carry = cy;
		arm_expiry();
		return HELD;
	}
	if (w == NULL) {
		/* A worker is on its way or may start: hold the client for it, never refuse. */
		if (p != NULL && can_start(p) && pool_hold(p, fd, since) == 0) {
			p->p_pending[p->p_npending - 1].carry = cy;
			pool_fill(p);
			arm_expiry();
			return HELD;
		}
		reject_carry(fd, cy);
		return REJECTED;
	}
	/* Counted before it goes: a queue that fills sends (and may fail) inside. */
	w->w_sent++;
	if (cy != NULL) {
		/* A worker that cannot take it is skipped like a failed batch. */
		if (send_carry(w, fd, cy, since) < 0) {
			w->w_sent--;
			goto again;
		}
	} else
		w->w_batch[w->w_nbatch++] = fd;
	if (p->p_conf->policy != POLICY_PER_WORKER) {
		/* One connection per worker: it retires after it, a fresh one takes its place
		 * (started by the orchestrator, not here on the accept path). A hand-off that
		 * failed went to another worker: this one took nothing. */
		if (flush(w) == 0) {
			w->w_used = true;
			worker_retire(w, WIRE_REASON_NONE);
			evq_push(EVQ_POOL_FILL, p, NULL, 0);
		}
		return SENT;
	}
	if (cy == NULL && w->w_nbatch == WIRE_MAX_FDS)
		flush(w);
	/* Loaded past its target: the pool may grow (queued, paced, not here). */
	if (p->p_conf->max_workers > p->p_conf->min_workers &&
	    worker_load(w) >= p->p_conf->scale_target)
		pool_fill(p);
	return SENT;
}

static void
assign(struct pool *p, int fd)
{
	assign_at(p, fd, clock_ms(), NULL);
}

/*
 * The admission gate (admission.c decides) in front of assign_at; FRESH as there.
 * FD and CY (a routed connection's extras, or NULL) are placed: sent, held or
 * refused (CY freed; FD answered and closed, now or from the refusal queue).
 */
static enum placed
admit(struct pool *p, int fd, uint64_t since, bool fresh, struct dispatch_carry *cy)
{
	if (p == NULL)
		return assign_at(p, fd, since, cy);
	switch (admission_check(p, fresh)) {
	case ADMIT_GO:
		return assign_at(p, fd, since, cy);
	case ADMIT_WAIT:
		if (pool_hold_admit(p, fd, since) == 0) {
			p->p_pending[p->p_npending - 1].carry = cy;
			wait_add(p);
			return HELD;
		}
		break;          /* the held array is full (cold starts share it): refused */
	case ADMIT_REFUSE:
		break;
	}
	free(cy);
	refuse(p, fd);
	return REJECTED;
}

int
dispatch_to_pool(struct pool *p, int fd, uint64_t since_ms, struct dispatch_carry *cy)
{
	enum placed r;

	/* A routed connection comes alone, outside an accept round: its workers get
	 * another chance, as a round gives them. */
	if (p != NULL && cy != NULL)
		new_round(p);
	r = admit(p, fd, since_ms, true, cy);
	/* A per_request worker's batch of one went at once; nothing else is batched for
	 * a routed connection, but the accept loop's own batches are flushed by it. */
	if (cy != NULL && !carry_batch)
		close_sent();
	return r == REJECTED ? -1 : 0;
}

void
dispatch_carry_batch_begin(void)
{
	carry_batch = true;
}

void
dispatch_carry_batch_end(void)
{
	/* A failed record's connections may queue on other workers again: until none
	 * is left (each failure takes a worker out of the round). */
	while (ncarry_ws > 0) {
		struct worker *w = carry_ws[--ncarry_ws];

		w->w_listed = false;
		flush_carries(w);
	}
	carry_batch = false;
	close_sent();
}

/* Flushes every batch; a failed one moves its fds to others, so go until none is left
 * (each failure takes a worker out of the round: this ends). */
static void
flush_pool(struct pool *p)
{
	struct worker *w;
	bool again;

	do {
		again = false;
		TAILQ_FOREACH(w, &p->p_workers, w_entry) {
			if (w->w_nbatch) {
				flush(w);
				again = true;
			}
		}
	} while (again);
}

void
dispatch_round_end(struct pool *p)
{
	if (p != NULL)
		flush_pool(p);
	close_sent();
}

void
dispatch_reject_pending(struct pool *p)
{
	for (unsigned i = 0; i < p->p_npending; i++)
		reject_carry(p->p_pending[i].fd, p->p_pending[i].carry);
	if (p->p_npending)
		log_warn("pending_rejected", "fn=%s count=%u", p->p_conf->name, p->p_npending);
	p->p_npending = 0;
	p->p_nadmit = 0;
	wait_del(p);
	pool_hold_done(p);
}

void
dispatch_flush_pending(struct pool *p)
{
	struct held_conn held[POOL_PENDING_MAX];
	unsigned n = take_pending(p, held), i;
	uint64_t now = clock_ms();

	new_round(p);
	/* In order, through the gate: past the cap the rest wait again, in order. */
	for (i = 0; i < n; i++)
		if (admit(p, held[i].fd, held[i].since_ms, false, held[i].carry) == SENT)
			count_wait(p, &held[i], now);
	pool_hold_done(p);
	flush_pool(p);
	close_sent();
}

void
dispatch_move_pending(struct pool *from, struct pool *to)
{
	struct held_conn held[POOL_PENDING_MAX];
	unsigned n = take_pending(from, held);

	wait_del(from);
	pool_hold_done(from);
	/* Behind the ones TO holds already: they were there first. */
	for (unsigned i = 0; i < n; i++)
		admit(to, held[i].fd, held[i].since_ms, true, held[i].carry);
	flush_pool(to);
	close_sent();
}

/*
 * Hands up to MAX of P's held connections, from the head, to its workers while it
 * is below its cap; the others are held again in the same order. Returns how many
 * went.
 */
static unsigned
admit_head(struct pool *p, unsigned max, uint64_t now)
{
	struct held_conn held[POOL_PENDING_MAX];
	unsigned n, i, sent = 0, room;

	if (p->p_retiring || p->p_npending == 0)
		return 0;
	new_round(p);
	if (pick(p) == NULL)
		return 0;       /* the ready worker's event (dispatch_flush_pending) serves them */
	if ((room = admission_room(p, max)) == 0)
		return 0;
	n = take_pending(p, held);
	for (i = 0; i < n; i++) {
		if (sent < room) {
			/* Not SENT: held again for a worker, or refused; either way it left. */
			if (assign_at(p, held[i].fd, held[i].since_ms, held[i].carry) == SENT) {
				count_wait(p, &held[i], now);
				sent++;
			}
			continue;
		}
		/* Held again in order; if a failed batch re-placed connections of this round
		 * into the array meanwhile, it may be full: refused then, never dropped. */
		if ((held[i].admit ? pool_hold_admit(p, held[i].fd, held[i].since_ms) :
		    pool_hold(p, held[i].fd, held[i].since_ms)) < 0) {
			free(held[i].carry);
			admission_refuse(p, held[i].fd);
			continue;
		}
		p->p_pending[p->p_npending - 1].carry = held[i].carry;
	}
	pool_hold_done(p);
	return sent;
}

/*
 * Every tick while connections wait for admission: deadlines first, then the
 * waiting functions are served round-robin, ADMIT_QUANTUM each per round, until
 * ADMIT_BUDGET went or nobody could move; the function served first goes to the
 * back for the next tick. One function's queue never holds up another's.
 */
static void
admit_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t now = clock_ms();
	unsigned budget = ADMIT_BUDGET, n;
	struct pool *p, *tmp;
	bool moved = true;

	TAILQ_FOREACH(p, &pools_waiting, p_wait_entry)
		admission_expire(p, now);
	while (budget > 0 && moved) {
		moved = false;
		TAILQ_FOREACH(p, &pools_waiting, p_wait_entry) {
			if (p->p_nadmit == 0)
				continue;
			n = admit_head(p, budget < ADMIT_QUANTUM ? budget : ADMIT_QUANTUM, now);
			budget -= n;
			moved |= n > 0;
			if (budget == 0)
				break;
		}
	}
	TAILQ_FOREACH_SAFE(p, &pools_waiting, p_wait_entry, tmp) {
		flush_pool(p);
		if (p->p_nadmit == 0)
			wait_del(p);
	}
	close_sent();
	if ((p = TAILQ_FIRST(&pools_waiting)) != NULL) {
		TAILQ_REMOVE(&pools_waiting, p, p_wait_entry);
		TAILQ_INSERT_TAIL(&pools_waiting, p, p_wait_entry);
		arm_admit();
	}
}

/* Held connections past their function's cold_wait_ms hear 503; runs while any wait. */
static void
expire_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval tick = { 0, 100000 };
	uint64_t now = clock_ms();
	bool waiting = false;
	struct pool *p;

	TAILQ_FOREACH(p, &pools, p_entry) {
		unsigned keep = 0, gone = 0;

		for (unsigned i = 0; i < p->p_npending; i++) {
			/* Admission waiters have their own deadline (admit_cb). */
			if (!p->p_pending[i].admit &&
			    now - p->p_pending[i].since_ms >= p->p_conf->cold_wait_ms) {
				reject_carry(p->p_pending[i].fd, p->p_pending[i].carry);
				gone++;
			} else {
				p->p_pending[keep++] = p->p_pending[i];
			}
		}
		p->p_npending = keep;
		pool_hold_done(p);
		if (gone)
			log_warn("cold_wait_expired", "fn=%s count=%u wait_ms=%u", p->p_conf->name,
			    gone, p->p_conf->cold_wait_ms);
		/* Held while the ready workers were full: one may have room by now. */
		if (keep > 0 && !p->p_retiring && pick(p) != NULL)
			dispatch_flush_pending(p);
		waiting |= p->p_npending > 0;
	}
	if (waiting)
		evtimer_add(expire_ev, &tick);
}

int
dispatch_accept(int lfd, const char *addr, struct event *ev, struct event *pause_ev,
    unsigned *pauses)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			if (*pauses) {
				log_info("accept_resumed", "addr=%s pauses=%u", log_qv(addr), *pauses);
				*pauses = 0;
			}
			return fd;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* Out of fds: stop accepting for a moment instead of spinning. */
			struct timeval tv = { 0, 100000 };

			/* One line per episode, not ten a second. */
			if ((*pauses)++ == 0)
				log_warn("accept_paused", "addr=%s err=%s retry_ms=100",
				    log_qv(addr), log_qv(strerror(errno)));
			event_del(ev);
			evtimer_add(pause_ev, &tv);
		} else if (errno != EAGAIN) {
			log_warn("accept_failed", "addr=%s err=%s", log_qv(addr),
			    log_qv(strerror(errno)));
		}
		return -1;
	}
}

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct listener *l = arg;
	struct pool *p = pool_current(l->l_fn, sv.ready_gen);
	unsigned refused = 0;

	if (p != NULL)
		new_round(p);

	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = dispatch_accept(lfd, l->l_addr, l->l_ev, l->l_pause_ev, &l->l_pauses);

		if (fd < 0)
			break;
		if (dispatch_to_pool(p, fd, clock_ms(), NULL) < 0 && ++refused == REFUSED_BURST) {
			struct timeval tv = { 0, REFUSED_PAUSE_US };

			event_del(l->l_ev);
			evtimer_add(l->l_pause_ev, &tv);
			break;
		}
	}
	/* Waiters first: room this burst left goes to them before the next tick. */
	if (p != NULL && p->p_nadmit > 0)
		admit_head(p, ADMIT_QUANTUM, clock_ms());
	dispatch_round_end(p);
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	event_add(l->l_ev, NULL);
}

/* Opens L's listening socket for ADDR (validated by the config). */
static int
open_listener(struct listener *l, const char *addr, char *err, size_t errlen)
{
	return (l->l_fd = dispatch_open_listener(addr, &l->l_na, &l->l_id, err, errlen)) < 0 ?
	    -1 : 0;
}

int
dispatch_open_listener(const char *addr, struct net_addr *na, struct net_unix_id *uid,
    char *err, size_t errlen)
{
	static const struct net_listen_opts opts = {
		.backlog = LISTEN_BACKLOG, .nodelay = true, .defer_accept_s = DEFER_ACCEPT_S,
	};
	const char *why;
	char msg[256];
	int fd;

	if (net_parse(addr, na, &why) < 0) {
		snprintf(err, errlen, "listen %s: %s", addr, why);
		return -1;
	}
	if ((fd = net_listen(na, &opts, msg, sizeof(msg))) < 0) {
		snprintf(err, errlen, "listen %s: %s", addr, msg);
		return -1;
	}
	if (na->kind == NET_UNIX && net_unix_id(na->path, uid) < 0) {
		snprintf(err, errlen, "listen %s: %s", addr, strerror(errno));
		close(fd);
		unlink(na->path);
		return -1;
	}
	return fd;
}

static void
listener_free(struct listener *l)
{
	TAILQ_REMOVE(&listeners, l, l_entry);
	event_free(l->l_ev);
	event_free(l->l_pause_ev);
	close(l->l_fd);
	if (l->l_na.kind == NET_UNIX)
		net_unix_release(l->l_na.path, &l->l_id);
	free(l);
}

static struct listener *
listener_find(const char *addr)
{
	struct listener *l;

	TAILQ_FOREACH(l, &listeners, l_entry)
		if (strcmp(l->l_addr, addr) == 0)
			return l;
	return NULL;
}

int
dispatch_listen(struct sv_conf *conf, char *err, size_t errlen)
{
	struct listener *l;
	struct fn_conf *fc;

	TAILQ_FOREACH(l, &listeners, l_entry) {
		l->l_seen = l->l_fresh = false;
		l->l_newfn[0] = '\0';
	}
	TAILQ_FOREACH(fc, &conf->functions, entry) {
		for (size_t i = 0; i < fc->nlisten; i++) {
			const char *addr = fc->listen[i];

			if ((l = listener_find(addr)) != NULL) {
				/* Kept: it serves its old function until this config commits (its
				 * new one may still be starting its workers). */
				l->l_seen = true;
				snprintf(l->l_newfn, sizeof(l->l_newfn), "%s", fc->name);
				continue;
			}
			l = calloc(1, sizeof(*l));
			if (l == NULL) {
				snprintf(err, errlen, "listen %s: out of memory", addr);
				goto rollback;
			}
			snprintf(l->l_addr, sizeof(l->l_addr), "%s", addr);
			snprintf(l->l_fn, sizeof(l->l_fn), "%s", fc->name);
			snprintf(l->l_newfn, sizeof(l->l_newfn), "%s", fc->name);
			if (open_listener(l, addr, err, errlen) < 0) {
				free(l);
				goto rollback;
			}
			l->l_ev = event_new(dispatch_base, l->l_fd, EV_READ | EV_PERSIST, accept_cb, l);
			l->l_pause_ev = evtimer_new(dispatch_base, resume_cb, l);
			l->l_seen = l->l_fresh = true;
			TAILQ_INSERT_TAIL(&listeners, l, l_entry);
			log_info("listen", "fn=%s addr=%s", fc->name, log_qv(addr));
		}
	}
	return 0;
rollback:
	dispatch_abort();
	return -1;
}

void
dispatch_abort(void)
{
	struct listener *l, *tmp;

	/* A config that is not applied changes nothing: drop what it opened. */
	TAILQ_FOREACH_SAFE(l, &listeners, l_entry, tmp) {
		if (l->l_fresh) {
			listener_free(l);
			continue;
		}
		l->l_seen = true;
		l->l_newfn[0] = '\0';
	}
}

void
dispatch_commit(void)
{
	struct listener *l, *tmp;

	TAILQ_FOREACH_SAFE(l, &listeners, l_entry, tmp) {
		if (!l->l_seen) {
			log_info("unlisten", "fn=%s addr=%s", l->l_fn, log_qv(l->l_addr));
			listener_free(l);
			continue;
		}
		if (l->l_newfn[0] != '\0' && strcmp(l->l_newfn, l->l_fn) != 0) {
			log_info("listen_moved", "addr=%s from=%s to=%s", l->l_addr, l->l_fn, l->l_newfn);
			snprintf(l->l_fn, sizeof(l->l_fn), "%s", l->l_newfn);
		}
		l->l_newfn[0] = '\0';
		l->l_fresh = false;
		if (!event_pending(l->l_ev, EV_READ, NULL) && !evtimer_pending(l->l_pause_ev, NULL))
			event_add(l->l_ev, NULL);
	}
}

void
dispatch_close_all(void)
{
	if (expire_ev != NULL) {
		event_free(expire_ev);
		expire_ev = NULL;
	}
	if (admit_ev != NULL) {
		event_free(admit_ev);
		admit_ev = NULL;
	}
	/* Refusals still owed their answer get it now. */
	refuse_drain(REFUSE_QUEUE_MAX);
	if (refuse_ev != NULL) {
		event_free(refuse_ev);
		refuse_ev = NULL;
	}
	struct listener *l;

	while ((l = TAILQ_FIRST(&listeners)) != NULL)
		listener_free(l);
}
