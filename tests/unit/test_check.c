/*
 * test_check.c - the library check (supervisor/check.h) against the real worker and
 * test functions of the build this binary belongs to (BUILD/tests/unit/test_check):
 * verdicts, the callback only ever from the loop and exactly once, the timeout,
 * cancel, the exit handed over by a SIGCHLD loop, and lib_check_all_sync's order
 * and concurrency. Cgroups stay off here (test_check.py runs them with cgroups).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "../../supervisor/check.h"
#include "../../supervisor/child.h"
#include "../../supervisor/config.h"
#include "clock.h"
#include "log.h"
#include "unit.h"
#include "wire.h"

static char build[2048], worker[2100];

struct result {
	int calls;
	int ok;
	char err[1024];
	bool in_start;      /* set around lib_check_start: a callback then is a bug */
	bool during_start;
};

static void
on_result(struct lib_check *c, int ok, const char *err, void *arg)
{
	struct result *r = arg;

	r->calls++;
	r->ok = ok;
	r->during_start |= r->in_start;
	snprintf(r->err, sizeof(r->err), "%s", err);
}

static void
lib_path(char *buf, size_t len, const char *dir, const char *name)
{
	snprintf(buf, len, "%s/%s/%s.so", build, dir, name);
}

static void
fn_init(struct fn_conf *fc, const char *name, char *library)
{
	memset(fc, 0, sizeof(*fc));
	fc->name = (char *)name;
	fc->library = library;
	fc->uid = (uid_t)-1;
	fc->gid = (gid_t)-1;
	fc->limits.request_timeout_ms = 30000;
	fc->limits.idle_timeout_ms = 60000;
	fc->limits.max_header_bytes = 16384;
	fc->limits.max_body_bytes = 1048576;
	fc->limits.max_pending_tasks = 16;
	fc->limits.task_threads = 1;
	fc->limits.fetch_max_concurrent = 256;
	fc->limits.fetch_max_queued = 4096;
	fc->limits.fetch_max_response_bytes = 1048576;
	fc->limits.ws_max_message_bytes = 1048576;
	fc->limits.ws_max_buffer_bytes = 1048576;
	fc->limits.nofile = 256;
}

/* Starts one check of LIBRARY on a fresh base, runs the base until nothing of the
 * check is left (its events go when it is freed), and returns the result. */
static void
run_one(const char *name, char *library, uint32_t timeout_ms, struct result *r, pid_t *pid)
{
	struct event_base *base = event_base_new();
	struct fn_conf fc;
	struct lib_check *c;

	memset(r, 0, sizeof(*r));
	fn_init(&fc, name, library);
	if (base == NULL)
		return;
	r->in_start = true;
	c = lib_check_start(base, &fc, worker, timeout_ms, on_result, r);
	r->in_start = false;
	if (c != NULL && pid != NULL)
		*pid = lib_check_pid(c);
	if (c != NULL)
		event_base_dispatch(base);
	event_base_free(base);
}

/* Processes with LIBRARY mapped: what a constructor forked keeps it mapped. */
static int
mapping(const char *library)
{
	char path[300], line[PATH_MAX + 128];
	struct dirent *de;
	int n = 0;
	DIR *d = opendir("/proc");

	while (d != NULL && (de = readdir(d)) != NULL) {
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/maps", de->d_name);
		if ((f = fopen(path, "re")) == NULL)
			continue;
		while (fgets(line, sizeof(line), f) != NULL)
			if (strstr(line, library) != NULL) {
				n++;
				break;
			}
		fclose(f);
	}
	if (d != NULL)
		closedir(d);
	return n;
}

static void
case_ok(void)
{
	char lib[PATH_MAX];
	struct result r;

	lib_path(lib, sizeof(lib), "examples", "hello");
	run_one("hello", lib, 2000, &r, NULL);
	UNIT_CHECKF(r.calls == 1 && r.ok == 1 && r.err[0] == '\0', "calls %d ok %d err %s",
	    r.calls, r.ok, r.err);
	UNIT_CHECK(!r.during_start);
out:
	;
}

