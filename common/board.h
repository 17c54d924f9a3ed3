/*
 * board.h - the per-worker scoreboard: a small shared-memory block (a memfd the
 * supervisor creates and the worker maps on WIRE_BOARD_FD) that the worker writes and
 * the supervisor reads. It carries what would otherwise cost a message per request:
 * load for dispatch (connections closed), counters, and the table of pending
 * background tasks, so that when a worker dies - even by SIGKILL - the supervisor can
 * still name every task that was lost.
 *
 * Single writer: only the worker's loop thread writes (the seccomp counts aside,
 * see below). Counters are updated with
 * relaxed atomics; a task slot's name is written before its id is published.
 */
#ifndef EV_BOARD_H
#define EV_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

/* 3: request and task duration histograms (hist.h buckets) before the task table. */
#define BOARD_VERSION 3
#define BOARD_TASK_NAME 40
#define BOARD_SECCOMP_SLOTS 128   /* = WIRE_SECCOMP_MAX */

struct board_task {
	uint64_t id;          /* 0 = free slot */
	uint64_t started_ms;  /* CLOCK_MONOTONIC ms */
	uint32_t deadline_ms; /* task's own timeout, 0 = none */
	uint32_t pad;
	char name[BOARD_TASK_NAME];
};

struct board {
	uint32_t version;
	uint32_t task_slots;
	uint64_t conns_closed;     /* handed-off connections the worker finished */
	uint64_t requests;         /* requests answered */
	uint64_t tasks_started;
	uint64_t tasks_completed;
	uint64_t tasks_failed;     /* failed or timed out (cut ones stay pending: lost) */
	uint64_t tasks_pending;
	uint32_t unload_reason;    /* last beforeunload reason fired (enum wire_reason) */
	uint32_t pad;
	/* Syscalls the seccomp filter refused, counted by the worker's SIGSYS handler
	 * (any thread, atomically): tenant-reported like everything here, since tenant
	 * code can write this page. Per rule, indexed like wire_config.seccomp_rules. */
	uint64_t seccomp_denied;
	uint32_t seccomp_counts[BOARD_SECCOMP_SLOTS];
	/* Durations the worker measured (CLOCK_MONOTONIC, µs), loop thread only:
	 * request = complete request parsed -> answer queued (a stream: -> its end;
	 * an upgrade: -> the 101), one per `requests`; task = started -> ended, one per
	 * completed or failed task (a lost one never ends). */
	struct hist req_hist;
	struct hist task_hist;
	struct board_task tasks[];
};

/* The layout both sides assume: a change here must come with a BOARD_VERSION bump
 * (board_map refuses another version, so an old worker cannot meet a new supervisor). */
_Static_assert(sizeof(struct board) == 64 + 8 + 4 * BOARD_SECCOMP_SLOTS +
    2 * 8 * (HIST_BOUNDS + 2), "scoreboard layout changed: bump BOARD_VERSION");

static inline size_t
board_size(uint32_t task_slots)
{
	return sizeof(struct board) + (size_t)task_slots * sizeof(struct board_task);
}

#define BOARD_LOAD(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define BOARD_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define BOARD_ADD(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
/*
 * BOARD_ADD for a counter with one writer (the worker's loop thread): a plain load
 * and store, no locked read-modify-write. The supervisor reads the page from another
 * core, so a lock-prefixed add stalled the loop on that cache line on every request
 * and task (perf: task_start/task_finish's hottest instructions). Returns the sum.
 */
#define BOARD_BUMP(p, v)  __extension__ ({                                    \
	__typeof__(*(p)) board_bump_ = __atomic_load_n((p), __ATOMIC_RELAXED) + (v); \
	__atomic_store_n((p), board_bump_, __ATOMIC_RELAXED);                \
	board_bump_; })

/*
 * Creates a sealed-size memfd for TASK_SLOTS tasks and maps it; returns the fd (the
 * caller's) and sets *OUT, or -1 with errno.
 */
int board_create(uint32_t task_slots, struct board **out);
/* Maps an existing board fd read-write (worker side); checks version and size. */
int board_map(int fd, struct board **out);
/*
 * Unmaps B, created or mapped for TASK_SLOTS slots. The size comes from the caller:
 * the supervisor never trusts the header a tenant's worker can write.
 */
void board_unmap(struct board *b, uint32_t task_slots);
/*
 * Copies task T's name into DST (BOARD_TASK_NAME + 1 bytes) through text_sanitize
 * (TEXT_TOKEN): the name was written by tenant code and goes into log lines and JSON.
 */
void board_copy_name(char *dst, const struct board_task *t);

#endif
