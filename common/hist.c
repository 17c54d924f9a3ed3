/*
 * hist.c - latency histogram buckets, observation and quantile estimate (hist.h).
 */
#include "hist.h"

#include "board.h"

const uint64_t hist_bounds_us[HIST_BOUNDS] = {
	100, 250, 500,
	1000, 2500, 5000,
	10000, 25000, 50000,
	100000, 250000, 500000,
	1000000, 2500000, 5000000,
	10000000,
};

unsigned
hist_bucket(uint64_t us)
{
	unsigned lo = 0, hi = HIST_BOUNDS;

	/* The first bound >= US; HIST_BOUNDS when above them all. */
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (us <= hist_bounds_us[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void
hist_observe(struct hist *h, uint64_t us)
{
	/* One writer, the worker's loop thread (requests and task ends happen there). */
	BOARD_BUMP(&h->buckets[hist_bucket(us)], 1);
	BOARD_BUMP(&h->sum_us, us);
}

void
hist_add(struct hist *dst, const struct hist *src)
{
	for (unsigned i = 0; i <= HIST_BOUNDS; i++)
		dst->buckets[i] += BOARD_LOAD(&src->buckets[i]);
	dst->sum_us += BOARD_LOAD(&src->sum_us);
}

uint64_t
hist_count(const struct hist *h)
{
	uint64_t n = 0;

	for (unsigned i = 0; i <= HIST_BOUNDS; i++)
		n += h->buckets[i];
	return n;
}

double
hist_quantile(const struct hist *h, double q)
{
	uint64_t total = hist_count(h), below = 0;
	double rank, lo, hi;
	unsigned i;

	if (total == 0)
		return -1;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	rank = q * (double)total;
	for (i = 0; i <= HIST_BOUNDS; i++) {
		if (h->buckets[i] > 0 && (double)(below + h->buckets[i]) >= rank)
			break;
		below += h->buckets[i];
	}
	/* Past every finite bound: nothing is known but that it is above the last one. */
	if (i >= HIST_BOUNDS)
		return (double)hist_bounds_us[HIST_BOUNDS - 1];
	lo = i == 0 ? 0 : (double)hist_bounds_us[i - 1];
	hi = (double)hist_bounds_us[i];
	return lo + (hi - lo) * (rank - (double)below) / (double)h->buckets[i];
}
