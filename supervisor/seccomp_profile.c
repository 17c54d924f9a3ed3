/*
 * seccomp_profile.c - the default syscall profile and a function's changes to it
 * (seccomp_profile.h). Names are resolved here, at config load, with libseccomp:
 * a typo fails the load with its key path instead of a worker's start.
 */
#include "seccomp_profile.h"

#include <seccomp.h>
#include <string.h>

/*
 * What no tenant needs on a shared host and what breaks isolation if it works:
 * mounting and namespaces (escape and privilege games), tracing and reading other
 * processes, the kernel's keyrings, BPF and perf (kernel attack surface and
 * side channels), userfaultfd (exploit timing), module loading, kexec, reboot,
 * swap, the clocks, quotas and accounting, raw I/O ports, file handles (the
 * open_by_handle_at container escape) and io_uring (its own syscall surface).
 * Names the kernel of this architecture lacks are skipped.
 */
static const struct {
	const char *name;
	uint32_t kind;
} default_profile[] = {
	{ "mount", WIRE_SC_ALWAYS }, { "umount", WIRE_SC_ALWAYS },
	{ "umount2", WIRE_SC_ALWAYS }, { "pivot_root", WIRE_SC_ALWAYS },
	{ "chroot", WIRE_SC_ALWAYS }, { "move_mount", WIRE_SC_ALWAYS },
	{ "open_tree", WIRE_SC_ALWAYS }, { "fsopen", WIRE_SC_ALWAYS },
	{ "fsconfig", WIRE_SC_ALWAYS }, { "fsmount", WIRE_SC_ALWAYS },
	{ "fspick", WIRE_SC_ALWAYS }, { "mount_setattr", WIRE_SC_ALWAYS },
	{ "unshare", WIRE_SC_ALWAYS }, { "setns", WIRE_SC_ALWAYS },
	{ "clone", WIRE_SC_CLONE_NS }, { "clone3", WIRE_SC_ENOSYS },
	{ "ptrace", WIRE_SC_ALWAYS }, { "process_vm_readv", WIRE_SC_ALWAYS },
	{ "process_vm_writev", WIRE_SC_ALWAYS }, { "process_madvise", WIRE_SC_ALWAYS },
	{ "pidfd_getfd", WIRE_SC_ALWAYS }, { "kcmp", WIRE_SC_ALWAYS },
	{ "kexec_load", WIRE_SC_ALWAYS }, { "kexec_file_load", WIRE_SC_ALWAYS },
	{ "bpf", WIRE_SC_ALWAYS }, { "perf_event_open", WIRE_SC_ALWAYS },
	{ "keyctl", WIRE_SC_ALWAYS }, { "add_key", WIRE_SC_ALWAYS },
	{ "request_key", WIRE_SC_ALWAYS }, { "userfaultfd", WIRE_SC_ALWAYS },
	{ "init_module", WIRE_SC_ALWAYS }, { "finit_module", WIRE_SC_ALWAYS },
	{ "delete_module", WIRE_SC_ALWAYS }, { "reboot", WIRE_SC_ALWAYS },
	{ "swapon", WIRE_SC_ALWAYS }, { "swapoff", WIRE_SC_ALWAYS },
	{ "settimeofday", WIRE_SC_ALWAYS }, { "clock_settime", WIRE_SC_ALWAYS },
	{ "clock_adjtime", WIRE_SC_ALWAYS }, { "adjtimex", WIRE_SC_ALWAYS },
	{ "stime", WIRE_SC_ALWAYS }, { "personality", WIRE_SC_PERSONALITY },
	{ "acct", WIRE_SC_ALWAYS }, { "quotactl", WIRE_SC_ALWAYS },
	{ "quotactl_fd", WIRE_SC_ALWAYS }, { "syslog", WIRE_SC_ALWAYS },
	{ "iopl", WIRE_SC_ALWAYS }, { "ioperm", WIRE_SC_ALWAYS },
	{ "open_by_handle_at", WIRE_SC_ALWAYS }, { "name_to_handle_at", WIRE_SC_ALWAYS },
	{ "lookup_dcookie", WIRE_SC_ALWAYS }, { "vhangup", WIRE_SC_ALWAYS },
	{ "sethostname", WIRE_SC_ALWAYS }, { "setdomainname", WIRE_SC_ALWAYS },
	{ "uselib", WIRE_SC_ALWAYS }, { "io_uring_setup", WIRE_SC_ALWAYS },
	{ "io_uring_enter", WIRE_SC_ALWAYS }, { "io_uring_register", WIRE_SC_ALWAYS },
};

