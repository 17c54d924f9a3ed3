/*
 * durable_pg.c - the PostgreSQL backend of durable tasks (durable_store.h), libpq.
 *
 * Several hosts share one database. Rows carry their function's name and every
 * statement is bound to the handle's function, so a handle never reaches another
 * function's tasks (who else could, with the same credentials, is README "Durable
 * tasks", the trust model).
 *
 * Schema, edgevisor's own: edgevisor_tasks (one row per task; due_at is when the row
 * may next be claimed: run_at for a pending task, the lease's end for a running one,
 * so one partial index serves "due" and "lease expired") and edgevisor_totals (the
 * cumulative counts, one row per function, kind and slot: each handle adds to its
 * own random slot of 16, so hosts finishing tasks at once do not queue on one hot
 * row; counts sum them). edgevisor_schema holds the applied version; migrate()
 * applies the missing steps in order in one transaction that first takes a
 * transaction-level advisory lock, so hosts starting together migrate once and a
 * host that finds a newer schema than it knows refuses to run on it.
 *
 * Clock: the database's. Leases, due times and "finished" are the server's now();
 * the caller's NOW_MS is used only to turn its absolute times (run_at_ms,
 * next_at_ms) into delays, so hosts with skewed clocks agree on who holds a lease.
 * next_due, list and purge speak epoch milliseconds of the server's clock.
 *
 * Durability: enqueue, claim and renew commit synchronously (a lost enqueue would
 * be a lost task, a lost claim or renewal a second concurrent attempt after a
 * database crash); finish and release commit with synchronous_commit off (the
 * session's default here): a database crash can lose an outcome, and the attempt
 * then runs again, which at-least-once allows; it saves a disk flush per task.
 *
 * Bounded calls: every call runs on a non-blocking connection under a deadline
 * (conf->timeout_ms, default 5000): connect with PQconnectStartParams/PQconnectPoll,
 * statements with PQsendQueryParams and poll(). A call past its deadline drops the
 * connection (the server rolls back what it had begun) and fails with EAGAIN. A
 * lost connection is reopened by the next call, no sooner than the backoff (50 ms
 * doubling to 5 s, reset by a success) allows: until then calls fail at once with
 * EAGAIN "database unreachable". So an enqueue during an outage fails clearly
 * within the timeout, never hangs, and work resumes by itself when the server is
 * back.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "durable_store.h"
#include "log.h"
#include "pq_lazy.h"

#define CHUNK_ROWS      1000     /* rows per INSERT: 6 parameters each, under 65535 */
#define BACKOFF_MIN_MS  50
#define BACKOFF_MAX_MS  5000
#define TOTAL_SLOTS     16

struct pg_store {
	struct durable_store base;   /* first: the handle the engine holds */
	PGconn *conn;
	char *dsn;
	char function[64];
	char slot[4];
	uint32_t timeout_ms;
	uint32_t idem_window_ms;
	uint64_t max_bytes;
	int migrated;
	uint64_t next_connect_ms;    /* backoff: no connect attempt before this */
	unsigned backoff_ms;
	char err[512];
	int eno;
	char sqlstate[6];            /* of the last server error, "" for none */
};

/* ---- errors ---------------------------------------------------------------- */

static void __attribute__((format(printf, 3, 4)))
seterr(struct pg_store *s, int eno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	/* libpq messages end in newlines: one line for logs and callers */
	for (char *p = s->err; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = p[1] ? ' ' : '\0';
	s->eno = eno;
}

/* Copies the last error out; always -1. */
static int
fail(struct pg_store *s, char *err, size_t errlen)
{
	if (errlen)
		snprintf(err, errlen, "%s", s->err[0] ? s->err : "postgresql: failed");
	errno = s->eno ? s->eno : EIO;
	return -1;
}

/* The errno a server error maps to: EAGAIN for what passes (connection, shutdown,
 * cancel, serialization, resources), EIO for the rest. */
static int
sqlstate_errno(const PGresult *r)
{
	const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	if (!st)
		return EIO;
	if (strncmp(st, "08", 2) == 0 || strncmp(st, "57", 2) == 0 ||
	    strncmp(st, "40", 2) == 0 || strncmp(st, "53", 2) == 0 || strcmp(st, "55P03") == 0)
		return EAGAIN;
	return EIO;
}

/* ---- the schema ------------------------------------------------------------ */

/* Step N brings the schema from version N to N+1. Append only: never edit a step
 * that has shipped (a database with it applied would not see the change). */
static const char *const migrations[] = {
	/* 1: the tasks */
	"CREATE TABLE edgevisor_tasks ("
	" id bigserial PRIMARY KEY,"
	" function text NOT NULL,"
	" kind text NOT NULL,"
	" payload bytea NOT NULL,"
	" idem_key bytea,"
	" state smallint NOT NULL DEFAULT 0 CHECK (state BETWEEN 0 AND 3),"  /* durable_state */
	" attempts int NOT NULL DEFAULT 0,"
	" max_attempts int NOT NULL CHECK (max_attempts >= 1),"
	" timeout_ms int NOT NULL,"
	" due_at timestamptz NOT NULL,"
	" owner text NOT NULL DEFAULT '',"
	" why text NOT NULL DEFAULT '',"
	" created_at timestamptz NOT NULL DEFAULT now(),"
	" finished_at timestamptz);"
	"CREATE UNIQUE INDEX edgevisor_tasks_idem ON edgevisor_tasks (function, idem_key)"
	" WHERE idem_key IS NOT NULL;"
	"CREATE INDEX edgevisor_tasks_due ON edgevisor_tasks (function, due_at)"
	" WHERE state IN (0, 1);"
	"CREATE INDEX edgevisor_tasks_owner ON edgevisor_tasks (owner) WHERE state = 1;",
	/* 2: cumulative counts */
	"CREATE TABLE edgevisor_totals ("
	" function text NOT NULL,"
	" kind text NOT NULL,"
	" slot int NOT NULL,"
	" enqueued bigint NOT NULL DEFAULT 0,"
	" succeeded bigint NOT NULL DEFAULT 0,"
	" retried bigint NOT NULL DEFAULT 0,"
	" failed bigint NOT NULL DEFAULT 0,"
	" PRIMARY KEY (function, kind, slot));",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))
