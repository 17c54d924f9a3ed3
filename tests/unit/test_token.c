/*
 * test_token.c - token_equal (common/token.c): equal only for the same bytes and the
 * same length, whatever the padding. That its time does not depend on how much of
 * a guess is right is a property of the code (no early exit, common/token.c), not
 * judged here by a clock: a timed assertion on a shared machine passes by luck.
 */
#include <stdbool.h>
#include <string.h>

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

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("token_equal", case_equal);
	return unit_exit();
}
