/*
 * main.c - the worker process: one function, one event loop. It finds its channels
 * on fixed fds (wire.h), loads the function, reports ready, takes the connections
 * the supervisor hands over, and leaves in one of two ways only:
 *   retire (RETIRE message): no new work; when no connection and no task is left it
 *     reports DRAINED and exits 0;
 *   SIGTERM (the beforeunload signal): the hooks run with the reason the supervisor
 *     queued with the signal and the grace left, pending tasks are cut, exit.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/log.h"
#include "../common/wire.h"
#include "fetch.h"
#include "durable.h"
#include "sandbox.h"
#include "worker.h"
#include "ws.h"

struct edge_ctx wk;

static struct event *ctl_ev, *sig_ev;
static bool limit_sent[2];
static void *lib_handle;
/* WIRE_CFG_CHECK_ONLY: only load the library and check its entry point, then exit
 * (the supervisor's -t, start and reload run this, as the tenant, before trusting it). */
static bool check_only;
/* The config record as received: wk.conf's strings point into it. */
static struct wire_config cfg;

/*
 * The first message on WIRE_CTL_FD is our whole configuration (wire.h). Anything
 * but a valid record refuses the start: nothing here has a default to fall back on.
 */
static int
read_config(struct wk_conf *c)
{
	static const enum wk_policy policy[WIRE_POLICY_MAX] = {
		[WIRE_POLICY_PER_WORKER] = WK_PER_WORKER,
		[WIRE_POLICY_PER_REQUEST] = WK_PER_REQUEST,
		[WIRE_POLICY_ONESHOT] = WK_ONESHOT,
	};
	int r = wire_recv_config(WIRE_CTL_FD, &cfg);

	if (r <= 0) {
		if (r == 0)
			errno = EPIPE;
		return -1;
	}
	/* wire_recv_config checked every field: the policy is one we know. */
	*c = (struct wk_conf){
		.name = cfg.name, .library = cfg.library, .index = cfg.worker_id,
		.policy = policy[cfg.policy], .request_timeout_ms = cfg.request_timeout_ms,
		.idle_timeout_ms = cfg.idle_timeout_ms, .max_header_bytes = cfg.max_header_bytes,
		.max_body_bytes = cfg.max_body_bytes, .max_requests = cfg.max_requests,
		.max_pending_tasks = cfg.max_pending_tasks, .task_threads = cfg.task_threads,
		.grace_ms = cfg.grace_ms,
		.fetch_max_concurrent = cfg.fetch_max_concurrent,
		.fetch_max_queued = cfg.fetch_max_queued,
		.fetch_max_response_bytes = cfg.fetch_max_response_bytes,
		.ws_max_message_bytes = cfg.ws_max_message_bytes,
		.ws_max_buffer_bytes = cfg.ws_max_buffer_bytes,
	};
	check_only = (cfg.flags & WIRE_CFG_CHECK_ONLY) != 0;
	log_level = (int)cfg.log_level;
	return 0;
}

static void
send_status(struct wire_status *st)
{
	st->version = WIRE_VERSION;
	if (wire_send_status(WIRE_STATUS_FD, st) < 0)
		log_warn("status_write_failed", "type=%u err=%s", st->type, log_qv(strerror(errno)));
}

static void __attribute__((noreturn)) check_leave(int code);

static void __attribute__((noreturn))
init_failed(const char *fmt, const char *detail)
{
	struct wire_status st = { .type = WIRE_ST_INIT_FAILED };

	snprintf(st.text, sizeof(st.text), fmt, detail);
	if (check_only) {
		/* No status channel in check mode: the supervisor reads our stdout. */
		printf("%s\n", st.text);
		fflush(stdout);
		check_leave(1);
	}
	log_error("init_failed", "msg=%s", log_qv(st.text));
	send_status(&st);
	_exit(3);
}

void
worker_report_limit(uint32_t reason, bool hard)
{
	struct wire_status st = { .type = WIRE_ST_LIMIT, .reason = reason, .hard = hard };

	if (limit_sent[hard])
		return;
	limit_sent[hard] = true;
	send_status(&st);
}

/*
 * Whatever the tenant forked dies with the worker: every other process of our worker
 * cgroup. The supervisor does the same after our exit, but not if it was SIGKILLed
 * (we got here through the parent-death signal): then no orphan must stay.
 */
