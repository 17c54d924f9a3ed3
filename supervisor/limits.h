/*
 * limits.h - the periodic look at every live worker (limits.c): CPU time, memory and
 * age against its function's limits, hung workers, idle workers. It acts through the
 * state machine (lifecycle.h), which asks for replacements itself.
 */
#ifndef SV_LIMITS_H
#define SV_LIMITS_H

struct event_base;

void limits_start(struct event_base *base);
void limits_stop(void);

#endif
