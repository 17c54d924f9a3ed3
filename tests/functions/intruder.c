/*
 * intruder.c - test function: a tenant attacking its host and its neighbours. Each
 * route makes attempts and answers one "name result" line per attempt ("ok", or
 * the errno name, or what it got), so the test tells a refusal from a success.
 *
 *   /sys[?inproc=1]  unshare(CLONE_NEWUSER), ptrace(PTRACE_TRACEME), mount(tmpfs),
 *                    clone(CLONE_NEWUSER), and mount inside a fresh user+mount
 *                    namespace: each in a forked child (so that with no filter a
 *                    success harms nobody); inproc=1 also in the worker itself
 *   /peer?pid=N      kill(N, 0), kill(N, SIGKILL), ptrace(PTRACE_ATTACH, N),
 *                    open /proc/N/environ and /proc/N/mem
 *   /file?path=P     open P for reading
 *   /unix?path=P     connect to the unix socket P
 *   /tcp?port=N      POST /stop to 127.0.0.1:N without a token: the status line
 *   /cgroup?path=P   write our pid into the cgroup.procs file P
 *   /stray           fork a child that leaves our session and ignores SIGTERM
 *   /fake?ms=N       burn N ms of CPU time (not wall time: the host may be busy) and
 *                    hold 64 MiB while a thread keeps writing 0 into the
 *                    scoreboard's cpu_ms and rss_kb, until 3 s after the burn
 *   /uid             getuid, getgid
 */
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "board.h"
#include "edgevisor.h"
#include "query.h"

struct out {
	char buf[2048];
	int len;
};

static void __attribute__((format(printf, 2, 3)))
say(struct out *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	o->len += vsnprintf(o->buf + o->len, sizeof(o->buf) - (size_t)o->len, fmt, ap);
	va_end(ap);
}

static const char *
res(long rc)
{
	return rc >= 0 ? "ok" : strerrorname_np(errno);
}

/* Runs ATTEMPT in a forked child; its result (an errno, 0 = success) via a pipe. */
static const char *
in_child(int (*attempt)(void))
{
	int p[2], e = -1;
	pid_t pid;

	if (pipe(p) < 0)
		return "pipe_failed";
	if ((pid = fork()) == 0) {
		e = attempt();
		if (write(p[1], &e, sizeof(e)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &e, sizeof(e)) != sizeof(e))
		e = -1;
	close(p[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	return e == 0 ? "ok" : e < 0 ? "lost" : strerrorname_np(e);
}

static int
try_unshare(void)
{
	return unshare(CLONE_NEWUSER) == 0 ? 0 : errno;
}

static int
try_traceme(void)
{
	return ptrace(PTRACE_TRACEME, 0, NULL, NULL) == 0 ? 0 : errno;
}

static int
try_mount(void)
{
	return mount("none", "/tmp", "tmpfs", 0, NULL) == 0 ? 0 : errno;
}

static int
try_clone(void)
{
	long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);

	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno;
	waitpid((pid_t)pid, NULL, 0);
	return 0;
}

/* In a namespace of our own the kernel lets us mount: only the filter says no. */
static int
try_mount_userns(void)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return errno;
	return mount("none", "/tmp", "tmpfs", 0, NULL) == 0 ? 0 : errno;
}

static void
do_sys(edge_req *req, struct out *o)
{
	if (query_is(req, "inproc", "1")) {
		say(o, "inproc_unshare %s\n", res(unshare(CLONE_NEWUSER)));
		say(o, "inproc_ptrace %s\n", res(ptrace(PTRACE_TRACEME, 0, NULL, NULL)));
		say(o, "inproc_mount %s\n", res(mount("none", "/tmp", "tmpfs", 0, NULL)));
	}
	say(o, "unshare %s\n", in_child(try_unshare));
	say(o, "ptrace %s\n", in_child(try_traceme));
	say(o, "mount %s\n", in_child(try_mount));
	say(o, "clone_newuser %s\n", in_child(try_clone));
	say(o, "mount_userns %s\n", in_child(try_mount_userns));
}

static void
do_peer(edge_req *req, struct out *o)
{
	pid_t pid = (pid_t)query_long(req, "pid", 0);
	char path[64];
	int fd;

	say(o, "kill0 %s\n", res(kill(pid, 0)));
	say(o, "kill9 %s\n", res(kill(pid, SIGKILL)));
	say(o, "ptrace_attach %s\n", res(ptrace(PTRACE_ATTACH, pid, NULL, NULL)));
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY);
	say(o, "environ %s\n", res(fd));
	if (fd >= 0) {
		char b[64];
		say(o, "environ_bytes %zd\n", read(fd, b, sizeof(b)));
		close(fd);
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY);
	say(o, "mem %s\n", res(fd));
	if (fd >= 0)
		close(fd);
}

