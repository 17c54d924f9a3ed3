/*
 * durable_pg.c - durable tasks on a shared PostgreSQL (libpq).
 *
 * Schema: edgevisor_tasks, one row per task, keyed by function; due_at is when the
 * row may next be claimed (run_at for a pending task, the lease's end for a running
 * one), so one partial index serves both "due" and "lease expired". The schema is
 * edgevisor's own: edgevisor_schema holds the applied version and dpg_migrate()
 * applies the missing steps in order inside one transaction that first takes a
 * transaction-level advisory lock, so hosts starting together migrate once.
 *
 * Every call runs on a non-blocking connection with a deadline (op_timeout_ms):
 * connect with PQconnectStartParams/PQconnectPoll, statements with
 * PQsendQueryParams and poll() on the socket. A call past its deadline drops the
 * connection (the server rolls back whatever it had begun) and fails. A lost
 * connection is reopened on the next call, no sooner than the backoff (50 ms
 * doubling to 5 s, reset by a success) allows: until then calls fail at once with
 * "database unreachable", which is what makes enqueue fail clearly, not hang.
 */
#include "durable_pg.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define DPG_MAX_BATCH 1000       /* rows per INSERT: 7 parameters each, under 65535 */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

struct dpg {
	pthread_mutex_t mu;
	PGconn *conn;
	char *dsn;
	char function[64];
	char owner[128];
	struct dpg_opts o;
	int migrated;
	unsigned finishes;         /* successes since the last trim of old rows */
	uint64_t next_connect_ms;  /* backoff: no connect before this */
	unsigned backoff_ms;
};

static __thread char err_buf[512];

const char *
dpg_error(void)
{
	return err_buf;
}

static void __attribute__((format(printf, 1, 2)))
seterr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_buf, sizeof err_buf, fmt, ap);
	va_end(ap);
	/* libpq messages end in a newline: one line for logs and callers. */
	for (char *p = err_buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = (p[1] ? ' ' : '\0');
}

/* ---- the schema ------------------------------------------------------------ */

/* Step N brings the schema from version N to N+1. Append only; never edit a step
 * that has shipped (hosts with it applied would not see the change). */
static const char *const migrations[] = {
	/* 1: the task table */
	"CREATE TABLE edgevisor_tasks ("
	" id bigserial PRIMARY KEY,"
	" function text NOT NULL,"
	" kind text NOT NULL,"
	" payload bytea NOT NULL,"
	" state text NOT NULL DEFAULT 'pending'"
	"  CHECK (state IN ('pending','running','succeeded','dead')),"
	" attempts int NOT NULL DEFAULT 0,"
	" max_attempts int NOT NULL,"
	" timeout_ms int NOT NULL,"
	" due_at timestamptz NOT NULL,"
	" lease_owner text,"
	" idem_key text,"
	" last_error text,"
	" created_at timestamptz NOT NULL DEFAULT now(),"
	" finished_at timestamptz);"
	"CREATE UNIQUE INDEX edgevisor_tasks_idem ON edgevisor_tasks (function, idem_key)"
	" WHERE idem_key IS NOT NULL;"
	"CREATE INDEX edgevisor_tasks_due ON edgevisor_tasks (function, due_at)"
	" WHERE state IN ('pending','running');",
	/* 2: a host's held tasks, for renew and release */
	"CREATE INDEX edgevisor_tasks_owner ON edgevisor_tasks (lease_owner)"
	" WHERE state = 'running';",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))
/* Any fixed 64-bit number: edgevisor's migration lock among the database's. */
#define MIGRATE_LOCK "7350394721455012015"

/* ---- connection and statements with a deadline ----------------------------- */

static int
wait_fd(PGconn *c, int for_write, uint64_t deadline)
{
	struct pollfd p = {.fd = PQsocket(c), .events = POLLIN | (for_write ? POLLOUT : 0)};
	uint64_t now = clock_ms();
	int r;

	if (p.fd < 0) {
		seterr("no connection socket");
		return -1;
	}
	if (now >= deadline) {
		seterr("database did not answer within the op timeout");
		return -1;
	}
	do
		r = poll(&p, 1, (int)(deadline - now));
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		seterr("database did not answer within the op timeout");
		return -1;
	}
	return r < 0 ? -1 : 0;
}

