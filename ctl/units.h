/* units.h - sizes and durations for a human (edgevisorctl's tables). */
#ifndef EV_CTL_UNITS_H
#define EV_CTL_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* B bytes as "512B", "1.5K", "64.0M" in BUF; returns BUF. */
const char *fmt_bytes(uint64_t b, char *buf, size_t len);
/* MS as "1.25s", "3m07s", "2h05m", "1d03h" in BUF; returns BUF. */
const char *fmt_ms(uint64_t ms, char *buf, size_t len);

#endif
