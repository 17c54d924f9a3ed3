/*
 * conf_loader.h - reads and validates a config file on a thread of its own, and
 * reports the result on the supervisor's loop.
 *
 * Loading 500 functions (JSON, a stat of each library, the dynamic-uid record,
 * the account database) costs milliseconds: on the loop, every tenant's new
 * connections would wait for it. config_load() touches no supervisor state, so it
 * can run beside the loop; everything that does (cgroups, listeners, the plan)
 * happens in the callback, on the loop.
 */
#ifndef SV_CONF_LOADER_H
#define SV_CONF_LOADER_H

#include <stdbool.h>

#include <event2/event.h>

#include "config.h"

/* CONF (now the callee's) or NULL with ERR (one line). Runs on the loop. New
 * dynamic uids are not recorded yet: that is for the loop once the reload is taken
 * (identity.h: a refused reload never writes). */
typedef void (*conf_loaded_fn)(struct sv_conf *conf, const char *err, void *arg);

int conf_loader_init(struct event_base *base);
/* Joins a load under way (its result is freed, its callback never runs). */
void conf_loader_shutdown(void);
/* Starts loading PATH (copied); 0, or -1 with errno (EBUSY: one is under way). */
int conf_loader_start(const char *path, conf_loaded_fn cb, void *arg);
bool conf_loader_busy(void);

#endif