static void
drop_conn(struct dpg *s)
{
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
	s->next_connect_ms = clock_ms() + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : s->backoff_ms * 2;
}

static int migrate(struct dpg *s, uint64_t deadline);
static int run_cmd(struct dpg *s, uint64_t deadline, const char *sql);

/* Server notices ("relation already exists, skipping") are not events of ours;
 * libpq would print them to stderr outside the log's format. */
static void
quiet_notice(void *arg, const char *msg)
{
	log_debug("durable_pg_notice", "msg=%s", log_qv(msg));
}

/* A working connection, or -1: never before the backoff allows. */
static int
ensure_conn(struct dpg *s, uint64_t deadline)
{
	char tmo[16];
	const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {tmo, "edgevisor", s->dsn, NULL};
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;

	if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
		return 0;
	if (s->conn)
		drop_conn(s);
	if (clock_ms() < s->next_connect_ms) {
		seterr("database unreachable (reconnect in %" PRIu64 " ms)",
		       s->next_connect_ms - clock_ms());
		return -1;
	}
	/* connect_timeout too, for the steps inside libpq we do not poll (the DSN may
	 * set its own: later keys override earlier ones). */
	snprintf(tmo, sizeof tmo, "%u", (s->o.op_timeout_ms + 999) / 1000);
	s->conn = PQconnectStartParams(keys, vals, 1);
	if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD)
		goto fail;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			goto fail;
		if (wait_fd(s->conn, st == PGRES_POLLING_WRITING, deadline) < 0)
			goto timeout;
		st = PQconnectPoll(s->conn);
	}
	if (PQsetnonblocking(s->conn, 1) != 0)
		goto fail;
	PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
	/* Outcomes commit asynchronously (see dpg_finish); enqueue, claim and renew
	 * turn it back on for their transaction: a lost enqueue would be a lost task,
	 * a lost claim or renewal a second concurrent attempt. */
	if (run_cmd(s, deadline, "SET synchronous_commit TO off") < 0) {
		if (s->conn)
			drop_conn(s);
		return -1;
	}
	if (!s->migrated && migrate(s, deadline) < 0) {
		drop_conn(s);
		return -1;
	}
	s->backoff_ms = BACKOFF_MIN_MS;
	log_info("durable_pg_connected", "function=%s owner=%s", s->function, log_qv(s->owner));
	return 0;
fail:
	seterr("database unreachable: %s", s->conn ? PQerrorMessage(s->conn) : "out of memory");
timeout:
	log_warn("durable_pg_unreachable", "function=%s err=%s backoff_ms=%u", s->function,
		 log_qv(err_buf), s->backoff_ms);
	drop_conn(s);
	return -1;
}

/*
 * One statement with text parameters (a NULL length array: all text; a length
 * array: entry i > 0 marks parameter i binary of that length) and text results,
 * bounded by DEADLINE. Returns the result (PGRES_COMMAND_OK or _TUPLES_OK), or
 * NULL with the error set; a connection-level failure drops the connection.
 */
static PGresult *
run(struct dpg *s, uint64_t deadline, const char *sql, int n, const char *const *vals,
    const int *lens, const int *fmts)
{
	PGresult *res = NULL, *r;
	int f;

	if (!PQsendQueryParams(s->conn, sql, n, NULL, vals, lens, fmts, 0))
		goto conn_fail;
	while ((f = PQflush(s->conn)) == 1)
		if (wait_fd(s->conn, 1, deadline) < 0 || PQconsumeInput(s->conn) == 0)
			goto conn_fail;
	if (f < 0)
		goto conn_fail;
	for (;;) {
		while (PQisBusy(s->conn)) {
			if (wait_fd(s->conn, 0, deadline) < 0 || PQconsumeInput(s->conn) == 0)
				goto conn_fail;
		}
		r = PQgetResult(s->conn);
		if (!r)
			break;
		if (res)
			PQclear(r);
		else
			res = r;
	}
	if (!res)
		goto conn_fail;
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		seterr("%s", PQresultErrorMessage(res));
		PQclear(res);
		if (PQstatus(s->conn) != CONNECTION_OK)
			drop_conn(s);
		return NULL;
	}
	return res;
