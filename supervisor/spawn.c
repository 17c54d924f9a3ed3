/*
 * spawn.c - fork + exec of one worker. Everything a tenant's process must not have
 * or must have is settled here, in the child, before exec: its cgroup, its channels
 * on fixed fds and no other fd, rlimits, the tenant's uid/gid, no_new_privs and the
 * parent-death signal. exec gives it a fresh address space: nothing of the
 * supervisor's memory reaches tenant code.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "cgroup.h"
#include "spawn.h"

#define SPAWN_MAX_ARGS 40

static struct event_base *spawn_base;
static const char *spawn_worker_path;

void
spawn_init(struct event_base *base, const char *worker_path)
{
	spawn_base = base;
	spawn_worker_path = worker_path;
}

static void status_cb(evutil_socket_t fd, short what, void *arg);

/* Builds "key=value" arguments for the worker into BUF; returns argc. */
static int
build_argv(const struct worker *w, char **argv, char *buf, size_t buflen)
{
	const struct fn_conf *fc = w->w_conf;
	const struct fn_limits *l = &fc->limits;
	size_t off = 0;
	int argc = 0;

#define ARG(...) do {                                                        \
		int n_ = snprintf(buf + off, buflen - off, __VA_ARGS__);          \
		if (n_ < 0 || (size_t)n_ >= buflen - off || argc >= SPAWN_MAX_ARGS - 1) \
			return -1;                                                   \
		argv[argc++] = buf + off;                                            \
		off += (size_t)n_ + 1;                                               \
	} while (0)
	ARG("edgevisor-worker");
	ARG("name=%s", fc->name);
	ARG("library=%s", fc->library);
	ARG("index=%u", w->w_id);
	ARG("policy=%s", config_policy_name(fc->policy));
	ARG("request_timeout_ms=%u", l->request_timeout_ms);
	ARG("idle_timeout_ms=%u", l->idle_timeout_ms);
	ARG("max_header_bytes=%u", l->max_header_bytes);
	ARG("max_body_bytes=%u", l->max_body_bytes);
	/* Jitter (up to +10%) so a pool's workers do not all recycle at once. */
	ARG("max_requests=%u", l->max_requests ?
	    l->max_requests + (uint32_t)random() % (l->max_requests / 10 + 1) : 0);
	ARG("max_pending_tasks=%u", l->max_pending_tasks);
	ARG("task_threads=%u", l->task_threads);
	ARG("grace_ms=%u", l->beforeunload_grace_ms);
	ARG("drain_timeout_ms=%u", l->drain_timeout_ms);
	ARG("max_connections=%u", l->max_connections);
	ARG("memory_mb=%u", l->memory_mb);
	ARG("log_level=%d", log_level);
#undef ARG
	argv[argc] = NULL;
	return argc;
}

/* In the child: tell the supervisor why exec never happened, then die. */
static void __attribute__((noreturn))
child_fail(const char *what)
{
	struct wire_status st = { .version = WIRE_VERSION, .type = WIRE_ST_INIT_FAILED };

	snprintf(st.text, sizeof(st.text), "%s: %s", what, strerror(errno));
	(void)wire_send_status(WIRE_STATUS_FD, &st);
	_exit(127);
}

