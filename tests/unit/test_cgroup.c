/*
 * test_cgroup.c - supervisor/cgroup.c against this machine's real cgroup v1
 * hierarchies (as root: real processes capped, throttled, OOM-killed, killed and
 * removed), plus the v2 code path against a fake cgroupfs tree under /tmp
 * (EDGEVISOR_CGROUP_ROOT): only the files written are checked there, no kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>

#include <event2/event.h>

#include "../../supervisor/cgroup.h"
#include "log.h"
#include "unit.h"

#define V1_ROOT "/sys/fs/cgroup"

static const char *const hiers[] = { "cpu", "cpuacct", "memory", "pids" };
#define NHIER 4
#define H_PIDS 3
static int nhier = 3;			/* live: 4 if v1 pids is mounted */

static char parent[64];			/* edgevisor-test-<pid> */
static char own[NHIER][512];		/* our v1 cgroups at start */
static char own_line[2048];		/* /proc/self/cgroup at start */
static char fake_root[64];		/* the fake v2 tree, "" = none */
static bool v1_live;
static pid_t kids[16];
static int nkids;
static pid_t stale_grandchild = -1;

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t
cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
read_text(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	buf[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

static int
write_text(const char *path, const char *s)
{
	int fd, rc;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
		return -1;
	rc = write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -1;
	close(fd);
	return rc;
}

static uint64_t
read_u64(const char *path)
{
	char buf[64];

	if (read_text(path, buf, sizeof(buf)) < 0)
		return UINT64_MAX;
	return strtoull(buf, NULL, 10);
}

/* True if the pid list in PATH (one per line) holds PID. */
static bool
pid_in(const char *path, pid_t pid)
{
	FILE *f;
	int p;
	bool found = false;

	if ((f = fopen(path, "re")) == NULL)
		return false;
	while (fscanf(f, "%d", &p) == 1)
		if (p == pid)
			found = true;
	fclose(f);
	return found;
}

static bool
exists(const char *path)
{
	return access(path, F_OK) == 0;
}

static void	fmt(char *buf, size_t len, const char *f, ...)
		    __attribute__((format(printf, 3, 4)));

/* snprintf that leaves "" rather than a cut path. */
static void
fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	int n;

	va_start(ap, f);
	n = vsnprintf(buf, len, f, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
}

/* /sys/fs/cgroup/<hier>/<own>/<parent>[/<rest>] */
static void
v1_path(char *buf, size_t len, int h, const char *rest)
{
	fmt(buf, len, "%s/%s%s%s/%s%s%s", V1_ROOT, hiers[h],
	    own[h][0] ? "/" : "", own[h], parent, rest ? "/" : "", rest ? rest : "");
}

/* Waits for PID to end within MS; returns its status or -1. */
static int
wait_deadline(pid_t pid, uint64_t ms)
{
	uint64_t end = now_ms() + ms;
	int st;
	pid_t r;

	do {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid) {
			for (int i = 0; i < nkids; i++)
				if (kids[i] == pid)
					kids[i] = -1;
			return st;
		}
		if (r < 0)
			return -1;
		nap(5);
	} while (now_ms() < end);
	return -1;
}

static pid_t
spawn(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid > 0 && nkids < (int)(sizeof(kids) / sizeof(kids[0])))
		kids[nkids++] = pid;
	return pid;
}

static void
own_parse(void)
{
	char line[1024], *c, *p;
	FILE *f;

	if ((f = fopen("/proc/self/cgroup", "re")) == NULL)
		return;
	own_line[0] = '\0';
	while (fgets(line, sizeof(line), f) != NULL) {
		strncat(own_line, line, sizeof(own_line) - strlen(own_line) - 1);
		line[strcspn(line, "\n")] = '\0';
		if ((c = strchr(line, ':')) == NULL || (p = strchr(++c, ':')) == NULL)
			continue;
		*p++ = '\0';
		while (*p == '/')
			p++;
		for (int h = 0; h < NHIER; h++) {
			char list[256], *tok, *save;

			snprintf(list, sizeof(list), "%s", c);
			for (tok = strtok_r(list, ",", &save); tok != NULL;
			    tok = strtok_r(NULL, ",", &save))
				if (strcmp(tok, hiers[h]) == 0)
					snprintf(own[h], sizeof(own[h]), "%s", p);
		}
	}
	fclose(f);
}