static void
kill_strays(void)
{
	FILE *f;
	int pid;

	if (cfg.cgroup_procs[0] == '\0' || (f = fopen(cfg.cgroup_procs, "re")) == NULL)
		return;
	while (fscanf(f, "%d", &pid) == 1)
		if (pid > 0 && pid != getpid())
			kill(pid, SIGKILL);
	fclose(f);
}

/*
 * Check mode: the supervisor made us a child subreaper, so whatever a constructor
 * forked and orphaned (a double fork, setsid or not) is our child now. Kill every
 * child until none is left; each one killed hands its own children to us.
 */
static void
kill_descendants(void)
{
	for (int round = 0; round < 64; round++) {
		char path[64];
		pid_t killed[256];
		unsigned n = 0;
		struct dirent *de;
		DIR *d;

		if ((d = opendir("/proc/self/task")) == NULL)
			return;
		while ((de = readdir(d)) != NULL && n < 256) {
			FILE *f;
			int pid;

			if (de->d_name[0] == '.' ||
			    snprintf(path, sizeof(path), "/proc/self/task/%s/children", de->d_name) >=
			    (int)sizeof(path) || (f = fopen(path, "re")) == NULL)
				continue;
			while (n < 256 && fscanf(f, "%d", &pid) == 1)
				if (pid > 0 && kill(pid, SIGKILL) == 0)
					killed[n++] = pid;
			fclose(f);
		}
		closedir(d);
		if (n == 0)
			return;
		/* Reap exactly those: a dead child's orphans come to us once it is gone,
		 * and the next round kills them. */
		for (unsigned i = 0; i < n; i++)
			while (waitpid(killed[i], NULL, 0) < 0 && errno == EINTR)
				;
	}
}

/* Check mode's only way out: the verdict is written; nothing we loaded stays. */
static void __attribute__((noreturn))
check_leave(int code)
{
	kill_strays();
	kill_descendants();
	_exit(code);
}

static void __attribute__((noreturn))
leave(int code)
{
	kill_strays();
	/* _exit: task threads may still run function code; no atexit or destructors. */
	_exit(code);
}

void
worker_check_drained(void)
{
	struct wire_status st = { .type = WIRE_ST_DRAINED };
	struct board *b = wk.board;

	if (!wk.retiring || wk.terminating || http_conn_count() > 0 || tasks_pending() > 0 ||
	    durable_busy())
		return;
	st.counts.requests = BOARD_LOAD(&b->requests);
	st.counts.tasks_started = BOARD_LOAD(&b->tasks_started);
	st.counts.tasks_completed = BOARD_LOAD(&b->tasks_completed);
	st.counts.tasks_failed = BOARD_LOAD(&b->tasks_failed);
	st.counts.tasks_pending = BOARD_LOAD(&b->tasks_pending);
	log_info("drained", "requests=%llu tasks_completed=%llu tasks_failed=%llu",
	    (unsigned long long)st.counts.requests, (unsigned long long)st.counts.tasks_completed,
	    (unsigned long long)st.counts.tasks_failed);
	/* Results still queued reach the journal before we go. */
	durable_stop(false);
	send_status(&st);
	leave(0);
}

static void
retire(uint32_t reason, uint32_t deadline_ms)
{
	if (wk.retiring)
		return;
	wk.retiring = true;
	durable_retire();
	/* Not on a plain per_request retirement: the worker is not being cut short. */
	if (reason != WIRE_REASON_NONE)
		hooks_fire_beforeunload(reason, deadline_ms);
	http_retire();
	worker_check_drained();
}

static void __attribute__((noreturn))
terminate(uint32_t reason)
{
	wk.terminating = true;
	/* A hook that hangs must not keep us past the grace: the kernel ends it. */
	alarm(wk.conf.grace_ms / 1000 + 1);
	hooks_fire_beforeunload(reason, wk.conf.grace_ms);
	tasks_cut_all();
	durable_stop(true);
	http_shutdown();
	log_info("terminated", "reason=%s pending=%llu", wire_reason_name(reason),
	    (unsigned long long)tasks_pending());
	leave(0);
}

/*
 * A hand-off that arrived without its sockets: out of fds (the tenant leaked them,
 * RLIMIT_NOFILE reached: the kernel truncates SCM_RIGHTS) or a malformed message.
 * Those connections are gone: count them closed so the supervisor's load figure
 * stays true, and when it was the fd limit ask to be replaced - this worker can take
 * no more connections.
 */
/* Our open fds, or -1 when not even /proc/self/fd can be opened (EMFILE). */
static int
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the directory's own fd */
}

