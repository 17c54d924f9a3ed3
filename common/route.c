/*
 * route.c - building and matching the route table of a shared listener (route.h).
 * An indexed table (route_table_index) is matched by looking up each segment prefix
 * of the request's path in a sorted path index: a path has a few segments, where a
 * scan of a few hundred routes cost most of the supervisor's time per moved
 * keep-alive request (a memcmp and a cache miss per route). A table without the
 * index is scanned; both give the same answers.
 */
#include "route.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Host names: letters, digits, '-', '.'; IPv6 literals in brackets. */
static bool
host_ok(const char *h)
{
	if (h[0] == '[')
		return strchr(h, ']') != NULL && strchr(h, ']')[1] == '\0';
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return false;
	return h[0] != '.' && h[0] != '\0';
}

int
route_set(struct route *r, const char *host, const char *path, const char **why)
{
	size_t hl = host ? strlen(host) : 0, pl = path ? strlen(path) : 0;

	if (hl >= ROUTE_HOST_LEN) {
		*why = "host too long";
		return -1;
	}
	if (pl >= ROUTE_PATH_LEN) {
		*why = "path too long";
		return -1;
	}
	for (size_t i = 0; i < hl; i++)
		r->host[i] = (char)tolower((unsigned char)host[i]);
	r->host[hl] = '\0';
	if (hl > 0 && !host_ok(r->host[0] == '*' && r->host[1] == '.' ? r->host + 2 : r->host)) {
		*why = "host must be a name, a [v6] literal or *.suffix (no port)";
		return -1;
	}
	if (pl > 0 && (path[0] != '/' || strpbrk(path, "?# \t") != NULL)) {
		*why = "path must start with '/' and hold no query, fragment or space";
		return -1;
	}
	/* "/api/" and "/api" are one prefix: segments are matched whole either way. */
	while (pl > 0 && path[pl - 1] == '/')
		pl--;
	memcpy(r->path, path ? path : "", pl);
	r->path[pl] = '\0';
	r->host_len = (uint16_t)hl;
	r->path_len = (uint16_t)pl;
	return 0;
}

/* Forgets T's index (route_add moves the routes its keys point into). */
static void
unindex(struct route_table *t)
{
	name_index_free(&t->by_path);
	t->indexed = false;
}

int
route_add(struct route_table *t, const struct route *r)
{
	unindex(t);
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		struct route *n = realloc(t->r, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		t->r = n;
		t->cap = ncap;
	}
	t->r[t->n] = *r;
	t->r[t->n].same_next = 0;
	t->r[t->n].below = false;
	t->n++;
	if (r->host[0] != '\0')
		t->has_host = true;
	return 0;
}

int
route_check(const struct route_table *t, size_t *a, size_t *b)
{
	/* Quadratic, at load only: a few hundred routes are a few ten thousand compares. */
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = i + 1; j < t->n; j++)
			if (strcmp(t->r[i].host, t->r[j].host) == 0 &&
			    strcmp(t->r[i].path, t->r[j].path) == 0) {
				*a = i;
				*b = j;
				return -1;
			}
	return 0;
}

/*
 * How well pattern P fits HOST[0, LEN) (lower-cased, no port): 0 not at all, else a
 * rank where higher is more specific (exact > longer suffix > any Host).
 */
static size_t
host_rank(const struct route *r, const char *host, size_t len)
{
	const char *p = r->host;
	size_t pl = r->host_len;

	if (pl == 0)
		return 1;
	if (host == NULL)
		return 0;
	if (p[0] == '*') {
		/* "*.sfx": HOST ends in ".sfx" with at least one byte before it. */
		pl--;
		if (len > pl && memcmp(host + len - pl, p + 1, pl) == 0)
			return 2 + pl;
		return 0;
	}
	return pl == len && memcmp(p, host, len) == 0 ? 2 + ROUTE_HOST_LEN : 0;
}

/* PATH starts with the whole segments of prefix P (of length PL). */
static bool
path_has(const char *p, size_t pl, const char *path, size_t len)
{
	return len >= pl && memcmp(path, p, pl) == 0 && (len == pl || path[pl] == '/');
}

/* HOST without its port, lower-cased into H (ROUTE_HOST_LEN); NULL for none or a
 * name longer than any pattern (it matches only the "any Host" routes). */
static const char *
host_norm(const char *host, size_t *len, char *h)
{
	const char *br, *from, *colon;
	size_t n = *len;

	if (host == NULL)
		return NULL;
	/* Port ignored: the last ':' after any ']' starts it. */
	br = memchr(host, ']', n);
	from = br ? br : host;
	colon = memchr(from, ':', n - (size_t)(from - host));
	if (colon != NULL)
		n = (size_t)(colon - host);
	if (n >= ROUTE_HOST_LEN)
		return NULL;
	for (size_t i = 0; i < n; i++)
		h[i] = (char)tolower((unsigned char)host[i]);
	*len = n;
	return h;
}

/* The first route (index + 1) whose path is PATH[0, LEN), or 0. */
static uint32_t
first_with(const struct route_table *t, const char *path, size_t len)
{
	char key[ROUTE_PATH_LEN];

	/* A NUL inside would end the key early and match a shorter path. */
	if (len >= sizeof(key) || memchr(path, '\0', len) != NULL)
		return 0;
	memcpy(key, path, len);
	key[len] = '\0';
	return (uint32_t)(uintptr_t)name_index_find(&t->by_path, key);
}

