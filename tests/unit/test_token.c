/*
 * test_token.c - token_equal (common/token.c): equal only for the same bytes and the
 * same length, whatever the padding; and its timing does not depend on how much of
 * the token a guess gets right.
 */
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "../../common/token.h"
#include "unit.h"

static void
want_token(char out[TOKEN_MAX + 1], const char *s)
{
	memset(out, 0, TOKEN_MAX + 1);
	memcpy(out, s, strlen(s));
}

static void
case_equal(void)
{
	char want[TOKEN_MAX + 1], big[TOKEN_MAX + 2];
	const char *t = "0123456789abcdef";

	want_token(want, t);
	UNIT_CHECK(token_equal(t, strlen(t), want));
	UNIT_CHECK(!token_equal("0123456789abcdeF", 16, want));
	UNIT_CHECK(!token_equal("1123456789abcdef", 16, want));
	UNIT_CHECK(!token_equal(t, 15, want));                     /* a prefix */
	UNIT_CHECK(!token_equal("0123456789abcdefg", 17, want));   /* longer */
	UNIT_CHECK(!token_equal("0123456789abcdef\0", 17, want)); /* NUL past the end */
	UNIT_CHECK(!token_equal("", 0, want));
	memset(big, 'a', sizeof(big));
	want_token(want, "");
	UNIT_CHECK(!token_equal("", 0, want));                     /* no token: nothing matches */
	memset(want, 'a', TOKEN_MAX);
	want[TOKEN_MAX] = '\0';
	UNIT_CHECK(token_equal(big, TOKEN_MAX, want));              /* the longest */
	UNIT_CHECK(!token_equal(big, TOKEN_MAX + 1, want));         /* over the maximum */
	UNIT_CHECK(!token_equal(big, TOKEN_MAX - 1, want));
out:
	;
}

static double
time_guess(const char *guess, size_t len, const char want[TOKEN_MAX + 1], int rounds)
{
	struct timespec a, b;
	volatile bool sink = false;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < rounds; i++)
		sink ^= token_equal(guess, len, want);
	clock_gettime(CLOCK_MONOTONIC, &b);
	(void)sink;
	return (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
}

/*
 * A guess right in its first 63 bytes against one right in none: an early-exit
 * compare would take several times longer for the first. Best of 7 runs each, so
 * a busy (shared) machine only makes both slower; a generous 1.5x bound.
 */
static void
case_timing(void)
{
	char want[TOKEN_MAX + 1], near[64], far[64];
	double tc = 1e30, tf = 1e30, t;

	memset(want, 0, sizeof(want));
	memset(want, 'k', 64);
	memset(near, 'k', 64);
	near[63] = 'x';
	memset(far, 'x', 64);
	for (int r = 0; r < 7; r++) {
		if ((t = time_guess(near, 64, want, 200000)) < tc)
			tc = t;
		if ((t = time_guess(far, 64, want, 200000)) < tf)
			tf = t;
	}
	UNIT_CHECKF(tc < 1.5 * tf && tf < 1.5 * tc, "near guess %.0f ns, far guess %.0f ns "
	    "(200000 compares)", tc, tf);
out:
	;
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("token_equal", case_equal);
	unit_run("token_equal_timing", case_timing);
	return unit_exit();
}
