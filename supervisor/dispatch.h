/*
 * dispatch.h - the listeners and the hot path (dispatch.c): accept a burst, give
 * each connection to the least-loaded ready worker of its function, hand them over
 * in one sendmsg per worker, hold them while a worker starts, or answer 503.
 * Listeners outlive config generations. It starts nothing itself: a per_request
 * worker that took its connection is reported (EVQ_POOL_FILL) for a replacement.
 */
#ifndef SV_DISPATCH_H
#define SV_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "../common/net.h"

struct event_base;
struct pool;
struct sv_conf;

/*
 * What a connection from a shared listener (router.c) brings: its listener's id, the
 * path bytes its function does not see, and bytes already read from it (a head that
 * came slowly, or the rest a worker gave back). Malloc'd; dispatch frees it.
 */
struct dispatch_carry {
	uint32_t listener;
	uint32_t strip;
	uint32_t epoch, sticky;      /* as in struct wire_carry */
	char host[256], prefix[256]; /* WIRE_ROUTE_LEN */
	uint32_t nbytes;             /* <= WIRE_CARRY_MAX */
	uint64_t since_ms;           /* dispatch.c's, while queued: when it was placed */
	char bytes[];
};

void dispatch_init(struct event_base *base);
/* Opens the listeners CONF names that are not open yet and notes which function each
 * address will serve; nothing changes for clients until dispatch_commit(). On error
 * everything it opened is closed again: -1 with ERR. */
int dispatch_listen(struct sv_conf *conf, char *err, size_t errlen);
/* The config given to dispatch_listen is in force: listeners serve their new
 * functions, new ones start accepting, ones it no longer names close. */
void dispatch_commit(void);
/* That config will not be applied: listeners it opened close, the others keep the
 * function they serve. */
void dispatch_abort(void);
void dispatch_close_all(void);
/*
 * The one entry a new connection FD takes into pool P once its function is known,
 * from a function's own listener (CY NULL) or routed (CY set: its route and the bytes
 * read ahead), accepted at SINCE_MS. P NULL: no pool, it hears 503. Then the
 * admission gate (max_concurrency: sent, held in order, or 503 + Retry-After), the
 * least-loaded ready worker, or held for a starting one. FD and CY are dispatch's
 * from here. Direct hand-offs are batched: the caller ends its round with
 * dispatch_round_end(P); a routed one goes alone, at once. 0, or -1 when FD was
 * refused (503: answered and closed, or queued to be, either way no longer the
 * caller's): a caller accepting a burst ends it after a few.
 */
int dispatch_to_pool(struct pool *p, int fd, uint64_t since_ms, struct dispatch_carry *cy);
/*
 * The next connection on listening socket LFD (ADDR, for the log), non-blocking and
 * close-on-exec, or -1: the accept burst ends (none waiting; or out of fds, and then
 * EV is paused for 100 ms through PAUSE_EV, logged once per episode in *PAUSES).
 * Shared by the functions' own listeners and the router's.
 */
int dispatch_accept(int lfd, const char *addr, struct event *ev, struct event *pause_ev,
    unsigned *pauses);
/*
 * Opens a listening socket for ADDR (parsed into NA; a unix socket file's identity
 * into UID, so that only ours is removed at close), with the options every listener
 * of the supervisor uses. The fd, or -1 with ERR ("listen ADDR: why").
 */
int dispatch_open_listener(const char *addr, struct net_addr *na, struct net_unix_id *uid,
    char *err, size_t errlen);
/* Sends the batches of the round and closes our copies of what was sent. */
void dispatch_round_end(struct pool *p);
/* Around a run of routed connections (a worker's moves read at once): our copies of
 * those sent are closed together at the end (close_range over a run of numbers),
 * not one close each. */
void dispatch_carry_batch_begin(void);
void dispatch_carry_batch_end(void);
/* Hands P's held connections to its ready workers. */
void dispatch_flush_pending(struct pool *p);
/* FROM is leaving: its held connections go to TO (held there, or served at once). */
void dispatch_move_pending(struct pool *from, struct pool *to);
/* P cannot serve them (failed or gone): every held connection hears 503. */
void dispatch_reject_pending(struct pool *p);

#endif