/* Kills what is left in DIR and below, then removes them depth-first. */
static void
scrub_dir(const char *dir)
{
	char path[1024];
	struct dirent *de;
	DIR *d;
	FILE *f;
	int pid;

	if ((d = opendir(dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			scrub_dir(path);
		}
		closedir(d);
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	for (int i = 0; i < 100 && (f = fopen(path, "re")) != NULL; i++) {
		bool any = false;

		while (fscanf(f, "%d", &pid) == 1)
			if (pid != getpid()) {
				kill(pid, SIGKILL);
				any = true;
			}
		fclose(f);
		if (!any)
			break;
		nap(10);
	}
	for (int i = 0; i < 100 && rmdir(dir) < 0 && errno == EBUSY; i++)
		nap(10);
}

/* Whatever happened, leave no process, cgroup or temp file of ours behind. */
static void
scrub(void)
{
	char path[1024];

	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	if (stale_grandchild > 0) {
		kill(stale_grandchild, SIGKILL);
		waitpid(stale_grandchild, NULL, 0);
	}
	if (v1_live) {
		for (int h = 0; h < nhier; h++) {
			fmt(path, sizeof(path), "%s/%s/%s/cgroup.procs", V1_ROOT,
			    hiers[h], own[h]);
			write_text(path, "0");	/* "0" moves the writer itself */
			v1_path(path, sizeof(path), h, NULL);
			scrub_dir(path);
		}
	}
	if (fake_root[0] != '\0') {
		snprintf(path, sizeof(path), "rm -rf '%s'", fake_root);
		(void)!system(path);
		fake_root[0] = '\0';
	}
}

static void
fn_init(struct fn_conf *fn, const char *name, uint32_t mem, uint32_t cpu,
    uint32_t fmem, uint32_t fcpu)
{
	memset(fn, 0, sizeof(*fn));
	fn->name = (char *)name;
	fn->limits.memory_mb = mem;
	fn->limits.cpu_percent = cpu;
	fn->limits.function_memory_mb = fmem;
	fn->limits.function_cpu_percent = fcpu;
}

/*
 * An earlier run that crashed: a child builds the tree, puts a sleeping
 * grandchild into stale/w7 and exits without cg_shutdown.
 */
static void
case_stale_setup(void)
{
	struct fn_conf fn;
	char err[256], path[1024];
	int p[2] = { -1, -1 }, st;
	pid_t pid, gpid = -1;

	UNIT_CHECK(pipe(p) == 0);
	if ((pid = spawn()) == 0) {
		int q[2];
		char c;

		close(p[0]);
		fn_init(&fn, "stale", 16, 10, 0, 0);
		if (cg_init(CG_MODE_REQUIRED, parent, err, sizeof(err)) < 0 ||
		    cg_function_setup(&fn) < 0 ||
		    cg_worker_create(&fn, 7, NULL, 0) < 0 || pipe(q) < 0)
			_exit(2);
		if ((gpid = fork()) == 0) {
			close(q[0]);
			if (cg_worker_attach("stale", 7, getpid()) < 0)
				_exit(3);
			(void)!write(q[1], "x", 1);
			for (;;)
				pause();
		}
		close(q[1]);
		if (read(q[0], &c, 1) != 1)
			_exit(4);
		(void)!write(p[1], &gpid, sizeof(gpid));
		_exit(0);	/* "crash": no cg_shutdown */
	}
	close(p[1]);
	p[1] = -1;
	UNIT_CHECK(pid > 0);
	st = wait_deadline(pid, 10000);
	UNIT_CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "crashed run failed: status %d", st);
	UNIT_CHECK(read(p[0], &gpid, sizeof(gpid)) == sizeof(gpid));
	stale_grandchild = gpid;
	v1_path(path, sizeof(path), 2, "stale/w7/cgroup.procs");
	UNIT_CHECKF(pid_in(path, gpid), "grandchild %d not in %s", gpid, path);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* cg_init finds v1, builds the tree, moves us in and cleans the stale run. */
static void
case_v1_init(void)
{
	char err[256], path[1024];
	uint64_t end;
	int st = -1, h;

	UNIT_CHECKF(cg_init(CG_MODE_REQUIRED, parent, err, sizeof(err)) == 0,
	    "cg_init: %s", err);
	UNIT_CHECK(cg_enabled());
	UNIT_CHECKF(strcmp(cg_describe(), "v1") == 0, "describe %s", cg_describe());
	for (h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "supervisor/cgroup.procs");
		UNIT_CHECKF(pid_in(path, getpid()), "we are not in %s", path);
		v1_path(path, sizeof(path), h, "stale");
		UNIT_CHECKF(!exists(path), "stale cgroup %s still there", path);
	}
	/* The stale grandchild was reparented to us (subreaper) and killed. */
	end = now_ms() + 5000;
	while (now_ms() < end) {
		if (waitpid(stale_grandchild, &st, WNOHANG) == stale_grandchild)
			break;
		st = -1;
		nap(5);
	}
	UNIT_CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "stale process %d not killed (status %d)", stale_grandchild, st);
	stale_grandchild = -1;
out:
	;
}

/* Function-wide and per-worker caps land in the v1 files. */
static void
case_v1_caps(void)
{
	struct fn_conf fn;
	char path[1024], want[1024], rel[512], buf[64];

	fn_init(&fn, "fnA", 64, 20, 256, 50);
	fn.limits.max_pids = 40;
	fn.limits.function_max_pids = 100;
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 1, rel, sizeof(rel)) == 0);
	if (nhier > H_PIDS) {
		v1_path(path, sizeof(path), H_PIDS, "fnA/pids.max");
		UNIT_CHECKF(read_text(path, buf, sizeof(buf)) == 0 &&
		    strcmp(buf, "100\n") == 0, "%s = %s", path, buf);
		v1_path(path, sizeof(path), H_PIDS, "fnA/w1/pids.max");
		UNIT_CHECKF(read_text(path, buf, sizeof(buf)) == 0 &&
		    strcmp(buf, "40\n") == 0, "%s = %s", path, buf);
	}
	snprintf(want, sizeof(want), "/%s%s%s/fnA/w1", own[2], own[2][0] ? "/" : "",
	    parent);
	UNIT_CHECKF(strcmp(rel, want) == 0, "path %s, want %s", rel, want);
	v1_path(path, sizeof(path), 2, "fnA/memory.limit_in_bytes");
	UNIT_CHECKF(read_u64(path) == 256ULL << 20, "%s = %llu", path,
	    (unsigned long long)read_u64(path));
	v1_path(path, sizeof(path), 0, "fnA/cpu.cfs_quota_us");
	UNIT_CHECKF(read_u64(path) == 50000, "%s = %llu", path,
	    (unsigned long long)read_u64(path));
	v1_path(path, sizeof(path), 2, "fnA/w1/memory.limit_in_bytes");
	UNIT_CHECKF(read_u64(path) == 64ULL << 20, "%s = %llu", path,
	    (unsigned long long)read_u64(path));
	v1_path(path, sizeof(path), 2, "fnA/w1/memory.memsw.limit_in_bytes");
	UNIT_CHECKF(!exists(path) || read_u64(path) == 64ULL << 20, "%s = %llu",
	    path, (unsigned long long)read_u64(path));
	v1_path(path, sizeof(path), 0, "fnA/w1/cpu.cfs_quota_us");
	UNIT_CHECKF(read_u64(path) == 20000, "%s = %llu", path,
	    (unsigned long long)read_u64(path));
	v1_path(path, sizeof(path), 0, "fnA/w1/cpu.cfs_period_us");
	UNIT_CHECKF(read_u64(path) == 100000, "%s = %llu", path,
	    (unsigned long long)read_u64(path));
	v1_path(path, sizeof(path), 1, "fnA/w1");
	UNIT_CHECKF(exists(path), "%s missing", path);
	/* Updating lifts a cap. */
	fn.limits.function_cpu_percent = 0;
	fn.limits.function_max_pids = 0;
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	v1_path(path, sizeof(path), 0, "fnA/cpu.cfs_quota_us");
	UNIT_CHECKF(read_text(path, buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "-1\n") == 0, "quota not lifted: %s", buf);
	if (nhier > H_PIDS) {
		v1_path(path, sizeof(path), H_PIDS, "fnA/pids.max");
		UNIT_CHECKF(read_text(path, buf, sizeof(buf)) == 0 &&
		    strcmp(buf, "max\n") == 0, "pids cap not lifted: %s", buf);
	}
