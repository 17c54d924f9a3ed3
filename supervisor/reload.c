/*
 * reload.c - the reload plan and state machine (see reload.h).
 */
#include "reload.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/names.h"

static const char *const change_names[RL_NCHANGE] = {
	[RL_KEPT] = "kept", [RL_ROLLED] = "rolled", [RL_ADDED] = "added",
	[RL_REMOVED] = "removed",
};
static const char *const state_names[RL_NSTATE] = {
	[RL_IDLE] = "idle", [RL_CHECKING] = "checking", [RL_STARTING] = "starting",
	[RL_SWITCHING] = "switching",
};

const char *
rl_change_name(enum rl_change c)
{
	return NAME_OF(change_names, c);
}

const char *
rl_state_name(enum rl_state s)
{
	return NAME_OF(state_names, s);
}

int
reload_plan(struct reload *r, const struct sv_conf *old, struct sv_conf *new_conf, uint32_t gen)
{
	const struct fn_conf *fc, *ofc;
	size_t n = new_conf->nfunctions + (old ? old->nfunctions : 0);

	memset(r, 0, sizeof(*r));
	r->conf = new_conf;
	r->gen = gen;
	r->items = calloc(n ? n : 1, sizeof(*r->items));
	if (r->items == NULL)
		return -1;
	TAILQ_FOREACH(fc, &new_conf->functions, entry) {
		struct rl_item *it = &r->items[r->nitems++];

		ofc = old ? config_find((struct sv_conf *)old, fc->name) : NULL;
		it->name = fc->name;
		it->new_fc = fc;
		it->old_fc = ofc;
		it->change = ofc == NULL ? RL_ADDED : config_fn_same(ofc, fc) ? RL_KEPT : RL_ROLLED;
		r->count[it->change]++;
	}
	if (old != NULL) {
		TAILQ_FOREACH(ofc, &old->functions, entry) {
			struct rl_item *it;

			if (config_find(new_conf, ofc->name) != NULL)
				continue;
			it = &r->items[r->nitems++];
			it->name = ofc->name;
			it->old_fc = ofc;
			it->change = RL_REMOVED;
			r->count[RL_REMOVED]++;
		}
	}
	r->checks_pending = r->count[RL_ROLLED] + r->count[RL_ADDED];
	return 0;
}

void
reload_force_roll(struct reload *r, size_t i)
{
	if (i >= r->nitems || r->items[i].change != RL_KEPT || r->state != RL_IDLE)
		return;
	r->items[i].change = RL_ROLLED;
	r->count[RL_KEPT]--;
	r->count[RL_ROLLED]++;
	r->checks_pending++;
}

enum rl_action
reload_step(struct reload *r, enum rl_event ev)
{
	switch (r->state) {
	case RL_IDLE:
		if (ev != RLE_BEGIN)
			break;
		/* Nothing to check: straight to starting (maybe nothing to start either). */
		r->state = r->checks_pending ? RL_CHECKING : RL_STARTING;
		return r->checks_pending ? RLA_CHECK : RLA_START;
	case RL_CHECKING:
		if (ev == RLE_CHECK_OK && r->checks_pending > 0) {
			if (--r->checks_pending > 0)
				return RLA_NONE;
			r->state = RL_STARTING;
			return RLA_START;
		}
		if (ev == RLE_CHECK_FAILED || ev == RLE_ABORT) {
			r->state = RL_IDLE;
			return RLA_FAIL;
		}
		break;
	case RL_STARTING:
		if (ev == RLE_READY) {
			r->state = RL_SWITCHING;
			return RLA_SWITCH;
		}
		if (ev == RLE_ABORT) {
			r->state = RL_IDLE;
			return RLA_ABANDON;
		}
		break;
	case RL_SWITCHING:
		if (ev == RLE_SWITCHED) {
			r->state = RL_IDLE;
			return RLA_FINISH;
		}
		break;
	default:
		break;
	}
	return RLA_INVALID;
}

void
reload_clear(struct reload *r)
{
	free(r->items);
	r->items = NULL;
	r->nitems = 0;
	r->conf = NULL;
	r->state = RL_IDLE;
}

void
reload_names(const struct reload *r, enum rl_change c, char *buf, size_t len)
{
	size_t off = 0;

	if (len == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < r->nitems; i++) {
		const char *sep = off ? "," : "";
		size_t need;

		if (r->items[i].change != c)
			continue;
		need = strlen(sep) + strlen(r->items[i].name);
		if (off + need + 4 >= len) {
			snprintf(buf + off, len - off, "%s...", sep);
			return;
		}
		off += (size_t)snprintf(buf + off, len - off, "%s%s", sep, r->items[i].name);
	}
}