static void
case_refusals(void)
{
	char lib[PATH_MAX], want[PATH_MAX + 128];
	struct result r;

	/* Missing: refused without a child, still from the loop. */
	snprintf(lib, sizeof(lib), "%s/examples/nonexistent.so", build);
	run_one("gone", lib, 2000, &r, NULL);
	snprintf(want, sizeof(want), "function gone: library %s: No such file or directory", lib);
	UNIT_CHECKF(r.calls == 1 && r.ok == 0 && strcmp(r.err, want) == 0, "calls %d err %s",
	    r.calls, r.err);
	UNIT_CHECK(!r.during_start);
	lib_path(lib, sizeof(lib), "tests/functions", "badapi");
	run_one("bad", lib, 2000, &r, NULL);
	snprintf(want, sizeof(want), "function bad: library %s: API version mismatch: "
	    "function built for 99, worker has 1", lib);
	UNIT_CHECKF(r.calls == 1 && r.ok == 0 && strcmp(r.err, want) == 0, "calls %d err %s",
	    r.calls, r.err);
out:
	;
}

/* A constructor that sleeps 3 s meets a 300 ms timeout: refused fast, process gone. */
static void
case_timeout(void)
{
	char lib[PATH_MAX], want[PATH_MAX + 128];
	struct result r;
	uint64_t t0 = clock_ms();
	pid_t pid = 0;

	lib_path(lib, sizeof(lib), "tests/functions", "ctor_sleep");
	run_one("sl", lib, 300, &r, &pid);
	snprintf(want, sizeof(want), "function sl: library %s: timed out loading it after 300 ms", lib);
	UNIT_CHECKF(r.calls == 1 && r.ok == 0 && strcmp(r.err, want) == 0, "calls %d err %s",
	    r.calls, r.err);
	UNIT_CHECKF(clock_ms() - t0 < 1500, "took %llu ms", (unsigned long long)(clock_ms() - t0));
	UNIT_CHECK(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH);
	UNIT_CHECK(mapping(lib) == 0);
out:
	;
}

/* Cancelled in flight: the callback never runs, the process is killed and reaped. */
static void
case_cancel(void)
{
	struct event_base *base = event_base_new();
	char lib[PATH_MAX];
	struct fn_conf fc;
	struct lib_check *c;
	struct result r = { 0 };
	uint64_t t0 = clock_ms();
	pid_t pid;

	UNIT_CHECK(base != NULL);
	lib_path(lib, sizeof(lib), "tests/functions", "ctor_sleep");
	fn_init(&fc, "sl", lib);
	UNIT_CHECK((c = lib_check_start(base, &fc, worker, 5000, on_result, &r)) != NULL);
	pid = lib_check_pid(c);
	UNIT_CHECK(pid > 0);
	lib_check_cancel(c);
	event_base_dispatch(base);
	UNIT_CHECKF(r.calls == 0, "callback ran %d times after cancel", r.calls);
	UNIT_CHECKF(clock_ms() - t0 < 1500, "took %llu ms", (unsigned long long)(clock_ms() - t0));
	UNIT_CHECK(kill(pid, 0) < 0 && errno == ESRCH);
	/* Cancelling a check that failed before it had a child frees it too. */
	snprintf(lib, sizeof(lib), "%s/examples/nonexistent.so", build);
	fn_init(&fc, "gone", lib);
	UNIT_CHECK((c = lib_check_start(base, &fc, worker, 5000, on_result, &r)) != NULL);
	lib_check_cancel(c);
	event_base_dispatch(base);
	UNIT_CHECK(r.calls == 0);
out:
	if (base != NULL)
		event_base_free(base);
}

/* main.c's SIGCHLD loop reaps the check first: the exit is handed over, the verdict
 * still comes once, from the loop. */
static void
case_reaped_elsewhere(void)
{
	struct event_base *base = event_base_new();
	char lib[PATH_MAX];
	struct fn_conf fc;
	struct lib_check *c;
	struct result r = { 0 };
	siginfo_t si;
	int status;
	pid_t pid;

	UNIT_CHECK(base != NULL);
	lib_path(lib, sizeof(lib), "examples", "hello");
	fn_init(&fc, "hello", lib);
	UNIT_CHECK((c = lib_check_start(base, &fc, worker, 2000, on_result, &r)) != NULL);
	pid = lib_check_pid(c);
	/* Wait for the exit without reaping, then reap it as main.c would. */
	memset(&si, 0, sizeof(si));
	UNIT_CHECK(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0);
	UNIT_CHECK(waitpid(pid, &status, 0) == pid);
	UNIT_CHECK(lib_check_on_exit(pid, status) == 1);
	UNIT_CHECK(r.calls == 1 && r.ok == 1);
	UNIT_CHECK(lib_check_on_exit(pid, status) == 0);   /* once */
	UNIT_CHECK(lib_check_on_exit(getpid(), 0) == 0);   /* not a check's */
	event_base_dispatch(base);
	UNIT_CHECK(r.calls == 1);
out:
	if (base != NULL)
		event_base_free(base);
}