/* Any fixed 64-bit number: edgevisor's migration lock among the database's locks. */
#define MIGRATE_LOCK "7350394721455012015"

/* ---- connection and statements under a deadline ---------------------------- */

static int
wait_fd(struct pg_store *s, int for_write, uint64_t deadline)
{
	struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN | (for_write ? POLLOUT : 0)};
	uint64_t now = clock_ms();
	int r;

	if (p.fd < 0) {
		seterr(s, EAGAIN, "database connection lost");
		return -1;
	}
	if (now >= deadline)
		goto late;
	do
		r = poll(&p, 1, (int)(deadline - now));
	while (r < 0 && errno == EINTR);
	if (r > 0)
		return 0;
	if (r < 0) {
		seterr(s, EIO, "poll: %s", strerror(errno));
		return -1;
	}
late:
	seterr(s, EAGAIN, "database did not answer within %u ms", s->timeout_ms);
	return -1;
}

static void
drop_conn(struct pg_store *s)
{
	if (!s->conn)
		return;
	PQfinish(s->conn);
	s->conn = NULL;
	s->next_connect_ms = clock_ms() + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

/* Server notices ("already exists, skipping") are not our events; libpq would
 * print them to stderr outside the log's format. */
static void
quiet_notice(void *arg, const char *msg)
{
	log_debug("durable_pg_notice", "msg=%s", log_qv(msg));
}

/*
 * One statement, bounded by DEADLINE. Parameters are text unless FMTS marks one
 * binary (LENS gives its length); results are text. Returns the result
 * (COMMAND_OK or TUPLES_OK), or NULL with the error set. A connection-level
 * failure or a timeout drops the connection: its state is unknown.
 */
static PGresult *
run(struct pg_store *s, uint64_t deadline, const char *sql, int n, const char *const *vals,
    const int *lens, const int *fmts)
{
	PGresult *res = NULL, *r;
	int f;

	if (!s->conn) {
		seterr(s, EAGAIN, "database connection lost");
		return NULL;
	}
	if (!PQsendQueryParams(s->conn, sql, n, NULL, vals, lens, fmts, 0))
		goto conn_fail;
	while ((f = PQflush(s->conn)) == 1)
		if (wait_fd(s, 1, deadline) < 0 || !PQconsumeInput(s->conn))
			goto dropped;
	if (f < 0)
		goto conn_fail;
	for (;;) {
		while (PQisBusy(s->conn))
			if (wait_fd(s, 0, deadline) < 0)
				goto dropped;
			else if (!PQconsumeInput(s->conn))
				goto conn_fail;
		if (!(r = PQgetResult(s->conn)))
			break;
		if (res)
			PQclear(r);
		else
			res = r;
	}
	if (!res)
		goto conn_fail;
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		snprintf(s->sqlstate, sizeof s->sqlstate, "%s", st ? st : "");
		seterr(s, sqlstate_errno(res), "postgresql: %s", PQresultErrorMessage(res));
		PQclear(res);
		if (PQstatus(s->conn) != CONNECTION_OK)
			drop_conn(s);
		return NULL;
	}
	return res;
conn_fail:
	seterr(s, EAGAIN, "database connection lost: %s", PQerrorMessage(s->conn));
dropped:
	if (res)
		PQclear(res);
	drop_conn(s);
	return NULL;
}

static int
run_cmd(struct pg_store *s, uint64_t deadline, const char *sql)
{
	PGresult *r = run(s, deadline, sql, 0, NULL, NULL, NULL);

	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

/* Several statements in one text (a migration step): the simple protocol. */
static int
run_script(struct pg_store *s, uint64_t deadline, const char *sql)
{
	PGresult *r;
	int rc = 0;

	if (!PQsendQuery(s->conn, sql)) {
		seterr(s, EAGAIN, "database connection lost: %s", PQerrorMessage(s->conn));
		drop_conn(s);
		return -1;
	}
	for (;;) {
		while (PQisBusy(s->conn))
			if (wait_fd(s, 0, deadline) < 0 || !PQconsumeInput(s->conn)) {
				drop_conn(s);
				return -1;
			}
		if (!(r = PQgetResult(s->conn)))
			return rc;
		if (rc == 0 && PQresultStatus(r) != PGRES_COMMAND_OK) {
			seterr(s, sqlstate_errno(r), "postgresql: %s", PQresultErrorMessage(r));
			rc = -1;
		}
		PQclear(r);
	}
}

static int
rollback(struct pg_store *s, uint64_t deadline)
{
	if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE) {
		char keep[sizeof s->err];
		int eno = s->eno;

		memcpy(keep, s->err, sizeof keep);  /* the error that made us roll back */
		if (run_cmd(s, deadline, "ROLLBACK") < 0)
			drop_conn(s);
		memcpy(s->err, keep, sizeof keep);
		s->eno = eno;
	}
	return -1;
}