static void
do_tcp(edge_req *req, struct out *o)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	static const char stop[] = "POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n";
	char line[128] = "";
	int s = socket(AF_INET, SOCK_STREAM, 0);
	ssize_t n = -1;

	sin.sin_port = htons((uint16_t)query_long(req, "port", 0));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s >= 0 && connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
	    write(s, stop, sizeof(stop) - 1) == (ssize_t)(sizeof(stop) - 1))
		n = read(s, line, sizeof(line) - 1);
	if (n > 0) {
		line[n] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		say(o, "stop %s\n", line);
	} else {
		say(o, "stop %s\n", res(-1));
	}
	if (s >= 0)
		close(s);
}

static void
do_stray(struct out *o)
{
	pid_t pid = fork();

	if (pid == 0) {
		setsid();
		signal(SIGTERM, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		for (;;)
			pause();
	}
	say(o, "stray %d\n", (int)pid);
}

/* The scoreboard is in our address space: find its mapping by the memfd's name. */
static struct board *
find_board(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	struct board *b = NULL;

	while (f != NULL && b == NULL && fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo;

		if (strstr(line, "edgevisor-board") != NULL && strstr(line, "rw-s") != NULL &&
		    sscanf(line, "%lx-", &lo) == 1)
			b = (struct board *)lo;
	}
	if (f != NULL)
		fclose(f);
	return b;
}

static long long
clock_of(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long
now_ms(void)
{
	return clock_of(CLOCK_MONOTONIC);
}

static long long fake_until;

static void *
faker(void *arg)
{
	struct board *b = arg;

	/* The supervisor measures CPU and memory itself (/proc, cgroups), so there is no
	 * figure of them here to fake: zero every counter the board has instead. */
	while (now_ms() < fake_until) {
		memset((char *)b + offsetof(struct board, requests), 0,
		    offsetof(struct board, unload_reason) - offsetof(struct board, requests));
		usleep(500);
	}
	return NULL;
}

static void
do_fake(edge_req *req, struct out *o)
{
	long ms = query_long(req, "ms", 1000);
	struct board *b = find_board();
	static char *hold;
	pthread_t t;
	long long end;
	volatile unsigned long spin = 0;

	say(o, "board %s\n", b != NULL ? "found" : "missing");
	if (b == NULL)
		return;
	fake_until = now_ms() + 3600 * 1000;
	if (pthread_create(&t, NULL, faker, b) == 0)
		pthread_detach(t);
	if (hold == NULL && (hold = malloc(64 << 20)) != NULL)
		memset(hold, 1, 64 << 20);
	for (end = clock_of(CLOCK_THREAD_CPUTIME_ID) + ms;
	    clock_of(CLOCK_THREAD_CPUTIME_ID) < end;)
		spin++;
	fake_until = now_ms() + 3000;
	say(o, "faked requests %llu\n",
	    (unsigned long long)__atomic_load_n(&b->requests, __ATOMIC_RELAXED));
}

static void
intruder_handle(edge_req *req, edge_res *res_)
{
	const char *p = edge_req_path(req);
	char path[256];
	struct out o = { .len = 0 };
	int fd;

	if (strcmp(p, "/sys") == 0) {
		do_sys(req, &o);
	} else if (strcmp(p, "/peer") == 0) {
		do_peer(req, &o);
	} else if (strcmp(p, "/file") == 0 && query_str(req, "path", path, sizeof(path)) == 0) {
		fd = open(path, O_RDONLY);
		say(&o, "read %s\n", res(fd));
		if (fd >= 0)
			close(fd);
	} else if (strcmp(p, "/unix") == 0 &&
	    query_str(req, "path", path, sizeof(path)) == 0) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);

		memcpy(sun.sun_path, path, strnlen(path, sizeof(sun.sun_path) - 1));
		say(&o, "connect %s\n", res(s < 0 ? -1 :
		    connect(s, (struct sockaddr *)&sun, sizeof(sun))));
		if (s >= 0)
			close(s);
	} else if (strcmp(p, "/tcp") == 0) {
		do_tcp(req, &o);
	} else if (strcmp(p, "/cgroup") == 0 &&
	    query_str(req, "path", path, sizeof(path)) == 0) {
		char pid[16];
		int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());

		fd = open(path, O_WRONLY);
		say(&o, "cgroup_write %s\n", res(fd < 0 ? -1 : write(fd, pid, (size_t)n)));
		if (fd >= 0)
			close(fd);
	} else if (strcmp(p, "/stray") == 0) {
		do_stray(&o);
	} else if (strcmp(p, "/fake") == 0) {
		do_fake(req, &o);
	}
	say(&o, "uid %d gid %d pid %d\n", (int)getuid(), (int)getgid(), (int)getpid());
	edge_res_send(res_, 200, "text/plain", o.buf, (size_t)o.len);
}

EDGE_FUNCTION(NULL, intruder_handle);