int
route_table_index(struct route_table *t)
{
	unindex(t);
	for (size_t i = 0; i < t->n; i++) {
		struct route *r = &t->r[i];
		void *first;
		int added = name_index_add(&t->by_path, r->path, (void *)(uintptr_t)(i + 1), &first);

		if (added < 0) {
			unindex(t);
			return -1;
		}
		r->same_next = 0;
		r->below = false;
		if (added == 1) {
			/* Appended to its path's chain: the chain keeps the table's order. */
			struct route *e = &t->r[(uintptr_t)first - 1];

			while (e->same_next != 0)
				e = &t->r[e->same_next - 1];
			e->same_next = (uint32_t)(i + 1);
		}
	}
	/* Every route whose path is a proper prefix (whole segments) of another's has
	 * that one below it: one lookup per segment boundary of each path. */
	for (size_t i = 0; i < t->n; i++) {
		const struct route *r = &t->r[i];

		for (size_t k = 0; k < r->path_len; k++) {
			if (r->path[k] != '/')
				continue;
			for (uint32_t j = first_with(t, r->path, k); j != 0; j = t->r[j - 1].same_next)
				t->r[j - 1].below = true;
		}
	}
	t->indexed = true;
	return 0;
}

/* Whether R (of host rank HR) beats the best so far, as a scan in table order would
 * decide: a higher host rank, then a longer prefix, then the earlier route. */
static bool
better(const struct route *r, size_t hr, const struct route *best, size_t best_host)
{
	if (best == NULL || hr > best_host)
		return true;
	if (hr < best_host)
		return false;
	return r->path_len > best->path_len || (r->path_len == best->path_len && r < best);
}

/* The indexed match: the routes whose path is a segment prefix of PATH. */
static const struct route *
match_indexed(const struct route_table *t, const char *h, size_t hostlen, const char *path,
    size_t pathlen, size_t *best_hr)
{
	const struct route *best = NULL;

	*best_hr = 0;
	/* Prefix lengths a route can have: 0 (the root, when the path is absolute or
	 * empty), each '/' after the first byte, and the whole path. */
	for (size_t k = 0; k <= pathlen && k < ROUTE_PATH_LEN; k++) {
		if (k == 0 ? !(pathlen == 0 || path[0] == '/') : k < pathlen && path[k] != '/')
			continue;
		for (uint32_t j = first_with(t, path, k); j != 0; j = t->r[j - 1].same_next) {
			const struct route *r = &t->r[j - 1];
			size_t hr = host_rank(r, h, h ? hostlen : 0);

			if (hr != 0 && better(r, hr, best, *best_hr)) {
				best = r;
				*best_hr = hr;
			}
		}
	}
	return best;
}

int
route_match(const struct route_table *t, const char *host, size_t hostlen,
    const char *path, size_t pathlen, struct route_hit *hit)
{
	char hb[ROUTE_HOST_LEN];
	const char *h = host_norm(host, &hostlen, hb);
	const struct route *best = NULL;
	size_t best_host = 0, best_path = 0;

	if (t->indexed) {
		best = match_indexed(t, h, hostlen, path, pathlen, &best_host);
		best_path = best != NULL ? best->path_len : 0;
	} else {
		for (size_t i = 0; i < t->n; i++) {
			const struct route *r = &t->r[i];
			size_t hr = host_rank(r, h, h ? hostlen : 0), pl;

			if (hr == 0 || hr < best_host)
				continue;
			pl = r->path_len;
			if (!path_has(r->path, pl, path, pathlen))
				continue;
			if (hr == best_host && pl <= best_path && best != NULL)
				continue;
			best = r;
			best_host = hr;
			best_path = pl;
		}
	}
	if (best == NULL)
		return -1;
	hit->route = best;
	hit->strip = best->strip ? best_path : 0;
	if (best->kind == ROUTE_PREFIX) {
		hit->fn = best->fn;
		hit->fnlen = strlen(best->fn);
		return 0;
	}
	/* Supabase: /functions/v1/<name>[/...]; the name is checked by its lookup. */
	if (pathlen <= best_path + 1)
		return -1;
	hit->fn = path + best_path + 1;
	hit->fnlen = 0;
	while (best_path + 1 + hit->fnlen < pathlen && hit->fn[hit->fnlen] != '/')
		hit->fnlen++;
	if (hit->fnlen == 0)
		return -1;
	return 0;
}

bool
route_sticky(const struct route_table *t, const struct route_hit *hit, const char *host,
    size_t hostlen)
{
	char hb[ROUTE_HOST_LEN];
	const char *h;
	const struct route *me = hit->route;
	size_t pl = me->path_len;

	/* No route anywhere lies under ours: none can take our paths, whatever the Host. */
	if (t->indexed && !me->below)
		return true;
	h = host_norm(host, &hostlen, hb);
	for (size_t i = 0; i < t->n; i++) {
		const struct route *r = &t->r[i];
		size_t rl = r->path_len;

		/* Another route for this Host whose prefix is strictly below ours could take
		 * some of the paths under ours. One above or beside ours cannot: it lost. */
		if (r == me || host_rank(r, h, h ? hostlen : 0) == 0)
			continue;
		if (rl > pl && path_has(me->path, pl, r->path, rl))
			return false;
	}
	return true;
}

void
route_table_free(struct route_table *t)
{
	unindex(t);
	free(t->r);
	t->r = NULL;
	t->n = t->cap = 0;
	t->has_host = false;
}
