/*
 * durable_store.h - the backend interface of durable tasks: what the engine
 * (worker/durable.c) and edgevisorctl need from a journal, whatever keeps it.
 *
 * Two backends implement it: the local journal (worker/durable_local.c, SQLite in
 * WAL mode, one file per function) and PostgreSQL (worker/durable_pg.c, one shared
 * database for several hosts). A backend embeds struct durable_store first and
 * fills OPS; every call goes through the ops table.
 *
 * Rules every backend keeps:
 *  - One handle is used by one thread at a time (the engine's committer thread, or
 *    edgevisorctl); a backend needs no lock of its own for that.
 *  - Every call returns 0 (or the count stated) on success and -1 on failure with
 *    ERR filled (a short reason, NUL-terminated, never NULL-dereferenced when
 *    ERRLEN is 0) and errno set: ENOSPC (the per-function size cap is reached),
 *    EINVAL (a bad argument, e.g. an unknown kind length), ENOENT (no such task in
 *    the state the call needs), EAGAIN (the store is unreachable or busy now: the
 *    caller may retry later; never a hang longer than the backend's own timeout),
 *    EIO (anything else).
 *  - Times are wall-clock milliseconds since the epoch (CLOCK_REALTIME), given by
 *    the caller as NOW_MS so the logic is testable; a backend shared by hosts may
 *    use its own clock instead (say so in its file).
 *  - A task belongs to one function: the handle was opened for it, and no call can
 *    reach another function's tasks.
 *  - Delivery is at-least-once: a task is claimed under a lease; when the lease
 *    runs out (the owner crashed, or stopped renewing) it is due again and another
 *    claim takes it, its attempt counted.
 *
 * States: PENDING (waiting for run_at; "retrying" when attempts > 0), RUNNING
 * (claimed, lease_until in the future), DONE (succeeded; kept for the idempotency
 * window, then purged), DEAD (failed permanently or out of attempts; kept until
 * retried or purged by the operator).
 */
#ifndef WK_DURABLE_STORE_H
#define WK_DURABLE_STORE_H

#include <stddef.h>
#include <stdint.h>

#define DURABLE_KIND_MAX   63     /* kind names: [A-Za-z0-9_.:-]{1,63} */
#define DURABLE_KEY_MAX    255    /* idempotency keys: any bytes but NUL, 1..255 */
#define DURABLE_OWNER_MAX  127    /* lease owner: "host:pid:worker" */
#define DURABLE_WHY_MAX    255    /* last error text kept per task */
#define DURABLE_PAYLOAD_MAX (1024 * 1024)

enum durable_state {
	DURABLE_PENDING = 0,
	DURABLE_RUNNING = 1,
	DURABLE_DONE = 2,
	DURABLE_DEAD = 3,
	DURABLE_STATE_MAX
};

/* What an attempt ended with (durable_ops.finish). */
enum durable_outcome {
	DURABLE_OK = 0,       /* -> DONE */
	DURABLE_RETRY = 1,    /* -> PENDING at NEXT_AT_MS (the engine decides the backoff
	                       * and turns RETRY into DEAD when attempts are used up) */
	DURABLE_FAIL = 2,     /* -> DEAD now (permanent failure) */
};

/* One task to record (durable_ops.enqueue_batch); the pointers are read during
 * the call only. */
struct durable_new {
	const char *kind;          /* NUL-terminated, 1..DURABLE_KIND_MAX */
	const void *payload;       /* may be NULL when LEN is 0 */
	size_t len;                /* <= DURABLE_PAYLOAD_MAX */
	const char *idem_key;      /* NULL = none; see enqueue_batch */
	int64_t run_at_ms;         /* first due time (now + delay) */
	uint32_t max_attempts;     /* >= 1 */
	uint32_t timeout_ms;       /* per attempt; 0 = the engine's default */
};

/* A claimed task (durable_ops.claim). PAYLOAD is malloc()ed by the backend and
 * owned by the caller: free it with durable_task_clear(). */
