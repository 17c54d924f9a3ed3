/*
 * check.c - the library check as a child process driven by events (check.h).
 *
 * One check is: a config record (WIRE_CFG_CHECK_ONLY) queued on a socketpair, a
 * pipe for the child's stdout and stderr, child_spawn (child.c, as for a
 * worker), then three events on the caller's base: the pipe (the verdict), the
 * child's exit (a pidfd; main.c's SIGCHLD loop may reap it first and tell us
 * through lib_check_on_exit) and the timeout. The callback fires once the exit
 * status is known: the worker writes its verdict before it exits, so by then all
 * of it is in the pipe, whether or not a stray still holds the write end. On a
 * timeout it fires at once; the struct stays until the child is reaped.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/list.h"
#include "../common/log.h"
#include "cgroup.h"
#include "check.h"
#include "child.h"

#define CHECK_OUT_MAX	512	/* more than a verdict: the check is stopped */
#define CHECK_ERR_MAX	(WIRE_NAME_LEN + WIRE_PATH_LEN + CHECK_OUT_MAX + 64)
#define CHECK_POLL_MS	20	/* reaping without a pidfd: waitpid(WNOHANG) this often */
#define CHECK_REAP_MS	2000	/* sync: how long a killed check may take to be reaped */
#define CHECK_TREE_MAX	1024	/* processes below one check that a kill finds */

struct lib_check {
	TAILQ_ENTRY(lib_check) c_entry;
	struct event_base *c_base;  /* NULL once detached (lib_check_all_sync gave up) */
	lib_check_cb c_cb;
	void *c_arg;
	char c_fn[WIRE_NAME_LEN];
	char c_lib[WIRE_PATH_LEN];
	pid_t c_pid;                /* 0: never started (the failure is in c_err);
	                             * negative once reaped */
	int c_out;                  /* read end of the child's stdout/stderr */
	int c_pidfd;                /* -1: reaped by polling instead */
	struct event *c_out_ev;
	struct event *c_exit_ev;
	struct event *c_timer;      /* the timeout; or the deferred early failure */
	uint32_t c_timeout_ms;
	uint32_t c_cg_id;
	bool c_cg;                  /* it runs in <base>/<fn>/check-<c_cg_id> */
	bool c_done;                /* the callback ran, or will never run (cancelled) */
	bool c_timed_out;
	size_t c_len;
	char c_buf[CHECK_OUT_MAX];
	char c_err[CHECK_ERR_MAX];
};

static TAILQ_HEAD(, lib_check) checks = TAILQ_HEAD_INITIALIZER(checks);
static uint32_t next_cg_id;

static void check_finish(struct lib_check *c, int status);

/* Adds the children of every thread of PID to TREE (stopping each new one). */
static void
tree_add_children(pid_t pid, pid_t *tree, unsigned *n)
{
	char path[64], buf[4096];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL && *n < CHECK_TREE_MAX) {
		char *p, *end;
		int fd;
		ssize_t len;

		if (de->d_name[0] == '.' || snprintf(path, sizeof(path), "/proc/%d/task/%s/children",
		    (int)pid, de->d_name) >= (int)sizeof(path) ||
		    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[len > 0 ? len : 0] = '\0';
		for (p = buf; *n < CHECK_TREE_MAX; p = end) {
			long kid = strtol(p, &end, 10);
			unsigned i;

			if (end == p)
				break;
			for (i = 0; i < *n && tree[i] != (pid_t)kid; i++)
				;
			if (kid <= 0 || i < *n)
				continue;
			/* Stopped before its own children are read: it forks no more. */
			(void)kill((pid_t)kid, SIGSTOP);
			tree[(*n)++] = (pid_t)kid;
		}
	}
	closedir(d);
}

/*
 * Every process below the live check ROOT, killed. It is a child subreaper, so an
 * orphan (a double fork, setsid included) is reparented into its tree instead of
 * escaping to init: this is what bounds a timed-out check's strays when there is
 * no cgroup to kill. Walked again until a pass finds nothing new (a process that
 * exited mid-walk hands its children to ROOT).
 */
