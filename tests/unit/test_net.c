/*
 * test_net.c - common/net.c: every address form and its refusals, the canonical
 * forms, the stale-socket policy (a dead socket is replaced, a live one refused, a
 * file never touched), the options a listener carries, and connecting to it.
 */
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../common/net.h"
#include "unit.h"

static char dir[PATH_MAX];

static void
case_parse_valid(void)
{
	static const struct {
		const char *in, *canon;
		enum net_kind kind;
		const char *host, *port;
	} ok[] = {
		{ "127.0.0.1:8080", "127.0.0.1:8080", NET_TCP, "127.0.0.1", "8080" },
		{ "0.0.0.0:1", "0.0.0.0:1", NET_TCP, "0.0.0.0", "1" },
		{ "127.0.0.1:065535", "127.0.0.1:65535", NET_TCP, "127.0.0.1", "65535" },
		{ "[::1]:80", "[::1]:80", NET_TCP, "::1", "80" },
		{ "[0:0:0:0:0:0:0:1]:80", "[::1]:80", NET_TCP, "0:0:0:0:0:0:0:1", "80" },
		{ "[::ffff:127.0.0.1]:80", "[::ffff:127.0.0.1]:80", NET_TCP, NULL, "80" },
		{ "LocalHost:9000", "localhost:9000", NET_TCP, "localhost", "9000" },
		{ "a-1.example.org:443", "a-1.example.org:443", NET_TCP, NULL, "443" },
		{ "unix:/run/x.sock", "unix:/run/x.sock", NET_UNIX, NULL, NULL },
		{ "unix:/", "unix:/", NET_UNIX, NULL, NULL },
	};
	struct net_addr a;
	const char *why = NULL;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		UNIT_CHECKF(net_parse(ok[i].in, &a, &why) == 0, "%s: %s", ok[i].in, why);
		UNIT_CHECKF(a.kind == ok[i].kind && strcmp(a.canon, ok[i].canon) == 0,
		    "%s: canon %s", ok[i].in, a.canon);
		UNIT_CHECKF(ok[i].host == NULL || strcmp(a.host, ok[i].host) == 0,
		    "%s: host %s", ok[i].in, a.host);
		UNIT_CHECKF(ok[i].port == NULL || strcmp(a.port, ok[i].port) == 0,
		    "%s: port %s", ok[i].in, a.port);
	}
	UNIT_CHECK(net_parse("unix:/run/x.sock", &a, &why) == 0 &&
	    strcmp(a.path, "/run/x.sock") == 0);
out:
	;
}

static void
case_parse_invalid(void)
{
	static const char *const bad[][2] = {
		{ "", "must be \"host:port\"" },
		{ "localhost", "must be \"host:port\"" },
		{ "127.0.0.1:", "port must be a number between 1 and 65535" },
		{ "127.0.0.1:0", "port must be" },
		{ "127.0.0.1:65536", "port must be" },
		{ "127.0.0.1:99999999999999999999", "port must be" },
		{ "127.0.0.1:80x", "port must be" },
		{ "127.0.0.1:-1", "port must be" },
		{ "127.0.0.1: 80", "port must be" },
		{ ":8080", "missing or too long host" },
		{ "256.0.0.1:80", "bad IPv4 address" },
		{ "1.2.3:80", "bad IPv4 address" },
		{ "[::1:80", "bad IPv6 address" },
		{ "[]:80", "bad IPv6 address" },
		{ "[::g]:80", "bad IPv6 address" },
		{ "[127.0.0.1]:80", "bad IPv6 address" },
		{ "::1:80", "an IPv6 address goes in brackets" },
		{ "-a.org:80", "bad host name" },
		{ "a..org:80", "bad host name" },
		{ "a_b:80", "bad host name" },
		{ "a b:80", "bad host name" },
		{ "*:80", "bad host name" },
		{ "unix:run/x.sock", "unix socket path must be absolute" },
		{ "unix:", "unix socket path must be absolute" },
	};
	char longpath[200], longhost[300];
	struct net_addr a;
	const char *why;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = "";
		UNIT_CHECKF(net_parse(bad[i][0], &a, &why) < 0, "%s: accepted", bad[i][0]);
		UNIT_CHECKF(strstr(why, bad[i][1]) != NULL, "%s: says %s", bad[i][0], why);
	}
	snprintf(longpath, sizeof(longpath), "unix:/%0150d", 0);
	UNIT_CHECK(net_parse(longpath, &a, &why) < 0 && strstr(why, "too long") != NULL);
	memset(longhost, 'a', sizeof(longhost));
	strcpy(longhost + 260, ":80");
	UNIT_CHECK(net_parse(longhost, &a, &why) < 0 && strstr(why, "too long") != NULL);
