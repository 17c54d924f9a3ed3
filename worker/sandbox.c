/*
 * sandbox.c - the worker's seccomp filter and the counting of what it refuses
 * (sandbox.h).
 */
#include "sandbox.h"

#include <errno.h>
#include <seccomp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <ucontext.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/log.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1       /* si_code of a seccomp SIGSYS (linux/signal.h) */
#endif

_Static_assert(BOARD_SECCOMP_SLOTS == WIRE_SECCOMP_MAX, "a count per rule");

#if defined(__x86_64__)
#define SET_RETURN(uc, v) ((uc)->uc_mcontext.gregs[REG_RAX] = (v))
#elif defined(__aarch64__)
#define SET_RETURN(uc, v) ((uc)->uc_mcontext.regs[0] = (unsigned long long)(v))
#else
#error "sandbox.c: how a SIGSYS handler sets the syscall's return value on this architecture"
#endif

/* What the handler reads: set once before the filter exists, never changed. */
static struct wire_syscall rules[WIRE_SECCOMP_MAX];
static uint32_t nrules;
static uint32_t *counts;
static uint64_t *total;
static int efd = -1;
/* Without a scoreboard (the library check). */
static uint32_t own_counts[WIRE_SECCOMP_MAX];
static uint64_t own_total;
/* Loop only: which rules were logged already. */
static bool logged[WIRE_SECCOMP_MAX];
static struct event *watch_ev;

/* Async-signal-safe: registers, atomics and write(2) on an eventfd, nothing more. */
static void
sigsys(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;
	uint64_t one = 1;

	if (si->si_code != SYS_SECCOMP)
		return;            /* a kill(SIGSYS) from someone: nothing to answer */
	SET_RETURN((ucontext_t *)ctx, -EPERM);
	for (uint32_t i = 0; i < nrules; i++) {
		if (rules[i].nr == si->si_syscall) {
			__atomic_add_fetch(&counts[i], 1, __ATOMIC_RELAXED);
			break;
		}
	}
	__atomic_add_fetch(total, 1, __ATOMIC_RELAXED);
	if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
		/* The counter saturated or the tenant closed it: the count stands. */
	}
	errno = saved;
}

/* The namespace flags of clone(2)'s first argument (CLONE_NEWTIME is clone3's). */
static const unsigned long ns_flags[] = {
	0x00020000 /* NEWNS */, 0x02000000 /* NEWCGROUP */, 0x04000000 /* NEWUTS */,
	0x08000000 /* NEWIPC */, 0x10000000 /* NEWUSER */, 0x20000000 /* NEWPID */,
	0x40000000 /* NEWNET */,
};

static int
add_rule(scmp_filter_ctx ctx, const struct wire_syscall *r)
{
	int rc = 0;

	switch (r->kind) {
	case WIRE_SC_ALWAYS:
		return seccomp_rule_add(ctx, SCMP_ACT_TRAP, r->nr, 0);
	case WIRE_SC_CLONE_NS:
		for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]) && rc == 0; i++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_TRAP, r->nr, 1,
			    SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
		return rc;
	case WIRE_SC_PERSONALITY:
		/* Reading the persona changes nothing; setting one (ADDR_NO_RANDOMIZE,
		 * READ_IMPLIES_EXEC, ...) weakens the process. */
		return seccomp_rule_add(ctx, SCMP_ACT_TRAP, r->nr, 1,
		    SCMP_A0_32(SCMP_CMP_NE, 0xffffffffu));
	case WIRE_SC_ENOSYS:
		return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), r->nr, 0);
	default:
		return -EINVAL;
	}
}

int
sandbox_install(const struct wire_config *cfg, struct board *b, char *why, size_t len)
{
	struct sigaction sa;
	scmp_filter_ctx ctx = NULL;
	sigset_t sys;
	int rc = -1, e;

	if (cfg->seccomp == 0)
		return 0;
	if (cfg->seccomp_arch != seccomp_arch_native()) {
		snprintf(why, len, "profile for arch 0x%x, worker is 0x%x", cfg->seccomp_arch,
		    seccomp_arch_native());
		return -1;
	}
	memcpy(rules, cfg->seccomp_rules, sizeof(rules));
	nrules = cfg->seccomp_n;
	counts = b != NULL ? b->seccomp_counts : own_counts;
	total = b != NULL ? &b->seccomp_denied : &own_total;
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	if (sigaction(SIGSYS, &sa, NULL) < 0 || sigprocmask(SIG_UNBLOCK, &sys, NULL) < 0) {
		snprintf(why, len, "SIGSYS handler: %s", strerror(errno));
		goto out;
	}
	if ((ctx = seccomp_init(SCMP_ACT_ALLOW)) == NULL) {
		snprintf(why, len, "seccomp_init failed");
		goto out;
	}
	/* Threads started before us (none today) get the filter too. */
	if ((e = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		snprintf(why, len, "TSYNC: %s", strerror(-e));
		goto out;
	}
	for (uint32_t i = 0; i < nrules; i++) {
		if ((e = add_rule(ctx, &rules[i])) < 0) {
			snprintf(why, len, "rule for syscall %d: %s", rules[i].nr, strerror(-e));
			goto out;
		}
	}
	if ((e = seccomp_load(ctx)) < 0) {
		snprintf(why, len, "seccomp_load: %s", strerror(-e));
		goto out;
	}
	rc = 0;
out:
	if (ctx != NULL)
		seccomp_release(ctx);
	return rc;
}

static void
watch_cb(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	for (uint32_t i = 0; i < nrules; i++) {
		uint32_t c = __atomic_load_n(&counts[i], __ATOMIC_RELAXED);
		char *name;

		if (logged[i] || c == 0)
			continue;
		logged[i] = true;
		name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, rules[i].nr);
		log_warn("seccomp_denied", "syscall=%s nr=%d count=%u msg=\"refused by the "
		    "function's seccomp profile (EPERM); logged once per worker\"",
		    name != NULL ? name : "?", rules[i].nr, c);
		free(name);
	}
}

int
sandbox_watch(struct event_base *base)
{
	if (efd < 0)
		return 0;
	watch_ev = event_new(base, efd, EV_READ | EV_PERSIST, watch_cb, NULL);
	return watch_ev != NULL && event_add(watch_ev, NULL) == 0 ? 0 : -1;
}
