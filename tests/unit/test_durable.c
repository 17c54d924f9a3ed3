/*
 * test_durable.c - durable tasks' pure logic: the backoff with jitter
 * (worker/durable_retry.c), kind names, and the local journal's rules
 * (worker/durable_local.c) on a real SQLite file with the clock given by the test:
 * claim order and leases, fencing of a stale holder, release, retry and dead,
 * idempotency window, the size cap, counts.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "durable_retry.h"
#include "durable_store.h"
#include "unit.h"

static void
case_backoff_grows_with_jitter_and_caps(void)
{
	/* Equal jitter: attempt n waits in [d/2, d], d = min(max, base * 2^(n-1)). */
	for (uint64_t r = 0; r < 5000; r += 7) {
		uint64_t w1 = durable_backoff_ms(1, 1000, 60000, r);
		uint64_t w2 = durable_backoff_ms(2, 1000, 60000, r * 31 + 5);
		uint64_t w3 = durable_backoff_ms(3, 1000, 60000, r * 17 + 3);

		UNIT_CHECKF(w1 >= 500 && w1 <= 1000, "attempt 1 waited %llu", (unsigned long long)w1);
		UNIT_CHECKF(w2 >= 1000 && w2 <= 2000, "attempt 2 waited %llu", (unsigned long long)w2);
		UNIT_CHECKF(w3 >= 2000 && w3 <= 4000, "attempt 3 waited %llu", (unsigned long long)w3);
	}
	/* The cap holds however many attempts, without overflow. */
	for (uint32_t a = 1; a < 200; a++) {
		uint64_t w = durable_backoff_ms(a, 1000, 60000, UINT64_MAX - a);
		UNIT_CHECKF(w <= 60000, "attempt %u waited %llu", a, (unsigned long long)w);
	}
	UNIT_CHECK(durable_backoff_ms(1000000, 1, 1, 12345) <= 1);
	/* The jitter is real: not every random value gives the same wait. */
	UNIT_CHECK(durable_backoff_ms(4, 1000, 60000, 1) != durable_backoff_ms(4, 1000, 60000, 2));
	UNIT_CHECK(durable_backoff_ms(0, 100, 1000, 0) == 50);
out:;
}

static void
case_kind_names(void)
{
	UNIT_CHECK(durable_kind_valid("send-mail"));
	UNIT_CHECK(durable_kind_valid("a.b:c_d-9"));
	UNIT_CHECK(!durable_kind_valid(""));
	UNIT_CHECK(!durable_kind_valid("has space"));
	UNIT_CHECK(!durable_kind_valid("quote\""));
	UNIT_CHECK(!durable_kind_valid(NULL));
	{
		char k[DURABLE_KIND_MAX + 2];
		memset(k, 'k', sizeof(k) - 1);
		k[sizeof(k) - 1] = '\0';
		UNIT_CHECK(!durable_kind_valid(k));
		k[DURABLE_KIND_MAX] = '\0';
		UNIT_CHECK(durable_kind_valid(k));
	}
	UNIT_CHECK(strcmp(durable_state_name(DURABLE_DEAD), "dead") == 0);
	UNIT_CHECK(strcmp(durable_state_name(99), "?") == 0);
out:;
}

static char dir[256];

static struct durable_store *
open_store(const char *file, uint64_t max_bytes)
{
	char path[400], err[256];
	struct durable_conf c = { .backend = DURABLE_BACKEND_LOCAL, .function = "t",
		.max_bytes = max_bytes, .idem_window_ms = 10000 };
	struct durable_store *s;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	c.path = path;
	s = durable_store_open(&c, 0, err, sizeof(err));
	if (s == NULL)
		unit_fail(__LINE__, "open %s: %s", path, err);
	return s;
}

