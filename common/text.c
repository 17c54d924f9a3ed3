/*
 * text.c - sanitizing tenant-written text (see text.h).
 */
#include "text.h"

#include <stdbool.h>

static bool
printable(unsigned char c, int flags)
{
	if (c < ' ' || c > '~')
		return false;
	if (flags & TEXT_TOKEN)
		return c != ' ' && c != '"' && c != '=' && c != '\\';
	return true;
}

size_t
text_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen, int flags)
{
	char repl = (flags & TEXT_TOKEN) ? '_' : '?';
	size_t i;

	/* One read per byte: the source may change under us (shared memory). */
	for (i = 0; i + 1 < dstlen && i < srclen; i++) {
		unsigned char c = (unsigned char)((volatile const char *)src)[i];

		if (c == '\0')
			break;
		dst[i] = printable(c, flags) ? (char)c : repl;
	}
	dst[i] = '\0';
	return i;
}
