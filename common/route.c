/*
 * route.c - building and matching the route table of a shared listener (route.h).
 * A linear scan: a listener has at most a few hundred routes, and each test is a
 * length compare and a memcmp, cheaper than the hash a trie would need for Host.
 */
#include "route.h"

#include <ctype.h>
#include <errno.h>
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

int
route_add(struct route_table *t, const struct route *r)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 8;
		struct route *n = realloc(t->r, ncap * sizeof(*n));

		if (n == NULL)
			return -1;
		t->r = n;
		t->cap = ncap;
	}
	t->r[t->n++] = *r;
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

int
route_match(const struct route_table *t, const char *host, size_t hostlen,
    const char *path, size_t pathlen, struct route_hit *hit)
{
	char hb[ROUTE_HOST_LEN];
	const char *h = host_norm(host, &hostlen, hb);
	const struct route *best = NULL;
	size_t best_host = 0, best_path = 0;

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
	const char *h = host_norm(host, &hostlen, hb);
	const struct route *me = hit->route;
	size_t pl = me->path_len;

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
	free(t->r);
	t->r = NULL;
	t->n = t->cap = 0;
	t->has_host = false;
}