conn_fail:
	if (!err_buf[0] || !strstr(err_buf, "op timeout"))
		seterr("database connection lost: %s", PQerrorMessage(s->conn));
	if (res)
		PQclear(res);
	/* Past the deadline or mid-statement: the connection's state is unknown, so it
	 * goes (the server rolls back an open transaction when it sees it close). */
	drop_conn(s);
	return NULL;
}

static int
run_cmd(struct dpg *s, uint64_t deadline, const char *sql)
{
	PGresult *r = run(s, deadline, sql, 0, NULL, NULL, NULL);

	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

static int
migrate(struct dpg *s, uint64_t deadline)
{
	PGresult *r;
	int have, rc = -1;
	char v[16];
	const char *vp[1] = {v};

	if (run_cmd(s, deadline, "BEGIN") < 0)
		return -1;
	if (run_cmd(s, deadline, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")") < 0 ||
	    run_cmd(s, deadline,
		    "CREATE TABLE IF NOT EXISTS edgevisor_schema (version int PRIMARY KEY,"
		    " applied_at timestamptz NOT NULL DEFAULT now())") < 0)
		goto out;
	r = run(s, deadline, "SELECT coalesce(max(version), 0) FROM edgevisor_schema", 0, NULL,
		NULL, NULL);
	if (!r)
		goto out;
	have = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (have > SCHEMA_VERSION) {
		seterr("database schema version %d is newer than this edgevisor's %d", have,
		       SCHEMA_VERSION);
		goto out;
	}
	for (int i = have; i < SCHEMA_VERSION; i++) {
		snprintf(v, sizeof v, "%d", i + 1);
		/* PQexec-style multi-statement text needs the simple protocol: run each
		 * step through the same bounded path with no parameters (a step may hold
		 * several statements only in simple mode, hence PQsendQuery below). */
		if (!PQsendQuery(s->conn, migrations[i])) {
			seterr("migration %d: %s", i + 1, PQerrorMessage(s->conn));
			goto out;
		}
		for (;;) {
			while (PQisBusy(s->conn))
				if (wait_fd(s->conn, 0, deadline) < 0 || PQconsumeInput(s->conn) == 0)
					goto out;
			r = PQgetResult(s->conn);
			if (!r)
				break;
			if (PQresultStatus(r) != PGRES_COMMAND_OK) {
				seterr("migration %d: %s", i + 1, PQresultErrorMessage(r));
				PQclear(r);
				while ((r = PQgetResult(s->conn)))
					PQclear(r);
				goto out;
			}
			PQclear(r);
		}
		r = run(s, deadline, "INSERT INTO edgevisor_schema (version) VALUES ($1)", 1, vp,
			NULL, NULL);
		if (!r)
			goto out;
		PQclear(r);
		log_info("durable_pg_migrated", "function=%s version=%d", s->function, i + 1);
	}
	if (run_cmd(s, deadline, "COMMIT") < 0)
		goto out;
	s->migrated = 1;
	rc = 0;
out:
	if (rc < 0) {
		log_error("durable_pg_migrate_failed", "function=%s err=%s", s->function,
			  log_qv(err_buf));
		if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
			drop_conn(s);
	}
	return rc;
}

/* ---- the store ------------------------------------------------------------- */

static void
make_owner(char *dst, size_t len)
{
	char host[64] = "?", boot[40] = "?";
	FILE *f;

	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	f = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (f) {
		if (!fgets(boot, sizeof boot, f))
			strcpy(boot, "?");
		fclose(f);
	}
	boot[strcspn(boot, "\n")] = '\0';
	boot[8] = boot[8] ? '\0' : boot[8];
	/* host alone is not unique (containers), pid alone repeats across boots. */
	snprintf(dst, len, "%s:%ld:%s", host, (long)getpid(), boot);
}

struct dpg *
dpg_open(const char *dsn, const char *function, const struct dpg_opts *opts)
{
	struct dpg *s;

	if (!dsn || !function || strlen(function) >= sizeof s->function)
		return NULL;
	s = calloc(1, sizeof *s);
	if (!s || !(s->dsn = strdup(dsn))) {
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	strcpy(s->function, function);
	make_owner(s->owner, sizeof s->owner);
	if (opts)
		s->o = *opts;
	if (!s->o.op_timeout_ms)
		s->o.op_timeout_ms = 5000;
	if (!s->o.lease_ms)
		s->o.lease_ms = 30000;
	if (!s->o.idem_window_ms)
		s->o.idem_window_ms = 86400000u;
	s->backoff_ms = BACKOFF_MIN_MS;
	return s;
}

void
dpg_close(struct dpg *s)
{
	if (!s)
		return;
	if (s->conn)
		PQfinish(s->conn);
	pthread_mutex_destroy(&s->mu);
	free(s->dsn);
	free(s);
}

const char *
dpg_owner(const struct dpg *s)
{
	return s->owner;
}

void
dpg_task_free(struct dpg_task *t)
{
	free(t->payload);
	t->payload = NULL;
}

/* Locks and connects: the common head of every call. */
static int
begin_call(struct dpg *s, uint64_t *deadline)
{
	err_buf[0] = '\0';
	pthread_mutex_lock(&s->mu);
	*deadline = clock_ms() + s->o.op_timeout_ms;
	if (ensure_conn(s, *deadline) < 0) {
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* One multi-row INSERT per chunk (inside the caller's transaction: the whole batch
 * is one commit). A duplicate idempotency key is skipped by ON CONFLICT and its
 * existing id looked up. */
static int
enqueue_chunk(struct dpg *s, uint64_t deadline, const struct dpg_item *it, size_t n,
	      int64_t *ids)
{
	enum { NP = 7 };
	size_t sqlcap = 512 + n * 96, off, got, next = 0;
	char *sql = malloc(sqlcap), (*num)[3][16] = calloc(n, sizeof *num);
	const char **vals = calloc(n * NP, sizeof *vals);
	int *lens = calloc(n * NP, sizeof *lens), *fmts = calloc(n * NP, sizeof *fmts);
	int64_t *plain = calloc(n, sizeof *plain);
	int rc = -1;
	PGresult *r = NULL;

	if (!sql || !num || !vals || !lens || !fmts || !plain) {
		seterr("out of memory");
		goto out;
	}
	off = (size_t)snprintf(sql, sqlcap,
			       "INSERT INTO edgevisor_tasks (function, kind, payload, idem_key,"
			       " due_at, max_attempts, timeout_ms) SELECT f, k, p, i,"
			       " now() + d * interval '1 millisecond', m, t FROM (VALUES ");
	for (size_t j = 0; j < n; j++) {
		size_t b = j * NP;

		snprintf(num[j][0], 16, "%u", it[j].delay_ms);
		snprintf(num[j][1], 16, "%u", it[j].max_attempts ? it[j].max_attempts : 1);
		snprintf(num[j][2], 16, "%u", it[j].timeout_ms);
		vals[b] = s->function;
		vals[b + 1] = it[j].kind;
		vals[b + 2] = it[j].len ? it[j].payload : "";
		lens[b + 2] = (int)it[j].len;
		fmts[b + 2] = 1;  /* the payload goes binary: no escaping either way */
		vals[b + 3] = it[j].idem_key && it[j].idem_key[0] ? it[j].idem_key : NULL;
		vals[b + 4] = num[j][0];
		vals[b + 5] = num[j][1];
		vals[b + 6] = num[j][2];
		off += (size_t)snprintf(sql + off, sqlcap - off,
					"%s($%zu::text,$%zu::text,$%zu::bytea,$%zu::text,$%zu::int,"
					"$%zu::int,$%zu::int,%zu)",
					j ? "," : "", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6, b + 7,
					j);
	}
	snprintf(sql + off, sqlcap - off,
		 ") AS v(f, k, p, i, d, m, t, o) ORDER BY o"
		 " ON CONFLICT (function, idem_key) WHERE idem_key IS NOT NULL DO NOTHING"
		 " RETURNING id, idem_key");
	r = run(s, deadline, sql, (int)(n * NP), vals, lens, fmts);
	if (!r)
		goto out;
	/* A keyed row is found by its key: returned if inserted (the first of a key
	 * repeated in one batch), else looked up below. Rows without a key take their
	 * ids in ascending order: ids come from one sequence as rows are inserted, and
	 * they are inserted in batch order (ORDER BY o). */
	got = (size_t)PQntuples(r);
	for (size_t j = 0; j < n; j++)
		ids[j] = -1;
	for (size_t q = 0; q < got; q++) {
		int64_t id = strtoll(PQgetvalue(r, (int)q, 0), NULL, 10);

		if (PQgetisnull(r, (int)q, 1)) {
			plain[next++] = id;
			continue;
		}
		for (size_t j = 0; j < n; j++)
			if (vals[j * NP + 3] && strcmp(vals[j * NP + 3], PQgetvalue(r, (int)q, 1)) == 0) {
				ids[j] = id;
				break;
			}
	}
	qsort(plain, next, sizeof *plain, cmp_id);
	PQclear(r);
	r = NULL;
	for (size_t j = 0, k = 0; j < n; j++) {
		const char *kv[2] = {s->function, vals[j * NP + 3]};

		if (!kv[1]) {
			if (k >= next) {
				seterr("insert returned fewer rows than new tasks");
				goto out;
			}
			ids[j] = plain[k++];
			continue;
		}
		if (ids[j] != -1)
			continue;
		/* the same key earlier in this batch: its id */
		for (size_t p = 0; p < j; p++)
			if (vals[p * NP + 3] && strcmp(vals[p * NP + 3], kv[1]) == 0)
				ids[j] = ids[p];
		if (ids[j] != -1)
			continue;
		r = run(s, deadline,
			"SELECT id FROM edgevisor_tasks WHERE function = $1 AND idem_key = $2", 2,
			kv, NULL, NULL);
		if (!r)
			goto out;
		if (PQntuples(r) != 1) {
			seterr("idempotency key vanished during enqueue");
			goto out;
		}
		ids[j] = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		r = NULL;
	}
	rc = 0;
out:
	if (r)
		PQclear(r);
	free(sql);
	free(num);
	free(vals);
	free(lens);
	free(fmts);
	free(plain);
	return rc;
}

int
dpg_enqueue(struct dpg *s, const struct dpg_item *items, size_t n, int64_t *ids)
{
	uint64_t deadline;
	int rc = -1;

	if (n == 0)
		return 0;
	if (begin_call(s, &deadline) < 0)
		return -1;
	if (run_cmd(s, deadline, "BEGIN") < 0 ||
	    run_cmd(s, deadline, "SET LOCAL synchronous_commit TO on") < 0)
		goto abort;
	for (size_t i = 0; i < n; i += DPG_MAX_BATCH) {
		size_t c = n - i < DPG_MAX_BATCH ? n - i : DPG_MAX_BATCH;

		if (enqueue_chunk(s, deadline, items + i, c, ids + i) < 0)
			goto abort;
	}
	if (run_cmd(s, deadline, "COMMIT") == 0)
		rc = 0;
	goto out;
abort:
	if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		run_cmd(s, deadline, "ROLLBACK");
out:
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
dpg_claim(struct dpg *s, size_t max, struct dpg_task *out, size_t *got)
{
	char lim[24], lease[16];
	const char *v[4] = {s->function, s->owner, lease, lim};
	uint64_t deadline;
	PGresult *r;
	int rc = -1;

	*got = 0;
	if (max == 0)
		return 0;
	if (begin_call(s, &deadline) < 0)
		return -1;
	snprintf(lim, sizeof lim, "%zu", max);
	snprintf(lease, sizeof lease, "%u", s->o.lease_ms);
	if (run_cmd(s, deadline, "BEGIN") < 0 ||
	    run_cmd(s, deadline, "SET LOCAL synchronous_commit TO on") < 0)
		goto out;
	/* A task whose lease ran out after its last allowed attempt is dead: the crash
	 * that cut it counts as a failure (else a task that kills its worker loops). */
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET state = 'dead', lease_owner = NULL,"
		" finished_at = now(), last_error = 'lease expired after the last attempt'"
		" WHERE function = $1 AND state = 'running' AND due_at <= now()"
		" AND attempts >= max_attempts",
		1, v, NULL, NULL);
	if (!r)
		goto out;
	PQclear(r);
	r = run(s, deadline,
		"WITH c AS (SELECT id FROM edgevisor_tasks WHERE function = $1"
		" AND state IN ('pending','running') AND due_at <= now()"
		" ORDER BY due_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
		" UPDATE edgevisor_tasks t SET state = 'running', attempts = t.attempts + 1,"
		" lease_owner = $2, due_at = now() + $3::int * interval '1 millisecond'"
		" FROM c WHERE t.id = c.id"
		" RETURNING t.id, t.kind, t.payload, t.attempts, t.max_attempts, t.timeout_ms",
		4, v, NULL, NULL);
	if (!r)
		goto out;
	for (int i = 0; i < PQntuples(r); i++) {
		struct dpg_task *t = &out[*got];
		size_t len = 0;
		unsigned char *p = PQunescapeBytea((const unsigned char *)PQgetvalue(r, i, 2), &len);

		if (!p)
			continue;  /* cannot happen short of memory; the lease returns it */
		memset(t, 0, sizeof *t);
		t->id = strtoll(PQgetvalue(r, i, 0), NULL, 10);
		snprintf(t->kind, sizeof t->kind, "%s", PQgetvalue(r, i, 1));
		t->payload = malloc(len ? len : 1);
		if (t->payload)
			memcpy(t->payload, p, len);
		PQfreemem(p);
		if (!t->payload)
			continue;
		t->len = len;
		t->attempt = (unsigned)atoi(PQgetvalue(r, i, 3));
		t->max_attempts = (unsigned)atoi(PQgetvalue(r, i, 4));
		t->timeout_ms = (unsigned)atoi(PQgetvalue(r, i, 5));
		(*got)++;
	}
	PQclear(r);
	if (run_cmd(s, deadline, "COMMIT") == 0)
		rc = 0;
out:
	if (rc < 0) {
		for (size_t i = 0; i < *got; i++)
			dpg_task_free(&out[i]);
		*got = 0;
		if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
			run_cmd(s, deadline, "ROLLBACK");
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
dpg_renew(struct dpg *s)
{
	char lease[16];
	const char *v[2] = {s->owner, lease};
	uint64_t deadline;
	PGresult *r;

	if (begin_call(s, &deadline) < 0)
		return -1;
	snprintf(lease, sizeof lease, "%u", s->o.lease_ms);
	if (run_cmd(s, deadline, "BEGIN") < 0 ||
	    run_cmd(s, deadline, "SET LOCAL synchronous_commit TO on") < 0)
		goto fail;
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET due_at = now() + $2::int * interval '1 millisecond'"
		" WHERE lease_owner = $1 AND state = 'running'",
		2, v, NULL, NULL);
	if (!r)
		goto fail;
	PQclear(r);
	if (run_cmd(s, deadline, "COMMIT") < 0)
		goto fail;
	pthread_mutex_unlock(&s->mu);
	return 0;
fail:
	if (s->conn && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
		run_cmd(s, deadline, "ROLLBACK");
	pthread_mutex_unlock(&s->mu);
	return -1;
}

int
dpg_finish(struct dpg *s, int64_t id, enum dpg_outcome o, unsigned retry_in_ms,
	   const char *error)
{
	char idb[24], retry[16], win[24];
	const char *v[5] = {idb, s->owner, s->function, retry, error};
	uint64_t deadline;
	PGresult *r;
	int rc;

	if (begin_call(s, &deadline) < 0)
		return -1;
	snprintf(idb, sizeof idb, "%" PRId64, id);
	snprintf(retry, sizeof retry, "%u", retry_in_ms);
	snprintf(win, sizeof win, "%u", s->o.idem_window_ms);
	/* Only the lease holder may end an attempt: one whose lease ran out and was
	 * claimed again must not overwrite the new attempt's outcome. An outcome commits
	 * without waiting for its WAL flush (the session's synchronous_commit is off,
	 * see ensure_conn): what a database crash can lose of it is the outcome, so the
	 * attempt runs again, which at-least-once delivery allows; it saves a disk
	 * flush per task. */
	switch (o) {
	case DPG_SUCCEEDED:
		r = run(s, deadline,
			"UPDATE edgevisor_tasks SET state = 'succeeded', lease_owner = NULL,"
			" finished_at = now(), last_error = NULL"
			" WHERE id = $1 AND lease_owner = $2 AND function = $3 AND state = 'running'",
			3, v, NULL, NULL);
		break;
	case DPG_RETRY:
		r = run(s, deadline,
			"UPDATE edgevisor_tasks SET state = 'pending', lease_owner = NULL,"
			" due_at = now() + $4::int * interval '1 millisecond', last_error = $5"
			" WHERE id = $1 AND lease_owner = $2 AND function = $3 AND state = 'running'",
			5, v, NULL, NULL);
		break;
	default:
		v[3] = error;
		r = run(s, deadline,
			"UPDATE edgevisor_tasks SET state = 'dead', lease_owner = NULL,"
			" finished_at = now(), last_error = $4"
			" WHERE id = $1 AND lease_owner = $2 AND function = $3 AND state = 'running'",
			4, v, NULL, NULL);
		break;
	}
	if (!r) {
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	rc = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	if (o == DPG_SUCCEEDED && rc && ++s->finishes >= 64) {
		/* Finished rows stay only as long as their key de-duplicates (or for the
		 * window, without one); trimmed every 64 successes, a bounded batch, off
		 * the claim path. */
		const char *pv[2] = {s->function, win};

		s->finishes = 0;

		r = run(s, deadline,
			"DELETE FROM edgevisor_tasks WHERE id IN (SELECT id FROM edgevisor_tasks"
			" WHERE function = $1 AND state = 'succeeded'"
			" AND finished_at < now() - $2::bigint * interval '1 millisecond' LIMIT 256)",
			2, pv, NULL, NULL);
		if (r)
			PQclear(r);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int
dpg_release(struct dpg *s)
{
	const char *v[1] = {s->owner};
	uint64_t deadline;
	PGresult *r;

	if (begin_call(s, &deadline) < 0)
		return -1;
	/* The attempt was not run to an outcome: give it back without counting it. */
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET state = 'pending', lease_owner = NULL, due_at = now(),"
		" attempts = greatest(attempts - 1, 0)"
		" WHERE lease_owner = $1 AND state = 'running'",
		1, v, NULL, NULL);
	pthread_mutex_unlock(&s->mu);
	if (!r)
		return -1;
	PQclear(r);
	return 0;
}

int
dpg_counts(struct dpg *s, struct dpg_counts *c)
{
	const char *v[1] = {s->function};
	uint64_t deadline;
	PGresult *r;

	memset(c, 0, sizeof *c);
	if (begin_call(s, &deadline) < 0)
		return -1;
	r = run(s, deadline,
		"SELECT count(*) FILTER (WHERE state = 'pending'),"
		" count(*) FILTER (WHERE state = 'running'),"
		" count(*) FILTER (WHERE state = 'succeeded'),"
		" count(*) FILTER (WHERE state = 'dead'),"
		" coalesce((extract(epoch FROM now() - min(due_at) FILTER"
		"  (WHERE state = 'pending' AND due_at <= now())) * 1000)::bigint, 0)"
		" FROM edgevisor_tasks WHERE function = $1",
		1, v, NULL, NULL);
	pthread_mutex_unlock(&s->mu);
	if (!r)
		return -1;
	c->pending = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	c->running = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
	c->succeeded = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
	c->dead = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
	c->oldest_pending_ms = strtoull(PQgetvalue(r, 0, 4), NULL, 10);
	PQclear(r);
	return 0;
}

int
dpg_redrive(struct dpg *s, int64_t id)
{
	char idb[24];
	const char *v[2] = {idb, s->function};
	uint64_t deadline;
	PGresult *r;
	int rc;

	if (begin_call(s, &deadline) < 0)
		return -1;
	snprintf(idb, sizeof idb, "%" PRId64, id);
	r = run(s, deadline,
		"UPDATE edgevisor_tasks SET state = 'pending', due_at = now(), attempts = 0,"
		" finished_at = NULL WHERE id = $1 AND function = $2 AND state = 'dead'",
		2, v, NULL, NULL);
	pthread_mutex_unlock(&s->mu);
	if (!r)
		return -1;
	rc = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return rc;
}
