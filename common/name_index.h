/*
 * name_index.h - a sorted array from a name to a pointer: O(log n) lookups where a
 * list scan per name made a 500-function reload quadratic (each function's name
 * checked against every other's, at load, plan and switch-over).
 *
 * Keys are not copied: each must live as long as the index (a name inside the
 * object it maps to). Insertion keeps the array sorted (a memmove: cheap next to
 * the string compares a scan costs).
 */
#ifndef EV_NAME_INDEX_H
#define EV_NAME_INDEX_H

#include <stddef.h>

struct name_index_ent {
	const char *key;
	void *val;
};

struct name_index {
	struct name_index_ent *e;
	size_t n, cap;
};

#define NAME_INDEX_INIT { NULL, 0, 0 }

/* 0: added; 1: KEY was there already (its value is left, *OLD gets it if not NULL);
 * -1: out of memory. */
int name_index_add(struct name_index *ix, const char *key, void *val, void **old);
/* KEY's value, or NULL. */
void *name_index_find(const struct name_index *ix, const char *key);
/* Forgets KEY (nothing if absent). */
void name_index_del(struct name_index *ix, const char *key);
void name_index_free(struct name_index *ix);

#endif