static int
migrate(struct pg_store *s, uint64_t deadline)
{
	PGresult *r;
	int have;
	char v[16];
	const char *vp[1] = {v};

	if (run_cmd(s, deadline, "BEGIN") < 0 ||
	    run_cmd(s, deadline, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")") < 0 ||
	    run_cmd(s, deadline,
		    "CREATE TABLE IF NOT EXISTS edgevisor_schema (version int PRIMARY KEY,"
		    " applied_at timestamptz NOT NULL DEFAULT now())") < 0 ||
	    !(r = run(s, deadline, "SELECT coalesce(max(version), 0) FROM edgevisor_schema", 0,
		      NULL, NULL, NULL)))
		goto fail;
	have = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (have > SCHEMA_VERSION) {
		seterr(s, EIO, "database schema version %d is newer than this edgevisor's %d", have,
		       SCHEMA_VERSION);
		goto fail;
	}
	for (int i = have; i < SCHEMA_VERSION; i++) {
		snprintf(v, sizeof v, "%d", i + 1);
		if (run_script(s, deadline, migrations[i]) < 0 ||
		    !(r = run(s, deadline, "INSERT INTO edgevisor_schema (version) VALUES ($1)", 1,
			      vp, NULL, NULL)))
			goto fail;
		PQclear(r);
		log_info("durable_pg_migrated", "function=%s version=%d", s->function, i + 1);
	}
	if (run_cmd(s, deadline, "COMMIT") < 0)
		goto fail;
	s->migrated = 1;
	return 0;
fail:
	log_error("durable_pg_migrate_failed", "function=%s err=%s", s->function, log_qv(s->err));
	rollback(s, deadline);
	return -1;
}

/* A working connection, or -1 (EAGAIN) without trying while the backoff holds. */
static int
ensure_conn(struct pg_store *s, uint64_t deadline)
{
	char tmo[16];
	/* Later keys override earlier ones: the DSN (expanded from dbname) may set its
	 * own connect_timeout, bounding the steps inside libpq we do not poll. */
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {tmo, "edgevisor", s->dsn, NULL};
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	/* A connection the server closed meanwhile (a restart, an idle timeout) is
	 * noticed here, before a statement is sent on it: reading what is pending
	 * sees the EOF. It is replaced at once, without a backoff step. */
	if (s->conn && PQstatus(s->conn) == CONNECTION_OK && PQconsumeInput(s->conn) &&
	    PQstatus(s->conn) == CONNECTION_OK)
		return 0;
	if (s->conn) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	if (clock_ms() < s->next_connect_ms) {
		seterr(s, EAGAIN, "database unreachable (next try in %" PRIu64 " ms)",
		       s->next_connect_ms - clock_ms());
		return -1;
	}
	snprintf(tmo, sizeof tmo, "%u", (s->timeout_ms + 999) / 1000);
	s->conn = PQconnectStartParams(keys, vals, 1);
	if (!s->conn) {
		seterr(s, ENOMEM, "database: out of memory");
		return -1;
	}
	if (PQstatus(s->conn) == CONNECTION_BAD)
		goto bad;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			goto bad;
		if (wait_fd(s, st == PGRES_POLLING_WRITING, deadline) < 0)
			goto out;
		st = PQconnectPoll(s->conn);
	}
	if (PQsetnonblocking(s->conn, 1) != 0)
		goto bad;
	PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
	if (run_cmd(s, deadline, "SET synchronous_commit TO off") < 0 ||
	    (!s->migrated && !(s->base.flags & DURABLE_OPEN_READONLY) && migrate(s, deadline) < 0))
		goto out;
	s->backoff_ms = BACKOFF_MIN_MS;
	log_info("durable_pg_connected", "function=%s", s->function);
	return 0;
bad:
	seterr(s, EAGAIN, "database unreachable: %s", PQerrorMessage(s->conn));
out:
	log_warn("durable_pg_unreachable", "function=%s err=%s retry_ms=%u", s->function,
		 log_qv(s->err), s->backoff_ms);
	drop_conn(s);
	return -1;
}

/* The head of every call: clears the error, connects, sets *DEADLINE. */
static int
begin_call(struct pg_store *s, uint64_t *deadline)
{
	s->err[0] = '\0';
	s->eno = 0;
	s->sqlstate[0] = '\0';
	*deadline = clock_ms() + s->timeout_ms;
	return ensure_conn(s, *deadline);
}

/* A read-only reader (the supervisor's counts, edgevisorctl) before any worker
 * created the schema: no table yet reads as no task. */
static int
no_schema(const struct pg_store *s)
{
	return (s->base.flags & DURABLE_OPEN_READONLY) && strcmp(s->sqlstate, "42P01") == 0;
}

/* BEGIN with a synchronous commit (see the top of the file). */
static int
begin_sync(struct pg_store *s, uint64_t deadline)
{
	return run_cmd(s, deadline, "BEGIN") < 0 ||
		       run_cmd(s, deadline, "SET LOCAL synchronous_commit TO on") < 0
		   ? -1
		   : 0;
}

static int64_t
ms_between(int64_t at, int64_t now)
{
	return at > now ? at - now : 0;
}

/* Epoch milliseconds of a text column holding a bigint (NULL = 0). */
static int64_t
col_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* A reason as a printable-ASCII line (kept in a text column: no invalid UTF-8). */
static void
clean_why(char *dst, size_t len, const char *why)
{
	size_t i = 0;

	for (; why && why[i] && i + 1 < len && i < DURABLE_WHY_MAX; i++)
		dst[i] = why[i] >= 0x20 && why[i] < 0x7f ? why[i] : '?';
	dst[i] = '\0';
}

/* ---- enqueue --------------------------------------------------------------- */

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Tasks without a key, as one multi-row INSERT per chunk; IDX[j] are the batch
 * positions of the rows. Ids come from one sequence in insertion order and rows
 * go in batch order (ORDER BY o), so ascending ids map onto IDX in order. */