static void
kill_tree(pid_t root)
{
	pid_t tree[CHECK_TREE_MAX];
	unsigned n = 1, before;

	tree[0] = root;
	(void)kill(root, SIGSTOP);
	for (int pass = 0; pass < 8; pass++) {
		before = n;
		for (unsigned i = 0; i < n; i++)
			tree_add_children(tree[i], tree, &n);
		if (n == before)
			break;
	}
	for (unsigned i = 0; i < n; i++)
		(void)kill(tree[i], SIGKILL);
}

/*
 * Kills the check and whatever it started: its cgroup, its process tree, its
 * process group. Until it is reaped its pid (and so its process group id) cannot
 * be reused; after, only the cgroup and a group that strays still hold are
 * signalled, never the pid itself.
 */
static void
check_kill(struct lib_check *c)
{
	if (c->c_cg)
		(void)cg_check_kill(c->c_fn, c->c_cg_id);
	if (c->c_pid > 0) {
		kill_tree(c->c_pid);
		(void)killpg(c->c_pid, SIGKILL);
	} else if (c->c_pid < 0) {
		(void)killpg(-c->c_pid, SIGKILL);
	}
}

static void
check_fire(struct lib_check *c, int ok, const char *err)
{
	if (c->c_done)
		return;
	c->c_done = true;
	c->c_cb(c, ok, err, c->c_arg);
}

/* Frees the events and fds; the struct stays listed (its pid may still be reaped). */
static void
check_detach(struct lib_check *c)
{
	if (c->c_out_ev != NULL)
		event_free(c->c_out_ev);
	if (c->c_exit_ev != NULL)
		event_free(c->c_exit_ev);
	if (c->c_timer != NULL)
		event_free(c->c_timer);
	c->c_out_ev = c->c_exit_ev = c->c_timer = NULL;
	if (c->c_out >= 0)
		close(c->c_out);
	if (c->c_pidfd >= 0)
		close(c->c_pidfd);
	c->c_out = c->c_pidfd = -1;
	c->c_base = NULL;
}

static void
check_free(struct lib_check *c)
{
	check_detach(c);
	if (c->c_cg)
		(void)cg_check_remove(c->c_fn, c->c_cg_id);
	TAILQ_REMOVE(&checks, c, c_entry);
	free(c);
}

/* Reads what the pipe holds now, never waiting. Returns 1 at EOF. */
static int
check_read(struct lib_check *c)
{
	for (;;) {
		char discard[256];
		ssize_t n;

		if (c->c_len < sizeof(c->c_buf) - 1)
			n = read(c->c_out, c->c_buf + c->c_len, sizeof(c->c_buf) - 1 - c->c_len);
		else
			n = read(c->c_out, discard, sizeof(discard));
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return 1;
		if (n < 0)
			return errno == EAGAIN ? 0 : 1;
		if (c->c_len < sizeof(c->c_buf) - 1) {
			c->c_len += (size_t)n;
			continue;
		}
		/* It says more than a verdict: enough. */
		check_kill(c);
		return 0;
	}
}

static void
out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lib_check *c = arg;

	if (check_read(c) == 1)
		event_del(c->c_out_ev);
}

static void
exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lib_check *c = arg;
	int status;
	pid_t r;

	/* Exited but not reaped: its group is still its own to kill. */
	if (c->c_pidfd >= 0)
		(void)killpg(c->c_pid, SIGKILL);
	do
		r = waitpid(c->c_pid, &status, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == c->c_pid) {
		check_finish(c, status);
		return;
	}
	if (r < 0 && errno == ECHILD) {
		/* Reaped by someone who did not tell lib_check_on_exit: status unknown. */
		check_finish(c, -1);
		return;
	}
	/* Not gone yet (a polling round, or a spurious wake-up): look again. */
	if (c->c_pidfd >= 0) {
		event_add(c->c_exit_ev, NULL);
	} else {
		struct timeval tv = { 0, CHECK_POLL_MS * 1000 };
		evtimer_add(c->c_exit_ev, &tv);
	}
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct lib_check *c = arg;

	if (c->c_pid == 0) {
		/* Failed before a child existed: report from the loop, as promised. */
		check_fire(c, 0, c->c_err);
		check_free(c);
		return;
	}
	c->c_timed_out = true;
	check_kill(c);
	log_debug("library_check_timeout", "fn=%s pid=%d timeout_ms=%u", c->c_fn, (int)c->c_pid,
	    c->c_timeout_ms);
	snprintf(c->c_err, sizeof(c->c_err), "function %s: library %s: timed out loading it after %u ms",
	    c->c_fn, c->c_lib, c->c_timeout_ms);
	check_fire(c, 0, c->c_err);
}

