/*
 * head.h - what routing needs from a request head (head.c): its URL's path and its
 * Host, read with libhttp-parser from a buffer that holds the head whole, nothing
 * past the blank line looked at. The supervisor's router peeks heads with it; a
 * worker looks at the next head on a routed keep-alive connection the same way, so
 * both sides read a head alike.
 */
#ifndef EV_HEAD_H
#define EV_HEAD_H

#include <stdbool.h>
#include <stddef.h>

struct head {
	const char *path;            /* the URL's path ("/" when it has none) */
	size_t path_len;
	const char *host;            /* the first Host value, blanks trimmed; NULL: none */
	size_t host_len;
	unsigned nhost;              /* Host fields seen */
	/* Parser state (head.c). */
	const char *url;
	size_t url_len;
	bool in_host, done;
};

enum head_result { HEAD_MORE, HEAD_DONE, HEAD_BAD };

/* Parses BUF[0, LEN): HEAD_DONE with *H filled, HEAD_MORE (not whole yet), or
 * HEAD_BAD (not HTTP, or a URL without a usable path). */
enum head_result head_parse(const char *buf, size_t len, struct head *h);

#endif
