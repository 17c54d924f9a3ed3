/*
 * spawn.h - starting one worker process: its channels, its scoreboard, its cgroup,
 * and what the child settles before exec (spawn.c). The worker's status pipe is read
 * here and each record goes to the state machine (lifecycle.h).
 */
#ifndef SV_SPAWN_H
#define SV_SPAWN_H

#include <stddef.h>

#include "config.h"
#include "lifecycle.h"

struct event_base;

/* The loop status events go on, and the worker binary to exec. */
void spawn_init(struct event_base *base, const char *worker_path);
/* Forks and execs the worker for W (W's fds and board prepared here). 0 or -1. */
int spawn_worker(struct worker *w);

#endif