/* In the child, between fork and exec. Only async-signal-safe work and syscalls. */
static void __attribute__((noreturn))
child_exec(struct worker *w, pid_t parent, int ctl, int status, int board, char **argv)
{
	const struct fn_conf *fc = w->w_conf;
	struct rlimit rl;
	sigset_t none;
	int hi[3], null;

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
	/* The worker must not outlive us; SIGTERM lets it run its beforeunload hooks. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* The supervisor died before the line above: nobody would ever signal us. */
	if (getppid() != parent)
		_exit(0);
	/* Move the three channels above any target number, then onto 3, 4, 5. */
	hi[0] = fcntl(ctl, F_DUPFD_CLOEXEC, 10);
	hi[1] = fcntl(status, F_DUPFD_CLOEXEC, 10);
	hi[2] = fcntl(board, F_DUPFD_CLOEXEC, 10);
	if (hi[0] < 0 || hi[1] < 0 || hi[2] < 0 ||
	    dup2(hi[0], WIRE_CTL_FD) < 0 || dup2(hi[1], WIRE_STATUS_FD) < 0 ||
	    dup2(hi[2], WIRE_BOARD_FD) < 0)
		_exit(126);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0)
		dup2(null, STDIN_FILENO);
	/* Only its own channels: no listener, no other worker's socket, no admin fd. */
	if (close_range(WIRE_BOARD_FD + 1, ~0U, 0) < 0) {
		for (int fd = WIRE_BOARD_FD + 1; fd < 65536; fd++)
			close(fd);
	}
	if (w->w_cgroup[0] && cg_worker_attach(fc->name, w->w_id, getpid()) < 0)
		child_fail("cgroup attach");
	rl.rlim_cur = rl.rlim_max = 0;
	setrlimit(RLIMIT_CORE, &rl);
	rl.rlim_cur = rl.rlim_max = fc->limits.nofile;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		child_fail("setrlimit nofile");
	if (fc->uid != (uid_t)-1) {
		if (setgroups(1, &fc->gid) < 0 || setresgid(fc->gid, fc->gid, fc->gid) < 0 ||
		    setresuid(fc->uid, fc->uid, fc->uid) < 0)
			child_fail("drop privileges");
		/* setuid clears the parent-death signal: set it again. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail("no_new_privs");
	execv(spawn_worker_path, argv);
	child_fail("exec worker");
}

int
spawn_worker(struct worker *w)
{
	const struct fn_conf *fc = w->w_conf;
	char *argv[SPAWN_MAX_ARGS], argbuf[8192];
	int sp[2] = { -1, -1 }, pp[2] = { -1, -1 }, bfd = -1, sndbuf = 1 << 20;
	pid_t pid, parent;
	int saved;

	if (build_argv(w, argv, argbuf, sizeof(argbuf)) < 0) {
		errno = E2BIG;
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		goto fail;
	if (pipe2(pp, O_CLOEXEC) < 0)
		goto fail;
	w->w_board_slots = fc->limits.max_pending_tasks;
	bfd = board_create(w->w_board_slots, &w->w_board);
	if (bfd < 0)
		goto fail;
	/* A deep queue of hand-offs must not block on a busy worker. */
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(pp[0], F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	w->w_cgroup[0] = '\0';
	if (cg_enabled() &&
	    cg_worker_create(fc, w->w_id, w->w_cgroup, sizeof(w->w_cgroup)) < 0) {
		log_warn("cgroup_worker_failed", "fn=%s wid=%u err=%s", fc->name, w->w_id,
		    log_qv(strerror(errno)));
		w->w_cgroup[0] = '\0';
	}
	parent = getpid();
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0)
		child_exec(w, parent, sp[1], pp[1], bfd, argv);

	/* Parent: the child's ends and the board fd are its own now. */
	close(sp[1]);
	close(pp[1]);
	close(bfd);
	w->w_pid = pid;
	w->w_ctl = sp[0];
	w->w_status = pp[0];
	w->w_spawned_ms = clock_ms();
	w->w_status_ev = event_new(spawn_base, w->w_status, EV_READ | EV_PERSIST, status_cb, w);
	if (w->w_status_ev == NULL || event_add(w->w_status_ev, NULL) < 0)
		log_error("status_event_failed", "fn=%s wid=%u pid=%d", fc->name, w->w_id, (int)pid);
	log_info("worker_state", "fn=%s wid=%u gen=%u pid=%d from=none to=starting reason=spawned pending=0",
	    fc->name, w->w_id, w->w_gen, (int)pid);
	worker_started(w);
	return 0;
fail:
	saved = errno;
	for (int i = 0; i < 2; i++) {
		if (sp[i] >= 0)
			close(sp[i]);
		if (pp[i] >= 0)
			close(pp[i]);
	}
	if (bfd >= 0)
		close(bfd);
	board_unmap(w->w_board, w->w_board_slots);
	w->w_board = NULL;
	if (w->w_cgroup[0])
		cg_worker_remove(fc->name, w->w_id);
	errno = saved;
	return -1;
}