/* The child is reaped (STATUS; -1 unknown): kill what it left, judge, clean up. */
static void
check_finish(struct lib_check *c, int status)
{
	char *last;
	bool ok;

	/* Reaped: the pid is never signalled again; strays in its cgroup or
	 * process group are. */
	c->c_pid = -c->c_pid;
	check_kill(c);
	if (c->c_out >= 0)
		(void)check_read(c);
	if (!c->c_done) {
		c->c_buf[c->c_len] = '\0';
		/* The worker's own log lines may come first: its verdict is the last line. */
		while (c->c_len > 0 && (c->c_buf[c->c_len - 1] == '\n' ||
		    c->c_buf[c->c_len - 1] == ' '))
			c->c_buf[--c->c_len] = '\0';
		last = strrchr(c->c_buf, '\n');
		last = last != NULL ? last + 1 : c->c_buf;
		ok = strcmp(last, "ok") == 0 &&
		    (status == -1 || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
		if (ok) {
			check_fire(c, 1, "");
		} else {
			snprintf(c->c_err, sizeof(c->c_err), "function %s: library %s: %s", c->c_fn,
			    c->c_lib, *last ? last : "check failed");
			check_fire(c, 0, c->c_err);
		}
	}
	check_free(c);
}

pid_t
lib_check_pid(const struct lib_check *c)
{
	return c->c_pid > 0 ? c->c_pid : -c->c_pid;
}

int
lib_check_on_exit(pid_t pid, int status)
{
	struct lib_check *c;

	if (pid <= 0)
		return 0;
	TAILQ_FOREACH(c, &checks, c_entry) {
		if (c->c_pid != pid)
			continue;
		if (c->c_base == NULL)
			check_free(c);  /* detached: only its cgroup is left to remove */
		else
			check_finish(c, status);
		return 1;
	}
	return 0;
}

struct lib_check *
lib_check_start(struct event_base *base, const struct fn_conf *fc,
    const char *worker_path, uint32_t timeout_ms, lib_check_cb cb, void *arg)
{
	char *argv[] = { "edgevisor-worker", NULL };
	struct timeval tv = { timeout_ms / 1000, (suseconds_t)(timeout_ms % 1000) * 1000 };
	struct timeval now = { 0, 0 };
	static struct wire_config cfg;   /* 8 KiB: not on the stack */
	struct child_spec cs;
	struct lib_check *c;
	int pp[2] = { -1, -1 }, sp[2] = { -1, -1 }, saved;
	pid_t pid;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->c_base = base;
	c->c_cb = cb;
	c->c_arg = arg;
	c->c_out = c->c_pidfd = -1;
	c->c_timeout_ms = timeout_ms;
	snprintf(c->c_fn, sizeof(c->c_fn), "%s", fc->name);
	snprintf(c->c_lib, sizeof(c->c_lib), "%s", fc->library);
	TAILQ_INSERT_TAIL(&checks, c, c_entry);
	if ((c->c_timer = evtimer_new(base, timer_cb, c)) == NULL)
		goto fail;
	/* Refusals that need no child still reach the caller from the loop. */
	if (access(fc->library, F_OK) < 0 || child_config(fc, 0, &cfg) < 0) {
		snprintf(c->c_err, sizeof(c->c_err), "function %s: library %s: %s", fc->name,
		    fc->library, errno == ENAMETOOLONG ? "path too long" : strerror(errno));
		if (evtimer_add(c->c_timer, &now) < 0)
			goto fail;
		return c;
	}
	cfg.flags |= WIRE_CFG_CHECK_ONLY;
	if (cg_enabled()) {
		c->c_cg_id = ++next_cg_id;
		if (cg_check_create(fc, c->c_cg_id) == 0 &&
		    cg_check_procs(fc->name, c->c_cg_id, cfg.cgroup_procs,
		    sizeof(cfg.cgroup_procs)) == 0) {
			c->c_cg = true;
		} else {
			log_warn("cgroup_check_failed", "fn=%s id=%u err=%s", fc->name,
			    c->c_cg_id, log_qv(strerror(errno)));
			(void)cg_check_remove(fc->name, c->c_cg_id);
			cfg.cgroup_procs[0] = '\0';
		}
	}
	/* The config is queued before the child starts: the first message the check reads. */
	if (pipe2(pp, O_CLOEXEC) < 0 || fcntl(pp[0], F_SETFL, O_NONBLOCK) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
	    wire_send_config(sp[0], &cfg) < 0)
		goto fail;
	cs = (struct child_spec){
		.fc = fc, .parent = getpid(), .fds = { sp[1], -1, -1 }, .out = pp[1],
		.attach = c->c_cg ? cg_check_attach : NULL, .cg_id = c->c_cg_id,
		.pdeathsig = SIGKILL, .own_pgroup = true, .subreaper = true,
		.path = worker_path, .argv = argv,
	};
	if ((pid = child_spawn(&cs)) < 0)
		goto fail;
	/* Parent: its ends are the child's now; ours is the pipe's read end. */
	/* A forked child may not have made its group yet (a clone'd one has exec'd). */
	(void)setpgid(pid, pid);
	c->c_pid = pid;
	c->c_out = pp[0];
	pp[0] = -1;
	close(pp[1]);
	close(sp[0]);
	close(sp[1]);
	pp[1] = sp[0] = sp[1] = -1;
	c->c_pidfd = pidfd_open(pid, 0);
	c->c_out_ev = event_new(base, c->c_out, EV_READ | EV_PERSIST, out_cb, c);
	c->c_exit_ev = c->c_pidfd >= 0 ? event_new(base, c->c_pidfd, EV_READ, exit_cb, c) :
	    evtimer_new(base, exit_cb, c);
	if (c->c_out_ev == NULL || c->c_exit_ev == NULL || event_add(c->c_out_ev, NULL) < 0 ||
	    evtimer_add(c->c_timer, &tv) < 0)
		goto fail_child;
	if (c->c_pidfd >= 0) {
		if (event_add(c->c_exit_ev, NULL) < 0)
			goto fail_child;
	} else {
		struct timeval poll_tv = { 0, CHECK_POLL_MS * 1000 };
		if (evtimer_add(c->c_exit_ev, &poll_tv) < 0)
			goto fail_child;
	}
	log_debug("library_check", "fn=%s pid=%d cgroup=%s", c->c_fn, (int)pid,
	    c->c_cg ? "yes" : "no");
	return c;

fail_child:
	/* A child we cannot watch: kill it. It is reaped now if already gone, else by
	 * the supervisor's SIGCHLD loop (an unknown pid to it): never waited for here. */
	saved = errno;
	check_kill(c);
	(void)waitpid(pid, NULL, WNOHANG);
	c->c_pid = 0;
	errno = saved;
fail:
	saved = errno;
	for (int i = 0; i < 2; i++) {
		if (pp[i] >= 0)
			close(pp[i]);
		if (sp[i] >= 0)
			close(sp[i]);
	}
	check_free(c);
	errno = saved;
	return NULL;
}

void
lib_check_cancel(struct lib_check *c)
{
	if (c == NULL)
		return;
	c->c_done = true;
	if (c->c_pid == 0) {
		check_free(c);
		return;
	}
	/* Reaped later, by its exit event or lib_check_on_exit, then freed. */
	check_kill(c);
}

/* ---- synchronous runs: -t ---- */

struct sync_run {
	const struct fn_conf **fcs;
	size_t nfcs;
	size_t next;            /* the next function to start */
	size_t done;            /* callbacks that ran */
	unsigned running;
	struct event_base *base;
	const char *worker_path;
	uint32_t timeout_ms;
	int *ok;                /* per function: 1, 0, or -1 not yet known */
	char **errs;
};

static void sync_start_more(struct sync_run *r, unsigned n);

static void
sync_cb(struct lib_check *c, int ok, const char *err, void *arg)
{
	struct sync_run *r = arg;
	size_t i;

	for (i = 0; i < r->nfcs; i++)
		if (r->ok[i] == -1 && strcmp(r->fcs[i]->name, c->c_fn) == 0)
			break;
	if (i < r->nfcs) {
		r->ok[i] = ok;
		if (!ok)
			r->errs[i] = strdup(err);
	}
	r->done++;
	r->running--;
	sync_start_more(r, 1);
}

static void
sync_start_more(struct sync_run *r, unsigned n)
{
	while (n > 0 && r->next < r->nfcs) {
		size_t i = r->next++;

		if (lib_check_start(r->base, r->fcs[i], r->worker_path, r->timeout_ms,
		    sync_cb, r) == NULL) {
			char msg[WIRE_NAME_LEN + 64];

			snprintf(msg, sizeof(msg), "function %s: check: %s", r->fcs[i]->name,
			    strerror(errno));
			r->ok[i] = 0;
			r->errs[i] = strdup(msg);
			r->done++;
			continue;
		}
		r->running++;
		n--;
	}
}

static bool
sync_lingering(struct event_base *base)
{
	struct lib_check *c;

	TAILQ_FOREACH(c, &checks, c_entry)
		if (c->c_base == base)
			return true;
	return false;
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the checks of FCS, at most N at once, on a private base. */
static int
sync_checks(const struct fn_conf **fcs, size_t nfcs, const char *worker_path, unsigned n,
    uint32_t timeout_ms, char *err, size_t errlen)
{
	struct sync_run r = {
		.fcs = fcs, .nfcs = nfcs, .worker_path = worker_path,
		.timeout_ms = timeout_ms ? timeout_ms : LIB_CHECK_TIMEOUT_MS,
	};
	struct event *wake = NULL;
	struct lib_check *c, *tmp;
	uint64_t linger_until = 0;
	int rc = -1;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	r.ok = calloc(nfcs + 1, sizeof(*r.ok));
	r.errs = calloc(nfcs + 1, sizeof(*r.errs));
	if (r.ok == NULL || r.errs == NULL || (r.base = event_base_new()) == NULL ||
	    (wake = evtimer_new(r.base, wake_cb, NULL)) == NULL) {
		snprintf(err, errlen, "library check: %s", strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < nfcs; i++)
		r.ok[i] = -1;
	sync_start_more(&r, n > 0 ? n : 1);
	for (;;) {
		if (r.done == nfcs) {
			/* Verdicts are in; a timed-out check may still wait to be reaped. */
			if (!sync_lingering(r.base))
				break;
			if (linger_until == 0)
				linger_until = clock_ms() + CHECK_REAP_MS;
			if (clock_ms() >= linger_until)
				break;
			struct timeval tv = { 0, 100 * 1000 };
			evtimer_add(wake, &tv);
		}
		if (event_base_loop(r.base, EVLOOP_ONCE) < 0)
			break;
	}
	/* Killed but not reaped in time: let go of the private base, keep the pid
	 * known (lib_check_on_exit frees it if main.c reaps it later). */
	TAILQ_FOREACH_SAFE(c, &checks, c_entry, tmp) {
		if (c->c_base != r.base)
			continue;
		log_warn("library_check_unreaped", "fn=%s pid=%d", c->c_fn, (int)c->c_pid);
		c->c_done = true;
		check_kill(c);
		check_detach(c);
	}
	rc = 0;
	for (size_t i = 0; i < nfcs; i++) {
		if (r.ok[i] == 1)
			continue;
		snprintf(err, errlen, "%s", r.errs[i] != NULL ? r.errs[i] :
		    "library check did not finish");
		rc = -1;
		break;
	}
out:
	if (wake != NULL)
		event_free(wake);
	if (r.base != NULL)
		event_base_free(r.base);
	for (size_t i = 0; r.errs != NULL && i < nfcs; i++)
		free(r.errs[i]);
	free(r.errs);
	free(r.ok);
	return rc;
}

int
lib_check_all_sync(const struct sv_conf *conf, const char *worker_path, unsigned n, char *err,
    size_t errlen)
{
	const struct fn_conf **fcs, *fc;
	size_t i = 0;
	int rc;

	if ((fcs = calloc(conf->nfunctions + 1, sizeof(*fcs))) == NULL) {
		snprintf(err, errlen, "library check: %s", strerror(errno));
		return -1;
	}
	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (i < conf->nfunctions)
			fcs[i++] = fc;
	rc = sync_checks(fcs, i, worker_path, n, conf->check_timeout_ms, err, errlen);
	free(fcs);
	return rc;
}

