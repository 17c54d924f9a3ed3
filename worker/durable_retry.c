/*
 * durable_retry.c - the backoff between durable attempts (durable_retry.h).
 */
#include "durable_retry.h"

uint64_t
durable_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t max_ms, uint64_t rnd)
{
	uint64_t d = base_ms;

	if (attempt == 0)
		attempt = 1;
	/* Doubling stops at the cap: no overflow however many attempts. */
	for (uint32_t i = 1; i < attempt && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	return d / 2 + rnd % (d / 2 + 1);
}
