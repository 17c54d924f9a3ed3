/*
 * durable.h - the worker's durable-task engine (durable.c) as main.c drives it.
 */
#ifndef WK_DURABLE_H
#define WK_DURABLE_H

#include <stdbool.h>

#include "../common/wire.h"
#include "worker.h"

/* Opens the function's store and starts the store thread (claiming waits for
 * durable_start). Backend OFF: nothing, and the API answers ENOTSUP. 0 or -1. */
int durable_init(struct edge_ctx *ctx, const struct wire_durable *conf);
/* After init: the handlers are fixed, claiming may begin. */
void durable_start(void);
/* Retiring: claim nothing more; claimed attempts not started are given back. */
void durable_retire(void);
/* Async enqueues not answered yet: the worker is not drained while there are. */
bool durable_busy(void);
/* Flushes every queued result and stops the store thread (bounded wait). CUT: the
 * attempts still running are released for another worker (SIGTERM). */
void durable_stop(bool cut);

#endif
