/*
 * route.h - the route table of a shared listener (route.c): which function a request
 * goes to by its Host and path, and how much of the path that function does not see.
 * Built from the config (supervisor/config.c), matched by the supervisor's router
 * (supervisor/router.c) on every request that arrives on a routed listener.
 *
 * A route names a Host pattern ("" any; "a.example.com" exact; "*.example.com" any
 * name below example.com, not example.com itself; case-insensitive, port ignored)
 * and a path prefix matched on whole segments ("/api" matches "/api", "/api/x", not
 * "/apix"). The most specific route wins: an exact Host before a suffix (longer
 * suffix first) before any Host, then the longest prefix. A ROUTE_SUPABASE route
 * takes the function from the segment after its prefix (/functions/v1/<name>/...).
 */
#ifndef EV_ROUTE_H
#define EV_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "name_index.h"

#define ROUTE_HOST_LEN 256
#define ROUTE_PATH_LEN 256
#define ROUTE_FN_LEN   64
#define ROUTE_WHERE_LEN 96

enum route_kind {
	ROUTE_PREFIX = 0,     /* the path prefix goes to route.fn */
	ROUTE_SUPABASE,       /* prefix + "/<name>" goes to function <name> */
};

struct route {
	uint32_t kind;                 /* enum route_kind */
	bool strip;                    /* the function sees the path after the prefix */
	char host[ROUTE_HOST_LEN];     /* lower case; "" any; "*.sfx" a suffix */
	char path[ROUTE_PATH_LEN];     /* normalised: no trailing '/', "" for the root */
	char fn[ROUTE_FN_LEN];         /* ROUTE_PREFIX: the function */
	uint16_t host_len, path_len;   /* strlen of host and path, set by route_set */
	/* Where the config defined it, for errors naming both places of a clash. */
	int line, col;
	char where[ROUTE_WHERE_LEN];
	/* Set by route_table_index (cleared by route_add): the next route with the same
	 * path (its index + 1, 0 for none), and whether any other route's prefix lies
	 * strictly under this one's (for any Host). */
	uint32_t same_next;
	bool below;
};

struct route_table {
	struct route *r;
	size_t n, cap;
	bool has_host;                 /* some route names a Host: requests must carry one */
	/* route_table_index: path -> the first route with it (index + 1). Without it
	 * route_match scans every route. */
	bool indexed;
	struct name_index by_path;
};

struct route_hit {
	const char *fn;                /* not NUL-terminated for ROUTE_SUPABASE */
	size_t fnlen;
	size_t strip;                  /* path bytes the function does not see */
	const struct route *route;
};

/*
 * Normalises HOST and PATH into R (lower-cased host, trailing '/' dropped). Returns 0,
 * or -1 with a static reason in *WHY (a Host pattern or path the table cannot take).
 */
int route_set(struct route *r, const char *host, const char *path, const char **why);
/* Appends a copy of R (the table loses its index). 0, or -1 (ENOMEM). */
int route_add(struct route_table *t, const struct route *r);
/*
 * Indexes T by path, once its routes are all added, so route_match looks up only
 * the prefixes of the request's path (one per segment) instead of scanning every
 * route, and route_sticky answers at once for a route nothing lies under. Same
 * answers as without it. 0, or -1 (ENOMEM: T stays usable, unindexed).
 */
int route_table_index(struct route_table *t);
/*
 * A duplicate: two routes that match exactly the same requests, so one can never be
 * chosen (the only way one route shadows another under most-specific-wins). Returns
 * 0, or -1 with the indexes of the first such pair in *A < *B.
 */
int route_check(const struct route_table *t, size_t *a, size_t *b);
/*
 * The route for HOST (as sent, port and case as they come; NULL for none) and PATH
 * (the URL's path, no query). Returns 0 with *HIT, or -1: no route.
 */
int route_match(const struct route_table *t, const char *host, size_t hostlen,
    const char *path, size_t pathlen, struct route_hit *hit);
/*
 * Whether every later request with the same Host (HOST as sent) whose path lies
 * under HIT's prefix (for ROUTE_SUPABASE: prefix + "/" + the function) must reach
 * HIT's route too: no other route that HOST matches has a prefix under it. A worker
 * keeps such requests of a keep-alive connection instead of giving them back.
 */
bool route_sticky(const struct route_table *t, const struct route_hit *hit,
    const char *host, size_t hostlen);
void route_table_free(struct route_table *t);

#endif
