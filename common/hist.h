/*
 * hist.h - latency histograms: fixed buckets of microseconds, observed by a worker
 * on its scoreboard (relaxed atomics, one writer), summed by the supervisor per
 * function, shown as a Prometheus histogram and as estimated p50/p99.
 *
 * The bounds are part of the scoreboard's layout (board.h): changing them changes
 * what every bucket means, so it takes a BOARD_VERSION bump.
 */
#ifndef EV_HIST_H
#define EV_HIST_H

#include <stdint.h>

#define HIST_BOUNDS 16                 /* finite buckets; one more above the last */

/* Upper bounds (µs, "le") of the finite buckets: 0.1 ms to 10 s, 1-2.5-5 steps. */
extern const uint64_t hist_bounds_us[HIST_BOUNDS];

struct hist {
	uint64_t buckets[HIST_BOUNDS + 1]; /* per bucket, not cumulative; last: above 10 s */
	uint64_t sum_us;
};

/* The bucket an observation of US microseconds falls in (le semantics). */
unsigned hist_bucket(uint64_t us);
/* Records one observation of US microseconds (atomically: H may be a scoreboard). */
void hist_observe(struct hist *h, uint64_t us);
/* Adds SRC to DST (SRC read with atomic loads: it may be a live worker's board). */
void hist_add(struct hist *dst, const struct hist *src);
/* Observations in H (the sum of its buckets). */
uint64_t hist_count(const struct hist *h);
/*
 * The Q-quantile (0 <= Q <= 1) estimated in µs like Prometheus' histogram_quantile:
 * linear interpolation within the bucket holding rank Q * count (the first bucket
 * from 0); a rank in the bucket above 10 s gives its lower bound, 10 s. Returns -1
 * for an empty histogram.
 */
double hist_quantile(const struct hist *h, double q);

#endif
