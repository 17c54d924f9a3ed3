/*
 * durable_watch.h - the supervisor's view of its functions' durable tasks, read
 * off the loop by a thread of its own (durable_watch.c).
 */
#ifndef SV_DURABLE_WATCH_H
#define SV_DURABLE_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "../worker/durable_store.h"
#include "config.h"

struct event_base;

#define DW_KINDS_MAX 64   /* kinds reported per function (a worker registers at most 64) */

/* Starts the reader thread and its wake-up event on BASE. 0 or -1. */
int durable_watch_init(struct event_base *base);
/* The functions with a local journal are CONF's now (start and every reload). */
void durable_watch_config(const struct sv_conf *conf);
/* Copies FN's last counts (at most MAX kinds, sorted by kind) and the next due time
 * (0 = nothing pending); returns how many kinds. Cheap: for /status and /metrics. */
size_t durable_watch_counts(const char *fn, struct durable_count *out, size_t max,
    int64_t *next_due);
void durable_watch_shutdown(void);

#endif
