/*
 * check.h - the library check: does a function's .so load in a worker, with our API
 * version? Run before a function's workers start (start-up, reload, -t), reported
 * asynchronously so the supervisor's loop never waits on tenant code.
 */
#ifndef SV_CHECK_H
#define SV_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct event_base;
struct lib_check;

/* Result of one check: ok = 1 and err "" on success; ok = 0 and a one-line reason. */
typedef void (*lib_check_cb)(struct lib_check *c, int ok, const char *err, void *arg);

/* Starts checking FC's library asynchronously on BASE; the callback runs once, from
 * the loop, never from inside this call. NULL (errno) if it could not even start. */
struct lib_check *lib_check_start(struct event_base *base, const struct fn_conf *fc,
    const char *worker_path, uint32_t timeout_ms, lib_check_cb cb, void *arg);
/* Stops a check in flight; its callback never runs. */
void lib_check_cancel(struct lib_check *c);
/* SIGCHLD: 1 if PID was a check's (it is accounted for), else 0. */
int lib_check_on_exit(pid_t pid, int status);
/* `edgevisor -t`: checks every function of CONF, at most N at once; 0, or -1 with the
 * first failure (function order) in ERR. */
int lib_check_all_sync(const struct sv_conf *conf, const char *worker_path, unsigned n,
    char *err, size_t errlen);

#endif