out:
	;
}

static pid_t worker_pid = -1;

/* A child joins fnA/w1 by itself (as a forked worker would), eats, spins, waits. */
static void
case_v1_attach_stats(void)
{
	struct cg_stats s = { 0 };
	char path[1024], c;
	int p[2] = { -1, -1 };
	uint64_t end, wall = 0;

	UNIT_CHECK(pipe(p) == 0);
	if ((worker_pid = spawn()) == 0) {
		char *mem;
		uint64_t t;

		close(p[0]);
		if (cg_worker_attach("fnA", 1, getpid()) < 0)
			_exit(2);
		(void)!write(p[1], "a", 1);
		mem = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(3);
		memset(mem, 1, 8 << 20);
		/* 150 ms of CPU at a 20% quota takes >= ~650 ms of wall clock. */
		for (t = now_ms(); cpu_ms() < 150;)
			;
		t = now_ms() - t;
		(void)!write(p[1], &t, sizeof(t));
		/* Keep spinning: on a loaded machine the quota may not have bitten yet,
		 * and the parent waits until the kernel reports throttling. */
		for (volatile unsigned long n = 0;; n++)
			;
	}
	close(p[1]);
	p[1] = -1;
	UNIT_CHECK(worker_pid > 0);
	UNIT_CHECKF(read(p[0], &c, 1) == 1 && c == 'a', "child did not attach");
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "fnA/w1/cgroup.procs");
		UNIT_CHECKF(pid_in(path, worker_pid), "%d not in %s", worker_pid, path);
		v1_path(path, sizeof(path), h, "fnA/w1/tasks");
		UNIT_CHECKF(pid_in(path, worker_pid), "%d not in %s", worker_pid, path);
	}
	UNIT_CHECKF(read(p[0], &wall, sizeof(wall)) == sizeof(wall),
	    "child did not spin");
	end = now_ms() + 5000;
	do {
		UNIT_CHECK(cg_worker_stats("fnA", 1, &s) == 0);
		if (s.memory_current >= (8 << 20) && s.cpu_usage_us >= 140000 &&
		    s.nr_throttled > 0)
			break;
		nap(20);
	} while (now_ms() < end);
	printf("# stats: wall_ms=%llu memory_current=%llu peak=%llu cpu_us=%llu "
	    "throttled=%llu oom=%llu pids=%llu\n", (unsigned long long)wall,
	    (unsigned long long)s.memory_current, (unsigned long long)s.memory_peak,
	    (unsigned long long)s.cpu_usage_us, (unsigned long long)s.nr_throttled,
	    (unsigned long long)s.oom_kills, (unsigned long long)s.pids_current);
	UNIT_CHECKF(nhier <= H_PIDS || s.pids_current == 1, "pids_current %llu",
	    (unsigned long long)s.pids_current);
	UNIT_CHECKF(s.memory_current >= (8 << 20), "memory_current %llu",
	    (unsigned long long)s.memory_current);
	UNIT_CHECKF(s.memory_peak >= s.memory_current, "peak %llu",
	    (unsigned long long)s.memory_peak);
	UNIT_CHECKF(s.cpu_usage_us >= 140000, "cpu_usage_us %llu",
	    (unsigned long long)s.cpu_usage_us);
	/* Uncapped it would take 150 ms; at 20% at least ~650 ms: the cap held. */
	UNIT_CHECKF(wall >= 500, "150 ms of CPU in %llu ms: not capped",
	    (unsigned long long)wall);
	UNIT_CHECKF(s.nr_throttled > 0, "nr_throttled 0");
	UNIT_CHECK(s.oom_kills == 0);
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* cg_worker_kill ends every process in the cgroup; cg_worker_remove drops it. */
static void
case_v1_kill_remove(void)
{
	char path[1024];
	int st;

	UNIT_CHECK(worker_pid > 0);
	UNIT_CHECK(cg_worker_kill("fnA", 1) == 0);
	st = wait_deadline(worker_pid, 5000);
	UNIT_CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "worker status %d", st);
	worker_pid = -1;
	UNIT_CHECK(cg_worker_remove("fnA", 1) == 0);
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "fnA/w1");
		UNIT_CHECKF(!exists(path), "%s still there", path);
		v1_path(path, sizeof(path), h, "fnA");
		UNIT_CHECKF(exists(path), "%s gone too early", path);
	}
	UNIT_CHECK(cg_worker_remove("fnA", 1) == 0);	/* twice is fine */
	UNIT_CHECK(cg_worker_stats("fnA", 1, &(struct cg_stats){ 0 }) < 0);
out:
	;
}

/* Runs BASE until every hierarchy's <parent>/SUB is gone or MS pass. */
static bool
loop_until_gone(struct event_base *base, const char *sub, uint64_t ms)
{
	char path[1024];
	uint64_t end = now_ms() + ms;
	struct timeval tick = { 0, 5000 };

	for (;;) {
		bool any = false;

		for (int h = 0; h < nhier; h++) {
			v1_path(path, sizeof(path), h, sub);
			any |= exists(path);
		}
		if (!any)
			return true;
		if (now_ms() >= end)
			return false;
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
	}
}

/*
 * On the loop (cg_set_base) nothing waits on a busy cgroup: a worker cgroup that
 * still holds a child cgroup is left to the retry timer and goes once the child
 * does; a check cgroup gets the worker's caps, its process is killed by one
 * cg_check_kill round and the cgroup removed from the loop.
 */
