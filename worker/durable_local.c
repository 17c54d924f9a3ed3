/*
 * durable_local.c - the local journal: durable_store.h on one SQLite file per
 * function, in WAL mode.
 *
 * Why SQLite: one file, crash-safe transactions, an index for "what is due next",
 * and readers (edgevisorctl, the supervisor's counts) that never block the writer
 * in WAL mode. The engine is the only writer; a batch is one transaction.
 *
 * Durability per call: enqueue_batch runs with synchronous=FULL (the WAL is
 * fsync()ed before COMMIT returns: a recorded task survives a power cut). Every
 * other write (claim, finish, renew, release) runs with synchronous=NORMAL: it
 * survives a process crash (the WAL is in the page cache) and a power cut can only
 * lose the latest state changes - a task then runs again, which at-least-once
 * delivery allows; nothing recorded is lost.
 *
 * The size cap is SQLite's own: max_page_count = max_bytes / page_size, and an
 * insert past it fails SQLITE_FULL (rolled back whole, reported ENOSPC).
 *
 * Checkpoints (copying the WAL back into the database file, with its own fsync) run
 * on a thread and connection of their own, woken when the WAL passes
 * LOCAL_CKPT_PAGES: SQLite's automatic checkpoint would run inside a commit and
 * hold every enqueue waiting behind it.
 *
 * The WAL and shared-memory files are kept when the last connection closes
 * (SQLITE_FCNTL_PERSIST_WAL), so a reader running as root never creates them
 * with its own owner under the tenant's directory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "durable_store.h"

/* Bumped with every change to the schema below; PRAGMA user_version holds it. */
#define LOCAL_SCHEMA_VERSION 1
#define LOCAL_CKPT_PAGES     1000   /* SQLite's own default threshold */

struct local_store {
	struct durable_store base;
	sqlite3 *db;
	uint32_t idem_window_ms;
	int sync_full;                 /* the synchronous level now set */
	sqlite3_stmt *st_idem, *st_insert, *st_stat_enq, *st_finish, *st_stat,
	    *st_release, *st_renew, *st_next, *st_unkey;
	/* The checkpointer: its connection is its own; the flags are under ck_mtx. */
	sqlite3 *ck_db;
	pthread_t ck_thread;
	bool ck_up, ck_stop, ck_due;
	pthread_mutex_t ck_mtx;
	pthread_cond_t ck_cond;
};

