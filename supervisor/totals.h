/*
 * totals.h - a function's counters that outlive its workers and its config
 * generations (pool.c keeps one per function name; lifecycle.c adds a reaped
 * worker's figures to it).
 */
#ifndef SV_TOTALS_H
#define SV_TOTALS_H

#include <stdint.h>

#include "../common/list.h"
#include "../common/wire.h"

struct fn_totals {
	TAILQ_ENTRY(fn_totals) t_entry;
	char name[64];
	uint32_t next_wid;          /* worker ids are unique per function, all generations */
	uint64_t requests;
	uint64_t tasks_started;
	uint64_t tasks_completed;
	uint64_t tasks_failed;
	uint64_t tasks_lost;
	uint64_t crashes;
	uint64_t unloads[WIRE_REASON_MAX];
};

#endif
