/*
 * test_admission.c - the admission policy (supervisor/admission.c) on a fake pool:
 * no worker, no loop. pool_in_flight and pool_hold_done, which admission.c reads
 * from pool.c, are this file's own, so the in-flight count is whatever a case sets.
 */
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../common/clock.h"
#include "../../common/log.h"
#include "../../supervisor/admission.h"
#include "../../supervisor/pool.h"
#include "unit.h"

static uint64_t fake_in_flight;

uint64_t
pool_in_flight(const struct pool *p)
{
	return fake_in_flight;
}

void
pool_hold_done(struct pool *p)
{
}

static struct fn_conf conf;
static struct fn_totals totals;
static struct held_conn held[8];
static struct pool pool;

static void
setup(uint32_t cap, uint32_t queued, uint32_t timeout_ms)
{
	memset(&conf, 0, sizeof(conf));
	memset(&totals, 0, sizeof(totals));
	memset(&pool, 0, sizeof(pool));
	conf.name = "fn";
	conf.max_concurrency = cap;
	conf.max_queued = queued;
	conf.queue_timeout_ms = timeout_ms;
	pool.p_conf = &conf;
	pool.p_totals = &totals;
	pool.p_pending = held;
	pool.p_pending_cap = 8;
	fake_in_flight = 0;
}

static void
case_no_cap_always_goes(void)
{
	setup(0, 4, 1000);
	fake_in_flight = 1000000;
	UNIT_CHECK(admission_check(&pool, true) == ADMIT_GO);
	UNIT_CHECK(admission_room(&pool, 16) == 16);
out:;
}

static void
case_cap_then_queue_then_refuse(void)
{
	setup(2, 2, 1000);
	fake_in_flight = 1;
	UNIT_CHECK(admission_check(&pool, true) == ADMIT_GO);
	UNIT_CHECK(admission_room(&pool, 16) == 1);
	fake_in_flight = 2;
	UNIT_CHECK(admission_room(&pool, 16) == 0);
	UNIT_CHECK(admission_check(&pool, true) == ADMIT_WAIT);
	pool.p_nadmit = 2;
	UNIT_CHECK(admission_check(&pool, true) == ADMIT_REFUSE);
	/* Nobody may wait: at the cap is refused at once. */
	setup(2, 0, 1000);
	fake_in_flight = 2;
	UNIT_CHECK(admission_check(&pool, true) == ADMIT_REFUSE);
out:;
}

static void
case_fresh_queues_behind_waiters(void)
{
	setup(4, 8, 1000);
	fake_in_flight = 1;
	pool.p_nadmit = 1;
	/* Room, but one waits already: a new connection goes behind it... */
	UNIT_CHECKF(admission_check(&pool, true) == ADMIT_WAIT, "fresh jumped the queue");
	/* ... while the waiter itself, handed on, goes. */
	UNIT_CHECK(admission_check(&pool, false) == ADMIT_GO);
	/* Room never exceeds what was asked for, nor the cap's headroom. */
	UNIT_CHECK(admission_room(&pool, 2) == 2);
	UNIT_CHECK(admission_room(&pool, 16) == 3);
out:;
}

/* The refusal: 503 with Retry-After and Connection: close, the fd closed, counted. */
static void
case_refusal_answers_503_retry_after(void)
{
	int sp[2] = { -1, -1 };
	char buf[512];
	ssize_t n;

	setup(1, 1, 1000);
	UNIT_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
	/* What the client sent is read (and dropped) first. */
	UNIT_CHECK(write(sp[1], "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27) == 27);
	admission_refuse(&pool, sp[0]);
	sp[0] = -1;
	n = read(sp[1], buf, sizeof(buf) - 1);
	UNIT_CHECK(n > 0);
	buf[n] = '\0';
	UNIT_CHECKF(strncmp(buf, "HTTP/1.1 503 ", 13) == 0, "answer %s", buf);
	UNIT_CHECKF(strstr(buf, "\r\nRetry-After: 1\r\n") != NULL, "no Retry-After: %s", buf);
	UNIT_CHECKF(strstr(buf, "\r\nConnection: close\r\n") != NULL, "not closing: %s", buf);
	UNIT_CHECK(read(sp[1], buf, sizeof(buf)) == 0);        /* closed after it */
	UNIT_CHECK(totals.rejected_overload == 1);
out:
	if (sp[0] >= 0)
		close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
}

/* Past queue_timeout_ms only admission waiters go; the rest keep their order. */
static void
case_expire_keeps_order_and_cold_holds(void)
{
	int sp[3][2];
	uint64_t now = 10000;

	setup(1, 8, 500);
	for (int i = 0; i < 3; i++)
		UNIT_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp[i]) == 0);
	/* 0: waited 600 ms at the gate (expires); 1: held 600 ms for a cold start (not
	 * the gate's deadline); 2: waited 100 ms at the gate. */
	held[0] = (struct held_conn){ .fd = sp[0][0], .since_ms = now - 600, .admit = true };
	held[1] = (struct held_conn){ .fd = sp[1][0], .since_ms = now - 600, .admit = false };
	held[2] = (struct held_conn){ .fd = sp[2][0], .since_ms = now - 100, .admit = true };
	pool.p_npending = 3;
	pool.p_nadmit = 2;
	admission_expire(&pool, now);
	UNIT_CHECKF(pool.p_npending == 2 && pool.p_nadmit == 1, "left %u, %u at the gate",
	    pool.p_npending, pool.p_nadmit);
	UNIT_CHECK(held[0].fd == sp[1][0] && held[1].fd == sp[2][0]);
	UNIT_CHECK(totals.rejected_overload == 1);
out:
	for (int i = 0; i < 3; i++) {
		close(sp[i][1]);
		if (i > 0)
			close(sp[i][0]);
	}
}

int
main(int argc, char **argv)
{
	log_level = LOG_LVL_ERROR;   /* the overload line is not the verdict */
	unit_run("no_cap_always_goes", case_no_cap_always_goes);
	unit_run("cap_then_queue_then_refuse", case_cap_then_queue_then_refuse);
	unit_run("fresh_queues_behind_waiters", case_fresh_queues_behind_waiters);
	unit_run("refusal_answers_503_retry_after", case_refusal_answers_503_retry_after);
	unit_run("expire_keeps_order_and_cold_holds", case_expire_keeps_order_and_cold_holds);
	return unit_exit();
}
