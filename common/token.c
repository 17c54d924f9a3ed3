/*
 * token.c - reading and comparing the admin bearer token (see token.h).
 */
#include "token.h"

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
	struct stat st;
	ssize_t got;
	size_t len = 0;
	int fd, rc = -1;

	memset(out, 0, TOKEN_MAX + 1);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* fstat of what we opened: no window between the check and the read. */
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %u: must be owned by root or uid %u",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: permissions %04o are too open: the token must not "
		    "be accessible by group or others (chmod 600)", path,
		    (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof(buf)) {
		got = read(fd, buf + len, sizeof(buf) - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
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
	close(fd);
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
