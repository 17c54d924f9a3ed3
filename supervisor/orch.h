/*
 * orch.h - the orchestrator: the one module that decides. It handles every event the
 * lower modules report (evq.h), runs start-up and reloads as explicit states
 * (reload.h), and carries out the operator's commands (signals, admin).
 *
 * Layers, each calling only the ones below it:
 *   main.c                       entry: signals, config, the loop
 *   orch.c                       decisions (this)
 *   admin.c limits.c dispatch.c  operator endpoint, periodic checks, the hot path
 *   pool.c                       pools, paced spawning, backoff, totals
 *   spawn.c check.c              processes: workers, library checks
 *   lifecycle.c                  the worker state x event table
 *   cgroup.c cgroup_fs.c reload.c config.c evq.c notify.c, common/
 */
#ifndef SV_ORCH_H
#define SV_ORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reload.h"
#include "state.h"

/* Sets up the modules on sv.base. 0 or -1. */
int orch_init(void);
void orch_shutdown(void);
/* Starts CONF (listeners already open through dispatch_listen): a reload from
 * nothing. Start-up failures end the loop with exit code 1. */
void orch_start(struct sv_conf *conf);
/* Shown a reload's plan once it is made (it is valid only during the call). */
typedef void (*orch_plan_fn)(const struct reload *plan, void *arg);
/*
 * Reloads sv.conf_path. Returns 0 when the reload began (SEEN, if not NULL, was
 * shown its plan), 1 when one is in flight and this one will run after it, or -1
 * when it was refused at once (ERR says why; the old config serves on). A reload
 * refused later (a library check failed) is logged as reload_failed and shown in
 * sv.failed_gen.
 */
int orch_reload(orch_plan_fn seen, void *arg, char *err, size_t errlen);
/*
 * The same for SIGHUP and queued reloads, with the file read and validated on a
 * thread (conf_loader.h), so the loop never waits for it: the plan follows on a
 * later loop turn. An invalid file is logged as reload_failed.
 */
void orch_reload_file(void);
/* Graceful (drain everything) or fast (SIGTERM everything) stop. */
void orch_stop(bool fast);
/* Replaces every ready worker of NAME: fresh ones start, the old ones drain.
 * 0, or -1 when there is no such function. */
int orch_drain_function(const char *name);
/* SIGCHLD: reaps every exited child. */
void orch_reap(void);
/* The reload in flight (state RL_IDLE when none). */
const struct reload *orch_reload_state(void);

#endif
