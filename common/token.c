/*
 * token.c - reading and comparing the admin bearer token (see token.h).
 */
#include "token.h"
#include "secret_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* RFC 6750 b64token: what may follow "Bearer " in an Authorization header. */
static bool
token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* The token's syntax; returns NULL if fine, else what is wrong. */
static const char *
token_syntax(const char *t, size_t len)
{
	size_t i = 0;

	if (len < TOKEN_MIN)
		return "the token is shorter than 16 characters";
	while (i < len && token_char((unsigned char)t[i]))
		i++;
	if (i == 0)
		return "the token must start with [A-Za-z0-9-._~+/]";
	while (i < len && t[i] == '=')
		i++;
	if (i < len)
		return "the token holds a character outside [A-Za-z0-9-._~+/=] "
		    "(one line, no spaces)";
	return NULL;
}

int
token_read(const char *path, char out[TOKEN_MAX + 1], char *err, size_t errlen)
{
	/* Room for the longest token, its CRLF, and one byte to notice a longer one. */
	char buf[TOKEN_MAX + 3];
	const char *why;
	size_t len;
	int rc = -1;

	memset(out, 0, TOKEN_MAX + 1);
	if (secret_file_read(path, "the token", buf, sizeof(buf), &len, err, errlen) < 0)
		return -1;
	if (len > TOKEN_MAX) {
		snprintf(err, errlen, "%s: the token is longer than %d characters", path,
		    TOKEN_MAX);
		goto out;
	}
	if ((why = token_syntax(buf, len)) != NULL) {
		snprintf(err, errlen, "%s: %s", path, why);
		goto out;
	}
	memcpy(out, buf, len);
	rc = 0;
out:
	/* The token stays in OUT only. */
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

bool
token_equal(const char *given, size_t len, const char want[TOKEN_MAX + 1])
{
	unsigned char pad[TOKEN_MAX + 1] = { 0 };
	volatile unsigned char diff = 0;
	size_t wlen = 0;

	/* Only the caller's own length decides this early answer. */
	if (len == 0 || len > TOKEN_MAX)
		return false;
	memcpy(pad, given, len);
	/*
	 * Every byte of both padded buffers, and the length, folded into DIFF with no
	 * branch on their values: WANT's length is counted without stopping at its end
	 * (a byte is non-zero or not, added as 0 or 1).
	 */
	for (size_t i = 0; i < TOKEN_MAX + 1; i++) {
		diff |= (unsigned char)(pad[i] ^ (unsigned char)want[i]);
		wlen += (size_t)(((unsigned)(unsigned char)want[i] + 0xffu) >> 8);
	}
	diff |= (unsigned char)((wlen ^ len) | ((wlen ^ len) >> 8));
	explicit_bzero(pad, sizeof(pad));
	return diff == 0;
}
