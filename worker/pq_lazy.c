/*
 * pq_lazy.c - loads libpq when a PostgreSQL store is first opened (see pq_lazy.h for
 * why). Not including pq_lazy.h's redirections: this file names the real symbols.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#define WK_PQ_LAZY_NO_MACROS
#include "pq_lazy.h"

struct pq_lazy pq_lazy;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char why[256] = "libpq.so.5 could not be loaded";  /* "" once loaded */

/* Stores open on threads of their own (the worker's store thread, the supervisor's
 * counts reader): the load runs once, whoever asks first. */
static void
load(void)
{
	const char *missing = NULL;
	void *h;

	/* RTLD_LOCAL: its symbols stay out of the function's namespace. */
	if ((h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(why, sizeof(why), "libpq.so.5: %s", dlerror());
		return;
	}
#define PQ_LAZY_SYM(name, ret, params)                                            \
	if (missing == NULL && (*(void **)&pq_lazy.name = dlsym(h, #name)) == NULL) \
		missing = #name;
	PQ_LAZY_CALLS(PQ_LAZY_SYM)
#undef PQ_LAZY_SYM
	if (missing != NULL) {
		snprintf(why, sizeof(why), "libpq.so.5 has no %s", missing);
		dlclose(h);
		return;
	}
	why[0] = '\0';
}

int
pq_lazy_load(char *err, size_t errlen)
{
	pthread_once(&once, load);
	if (why[0] != '\0') {
		snprintf(err, errlen, "postgresql: %s", why);
		return -1;
	}
	return 0;
}
