/*
 * fetch_allow.h - a list of destination host patterns for outbound fetches.
 *
 * A pattern is a host name matched exactly (ASCII case-insensitive, one trailing dot
 * ignored), "*.suffix", which matches any name ending in ".suffix" (but not "suffix"
 * itself), or "*" (any host). An IP literal is a host name like any other: "127.0.0.1",
 * "[::1]". An empty list allows every host: a list restricts only once it has an entry.
 */
#ifndef WK_FETCH_ALLOW_H
#define WK_FETCH_ALLOW_H

#include <stdbool.h>
#include <stddef.h>

#define FETCH_ALLOW_MAX 256	/* patterns per list */

struct fetch_allow {
	char *fa_pats[FETCH_ALLOW_MAX];
	size_t fa_n;
};

/* Adds PATTERN (copied, lower-cased); returns 0, or -1 (EINVAL bad pattern, ENOSPC full). */
int fetch_allow_add(struct fetch_allow *l, const char *pattern);
/* Whether HOST passes L (true when L is empty). */
bool fetch_allow_match(const struct fetch_allow *l, const char *host);
void fetch_allow_clear(struct fetch_allow *l);

#endif
