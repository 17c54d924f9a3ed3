/*
 * durable_pg.h - the PostgreSQL backend of durable tasks (libpq).
 *
 * One store = one connection of one worker, on behalf of one function: every row it
 * reads or writes carries that function's name, so a worker only ever sees its own
 * function's tasks (the trust model is in README "Durable tasks"). Calls are
 * serialised by a mutex (libpq connections are not shared between threads) and each
 * is bounded by the store's op timeout: none hangs on an unreachable database.
 * Errors: -1, with the reason in dpg_error() (of the calling thread's last failure).
 */
#ifndef EV_DURABLE_PG_H
#define EV_DURABLE_PG_H

#include <stddef.h>
#include <stdint.h>

struct dpg;

struct dpg_opts {
	unsigned op_timeout_ms;   /* bound of one call (connect + statements); 0 = 5000 */
	unsigned lease_ms;        /* a claim holds a task this long unless renewed; 0 = 30000 */
	unsigned idem_window_ms;  /* a finished task's key de-duplicates this long; 0 = 1 day */
};

/* One task to record. */
struct dpg_item {
	const char *kind;
	const void *payload;
	size_t len;
	const char *idem_key;     /* NULL or "": none */
	unsigned delay_ms;
	unsigned max_attempts;
	unsigned timeout_ms;
};

/* One claimed attempt; payload is malloc'd (free with dpg_task_free). */
struct dpg_task {
	int64_t id;
	char kind[64];
	void *payload;
	size_t len;
	unsigned attempt;         /* 1 for the first */
	unsigned max_attempts;
	unsigned timeout_ms;
};

enum dpg_outcome { DPG_SUCCEEDED, DPG_RETRY, DPG_DEAD };

/* Counts of one function's tasks, for /status. */
struct dpg_counts {
	uint64_t pending, running, succeeded, dead;
	uint64_t oldest_pending_ms;  /* age of the oldest due pending task, 0 = none */
};

/*
 * Opens a store for FUNCTION on DSN (a libpq connection string). The first connect
 * creates or migrates the schema (under an advisory lock, so two hosts starting at
 * once is safe). A database that cannot be reached at open is not an error: the
 * store connects on first use, with backoff. NULL only on bad arguments or no memory.
 */
struct dpg *dpg_open(const char *dsn, const char *function, const struct dpg_opts *opts);
void dpg_close(struct dpg *s);

/* The lease owner this store claims as: "host:pid:boot-id-prefix". */
const char *dpg_owner(const struct dpg *s);

/* Records N items in one transaction (one commit for all: group commit); IDS[i] gets
 * the task's id (an existing one for a duplicate idempotency key). */
int dpg_enqueue(struct dpg *s, const struct dpg_item *items, size_t n, int64_t *ids);

/* Claims up to MAX due tasks (pending and due, or running with an expired lease)
 * under a fresh lease; *GOT is how many. */
int dpg_claim(struct dpg *s, size_t max, struct dpg_task *out, size_t *got);

/* Extends the lease of every task this store holds. */
int dpg_renew(struct dpg *s);

/* Ends an attempt: succeeded, retry after RETRY_IN_MS, or dead. Returns 1 if the
 * store still held the task, 0 if its lease had been lost (another may run it). */
int dpg_finish(struct dpg *s, int64_t id, enum dpg_outcome o, unsigned retry_in_ms,
	       const char *error);

/* Gives back every task this store holds (drain): due again at once, attempt kept. */
int dpg_release(struct dpg *s);

int dpg_counts(struct dpg *s, struct dpg_counts *c);

/* Makes dead task ID of this function pending again with a fresh attempt budget;
 * returns 1 if it was dead, 0 if not. */
int dpg_redrive(struct dpg *s, int64_t id);

const char *dpg_error(void);
void dpg_task_free(struct dpg_task *t);

#endif