/* With cgroups off, a constructor's double fork (setsid) leaves nothing: the check
 * is a subreaper and kills the orphans it gets back. */
static void
case_double_fork(void)
{
	char lib[PATH_MAX];
	struct result r;

	lib_path(lib, sizeof(lib), "tests/functions", "ctor_fork");
	run_one("fk", lib, 2000, &r, NULL);
	UNIT_CHECKF(r.calls == 1 && r.ok == 1, "calls %d err %s", r.calls, r.err);
	UNIT_CHECKF(mapping(lib) == 0, "%d processes still map %s", mapping(lib), lib);
out:
	;
}

/* With cgroups off, a check killed by its timeout still takes its daemon with it:
 * the orphan was reparented to the check (a subreaper) and the kill walks its tree. */
static void
case_timeout_double_fork(void)
{
	char lib[PATH_MAX];
	struct result r;

	lib_path(lib, sizeof(lib), "tests/functions", "ctor_fork");
	setenv("EDGEVISOR_TEST_CTOR_SLEEP", "1", 1);
	run_one("fk", lib, 500, &r, NULL);
	unsetenv("EDGEVISOR_TEST_CTOR_SLEEP");
	UNIT_CHECKF(r.calls == 1 && r.ok == 0 && strstr(r.err, "timed out") != NULL,
	    "calls %d err %s", r.calls, r.err);
	for (uint64_t end = clock_ms() + 2000; mapping(lib) > 0 && clock_ms() < end;)
		usleep(10000);
	UNIT_CHECKF(mapping(lib) == 0, "%d processes still map %s", mapping(lib), lib);
out:
	;
}

/* Every function, N at once; the first failure in function order wins, not the
 * first in time (the sleeper is refused 2 s after badapi). */
static void
case_all_sync(void)
{
	char dir[] = "/tmp/ev-check-XXXXXX", path[PATH_MAX + 16], err[2048];
	char sl[PATH_MAX], bad[PATH_MAX], hello[PATH_MAX], want[PATH_MAX + 128];
	struct sv_conf *conf = NULL;
	uint64_t t0;
	FILE *f;

	UNIT_CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/c.conf", dir);
	lib_path(sl, sizeof(sl), "tests/functions", "ctor_sleep");
	lib_path(bad, sizeof(bad), "tests/functions", "badapi");
	lib_path(hello, sizeof(hello), "examples", "hello");
	UNIT_CHECK((f = fopen(path, "w")) != NULL);
	fprintf(f, "{\"admin\": null, \"library_check_timeout_ms\": 1000, \"functions\": ["
	    "{\"name\": \"ok1\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:1\"]},"
	    "{\"name\": \"sl1\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:2\"]},"
	    "{\"name\": \"bad\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:3\"]},"
	    "{\"name\": \"sl2\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:4\"]}]}\n",
	    hello, sl, bad, sl);
	fclose(f);
	UNIT_CHECKF((conf = config_load(path, err, sizeof(err))) != NULL, "config: %s", err);
	t0 = clock_ms();
	UNIT_CHECK(lib_check_all_sync(conf, worker, 4, err, sizeof(err)) == -1);
	snprintf(want, sizeof(want), "function sl1: library %s: timed out loading it after 1000 ms",
	    sl);
	UNIT_CHECKF(strcmp(err, want) == 0, "err %s", err);
	/* Both sleepers at once: one timeout, not two. */
	UNIT_CHECKF(clock_ms() - t0 < 1900, "took %llu ms",
	    (unsigned long long)(clock_ms() - t0));
	UNIT_CHECK(mapping(sl) == 0);
	/* One at a time still checks them all, in order. */
	config_free(conf);
	conf = NULL;
	f = fopen(path, "w");
	UNIT_CHECK(f != NULL);
	fprintf(f, "{\"admin\": null, \"library_check_timeout_ms\": 1000, \"functions\": ["
	    "{\"name\": \"ok1\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:1\"]},"
	    "{\"name\": \"ok2\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:2\"]},"
	    "{\"name\": \"bad\", \"library\": \"%s\", \"listen\": [\"127.0.0.1:3\"]}]}\n",
	    hello, hello, bad);
	fclose(f);
	UNIT_CHECKF((conf = config_load(path, err, sizeof(err))) != NULL, "config: %s", err);
	UNIT_CHECK(lib_check_all_sync(conf, worker, 1, err, sizeof(err)) == -1);
	UNIT_CHECKF(strstr(err, "function bad: library ") == err, "err %s", err);
out:
	if (conf != NULL)
		config_free(conf);
	unlink(path);
	rmdir(dir);
}