static void
case_claim_lease_fence_finish(void)
{
	struct durable_store *s = open_store("a.db", 0);
	struct durable_new v[3] = {
		{ .kind = "k", .payload = "one", .len = 3, .run_at_ms = 1000, .max_attempts = 5 },
		{ .kind = "k", .payload = "two", .len = 3, .run_at_ms = 500, .max_attempts = 5 },
		{ .kind = "other", .payload = "", .len = 0, .run_at_ms = 0, .max_attempts = 1 },
	};
	const char *kinds[] = { "k" };
	struct durable_task t[4] = { 0 };
	int64_t ids[3], at;
	char err[256];
	size_t n = 0;

	UNIT_CHECK(s != NULL);
	UNIT_CHECK(s->ops->enqueue_batch(s, v, 3, 100, ids, NULL, err, sizeof(err)) == 0);
	UNIT_CHECK(ids[0] < ids[1] && ids[1] < ids[2]);
	/* Nothing of kind k is due before 500. */
	UNIT_CHECK(s->ops->claim(s, "w1", 400, 1000, kinds, 1, 4, t, &n, err, sizeof(err)) == 0);
	UNIT_CHECK(n == 0);
	/* Due first, claimed first; the other kind is not ours. */
	UNIT_CHECK(s->ops->claim(s, "w1", 2000, 1000, kinds, 1, 4, t, &n, err, sizeof(err)) == 0);
	UNIT_CHECKF(n == 2 && t[0].id == ids[1] && t[1].id == ids[0], "claimed %zu", n);
	UNIT_CHECK(t[0].attempt == 1 && t[0].len == 3 && memcmp(t[0].payload, "two", 3) == 0);
	UNIT_CHECK(s->ops->next_due(s, &at, err, sizeof(err)) == 0 && at == 0);
	/* Held: not claimable before the lease ends; claimable (attempt 2) after. */
	UNIT_CHECK(s->ops->claim(s, "w2", 2500, 1000, kinds, 1, 4, t + 2, &n, err, sizeof(err)) == 0);
	UNIT_CHECK(n == 0);
	UNIT_CHECK(s->ops->renew(s, "w1", 2900, 1000, err, sizeof(err)) == 0);
	UNIT_CHECK(s->ops->claim(s, "w2", 3500, 1000, kinds, 1, 4, t + 2, &n, err, sizeof(err)) == 0);
	UNIT_CHECK(n == 0);
	durable_task_clear(&t[0]);
	durable_task_clear(&t[1]);
	UNIT_CHECK(s->ops->claim(s, "w2", 4000, 1000, kinds, 1, 4, t, &n, err, sizeof(err)) == 0);
	UNIT_CHECKF(n == 2 && t[0].attempt == 2 && t[1].attempt == 2, "reclaimed %zu", n);
	/* The stale holder's result is fenced off; the new holder's counts. */
	UNIT_CHECK(s->ops->finish(s, ids[1], "w1", 1, DURABLE_OK, 4100, 0, NULL, err, sizeof(err)) == 1);
	UNIT_CHECK(s->ops->finish(s, ids[1], "w2", 2, DURABLE_OK, 4100, 0, NULL, err, sizeof(err)) == 0);
	/* Release: pending again, the attempt not counted. */
	UNIT_CHECK(s->ops->release(s, ids[0], "w2", 2, 4200, err, sizeof(err)) == 0);
	UNIT_CHECK(s->ops->claim(s, "w3", 4300, 1000, kinds, 1, 1, t + 3, &n, err, sizeof(err)) == 0);
	UNIT_CHECK(n == 1 && t[3].id == ids[0] && t[3].attempt == 2);
	/* Retry later, then dead; re-driven from dead. */
	UNIT_CHECK(s->ops->finish(s, ids[0], "w3", 2, DURABLE_RETRY, 4400, 9000, "x", err, sizeof(err)) == 0);
	UNIT_CHECK(s->ops->claim(s, "w3", 8999, 1000, kinds, 1, 1, t + 2, &n, err, sizeof(err)) == 0 &&
	    n == 0);
	durable_task_clear(&t[3]);
	UNIT_CHECK(s->ops->claim(s, "w3", 9000, 1000, kinds, 1, 1, t + 3, &n, err, sizeof(err)) == 0 &&
	    n == 1 && t[3].attempt == 3);
	UNIT_CHECK(s->ops->finish(s, ids[0], "w3", 3, DURABLE_FAIL, 9100, 0, "boom", err, sizeof(err)) == 0);
	UNIT_CHECK(s->ops->retry(s, ids[1], 9200, err, sizeof(err)) < 0 && errno == ENOENT);
	UNIT_CHECK(s->ops->retry(s, ids[0], 9200, err, sizeof(err)) == 0);
	{
		struct durable_info info[4];
		struct durable_count c[4];

		UNIT_CHECK(s->ops->list(s, -1, 0, 4, info, &n, err, sizeof(err)) == 0);
		/* Done tasks are not listed: the re-driven one and "other". */
		UNIT_CHECKF(n == 2 && info[0].id == ids[0] && info[0].state == DURABLE_PENDING &&
		    info[0].attempts == 0 && strcmp(info[0].why, "boom") == 0, "listed %zu", n);
		UNIT_CHECK(s->ops->counts(s, c, 4, &n, err, sizeof(err)) == 0 && n == 2);
		UNIT_CHECK(strcmp(c[0].kind, "k") == 0 && c[0].enqueued == 2 && c[0].succeeded == 1 &&
		    c[0].retried == 3 && c[0].failed == 1 && c[0].pending == 1);
		UNIT_CHECK(strcmp(c[1].kind, "other") == 0 && c[1].pending == 1);
	}
	errno = 0;
out:
	for (int i = 0; i < 4; i++)
		durable_task_clear(&t[i]);
	if (s != NULL)
		s->ops->close(s);
}

