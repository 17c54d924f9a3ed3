/*
 * durable_retry.h - when a failed durable attempt runs again: exponential backoff
 * with jitter, pure arithmetic (tests/unit/test_durable_retry.c).
 */
#ifndef WK_DURABLE_RETRY_H
#define WK_DURABLE_RETRY_H

#include <stdint.h>

/*
 * The wait after failed attempt ATTEMPT (1-based): d = min(MAX_MS, BASE_MS *
 * 2^(ATTEMPT-1)), then "equal jitter": d/2 + RND % (d/2 + 1). Half the wait is
 * fixed, so consecutive waits grow (until the cap); the other half is random, so
 * tasks that failed together do not all come back at once. RND is any random value.
 */
uint64_t durable_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t max_ms, uint64_t rnd);

#endif
