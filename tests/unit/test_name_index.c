/*
 * test_name_index.c - the sorted name -> pointer index: finds what was added,
 * refuses a second add of a key (keeping the first value), forgets on delete, and
 * stays sorted whatever the insertion order.
 */
#include <stdio.h>
#include <string.h>

#include "../../common/name_index.h"
#include "unit.h"

static void
case_add_find(void)
{
	struct name_index ix = NAME_INDEX_INIT;
	static char keys[600][8];
	int vals[600], first = 1, second = 2;
	void *old = NULL;

	/* Added in a scrambled order (a permutation of 0..599). */
	for (int i = 0; i < 600; i++) {
		int k = (i * 7) % 600;

		snprintf(keys[k], sizeof(keys[k]), "f%03d", k);
		vals[k] = k;
		UNIT_CHECK(name_index_add(&ix, keys[k], &vals[k], NULL) == 0);
	}
	UNIT_CHECK(ix.n == 600);
	for (size_t i = 1; i < ix.n; i++)
		UNIT_CHECKF(strcmp(ix.e[i - 1].key, ix.e[i].key) < 0, "%zu", i);
	for (int k = 0; k < 600; k++)
		UNIT_CHECKF(name_index_find(&ix, keys[k]) == &vals[k], "%s", keys[k]);
	UNIT_CHECK(name_index_find(&ix, "f600") == NULL && name_index_find(&ix, "") == NULL);
	/* A second add of a key: refused, the first value kept and shown. */
	UNIT_CHECK(name_index_add(&ix, "dup", &first, NULL) == 0);
	UNIT_CHECK(name_index_add(&ix, "dup", &second, &old) == 1 && old == &first);
	UNIT_CHECK(name_index_find(&ix, "dup") == &first);
	name_index_del(&ix, "dup");
	name_index_del(&ix, "dup");         /* absent: nothing */
	UNIT_CHECK(name_index_find(&ix, "dup") == NULL && ix.n == 600);
	name_index_del(&ix, "f000");
	name_index_del(&ix, "f599");
	UNIT_CHECK(ix.n == 598 && name_index_find(&ix, "f000") == NULL &&
	    name_index_find(&ix, "f001") == &vals[1] && name_index_find(&ix, "f598") == &vals[598]);
out:
	name_index_free(&ix);
}

static void
case_empty(void)
{
	struct name_index ix = NAME_INDEX_INIT;

	UNIT_CHECK(name_index_find(&ix, "a") == NULL);
	name_index_del(&ix, "a");
	name_index_free(&ix);
	UNIT_CHECK(ix.n == 0 && ix.e == NULL);
out:
	;
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unit_run("add_find", case_add_find);
	unit_run("empty", case_empty);
	return unit_exit();
}
