/*
 * identity.h - which uid a function's workers run as when it names no "user" and
 * the supervisor is root: a dynamic uid (gid the same number) from the configured
 * range ("dynamic_users", default 61184..65519), never a passwd or group entry.
 *
 * The rule: a name's uid is the first free slot probing upward (wrapping) from a
 * hash of the name; once chosen it is recorded in STATE_DIR/dynamic-users and is
 * that name's for good. Without the record no rule could be stable: two names
 * hashing to one slot must get different uids, so one of them depends on the other
 * being configured, and it would move when the other is removed or added in front
 * of it. The record makes it depend on nothing: removing a function keeps its line
 * (its files stay its own if it comes back, and no later function gets its uid),
 * and a new function only probes past recorded slots.
 *
 * Two phases, so that `edgevisor -t`, a refused reload and the tests never write:
 * config_load reads the record and picks (identity_pick), and the supervisor writes
 * the new picks when it applies the config (identity_apply), under a lock, checking
 * that nobody recorded something else meanwhile.
 */
#ifndef SV_IDENTITY_H
#define SV_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define IDENTITY_FIRST     61184u   /* systemd's DynamicUser= range */
#define IDENTITY_LAST      65519u
#define IDENTITY_STATE_DIR "/var/lib/edgevisor"
#define IDENTITY_FILE      "dynamic-users"

struct id_table;

/*
 * Reads DIR/dynamic-users (none yet: an empty table). The file must be ours (the
 * supervisor's euid) and writable by nobody else: whoever can edit it can map one
 * tenant onto another's uid. Returns 0, or -1 with a one-line reason in WHY.
 */
int identity_read(const char *dir, struct id_table **out, char *why, size_t len);
void identity_free(struct id_table *t);

/*
 * NAME's uid in FIRST..LAST: its recorded one, or a new pick past every recorded
 * slot, every pick of this table, and every uid or gid the passwd and group
 * databases know. *RECORDED tells which. Returns 0, or -1 with WHY (the range is
 * full, or the recorded uid has meanwhile become a real account).
 */
int identity_pick(struct id_table *t, const char *name, uint32_t first, uint32_t last,
    uid_t *uid, bool *recorded, char *why, size_t len);

/*
 * When the supervisor takes CONF (start, accepted reload): records every dynamic
 * uid not yet recorded, and logs a warning for each function whose workers run as
 * root. Returns 0, or -1 with ERR (the record could not be written, or another
 * supervisor sharing the state directory recorded a clashing entry meanwhile).
 */
int identity_apply(struct sv_conf *conf, char *err, size_t len);

#endif