/* Status records from a worker; EOF means it is gone (SIGCHLD does the rest). */
static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wire_status st;
	int r;

	for (;;) {
		r = wire_recv_status(fd, &st);
		if (r == 1) {
			worker_on_status(w, &st);
			continue;
		}
		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			if (r < 0)
				log_warn("status_bad", "fn=%s wid=%u pid=%d err=%s",
				    w->w_conf->name, w->w_id, (int)w->w_pid, log_qv(strerror(errno)));
			event_del(w->w_status_ev);
		}
		return;
	}
}

/*
 * Loads FC's library in a throw-away worker ("check=1": dlopen, entry point, API
 * version; init is not called), as the tenant's uid with no_new_privs like a real
 * worker, so a missing or wrong .so is an error of the config (-t, start, reload)
 * rather than a respawn loop. Returns 0, or -1 with the reason in ERR.
 */
int
spawn_check_library(const struct fn_conf *fc, const char *worker_path, char *err,
    size_t errlen)
{
	char name[80], library[PATH_MAX + 16], out[512];
	char *argv[] = { "edgevisor-worker", "check=1", name, library, NULL };
	int pp[2], status, null;
	size_t len = 0;
	ssize_t n;
	uint64_t deadline;
	pid_t pid;

	if (snprintf(name, sizeof(name), "name=%s", fc->name) >= (int)sizeof(name) ||
	    snprintf(library, sizeof(library), "library=%s", fc->library) >= (int)sizeof(library)) {
		snprintf(err, errlen, "function %s: library path too long", fc->name);
		return -1;
	}
	if (access(fc->library, F_OK) < 0) {
		snprintf(err, errlen, "function %s: library %s: %s", fc->name, fc->library,
		    strerror(errno));
		return -1;
	}
	if (pipe2(pp, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "function %s: check: pipe: %s", fc->name, strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "function %s: check: fork: %s", fc->name, strerror(errno));
		close(pp[0]);
		close(pp[1]);
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(pp[1], STDOUT_FILENO) < 0 ||
		    dup2(pp[1], STDERR_FILENO) < 0)
			_exit(126);
		close_range(3, ~0U, 0);
		if (fc->uid != (uid_t)-1 &&
		    (setgroups(1, &fc->gid) < 0 || setresgid(fc->gid, fc->gid, fc->gid) < 0 ||
		    setresuid(fc->uid, fc->uid, fc->uid) < 0)) {
			printf("cannot drop privileges: %s\n", strerror(errno));
			_exit(1);
		}
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		execv(worker_path, argv);
		printf("exec %s: %s\n", worker_path, strerror(errno));
		_exit(1);
	}
	close(pp[1]);
	/* A constructor that hangs must not hang -t or a reload: 5 s, then SIGKILL. */
	deadline = clock_ms() + 5000;
	for (;;) {
		struct pollfd pfd = { .fd = pp[0], .events = POLLIN };
		uint64_t now = clock_ms();

		if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) == 0) {
			kill(pid, SIGKILL);
			snprintf(out, sizeof(out), "timed out loading it");
			len = strlen(out);
			break;
		}
		n = read(pp[0], out + len, sizeof(out) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(out) - 1) {
			/* It says more than a verdict: enough; do not wait on it below. */
			kill(pid, SIGKILL);
			break;
		}
	}
	close(pp[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	out[len] = '\0';
	/* The worker's own log lines may come first: its verdict is the last line. */
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == ' '))
		out[--len] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && strcmp(strrchr(out, '\n') ?
	    strrchr(out, '\n') + 1 : out, "ok") == 0)
		return 0;
	snprintf(err, errlen, "function %s: library %s: %s", fc->name, fc->library,
	    len ? (strrchr(out, '\n') ? strrchr(out, '\n') + 1 : out) : "check failed");
	return -1;
}
