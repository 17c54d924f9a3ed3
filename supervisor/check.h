/*
 * check.h - the library check: before a config is accepted (-t, start, reload),
 * each function's .so is loaded by a throw-away worker (WIRE_CFG_CHECK_ONLY:
 * dlopen, entry point, API version; init is not called) whose last line on stdout
 * is "ok" or why not. It runs tenant code (the library's constructors), so it runs
 * like a worker: the tenant's uid, no_new_privs, only its own fds, the worker's
 * rlimits, in a cgroup of the function (<base>/<fn>/check-<N>, the worker's caps)
 * when cgroups are on, and in a process group of its own.
 *
 * It never blocks the supervisor's loop: the verdict is read from a pipe event,
 * the exit from a pidfd event (or from main.c's SIGCHLD loop through
 * lib_check_on_exit, whichever reaps first), the timeout from a timer.
 *
 * What it leaves behind: nothing in its cgroup (killed whole once the check exits
 * or times out, then the cgroup is removed). With cgroups off, the check is a
 * child subreaper, so a constructor's orphans (a double fork, setsid included)
 * stay in its process tree: it kills them itself before it exits, and a timeout
 * or cancel kills the tree (walked through /proc/<pid>/task/<tid>/children, each
 * process stopped before its children are read) and the process group. Not
 * bounded with cgroups off: strays of a check that dies some other way (the
 * supervisor SIGKILLed: the parent-death signal kills the check only), and a tree
 * of more than 1024 processes.
 */
#ifndef SV_CHECK_H
#define SV_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct event_base;

/* The default of the config's library_check_timeout_ms. */
#define LIB_CHECK_TIMEOUT_MS 5000

struct lib_check;
/* Result of one check: ok = 1 and err "" on success; ok = 0 and a one-line reason.
 * C is freed when the callback returns. */
typedef void (*lib_check_cb)(struct lib_check *c, int ok, const char *err, void *arg);
/* Starts checking FC's library in a child (tenant uid, its cgroup, no_new_privs, only its fds),
 * asynchronously on BASE; the callback runs once, from the loop, never from inside this call.
 * Returns NULL (errno) if it could not even start. FC is not kept: it may go before the check. */
struct lib_check *lib_check_start(struct event_base *base, const struct fn_conf *fc,
    const char *worker_path, uint32_t timeout_ms, lib_check_cb cb, void *arg);
/* Stops a check in flight (kills its processes); its callback never runs. */
void lib_check_cancel(struct lib_check *c);
/* For `edgevisor -t` and tests: runs checks of every function of CONF on a private base,
 * at most N at once, each allowed CONF's check_timeout_ms; 0, or -1 with the first
 * failure (function order) in ERR. */
int lib_check_all_sync(const struct sv_conf *conf, const char *worker_path, unsigned n, char *err, size_t errlen);
/* The check's process (for logs and tests); 0 when none was started. */
pid_t lib_check_pid(const struct lib_check *c);
/* main.c's SIGCHLD loop reaped PID: 1 if it was a check's (its exit is taken), else 0. */
int lib_check_on_exit(pid_t pid, int status);

#endif
