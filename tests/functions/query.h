/*
 * query.h - the helpers the test functions share: read a number or a string from the
 * query ("ms=100&n=2&to=..."), so each scenario is driven by its URL.
 */
#ifndef TESTFN_QUERY_H
#define TESTFN_QUERY_H

#include <stdlib.h>
#include <string.h>

#include "edgevisor.h"

/* The value of KEY in the request's query as a number, or DEF when absent. */
static inline long
query_long(const edge_req *req, const char *key, long def)
{
	const char *q = edge_req_query(req);
	size_t klen = strlen(key);

	while (q != NULL && *q != '\0') {
		if (strncmp(q, key, klen) == 0 && q[klen] == '=')
			return strtol(q + klen + 1, NULL, 10);
		q = strchr(q, '&');
		if (q != NULL)
			q++;
	}
	return def;
}

/* The value of KEY in the query, copied into OUT (no %-decoding: plain values only).
 * 0, or -1 when absent or longer than OUTLEN - 1. */
static inline int
query_str(const edge_req *req, const char *key, char *out, size_t outlen)
{
	const char *q = edge_req_query(req);
	size_t klen = strlen(key), n;

	while (q != NULL && *q != '\0') {
		if (strncmp(q, key, klen) == 0 && q[klen] == '=') {
			n = strcspn(q + klen + 1, "&");
			if (n >= outlen)
				return -1;
			memcpy(out, q + klen + 1, n);
			out[n] = '\0';
			return 0;
		}
		q = strchr(q, '&');
		if (q != NULL)
			q++;
	}
	return -1;
}

/* True when the query holds KEY=VALUE exactly. */
static inline int
query_is(const edge_req *req, const char *key, const char *value)
{
	const char *q = edge_req_query(req);
	size_t klen = strlen(key), vlen = strlen(value);

	while (q != NULL && *q != '\0') {
		if (strncmp(q, key, klen) == 0 && q[klen] == '=' &&
		    strncmp(q + klen + 1, value, vlen) == 0 &&
		    (q[klen + 1 + vlen] == '\0' || q[klen + 1 + vlen] == '&'))
			return 1;
		q = strchr(q, '&');
		if (q != NULL)
			q++;
	}
	return 0;
}

#endif