static void *
ckpt_main(void *arg)
{
	struct local_store *ls = arg;

	pthread_mutex_lock(&ls->ck_mtx);
	for (;;) {
		while (!ls->ck_due && !ls->ck_stop)
			pthread_cond_wait(&ls->ck_cond, &ls->ck_mtx);
		if (ls->ck_stop)
			break;
		ls->ck_due = false;
		pthread_mutex_unlock(&ls->ck_mtx);
		/* PASSIVE: copies what no reader still needs, never waits for the writer. */
		sqlite3_wal_checkpoint_v2(ls->ck_db, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		pthread_mutex_lock(&ls->ck_mtx);
	}
	pthread_mutex_unlock(&ls->ck_mtx);
	return NULL;
}

/* After each commit (the writer's thread): wake the checkpointer past the threshold. */
static int
on_wal(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct local_store *ls = arg;

	if (pages >= LOCAL_CKPT_PAGES) {
		pthread_mutex_lock(&ls->ck_mtx);
		ls->ck_due = true;
		pthread_cond_signal(&ls->ck_cond);
		pthread_mutex_unlock(&ls->ck_mtx);
	}
	return SQLITE_OK;
}

/* A second connection and its thread; without them SQLite checkpoints in commits. */
static void
ckpt_start(struct local_store *ls, const char *path)
{
	int persist = 1;

	pthread_mutex_init(&ls->ck_mtx, NULL);
	pthread_cond_init(&ls->ck_cond, NULL);
	if (sqlite3_open_v2(path, &ls->ck_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK) {
		sqlite3_close(ls->ck_db);
		ls->ck_db = NULL;
		return;
	}
	sqlite3_busy_timeout(ls->ck_db, 1000);
	sqlite3_file_control(ls->ck_db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (pthread_create(&ls->ck_thread, NULL, ckpt_main, ls) != 0) {
		sqlite3_close(ls->ck_db);
		ls->ck_db = NULL;
		return;
	}
	ls->ck_up = true;
	sqlite3_wal_hook(ls->db, on_wal, ls);   /* replaces the automatic checkpoint */
}

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS tasks ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " kind TEXT NOT NULL,"
    " payload BLOB,"
    " idem_key TEXT,"
    " state INTEGER NOT NULL,"          /* enum durable_state */
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER NOT NULL,"
    " timeout_ms INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " due_ms INTEGER NOT NULL,"         /* PENDING: run at; RUNNING: lease end */
    " owner TEXT NOT NULL DEFAULT '',"
    " finished_ms INTEGER NOT NULL DEFAULT 0,"
    " why TEXT NOT NULL DEFAULT '');"
    "CREATE UNIQUE INDEX IF NOT EXISTS tasks_idem ON tasks(idem_key)"
    " WHERE idem_key IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS tasks_due ON tasks(due_ms) WHERE state < 2;"
    "CREATE INDEX IF NOT EXISTS tasks_done ON tasks(finished_ms) WHERE state = 2;"
    "CREATE TABLE IF NOT EXISTS stats ("
    " kind TEXT PRIMARY KEY,"
    " enqueued INTEGER NOT NULL DEFAULT 0,"
    " succeeded INTEGER NOT NULL DEFAULT 0,"
    " retried INTEGER NOT NULL DEFAULT 0,"
    " failed INTEGER NOT NULL DEFAULT 0);";

static int
fail(struct local_store *ls, int code, char *err, size_t errlen, const char *what)
{
	int rc = ls != NULL && ls->db != NULL ? sqlite3_extended_errcode(ls->db) : code;

	if (errlen > 0)
		snprintf(err, errlen, "%s: %s", what,
		    ls != NULL && ls->db != NULL ? sqlite3_errmsg(ls->db) : sqlite3_errstr(code));
	switch (rc & 0xff) {
	case SQLITE_FULL:
		errno = ENOSPC;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		errno = EAGAIN;
		break;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
		errno = EACCES;
		break;
	default:
		errno = EIO;
	}
	return -1;
}

static int
exec(struct local_store *ls, const char *sql, char *err, size_t errlen)
{
	int rc = sqlite3_exec(ls->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : fail(ls, rc, err, errlen, sql);
}

static int
set_sync(struct local_store *ls, int full, char *err, size_t errlen)
{
	if (ls->sync_full == full)
		return 0;
	if (exec(ls, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err,
	    errlen) < 0)
		return -1;
	ls->sync_full = full;
	return 0;
}

static int
begin(struct local_store *ls, int full, char *err, size_t errlen)
{
	if (set_sync(ls, full, err, errlen) < 0)
		return -1;
	return exec(ls, "BEGIN IMMEDIATE", err, errlen);
}

static int
commit(struct local_store *ls, char *err, size_t errlen)
{
	if (exec(ls, "COMMIT", err, errlen) == 0)
		return 0;
	{
		int e = errno;
		sqlite3_exec(ls->db, "ROLLBACK", NULL, NULL, NULL);
		errno = e;
	}
	return -1;
}

static void
rollback(struct local_store *ls)
{
	int e = errno;

	sqlite3_exec(ls->db, "ROLLBACK", NULL, NULL, NULL);
	errno = e;
}

static int
prep(struct local_store *ls, sqlite3_stmt **st, const char *sql, char *err, size_t errlen)
{
	int rc = sqlite3_prepare_v3(ls->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);

	return rc == SQLITE_OK ? 0 : fail(ls, rc, err, errlen, "prepare");
}

/* Runs a prepared statement that returns no row; resets it. */
static int
step_done(struct local_store *ls, sqlite3_stmt *st, char *err, size_t errlen, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : fail(ls, rc, err, errlen, what);
}

/* Adds N to column COL (ST_*) of KIND's totals. */
static int
bump_n(struct local_store *ls, const char *kind, int col, int64_t n, char *err, size_t errlen)
{
	sqlite3_bind_text(ls->st_stat, 1, kind, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ls->st_stat, 2, col == 0 ? n : 0);
	sqlite3_bind_int64(ls->st_stat, 3, col == 1 ? n : 0);
	sqlite3_bind_int64(ls->st_stat, 4, col == 2 ? n : 0);
	sqlite3_bind_int64(ls->st_stat, 5, col == 3 ? n : 0);
	return step_done(ls, ls->st_stat, err, errlen, "stats");
}

static int
bump(struct local_store *ls, const char *kind, int col, char *err, size_t errlen)
{
	return bump_n(ls, kind, col, 1, err, errlen);
}
enum { ST_ENQ = 0, ST_OK, ST_RETRY, ST_DEAD };

static int
local_enqueue(struct durable_store *s, const struct durable_new *v, size_t n, int64_t now_ms,
    int64_t *ids, uint8_t *dup, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;

	for (size_t i = 0; i < n; i++)
		if (!durable_kind_valid(v[i].kind) || v[i].len > DURABLE_PAYLOAD_MAX ||
		    v[i].max_attempts == 0 || (v[i].payload == NULL && v[i].len > 0) ||
		    (v[i].idem_key != NULL && (v[i].idem_key[0] == '\0' ||
		    strlen(v[i].idem_key) > DURABLE_KEY_MAX))) {
			snprintf(err, errlen, "task %zu: bad kind, payload, attempts or key", i);
			errno = EINVAL;
			return -1;
		}
	if (begin(ls, 1, err, errlen) < 0)
		return -1;
	/* One totals update per run of tasks of one kind, not one per task. */
	const char *run_kind = NULL;
	int64_t run_n = 0;
	for (size_t i = 0; i < n; i++) {
		const struct durable_new *t = &v[i];
		int rc;

		if (dup != NULL)
			dup[i] = 0;
		if (t->idem_key != NULL) {
			sqlite3_bind_text(ls->st_idem, 1, t->idem_key, -1, SQLITE_STATIC);
			rc = sqlite3_step(ls->st_idem);
			if (rc == SQLITE_ROW) {
				int64_t id = sqlite3_column_int64(ls->st_idem, 0);
				int state = sqlite3_column_int(ls->st_idem, 1);
				int64_t fin = sqlite3_column_int64(ls->st_idem, 2);

				sqlite3_reset(ls->st_idem);
				if (state != DURABLE_DONE || fin + ls->idem_window_ms >= now_ms) {
					ids[i] = id;
					if (dup != NULL)
						dup[i] = 1;
					continue;
				}
				/* The window passed: the key is free again. */
				sqlite3_bind_int64(ls->st_unkey, 1, id);
				if (step_done(ls, ls->st_unkey, err, errlen, "unkey") < 0)
					goto fail;
			} else {
				sqlite3_reset(ls->st_idem);
				if (rc != SQLITE_DONE) {
					fail(ls, rc, err, errlen, "idempotency lookup");
					goto fail;
				}
			}
		}
		sqlite3_bind_text(ls->st_insert, 1, t->kind, -1, SQLITE_STATIC);
		sqlite3_bind_blob(ls->st_insert, 2, t->len > 0 ? t->payload : "", (int)t->len,
		    SQLITE_STATIC);
		if (t->idem_key != NULL)
			sqlite3_bind_text(ls->st_insert, 3, t->idem_key, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ls->st_insert, 3);
		sqlite3_bind_int(ls->st_insert, 4, (int)t->max_attempts);
		sqlite3_bind_int64(ls->st_insert, 5, t->timeout_ms);
		sqlite3_bind_int64(ls->st_insert, 6, now_ms);
		sqlite3_bind_int64(ls->st_insert, 7, t->run_at_ms);
		if (step_done(ls, ls->st_insert, err, errlen, "insert") < 0)
			goto fail;
		ids[i] = sqlite3_last_insert_rowid(ls->db);
		if (run_kind != NULL && strcmp(run_kind, t->kind) != 0) {
			if (bump_n(ls, run_kind, ST_ENQ, run_n, err, errlen) < 0)
				goto fail;
			run_n = 0;
		}
		run_kind = t->kind;
		run_n++;
	}
	if (run_n > 0 && bump_n(ls, run_kind, ST_ENQ, run_n, err, errlen) < 0)
		goto fail;
	return commit(ls, err, errlen);
fail:
	rollback(ls);
	return -1;
}

static int
local_claim(struct durable_store *s, const char *owner, int64_t now_ms, uint32_t lease_ms,
    const char *const *kinds, size_t nkinds, size_t max, struct durable_task *out, size_t *n,
    char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	char sql[4096];
	sqlite3_stmt *sel = NULL, *upd = NULL;
	size_t got = 0;
	int len, rc;

	*n = 0;
	if (max == 0)
		return 0;
	if (nkinds > 200) {
		snprintf(err, errlen, "too many kinds");
		errno = EINVAL;
		return -1;
	}
	len = snprintf(sql, sizeof(sql),
	    "SELECT id, state, attempts, max_attempts, kind FROM tasks"
	    " WHERE state < 2 AND due_ms <= ?1");
	if (nkinds > 0) {
		len += snprintf(sql + len, sizeof(sql) - (size_t)len, " AND kind IN (");
		for (size_t i = 0; i < nkinds; i++)
			len += snprintf(sql + len, sizeof(sql) - (size_t)len, "%s?%zu",
			    i > 0 ? "," : "", i + 3);
		len += snprintf(sql + len, sizeof(sql) - (size_t)len, ")");
	}
	snprintf(sql + len, sizeof(sql) - (size_t)len, " ORDER BY due_ms LIMIT ?2");
	if (begin(ls, 0, err, errlen) < 0)
		return -1;
	if ((rc = sqlite3_prepare_v2(ls->db, sql, -1, &sel, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(ls->db,
	    "UPDATE tasks SET state = 1, attempts = attempts + 1, owner = ?2, due_ms = ?3"
	    " WHERE id = ?1 RETURNING kind, payload, attempts, max_attempts, timeout_ms,"
	    " created_ms", -1, &upd, NULL)) != SQLITE_OK) {
		fail(ls, rc, err, errlen, "prepare claim");
		goto fail;
	}
	sqlite3_bind_int64(sel, 1, now_ms);
	sqlite3_bind_int64(sel, 2, (int64_t)max);
	for (size_t i = 0; i < nkinds; i++)
		sqlite3_bind_text(sel, (int)i + 3, kinds[i], -1, SQLITE_STATIC);
	/* Collect first: updating rows while a SELECT walks the same index is undefined. */
	int64_t *cand = calloc(max, sizeof(*cand));
	size_t ncand = 0;
	if (cand == NULL) {
		errno = ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW && ncand < max) {
		int64_t id = sqlite3_column_int64(sel, 0);
		int state = sqlite3_column_int(sel, 1);
		int attempts = sqlite3_column_int(sel, 2);
		int maxa = sqlite3_column_int(sel, 3);
		const char *kind = (const char *)sqlite3_column_text(sel, 4);
		char k[DURABLE_KIND_MAX + 1];

		snprintf(k, sizeof(k), "%s", kind != NULL ? kind : "");
		if (state == DURABLE_RUNNING) {
			/* Its holder died or stopped renewing: that attempt is lost. */
			if (bump(ls, k, ST_RETRY, err, errlen) < 0)
				goto fail_cand;
			if (attempts >= maxa) {
				char q[160];
				snprintf(q, sizeof(q), "UPDATE tasks SET state = 3, owner = '',"
				    " finished_ms = %lld, why = 'lease expired on the last attempt'"
				    " WHERE id = %lld", (long long)now_ms, (long long)id);
				if (exec(ls, q, err, errlen) < 0 || bump(ls, k, ST_DEAD, err, errlen) < 0)
					goto fail_cand;
				continue;
			}
		}
		cand[ncand++] = id;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		fail(ls, rc, err, errlen, "claim select");
		goto fail_cand;
	}
	sqlite3_finalize(sel);
	sel = NULL;
	for (size_t i = 0; i < ncand; i++) {
		struct durable_task *t = &out[got];
		const void *p;

		sqlite3_bind_int64(upd, 1, cand[i]);
		sqlite3_bind_text(upd, 2, owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 3, now_ms + lease_ms);
		if ((rc = sqlite3_step(upd)) != SQLITE_ROW) {
			sqlite3_reset(upd);
			fail(ls, rc, err, errlen, "claim update");
			goto fail_cand;
		}
		memset(t, 0, sizeof(*t));
		t->id = cand[i];
		snprintf(t->kind, sizeof(t->kind), "%s", (const char *)sqlite3_column_text(upd, 0));
		t->len = (size_t)sqlite3_column_bytes(upd, 1);
		p = sqlite3_column_blob(upd, 1);
		t->payload = malloc(t->len + 1);
		if (t->payload == NULL) {
			sqlite3_reset(upd);
			errno = ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail_cand;
		}
		if (t->len > 0)
			memcpy(t->payload, p, t->len);
		((char *)t->payload)[t->len] = '\0';
		t->attempt = (uint32_t)sqlite3_column_int(upd, 2);
		t->max_attempts = (uint32_t)sqlite3_column_int(upd, 3);
		t->timeout_ms = (uint32_t)sqlite3_column_int64(upd, 4);
		t->created_ms = sqlite3_column_int64(upd, 5);
		t->lease_until_ms = now_ms + lease_ms;
		got++;
		sqlite3_step(upd);   /* past the single row to DONE */
		sqlite3_reset(upd);
	}
	free(cand);
	sqlite3_finalize(upd);
	if (commit(ls, err, errlen) < 0) {
		for (size_t i = 0; i < got; i++)
			durable_task_clear(&out[i]);
		return -1;
	}
	*n = got;
	return 0;
fail_cand:
	free(cand);
fail:
	for (size_t i = 0; i < got; i++)
		durable_task_clear(&out[i]);
	sqlite3_finalize(sel);
	sqlite3_finalize(upd);
	rollback(ls);
	return -1;
}

static int
local_finish(struct durable_store *s, int64_t id, const char *owner, uint32_t attempt,
    int outcome, int64_t now_ms, int64_t next_at_ms, const char *why, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	sqlite3_stmt *st = ls->st_finish;
	const char *kind;
	char k[DURABLE_KIND_MAX + 1];
	int rc, col;

	if (outcome < DURABLE_OK || outcome > DURABLE_FAIL) {
		errno = EINVAL;
		snprintf(err, errlen, "bad outcome %d", outcome);
		return -1;
	}
	if (begin(ls, 0, err, errlen) < 0)
		return -1;
	sqlite3_bind_int(st, 1, outcome == DURABLE_OK ? DURABLE_DONE :
	    outcome == DURABLE_RETRY ? DURABLE_PENDING : DURABLE_DEAD);
	sqlite3_bind_int64(st, 2, outcome == DURABLE_RETRY ? next_at_ms : 0);
	sqlite3_bind_int64(st, 3, outcome == DURABLE_RETRY ? 0 : now_ms);
	sqlite3_bind_text(st, 4, why != NULL ? why : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, id);
	sqlite3_bind_text(st, 6, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 7, (int)attempt);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc != SQLITE_DONE) {
			fail(ls, rc, err, errlen, "finish");
			rollback(ls);
			return -1;
		}
		rollback(ls);
		return 1;   /* not ours any more */
	}
	kind = (const char *)sqlite3_column_text(st, 0);
	snprintf(k, sizeof(k), "%s", kind != NULL ? kind : "");
	sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	col = outcome == DURABLE_OK ? ST_OK : outcome == DURABLE_RETRY ? ST_RETRY : ST_DEAD;
	if (bump(ls, k, col, err, errlen) < 0) {
		rollback(ls);
		return -1;
	}
	return commit(ls, err, errlen);
}

static int
local_release(struct durable_store *s, int64_t id, const char *owner, uint32_t attempt,
    int64_t now_ms, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	int r;

	if (set_sync(ls, 0, err, errlen) < 0)
		return -1;
	sqlite3_bind_int64(ls->st_release, 1, now_ms);
	sqlite3_bind_int64(ls->st_release, 2, id);
	sqlite3_bind_text(ls->st_release, 3, owner, -1, SQLITE_STATIC);
	sqlite3_bind_int(ls->st_release, 4, (int)attempt);
	r = step_done(ls, ls->st_release, err, errlen, "release");
	if (r < 0)
		return -1;
	return sqlite3_changes(ls->db) == 1 ? 0 : 1;
}

static int
local_renew(struct durable_store *s, const char *owner, int64_t now_ms, uint32_t lease_ms,
    char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;

	if (set_sync(ls, 0, err, errlen) < 0)
		return -1;
	sqlite3_bind_int64(ls->st_renew, 1, now_ms + lease_ms);
	sqlite3_bind_text(ls->st_renew, 2, owner, -1, SQLITE_STATIC);
	return step_done(ls, ls->st_renew, err, errlen, "renew");
}

static int
local_next_due(struct durable_store *s, int64_t *at_ms, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	int rc = sqlite3_step(ls->st_next);

	*at_ms = 0;
	if (rc == SQLITE_ROW && sqlite3_column_type(ls->st_next, 0) != SQLITE_NULL)
		*at_ms = sqlite3_column_int64(ls->st_next, 0);
	sqlite3_reset(ls->st_next);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : fail(ls, rc, err, errlen, "next_due");
}

static int
local_counts(struct durable_store *s, struct durable_count *out, size_t max, size_t *n,
    char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	static const char sql[] =
	    "SELECT k.kind, s.enqueued, s.succeeded, s.retried, s.failed,"
	    " (SELECT count(*) FROM tasks t WHERE t.kind = k.kind AND t.state = 0 AND t.attempts = 0),"
	    " (SELECT count(*) FROM tasks t WHERE t.kind = k.kind AND t.state = 0 AND t.attempts > 0),"
	    " (SELECT count(*) FROM tasks t WHERE t.kind = k.kind AND t.state = 1),"
	    " (SELECT count(*) FROM tasks t WHERE t.kind = k.kind AND t.state = 3),"
	    " (SELECT min(created_ms) FROM tasks t WHERE t.kind = k.kind AND t.state < 2)"
	    " FROM (SELECT kind FROM stats UNION SELECT DISTINCT kind FROM tasks) k"
	    " LEFT JOIN stats s ON s.kind = k.kind ORDER BY k.kind";
	sqlite3_stmt *st;
	size_t got = 0;
	int rc;

	*n = 0;
	if ((rc = sqlite3_prepare_v2(ls->db, sql, -1, &st, NULL)) != SQLITE_OK)
		return fail(ls, rc, err, errlen, "counts");
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct durable_count *c = &out[got++];

		memset(c, 0, sizeof(*c));
		snprintf(c->kind, sizeof(c->kind), "%s", (const char *)sqlite3_column_text(st, 0));
		c->enqueued = (uint64_t)sqlite3_column_int64(st, 1);
		c->succeeded = (uint64_t)sqlite3_column_int64(st, 2);
		c->retried = (uint64_t)sqlite3_column_int64(st, 3);
		c->failed = (uint64_t)sqlite3_column_int64(st, 4);
		c->pending = (uint64_t)sqlite3_column_int64(st, 5);
		c->retrying = (uint64_t)sqlite3_column_int64(st, 6);
		c->running = (uint64_t)sqlite3_column_int64(st, 7);
		c->dead = (uint64_t)sqlite3_column_int64(st, 8);
		c->oldest_ms = sqlite3_column_int64(st, 9);
	}
	if (got < max && rc != SQLITE_DONE) {
		fail(ls, rc, err, errlen, "counts");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	*n = got;
	return 0;
}

static int
local_list(struct durable_store *s, int state, int64_t after_id, size_t max,
    struct durable_info *out, size_t *n, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	sqlite3_stmt *st;
	size_t got = 0;
	int rc;

	*n = 0;
	rc = sqlite3_prepare_v2(ls->db,
	    "SELECT id, kind, state, attempts, max_attempts, created_ms, due_ms, finished_ms,"
	    " owner, why FROM tasks WHERE id > ?1 AND (?2 < 0 AND state <> 2 OR state = ?2)"
	    " ORDER BY id LIMIT ?3", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail(ls, rc, err, errlen, "list");
	sqlite3_bind_int64(st, 1, after_id);
	sqlite3_bind_int(st, 2, state);
	sqlite3_bind_int64(st, 3, (int64_t)max);
	while (got < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct durable_info *d = &out[got++];

		memset(d, 0, sizeof(*d));
		d->id = sqlite3_column_int64(st, 0);
		snprintf(d->kind, sizeof(d->kind), "%s", (const char *)sqlite3_column_text(st, 1));
		d->state = (uint32_t)sqlite3_column_int(st, 2);
		d->attempts = (uint32_t)sqlite3_column_int(st, 3);
		d->max_attempts = (uint32_t)sqlite3_column_int(st, 4);
		d->created_ms = sqlite3_column_int64(st, 5);
		d->run_at_ms = d->state < DURABLE_DONE ? sqlite3_column_int64(st, 6) : 0;
		d->finished_ms = sqlite3_column_int64(st, 7);
		snprintf(d->owner, sizeof(d->owner), "%s", (const char *)sqlite3_column_text(st, 8));
		snprintf(d->why, sizeof(d->why), "%s", (const char *)sqlite3_column_text(st, 9));
	}
	if (got < max && rc != SQLITE_DONE) {
		fail(ls, rc, err, errlen, "list");
		sqlite3_finalize(st);
		return -1;
	}
	sqlite3_finalize(st);
	*n = got;
	return 0;
}

static int
local_retry(struct durable_store *s, int64_t id, int64_t now_ms, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	char sql[200];

	if (set_sync(ls, 1, err, errlen) < 0)
		return -1;
	snprintf(sql, sizeof(sql), "UPDATE tasks SET state = 0, attempts = 0, due_ms = %lld,"
	    " finished_ms = 0, owner = '' WHERE id = %lld AND state = 3",
	    (long long)now_ms, (long long)id);
	if (exec(ls, sql, err, errlen) < 0)
		return -1;
	if (sqlite3_changes(ls->db) != 1) {
		snprintf(err, errlen, "no dead task %lld", (long long)id);
		errno = ENOENT;
		return -1;
	}
	return 0;
}

static int
local_purge(struct durable_store *s, int64_t before_ms, uint64_t *n, char *err, size_t errlen)
{
	struct local_store *ls = (struct local_store *)s;
	char sql[120];

	if (set_sync(ls, 0, err, errlen) < 0)
		return -1;
	snprintf(sql, sizeof(sql), "DELETE FROM tasks WHERE state = 2 AND finished_ms < %lld",
	    (long long)before_ms);
	if (exec(ls, sql, err, errlen) < 0)
		return -1;
	if (n != NULL)
		*n = (uint64_t)sqlite3_changes(ls->db);
	return 0;
}

static void
local_close(struct durable_store *s)
{
	struct local_store *ls = (struct local_store *)s;

	if (ls == NULL)
		return;
	if (ls->ck_up) {
		pthread_mutex_lock(&ls->ck_mtx);
		ls->ck_stop = true;
		pthread_cond_signal(&ls->ck_cond);
		pthread_mutex_unlock(&ls->ck_mtx);
		pthread_join(ls->ck_thread, NULL);
		sqlite3_close(ls->ck_db);
		pthread_mutex_destroy(&ls->ck_mtx);
		pthread_cond_destroy(&ls->ck_cond);
	}
	sqlite3_finalize(ls->st_idem);
	sqlite3_finalize(ls->st_insert);
	sqlite3_finalize(ls->st_stat_enq);
	sqlite3_finalize(ls->st_finish);
	sqlite3_finalize(ls->st_stat);
	sqlite3_finalize(ls->st_release);
	sqlite3_finalize(ls->st_renew);
	sqlite3_finalize(ls->st_next);
	sqlite3_finalize(ls->st_unkey);
	sqlite3_close(ls->db);
	free(ls);
}

static const struct durable_ops local_ops = {
	.name = "local",
	.enqueue_batch = local_enqueue,
	.claim = local_claim,
	.finish = local_finish,
	.release = local_release,
	.renew = local_renew,
	.next_due = local_next_due,
	.counts = local_counts,
	.list = local_list,
	.retry = local_retry,
	.purge = local_purge,
	.close = local_close,
};

struct durable_store *
durable_local_open(const struct durable_conf *conf, uint32_t flags, char *err, size_t errlen)
{
	struct local_store *ls;
	int ro = (flags & DURABLE_OPEN_READONLY) != 0;
	int rc, persist = 1, version = -1;
	sqlite3_stmt *st;

	if (conf->path == NULL || conf->path[0] == '\0') {
		snprintf(err, errlen, "no journal path");
		errno = EINVAL;
		return NULL;
	}
	if ((ls = calloc(1, sizeof(*ls))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ls->base.ops = &local_ops;
	ls->base.flags = flags;
	ls->idem_window_ms = conf->idem_window_ms;
	ls->sync_full = -1;
	rc = sqlite3_open_v2(conf->path, &ls->db, (ro ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		/* sqlite3_errmsg says "unable to open database file": say why. */
		int e = sqlite3_system_errno(ls->db);

		snprintf(err, errlen, "%s: %s", conf->path, e != 0 ? strerror(e) :
		    sqlite3_errstr(rc));
		sqlite3_close(ls->db);
		free(ls);
		errno = e != 0 ? e : EIO;
		return NULL;
	}
	sqlite3_extended_result_codes(ls->db, 1);
	sqlite3_busy_timeout(ls->db, conf->timeout_ms > 0 ? (int)conf->timeout_ms : 5000);
	sqlite3_file_control(ls->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
	if (!ro) {
		/* page_size first: it only takes on a new file, before WAL mode. */
		if (exec(ls, "PRAGMA page_size=4096", err, errlen) < 0 ||
		    exec(ls, "PRAGMA journal_mode=WAL", err, errlen) < 0 ||
		    exec(ls, schema, err, errlen) < 0)
			goto fail;
	}
	if (sqlite3_prepare_v2(ls->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	if (!ro && version == 0) {
		char q[64];
		snprintf(q, sizeof(q), "PRAGMA user_version=%d", LOCAL_SCHEMA_VERSION);
		if (exec(ls, q, err, errlen) < 0)
			goto fail;
		version = LOCAL_SCHEMA_VERSION;
	}
	if (version != LOCAL_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s: journal schema %d, this build reads %d", conf->path,
		    version, LOCAL_SCHEMA_VERSION);
		errno = EPROTO;
		goto fail_quiet;
	}
	if (!ro && conf->max_bytes > 0) {
		char q[96];
		/* The cap in pages: SQLite refuses to grow the file past it (SQLITE_FULL). */
		snprintf(q, sizeof(q), "PRAGMA max_page_count=%llu",
		    (unsigned long long)(conf->max_bytes / 4096 > 0 ? conf->max_bytes / 4096 : 1));
		if (exec(ls, q, err, errlen) < 0)
			goto fail;
	}
	if (prep(ls, &ls->st_idem, "SELECT id, state, finished_ms FROM tasks WHERE idem_key = ?1",
	    err, errlen) < 0 ||
	    prep(ls, &ls->st_insert, "INSERT INTO tasks(kind, payload, idem_key, state, attempts,"
	    " max_attempts, timeout_ms, created_ms, due_ms) VALUES(?1, ?2, ?3, 0, 0, ?4, ?5, ?6, ?7)",
	    err, errlen) < 0 ||
	    prep(ls, &ls->st_stat, "INSERT INTO stats(kind, enqueued, succeeded, retried, failed)"
	    " VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(kind) DO UPDATE SET"
	    " enqueued = enqueued + ?2, succeeded = succeeded + ?3, retried = retried + ?4,"
	    " failed = failed + ?5", err, errlen) < 0 ||
	    prep(ls, &ls->st_finish, "UPDATE tasks SET state = ?1, due_ms = ?2, finished_ms = ?3,"
	    " why = ?4, owner = '' WHERE id = ?5 AND owner = ?6 AND attempts = ?7 AND state = 1"
	    " RETURNING kind", err, errlen) < 0 ||
	    prep(ls, &ls->st_release, "UPDATE tasks SET state = 0, due_ms = ?1, owner = '',"
	    " attempts = attempts - 1 WHERE id = ?2 AND owner = ?3 AND attempts = ?4 AND state = 1",
	    err, errlen) < 0 ||
	    prep(ls, &ls->st_renew, "UPDATE tasks SET due_ms = ?1 WHERE owner = ?2 AND state = 1",
	    err, errlen) < 0 ||
	    prep(ls, &ls->st_next, "SELECT min(due_ms) FROM tasks WHERE state < 2", err,
	    errlen) < 0 ||
	    prep(ls, &ls->st_unkey, "UPDATE tasks SET idem_key = NULL WHERE id = ?1", err,
	    errlen) < 0)
		goto fail;
	if (!ro)
		ckpt_start(ls, conf->path);
	return &ls->base;
fail:
	if (errno == 0)
		errno = EIO;
fail_quiet:
	{
		int e = errno;
		local_close(&ls->base);
		errno = e;
	}
	return NULL;
}
