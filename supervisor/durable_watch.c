/*
 * durable_watch.c - what the supervisor knows of its functions' durable tasks: the
 * counts per kind (for /status and /metrics) and whether tasks are due (so a
 * function scaled to zero gets a worker for them).
 *
 * The journal is read by a thread of its own, never on the loop: every
 * DW_PERIOD_MS it opens each local journal read-only (as root; WAL lets it read
 * beside the writing workers without blocking them), or the function's PostgreSQL
 * (read-only, each call bounded to a second), and takes the counts and the next due
 * time. The loop only copies the last snapshot under a mutex, and hears
 * through one eventfd when a function's "tasks are due" changed; it then pushes
 * EVQ_DURABLE_DUE for the orchestrator to decide (evq.h). Counts are therefore up
 * to DW_PERIOD_MS old.
 *
 * The files are the tenant's (its directory, its uid): every access to them runs with
 * this thread's filesystem uid and gid set to the directory's owner (setfsuid is
 * per thread), so a link the tenant planted (journal.db-shm -> /etc/passwd) is
 * followed with the tenant's rights, never root's.
 *
 * Why the supervisor reads and not the workers publish: a function at zero workers
 * has nobody to publish, and after a supervisor restart only the journal knows.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fsuid.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "dsn_file.h"
#include "durable_watch.h"
#include "evq.h"
#include "pool.h"

#define DW_PERIOD_MS 1000

struct dw_entry {
	TAILQ_ENTRY(dw_entry) e_entry;
	char name[64];
	char path[4200];
	char dir[4200];
	char *dsn;                    /* postgresql: the connection string (else NULL) */
	bool removed;                 /* the config dropped it: the thread frees it */
	/* The thread's own: */
	struct durable_store *store;
	bool open_failed_logged;
	/* The snapshot, under dw.mtx: */
	struct durable_count counts[DW_KINDS_MAX];
	size_t ncounts;
	int64_t next_due;
	bool due, due_told;
};

static struct {
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	TAILQ_HEAD(, dw_entry) entries;
	bool stop, up;
	pthread_t thread;
	int efd;
	struct event *ev;
} dw = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.entries = TAILQ_HEAD_INITIALIZER(dw.entries),
	.efd = -1,
};