out:
	;
}

/* A in the test directory, socket file NAME; its path is A->path. */
static int
unix_addr(const char *name, struct net_addr *a)
{
	char spec[PATH_MAX + 16];
	const char *why;

	snprintf(spec, sizeof(spec), "unix:%s/%s", dir, name);
	return net_parse(spec, a, &why);
}

static int
unix_listener(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 1) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Dead socket replaced, live one refused (and kept), a file never removed. */
static void
case_stale_policy(void)
{
	struct net_listen_opts o = { .backlog = 8, .unix_mode = 0600 };
	char err[256];
	struct net_addr a = { 0 };
	const char *path = a.path;
	struct stat st;
	int live = -1, fd = -1, fd2 = -1;

	UNIT_CHECK(unix_addr("s.sock", &a) == 0);

	/* Nothing there: free. */
	UNIT_CHECK(net_unix_claim(path, err, sizeof(err)) == 0);
	/* A live listener: refused, and its file stays. */
	UNIT_CHECK((live = unix_listener(path)) >= 0);
	UNIT_CHECKF(net_unix_claim(path, err, sizeof(err)) < 0 &&
	    strstr(err, "in use by another process") != NULL, "live: %s", err);
	UNIT_CHECK(net_listen(&a, &o, err, sizeof(err)) < 0);
	UNIT_CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	/* Its process gone (closed, file left): replaced. */
	close(live);
	live = -1;
	UNIT_CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode));
	UNIT_CHECKF((fd = net_listen(&a, &o, err, sizeof(err))) >= 0, "stale: %s", err);
	UNIT_CHECK(lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    (st.st_mode & 0777) == 0600);
	/* Ours is live now: a second listener must not steal it. */
	UNIT_CHECK((fd2 = net_listen(&a, &o, err, sizeof(err))) < 0);
	UNIT_CHECK(strstr(err, "in use by another process") != NULL);
	close(fd);
	fd = -1;
	unlink(path);

	/* A regular file in the way is an error and stays as it was. */
	{
		FILE *f = fopen(path, "w");

		UNIT_CHECK(f != NULL);
		fputs("precious\n", f);
		fclose(f);
	}
	UNIT_CHECKF(net_listen(&a, &o, err, sizeof(err)) < 0 &&
	    strstr(err, "not a socket") != NULL, "file: %s", err);
	UNIT_CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 9);
	unlink(path);
	/* A directory too. */
	UNIT_CHECK(mkdir(path, 0700) == 0);
	UNIT_CHECK(net_unix_claim(path, err, sizeof(err)) < 0);
	UNIT_CHECK(rmdir(path) == 0);
out:
	if (live >= 0)
		close(live);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	unlink(path);
}

/* At close only our own socket file goes: not one that took the path since. */
static void
case_release(void)
{
	struct net_listen_opts o = { .backlog = 4 };
	char err[256];
	struct net_unix_id id, other;
	struct net_addr a = { 0 };
	const char *path = a.path;
	struct stat st;
	int fd = -1, fd2 = -1;

	UNIT_CHECK(unix_addr("r.sock", &a) == 0);
	UNIT_CHECK((fd = net_listen(&a, &o, err, sizeof(err))) >= 0);
	UNIT_CHECK(net_unix_id(path, &id) == 0);
	/* Someone else's socket now stands at the path. */
	UNIT_CHECK(unlink(path) == 0);
	UNIT_CHECK((fd2 = net_listen(&a, &o, err, sizeof(err))) >= 0);
	UNIT_CHECK(net_unix_id(path, &other) == 0 && other.ino != id.ino);
	net_unix_release(path, &id);
	UNIT_CHECK(lstat(path, &st) == 0 && st.st_ino == other.ino);
	net_unix_release(path, &other);
	UNIT_CHECK(lstat(path, &st) < 0 && errno == ENOENT);
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	unlink(path);
}

