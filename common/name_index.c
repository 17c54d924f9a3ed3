/* name_index.c - a sorted name -> pointer array (name_index.h). */
#include "name_index.h"

#include <stdlib.h>
#include <string.h>

/* The first slot whose key is >= KEY; *FOUND says whether it is KEY. */
static size_t
lower_bound(const struct name_index *ix, const char *key, int *found)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(ix->e[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = lo < ix->n && strcmp(ix->e[lo].key, key) == 0;
	return lo;
}

int
name_index_add(struct name_index *ix, const char *key, void *val, void **old)
{
	int found;
	size_t at = lower_bound(ix, key, &found);

	if (found) {
		if (old != NULL)
			*old = ix->e[at].val;
		return 1;
	}
	if (ix->n == ix->cap) {
		size_t cap = ix->cap ? ix->cap * 2 : 16;
		struct name_index_ent *e = realloc(ix->e, cap * sizeof(*e));

		if (e == NULL)
			return -1;
		ix->e = e;
		ix->cap = cap;
	}
	memmove(&ix->e[at + 1], &ix->e[at], (ix->n - at) * sizeof(ix->e[0]));
	ix->e[at].key = key;
	ix->e[at].val = val;
	ix->n++;
	return 0;
}

void *
name_index_find(const struct name_index *ix, const char *key)
{
	int found;
	size_t at;

	if (ix->n == 0)
		return NULL;
	at = lower_bound(ix, key, &found);
	return found ? ix->e[at].val : NULL;
}

void
name_index_del(struct name_index *ix, const char *key)
{
	int found;
	size_t at = lower_bound(ix, key, &found);

	if (!found)
		return;
	memmove(&ix->e[at], &ix->e[at + 1], (ix->n - at - 1) * sizeof(ix->e[0]));
	ix->n--;
}

void
name_index_free(struct name_index *ix)
{
	free(ix->e);
	ix->e = NULL;
	ix->n = ix->cap = 0;
}