static void
case_idempotency_window(void)
{
	struct durable_store *s = open_store("b.db", 0);
	struct durable_new v = { .kind = "k", .payload = "p", .len = 1, .idem_key = "order-1",
		.max_attempts = 1 };
	struct durable_task t = { 0 };
	int64_t id1, id2, id3;
	uint8_t dup = 0;
	char err[256];
	size_t n;

	UNIT_CHECK(s != NULL);
	UNIT_CHECK(s->ops->enqueue_batch(s, &v, 1, 100, &id1, &dup, err, sizeof(err)) == 0 && !dup);
	UNIT_CHECK(s->ops->enqueue_batch(s, &v, 1, 200, &id2, &dup, err, sizeof(err)) == 0 && dup);
	UNIT_CHECK(id1 == id2);
	UNIT_CHECK(s->ops->claim(s, "w", 300, 1000, NULL, 0, 1, &t, &n, err, sizeof(err)) == 0 && n == 1);
	UNIT_CHECK(s->ops->finish(s, id1, "w", 1, DURABLE_OK, 400, 0, NULL, err, sizeof(err)) == 0);
	/* Done within the window (10 s): still the same task. */
	UNIT_CHECK(s->ops->enqueue_batch(s, &v, 1, 5000, &id2, &dup, err, sizeof(err)) == 0 && dup &&
	    id2 == id1);
	/* Past it: a new task. */
	UNIT_CHECK(s->ops->enqueue_batch(s, &v, 1, 10401, &id3, &dup, err, sizeof(err)) == 0 && !dup &&
	    id3 != id1);
	errno = 0;
out:
	durable_task_clear(&t);
	if (s != NULL)
		s->ops->close(s);
}

static void
case_cap_is_all_or_nothing(void)
{
	struct durable_store *s = open_store("c.db", 65536);
	static char big[4000];
	struct durable_new v[64];
	int64_t ids[64];
	char err[256];
	int rc = 0, batches = 0;

	UNIT_CHECK(s != NULL);
	for (int i = 0; i < 64; i++)
		v[i] = (struct durable_new){ .kind = "k", .payload = big, .len = sizeof(big),
			.max_attempts = 1 };
	while (batches < 100 && (rc = s->ops->enqueue_batch(s, v, 4, 1, ids, NULL, err,
	    sizeof(err))) == 0)
		batches++;
	UNIT_CHECKF(rc < 0 && errno == ENOSPC, "after %d batches: rc %d (%s)", batches, rc, err);
	UNIT_CHECK(batches > 0 && batches < 16);
	{
		struct durable_count c;
		size_t n;

		UNIT_CHECK(s->ops->counts(s, &c, 1, &n, err, sizeof(err)) == 0 && n == 1);
		UNIT_CHECKF(c.pending == (uint64_t)batches * 4, "pending %llu after %d batches",
		    (unsigned long long)c.pending, batches);
	}
	/* A bad task refuses the whole batch before anything is written. */
	v[1].kind = "bad kind";
	UNIT_CHECK(s->ops->enqueue_batch(s, v, 2, 1, ids, NULL, err, sizeof(err)) < 0 &&
	    errno == EINVAL);
	errno = 0;
out:
	if (s != NULL)
		s->ops->close(s);
}

int
main(int argc, char **argv)
{
	const char *t = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/ev-durable-XXXXXX", t != NULL && *t ? t : "/tmp");
	if (mkdtemp(dir) == NULL) {
		printf("not ok - tmpdir: %s\n", strerror(errno));
		return 1;
	}
	unit_run("backoff_grows_with_jitter_and_caps", case_backoff_grows_with_jitter_and_caps);
	unit_run("kind_names", case_kind_names);
	unit_run("claim_lease_fence_finish", case_claim_lease_fence_finish);
	unit_run("idempotency_window", case_idempotency_window);
	unit_run("cap_is_all_or_nothing", case_cap_is_all_or_nothing);
	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return unit_exit();
}
