/*
 * sandbox.h - the worker's syscall filter: the profile the supervisor sent in the
 * config record (wire.h: seccomp_rules), installed with libseccomp after the
 * privilege drop (the supervisor set the tenant's uid and no_new_privs before
 * exec) and before the tenant's library is loaded.
 *
 * A refused call traps (SIGSYS) instead of failing in the kernel, so that it can
 * be counted: the handler makes the call return -EPERM and adds one to the rule's
 * count on the scoreboard; it does nothing else (no log line from a signal
 * handler). It also pokes an eventfd, and the loop logs each syscall's first
 * denial once (ev=seccomp_denied). A program the tenant execs keeps the filter but
 * not the handler: there a refused call kills it with SIGSYS.
 */
#ifndef WK_SANDBOX_H
#define WK_SANDBOX_H

#include <stddef.h>

#include "../common/board.h"
#include "../common/wire.h"

struct event_base;

/*
 * Installs CFG's filter (nothing when it has none), counting into B (NULL: a
 * private table, the library check has no scoreboard). Every thread of the
 * process gets it. Returns 0, or -1 with a reason in WHY.
 */
int sandbox_install(const struct wire_config *cfg, struct board *b, char *why, size_t len);
/* Logs each refused syscall once, from BASE's loop. Returns 0 or -1. */
int sandbox_watch(struct event_base *base);

#endif
