/*
 * durable_pg_drive.c - drives worker/durable_pg.c against a real PostgreSQL, for
 * test_durable_pg.py and the bench's durable phase. One process = one host's store
 * (its own lease owner). Commands:
 *
 *   enqueue N BATCH [KEYPREFIX]   N tasks in batches of BATCH (one transaction each);
 *                                 prints "enqueued=N seconds=S rate=R"
 *   drain LOG LEASE_MS IDLE_MS WORK_MS
 *                                 claims and runs tasks until none is left for
 *                                 IDLE_MS: each attempt appends "start ID PID NS" and
 *                                 "end ID PID NS" (CLOCK_MONOTONIC) to LOG, sleeps
 *                                 WORK_MS, finishes it; renews leases every LEASE_MS/3
 *   outage SECONDS                one enqueue every 20 ms for SECONDS: prints
 *                                 "ok MS" or "err MS REASON" per call (MS: its time)
 *   counts                        "pending= running= succeeded= dead="
 *   dup KEY                       enqueues KEY twice; prints both ids
 *
 * The DSN is read from the file named by $DPG_DSN_FILE; the function name from
 * $DPG_FUNCTION (default "t"); op timeout $DPG_OP_TIMEOUT_MS (default 2000).
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
#include "durable_pg.h"
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

static struct dpg *
open_store(unsigned lease_ms)
{
	const char *fn = getenv("DPG_FUNCTION"), *t = getenv("DPG_OP_TIMEOUT_MS");
	struct dpg_opts o = {.op_timeout_ms = t ? (unsigned)atoi(t) : 2000, .lease_ms = lease_ms};
	struct dpg *s = dpg_open(read_dsn(), fn ? fn : "t", &o);

	if (!s) {
		fprintf(stderr, "dpg_open failed\n");
		exit(2);
	}
	return s;
}

static int
cmd_enqueue(long n, long batch, const char *keyprefix)
{
	struct dpg *s = open_store(0);
	struct dpg_item *it = calloc((size_t)batch, sizeof *it);
	int64_t *ids = calloc((size_t)batch, sizeof *ids);
	char (*pay)[32] = calloc((size_t)batch, sizeof *pay), (*key)[64] = calloc((size_t)batch, 64);
	uint64_t t0;
	long done = 0;

	if (!it || !ids || !pay || !key)
		return 2;
	/* connect and migrate outside the timed part */
	{
		struct dpg_counts c;
		if (dpg_counts(s, &c) < 0) {
			fprintf(stderr, "connect: %s\n", dpg_error());
			return 1;
		}
	}
	t0 = now_ns();
	while (done < n) {
		long k = n - done < batch ? n - done : batch;

		for (long j = 0; j < k; j++) {
			snprintf(pay[j], sizeof pay[j], "task-%ld", done + j);
			if (keyprefix)
				snprintf(key[j], 64, "%s%ld", keyprefix, done + j);
			it[j] = (struct dpg_item){.kind = "work", .payload = pay[j],
						  .len = strlen(pay[j]), .max_attempts = 5,
						  .timeout_ms = 10000,
						  .idem_key = keyprefix ? key[j] : NULL};
		}
		if (dpg_enqueue(s, it, (size_t)k, ids) < 0) {
			fprintf(stderr, "enqueue: %s\n", dpg_error());
			return 1;
		}
		done += k;
	}
	{
		double sec = (double)(now_ns() - t0) / 1e9;
		printf("enqueued=%ld seconds=%.3f rate=%.0f\n", done, sec, (double)done / sec);
	}
	dpg_close(s);
	free(it);
	free(ids);
	free(pay);
	free(key);
	return 0;
}

static int
cmd_drain(const char *logpath, unsigned lease_ms, unsigned idle_ms, unsigned work_ms)
{
	struct dpg *s = open_store(lease_ms);
	int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0644);
	uint64_t last_work = clock_ms(), last_renew = clock_ms();
	struct dpg_task t[16];
	long ran = 0, lost = 0;

	if (fd < 0)
		return 2;
	for (;;) {
		size_t got = 0;

		if (dpg_claim(s, 16, t, &got) < 0) {
			fprintf(stderr, "claim: %s\n", dpg_error());
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
			char line[96];
			int n = snprintf(line, sizeof line, "start %" PRId64 " %ld %" PRIu64 "\n",
					 t[i].id, (long)getpid(), now_ns());
			int r;

			if (write(fd, line, (size_t)n) != n)
				return 2;
			if (work_ms)
				usleep(work_ms * 1000);
			n = snprintf(line, sizeof line, "end %" PRId64 " %ld %" PRIu64 "\n", t[i].id,
				     (long)getpid(), now_ns());
			if (write(fd, line, (size_t)n) != n)
				return 2;
			while ((r = dpg_finish(s, t[i].id, DPG_SUCCEEDED, 0, NULL)) < 0) {
				fprintf(stderr, "finish: %s\n", dpg_error());
				usleep(50000);
			}
			lost += r == 0;
			ran++;
			dpg_task_free(&t[i]);
			if (clock_ms() - last_renew > lease_ms / 3) {
				dpg_renew(s);
				last_renew = clock_ms();
			}
		}
	}
	printf("ran=%ld lease_lost=%ld\n", ran, lost);
	close(fd);
	dpg_close(s);
	return 0;
}

static int
cmd_outage(unsigned seconds)
{
	struct dpg *s = open_store(0);
	uint64_t end = clock_ms() + seconds * 1000u;
	long i = 0;

	while (clock_ms() < end) {
		char pay[32];
		struct dpg_item it = {.kind = "work", .payload = pay, .max_attempts = 3};
		int64_t id;
		uint64_t t0 = clock_ms();
		int r;

		it.len = (size_t)snprintf(pay, sizeof pay, "outage-%ld", i++);
		r = dpg_enqueue(s, &it, 1, &id);
		if (r == 0)
			printf("ok %" PRIu64 "\n", clock_ms() - t0);
		else
			printf("err %" PRIu64 " %s\n", clock_ms() - t0, dpg_error());
		fflush(stdout);
		usleep(20000);
	}
	dpg_close(s);
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
		struct dpg *s = open_store(0);
		struct dpg_counts c;

		if (dpg_counts(s, &c) < 0) {
			fprintf(stderr, "counts: %s\n", dpg_error());
			return 1;
		}
		printf("pending=%" PRIu64 " running=%" PRIu64 " succeeded=%" PRIu64
		       " dead=%" PRIu64 "\n", c.pending, c.running, c.succeeded, c.dead);
		dpg_close(s);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "dup") == 0) {
		struct dpg *s = open_store(0);
		struct dpg_item it[2] = {{.kind = "work", .payload = "a", .len = 1, .idem_key = argv[2]},
					 {.kind = "work", .payload = "b", .len = 1, .idem_key = argv[2]}};
		int64_t ids[2], again;

		if (dpg_enqueue(s, it, 2, ids) < 0 || dpg_enqueue(s, it, 1, &again) < 0) {
			fprintf(stderr, "dup: %s\n", dpg_error());
			return 1;
		}
		printf("%" PRId64 " %" PRId64 " %" PRId64 "\n", ids[0], ids[1], again);
		dpg_close(s);
		return 0;
	}
	fprintf(stderr, "usage: see the comment at the top of durable_pg_drive.c\n");
	return 2;
}