static void
handoff_lost(const struct wire_ctl *msg)
{
	static bool said;
	struct rlimit rl;
	bool conn = msg->version == WIRE_VERSION && msg->type == WIRE_CTL_CONN &&
	    msg->nfds <= WIRE_MAX_FDS;
	int nfd = open_fds();

	if (!conn) {
		log_error("ctl_bad_message", "msg=\"dropped a malformed control message\"");
		return;
	}
	BOARD_ADD(&wk.board->conns_closed, msg->nfds);
	/* The kernel installs what fits under RLIMIT_NOFILE and truncates the rest. */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
	    (nfd >= 0 && (rlim_t)nfd + msg->nfds <= rl.rlim_cur)) {
		log_error("handoff_lost", "conns=%u reason=truncated open_fds=%d", msg->nfds, nfd);
		return;
	}
	log_error("handoff_lost", "conns=%u reason=nofile open_fds=%d nofile=%llu msg=\"out of file descriptors: connections dropped\"",
	    msg->nfds, nfd, (unsigned long long)rl.rlim_cur);
	if (!said) {
		said = true;
		worker_report_limit(WIRE_REASON_EARLY_DROP, false);
	}
}

/* One control record, RES as wire_recv_batch says; its NFDS fds in FDS are ours. */
static void
ctl_take(union wire_msg *m, int *fds, unsigned nfds, int res)
{
	if (res < 0) {
		/* A routed record lost counts its connections (NFDS: as many as it meant to
		 * bring), like a CONN of that many: the supervisor counted each as ours. */
		if (m->h.version == WIRE_VERSION && m->h.type == WIRE_CTL_ROUTED) {
			struct wire_ctl lost = {
				.version = WIRE_VERSION, .type = WIRE_CTL_CONN, .nfds = nfds > 0 ? nfds : 1,
			};
			handoff_lost(&lost);
		} else
			handoff_lost(&m->ctl);
		return;
	}
	if (m->h.type == WIRE_CTL_CONN) {
		/* The fds are ours now; http_adopt owns (or closes) each. */
		for (unsigned i = 0; i < nfds; i++)
			http_adopt(fds[i]);
	} else if (m->h.type == WIRE_CTL_ROUTED) {
		/* A packed record: one fd per carry, in order (checked on receipt). */
		const struct wire_carry *c = &m->carry;

		for (unsigned i = 0; i < nfds && c != NULL; i++, c = wire_carry_next(c))
			http_adopt_routed(fds[i], c);
	} else if (m->h.type == WIRE_CTL_RETIRE) {
		retire(m->ctl.arg, m->ctl.deadline_ms);
	} else if (m->h.type == WIRE_CTL_ROUTES) {
		http_routes_epoch(m->ctl.arg);
	} else {
		/* MOVE goes the other way only: checked, and its fd closed. */
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		log_error("ctl_bad_message", "msg=\"dropped a malformed control message\"");
	}
}

static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	/* A carry is 64 KiB: static (untouched pages cost nothing), each batch handled
	 * before the next is read. */
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	unsigned nfds[WIRE_RECV_BATCH];
	int res[WIRE_RECV_BATCH];

	/* All that is queued in one recvmmsg (a routed connection a record): fewer than
	 * asked for means the queue is dry, so no read only to hear EAGAIN. */
	for (int round = 0; round < 64 / WIRE_RECV_BATCH; round++) {
		int r = wire_recv_batch(fd, m, fds, nfds, res, WIRE_RECV_BATCH);

		if (r > 0) {
			for (int i = 0; i < r; i++)
				ctl_take(&m[i], fds[i], nfds[i], res[i]);
			if (r < WIRE_RECV_BATCH)
				return;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF: the supervisor is gone; behave as if told to terminate. */
		log_warn("ctl_closed", "err=%s", log_qv(r < 0 ? strerror(errno) : "eof"));
		terminate(WIRE_REASON_TERMINATION);
	}
	/* 64 taken: the rest next turn (the event is persistent), after the sockets. */
}

static void
signal_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signalfd_siginfo si;
	uint32_t reason = WIRE_REASON_TERMINATION;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	/* The supervisor queues the reason with the signal; a plain kill means termination. */
	if (si.ssi_code == SI_QUEUE && (pid_t)si.ssi_pid == getppid() &&
	    (uint32_t)si.ssi_int < WIRE_REASON_MAX && si.ssi_int != WIRE_REASON_NONE)
		reason = (uint32_t)si.ssi_int;
	terminate(reason);
}