/* Execs the worker with SP on WIRE_CTL_FD and PP on WIRE_STATUS_FD; returns its pid. */
static pid_t
exec_worker(int sp, int pp)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	int null = open("/dev/null", O_WRONLY);

	/* Its init_failed log line is not this test's output. */
	if (null < 0 || dup2(null, STDERR_FILENO) < 0 || dup2(sp, WIRE_CTL_FD) < 0 ||
	    dup2(pp, WIRE_STATUS_FD) < 0)
		_exit(126);
	close_range(WIRE_STATUS_FD + 1, ~0U, 0);
	execl(worker, "edgevisor-worker", (char *)NULL);
	_exit(127);
}

/*
 * The worker takes nothing but a valid config record as its first message: one of
 * another version (or a policy it does not know) is refused with an INIT_FAILED
 * record and exit 2, before any library is loaded.
 */
static void
case_worker_refuses_config(void)
{
	static struct wire_config cfg;
	struct fn_conf fc;
	struct wire_status st;
	char lib[PATH_MAX];
	int sp[2] = { -1, -1 }, pp[2] = { -1, -1 }, status;
	pid_t pid;

	lib_path(lib, sizeof(lib), "examples", "hello");
	fn_init(&fc, "hello", lib);
	for (int round = 0; round < 2; round++) {
		UNIT_CHECK(child_config(&fc, 1, &cfg) == 0);
		if (round == 0)
			cfg.version = WIRE_VERSION + 1;
		else
			cfg.policy = WIRE_POLICY_MAX;
		UNIT_CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
		UNIT_CHECK(pipe2(pp, O_CLOEXEC) == 0);
		/* Raw: wire_send_config would refuse to send it. */
		UNIT_CHECK(send(sp[0], &cfg, sizeof(cfg), 0) == (ssize_t)sizeof(cfg));
		UNIT_CHECK((pid = exec_worker(sp[1], pp[1])) > 0);
		close(pp[1]);
		pp[1] = -1;
		UNIT_CHECK(waitpid(pid, &status, 0) == pid);
		UNIT_CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 2, "status %#x", status);
		UNIT_CHECK(wire_recv_status(pp[0], &st) == 1);
		UNIT_CHECKF(st.type == WIRE_ST_INIT_FAILED &&
		    strstr(st.text, "config message") != NULL, "type %u text %s", st.type, st.text);
		for (int i = 0; i < 2; i++) {
			close(sp[i]);
			close(pp[i]);
			sp[i] = pp[i] = -1;
		}
	}
out:
	for (int i = 0; i < 2; i++) {
		if (sp[i] >= 0)
			close(sp[i]);
		if (pp[i] >= 0)
			close(pp[i]);
	}
}

int
main(int argc, char **argv)
{
	char *slash;
	ssize_t n;

	if (unit_chdir_root(argc, argv) < 0)
		return 2;
	log_level = getenv("UNIT_DEBUG") != NULL ? LOG_LVL_DEBUG : -1;
	/* This binary is BUILD/tests/unit/test_check: the worker is BUILD/edgevisor-worker. */
	n = readlink("/proc/self/exe", build, sizeof(build) - 1);
	if (n <= 0)
		return 2;
	build[n] = '\0';
	for (int i = 0; i < 3 && (slash = strrchr(build, '/')) != NULL; i++)
		*slash = '\0';
	snprintf(worker, sizeof(worker), "%s/edgevisor-worker", build);
	signal(SIGPIPE, SIG_IGN);
	unit_run("verdict_ok", case_ok);
	unit_run("refusals_named", case_refusals);
	unit_run("timeout_kills", case_timeout);
	unit_run("cancel_no_callback", case_cancel);
	unit_run("exit_from_sigchld_loop", case_reaped_elsewhere);
	unit_run("double_fork_leaves_nothing", case_double_fork);
	unit_run("timeout_kills_the_daemon_too", case_timeout_double_fork);
	unit_run("all_sync_order_and_concurrency", case_all_sync);
	unit_run("worker_refuses_bad_config", case_worker_refuses_config);
	return unit_exit();
}