static int
insert_plain(struct pg_store *s, uint64_t deadline, const struct durable_new *v,
	     const size_t *idx, size_t n, int64_t now_ms, int64_t *ids)
{
	enum { NP = 6 };
	size_t cap = 256 + n * 96, off;
	char *sql = malloc(cap), (*num)[3][24] = calloc(n, sizeof *num);
	const char **vals = calloc(n * NP, sizeof *vals);
	int *lens = calloc(n * NP, sizeof *lens), *fmts = calloc(n * NP, sizeof *fmts);
	int64_t *got = calloc(n, sizeof *got);
	PGresult *r = NULL;
	int rc = -1;

	if (!sql || !num || !vals || !lens || !fmts || !got) {
		seterr(s, ENOMEM, "out of memory");
		goto out;
	}
	off = (size_t)snprintf(sql, cap,
			       "INSERT INTO edgevisor_tasks (function, kind, payload, due_at,"
			       " max_attempts, timeout_ms) SELECT f, k, p,"
			       " now() + d * interval '1 millisecond', m, t FROM (VALUES ");
	for (size_t j = 0; j < n; j++) {
		const struct durable_new *t = &v[idx[j]];
		size_t b = j * NP;

		snprintf(num[j][0], 24, "%" PRId64, ms_between(t->run_at_ms, now_ms));
		snprintf(num[j][1], 24, "%" PRIu32, t->max_attempts);
		snprintf(num[j][2], 24, "%" PRIu32, t->timeout_ms);
		vals[b] = t->kind;
		vals[b + 1] = t->len ? t->payload : "";
		lens[b + 1] = (int)t->len;
		fmts[b + 1] = 1;  /* binary: the payload's bytes as they are */
		vals[b + 2] = num[j][0];
		vals[b + 3] = num[j][1];
		vals[b + 4] = num[j][2];
		vals[b + 5] = s->function;
		off += (size_t)snprintf(sql + off, cap - off,
					"%s($%zu::text,$%zu::bytea,$%zu::bigint,$%zu::int,$%zu::int,"
					"$%zu::text,%zu)",
					j ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, j);
	}
	snprintf(sql + off, cap - off, ") AS v(k, p, d, m, t, f, o) ORDER BY o RETURNING id");
	r = run(s, deadline, sql, (int)(n * NP), vals, lens, fmts);
	if (!r)
		goto out;
	if ((size_t)PQntuples(r) != n) {
		seterr(s, EIO, "insert returned %d rows for %zu tasks", PQntuples(r), n);
		goto out;
	}
	for (size_t j = 0; j < n; j++)
		got[j] = col_i64(r, (int)j, 0);
	qsort(got, n, sizeof *got, cmp_i64);
	for (size_t j = 0; j < n; j++)
		ids[idx[j]] = got[j];
	rc = 0;
out:
	if (r)
		PQclear(r);
	free(sql);
	free(num);
	free(vals);
	free(lens);
	free(fmts);
	free(got);
	return rc;
}

/* One task with an idempotency key: inserted, or the id of the task holding the
 * key (*DUP = 1). A done task past the window gives its key up first. */
static int
insert_keyed(struct pg_store *s, uint64_t deadline, const struct durable_new *t,
	     int64_t now_ms, int64_t *id, uint8_t *dup)
{
	char d[24], m[16], to[16], win[16];
	const char *vals[8] = {s->function, t->kind, t->len ? t->payload : "", t->idem_key,
			       d, m, to, win};
	int lens[8] = {0, 0, (int)t->len, (int)strlen(t->idem_key)};
	int fmts[8] = {0, 0, 1, 1};
	PGresult *r;

	snprintf(d, sizeof d, "%" PRId64, ms_between(t->run_at_ms, now_ms));
	snprintf(m, sizeof m, "%" PRIu32, t->max_attempts);
	snprintf(to, sizeof to, "%" PRIu32, t->timeout_ms);
	snprintf(win, sizeof win, "%" PRIu32, s->idem_window_ms);
	for (int pass = 0; pass < 2; pass++) {
		r = run(s, deadline,
			"INSERT INTO edgevisor_tasks (function, kind, payload, idem_key, due_at,"
			" max_attempts, timeout_ms) VALUES ($1, $2, $3::bytea, $4::bytea,"
			" now() + $5::bigint * interval '1 millisecond', $6::int, $7::int)"
			" ON CONFLICT (function, idem_key) WHERE idem_key IS NOT NULL DO NOTHING"
			" RETURNING id",
			7, vals, lens, fmts);
		if (!r)
			return -1;
		if (PQntuples(r) == 1) {
			*id = col_i64(r, 0, 0);
			*dup = 0;
			PQclear(r);
			return 0;
		}
		PQclear(r);
		/* The key is taken: by a live or dead task, or a done one within the
		 * window (a duplicate), or a done one past it (the key is free again). */
		{
			const char *kv[3] = {s->function, t->idem_key, win};
			int kl[3] = {0, lens[3], 0}, kf[3] = {0, 1, 0};

			r = run(s, deadline,
				"SELECT id, state = 2 AND finished_at < now() - $3::bigint *"
				" interval '1 millisecond' FROM edgevisor_tasks"
				" WHERE function = $1 AND idem_key = $2::bytea FOR UPDATE",
				3, kv, kl, kf);
		}
		if (!r)
			return -1;
		if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 1), "f") == 0) {
			*id = col_i64(r, 0, 0);
			*dup = 1;
			PQclear(r);
			return 0;
		}
		if (PQntuples(r) == 1) {
			char old[24];
			const char *ov[1] = {old};

			snprintf(old, sizeof old, "%s", PQgetvalue(r, 0, 0));
			PQclear(r);
			r = run(s, deadline, "UPDATE edgevisor_tasks SET idem_key = NULL WHERE id = $1",
				1, ov, NULL, NULL);
			if (!r)
				return -1;
		}
		PQclear(r);
	}
	seterr(s, EAGAIN, "idempotency key changed hands during enqueue");
	return -1;
}

