/*
 * cgroup_fs.h - inside the cgroup module only: one cgroup directory in one hierarchy
 * (create, set, read, kill its processes, remove), with libcgroup where it works
 * and the cgroupfs file where it has no call or fails. cgroup.c decides the tree and
 * the policy; cgroup_fs.c does the file-level work. Nothing outside supervisor/cgroup*.c
 * includes this.
 */
#ifndef SV_CGROUP_FS_H
#define SV_CGROUP_FS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CG_KILL_ROUNDS	100		/* x 10 ms: how long a kill or rmdir may take */

/* H_PIDS is optional: without it (or v2 without "pids") there is no process cap. */
enum { H_CPU = 0, H_CPUACCT, H_MEM, H_PIDS, H_MAX };

/* One hierarchy (v2: the unified one only) and where <base> is inside it. */
struct cg_hier {
	const char	*h_ctrl;		/* libcgroup controller name */
	bool		 h_on;
	bool		 h_moved;		/* the supervisor sits in <base>/supervisor */
	char		 h_mount[PATH_MAX];	/* mount point */
	char		 h_own[PATH_MAX];	/* our cgroup at start, "" = root */
	char		 h_base[PATH_MAX];	/* <base> relative to the mount */
};

/* The module's one state, detected once by cg_init. */
struct cg_state {
	int		 version;		/* 0 = off, 1, 2 */
	bool		 lib;			/* libcgroup drives the real mounts */
	bool		 fake;			/* root is no cgroupfs (tests only) */
	bool		 pids;			/* the pids controller is in the tree */
	bool		 required;		/* cg_init ran in "required" mode */
	bool		 pids_warned;		/* said once that max_pids is not enforced */
	char		 own_off[32];		/* v2: "-cpu ..." undoing what we enabled in h_own */
	bool		 quiet;			/* undoing a failed cg_init: no warnings */
	struct cg_hier	 h[H_MAX];
};
extern struct cg_state cg;

/* snprintf for paths: -1 (ENAMETOOLONG) instead of a silently cut path. */
int	cgfs_pathf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int	cg_path(char *buf, size_t len, const struct cg_hier *h, const char *sub,
    const char *file);
int	cg_rel(char *buf, size_t len, const struct cg_hier *h, const char *sub);
int	cgfs_read(const char *path, char *buf, size_t len);
int	cgfs_write(const char *path, const char *val, size_t len);
bool	cgfs_exists(const char *path);
int	cgfs_write_pid(const char *path, pid_t pid);
uint64_t	cgfs_kv(const char *buf, const char *key);
bool	cgfs_has_word(const char *list, const char *word);
void	cgfs_sleep_ms(long ms);
const char *	cgfs_lib_ctrl(const struct cg_hier *h, const char *file);
int	cgx_create(struct cg_hier *h, const char *sub);
int	cgx_set(struct cg_hier *h, const char *sub, const char *file, const char *val);
int	cgx_get(struct cg_hier *h, const char *sub, const char *file, char *buf, size_t len);
int	cgx_get_u64(struct cg_hier *h, const char *sub, const char *file, uint64_t *out);
/* Waiting (bounded, 10 ms rounds): only where no loop runs (start, exit, tests). */
int	cgx_remove(struct cg_hier *h, const char *sub);
int	cgx_kill_procs(struct cg_hier *h, const char *sub);
/* One attempt each, never waiting: what the running supervisor uses. */
int	cgx_rmdir_once(struct cg_hier *h, const char *sub);
int	cgx_kill_once(struct cg_hier *h, const char *sub);
int	cgx_remove_tree(struct cg_hier *h, const char *sub, int depth);

#endif