struct durable_task {
	int64_t id;
	char kind[DURABLE_KIND_MAX + 1];
	void *payload;
	size_t len;
	uint32_t attempt;          /* this attempt's number, 1-based (already counted) */
	uint32_t max_attempts;
	uint32_t timeout_ms;
	int64_t created_ms;
	int64_t lease_until_ms;
};

/* One row for edgevisorctl (durable_ops.list); no payload. */
struct durable_info {
	int64_t id;
	char kind[DURABLE_KIND_MAX + 1];
	uint32_t state;            /* enum durable_state */
	uint32_t attempts;         /* attempts started so far */
	uint32_t max_attempts;
	int64_t created_ms;
	int64_t run_at_ms;         /* PENDING: next due time; RUNNING: lease end */
	int64_t finished_ms;       /* DONE/DEAD: when; else 0 */
	char owner[DURABLE_OWNER_MAX + 1];   /* RUNNING: who holds the lease; else "" */
	char why[DURABLE_WHY_MAX + 1];       /* the last failure's reason, or "" */
};

/* Per-kind counts (durable_ops.counts). The state counts are what the journal
 * holds now; the totals are cumulative over the journal's life (kept by the
 * backend, so they survive restarts). */
struct durable_count {
	char kind[DURABLE_KIND_MAX + 1];
	uint64_t pending;          /* PENDING with attempts == 0 */
	uint64_t retrying;         /* PENDING with attempts > 0 */
	uint64_t running;
	uint64_t dead;
	uint64_t enqueued;         /* totals: tasks recorded (idempotent repeats not counted) */
	uint64_t succeeded;
	uint64_t retried;          /* attempts that ended RETRY or whose lease expired */
	uint64_t failed;           /* tasks that went DEAD */
	int64_t oldest_ms;         /* created_ms of the oldest PENDING/RUNNING task, 0 = none */
};

/* How a store is opened (durable_store_open). */
enum durable_backend {
	DURABLE_BACKEND_LOCAL = 0,
	DURABLE_BACKEND_POSTGRESQL = 1,
};

struct durable_conf {
	uint32_t backend;          /* enum durable_backend */
	const char *path;          /* LOCAL: the journal file (its directory exists) */
	const char *dsn;           /* POSTGRESQL: the connection string (read from dsn_file) */
	const char *function;      /* the function the handle serves */
	uint64_t max_bytes;        /* size cap of the function's tasks; 0 = none */
	uint32_t idem_window_ms;   /* how long a DONE task's key still de-duplicates */
	uint32_t timeout_ms;       /* a backend's own bound on one call (connect, lock) */
};

#define DURABLE_OPEN_READONLY 0x1u  /* edgevisorctl listing: no writes, no schema */

struct durable_store;

struct durable_ops {
	const char *name;          /* "local", "postgresql" */

	/*
	 * Records N tasks in one transaction, durable on return (the engine batches
	 * many callers' tasks into one call: that is the group commit). IDS[i] gets
	 * each task's id. A task with an IDEM_KEY that matches a PENDING, RUNNING or
	 * DEAD task, or a DONE one finished within idem_window_ms, records nothing and
	 * gets that task's id, and DUP[i] is set to 1 (DUP may be NULL). All or
	 * nothing: on -1 no task of the batch is recorded (ENOSPC: the cap is reached).
	 */
	int (*enqueue_batch)(struct durable_store *s, const struct durable_new *v, size_t n,
	    int64_t now_ms, int64_t *ids, uint8_t *dup, char *err, size_t errlen);

	/*
	 * Claims up to MAX due tasks (PENDING with run_at <= now, or RUNNING whose lease
	 * ended before now: then that lost attempt counts as retried) for OWNER until
	 * now + LEASE_MS, oldest due first, each attempt counted. KINDS (NKINDS names)
	 * limits the claim to the kinds this worker has handlers for; NKINDS 0 = any.
	 * *N gets how many were claimed (0 is not an error).
	 */
	int (*claim)(struct durable_store *s, const char *owner, int64_t now_ms,
	    uint32_t lease_ms, const char *const *kinds, size_t nkinds, size_t max,
	    struct durable_task *out, size_t *n, char *err, size_t errlen);

