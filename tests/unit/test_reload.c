/*
 * test_reload.c - the reload plan (which functions are kept, rolled, added,
 * removed) from real config files, and the reload state machine driven by events.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../../supervisor/config.h"
#include "../../supervisor/reload.h"
#include "unit.h"

static char dir[] = "/tmp/ev-test-reload-XXXXXX";
static char lib_a[256], lib_b[256];

/* Writes a config with the given functions JSON and loads it. */
static struct sv_conf *
load(const char *name, const char *functions)
{
	char path[512], err[512];
	FILE *f;
	struct sv_conf *c;

	snprintf(path, sizeof(path), "%s/%s.json", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		return NULL;
	fprintf(f, "{\"admin\": null, \"functions\": [%s]}\n", functions);
	fclose(f);
	c = config_load(path, err, sizeof(err));
	if (c == NULL)
		fprintf(stderr, "# %s\n", err);
	return c;
}

static int
change_of(const struct reload *r, const char *name)
{
	for (size_t i = 0; i < r->nitems; i++)
		if (strcmp(r->items[i].name, name) == 0)
			return (int)r->items[i].change;
	return -1;
}

#define FN(n, lib, port, extra) \
	"{\"name\": \"" n "\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:" port "\"]" extra "}"

static void
case_plan(void)
{
	char a[2048], b[2048];
	struct sv_conf *old = NULL, *new_conf = NULL;
	struct reload r = { 0 };

	snprintf(a, sizeof(a), FN("same", "", "9001", "") "," FN("limit", "", "9002", "") ","
	    FN("gone", "", "9003", "") "," FN("moved", "", "9004", ""), lib_a, lib_a, lib_a, lib_a);
	snprintf(b, sizeof(b), FN("same", "", "9001", "") "," FN("limit", "", "9002",
	    ", \"limits\": {\"request_timeout_ms\": 1234}") "," FN("moved", "", "9104", "") ","
	    FN("fresh", "", "9005", ""), lib_a, lib_a, lib_a, lib_a);
	UNIT_CHECK((old = load("a", a)) != NULL);
	UNIT_CHECK((new_conf = load("b", b)) != NULL);
	UNIT_CHECK(reload_plan(&r, old, new_conf, 2) == 0);
	UNIT_CHECK(change_of(&r, "same") == RL_KEPT);
	UNIT_CHECK(change_of(&r, "limit") == RL_ROLLED);
	UNIT_CHECK(change_of(&r, "gone") == RL_REMOVED);
	/* Another port is not another worker configuration. */
	UNIT_CHECK(change_of(&r, "moved") == RL_KEPT);
	UNIT_CHECK(change_of(&r, "fresh") == RL_ADDED);
	UNIT_CHECK(r.count[RL_KEPT] == 2 && r.count[RL_ROLLED] == 1 && r.count[RL_ADDED] == 1 &&
	    r.count[RL_REMOVED] == 1);
	UNIT_CHECK(r.checks_pending == 2);
out:
	reload_clear(&r);
	config_free(old);
	config_free(new_conf);
}

/* Same path, other file contents (a rebuilt .so): rolled, not kept. */
static void
case_plan_library_identity(void)
{
	char a[1024];
	struct sv_conf *old = NULL, *new_conf = NULL;
	struct reload r = { 0 };
	FILE *f;

	snprintf(a, sizeof(a), FN("f", "", "9001", ""), lib_b);
	UNIT_CHECK((old = load("c", a)) != NULL);
	UNIT_CHECK((f = fopen(lib_b, "a")) != NULL);
	fputs("rebuilt\n", f);
	fclose(f);
	UNIT_CHECK((new_conf = load("d", a)) != NULL);
	UNIT_CHECK(reload_plan(&r, old, new_conf, 2) == 0);
	UNIT_CHECK(change_of(&r, "f") == RL_ROLLED);
	reload_clear(&r);
	/* And an untouched file is kept. */
	UNIT_CHECK(reload_plan(&r, new_conf, new_conf, 3) == 0);
	UNIT_CHECK(change_of(&r, "f") == RL_KEPT && r.checks_pending == 0);
out:
	reload_clear(&r);
	config_free(old);
	config_free(new_conf);
}

/* The start is a plan from nothing: every function is added and checked. */
static void
case_plan_from_nothing(void)
{
	char a[1024];
	struct sv_conf *c = NULL;
	struct reload r = { 0 };

	snprintf(a, sizeof(a), FN("x", "", "9001", "") "," FN("y", "", "9002", ""), lib_a, lib_a);
	UNIT_CHECK((c = load("e", a)) != NULL);
	UNIT_CHECK(reload_plan(&r, NULL, c, 1) == 0);
	UNIT_CHECK(r.count[RL_ADDED] == 2 && r.checks_pending == 2);
	reload_force_roll(&r, 0);           /* only kept ones can be forced */
	UNIT_CHECK(r.count[RL_ADDED] == 2 && r.count[RL_ROLLED] == 0);
out:
	reload_clear(&r);
	config_free(c);
}

static void
case_states_success(void)
{
	struct reload r = { .checks_pending = 2 };

	UNIT_CHECK(reload_step(&r, RLE_BEGIN) == RLA_CHECK && r.state == RL_CHECKING);
	UNIT_CHECK(reload_step(&r, RLE_CHECK_OK) == RLA_NONE && r.state == RL_CHECKING);
	/* Ready before the checks are done makes no sense. */
	UNIT_CHECK(reload_step(&r, RLE_READY) == RLA_INVALID && r.state == RL_CHECKING);
	UNIT_CHECK(reload_step(&r, RLE_CHECK_OK) == RLA_START && r.state == RL_STARTING);
	UNIT_CHECK(reload_step(&r, RLE_CHECK_OK) == RLA_INVALID);
	UNIT_CHECK(reload_step(&r, RLE_READY) == RLA_SWITCH && r.state == RL_SWITCHING);
	UNIT_CHECK(reload_step(&r, RLE_SWITCHED) == RLA_FINISH && r.state == RL_IDLE);
out:;
}

/* Nothing changed: no check, nothing to start, straight through. */
static void
case_states_nothing_to_do(void)
{
	struct reload r = { 0 };

	UNIT_CHECK(reload_step(&r, RLE_BEGIN) == RLA_START && r.state == RL_STARTING);
	UNIT_CHECK(reload_step(&r, RLE_READY) == RLA_SWITCH);
	UNIT_CHECK(reload_step(&r, RLE_SWITCHED) == RLA_FINISH && r.state == RL_IDLE);
out:;
}

static void
case_states_failure_and_abort(void)
{
	struct reload r = { .checks_pending = 3 };

	UNIT_CHECK(reload_step(&r, RLE_BEGIN) == RLA_CHECK);
	UNIT_CHECK(reload_step(&r, RLE_CHECK_OK) == RLA_NONE);
	/* One failure refuses the whole reload: nothing was started. */
	UNIT_CHECK(reload_step(&r, RLE_CHECK_FAILED) == RLA_FAIL && r.state == RL_IDLE);
	UNIT_CHECK(reload_step(&r, RLE_CHECK_OK) == RLA_INVALID);

	r = (struct reload){ .checks_pending = 1 };
	reload_step(&r, RLE_BEGIN);
	UNIT_CHECK(reload_step(&r, RLE_ABORT) == RLA_FAIL && r.state == RL_IDLE);

	/* A stop while new pools start: they are abandoned, not switched to. */
	r = (struct reload){ .checks_pending = 1 };
	reload_step(&r, RLE_BEGIN);
	reload_step(&r, RLE_CHECK_OK);
	UNIT_CHECK(r.state == RL_STARTING);
	UNIT_CHECK(reload_step(&r, RLE_ABORT) == RLA_ABANDON && r.state == RL_IDLE);
	/* Idle takes nothing but a beginning. */
	for (int e = 1; e < RLE_NEVENT; e++)
		UNIT_CHECKF(reload_step(&r, (enum rl_event)e) == RLA_INVALID, "event %d", e);
out:;
}

static void
case_names(void)
{
	struct rl_item items[] = {
		{ "a", RL_KEPT, NULL, NULL }, { "b", RL_ROLLED, NULL, NULL },
		{ "c", RL_KEPT, NULL, NULL }, { "dddddddddd", RL_KEPT, NULL, NULL },
	};
	struct reload r = { .items = items, .nitems = 4 };
	char buf[64];

	reload_names(&r, RL_KEPT, buf, sizeof(buf));
	UNIT_CHECKF(strcmp(buf, "a,c,dddddddddd") == 0, "%s", buf);
	reload_names(&r, RL_KEPT, buf, 8);
	UNIT_CHECKF(strcmp(buf, "a,c,...") == 0, "cut: %s", buf);
	reload_names(&r, RL_REMOVED, buf, sizeof(buf));
	UNIT_CHECK(buf[0] == '\0');
out:;
}

int
main(int argc, char **argv)
{
	FILE *f;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(lib_a, sizeof(lib_a), "%s/a.so", dir);
	snprintf(lib_b, sizeof(lib_b), "%s/b.so", dir);
	if ((f = fopen(lib_a, "w")) != NULL)
		fclose(f);
	if ((f = fopen(lib_b, "w")) != NULL)
		fclose(f);
	unit_run("plan_kept_rolled_added_removed", case_plan);
	unit_run("plan_sees_a_rebuilt_library", case_plan_library_identity);
	unit_run("plan_from_nothing", case_plan_from_nothing);
	unit_run("states_success", case_states_success);
	unit_run("states_nothing_to_do", case_states_nothing_to_do);
	unit_run("states_failure_and_abort", case_states_failure_and_abort);
	unit_run("names_cut", case_names);
	{
		static const char *const names[] = { "a.so", "b.so", "a.json", "b.json", "c.json",
			"d.json", "e.json" };
		char p[512];

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
			unlink(p);
		}
		rmdir(dir);
	}
	return unit_exit();
}