static void
case_v1_remove_on_loop(void)
{
	struct event_base *base = event_base_new();
	struct fn_conf fn;
	char path[1024];
	uint64_t t0;
	int st;
	pid_t pid;

	UNIT_CHECK(base != NULL);
	UNIT_CHECK(cg_set_base(base) == 0);
	fn_init(&fn, "fnF", 24, 0, 0, 0);
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 1, NULL, 0) == 0);
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "fnF/w1/nested");
		UNIT_CHECKF(mkdir(path, 0755) == 0, "mkdir %s: %s", path, strerror(errno));
	}
	t0 = now_ms();
	UNIT_CHECK(cg_worker_remove("fnF", 1) == 0);
	UNIT_CHECKF(now_ms() - t0 < 100, "remove waited %llu ms",
	    (unsigned long long)(now_ms() - t0));
	v1_path(path, sizeof(path), 2, "fnF/w1");
	UNIT_CHECKF(exists(path), "%s removed with a child cgroup in it", path);
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "fnF/w1/nested");
		UNIT_CHECK(rmdir(path) == 0);
	}
	UNIT_CHECK(loop_until_gone(base, "fnF/w1", 2000));

	UNIT_CHECK(cg_check_create(&fn, 9) == 0);
	v1_path(path, sizeof(path), 2, "fnF/check-9/memory.limit_in_bytes");
	UNIT_CHECKF(read_u64(path) == 24ULL << 20, "%s: %llu", path,
	    (unsigned long long)read_u64(path));
	UNIT_CHECK(cg_check_procs("fnF", 9, path, sizeof(path)) == 0);
	UNIT_CHECKF(strstr(path, "/memory/") != NULL &&
	    strstr(path, "/fnF/check-9/cgroup.procs") != NULL, "procs path %s", path);
	if ((pid = spawn()) == 0) {
		if (cg_check_attach("fnF", 9, getpid()) < 0)
			_exit(2);
		for (;;)
			pause();
	}
	UNIT_CHECK(pid > 0);
	for (uint64_t end = now_ms() + 5000; !pid_in(path, pid) && now_ms() < end;)
		nap(5);
	UNIT_CHECKF(pid_in(path, pid), "%d never joined", pid);
	UNIT_CHECK(cg_check_kill("fnF", 9) >= 1);
	st = wait_deadline(pid, 5000);
	UNIT_CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "status %d", st);
	UNIT_CHECK(cg_check_remove("fnF", 9) == 0);
	UNIT_CHECK(loop_until_gone(base, "fnF/check-9", 2000));
	UNIT_CHECK(cg_function_remove("fnF") == 0);
	UNIT_CHECK(loop_until_gone(base, "fnF", 2000));
out:
	cg_set_base(NULL);
	if (base != NULL)
		event_base_free(base);
}

/* A memory hog in a 32 MiB worker cgroup is OOM-killed and the kill is counted. */
static void
case_v1_oom(void)
{
	struct fn_conf fn;
	struct cg_stats s = { 0 };
	int st = -1;
	pid_t pid;

	fn_init(&fn, "fnB", 32, 0, 0, 0);
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 2, NULL, 0) == 0);
	if ((pid = spawn()) == 0) {
		size_t len = 256 << 20;
		char *mem;

		if (cg_worker_attach("fnB", 2, getpid()) < 0)
			_exit(2);
		mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(3);
		for (size_t i = 0; i < len; i += 4096)
			mem[i] = 1;
		_exit(0);	/* not capped */
	}
	UNIT_CHECK(pid > 0);
	st = wait_deadline(pid, 30000);
	UNIT_CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "hog status %d (exited %d)", st, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	UNIT_CHECK(cg_worker_stats("fnB", 2, &s) == 0);
	UNIT_CHECKF(s.oom_kills >= 1, "oom_kills %llu", (unsigned long long)s.oom_kills);
	UNIT_CHECKF(s.memory_peak >= (30ULL << 20) && s.memory_peak <= (32ULL << 20),
	    "peak %llu", (unsigned long long)s.memory_peak);
	UNIT_CHECK(cg_worker_kill("fnB", 2) == 0);
	UNIT_CHECK(cg_worker_remove("fnB", 2) == 0);
out:
	;
}

/* A function removed with a live worker left: its processes die, its tree goes. */
static void
case_v1_function_remove(void)
{
	struct fn_conf fn;
	char path[1024];
	int st;
	pid_t pid;

	fn_init(&fn, "fnC", 16, 10, 0, 0);
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 3, NULL, 0) == 0);
	if ((pid = spawn()) == 0) {
		if (cg_worker_attach("fnC", 3, getpid()) < 0)
			_exit(2);
		for (;;)
			pause();
	}
	UNIT_CHECK(pid > 0);
	v1_path(path, sizeof(path), 2, "fnC/w3/cgroup.procs");
	for (uint64_t end = now_ms() + 5000; !pid_in(path, pid) && now_ms() < end;)
		nap(5);
	UNIT_CHECKF(pid_in(path, pid), "%d never joined", pid);
	UNIT_CHECK(cg_function_remove("fnC") == 0);
	st = wait_deadline(pid, 5000);
	UNIT_CHECKF(st >= 0 && WIFSIGNALED(st), "status %d", st);
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "fnC");
		UNIT_CHECKF(!exists(path), "%s still there", path);
	}
out:
	;
}

/*
 * A fork loop in a worker capped at 8 tasks: fork fails with EAGAIN once the
 * worker and its 7 children are there; the kill and remove leave nothing.
 */
