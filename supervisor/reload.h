/*
 * reload.h - what a reload (or the start, a reload from nothing) changes, and the
 * states it goes through. Pure bookkeeping: reload.c starts no process and touches
 * no socket; the orchestrator (orch.c) runs the actions it returns, and
 * tests/unit/test_reload.c drives it with events alone.
 *
 *   idle --begin--> checking --all checks ok--> starting --new pools ready--> switching --switched--> idle
 *                      |  a check failed / abort        | abort                   (listeners move, old
 *                      +--------------> idle (fail)      +--> idle (abandon)        pools drain)
 *
 * The plan: a function whose effective config and library file are unchanged is
 * KEPT (its workers go on, same pids); a changed one is ROLLED (new workers ready
 * first, then the old ones drain); a new one is ADDED; a missing one REMOVED.
 * Only rolled and added functions have their library checked and pools started.
 */
#ifndef SV_RELOAD_H
#define SV_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum rl_change { RL_KEPT = 0, RL_ROLLED, RL_ADDED, RL_REMOVED, RL_NCHANGE };

enum rl_state { RL_IDLE = 0, RL_CHECKING, RL_STARTING, RL_SWITCHING, RL_NSTATE };

enum rl_event {
	RLE_BEGIN = 0,      /* the plan is made: start */
	RLE_CHECK_OK,       /* one library check passed */
	RLE_CHECK_FAILED,   /* one failed (or timed out): the reload is refused */
	RLE_READY,          /* every new pool is ready (or failed at start) */
	RLE_SWITCHED,       /* listeners moved, old pools retired */
	RLE_ABORT,          /* the supervisor is stopping */
	RLE_NEVENT
};

enum rl_action {
	RLA_NONE = 0,       /* wait for more events */
	RLA_CHECK,          /* start the library checks (maybe none) */
	RLA_START,          /* start the new pools */
	RLA_SWITCH,         /* move listeners, adopt kept pools, retire old ones */
	RLA_FINISH,         /* log reload_done, forget the plan */
	RLA_FAIL,           /* cancel checks, close new listeners, drop the new config */
	RLA_ABANDON,        /* stopping with new pools started: they drain like the rest */
	RLA_INVALID,        /* the event makes no sense in this state (a bug; logged) */
};

struct rl_item {
	const char *name;             /* in new_fc's config, or old_fc's when removed */
	enum rl_change change;
	const struct fn_conf *old_fc; /* NULL when added */
	const struct fn_conf *new_fc; /* NULL when removed */
};

struct reload {
	enum rl_state state;
	struct sv_conf *conf;         /* the new config (the reload owns it until switched) */
	uint32_t gen;
	struct rl_item *items;
	size_t nitems;
	unsigned count[RL_NCHANGE];
	unsigned checks_pending;      /* rolled + added not yet checked */
	char err[512];
};

const char *rl_change_name(enum rl_change c);
const char *rl_state_name(enum rl_state s);
/* Compares OLD (NULL at start) with NEW into R (state idle, gen GEN). 0 or -1 (ENOMEM). */
int reload_plan(struct reload *r, const struct sv_conf *old, struct sv_conf *new_conf,
    uint32_t gen);
/* A kept function must roll after all (its pool is failed, or gone). */
void reload_force_roll(struct reload *r, size_t i);
/* Runs EV; returns what the orchestrator must do now. */
enum rl_action reload_step(struct reload *r, enum rl_event ev);
/* Frees the plan (not the config). */
void reload_clear(struct reload *r);
/* "a,b,c" of the functions with change C into BUF (cut with "..." when full). */
void reload_names(const struct reload *r, enum rl_change c, char *buf, size_t len);

#endif
