/*
 * test_route.c - the shared listener's route table (common/route.c): normalising,
 * duplicate detection, and most-specific-wins matching by Host and path prefix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "unit.h"

static int
add(struct route_table *t, enum route_kind kind, const char *host, const char *path,
    const char *fn, bool strip)
{
	struct route r;
	const char *why;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.strip = strip;
	if (route_set(&r, host, path, &why) < 0)
		return -1;
	strcpy(r.fn, fn);
	return route_add(t, &r);
}

/* An indexed copy of T (route_table_index): it must answer as T's scan does. */
static struct route_table *
indexed(const struct route_table *t)
{
	static struct route_table ix;

	route_table_free(&ix);
	for (size_t i = 0; i < t->n; i++)
		if (route_add(&ix, &t->r[i]) < 0)
			abort();
	if (route_table_index(&ix) < 0 || !ix.indexed)
		abort();
	return &ix;
}

/* Whether the scan of T and the index of IX chose the same route, in the same way. */
static bool
same_hit(const struct route_table *t, const struct route_hit *a, int ra,
    const struct route_table *ix, const struct route_hit *b, int rb)
{
	if (ra != rb)
		return false;
	return ra < 0 || (a->route - t->r == b->route - ix->r && a->strip == b->strip &&
	    a->fnlen == b->fnlen && memcmp(a->fn, b->fn, a->fnlen) == 0);
}

static unsigned index_mismatches;

/* Matches HOST/PATH and says which function (and strip) it got: "" for no route.
 * An indexed copy of T is matched too; any difference is counted (checked below). */
static const char *
match(const struct route_table *t, const char *host, const char *path, size_t *strip)
{
	static char fn[ROUTE_FN_LEN];
	struct route_hit hit, ihit;
	const struct route_table *ix = indexed(t);
	size_t hl = host ? strlen(host) : 0, pl = strlen(path);
	int r = route_match(t, host, hl, path, pl, &hit);

	if (!same_hit(t, &hit, r, ix, &ihit, route_match(ix, host, hl, path, pl, &ihit)))
		index_mismatches++;
	if (r < 0)
		return "";
	memcpy(fn, hit.fn, hit.fnlen);
	fn[hit.fnlen] = '\0';
	if (strip != NULL)
		*strip = hit.strip;
	return fn;
}

static void
case_prefix_longest(void)
{
	struct route_table t = { 0 };
	size_t strip = 99;

	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/", "root", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/api", "api", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/api/users/", "users", true) == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/api/users/7", &strip), "users") == 0);
	UNIT_CHECK(strip == 10);
	UNIT_CHECK(strcmp(match(&t, NULL, "/api/users", &strip), "users") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/api/usersx", &strip), "api") == 0);
	UNIT_CHECK(strip == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/api", NULL), "api") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/apix", NULL), "root") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/", NULL), "root") == 0);
out:
	route_table_free(&t);
}

static void
case_no_root(void)
{
	struct route_table t = { 0 };

	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/a", "a", false) == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/b", NULL), "") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/", NULL), "") == 0);
out:
	route_table_free(&t);
}

static void
case_supabase(void)
{
	struct route_table t = { 0 };
	size_t strip = 0;

	UNIT_CHECK(add(&t, ROUTE_SUPABASE, "", "/functions/v1", "", true) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/functions/v1/special", "other", false) == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/functions/v1/hello/x/y", &strip), "hello") == 0);
	UNIT_CHECK(strip == strlen("/functions/v1"));
	UNIT_CHECK(strcmp(match(&t, NULL, "/functions/v1/hello", NULL), "hello") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/functions/v1/special/z", NULL), "other") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/functions/v1", NULL), "") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/functions/v1/", NULL), "") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/functions/v2/hello", NULL), "") == 0);
out:
	route_table_free(&t);
}

static void
case_host(void)
{
	struct route_table t = { 0 };

	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/", "any", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "*.example.com", "", "wild", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "*.eu.example.com", "", "eu", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "API.Example.com", "", "exact", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "api.example.com", "/v2", "exact2", false) == 0);
	UNIT_CHECK(t.has_host);
	UNIT_CHECK(strcmp(match(&t, "api.example.com", "/x", NULL), "exact") == 0);
	UNIT_CHECK(strcmp(match(&t, "API.EXAMPLE.COM:8080", "/x", NULL), "exact") == 0);
	UNIT_CHECK(strcmp(match(&t, "api.example.com", "/v2/x", NULL), "exact2") == 0);
	UNIT_CHECK(strcmp(match(&t, "b.example.com", "/x", NULL), "wild") == 0);
	UNIT_CHECK(strcmp(match(&t, "a.b.example.com", "/x", NULL), "wild") == 0);
	UNIT_CHECK(strcmp(match(&t, "x.eu.example.com", "/", NULL), "eu") == 0);
	/* The suffix needs a label before it. */
	UNIT_CHECK(strcmp(match(&t, "example.com", "/x", NULL), "any") == 0);
	UNIT_CHECK(strcmp(match(&t, "badexample.com", "/x", NULL), "any") == 0);
	UNIT_CHECK(strcmp(match(&t, NULL, "/x", NULL), "any") == 0);
	UNIT_CHECK(strcmp(match(&t, "[::1]:80", "/x", NULL), "any") == 0);
out:
	route_table_free(&t);
}