static void
case_v1_pids_cap(void)
{
	struct fn_conf fn;
	struct cg_stats s = { 0 };
	char path[1024];
	int p[2] = { -1, -1 }, got[2] = { -1, -1 }, st;
	pid_t pid;

	fn_init(&fn, "fnE", 0, 0, 0, 0);
	fn.limits.max_pids = 8;
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 5, NULL, 0) == 0);
	UNIT_CHECK(pipe(p) == 0);
	if ((pid = spawn()) == 0) {
		int n = 0, err = 0;

		close(p[0]);
		if (cg_worker_attach("fnE", 5, getpid()) < 0)
			_exit(2);
		/* Bounded: if the cap did not hold, 64 sleepers are harmless. */
		for (; n < 64; n++) {
			pid_t c = fork();

			if (c == 0) {
				for (;;)
					pause();
			}
			if (c < 0) {
				err = errno;
				break;
			}
		}
		(void)!write(p[1], (int[2]){ n, err }, sizeof(int[2]));
		for (;;)
			pause();
	}
	close(p[1]);
	p[1] = -1;
	UNIT_CHECK(pid > 0);
	UNIT_CHECKF(read(p[0], got, sizeof(got)) == sizeof(got), "no report");
	printf("# fork loop under max_pids 8: %d children, errno %d\n", got[0], got[1]);
	UNIT_CHECKF(got[0] == 7 && got[1] == EAGAIN, "%d children, errno %d",
	    got[0], got[1]);
	UNIT_CHECK(cg_worker_stats("fnE", 5, &s) == 0);
	UNIT_CHECKF(s.pids_current == 8, "pids_current %llu",
	    (unsigned long long)s.pids_current);
	v1_path(path, sizeof(path), H_PIDS, "fnE/w5/cgroup.procs");
	UNIT_CHECKF(pid_in(path, pid), "%d not in %s", pid, path);
	UNIT_CHECK(cg_worker_kill("fnE", 5) == 0);
	st = wait_deadline(pid, 5000);
	UNIT_CHECKF(st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	    "worker status %d", st);
	/* Its children were reparented to us (subreaper): zombies count until reaped. */
	v1_path(path, sizeof(path), H_PIDS, "fnE/w5/pids.current");
	for (uint64_t end = now_ms() + 5000; read_u64(path) != 0 && now_ms() < end;)
		if (waitpid(-1, NULL, WNOHANG) <= 0)
			nap(5);
	UNIT_CHECKF(read_u64(path) == 0, "%s = %llu after the kill", path,
	    (unsigned long long)read_u64(path));
	UNIT_CHECK(cg_worker_remove("fnE", 5) == 0);
	UNIT_CHECK(cg_function_remove("fnE") == 0);
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, "fnE");
		UNIT_CHECKF(!exists(path), "%s still there", path);
	}
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* Shutdown leaves nothing of ours and puts us back where we started. */
static void
case_v1_shutdown(void)
{
	char path[1024], now[2048];

	cg_shutdown();
	UNIT_CHECK(!cg_enabled());
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, NULL);
		UNIT_CHECKF(!exists(path), "%s still there", path);
	}
	UNIT_CHECK(read_text("/proc/self/cgroup", now, sizeof(now)) == 0);
	UNIT_CHECKF(strcmp(now, own_line) == 0, "not back home: %s", now);
out:
	;
}

/* A second supervisor on a live base is refused; once the first dies, it takes over. */
static void
case_v1_in_use(void)
{
	struct fn_conf fn;
	char err[256] = "", path[1024];
	int p[2] = { -1, -1 }, st;
	pid_t pid, gpid = -1;

	UNIT_CHECK(pipe(p) == 0);
	/* The first supervisor, with one live worker in fnD/w4. */
	if ((pid = spawn()) == 0) {
		close(p[0]);
		fn_init(&fn, "fnD", 16, 10, 0, 0);
		if (cg_init(CG_MODE_REQUIRED, parent, err, sizeof(err)) < 0 ||
		    cg_function_setup(&fn) < 0 || cg_worker_create(&fn, 4, NULL, 0) < 0)
			_exit(2);
		if ((gpid = fork()) == 0) {
			if (cg_worker_attach("fnD", 4, getpid()) < 0)
				_exit(3);
			for (;;)
				pause();
		}
		(void)!write(p[1], &gpid, sizeof(gpid));
		for (;;)
			pause();
	}
	close(p[1]);
	p[1] = -1;
	UNIT_CHECK(pid > 0);
	UNIT_CHECKF(read(p[0], &gpid, sizeof(gpid)) == sizeof(gpid),
	    "first supervisor did not start");
	stale_grandchild = gpid;
	v1_path(path, sizeof(path), 2, "fnD/w4/cgroup.procs");
	for (uint64_t end = now_ms() + 5000; !pid_in(path, gpid) && now_ms() < end;)
		nap(5);
	UNIT_CHECKF(pid_in(path, gpid), "worker %d never joined", gpid);
	UNIT_CHECK(cg_init(CG_MODE_REQUIRED, parent, err, sizeof(err)) == -1);
	printf("# required, base in use: %s\n", err);
	UNIT_CHECKF(strstr(err, "in use") != NULL, "unclear: %s", err);
	/* The refused init touched nothing of the live one. */
	UNIT_CHECKF(pid_in(path, gpid) && kill(gpid, 0) == 0, "worker harmed");
	v1_path(path, sizeof(path), 2, "supervisor/cgroup.procs");
	UNIT_CHECKF(pid_in(path, pid), "first supervisor was moved out");
	kill(pid, SIGKILL);
	st = wait_deadline(pid, 5000);
	UNIT_CHECK(st >= 0);
	/* Its orphan comes to us (subreaper); the next init kills it as stale. */
	UNIT_CHECKF(cg_init(CG_MODE_REQUIRED, parent, err, sizeof(err)) == 0,
	    "cg_init after the first died: %s", err);
	for (uint64_t end = now_ms() + 5000; now_ms() < end;) {
		if (waitpid(gpid, &st, WNOHANG) == gpid) {
			stale_grandchild = -1;
			break;
		}
		nap(5);
	}
	UNIT_CHECKF(stale_grandchild == -1, "orphaned worker %d survived", gpid);
	cg_shutdown();
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, NULL);
		UNIT_CHECKF(!exists(path), "%s still there", path);
	}
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
}