static void
load_function(void)
{
	const struct edge_function *fn;
	char *err;

	lib_handle = dlopen(wk.conf.library, RTLD_NOW | RTLD_LOCAL);
	if (lib_handle == NULL)
		init_failed("dlopen: %s", dlerror());
	dlerror();
	fn = dlsym(lib_handle, "edge_function_entry");
	err = dlerror();
	if (fn == NULL || err != NULL)
		init_failed("%s: no EDGE_FUNCTION() entry point", wk.conf.library);
	if (fn->api_version != EDGE_API_VERSION) {
		char v[64];
		snprintf(v, sizeof(v), "%u, worker has %u", fn->api_version, EDGE_API_VERSION);
		init_failed("API version mismatch: function built for %s", v);
	}
	if (fn->handle == NULL)
		init_failed("%s: no request handler", wk.conf.library);
	wk.fn = fn;
	if (check_only) {
		printf("ok\n");
		fflush(stdout);
		check_leave(0);
	}
	if (fn->init != NULL && fn->init(&wk) != 0)
		init_failed("%s: init returned an error", wk.conf.name);
}

int
main(int argc, char **argv)
{
	struct wire_status ready = { .type = WIRE_ST_READY };
	char why[160];
	sigset_t set;
	int sfd;

	log_set_proc("worker");
	if (read_config(&wk.conf) < 0) {
		struct wire_status st = { .type = WIRE_ST_INIT_FAILED };

		/* Started by hand, or by a supervisor speaking another version. */
		snprintf(st.text, sizeof(st.text), "config message: %s", strerror(errno));
		log_error("init_failed", "msg=\"%s\"", st.text);
		send_status(&st);
		return 2;
	}
	log_set_proc("worker[%s/%u]", wk.conf.name, wk.conf.index);
	if (check_only) {
		/* The check runs the library's constructors: tenant code, same filter. */
		if (sandbox_install(&cfg, NULL, why, sizeof(why)) < 0)
			init_failed("seccomp: %s", why);
		load_function();
	}
	/* Ctrl-C in a terminal reaches the whole group: only the supervisor decides. */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/* Blocked before any thread starts, so only the loop's signalfd sees SIGTERM. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (board_map(WIRE_BOARD_FD, &wk.board) < 0)
		init_failed("scoreboard: %s", strerror(errno));
	close(WIRE_BOARD_FD);
	/* Before any thread and before the library: everything after runs filtered,
	 * our own loop, threads and channels included. */
	if (sandbox_install(&cfg, wk.board, why, sizeof(why)) < 0)
		init_failed("seccomp: %s", why);
	wk.base = event_base_new();
	if (wk.base == NULL || sfd < 0)
		init_failed("event loop: %s", strerror(errno));
	TAILQ_INIT(&wk.unload_hooks);
	TAILQ_INIT(&wk.error_hooks);
	hooks_init(&wk);
	if (tasks_init(&wk) < 0 || http_init(&wk) < 0 || sandbox_watch(wk.base) < 0)
		init_failed("runtime: %s", strerror(errno));
	/* The operator's caps, before the function's init can fetch or accept. */
	fetch_set_limits(&(struct fetch_limits){
	    .max_inflight = wk.conf.fetch_max_concurrent,
	    .max_queued = wk.conf.fetch_max_queued,
	    .max_body = wk.conf.fetch_max_response_bytes,
	});
	ws_set_limits(wk.conf.ws_max_message_bytes, wk.conf.ws_max_buffer_bytes);
	if (durable_init(&wk, &cfg.durable) < 0)
		init_failed("durable tasks: %s", "the journal cannot be opened (see the log)");
	sig_ev = event_new(wk.base, sfd, EV_READ | EV_PERSIST, signal_cb, NULL);
	ctl_ev = event_new(wk.base, WIRE_CTL_FD, EV_READ | EV_PERSIST, ctl_cb, NULL);
	if (sig_ev == NULL || ctl_ev == NULL || event_add(sig_ev, NULL) < 0 ||
	    event_add(ctl_ev, NULL) < 0)
		init_failed("event loop: %s", strerror(errno));
	load_function();
	durable_start();
	log_debug("ready", "library=%s", log_qv(wk.conf.library));
	send_status(&ready);
	event_base_dispatch(wk.base);
	log_error("loop_exit", "msg=\"event loop ended unexpectedly\"");
	leave(1);
}
