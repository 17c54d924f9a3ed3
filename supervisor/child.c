/*
 * child.c - a tenant's process (child.h): the config record it is told, and what it
 * becomes between fork and exec. Everything it must not have or must have is
 * settled there, before exec gives it a fresh address space: nothing of the
 * supervisor's memory reaches tenant code.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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

	snprintf(st.text, sizeof(st.text), "%s: %s", what, strerror(e));
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

void
child_exec(const struct child_spec *cs)
{
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
	/* systemd's notify socket is the supervisor's, not the tenant's. */
	unsetenv("NOTIFY_SOCKET");
	/* Tenant code runs at the level the supervisor was started at (see child.h). */
	if (nice_boosted)
		(void)setpriority(PRIO_PROCESS, 0, tenant_nice);
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
	if (close_range(WIRE_BOARD_FD + 1, ~0U, 0) < 0) {
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
		if (setgroups(1, &fc->gid) < 0 || setresgid(fc->gid, fc->gid, fc->gid) < 0 ||
		    setresuid(fc->uid, fc->uid, fc->uid) < 0)
			child_fail(cs, "drop privileges");
		/* setuid clears the parent-death signal: set it again. */
		prctl(PR_SET_PDEATHSIG, cs->pdeathsig);
		if (getppid() != cs->parent)
			_exit(0);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(cs, "no_new_privs");
	execv(cs->path, cs->argv);
	child_fail(cs, "exec worker");
}
