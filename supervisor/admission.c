/*
 * admission.c - a function's admission policy (see admission.h).
 *
 * In flight is what the supervisor handed the function's workers minus what their
 * scoreboards say they closed (pool_in_flight): no message per request, and a
 * connection counts from its hand-off until the worker is done with it, so a
 * keep-alive connection holds its slot until it closes.
 */
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "admission.h"
#include "pool.h"

static const char overload_response[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    "Retry-After: 1\r\nContent-Length: 11\r\nConnection: close\r\n\r\noverloaded\n";

enum admission_verdict
admission_check(const struct pool *p, bool fresh)
{
	uint32_t cap = p->p_conf->max_concurrency;

	if (cap == 0)
		return ADMIT_GO;
	if (!(fresh && p->p_nadmit > 0) && pool_in_flight(p) < cap)
		return ADMIT_GO;
	return p->p_nadmit < p->p_conf->max_queued ? ADMIT_WAIT : ADMIT_REFUSE;
}

unsigned
admission_room(const struct pool *p, unsigned max)
{
	uint32_t cap = p->p_conf->max_concurrency;
	uint64_t in_flight;

	if (cap == 0)
		return max;
	if ((in_flight = pool_in_flight(p)) >= cap)
		return 0;
	return cap - in_flight < max ? (unsigned)(cap - in_flight) : max;
}

/*
 * The request head is usually here already (TCP_DEFER_ACCEPT): what has arrived is
 * read first, without blocking and bounded, so that close() ends with a FIN after
 * the answer rather than a reset that may destroy it in the client's buffer.
 */
void
admission_answer(int fd)
{
	char buf[4096];

	for (int i = 0; i < 4 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
		;
	(void)!send(fd, overload_response, sizeof(overload_response) - 1,
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
}

void
admission_refused(struct pool *p)
{
	struct fn_totals *t = p->p_totals;
	uint64_t now;

	t->rejected_overload++;
	/* One line a second per function at most: a flood must not become a log flood. */
	now = clock_ms();
	if (now - t->overload_log_ms >= 1000) {
		log_warn("admission_overload", "fn=%s rejected=%llu total=%llu in_flight=%llu "
		    "max_concurrency=%u", p->p_conf->name,
		    (unsigned long long)(t->rejected_overload - t->overload_logged),
		    (unsigned long long)t->rejected_overload,
		    (unsigned long long)pool_in_flight(p), p->p_conf->max_concurrency);
		t->overload_log_ms = now;
		t->overload_logged = t->rejected_overload;
	}
}

void
admission_refuse(struct pool *p, int fd)
{
	admission_refused(p);
	admission_answer(fd);
}

void
admission_expire(struct pool *p, uint64_t now)
{
	uint32_t wait_ms = p->p_conf->queue_timeout_ms;
	unsigned keep = 0, gone = 0;

	for (unsigned i = 0; i < p->p_npending; i++) {
		const struct held_conn *h = &p->p_pending[i];

		if (h->admit && now - h->since_ms >= wait_ms) {
			free(h->carry);
			admission_refuse(p, h->fd);
			gone++;
		} else {
			p->p_pending[keep++] = *h;
		}
	}
	p->p_npending = keep;
	p->p_nadmit -= gone;
	pool_hold_done(p);
}
