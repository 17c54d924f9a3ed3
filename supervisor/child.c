/*
 * child.c - a tenant's process (child.h): the config record it is told, how it is
 * started (clone with CLONE_VM | CLONE_VFORK; fork if its cgroup caps CPU) and what
 * it becomes between that and exec. Everything it must not have or must have is
 * settled there, before exec gives it a fresh address space: nothing of the
 * supervisor's memory reaches tenant code.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/wire.h"
#include "child.h"

int
child_config(const struct fn_conf *fc, uint32_t id, struct wire_config *cfg)
{
	const struct fn_limits *l = &fc->limits;
	static const uint32_t policy[] = {
		[POLICY_PER_WORKER] = WIRE_POLICY_PER_WORKER,
		[POLICY_PER_REQUEST] = WIRE_POLICY_PER_REQUEST,
		[POLICY_ONESHOT] = WIRE_POLICY_ONESHOT,
	};

	memset(cfg, 0, sizeof(*cfg));
	cfg->version = WIRE_VERSION;
	cfg->type = WIRE_CTL_CONFIG;
	cfg->size = sizeof(*cfg);
	cfg->worker_id = id;
	cfg->policy = policy[fc->policy];
	/* log_level -1 (silent, tests) is not a level the worker takes: errors only. */
	cfg->log_level = log_level < LOG_LVL_ERROR ? LOG_LVL_ERROR :
	    log_level > LOG_LVL_DEBUG ? LOG_LVL_DEBUG : (uint32_t)log_level;
	cfg->request_timeout_ms = l->request_timeout_ms;
	cfg->idle_timeout_ms = l->idle_timeout_ms;
	cfg->max_header_bytes = l->max_header_bytes;
	cfg->max_body_bytes = l->max_body_bytes;
	cfg->max_requests = l->max_requests;
	cfg->max_pending_tasks = l->max_pending_tasks;
	cfg->task_threads = l->task_threads;
	cfg->grace_ms = l->beforeunload_grace_ms;
	cfg->fetch_max_concurrent = l->fetch_max_concurrent;
	cfg->fetch_max_queued = l->fetch_max_queued;
	cfg->fetch_max_response_bytes = l->fetch_max_response_bytes;
	cfg->ws_max_message_bytes = l->ws_max_message_bytes;
	cfg->ws_max_buffer_bytes = l->ws_max_buffer_bytes;
	seccomp_profile_wire(&fc->seccomp, cfg);
	if (fc->durable.backend == DURABLE_LOCAL || fc->durable.backend == DURABLE_POSTGRESQL) {
		const struct fn_durable *d = &fc->durable;
		bool pg = d->backend == DURABLE_POSTGRESQL;

		cfg->durable = (struct wire_durable){
			.backend = pg ? WIRE_DURABLE_POSTGRESQL : WIRE_DURABLE_LOCAL,
			.lease_ms = d->lease_ms,
			.retry_base_ms = d->retry_base_ms, .retry_max_ms = d->retry_max_ms,
			.concurrency = d->concurrency, .idem_window_ms = d->idempotency_window_ms,
			.max_bytes = d->journal_max_bytes,
		};
		/* PostgreSQL: the connection string itself (the worker cannot read the
		 * root-owned dsn_file); it travels only on the worker's control socket. */
		if ((pg ? snprintf(cfg->durable.path, sizeof(cfg->durable.path), "%s", d->dsn) :
		    snprintf(cfg->durable.path, sizeof(cfg->durable.path), "%s/journal.db",
		    d->dir)) >= (int)sizeof(cfg->durable.path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
	}
	if (snprintf(cfg->name, sizeof(cfg->name), "%s", fc->name) >= (int)sizeof(cfg->name) ||
	    snprintf(cfg->library, sizeof(cfg->library), "%s", fc->library) >=
	    (int)sizeof(cfg->library)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Tells the supervisor why exec never happened, then dies. */
static int tenant_nice;        /* the level the supervisor was started at */
static bool nice_boosted;

int
child_priority_init(int boost)
{
	int cur;

	errno = 0;
	cur = getpriority(PRIO_PROCESS, 0);
	if (errno != 0 || setpriority(PRIO_PROCESS, 0, cur - boost) < 0)
		return -1;
	tenant_nice = cur;
	nice_boosted = true;
	return 0;
}

static void __attribute__((noreturn))
child_fail(const struct child_spec *cs, const char *what)
{
	struct wire_status st = { .version = WIRE_VERSION, .type = WIRE_ST_INIT_FAILED };
	int e = errno;
	/* Not strerror: no translation lookup (and its lock) in a child that shares
	 * the supervisor's memory. */
	const char *desc = strerrordesc_np(e);

	snprintf(st.text, sizeof(st.text), "%s: %s", what, desc != NULL ? desc : "unknown error");
	if (cs->status_errors) {
		(void)wire_send_status(WIRE_STATUS_FD, &st);
	} else {
		/* The check's verdict is its last line on stdout. */
		char line[sizeof(st.text) + 1];
		int n = snprintf(line, sizeof(line), "%s\n", st.text);

		if (write(STDOUT_FILENO, line, (size_t)n) < 0)
			_exit(127);
	}
	_exit(127);
}

/*
 * The local journal's directory, made here (still root, before exec, off the
 * supervisor's loop): <state>/durable is root's and 0711, so a tenant can reach its
 * own directory by name but list none; <state>/durable/<fn> is the tenant's uid's,
 * 0700, so no other tenant's worker can open the journal inside (EACCES).
 */
static int
durable_dir(const struct fn_conf *fc)
{
	char parent[WIRE_PATH_LEN];
	const char *slash = strrchr(fc->durable.dir, '/');
	struct stat st;

	if (slash == NULL || (size_t)(slash - fc->durable.dir) >= sizeof(parent))
		return -1;
	memcpy(parent, fc->durable.dir, (size_t)(slash - fc->durable.dir));
	parent[slash - fc->durable.dir] = '\0';
	if (mkdir(parent, 0711) < 0 && errno != EEXIST)
		return -1;
	if (mkdir(fc->durable.dir, 0700) < 0 && errno != EEXIST)
		return -1;
	if (fc->uid == (uid_t)-1)
		return 0;
	/* Never follow a link a tenant could have planted. */
	if (lstat(fc->durable.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	if (st.st_uid != fc->uid || st.st_gid != fc->gid || (st.st_mode & 07777) != 0700) {
		if (lchown(fc->durable.dir, fc->uid, fc->gid) < 0 ||
		    chmod(fc->durable.dir, 0700) < 0)
			return -1;
	}
	return 0;
}

/*
 * Runs in the child, on its own stack, in the supervisor's memory (CLONE_VM) while
 * the supervisor's thread waits (CLONE_VFORK) until execve has replaced that memory
 * or the child is gone (or in a forked copy, child_may_throttle): syscalls and
 * async-signal-safe work only, nothing that allocates, locks or writes a global.
 * Every signal is blocked on entry
 * (child_spawn) until the handlers it inherited are reset. Never returns.
 */
static int __attribute__((noreturn))
child_exec(void *arg)
{
	const struct child_spec *cs = arg;
	const struct fn_conf *fc = cs->fc;
	struct rlimit rl;
	sigset_t none;
	int hi[3] = { -1, -1, -1 }, out = -1, null;

	/* libevent's handlers would write into the supervisor's signal pipe: a signal
	 * to the process group before exec must not be handled twice by the parent. */
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGUSR1, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* It must not outlive us: a worker's SIGTERM runs its beforeunload hooks. */
	prctl(PR_SET_PDEATHSIG, cs->pdeathsig);
	/* The supervisor died before the line above: nobody would ever signal us. */
	if (getppid() != cs->parent)
		_exit(0);
	if (cs->own_pgroup)
		setpgid(0, 0);
	/* Move the channels above any target number, then onto 3, 4, 5 (and 1, 2). */
	for (int i = 0; i < 3; i++)
		if (cs->fds[i] >= 0 && (hi[i] = fcntl(cs->fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
			_exit(126);
	if (cs->out >= 0 && (out = fcntl(cs->out, F_DUPFD_CLOEXEC, 10)) < 0)
		_exit(126);
	for (int i = 0; i < 3; i++)
		if (hi[i] >= 0 && dup2(hi[i], WIRE_CTL_FD + i) < 0)
			_exit(126);
	if (out >= 0 && (dup2(out, STDOUT_FILENO) < 0 || dup2(out, STDERR_FILENO) < 0))
		_exit(126);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	/* Only its own channels: no listener, no other worker's socket, no admin fd. */
	for (int fd = WIRE_CTL_FD; fd <= WIRE_BOARD_FD; fd++)
		if (hi[fd - WIRE_CTL_FD] < 0)
			close(fd);
	/* Marked, not closed: exec closes them after it has let the supervisor's
	 * thread go on (CLONE_VFORK), and the supervisor holds a thousand and more. */
	if (close_range(WIRE_BOARD_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC) < 0 &&
	    close_range(WIRE_BOARD_FD + 1, ~0U, 0) < 0) {
		for (int fd = WIRE_BOARD_FD + 1; fd < 65536; fd++)
			close(fd);
	}
	if (cs->attach != NULL && cs->attach(fc->name, cs->cg_id, getpid()) < 0)
		child_fail(cs, "cgroup attach");
	rl.rlim_cur = rl.rlim_max = 0;
	setrlimit(RLIMIT_CORE, &rl);
	rl.rlim_cur = rl.rlim_max = fc->limits.nofile;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		child_fail(cs, "setrlimit nofile");
	if (cs->subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		child_fail(cs, "subreaper");
	if (fc->durable.dir != NULL && durable_dir(fc) < 0)
		child_fail(cs, "durable journal directory");
	if (fc->uid != (uid_t)-1) {
		/* Raw syscalls: glibc's wrappers would also change the credentials of
		 * every thread they know of, and in a CLONE_VM child those are the
		 * supervisor's threads. The kernel's act on this process alone. */
		if (syscall(SYS_setgroups, 1, &fc->gid) < 0 ||
		    syscall(SYS_setresgid, fc->gid, fc->gid, fc->gid) < 0 ||
		    syscall(SYS_setresuid, fc->uid, fc->uid, fc->uid) < 0)
			child_fail(cs, "drop privileges");
		/* setuid clears the parent-death signal: set it again. */
		prctl(PR_SET_PDEATHSIG, cs->pdeathsig);
		if (getppid() != cs->parent)
			_exit(0);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(cs, "no_new_privs");
	/* Tenant code runs at the level the supervisor was started at (see child.h);
	 * only now, so the work above, which the supervisor's loop waits for, ran at
	 * the supervisor's level. */
	if (nice_boosted)
		(void)setpriority(PRIO_PROCESS, 0, tenant_nice);
	execve(cs->path, cs->argv, cs->envp);
	child_fail(cs, "exec worker");
}

/*
 * The child's stack: one, since CLONE_VFORK keeps the loop's thread (the only one
 * that starts children) waiting until the child has exec'd or died. Mapped on
 * first use, kept for good.
 */
#define CHILD_STACK_SIZE (256 * 1024)
static void *child_stack;

/* The supervisor's environment less systemd's notify socket (the supervisor's, not
 * the tenant's); a fresh array each time, as environ may have changed. */
static char **
child_env(void)
{
	extern char **environ;
	static const char drop[] = "NOTIFY_SOCKET=";
	size_t n = 0, k = 0;
	char **env;

	while (environ != NULL && environ[n] != NULL)
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], drop, sizeof(drop) - 1) != 0)
			env[k++] = environ[i];
	return env;
}

/*
 * A child that joins a CPU-capped cgroup before exec runs the rest of its set-up
 * under that cap: once the tenant's workers have used their quota, it is throttled
 * for up to the cap's period (100 ms), and with CLONE_VFORK the loop would wait
 * that long. Such a child is forked (the fork's cost, ~1 ms at 500 functions, is
 * the loop's; the throttle is the child's alone).
 */
static bool
child_may_throttle(const struct child_spec *cs)
{
	return cs->attach != NULL &&
	    (cs->fc->limits.cpu_percent != 0 || cs->fc->limits.function_cpu_percent != 0);
}

pid_t
child_spawn(struct child_spec *cs)
{
	sigset_t all, old;
	pid_t pid;
	int saved;

	if (child_stack == NULL) {
		void *st = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);

		if (st == MAP_FAILED)
			return -1;
		child_stack = st;
	}
	if ((cs->envp = child_env()) == NULL)
		return -1;
	/* No handler of ours (libevent's write into its signal pipe) may run in the
	 * child before it has reset them: it would run in our memory. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (child_may_throttle(cs)) {
		pid = fork();
		if (pid == 0)
			child_exec(cs);
	} else {
		/* fork would copy the supervisor's page tables (1000 workers' scoreboards
		 * are as many mappings), ~0.5-1 ms a spawn on the loop; this costs the
		 * child's own set-up above, up to its exec. */
		pid = clone(child_exec, (char *)child_stack + CHILD_STACK_SIZE,
		    CLONE_VM | CLONE_VFORK | SIGCHLD, cs);
	}
	saved = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	free(cs->envp);
	cs->envp = NULL;
	errno = saved;
	return pid;
}
