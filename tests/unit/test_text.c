/*
 * test_text.c - text_sanitize: bounded, stops at NUL, nothing but printable ASCII
 * comes out; TEXT_TOKEN also makes one word.
 */
#include <string.h>

#include "../../common/text.h"
#include "unit.h"

static void
case_text(void)
{
	char dst[16], src[8] = { 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h' };   /* no NUL */

	UNIT_CHECK(text_sanitize(dst, sizeof(dst), "init \"failed\" =\\", 64, 0) == 15 &&
	    strcmp(dst, "init \"failed\" =") == 0);
	UNIT_CHECK(text_sanitize(dst, sizeof(dst), "a\nb\tc\x01\x7f\xc3\xa9", 64, 0) == 9 &&
	    strcmp(dst, "a?b?c????") == 0);
	/* Bounded by the source and by the destination, never past either. */
	UNIT_CHECK(text_sanitize(dst, sizeof(dst), src, sizeof(src), 0) == 8 &&
	    strcmp(dst, "abcdefgh") == 0);
	UNIT_CHECK(text_sanitize(dst, 4, src, sizeof(src), 0) == 3 && strcmp(dst, "abc") == 0);
	UNIT_CHECK(text_sanitize(dst, sizeof(dst), "ab\0cd", 5, 0) == 2 && strcmp(dst, "ab") == 0);
	UNIT_CHECK(text_sanitize(dst, 1, "abc", 3, 0) == 0 && dst[0] == '\0');
out:
	;
}

static void
case_token(void)
{
	char dst[32];

	text_sanitize(dst, sizeof(dst), "db write=\"x\"\\\n\xff-ok_1.2", 64, TEXT_TOKEN);
	UNIT_CHECKF(strcmp(dst, "db_write__x____-ok_1.2") == 0, "%s", dst);
	/* In place. */
	strcpy(dst, "a b");
	text_sanitize(dst, sizeof(dst), dst, sizeof(dst), TEXT_TOKEN);
	UNIT_CHECK(strcmp(dst, "a_b") == 0);
out:
	;
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("text", case_text);
	unit_run("token", case_token);
	return unit_exit();
}
