/*
 * durable_pg_drive.c - drives worker/durable_pg.c (through the durable_store.h ops)
 * against a real PostgreSQL, for test_durable_pg.py and the bench's durable phase.
 * One process = one host's handle with its own lease owner. Commands:
 *
 *   enqueue N BATCH [KEYPREFIX]   N tasks in batches of BATCH (one transaction each);
 *                                 prints "enqueued=N seconds=S rate=R"
 *   drain LOG LEASE_MS IDLE_MS WORK_MS
 *                                 claims (32 at a time) and runs tasks until none is
 *                                 due for IDLE_MS: each attempt appends "start ID
 *                                 OWNER NS" and "end ID OWNER NS" (CLOCK_MONOTONIC)
 *                                 to LOG around a WORK_MS sleep, then finishes it;
 *                                 renews its leases every LEASE_MS/3
 *   outage SECONDS                one enqueue every 20 ms for SECONDS: prints
 *                                 "ok MS" or "err MS ERRNO REASON" per call
 *   counts                        "pending= retrying= running= dead= enqueued=
 *                                 succeeded= retried= failed="
 *   dup KEY                       enqueues KEY twice in a batch, then once more;
 *                                 prints the three ids and dup flags
 *
 * The DSN is read from the file named by $DPG_DSN_FILE, the function from
 * $DPG_FUNCTION (default "t"), the per-call bound from $DPG_TIMEOUT_MS (2000).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "durable_store.h"
#include "log.h"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *
read_dsn(void)
{
	const char *path = getenv("DPG_DSN_FILE");
	static char buf[2048];
	FILE *f;
	size_t n;

	if (!path || !(f = fopen(path, "r"))) {
		fprintf(stderr, "DPG_DSN_FILE: %s\n", path ? strerror(errno) : "unset");
		exit(2);
	}
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char err[512];

static struct durable_store *
open_store(void)
{
	const char *fn = getenv("DPG_FUNCTION"), *t = getenv("DPG_TIMEOUT_MS");
	struct durable_conf c = {.backend = DURABLE_BACKEND_POSTGRESQL, .dsn = read_dsn(),
				 .function = fn ? fn : "t", .idem_window_ms = 86400000,
				 .timeout_ms = t ? (uint32_t)atoi(t) : 2000};
	struct durable_store *s = durable_store_open(&c, 0, err, sizeof err);

	if (!s) {
		fprintf(stderr, "open: %s\n", err);
		exit(2);
	}
	return s;
}

static int
cmd_enqueue(long n, long batch, const char *keyprefix)
{
	struct durable_store *s = open_store();
	struct durable_new *it = calloc((size_t)batch, sizeof *it);
	int64_t *ids = calloc((size_t)batch, sizeof *ids);
	char (*pay)[32] = calloc((size_t)batch, sizeof *pay), (*key)[64] = calloc((size_t)batch, 64);
	uint64_t t0 = now_ns();
	long done = 0;

	if (!it || !ids || !pay || !key)
		return 2;
	while (done < n) {
		long k = n - done < batch ? n - done : batch;
		int64_t now = wall_ms();

		for (long j = 0; j < k; j++) {
			snprintf(pay[j], sizeof pay[j], "task-%ld", done + j);
			if (keyprefix)
				snprintf(key[j], 64, "%s%ld", keyprefix, done + j);
			it[j] = (struct durable_new){.kind = "work", .payload = pay[j],
						     .len = strlen(pay[j]), .max_attempts = 5,
						     .timeout_ms = 10000, .run_at_ms = now,
						     .idem_key = keyprefix ? key[j] : NULL};
		}
		if (s->ops->enqueue_batch(s, it, (size_t)k, now, ids, NULL, err, sizeof err) < 0) {
			fprintf(stderr, "enqueue: %s\n", err);
			return 1;
		}
		done += k;
	}
	{
		double sec = (double)(now_ns() - t0) / 1e9;
		printf("enqueued=%ld seconds=%.3f rate=%.0f\n", done, sec, (double)done / sec);
	}
	s->ops->close(s);
	free(it);
	free(ids);
	free(pay);
	free(key);
	return 0;
}

static int
cmd_drain(const char *logpath, unsigned lease_ms, unsigned idle_ms, unsigned work_ms)
{
	struct durable_store *s = open_store();
	int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
	uint64_t last_work = clock_ms(), last_renew = clock_ms();
	struct durable_task t[32];
	char owner[64];
	long ran = 0, lost = 0;

	if (fd < 0)
		return 2;
	snprintf(owner, sizeof owner, "drive:%ld", (long)getpid());
	for (;;) {
		size_t got = 0;

		if (s->ops->claim(s, owner, wall_ms(), lease_ms, NULL, 0, 32, t, &got, err,
				  sizeof err) < 0) {
			fprintf(stderr, "claim: %s\n", err);
			usleep(50000);
			got = 0;
		}
		if (got == 0) {
			if (clock_ms() - last_work > idle_ms)
				break;
			usleep(20000);
			continue;
		}
		last_work = clock_ms();
		for (size_t i = 0; i < got; i++) {
			char line[128];
			int n = snprintf(line, sizeof line, "start %" PRId64 " %s %" PRIu64 "\n",
					 t[i].id, owner, now_ns());
			int r;

			if (write(fd, line, (size_t)n) != n)
				return 2;
			if (work_ms)
				usleep(work_ms * 1000);
			n = snprintf(line, sizeof line, "end %" PRId64 " %s %" PRIu64 "\n", t[i].id,
				     owner, now_ns());
			if (write(fd, line, (size_t)n) != n)
				return 2;
			while ((r = s->ops->finish(s, t[i].id, owner, t[i].attempt, DURABLE_OK,
						   wall_ms(), 0, NULL, err, sizeof err)) < 0) {
				fprintf(stderr, "finish: %s\n", err);
				usleep(50000);
			}
			lost += r == 1;
			ran++;
			durable_task_clear(&t[i]);
			if (clock_ms() - last_renew > lease_ms / 3) {
				if (s->ops->renew(s, owner, wall_ms(), lease_ms, err, sizeof err) < 0)
					fprintf(stderr, "renew: %s\n", err);
				last_renew = clock_ms();
			}
		}
	}
	printf("ran=%ld lease_lost=%ld\n", ran, lost);
	close(fd);
	s->ops->close(s);
	return 0;
}

static int
cmd_outage(unsigned seconds)
{
	struct durable_store *s = open_store();
	uint64_t end = clock_ms() + seconds * 1000u;
	long i = 0;

	while (clock_ms() < end) {
		char pay[32];
		struct durable_new it = {.kind = "work", .payload = pay, .max_attempts = 3,
					 .run_at_ms = wall_ms()};
		int64_t id;
		uint64_t t0 = clock_ms();

		it.len = (size_t)snprintf(pay, sizeof pay, "outage-%ld", i++);
		if (s->ops->enqueue_batch(s, &it, 1, wall_ms(), &id, NULL, err, sizeof err) == 0)
			printf("ok %" PRIu64 "\n", clock_ms() - t0);
		else
			printf("err %" PRIu64 " %d %s\n", clock_ms() - t0, errno, err);
		fflush(stdout);
		usleep(20000);
	}
	s->ops->close(s);
	return 0;
}

int
main(int argc, char **argv)
{
	log_set_proc("durable_pg_drive");
	if (argc >= 4 && strcmp(argv[1], "enqueue") == 0)
		return cmd_enqueue(atol(argv[2]), atol(argv[3]), argc > 4 ? argv[4] : NULL);
	if (argc == 6 && strcmp(argv[1], "drain") == 0)
		return cmd_drain(argv[2], (unsigned)atoi(argv[3]), (unsigned)atoi(argv[4]),
				 (unsigned)atoi(argv[5]));
	if (argc == 3 && strcmp(argv[1], "outage") == 0)
		return cmd_outage((unsigned)atoi(argv[2]));
	if (argc == 2 && strcmp(argv[1], "counts") == 0) {
		struct durable_store *s = open_store();
		struct durable_count c[8], sum = {0};
		size_t n;

		if (s->ops->counts(s, c, 8, &n, err, sizeof err) < 0) {
			fprintf(stderr, "counts: %s\n", err);
			return 1;
		}
		for (size_t i = 0; i < n; i++) {
			sum.pending += c[i].pending;
			sum.retrying += c[i].retrying;
			sum.running += c[i].running;
			sum.dead += c[i].dead;
			sum.enqueued += c[i].enqueued;
			sum.succeeded += c[i].succeeded;
			sum.retried += c[i].retried;
			sum.failed += c[i].failed;
		}
		printf("pending=%" PRIu64 " retrying=%" PRIu64 " running=%" PRIu64 " dead=%" PRIu64
		       " enqueued=%" PRIu64 " succeeded=%" PRIu64 " retried=%" PRIu64
		       " failed=%" PRIu64 "\n", sum.pending, sum.retrying, sum.running, sum.dead,
		       sum.enqueued, sum.succeeded, sum.retried, sum.failed);
		s->ops->close(s);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "dup") == 0) {
		struct durable_store *s = open_store();
		int64_t now = wall_ms();
		struct durable_new it[2] = {
			{.kind = "work", .payload = "a", .len = 1, .idem_key = argv[2],
			 .max_attempts = 1, .run_at_ms = now},
			{.kind = "work", .payload = "b", .len = 1, .idem_key = argv[2],
			 .max_attempts = 1, .run_at_ms = now}};
		int64_t ids[2], again;
		uint8_t dup[2], dup2;

		if (s->ops->enqueue_batch(s, it, 2, now, ids, dup, err, sizeof err) < 0 ||
		    s->ops->enqueue_batch(s, it, 1, now, &again, &dup2, err, sizeof err) < 0) {
			fprintf(stderr, "dup: %s\n", err);
			return 1;
		}
		printf("%" PRId64 " %" PRId64 " %" PRId64 " dup=%d%d%d\n", ids[0], ids[1], again,
		       dup[0], dup[1], dup2);
		s->ops->close(s);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of durable_pg_drive.c\n");
	return 2;
}
