/*
 * child.h - what every process that runs tenant code (a worker, a library check)
 * becomes between its start (child_spawn) and exec: its cgroup, only its own descriptors on fixed
 * numbers, rlimits, the tenant's uid/gid, no_new_privs and the parent-death
 * signal. One function, so a worker and a check cannot drift apart.
 */
#ifndef SV_CHILD_H
#define SV_CHILD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/wire.h"
#include "config.h"

struct child_spec {
	const struct fn_conf *fc;    /* the tenant: uid, gid, nofile */
	pid_t parent;                /* the supervisor's pid, taken before fork */
	/* Descriptors moved onto WIRE_CTL_FD, WIRE_STATUS_FD, WIRE_BOARD_FD (3, 4, 5);
	 * -1 leaves that number closed. */
	int fds[3];
	int out;                     /* -1, or dup'ed onto stdout and stderr */
	/* Moves the child into its cgroup (cg_worker_attach, cg_check_attach); NULL:
	 * none. Called with (fn name, cg_id, own pid). */
	int (*attach)(const char *fn, uint32_t id, pid_t pid);
	uint32_t cg_id;
	int pdeathsig;               /* sent to the child when the supervisor dies */
	bool own_pgroup;             /* setpgid(0, 0): it can be killed as a group */
	bool subreaper;              /* orphans of its descendants come back to it */
	bool status_errors;          /* report a failure as a WIRE_ST_INIT_FAILED on
	                              * fd 4; else as one line on stdout */
	const char *path;            /* what to exec */
	char *const *argv;
	char **envp;                 /* child_spawn's own, during the call */
};

/* FC's settings for worker ID as the wire record (no max_requests jitter, no cgroup
 * path: the caller adds what is its own). 0, or -1 (ENAMETOOLONG). */
int child_config(const struct fn_conf *fc, uint32_t id, struct wire_config *cfg);

/*
 * Starts CS's child: clone(CLONE_VM | CLONE_VFORK), so the caller's thread waits
 * only for the child's set-up (no copy of the supervisor's page tables, as fork
 * made), then the child execs; fork when the child joins a CPU-capped cgroup before
 * exec (its set-up may be throttled there). Loop thread only. Returns the pid, or -1 with errno
 * (nothing started). The child's failures before exec are reported as CS says.
 */
pid_t child_spawn(struct child_spec *cs);
/*
 * The supervisor's loop runs BOOST nice levels above its tenants: what it does per
 * event is short (an accept, a hand-off, a spawn), and while hundreds of workers
 * start at once (a 500-function reload, a burst of cold starts) the scheduler must
 * not make every other tenant's new connections wait behind them. Every child
 * (worker, library check) starts again at the nice level the supervisor was given.
 * 0, or -1 with errno (not root, or no such level: nothing changed).
 */
int child_priority_init(int boost);

#endif