/* Not root and nothing delegated: required names the cause, auto turns off. */
static void
case_v1_not_root(void)
{
	char path[1024];
	int st = -1;
	pid_t pid;

	if ((pid = spawn()) == 0) {
		char err[256];
		int rc;

		if (setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(2);
		rc = cg_init(CG_MODE_REQUIRED, parent, err, sizeof(err));
		printf("# required as nobody: rc=%d %s\n", rc, err);
		fflush(stdout);
		if (rc != -1 || cg_enabled() || strstr(err, "Permission denied") == NULL ||
		    strstr(err, "not root") == NULL)
			_exit(3);
		rc = cg_init(CG_MODE_AUTO, parent, err, sizeof(err));
		_exit(rc == 0 && !cg_enabled() && err[0] != '\0' ? 0 : 4);
	}
	UNIT_CHECK(pid > 0);
	st = wait_deadline(pid, 10000);
	UNIT_CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child status %d", st);
	for (int h = 0; h < nhier; h++) {
		v1_path(path, sizeof(path), h, NULL);
		UNIT_CHECKF(!exists(path), "%s created", path);
	}
out:
	;
}

/* A root with no cgroup hierarchy at all: required fails, auto turns off. */
static void
case_no_hierarchy(void)
{
	char dir[] = "/tmp/edgevisor-cg-empty-XXXXXX", err[256] = "";
	bool made = false;

	UNIT_CHECK(mkdtemp(dir) != NULL);
	made = true;
	setenv("EDGEVISOR_CGROUP_ROOT", dir, 1);
	UNIT_CHECK(cg_init(CG_MODE_REQUIRED, "edgevisor", err, sizeof(err)) == -1);
	printf("# required, empty root: %s\n", err);
	UNIT_CHECKF(strstr(err, "no cgroup") != NULL && strstr(err, dir) != NULL,
	    "unclear: %s", err);
	UNIT_CHECK(!cg_enabled());
	err[0] = '\0';
	UNIT_CHECK(cg_init(CG_MODE_AUTO, "edgevisor", err, sizeof(err)) == 0);
	UNIT_CHECK(!cg_enabled() && strcmp(cg_describe(), "off") == 0);
	UNIT_CHECK(err[0] != '\0');
	UNIT_CHECK(cg_init(CG_MODE_OFF, "edgevisor", err, sizeof(err)) == 0);
	UNIT_CHECK(!cg_enabled() && err[0] == '\0');
	UNIT_CHECK(cg_init(CG_MODE_REQUIRED, "../escape", err, sizeof(err)) == -1);
out:
	unsetenv("EDGEVISOR_CGROUP_ROOT");
	if (made)
		rmdir(dir);
}

/* A v2 tree on a read-only filesystem: <base> cannot be created. */
static void
case_readonly(void)
{
	char dir[] = "/tmp/edgevisor-cg-ro-XXXXXX";
	int st = -1;
	pid_t pid;
	bool made = false;

	UNIT_CHECK(mkdtemp(dir) != NULL);
	made = true;
	if ((pid = spawn()) == 0) {
		char err[256], path[128];

		/* A private mount namespace: the tmpfs vanishes with the child. */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount("tmpfs", dir, "tmpfs", 0, "size=1m") < 0)
			_exit(2);
		snprintf(path, sizeof(path), "%s/cgroup.controllers", dir);
		write_text(path, "cpu memory\n");
		snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
		write_text(path, "");
		if (mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL) < 0)
			_exit(3);
		setenv("EDGEVISOR_CGROUP_ROOT", dir, 1);
		if (cg_init(CG_MODE_REQUIRED, "edgevisor", err, sizeof(err)) != -1)
			_exit(4);
		printf("# required, read-only: %s\n", err);
		fflush(stdout);
		_exit(strstr(err, "Read-only") != NULL && strstr(err, "cannot create")
		    != NULL && !cg_enabled() ? 0 : 5);
	}
	UNIT_CHECK(pid > 0);
	st = wait_deadline(pid, 10000);
	UNIT_CHECKF(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "child status %d", st);
out:
	if (made)
		rmdir(dir);
}

static int
fake_file(const char *rel, const char *text)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fake_root, rel);
	return write_text(path, text);
}

static bool
fake_has(const char *rel, const char *want)
{
	char path[512], buf[512];

	snprintf(path, sizeof(path), "%s/%s", fake_root, rel);
	if (read_text(path, buf, sizeof(buf)) < 0)
		return false;
	return strstr(buf, want) != NULL;
}

static bool
fake_exists(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fake_root, rel);
	return exists(path);
}