static int
sockopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	return getsockopt(fd, level, name, &v, &len) < 0 ? -1 : v;
}

/* What dispatch asks for is what the listener has; connecting to it works. */
static void
case_tcp_listener(void)
{
	struct net_listen_opts o = { .backlog = 16, .nodelay = true, .defer_accept_s = 1 };
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char err[256], spec[64];
	struct net_addr a;
	const char *why;
	int fd = -1, c = -1;

	UNIT_CHECK(net_parse("127.0.0.1:1", &a, &why) == 0);
	/* Port 1 needs root, and is normally free: use an ephemeral one instead. */
	strcpy(a.port, "0");
	UNIT_CHECKF((fd = net_listen(&a, &o, err, sizeof(err))) >= 0, "%s", err);
	UNIT_CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC));
	UNIT_CHECK(sockopt(fd, SOL_SOCKET, SO_REUSEADDR) == 1);
	UNIT_CHECK(sockopt(fd, IPPROTO_TCP, TCP_NODELAY) == 1);
	UNIT_CHECK(sockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT) > 0);
	UNIT_CHECK(sockopt(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1);
	UNIT_CHECK(getsockname(fd, (struct sockaddr *)&sin, &len) == 0);
	snprintf(spec, sizeof(spec), "localhost:%u", ntohs(sin.sin_port));
	UNIT_CHECK(net_parse(spec, &a, &why) == 0);
	UNIT_CHECKF((c = net_connect(&a, 5)) >= 0, "connect %s: %s", spec, strerror(errno));
	UNIT_CHECK(fcntl(c, F_GETFD) & FD_CLOEXEC);
out:
	if (fd >= 0)
		close(fd);
	if (c >= 0)
		close(c);
}

static void
case_v6_and_loopback(void)
{
	struct net_listen_opts o = { .backlog = 4, .loopback_only = true };
	char err[256];
	struct net_addr a;
	const char *why;
	int fd = -1;

	UNIT_CHECK(net_parse("0.0.0.0:1", &a, &why) == 0);
	strcpy(a.port, "0");
	UNIT_CHECKF(net_listen(&a, &o, err, sizeof(err)) < 0 &&
	    strstr(err, "not a loopback address") != NULL, "%s", err);
	UNIT_CHECK(net_parse("[::1]:1", &a, &why) == 0);
	strcpy(a.port, "0");
	fd = net_listen(&a, &o, err, sizeof(err));
	/* A host without IPv6 cannot bind ::1; that is not what this checks. */
	if (fd < 0 && errno == EADDRNOTAVAIL)
		goto out;
	UNIT_CHECKF(fd >= 0, "%s", err);
	UNIT_CHECK(sockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
out:
	if (fd >= 0)
		close(fd);
}

static void
case_unix_connect(void)
{
	struct net_listen_opts o = { .backlog = 4 };
	char err[256];
	struct net_addr a = { 0 };
	const char *path = a.path;
	int fd = -1, c = -1;

	UNIT_CHECK(unix_addr("c.sock", &a) == 0);
	UNIT_CHECK(net_connect(&a, 1) < 0 && errno == ENOENT);
	UNIT_CHECKF((fd = net_listen(&a, &o, err, sizeof(err))) >= 0, "%s", err);
	UNIT_CHECK((c = net_connect(&a, 1)) >= 0);
	UNIT_CHECK(sockopt(c, SOL_SOCKET, SO_TYPE) == SOCK_STREAM);
out:
	if (fd >= 0)
		close(fd);
	if (c >= 0)
		close(c);
	unlink(path);
}

int
main(int argc, char **argv)
{
	char tmpl[] = "/tmp/ev-test-net.XXXXXX";

	if (unit_chdir_root(argc, argv) < 0 || mkdtemp(tmpl) == NULL)
		return 1;
	snprintf(dir, sizeof(dir), "%s", tmpl);
	unit_run("parse_valid", case_parse_valid);
	unit_run("parse_invalid", case_parse_invalid);
	unit_run("stale_policy", case_stale_policy);
	unit_run("release", case_release);
	unit_run("tcp_listener", case_tcp_listener);
	unit_run("v6_and_loopback", case_v6_and_loopback);
	unit_run("unix_connect", case_unix_connect);
	rmdir(dir);
	return unit_exit();
}
