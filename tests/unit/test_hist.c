/*
 * test_hist.c - the latency histogram (common/hist.c): which bucket an observation
 * lands in (le: a value on a bound is in that bound's bucket), sums of boards, and
 * the quantile estimate, checked against figures worked out by hand the way
 * Prometheus' histogram_quantile computes them.
 */
#include <math.h>
#include <string.h>

#include "../../common/board.h"
#include "../../common/hist.h"
#include "unit.h"

static int
near(double a, double b)
{
	return fabs(a - b) < 1e-6;
}

static void
case_buckets(void)
{
	/* Bounds rise strictly, from 0.1 ms to 10 s. */
	UNIT_CHECK(hist_bounds_us[0] == 100 && hist_bounds_us[HIST_BOUNDS - 1] == 10000000);
	for (unsigned i = 1; i < HIST_BOUNDS; i++)
		UNIT_CHECKF(hist_bounds_us[i] > hist_bounds_us[i - 1], "bound %u", i);
	UNIT_CHECK(hist_bucket(0) == 0);
	UNIT_CHECK(hist_bucket(100) == 0);            /* on the bound: le */
	UNIT_CHECK(hist_bucket(101) == 1);
	UNIT_CHECK(hist_bucket(250) == 1);
	UNIT_CHECK(hist_bucket(2600) == 5);           /* (2.5 ms, 5 ms] */
	UNIT_CHECK(hist_bucket(10000000) == HIST_BOUNDS - 1);
	UNIT_CHECK(hist_bucket(10000001) == HIST_BOUNDS);
	UNIT_CHECK(hist_bucket(UINT64_MAX) == HIST_BOUNDS);
	/* Every bound and its neighbours, against a linear scan. */
	for (unsigned i = 0; i < HIST_BOUNDS; i++) {
		for (int d = -1; d <= 1; d++) {
			uint64_t us = hist_bounds_us[i] + (uint64_t)(int64_t)d;
			unsigned want = 0;

			while (want < HIST_BOUNDS && us > hist_bounds_us[want])
				want++;
			UNIT_CHECKF(hist_bucket(us) == want, "%llu: %u, not %u",
			    (unsigned long long)us, hist_bucket(us), want);
		}
	}
out:
	;
}

static void
case_observe_add(void)
{
	struct hist a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	hist_observe(&a, 50);
	hist_observe(&a, 3000);
	hist_observe(&a, 20000000);
	UNIT_CHECK(a.buckets[0] == 1 && a.buckets[5] == 1 && a.buckets[HIST_BOUNDS] == 1);
	UNIT_CHECK(a.sum_us == 20003050 && hist_count(&a) == 3);
	hist_add(&b, &a);
	hist_add(&b, &a);
	UNIT_CHECK(hist_count(&b) == 6 && b.sum_us == 2 * a.sum_us && b.buckets[5] == 2);
out:
	;
}

static void
case_quantile(void)
{
	struct hist h;

	memset(&h, 0, sizeof(h));
	UNIT_CHECK(hist_quantile(&h, 0.5) < 0);        /* empty: no estimate */

	/* 100 in (1 ms, 2.5 ms]: rank 50 is halfway through it, rank 99 at 99%. */
	h.buckets[4] = 100;
	UNIT_CHECKF(near(hist_quantile(&h, 0.5), 1750), "%f", hist_quantile(&h, 0.5));
	UNIT_CHECKF(near(hist_quantile(&h, 0.99), 1000 + 1500 * 0.99), "%f",
	    hist_quantile(&h, 0.99));
	UNIT_CHECK(near(hist_quantile(&h, 1), 2500));

	/* The first bucket interpolates from 0. */
	memset(&h, 0, sizeof(h));
	h.buckets[0] = 10;
	UNIT_CHECK(near(hist_quantile(&h, 0.5), 50));

	/* 90 in (0.1, 0.25] ms, 10 in (5, 10] ms: p50 in the first, p99 in the second;
	 * empty buckets between them are skipped. */
	memset(&h, 0, sizeof(h));
	h.buckets[1] = 90;
	h.buckets[6] = 10;
	UNIT_CHECKF(near(hist_quantile(&h, 0.5), 100 + 150 * 50.0 / 90), "%f",
	    hist_quantile(&h, 0.5));
	UNIT_CHECKF(near(hist_quantile(&h, 0.99), 5000 + 5000 * 9.0 / 10), "%f",
	    hist_quantile(&h, 0.99));
	/* Rank 90 exactly: the top of the first occupied bucket, not the next one. */
	UNIT_CHECK(near(hist_quantile(&h, 0.9), 250));

	/* Above 10 s: only the last finite bound can be said (Prometheus does the same). */
	memset(&h, 0, sizeof(h));
	h.buckets[HIST_BOUNDS] = 5;
	UNIT_CHECK(near(hist_quantile(&h, 0.5), 10000000));
	/* Out-of-range q is clamped. */
	h.buckets[0] = 5;
	UNIT_CHECK(near(hist_quantile(&h, -1), 0) && near(hist_quantile(&h, 2), 10000000));
out:
	;
}

/* The board carries both histograms where a version-3 worker writes them. */
static void
case_board(void)
{
	struct board *b = NULL;
	int fd = board_create(4, &b);

	UNIT_CHECK(fd >= 0);
	UNIT_CHECK(b->version == 3 && hist_count(&b->req_hist) == 0 &&
	    hist_count(&b->task_hist) == 0);
	hist_observe(&b->req_hist, 400);
	UNIT_CHECK(b->req_hist.buckets[2] == 1 && hist_count(&b->task_hist) == 0);
	UNIT_CHECK((char *)&b->tasks[0] >= (char *)(&b->task_hist + 1));
out:
	if (fd >= 0) {
		board_unmap(b, 4);
		close(fd);
	}
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("buckets", case_buckets);
	unit_run("observe_add", case_observe_add);
	unit_run("quantile", case_quantile);
	unit_run("board", case_board);
	return unit_exit();
}
