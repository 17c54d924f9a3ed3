/*
 * durable_store.c - what every durable_store.h backend shares: opening by backend
 * name, kind names, state names, freeing a claimed task.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable_store.h"

/* Weak: a build without worker/durable_pg.c (no libpq) still links; opening a
 * "postgresql" store then fails clearly. */
struct durable_store *durable_pg_open(const struct durable_conf *, uint32_t, char *, size_t)
    __attribute__((weak));

struct durable_store *
durable_store_open(const struct durable_conf *conf, uint32_t flags, char *err, size_t errlen)
{
	switch (conf->backend) {
	case DURABLE_BACKEND_LOCAL:
		return durable_local_open(conf, flags, err, errlen);
	case DURABLE_BACKEND_POSTGRESQL:
		if (durable_pg_open != NULL)
			return durable_pg_open(conf, flags, err, errlen);
		snprintf(err, errlen, "this build has no postgresql backend");
		errno = ENOTSUP;
		return NULL;
	}
	snprintf(err, errlen, "unknown backend %u", conf->backend);
	errno = EINVAL;
	return NULL;
}

void
durable_task_clear(struct durable_task *t)
{
	free(t->payload);
	memset(t, 0, sizeof(*t));
}

const char *
durable_state_name(int state)
{
	static const char *const names[DURABLE_STATE_MAX] = {
		[DURABLE_PENDING] = "pending", [DURABLE_RUNNING] = "running",
		[DURABLE_DONE] = "done", [DURABLE_DEAD] = "dead",
	};

	return state >= 0 && state < DURABLE_STATE_MAX ? names[state] : "?";
}

int
durable_kind_valid(const char *kind)
{
	size_t n = 0;

	if (kind == NULL)
		return 0;
	for (const char *p = kind; *p != '\0'; p++, n++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == ':' || *p == '-'))
			return 0;
	return n >= 1 && n <= DURABLE_KIND_MAX;
}