/* The v2 code path against a fake cgroupfs: which files it writes, in which order. */
static void
case_v2_fake(void)
{
	struct fn_conf fn;
	struct cg_stats s;
	char err[256], pid[32], rel[256];

	snprintf(fake_root, sizeof(fake_root), "/tmp/edgevisor-cg-v2-XXXXXX");
	UNIT_CHECK(mkdtemp(fake_root) != NULL);
	UNIT_CHECK(fake_file("cgroup.controllers", "cpu io memory pids\n") == 0);
	UNIT_CHECK(fake_file("cgroup.subtree_control", "") == 0);
	UNIT_CHECK(fake_file("cgroup.procs", "") == 0);
	setenv("EDGEVISOR_CGROUP_ROOT", fake_root, 1);
	UNIT_CHECKF(cg_init(CG_MODE_REQUIRED, "edgevisor", err, sizeof(err)) == 0,
	    "cg_init: %s", err);
	UNIT_CHECKF(strcmp(cg_describe(), "v2") == 0, "describe %s", cg_describe());
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	UNIT_CHECK(fake_has("edgevisor/supervisor/cgroup.procs", pid));
	UNIT_CHECK(fake_has("edgevisor/cgroup.subtree_control", "+cpu"));
	UNIT_CHECK(fake_has("edgevisor/cgroup.subtree_control", "+memory"));
	UNIT_CHECK(fake_has("cgroup.subtree_control", "+cpu +memory"));
	UNIT_CHECK(fake_has("edgevisor/cgroup.subtree_control", "+pids"));
	UNIT_CHECK(fake_has("cgroup.subtree_control", "+pids"));

	fn_init(&fn, "fnA", 64, 20, 256, 50);
	fn.limits.max_pids = 32;
	fn.limits.function_max_pids = 96;
	UNIT_CHECK(cg_check_function(&fn, err, sizeof(err)) == 0);
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(fake_has("edgevisor/fnA/cgroup.subtree_control", "+cpu +memory"));
	UNIT_CHECK(fake_has("edgevisor/fnA/cgroup.subtree_control", "+pids"));
	UNIT_CHECK(fake_has("edgevisor/fnA/pids.max", "96"));
	UNIT_CHECK(fake_has("edgevisor/fnA/memory.max", "268435456"));
	UNIT_CHECK(fake_has("edgevisor/fnA/cpu.max", "50000 100000"));
	UNIT_CHECK(cg_worker_create(&fn, 1, rel, sizeof(rel)) == 0);
	UNIT_CHECKF(strcmp(rel, "/edgevisor/fnA/w1") == 0, "path %s", rel);
	UNIT_CHECK(fake_has("edgevisor/fnA/w1/memory.max", "67108864"));
	UNIT_CHECK(fake_has("edgevisor/fnA/w1/cpu.max", "20000 100000"));
	UNIT_CHECK(fake_has("edgevisor/fnA/w1/pids.max", "32"));
	UNIT_CHECK(cg_worker_attach("fnA", 1, 424242) == 0);
	UNIT_CHECK(fake_has("edgevisor/fnA/w1/cgroup.procs", "424242"));

	UNIT_CHECK(fake_file("edgevisor/fnA/w1/memory.current", "1234\n") == 0);
	UNIT_CHECK(fake_file("edgevisor/fnA/w1/memory.peak", "4321\n") == 0);
	UNIT_CHECK(fake_file("edgevisor/fnA/w1/cpu.stat",
	    "usage_usec 500\nuser_usec 400\nsystem_usec 100\nnr_periods 9\n"
	    "nr_throttled 3\nthrottled_usec 77\n") == 0);
	UNIT_CHECK(fake_file("edgevisor/fnA/w1/memory.events",
	    "low 0\nhigh 0\nmax 5\noom 2\noom_kill 2\n") == 0);
	UNIT_CHECK(fake_file("edgevisor/fnA/w1/pids.current", "17\n") == 0);
	UNIT_CHECK(cg_worker_stats("fnA", 1, &s) == 0);
	UNIT_CHECKF(s.pids_current == 17, "pids_current %llu",
	    (unsigned long long)s.pids_current);
	UNIT_CHECKF(s.memory_current == 1234 && s.memory_peak == 4321 &&
	    s.cpu_usage_us == 500 && s.nr_throttled == 3 && s.oom_kills == 2,
	    "stats %llu %llu %llu %llu %llu", (unsigned long long)s.memory_current,
	    (unsigned long long)s.memory_peak, (unsigned long long)s.cpu_usage_us,
	    (unsigned long long)s.nr_throttled, (unsigned long long)s.oom_kills);
	/* Lifting caps writes "max". */
	fn.limits.function_memory_mb = 0;
	fn.limits.function_cpu_percent = 0;
	fn.limits.function_max_pids = 0;
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(fake_has("edgevisor/fnA/pids.max", "max"));
	UNIT_CHECK(fake_has("edgevisor/fnA/memory.max", "max"));
	UNIT_CHECK(fake_has("edgevisor/fnA/cpu.max", "max 100000"));
	UNIT_CHECK(cg_worker_remove("fnA", 1) == 0);
	UNIT_CHECK(!fake_exists("edgevisor/fnA/w1"));

	/* A crashed run's function tree is removed by the next cg_init. */
	cg_shutdown();
	UNIT_CHECK(!fake_exists("edgevisor"));
	UNIT_CHECK(mkdir(fake_root, 0755) == 0 || errno == EEXIST);
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/edgevisor", fake_root);
		UNIT_CHECK(mkdir(path, 0755) == 0);
		snprintf(path, sizeof(path), "%s/edgevisor/old", fake_root);
		UNIT_CHECK(mkdir(path, 0755) == 0);
		snprintf(path, sizeof(path), "%s/edgevisor/old/w3", fake_root);
		UNIT_CHECK(mkdir(path, 0755) == 0);
		UNIT_CHECK(fake_file("edgevisor/old/w3/memory.max", "1\n") == 0);
	}
	UNIT_CHECKF(cg_init(CG_MODE_REQUIRED, "edgevisor", err, sizeof(err)) == 0,
	    "cg_init: %s", err);
	UNIT_CHECK(!fake_exists("edgevisor/old"));
	UNIT_CHECK(fake_exists("edgevisor/supervisor"));
	cg_shutdown();
	UNIT_CHECK(!fake_exists("edgevisor"));
	UNIT_CHECK(fake_has("cgroup.procs", pid));	/* moved back */

	/*
	 * A delegation without pids: the tree is built without it; a function asking
	 * for max_pids is refused in "required" mode and only warned about in "auto".
	 */
	UNIT_CHECK(fake_file("cgroup.controllers", "cpu io memory\n") == 0);
	UNIT_CHECK(fake_file("cgroup.subtree_control", "") == 0);
	UNIT_CHECKF(cg_init(CG_MODE_REQUIRED, "edgevisor", err, sizeof(err)) == 0,
	    "cg_init: %s", err);
	UNIT_CHECK(!fake_has("edgevisor/cgroup.subtree_control", "pids"));
	UNIT_CHECK(!fake_has("cgroup.subtree_control", "pids"));
	fn.limits.function_max_pids = 0;
	UNIT_CHECK(cg_check_function(&fn, err, sizeof(err)) == -1);
	printf("# required, no pids controller: %s\n", err);
	UNIT_CHECKF(strstr(err, "fnA") != NULL && strstr(err, "pids") != NULL,
	    "unclear: %s", err);
	cg_shutdown();
	UNIT_CHECKF(cg_init(CG_MODE_AUTO, "edgevisor", err, sizeof(err)) == 0 &&
	    cg_enabled(), "cg_init: %s", err);
	UNIT_CHECK(cg_check_function(&fn, err, sizeof(err)) == 0);
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 2, NULL, 0) == 0);
	UNIT_CHECK(!fake_exists("edgevisor/fnA/w2/pids.max"));
	UNIT_CHECK(!fake_has("edgevisor/fnA/cgroup.subtree_control", "pids"));
	cg_shutdown();
	UNIT_CHECK(!fake_exists("edgevisor"));

	/* A delegation without the memory controller is named. */
	UNIT_CHECK(fake_file("cgroup.controllers", "cpu io pids\n") == 0);
	UNIT_CHECK(cg_init(CG_MODE_REQUIRED, "edgevisor", err, sizeof(err)) == -1);
	printf("# required, no memory controller: %s\n", err);
	UNIT_CHECKF(strstr(err, "controller memory") != NULL, "unclear: %s", err);
	UNIT_CHECK(!fake_exists("edgevisor"));