	/*
	 * Ends attempt ATTEMPT of task ID held by OWNER with OUTCOME; RETRY makes it due
	 * at NEXT_AT_MS; WHY (may be NULL) is kept as the last reason. Returns 0, or 1
	 * when the task is no longer held by OWNER at that attempt (the lease expired
	 * and it was claimed again, or retried by the operator): nothing changes, the
	 * other holder's attempt wins.
	 */
	int (*finish)(struct durable_store *s, int64_t id, const char *owner, uint32_t attempt,
	    int outcome, int64_t now_ms, int64_t next_at_ms, const char *why,
	    char *err, size_t errlen);

	/*
	 * Gives task ID back (a draining worker whose attempt did not start or was cut
	 * short): PENDING, due now, and the attempt is not counted. Returns 0, or 1
	 * when OWNER does not hold it (as finish).
	 */
	int (*release)(struct durable_store *s, int64_t id, const char *owner, uint32_t attempt,
	    int64_t now_ms, char *err, size_t errlen);

	/* Extends every lease OWNER holds to now + LEASE_MS. */
	int (*renew)(struct durable_store *s, const char *owner, int64_t now_ms,
	    uint32_t lease_ms, char *err, size_t errlen);

	/*
	 * The earliest time a task becomes claimable: *AT_MS = the smallest run_at of a
	 * PENDING task or lease_until of a RUNNING one; 0 when there is none. Cheap
	 * (an index lookup): the supervisor's on-demand wake-up asks it off its loop.
	 */
	int (*next_due)(struct durable_store *s, int64_t *at_ms, char *err, size_t errlen);

	/* Fills up to MAX per-kind counts, sorted by kind; *N gets how many. */
	int (*counts)(struct durable_store *s, struct durable_count *out, size_t max,
	    size_t *n, char *err, size_t errlen);

	/*
	 * Lists up to MAX tasks in state STATE (or every state but DONE when STATE is
	 * -1), ordered by id, starting after AFTER_ID (paging); *N gets how many.
	 */
	int (*list)(struct durable_store *s, int state, int64_t after_id, size_t max,
	    struct durable_info *out, size_t *n, char *err, size_t errlen);

	/* Re-drives DEAD task ID: PENDING, due now, attempts back to 0. ENOENT when
	 * there is no such DEAD task. */
	int (*retry)(struct durable_store *s, int64_t id, int64_t now_ms, char *err,
	    size_t errlen);

	/* Deletes DONE tasks finished before BEFORE_MS (the idempotency window has
	 * passed); *N (may be NULL) gets how many. */
	int (*purge)(struct durable_store *s, int64_t before_ms, uint64_t *n, char *err,
	    size_t errlen);

	/* Closes the handle and frees S. */
	void (*close)(struct durable_store *s);
};

struct durable_store {
	const struct durable_ops *ops;
	uint32_t flags;            /* DURABLE_OPEN_* it was opened with */
};

/*
 * Opens the store CONF names for CONF->function (creating the journal or schema
 * unless READONLY). Returns the handle, or NULL with ERR and errno.
 * durable_store.c dispatches to the backend's open below.
 */
struct durable_store *durable_store_open(const struct durable_conf *conf, uint32_t flags,
    char *err, size_t errlen);
struct durable_store *durable_local_open(const struct durable_conf *conf, uint32_t flags,
    char *err, size_t errlen);
struct durable_store *durable_pg_open(const struct durable_conf *conf, uint32_t flags,
    char *err, size_t errlen);

/* Frees a claimed task's payload and zeroes it. */
void durable_task_clear(struct durable_task *t);
/* "pending", "running", "done", "dead" ("?" for anything else). */
const char *durable_state_name(int state);
/* 1 when KIND is a valid kind name, else 0. */
int durable_kind_valid(const char *kind);

#endif