/* Adds to the cumulative counts of KIND (in the caller's transaction). */
static int
add_totals(struct pg_store *s, uint64_t deadline, const char *kind, uint64_t enq)
{
	char e[24];
	const char *v[4] = {s->function, kind, s->slot, e};
	PGresult *r;

	snprintf(e, sizeof e, "%" PRIu64, enq);
	r = run(s, deadline,
		"INSERT INTO edgevisor_totals (function, kind, slot, enqueued)"
		" VALUES ($1, $2, $3::int, $4::bigint) ON CONFLICT (function, kind, slot)"
		" DO UPDATE SET enqueued = edgevisor_totals.enqueued + EXCLUDED.enqueued",
		4, v, NULL, NULL);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

static int
pg_enqueue_batch(struct durable_store *base, const struct durable_new *v, size_t n,
		 int64_t now_ms, int64_t *ids, uint8_t *dup, char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	size_t *plain = calloc(n ? n : 1, sizeof *plain), np = 0;
	uint8_t *isdup = calloc(n ? n : 1, 1);
	uint64_t deadline, bytes = 0;

	if (!plain || !isdup) {
		free(plain);
		free(isdup);
		seterr(s, ENOMEM, "out of memory");
		return fail(s, err, errlen);
	}
	for (size_t i = 0; i < n; i++) {
		if (!durable_kind_valid(v[i].kind) || v[i].max_attempts == 0 ||
		    v[i].len > DURABLE_PAYLOAD_MAX || (v[i].len && !v[i].payload) ||
		    (v[i].idem_key && strlen(v[i].idem_key) > DURABLE_KEY_MAX)) {
			seterr(s, EINVAL, "task %zu: bad kind, payload, attempts or key", i);
			goto fail;
		}
		bytes += v[i].len;
		if (v[i].idem_key && v[i].idem_key[0])
			continue;
		plain[np++] = i;
	}
	if (n == 0)
		goto done;
	if (begin_call(s, &deadline) < 0 || begin_sync(s, deadline) < 0)
		goto fail;
	if (s->max_bytes) {
		/* The cap counts live and dead payloads (done ones go at the purge). */
		const char *fv[1] = {s->function};
		PGresult *r = run(s, deadline,
				  "SELECT coalesce(sum(octet_length(payload)), 0) FROM edgevisor_tasks"
				  " WHERE function = $1 AND state <> 2",
				  1, fv, NULL, NULL);

		if (!r)
			goto abort;
		bytes += (uint64_t)col_i64(r, 0, 0);
		PQclear(r);
		if (bytes > s->max_bytes) {
			seterr(s, ENOSPC, "the function's tasks would pass max_bytes %" PRIu64,
			       s->max_bytes);
			goto abort;
		}
	}
	for (size_t i = 0; i < np; i += CHUNK_ROWS)
		if (insert_plain(s, deadline, v, plain + i, np - i < CHUNK_ROWS ? np - i : CHUNK_ROWS,
				 now_ms, ids) < 0)
			goto abort;
	for (size_t i = 0; i < n; i++)
		if (v[i].idem_key && v[i].idem_key[0] &&
		    insert_keyed(s, deadline, &v[i], now_ms, &ids[i], &isdup[i]) < 0)
			goto abort;
	/* totals: one row per kind of the batch */
	for (size_t i = 0; i < n; i++) {
		uint64_t c = 0;
		int seen = 0;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(v[j].kind, v[i].kind) == 0;
		if (seen)
			continue;
		for (size_t j = i; j < n; j++)
			c += !isdup[j] && strcmp(v[j].kind, v[i].kind) == 0;
		if (c && add_totals(s, deadline, v[i].kind, c) < 0)
			goto abort;
	}
	if (run_cmd(s, deadline, "COMMIT") < 0)
		goto fail;
done:
	if (dup)
		memcpy(dup, isdup, n);
	free(plain);
	free(isdup);
	return 0;
abort:
	rollback(s, deadline);
fail:
	free(plain);
	free(isdup);
	return fail(s, err, errlen);
}

/* ---- claim, finish, release, renew ----------------------------------------- */

/* "{a,b}" of kind names (their charset needs no quoting); NULL for none. */
static char *
kinds_array(const char *const *kinds, size_t n)
{
	size_t len = 3;
	char *a, *p;

	if (n == 0)
		return NULL;
	for (size_t i = 0; i < n; i++)
		len += strlen(kinds[i]) + 1;
	if (!(a = p = malloc(len)))
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", kinds[i]);
	strcpy(p, "}");
	return a;
}

static int
pg_claim(struct durable_store *base, const char *owner, int64_t now_ms, uint32_t lease_ms,
	 const char *const *kinds, size_t nkinds, size_t max, struct durable_task *out,
	 size_t *n, char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char lease[16], lim[24], *karr = NULL;
	const char *v[6] = {s->function, owner, lease, lim, NULL, s->slot};
	uint64_t deadline;
	PGresult *r = NULL;

	*n = 0;
	if (max == 0)
		return 0;
	for (size_t i = 0; i < nkinds; i++)
		if (!durable_kind_valid(kinds[i])) {
			seterr(s, EINVAL, "bad kind name in the claim");
			return fail(s, err, errlen);
		}
	if (nkinds && !(v[4] = karr = kinds_array(kinds, nkinds))) {
		seterr(s, ENOMEM, "out of memory");
		return fail(s, err, errlen);
	}
	snprintf(lease, sizeof lease, "%" PRIu32, lease_ms);
	snprintf(lim, sizeof lim, "%zu", max);
	if (begin_call(s, &deadline) < 0 || begin_sync(s, deadline) < 0)
		goto fail;
	/* Oldest due first; SKIP LOCKED: hosts claiming at once take disjoint rows.
	 * A running row here had its lease run out: that attempt counts as retried,
	 * and on its last attempt the task is dead instead (the crash that cut it is
	 * its failure; else a task that kills its worker would loop forever). */
	r = run(s, deadline,
		"WITH c AS (SELECT id, state AS was, attempts >= max_attempts AS spent"
		"  FROM edgevisor_tasks WHERE function = $1 AND state IN (0, 1) AND due_at <= now()"
		"  AND ($5::text[] IS NULL OR kind = ANY($5::text[]))"
		"  ORDER BY due_at LIMIT $4::int FOR UPDATE SKIP LOCKED),"
		" u AS (UPDATE edgevisor_tasks t SET"
		"  state = CASE WHEN c.was = 1 AND c.spent THEN 3 ELSE 1 END,"
		"  attempts = CASE WHEN c.was = 1 AND c.spent THEN t.attempts ELSE t.attempts + 1 END,"
		"  owner = CASE WHEN c.was = 1 AND c.spent THEN '' ELSE $2 END,"
		"  due_at = now() + $3::int * interval '1 millisecond',"
		"  finished_at = CASE WHEN c.was = 1 AND c.spent THEN now() END,"
		"  why = CASE WHEN c.was = 1 AND c.spent THEN 'lease expired on the last attempt'"
		"   WHEN c.was = 1 THEN 'lease expired' ELSE t.why END"
		"  FROM c WHERE t.id = c.id"
		"  RETURNING t.id, t.kind, t.payload, t.attempts, t.max_attempts, t.timeout_ms,"
		"   t.created_at, t.due_at, t.state, c.was),"
		" tot AS (INSERT INTO edgevisor_totals (function, kind, slot, retried, failed)"
		"  SELECT $1, kind, $6::int, count(*) FILTER (WHERE state = 1),"
		"   count(*) FILTER (WHERE state = 3) FROM u WHERE was = 1 GROUP BY kind"
		"  ON CONFLICT (function, kind, slot) DO UPDATE SET"
		"   retried = edgevisor_totals.retried + EXCLUDED.retried,"
		"   failed = edgevisor_totals.failed + EXCLUDED.failed)"
		" SELECT id, kind, payload, attempts, max_attempts, timeout_ms,"
		"  (extract(epoch FROM created_at) * 1000)::bigint,"
		"  (extract(epoch FROM due_at) * 1000)::bigint FROM u WHERE state = 1 ORDER BY due_at",
		6, v, NULL, NULL);
	if (!r)
		goto abort;
	for (int i = 0; i < PQntuples(r); i++) {
		struct durable_task *t = &out[*n];
		size_t len = 0;
		unsigned char *p = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);

		memset(t, 0, sizeof *t);
		/* one byte more: handlers get the payload NUL-terminated (edgevisor.h) */
		if (!p || !(t->payload = malloc(len + 1))) {
			PQfreemem(p);
			seterr(s, ENOMEM, "out of memory");
			goto abort;
		}
		memcpy(t->payload, p, len);
		((char *)t->payload)[len] = '\0';
		PQfreemem(p);
		t->len = len;
		t->id = col_i64(r, i, 0);
		snprintf(t->kind, sizeof t->kind, "%s", PQgetvalue(r, i, 1));
		t->attempt = (uint32_t)col_i64(r, i, 3);
		t->max_attempts = (uint32_t)col_i64(r, i, 4);
		t->timeout_ms = (uint32_t)col_i64(r, i, 5);
		t->created_ms = col_i64(r, i, 6);
		/* the lease in the caller's clock: what it may rely on */
		t->lease_until_ms = now_ms + lease_ms;
		(*n)++;
	}
	PQclear(r);
	r = NULL;
	if (run_cmd(s, deadline, "COMMIT") < 0)
		goto abort;
	free(karr);
	return 0;
abort:
	if (r)
		PQclear(r);
	for (size_t i = 0; i < *n; i++)
		durable_task_clear(&out[i]);
	*n = 0;
	rollback(s, deadline);
fail:
	free(karr);
	return fail(s, err, errlen);
}