out:
	cg_shutdown();
	unsetenv("EDGEVISOR_CGROUP_ROOT");
}

/* The v1 code path against a fake root with cpu/, cpuacct/ and memory/ dirs. */
static void
case_v1_fake(void)
{
	struct fn_conf fn;
	char dir[] = "/tmp/edgevisor-cg-v1-XXXXXX", err[256], path[512], cmd[600];
	bool made = false;

	UNIT_CHECK(mkdtemp(dir) != NULL);
	made = true;
	for (int h = 0; h < NHIER; h++) {
		snprintf(path, sizeof(path), "%s/%s", dir, hiers[h]);
		UNIT_CHECK(mkdir(path, 0755) == 0);
	}
	setenv("EDGEVISOR_CGROUP_ROOT", dir, 1);
	UNIT_CHECKF(cg_init(CG_MODE_REQUIRED, "ev", err, sizeof(err)) == 0,
	    "cg_init: %s", err);
	UNIT_CHECK(strcmp(cg_describe(), "v1") == 0);
	fn_init(&fn, "f", 64, 80, 0, 30);
	fn.limits.max_pids = 50;
	UNIT_CHECK(cg_function_setup(&fn) == 0);
	UNIT_CHECK(cg_worker_create(&fn, 9, NULL, 0) == 0);
	snprintf(path, sizeof(path), "%s/pids/ev/f/w9/pids.max", dir);
	UNIT_CHECKF(read_u64(path) == 50, "pids.max %llu",
	    (unsigned long long)read_u64(path));
	snprintf(path, sizeof(path), "%s/pids/ev/f/pids.max", dir);
	UNIT_CHECKF(read_text(path, cmd, sizeof(cmd)) == 0 && strcmp(cmd, "max") == 0,
	    "function pids.max %s", cmd);
	snprintf(path, sizeof(path), "%s/memory/ev/f/w9/memory.limit_in_bytes", dir);
	UNIT_CHECK(read_u64(path) == 64ULL << 20);
	/* v1 refuses a worker quota above its function's: clamped. */
	snprintf(path, sizeof(path), "%s/cpu/ev/f/w9/cpu.cfs_quota_us", dir);
	UNIT_CHECKF(read_u64(path) == 30000, "quota %llu",
	    (unsigned long long)read_u64(path));
	snprintf(path, sizeof(path), "%s/cpuacct/ev/f/w9", dir);
	UNIT_CHECK(exists(path));
	cg_shutdown();
	for (int h = 0; h < NHIER; h++) {
		snprintf(path, sizeof(path), "%s/%s/ev", dir, hiers[h]);
		UNIT_CHECKF(!exists(path), "%s left", path);
	}
out:
	cg_shutdown();
	unsetenv("EDGEVISOR_CGROUP_ROOT");
	if (made) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		(void)!system(cmd);
	}
}

static bool
is_v1(const char *h)
{
	char path[128];
	struct statfs sfs;

	snprintf(path, sizeof(path), "%s/%s", V1_ROOT, h);
	return statfs(path, &sfs) == 0 && sfs.f_type == CGROUP_SUPER_MAGIC;
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	unsetenv("EDGEVISOR_CGROUP_ROOT");
	if (getenv("UNIT_DEBUG") != NULL)
		log_level = LOG_LVL_DEBUG;
	snprintf(parent, sizeof(parent), "edgevisor-test-%d", (int)getpid());
	own_parse();
	/* Orphaned grandchildren come back to us, so we can reap what we start. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	v1_live = geteuid() == 0 && is_v1("cpu") && is_v1("cpuacct") && is_v1("memory");
	nhier = is_v1("pids") ? 4 : 3;
	atexit(scrub);
	/* The live v1 cases, in order (each builds on the state the one before left). */
	static const struct {
		const char *name;
		void (*fn)(void);
		bool needs_pids;
	} live[] = {
		{ "v1_stale_setup", case_stale_setup, false },
		{ "v1_init_and_stale_cleanup", case_v1_init, false },
		{ "v1_caps", case_v1_caps, false },
		{ "v1_attach_stats_throttle", case_v1_attach_stats, false },
		{ "v1_kill_remove", case_v1_kill_remove, false },
		{ "v1_oom_kill", case_v1_oom, false },
		{ "v1_function_remove", case_v1_function_remove, false },
		{ "v1_remove_on_loop", case_v1_remove_on_loop, false },
		{ "v1_pids_cap_fork_loop", case_v1_pids_cap, true },
		{ "v1_shutdown", case_v1_shutdown, false },
		{ "v1_in_use", case_v1_in_use, false },
		{ "v1_not_root", case_v1_not_root, false },
	};
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		if (!v1_live)
			unit_skip(live[i].name, geteuid() != 0 ? "needs root" :
			    "needs v1 cpu, cpuacct and memory hierarchies");
		else if (live[i].needs_pids && nhier <= H_PIDS)
			unit_skip(live[i].name, "no v1 pids hierarchy");
		else
			unit_run(live[i].name, live[i].fn);
	}
	unit_run("no_hierarchy", case_no_hierarchy);
	if (geteuid() == 0)
		unit_run("readonly_root", case_readonly);
	else
		unit_skip("readonly_root", "needs root");
	unit_run("v2_fake_tree", case_v2_fake);
	unit_run("v1_fake_tree", case_v1_fake);
	cg_shutdown();
	scrub();
	return unit_exit();
}
