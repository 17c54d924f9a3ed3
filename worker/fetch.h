/*
 * fetch.h - outbound HTTP from the worker's loop (edge_fetch, edge_fetch_allow): the
 * worker's side of it. The limits and the operator's allow-list are set here, before
 * the function's init runs: main.c passes the fetch_max_* limits keys of the config
 * (their defaults are the ones below); the operator's list is still empty.
 */
#ifndef WK_FETCH_H
#define WK_FETCH_H

#include <stdint.h>

#define FETCH_DEF_MAX_INFLIGHT	256		/* transfers at once per worker */
#define FETCH_DEF_MAX_QUEUED	4096		/* waiting for one of those */
#define FETCH_DEF_MAX_BODY	(1024 * 1024)	/* response body bytes */
#define FETCH_DEF_MAX_HEADERS	(64 * 1024)	/* response header bytes */
#define FETCH_DEF_TIMEOUT_MS	30000		/* when the request gives none */
#define FETCH_MAX_REDIRECTS	10		/* a request asking for more gets this */

struct fetch_limits {
	uint32_t max_inflight;
	uint32_t max_queued;
	uint32_t max_body;
	uint32_t max_headers;
	uint32_t default_timeout_ms;
};

/* Replaces the limits (0 fields keep the default); for fetches started afterwards. */
void fetch_set_limits(const struct fetch_limits *lim);
/* Adds PATTERN to the operator's allow-list (fetch_allow.h); returns 0 or -1. */
int fetch_allow_operator(const char *pattern);

#endif
