/*
 * query.h - the one helper the test functions share: read a number from the query
 * string ("ms=100&n=2"), so each scenario is driven by its URL.
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