static int
pg_finish(struct durable_store *base, int64_t id, const char *owner, uint32_t attempt,
	  int outcome, int64_t now_ms, int64_t next_at_ms, const char *why, char *err,
	  size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char idb[24], att[16], oc[4], delay[24], whyb[DURABLE_WHY_MAX + 1];
	const char *v[8] = {idb, s->function, owner, att, oc, delay, why ? whyb : NULL, s->slot};
	uint64_t deadline;
	PGresult *r;
	int held;

	if (outcome < DURABLE_OK || outcome > DURABLE_FAIL) {
		seterr(s, EINVAL, "bad outcome %d", outcome);
		return fail(s, err, errlen);
	}
	snprintf(idb, sizeof idb, "%" PRId64, id);
	snprintf(att, sizeof att, "%" PRIu32, attempt);
	snprintf(oc, sizeof oc, "%d", outcome);
	snprintf(delay, sizeof delay, "%" PRId64, ms_between(next_at_ms, now_ms));
	clean_why(whyb, sizeof whyb, why);
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	/* Only the holder of this attempt may end it: one whose lease ran out and was
	 * claimed again must not overwrite the new attempt's outcome. */
	r = run(s, deadline,
		"WITH u AS (UPDATE edgevisor_tasks SET"
		"  state = CASE $5::int WHEN 0 THEN 2 WHEN 1 THEN 0 ELSE 3 END, owner = '',"
		"  due_at = CASE WHEN $5::int = 1 THEN now() + $6::bigint * interval '1 millisecond'"
		"   ELSE due_at END,"
		"  finished_at = CASE WHEN $5::int = 1 THEN NULL ELSE now() END,"
		"  why = coalesce($7, CASE WHEN $5::int = 0 THEN '' ELSE why END)"
		"  WHERE id = $1::bigint AND function = $2 AND owner = $3 AND attempts = $4::int"
		"  AND state = 1 RETURNING kind)"
		" INSERT INTO edgevisor_totals (function, kind, slot, succeeded, retried, failed)"
		" SELECT $2, kind, $8::int, ($5::int = 0)::int, ($5::int = 1)::int, ($5::int = 2)::int"
		" FROM u ON CONFLICT (function, kind, slot) DO UPDATE SET"
		"  succeeded = edgevisor_totals.succeeded + EXCLUDED.succeeded,"
		"  retried = edgevisor_totals.retried + EXCLUDED.retried,"
		"  failed = edgevisor_totals.failed + EXCLUDED.failed"
		" RETURNING 1",
		8, v, NULL, NULL);
	if (!r)
		return fail(s, err, errlen);
	held = PQntuples(r) == 1;
	PQclear(r);
	return held ? 0 : 1;
}