/* The thread: one pass over every journal. Entries are only freed here. */
static void
pass(void)
{
	struct dw_entry *e, *next;
	bool tell = false;

	pthread_mutex_lock(&dw.mtx);
	for (e = TAILQ_FIRST(&dw.entries); e != NULL; e = next) {
		struct durable_count counts[DW_KINDS_MAX];
		struct durable_conf dc = { .backend = DURABLE_BACKEND_LOCAL, .timeout_ms = 200 };
		struct stat st;
		char err[512];
		size_t n = 0;
		int64_t due = 0;

		next = TAILQ_NEXT(e, e_entry);
		if (e->removed) {
			TAILQ_REMOVE(&dw.entries, e, e_entry);
			if (e->store != NULL)
				e->store->ops->close(e->store);
			dsn_free(e->dsn);
			free(e);
			continue;
		}
		/* The entry stays: only this thread frees it. */
		pthread_mutex_unlock(&dw.mtx);
		if (e->dsn == NULL) {
			/* As the directory's owner (see above); not a directory: nothing to read. */
			if (lstat(e->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
				pthread_mutex_lock(&dw.mtx);
				continue;
			}
			setfsgid(st.st_gid);
			setfsuid(st.st_uid);
		}
		/* PostgreSQL: a bounded call on this thread; a missing schema reads as
		 * empty (no worker has connected yet). */
		if (e->store == NULL && (e->dsn != NULL || stat(e->path, &st) == 0)) {
			if (e->dsn != NULL) {
				dc.backend = DURABLE_BACKEND_POSTGRESQL;
				dc.dsn = e->dsn;
				dc.timeout_ms = 1000;
			} else {
				dc.path = e->path;
			}
			dc.function = e->name;
			e->store = durable_store_open(&dc, DURABLE_OPEN_READONLY, err, sizeof(err));
			if (e->store == NULL && !e->open_failed_logged) {
				e->open_failed_logged = true;
				log_warn("durable_watch_open", "fn=%s err=%s", e->name, log_qv(err));
			}
		}
		if (e->store != NULL &&
		    (e->store->ops->counts(e->store, counts, DW_KINDS_MAX, &n, err, sizeof(err)) < 0 ||
		    e->store->ops->next_due(e->store, &due, err, sizeof(err)) < 0)) {
			log_warn("durable_watch_read", "fn=%s err=%s", e->name, log_qv(err));
			e->store->ops->close(e->store);
			e->store = NULL;
			n = 0;
			due = 0;
		}
		setfsuid(geteuid());
		setfsgid(getegid());
		pthread_mutex_lock(&dw.mtx);
		memcpy(e->counts, counts, n * sizeof(counts[0]));
		e->ncounts = n;
		e->next_due = due;
		e->due = due > 0 && due <= clock_wall_ms();
		if (e->due != e->due_told)
			tell = true;
	}
	pthread_mutex_unlock(&dw.mtx);
	if (tell) {
		uint64_t one = 1;
		(void)!write(dw.efd, &one, sizeof(one));
	}
}

static void *
watch_main(void *unused)
{
	pthread_mutex_lock(&dw.mtx);
	while (!dw.stop) {
		struct timespec ts;
		int64_t at = clock_wall_ms() + DW_PERIOD_MS;

		pthread_mutex_unlock(&dw.mtx);
		pass();
		pthread_mutex_lock(&dw.mtx);
		ts.tv_sec = at / 1000;
		ts.tv_nsec = (at % 1000) * 1000000;
		while (!dw.stop && pthread_cond_timedwait(&dw.cond, &dw.mtx, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&dw.mtx);
	return NULL;
}

/* The loop: a function's "due" changed; the orchestrator decides what follows. */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct dw_entry *e;
	uint64_t n;

	(void)!read(dw.efd, &n, sizeof(n));
	pthread_mutex_lock(&dw.mtx);
	TAILQ_FOREACH(e, &dw.entries, e_entry) {
		struct pool *p;

		if (e->removed || e->due == e->due_told)
			continue;
		e->due_told = e->due;
		TAILQ_FOREACH(p, &pools, p_entry)
			if (!p->p_retiring && strcmp(p->p_conf->name, e->name) == 0)
				evq_push(EVQ_DURABLE_DUE, p, NULL, e->due ? 1 : 0);
	}
	pthread_mutex_unlock(&dw.mtx);
}

int
durable_watch_init(struct event_base *base)
{
	if ((dw.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		return -1;
	dw.ev = event_new(base, dw.efd, EV_READ | EV_PERSIST, wake_cb, NULL);
	if (dw.ev == NULL || event_add(dw.ev, NULL) < 0)
		return -1;
	if (pthread_create(&dw.thread, NULL, watch_main, NULL) != 0)
		return -1;
	dw.up = true;
	return 0;
}

void
durable_watch_config(const struct sv_conf *conf)
{
	const struct fn_conf *fc;
	struct dw_entry *e;

	pthread_mutex_lock(&dw.mtx);
	TAILQ_FOREACH(e, &dw.entries, e_entry)
		e->removed = true;
	TAILQ_FOREACH(fc, &conf->functions, entry) {
		char path[sizeof(e->path)];

		const char *dsn = fc->durable.backend == DURABLE_POSTGRESQL ? fc->durable.dsn : NULL;

		if ((fc->durable.backend != DURABLE_LOCAL || fc->durable.dir == NULL) && dsn == NULL)
			continue;
		if (dsn != NULL)
			snprintf(path, sizeof(path), "postgresql");
		else
			snprintf(path, sizeof(path), "%s/journal.db", fc->durable.dir);
		TAILQ_FOREACH(e, &dw.entries, e_entry)
			if (strcmp(e->name, fc->name) == 0 && strcmp(e->path, path) == 0 &&
			    (e->dsn == NULL) == (dsn == NULL) && (dsn == NULL || strcmp(e->dsn, dsn) == 0))
				break;
		if (e != NULL) {
			e->removed = false;
			continue;
		}
		if ((e = calloc(1, sizeof(*e))) == NULL)
			continue;   /* no counts for it; logged once below */
		snprintf(e->name, sizeof(e->name), "%s", fc->name);
		snprintf(e->path, sizeof(e->path), "%s", path);
		if (fc->durable.dir != NULL)
			snprintf(e->dir, sizeof(e->dir), "%s", fc->durable.dir);
		if (dsn != NULL && (e->dsn = strdup(dsn)) == NULL) {
			free(e);
			continue;
		}
		TAILQ_INSERT_TAIL(&dw.entries, e, e_entry);
	}
	pthread_cond_signal(&dw.cond);
	pthread_mutex_unlock(&dw.mtx);
}

size_t
durable_watch_counts(const char *fn, struct durable_count *out, size_t max, int64_t *next_due)
{
	struct dw_entry *e;
	size_t n = 0;

	*next_due = 0;
	pthread_mutex_lock(&dw.mtx);
	TAILQ_FOREACH(e, &dw.entries, e_entry)
		if (!e->removed && strcmp(e->name, fn) == 0) {
			n = e->ncounts < max ? e->ncounts : max;
			memcpy(out, e->counts, n * sizeof(*out));
			*next_due = e->next_due;
			break;
		}
	pthread_mutex_unlock(&dw.mtx);
	return n;
}

void
durable_watch_shutdown(void)
{
	struct dw_entry *e;

	if (dw.up) {
		pthread_mutex_lock(&dw.mtx);
		dw.stop = true;
		pthread_cond_signal(&dw.cond);
		pthread_mutex_unlock(&dw.mtx);
		pthread_join(dw.thread, NULL);
		dw.up = false;
	}
	while ((e = TAILQ_FIRST(&dw.entries)) != NULL) {
		TAILQ_REMOVE(&dw.entries, e, e_entry);
		if (e->store != NULL)
			e->store->ops->close(e->store);
		dsn_free(e->dsn);
		free(e);
	}
	if (dw.ev != NULL)
		event_free(dw.ev);
	dw.ev = NULL;
	if (dw.efd >= 0)
		close(dw.efd);
	dw.efd = -1;
}