static void
case_duplicates(void)
{
	struct route_table t = { 0 };
	size_t a = 0, b = 0;

	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/a", "x", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "h.com", "/a", "y", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_SUPABASE, "", "/functions/v1", "", true) == 0);
	UNIT_CHECK(route_check(&t, &a, &b) == 0);
	/* "/a/" is "/a", and Host case does not count. */
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "H.COM", "/a/", "z", false) == 0);
	UNIT_CHECK(route_check(&t, &a, &b) == -1 && a == 1 && b == 3);
	route_table_free(&t);
	UNIT_CHECK(add(&t, ROUTE_SUPABASE, "", "/functions/v1", "", true) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/functions/v1/", "f", false) == 0);
	UNIT_CHECK(route_check(&t, &a, &b) == -1 && a == 0 && b == 1);
out:
	route_table_free(&t);
}

static bool
sticky(const struct route_table *t, const char *host, const char *path)
{
	struct route_hit hit, ihit;
	const struct route_table *ix = indexed(t);
	size_t hl = host ? strlen(host) : 0;
	bool s;

	if (route_match(t, host, hl, path, strlen(path), &hit) < 0)
		return false;
	s = route_sticky(t, &hit, host, hl);
	if (route_match(ix, host, hl, path, strlen(path), &ihit) < 0 ||
	    route_sticky(ix, &ihit, host, hl) != s)
		index_mismatches++;
	return s;
}

static void
case_sticky(void)
{
	struct route_table t = { 0 };

	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/a", "a", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/a/deep", "d", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/b", "b", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "x.com", "/b/x", "bx", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_SUPABASE, "", "/functions/v1", "", true) == 0);
	/* /a has a route below it: its paths may belong to another function. */
	UNIT_CHECK(!sticky(&t, NULL, "/a/1"));
	UNIT_CHECK(sticky(&t, NULL, "/a/deep/1"));
	/* /b/x is below /b only for Host x.com. */
	UNIT_CHECK(sticky(&t, "y.com", "/b/1"));
	UNIT_CHECK(!sticky(&t, "X.com:80", "/b/1"));
	UNIT_CHECK(sticky(&t, "x.com", "/b/x/1"));
	UNIT_CHECK(sticky(&t, NULL, "/functions/v1/f/1"));
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/functions/v1/special", "s", false) == 0);
	UNIT_CHECK(!sticky(&t, NULL, "/functions/v1/f/1"));
out:
	route_table_free(&t);
}

static void
case_bad_patterns(void)
{
	struct route r;
	const char *why = NULL;

	memset(&r, 0, sizeof(r));
	UNIT_CHECK(route_set(&r, "a.com:80", "/", &why) == -1 && why != NULL);
	UNIT_CHECK(route_set(&r, "*", "/", &why) == -1);
	UNIT_CHECK(route_set(&r, "", "api", &why) == -1);
	UNIT_CHECK(route_set(&r, "", "/a?b", &why) == -1);
	UNIT_CHECK(route_set(&r, "*.ok.com", "/fine/", &why) == 0);
	UNIT_CHECK(strcmp(r.path, "/fine") == 0 && strcmp(r.host, "*.ok.com") == 0);
	UNIT_CHECK(route_set(&r, "", "/", &why) == 0 && r.path[0] == '\0');
out:
	;
}

/*
 * The index answers as the scan does: a table mixing Hosts, nested prefixes, a root,
 * a Supabase prefix and 300 flat routes, matched with every Host and path below
 * (each by match() and sticky(), which compare both ways), plus every difference
 * the cases above met.
 */
static void
case_index_same(void)
{
	static const char *hosts[] = { NULL, "a.com", "A.COM:8080", "x.a.com", "b.com", "[::1]:80", "" };
	static const char *paths[] = {
		"", "/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/a//b", "/f000", "/f000/x", "/f299",
		"/f2990", "/functions/v1", "/functions/v1/", "/functions/v1/h0/x", "/functions/v1/special",
		"*", "x", "/b", "/b/x/y",
	};
	struct route_table t = { 0 };
	char path[16], fn[8];

	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/", "root", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/a", "a", true) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "a.com", "/a", "a_host", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "*.a.com", "/a/b", "ab_sfx", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "b.com", "/", "b_root", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "", "/b/x", "bx", false) == 0);
	UNIT_CHECK(add(&t, ROUTE_SUPABASE, "", "/functions/v1", "", true) == 0);
	UNIT_CHECK(add(&t, ROUTE_PREFIX, "a.com", "/functions/v1/special", "s", false) == 0);
	for (int i = 0; i < 300; i++) {
		snprintf(path, sizeof(path), "/f%03d", i);
		snprintf(fn, sizeof(fn), "h%d", i % 2);
		UNIT_CHECK(add(&t, ROUTE_PREFIX, "", path, fn, false) == 0);
	}
	for (size_t h = 0; h < sizeof(hosts) / sizeof(hosts[0]); h++)
		for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
			(void)match(&t, hosts[h], paths[p], NULL);
			(void)sticky(&t, hosts[h], paths[p]);
		}
	UNIT_CHECK(strcmp(match(&t, NULL, "/f123/x", NULL), "h1") == 0);
	UNIT_CHECK(strcmp(match(&t, "a.com", "/a/b", NULL), "a_host") == 0);
	UNIT_CHECK(strcmp(match(&t, "x.a.com", "/a/b", NULL), "ab_sfx") == 0);
	UNIT_CHECK(index_mismatches == 0);
out:
	route_table_free(&t);
	route_table_free(indexed(&t));
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("prefix_longest_wins", case_prefix_longest);
	unit_run("no_root_no_route", case_no_root);
	unit_run("supabase_form", case_supabase);
	unit_run("host_exact_suffix_any", case_host);
	unit_run("duplicates_found", case_duplicates);
	unit_run("bad_patterns", case_bad_patterns);
	unit_run("sticky_routes", case_sticky);
	unit_run("index_answers_as_scan", case_index_same);
	return unit_exit();
}