static int
pg_release(struct durable_store *base, int64_t id, const char *owner, uint32_t attempt,
	   int64_t now_ms, char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char idb[24], att[16];
	const char *v[4] = {idb, s->function, owner, att};
	uint64_t deadline;
	PGresult *r;
	int held;

	snprintf(idb, sizeof idb, "%" PRId64, id);
	snprintf(att, sizeof att, "%" PRIu32, attempt);
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET state = 0, owner = '', due_at = now(),"
		" attempts = attempts - 1 WHERE id = $1::bigint AND function = $2 AND owner = $3"
		" AND attempts = $4::int AND state = 1",
		4, v, NULL, NULL);
	if (!r)
		return fail(s, err, errlen);
	held = atoi(PQcmdTuples(r)) == 1;
	PQclear(r);
	return held ? 0 : 1;
}

static int
pg_renew(struct durable_store *base, const char *owner, int64_t now_ms, uint32_t lease_ms,
	 char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char lease[16];
	const char *v[3] = {s->function, owner, lease};
	uint64_t deadline;
	PGresult *r;

	snprintf(lease, sizeof lease, "%" PRIu32, lease_ms);
	if (begin_call(s, &deadline) < 0 || begin_sync(s, deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET due_at = now() + $3::int * interval '1 millisecond'"
		" WHERE function = $1 AND owner = $2 AND state = 1",
		3, v, NULL, NULL);
	if (!r)
		goto abort;
	PQclear(r);
	if (run_cmd(s, deadline, "COMMIT") < 0)
		goto abort;
	return 0;
abort:
	rollback(s, deadline);
	return fail(s, err, errlen);
}

/* ---- reading: next_due, counts, list --------------------------------------- */

static int
pg_next_due(struct durable_store *base, int64_t *at_ms, char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *v[1] = {s->function};
	uint64_t deadline;
	PGresult *r;

	*at_ms = 0;
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"SELECT (extract(epoch FROM min(due_at)) * 1000)::bigint FROM edgevisor_tasks"
		" WHERE function = $1 AND state IN (0, 1)",
		1, v, NULL, NULL);
	if (!r)
		return no_schema(s) ? 0 : fail(s, err, errlen);
	*at_ms = col_i64(r, 0, 0);
	PQclear(r);
	return 0;
}

static int
pg_counts(struct durable_store *base, struct durable_count *out, size_t max, size_t *n,
	  char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	const char *v[1] = {s->function};
	uint64_t deadline;
	PGresult *r;

	*n = 0;
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"SELECT k.kind, coalesce(t.e, 0), coalesce(t.s, 0), coalesce(t.r, 0),"
		" coalesce(t.f, 0), coalesce(c.p, 0), coalesce(c.rt, 0), coalesce(c.ru, 0),"
		" coalesce(c.d, 0), coalesce((extract(epoch FROM c.o) * 1000)::bigint, 0)"
		" FROM (SELECT kind FROM edgevisor_totals WHERE function = $1"
		"  UNION SELECT DISTINCT kind FROM edgevisor_tasks WHERE function = $1) k"
		" LEFT JOIN (SELECT kind, sum(enqueued) e, sum(succeeded) s, sum(retried) r,"
		"  sum(failed) f FROM edgevisor_totals WHERE function = $1 GROUP BY kind) t"
		"  ON t.kind = k.kind"
		" LEFT JOIN (SELECT kind, count(*) FILTER (WHERE state = 0 AND attempts = 0) p,"
		"  count(*) FILTER (WHERE state = 0 AND attempts > 0) rt,"
		"  count(*) FILTER (WHERE state = 1) ru, count(*) FILTER (WHERE state = 3) d,"
		"  min(created_at) FILTER (WHERE state < 2) o"
		"  FROM edgevisor_tasks WHERE function = $1 GROUP BY kind) c ON c.kind = k.kind"
		" ORDER BY k.kind",
		1, v, NULL, NULL);
	if (!r)
		return no_schema(s) ? 0 : fail(s, err, errlen);
	for (int i = 0; i < PQntuples(r) && *n < max; i++) {
		struct durable_count *c = &out[(*n)++];

		memset(c, 0, sizeof *c);
		snprintf(c->kind, sizeof c->kind, "%s", PQgetvalue(r, i, 0));
		c->enqueued = (uint64_t)col_i64(r, i, 1);
		c->succeeded = (uint64_t)col_i64(r, i, 2);
		c->retried = (uint64_t)col_i64(r, i, 3);
		c->failed = (uint64_t)col_i64(r, i, 4);
		c->pending = (uint64_t)col_i64(r, i, 5);
		c->retrying = (uint64_t)col_i64(r, i, 6);
		c->running = (uint64_t)col_i64(r, i, 7);
		c->dead = (uint64_t)col_i64(r, i, 8);
		c->oldest_ms = col_i64(r, i, 9);
	}
	PQclear(r);
	return 0;
}

