/*
 * cgroup_path.c - the rules for cgroup_parent, kept apart from cgroup.c so that the
 * config (and its tests and fuzzer) check it without linking libcgroup.
 */
#include "cgroup_path.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

int
cg_parent_check(const char *parent, const char **why)
{
	size_t l;

	*why = "must be a relative path of names ([A-Za-z0-9_.@-], no \".\" or \"..\")";
	if (parent == NULL || *parent == '\0' || *parent == '/')
		return -1;
	/* Names only: nothing that walks up ("..") or names the base itself ("."). */
	for (const char *c = parent;; c += l + 1) {
		l = strcspn(c, "/");
		if (l == 0 || (l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' && c[1] == '.'))
			return -1;
		for (size_t i = 0; i < l; i++)
			if (!isalnum((unsigned char)c[i]) && strchr("_-.@", c[i]) == NULL)
				return -1;
		if (c[l] == '\0')
			break;
	}
	if (strlen(parent) > CG_PARENT_MAX) {
		*why = "must be at most 255 bytes";
		return -1;
	}
	return 0;
}
