/*
 * units.c - sizes and durations for a human, shared by `status` (main.c) and `top`
 * (top_view.c): the shortest form that keeps two or three significant figures.
 */
#include <stdio.h>

#include "units.h"

const char *
fmt_bytes(uint64_t b, char *buf, size_t len)
{
	static const char unit[] = "BKMGT";
	double v = (double)b;
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)b);
	else
		snprintf(buf, len, "%.1f%c", v, unit[u]);
	return buf;
}

const char *
fmt_ms(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (ms < 10000)
		snprintf(buf, len, "%.2fs", ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
		    (unsigned long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lluh%02llum", (unsigned long long)(s / 3600),
		    (unsigned long long)(s / 60 % 60));
	else
		snprintf(buf, len, "%llud%02lluh", (unsigned long long)(s / 86400),
		    (unsigned long long)(s / 3600 % 24));
	return buf;
}
