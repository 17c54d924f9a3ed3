/*
 * fetch_allow.c - destination host patterns for outbound fetches (see fetch_allow.h).
 * Pure string work, no I/O: the fetch module asks it about the host curl's own URL
 * parser found, so the host we check is the host curl connects to.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetch_allow.h"

#define HOST_MAX 253	/* the longest DNS name */

/* A character a host pattern may hold: a DNS label, an IPv4 or a bracketed IPv6. */
static bool
host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.' || c == '_' || c == ':' || c == '[' || c == ']';
}

/* LEN of S without one trailing dot ("example.com." is "example.com"). */
static size_t
host_len(const char *s)
{
	size_t n = strlen(s);

	return n > 1 && s[n - 1] == '.' ? n - 1 : n;
}

int
fetch_allow_add(struct fetch_allow *l, const char *pattern)
{
	const char *p = pattern;
	char *copy;
	size_t n;

	if (l == NULL || pattern == NULL || *pattern == '\0') {
		errno = EINVAL;
		return -1;
	}
	if (p[0] == '*' && p[1] == '.')
		p += 2;
	else if (strcmp(p, "*") == 0)
		p += 1;
	n = host_len(p);
	if (n > HOST_MAX || (n == 0 && p == pattern + 2)) {
		errno = EINVAL;
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (!host_char(p[i])) {
			errno = EINVAL;
			return -1;
		}
	}
	if (l->fa_n == FETCH_ALLOW_MAX) {
		errno = ENOSPC;
		return -1;
	}
	if ((copy = strndup(pattern, (size_t)(p - pattern) + n)) == NULL)
		return -1;
	for (char *c = copy; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	l->fa_pats[l->fa_n++] = copy;
	return 0;
}

/* Whether HOST (LEN bytes) matches the stored (lower-case) pattern PAT. */
static bool
pattern_match(const char *pat, const char *host, size_t len)
{
	size_t plen;

	if (strcmp(pat, "*") == 0)
		return true;
	if (pat[0] == '*' && pat[1] == '.') {
		/* ".suffix" at the end of a longer name: a.example.com, not example.com. */
		plen = strlen(pat + 1);
		return len > plen && strncasecmp(host + len - plen, pat + 1, plen) == 0;
	}
	plen = strlen(pat);
	return len == plen && strncasecmp(host, pat, len) == 0;
}

bool
fetch_allow_match(const struct fetch_allow *l, const char *host)
{
	size_t len;

	if (l == NULL || l->fa_n == 0)
		return true;
	if (host == NULL || (len = host_len(host)) == 0)
		return false;
	for (size_t i = 0; i < l->fa_n; i++)
		if (pattern_match(l->fa_pats[i], host, len))
			return true;
	return false;
}

void
fetch_allow_clear(struct fetch_allow *l)
{
	for (size_t i = 0; i < l->fa_n; i++)
		free(l->fa_pats[i]);
	l->fa_n = 0;
}