/* The worker's own loop, channels, threads and signal return: a profile that
 * refused one of these would leave a worker that cannot run, or not even leave
 * the SIGSYS handler that answers a denial. */
static const char *const needed[] = {
	"read", "write", "close", "recvmsg", "recvmmsg", "sendmsg", "sendmmsg", "epoll_wait",
	"epoll_pwait", "epoll_ctl", "futex", "mmap", "munmap", "brk", "rt_sigreturn",
	"rt_sigprocmask", "exit", "exit_group", NULL
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int
find(const struct fn_seccomp *p, int nr)
{
	for (uint32_t i = 0; i < p->n; i++)
		if (p->rules[i].nr == nr)
			return (int)i;
	return -1;
}

void
seccomp_profile_off(struct fn_seccomp *p)
{
	memset(p, 0, sizeof(*p));
}

void
seccomp_profile_default(struct fn_seccomp *p)
{
	/* Resolved once: every function of a load starts from it, and resolving ~100
	 * names per function was a fifth of a 500-function config load. */
	static struct fn_seccomp def;
	static bool resolved;

	if (!resolved) {
		def.on = true;
		def.arch = seccomp_arch_native();
		for (size_t i = 0; i < NELEM(default_profile) && def.n < WIRE_SECCOMP_MAX; i++) {
			int nr = seccomp_syscall_resolve_name(default_profile[i].name);

			/* Negative: not a syscall of this architecture (umount, stime on x86_64). */
			if (nr < 0 || find(&def, nr) >= 0)
				continue;
			def.rules[def.n].nr = nr;
			def.rules[def.n].kind = default_profile[i].kind;
			def.n++;
		}
		resolved = true;
	}
	*p = def;
}

const char *
seccomp_profile_change(struct fn_seccomp *p, const char *name, bool deny)
{
	int nr = seccomp_syscall_resolve_name(name), i;

	if (nr < 0)
		return "unknown system call on this architecture";
	i = find(p, nr);
	if (!deny) {
		if (i < 0)
			return "is not in the default profile";
		p->rules[i] = p->rules[p->n - 1];
		memset(&p->rules[--p->n], 0, sizeof(p->rules[0]));
		return NULL;
	}
	for (const char *const *k = needed; *k != NULL; k++)
		if (seccomp_syscall_resolve_name(*k) == nr)
			return "the worker itself needs it";
	if (i >= 0) {
		p->rules[i].kind = WIRE_SC_ALWAYS;
		return NULL;
	}
	if (p->n == WIRE_SECCOMP_MAX)
		return "too many system calls in the profile";
	p->rules[p->n].nr = nr;
	p->rules[p->n].kind = WIRE_SC_ALWAYS;
	p->n++;
	return NULL;
}

void
seccomp_profile_wire(const struct fn_seccomp *p, struct wire_config *cfg)
{
	cfg->seccomp = p->on;
	cfg->seccomp_arch = p->on ? p->arch : 0;
	cfg->seccomp_n = p->on ? p->n : 0;
	memset(cfg->seccomp_rules, 0, sizeof(cfg->seccomp_rules));
	if (p->on)
		memcpy(cfg->seccomp_rules, p->rules, p->n * sizeof(p->rules[0]));
}

const char *
seccomp_profile_denies_any(const struct fn_seccomp *p, const char *const *names)
{
	for (const char *const *n = names; *n != NULL; n++) {
		int nr = seccomp_syscall_resolve_name(*n);

		if (nr != __NR_SCMP_ERROR && p->on && find(p, nr) >= 0)
			return *n;
	}
	return NULL;
}
