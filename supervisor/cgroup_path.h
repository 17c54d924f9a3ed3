/*
 * cgroup_path.h - what may stand in a cgroup path below the supervisor's base, with
 * no cgroup access: the config checks cgroup_parent with it before anything runs,
 * and cgroup.c checks it again before building the tree.
 */
#ifndef SV_CGROUP_PATH_H
#define SV_CGROUP_PATH_H

#define CG_PARENT_MAX 255   /* bytes */

/*
 * PARENT (cgroup_parent) must stay below our own cgroup: a relative path of names
 * of [A-Za-z0-9_.@-], none empty, "." or "..", at most CG_PARENT_MAX bytes.
 * Returns 0, or -1 with what is wrong in *WHY (a static string, "must be ...").
 */
int cg_parent_check(const char *parent, const char **why);

#endif
