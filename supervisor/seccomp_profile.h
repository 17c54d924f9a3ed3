/*
 * seccomp_profile.h - the syscall filter a function's workers and library checks
 * run under, as the config states it ("seccomp": "default" | "off" |
 * {"deny": [...], "allow": [...]}) resolved to syscall numbers of this machine,
 * ready for struct wire_config. The default profile, in the spirit of Docker's
 * default, is listed in README.md; the worker installs it (worker/sandbox.c).
 */
#ifndef SV_SECCOMP_PROFILE_H
#define SV_SECCOMP_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/wire.h"

struct fn_seccomp {
	bool on;
	uint32_t arch;                /* AUDIT_ARCH_* of the numbers */
	uint32_t n;
	struct wire_syscall rules[WIRE_SECCOMP_MAX];
};

/* The default profile. */
void seccomp_profile_default(struct fn_seccomp *p);
/* No filter at all. */
void seccomp_profile_off(struct fn_seccomp *p);
/*
 * Adds syscall NAME to P (refused every time; a default entry that was
 * conditional becomes unconditional) when DENY, else removes it from P. Returns
 * NULL, or why not: an unknown name, one the worker itself needs, one that is not
 * in the default profile (allow), or a full profile.
 */
const char *seccomp_profile_change(struct fn_seccomp *p, const char *name, bool deny);
/* The rules of P as wire_config's seccomp fields. */
void seccomp_profile_wire(const struct fn_seccomp *p, struct wire_config *cfg);
/* The first of NAMES (NULL-terminated) that P refuses, or NULL. */
const char *seccomp_profile_denies_any(const struct fn_seccomp *p, const char *const *names);

#endif