static int
pg_list(struct durable_store *base, int state, int64_t after_id, size_t max,
	struct durable_info *out, size_t *n, char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char st[8], after[24], lim[24];
	const char *v[4] = {s->function, st, after, lim};
	uint64_t deadline;
	PGresult *r;

	*n = 0;
	snprintf(st, sizeof st, "%d", state);
	snprintf(after, sizeof after, "%" PRId64, after_id);
	snprintf(lim, sizeof lim, "%zu", max);
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"SELECT id, kind, state, attempts, max_attempts,"
		" (extract(epoch FROM created_at) * 1000)::bigint,"
		" (extract(epoch FROM due_at) * 1000)::bigint,"
		" (extract(epoch FROM finished_at) * 1000)::bigint, owner, why"
		" FROM edgevisor_tasks WHERE function = $1"
		" AND (($2::int = -1 AND state <> 2) OR state = $2::int) AND id > $3::bigint"
		" ORDER BY id LIMIT $4::bigint",
		4, v, NULL, NULL);
	if (!r)
		return no_schema(s) ? 0 : fail(s, err, errlen);
	for (int i = 0; i < PQntuples(r) && *n < max; i++) {
		struct durable_info *d = &out[(*n)++];

		memset(d, 0, sizeof *d);
		d->id = col_i64(r, i, 0);
		snprintf(d->kind, sizeof d->kind, "%s", PQgetvalue(r, i, 1));
		d->state = (uint32_t)col_i64(r, i, 2);
		d->attempts = (uint32_t)col_i64(r, i, 3);
		d->max_attempts = (uint32_t)col_i64(r, i, 4);
		d->created_ms = col_i64(r, i, 5);
		d->run_at_ms = col_i64(r, i, 6);
		d->finished_ms = col_i64(r, i, 7);
		if (d->state == DURABLE_RUNNING)
			snprintf(d->owner, sizeof d->owner, "%s", PQgetvalue(r, i, 8));
		snprintf(d->why, sizeof d->why, "%s", PQgetvalue(r, i, 9));
	}
	PQclear(r);
	return 0;
}

/* ---- operator actions ------------------------------------------------------ */

static int
pg_retry(struct durable_store *base, int64_t id, int64_t now_ms, char *err, size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char idb[24];
	const char *v[2] = {idb, s->function};
	uint64_t deadline;
	PGresult *r;
	int found;

	snprintf(idb, sizeof idb, "%" PRId64, id);
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET state = 0, attempts = 0, due_at = now(), owner = '',"
		" finished_at = NULL WHERE id = $1::bigint AND function = $2 AND state = 3",
		2, v, NULL, NULL);
	if (!r)
		return fail(s, err, errlen);
	found = atoi(PQcmdTuples(r)) == 1;
	PQclear(r);
	if (!found) {
		seterr(s, ENOENT, "no dead task %" PRId64, id);
		return fail(s, err, errlen);
	}
	return 0;
}

static int
pg_purge(struct durable_store *base, int64_t before_ms, uint64_t *n, char *err,
	 size_t errlen)
{
	struct pg_store *s = (struct pg_store *)base;
	char b[24];
	const char *v[2] = {s->function, b};
	uint64_t deadline;
	PGresult *r;

	snprintf(b, sizeof b, "%" PRId64, before_ms);
	if (begin_call(s, &deadline) < 0)
		return fail(s, err, errlen);
	r = run(s, deadline,
		"DELETE FROM edgevisor_tasks WHERE function = $1 AND state = 2"
		" AND finished_at < to_timestamp($2::bigint / 1000.0)",
		2, v, NULL, NULL);
	if (!r)
		return fail(s, err, errlen);
	if (n)
		*n = strtoull(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return 0;
}

static void
pg_close(struct durable_store *base)
{
	struct pg_store *s = (struct pg_store *)base;

	if (!s)
		return;
	if (s->conn)
		PQfinish(s->conn);
	if (s->dsn) {
		/* the DSN holds the password: do not leave it in freed memory */
		explicit_bzero(s->dsn, strlen(s->dsn));
		free(s->dsn);
	}
	free(s);
}

static const struct durable_ops pg_ops = {
	.name = "postgresql",
	.enqueue_batch = pg_enqueue_batch,
	.claim = pg_claim,
	.finish = pg_finish,
	.release = pg_release,
	.renew = pg_renew,
	.next_due = pg_next_due,
	.counts = pg_counts,
	.list = pg_list,
	.retry = pg_retry,
	.purge = pg_purge,
	.close = pg_close,
};

struct durable_store *
durable_pg_open(const struct durable_conf *conf, uint32_t flags, char *err, size_t errlen)
{
	struct pg_store *s;
	struct timespec ts;

	if (!conf->dsn || !conf->function || strlen(conf->function) >= sizeof s->function) {
		snprintf(err, errlen, "postgresql: no connection string or a bad function name");
		errno = EINVAL;
		return NULL;
	}
	if (pq_lazy_load(err, errlen) < 0) {
		errno = ENOSYS;
		return NULL;
	}
	if (!(s = calloc(1, sizeof *s)) || !(s->dsn = strdup(conf->dsn))) {
		free(s);
		snprintf(err, errlen, "out of memory");
		errno = ENOMEM;
		return NULL;
	}
	s->base.ops = &pg_ops;
	s->base.flags = flags;
	strcpy(s->function, conf->function);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(s->slot, sizeof s->slot, "%d", (int)((ts.tv_nsec ^ getpid()) % TOTAL_SLOTS));
	s->timeout_ms = conf->timeout_ms ? conf->timeout_ms : 5000;
	s->idem_window_ms = conf->idem_window_ms;
	s->max_bytes = conf->max_bytes;
	s->backoff_ms = BACKOFF_MIN_MS;
	/* Connect (and migrate) now, so a bad DSN or a refused schema shows at start;
	 * an unreachable database is not an error here: calls retry with backoff. */
	{
		uint64_t deadline;

		if (begin_call(s, &deadline) < 0 && s->eno != EAGAIN) {
			snprintf(err, errlen, "%s", s->err);
			errno = s->eno;
			pg_close(&s->base);
			return NULL;
		}
	}
	return &s->base;
}
