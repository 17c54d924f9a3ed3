/*
 * test_fetch_allow.c - the fetch allow-list's host patterns (worker/fetch_allow.c):
 * exact names, "*.suffix", "*", case and trailing dots, refused patterns.
 */
#include <errno.h>
#include <stdbool.h>

#include "fetch_allow.h"
#include "unit.h"

static void
case_empty_allows_all(void)
{
	struct fetch_allow l = { 0 };

	UNIT_CHECK(fetch_allow_match(&l, "anything.example"));
	UNIT_CHECK(fetch_allow_match(&l, "127.0.0.1"));
out:
	fetch_allow_clear(&l);
}

static void
case_exact_and_suffix(void)
{
	struct fetch_allow l = { 0 };

	UNIT_CHECK(fetch_allow_add(&l, "api.example.com") == 0);
	UNIT_CHECK(fetch_allow_add(&l, "*.Logs.Example.org") == 0);
	UNIT_CHECK(fetch_allow_add(&l, "127.0.0.1") == 0);
	UNIT_CHECK(fetch_allow_match(&l, "api.example.com"));
	UNIT_CHECK(fetch_allow_match(&l, "API.Example.COM."));
	UNIT_CHECK(!fetch_allow_match(&l, "example.com"));
	UNIT_CHECK(!fetch_allow_match(&l, "xapi.example.com"));
	UNIT_CHECK(!fetch_allow_match(&l, "api.example.com.evil.net"));
	UNIT_CHECK(fetch_allow_match(&l, "eu.logs.example.org"));
	UNIT_CHECK(fetch_allow_match(&l, "a.b.logs.example.org"));
	/* "*.suffix" is the subdomains, not the name itself, nor a name ending alike. */
	UNIT_CHECK(!fetch_allow_match(&l, "logs.example.org"));
	UNIT_CHECK(!fetch_allow_match(&l, "evillogs.example.org"));
	UNIT_CHECK(fetch_allow_match(&l, "127.0.0.1"));
	UNIT_CHECK(!fetch_allow_match(&l, "127.0.0.10"));
	UNIT_CHECK(!fetch_allow_match(&l, ""));
	UNIT_CHECK(!fetch_allow_match(&l, NULL));
out:
	fetch_allow_clear(&l);
}

static void
case_star_and_refusals(void)
{
	struct fetch_allow l = { 0 };

	errno = 0;
	UNIT_CHECK(fetch_allow_add(&l, "") < 0 && errno == EINVAL);
	UNIT_CHECK(fetch_allow_add(&l, "*.") < 0 && errno == EINVAL);
	UNIT_CHECK(fetch_allow_add(&l, "a b") < 0 && errno == EINVAL);
	UNIT_CHECK(fetch_allow_add(&l, "a/b") < 0 && errno == EINVAL);
	UNIT_CHECK(fetch_allow_add(&l, "*x.com") < 0 && errno == EINVAL);
	errno = 0;
	UNIT_CHECK(l.fa_n == 0);
	UNIT_CHECK(fetch_allow_add(&l, "[::1]") == 0);
	UNIT_CHECK(fetch_allow_match(&l, "[::1]"));
	UNIT_CHECK(!fetch_allow_match(&l, "localhost"));
	UNIT_CHECK(fetch_allow_add(&l, "*") == 0);
	UNIT_CHECK(fetch_allow_match(&l, "localhost"));
	fetch_allow_clear(&l);
	for (int i = 0; i < FETCH_ALLOW_MAX; i++)
		UNIT_CHECK(fetch_allow_add(&l, "h.example") == 0);
	UNIT_CHECK(fetch_allow_add(&l, "h.example") < 0 && errno == ENOSPC);
	errno = 0;
out:
	fetch_allow_clear(&l);
}

int
main(int argc, char **argv)
{
	unit_run("empty_allows_all", case_empty_allows_all);
	unit_run("exact_and_suffix", case_exact_and_suffix);
	unit_run("star_and_refusals", case_star_and_refusals);
	return unit_exit();
}
