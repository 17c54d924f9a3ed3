/*
 * net.c - endpoint addresses: parsing, listening, connecting, and the one policy for
 * a unix socket file left in the way.
 */
#include "net.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

_Static_assert(NET_UNIX_PATH_MAX == sizeof(((struct sockaddr_un *)0)->sun_path),
    "NET_UNIX_PATH_MAX is sun_path");

#define FORMS "must be \"host:port\", \"[v6]:port\" or \"unix:/path\""

/* "1".."65535", digits only; writes it without leading zeros. */
static int
parse_port(const char *p, char out[6])
{
	unsigned long port = 0;

	if (*p == '\0')
		return -1;
	for (; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return -1;
		port = port * 10 + (unsigned long)(*p - '0');
		if (port > 65535)
			return -1;
	}
	if (port == 0)
		return -1;
	snprintf(out, 6, "%lu", port);
	return 0;
}

/* Dot-separated labels of letters, digits and inner hyphens, at most 253 bytes. */
static bool
host_name_ok(const char *host)
{
	size_t len = strlen(host);

	if (len == 0 || len > 253)
		return false;
	for (const char *label = host, *end;; label = end + 1) {
		size_t l;

		if ((end = strchr(label, '.')) == NULL)
			end = label + strlen(label);
		l = (size_t)(end - label);
		if (l == 0 || l > 63 || label[0] == '-' || label[l - 1] == '-' ||
		    strspn(label, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") < l)
			return false;
		if (*end == '\0')
			return true;
	}
}

/* A->host as a numeric address of FAMILY; its canonical form from inet_ntop. */
static int
numeric_host(struct net_addr *a, int family)
{
	unsigned char bin[sizeof(struct in6_addr)];
	char ip[INET6_ADDRSTRLEN];

	if (inet_pton(family, a->host, bin) != 1)
		return -1;
	a->family = family;
	inet_ntop(family, bin, ip, sizeof(ip));
	snprintf(a->canon, sizeof(a->canon), family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip,
	    a->port);
	return 0;
}

static int
parse_tcp(const char *s, struct net_addr *a, const char **why)
{
	const char *colon = strrchr(s, ':');
	size_t hlen;

	if (colon == NULL) {
		*why = FORMS;
		return -1;
	}
	if (parse_port(colon + 1, a->port) < 0) {
		*why = "port must be a number between 1 and 65535";
		return -1;
	}
	hlen = (size_t)(colon - s);
	if (s[0] == '[') {
		*why = "bad IPv6 address";
		if (hlen < 3 || s[hlen - 1] != ']' || hlen - 2 >= sizeof(a->host))
			return -1;
		memcpy(a->host, s + 1, hlen - 2);
		a->host[hlen - 2] = '\0';
		return numeric_host(a, AF_INET6);
	}
	if (hlen == 0 || hlen > 253) {
		*why = "missing or too long host";
		return -1;
	}
	memcpy(a->host, s, hlen);
	a->host[hlen] = '\0';
	if (strspn(a->host, "0123456789.") == hlen) {
		*why = "bad IPv4 address";
		return numeric_host(a, AF_INET);
	}
	if (!host_name_ok(a->host)) {
		*why = strchr(a->host, ':') != NULL ?
		    "bad host name (an IPv6 address goes in brackets: \"[::1]:8080\")" :
		    "bad host name";
		return -1;
	}
	for (char *c = a->host; *c != '\0'; c++)
		*c = (char)tolower((unsigned char)*c);
	a->family = AF_UNSPEC;
	snprintf(a->canon, sizeof(a->canon), "%s:%s", a->host, a->port);
	return 0;
}

int
net_parse(const char *s, struct net_addr *a, const char **why)
{
	memset(a, 0, sizeof(*a));
	if (strncmp(s, "unix:", 5) == 0) {
		if (s[5] != '/') {
			*why = "unix socket path must be absolute";
			return -1;
		}
		if (strlen(s + 5) >= sizeof(a->path)) {
			*why = "unix socket path too long";
			return -1;
		}
		a->kind = NET_UNIX;
		a->family = AF_UNIX;
		strcpy(a->path, s + 5);
		snprintf(a->canon, sizeof(a->canon), "unix:%s", a->path);
		return 0;
	}
	a->kind = NET_TCP;
	return parse_tcp(s, a, why);
}

static void
sun_of(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
}

int
net_unix_claim(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd, rc, saved;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "the path exists and is not a socket");
		return -1;
	}
	/* Someone answering there is alive: never steal its socket. */
	sun_of(path, &sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	close(fd);
	if (rc == 0 || saved == EAGAIN || saved == EINPROGRESS) {
		snprintf(err, errlen, "in use by another process (a socket someone is "
		    "listening on)");
		return -1;
	}
	if (saved != ECONNREFUSED && saved != ENOENT) {
		snprintf(err, errlen, "cannot tell whether the socket is in use: %s",
		    strerror(saved));
		return -1;
	}
	/* Nobody listens: left over from a process that died. */
	if (unlink(path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the stale socket: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int
net_unix_id(const char *path, struct net_unix_id *id)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -1;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	return 0;
}

void
net_unix_release(const char *path, const struct net_unix_id *id)
{
	struct stat st;

	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == id->dev &&
	    st.st_ino == id->ino)
		unlink(path);
}

static int
listen_unix(const struct net_addr *a, const struct net_listen_opts *o, char *err,
    size_t errlen)
{
	struct sockaddr_un sun;
	mode_t old = 0;
	int fd = -1, rc, saved;
	bool bound = false;

	if (net_unix_claim(a->path, err, errlen) < 0)
		return -1;
	sun_of(a->path, &sun);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	/* Born with its mode: no window in which another user could connect. */
	if (o->unix_mode != 0)
		old = umask(~o->unix_mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	saved = errno;
	if (o->unix_mode != 0)
		umask(old);
	errno = saved;
	if (rc < 0)
		goto fail;
	bound = true;
	if ((o->unix_mode != 0 && chmod(a->path, o->unix_mode) < 0) ||
	    listen(fd, o->backlog) < 0)
		goto fail;
	return fd;
fail:
	saved = errno;
	snprintf(err, errlen, "%s", strerror(saved));
	if (bound)
		unlink(a->path);
	if (fd >= 0)
		close(fd);
	errno = saved;
	return -1;
}

static bool
is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static int
listen_tcp(const struct net_addr *a, const struct net_listen_opts *o, char *err,
    size_t errlen)
{
	struct addrinfo hints = {
		.ai_family = a->family, .ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL;
	int fd = -1, one = 1, r, saved;

	if ((r = getaddrinfo(a->host, a->port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s", r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return -1;
	}
	if (o->loopback_only && !is_loopback(res->ai_addr)) {
		snprintf(err, errlen, "not a loopback address: this endpoint has no "
		    "authentication (use 127.0.0.1, [::1] or a unix socket)");
		freeaddrinfo(res);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/*
	 * Accepted sockets inherit TCP_NODELAY from the listener: set once here, not
	 * once per connection on the hand-off path. TCP_DEFER_ACCEPT: a connection is
	 * accepted when its first bytes are there, so the worker's first read finds
	 * the request instead of registering for it (no EAGAIN, no epoll_ctl pair).
	 */
	if (o->nodelay)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->defer_accept_s > 0)
		setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &o->defer_accept_s,
		    sizeof(o->defer_accept_s));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, o->backlog) < 0)
		goto fail;
	freeaddrinfo(res);
	return fd;
fail:
	saved = errno;
	snprintf(err, errlen, "%s", strerror(saved));
	if (fd >= 0)
		close(fd);
	freeaddrinfo(res);
	errno = saved;
	return -1;
}

int
net_listen(const struct net_addr *a, const struct net_listen_opts *o, char *err,
    size_t errlen)
{
	if (a->kind == NET_UNIX)
		return listen_unix(a, o, err, errlen);
	return listen_tcp(a, o, err, errlen);
}

/* Connects a new socket of AI's kind; returns the fd or -1 with errno. */
static int
connect_one(int family, const struct sockaddr *sa, socklen_t len)
{
	int fd, saved;

	if ((fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, sa, len) == 0)
		return fd;
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
net_connect(const struct net_addr *a, int timeout_s)
{
	struct addrinfo hints = {
		.ai_family = a->family, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV,
	};
	struct addrinfo *res = NULL, *ai;
	struct timeval tv = { timeout_s, 0 };
	struct sockaddr_un sun;
	int fd = -1, saved = ECONNREFUSED, r;

	if (a->kind == NET_UNIX) {
		sun_of(a->path, &sun);
		if ((fd = connect_one(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun))) < 0)
			return -1;
	} else {
		if ((r = getaddrinfo(a->host, a->port, &hints, &res)) != 0) {
			errno = r == EAI_SYSTEM ? errno : EHOSTUNREACH;
			return -1;
		}
		for (ai = res; ai != NULL && fd < 0; ai = ai->ai_next)
			if ((fd = connect_one(ai->ai_family, ai->ai_addr, ai->ai_addrlen)) < 0)
				saved = errno;
		freeaddrinfo(res);
		if (fd < 0) {
			errno = saved;
			return -1;
		}
	}
	if (timeout_s > 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	return fd;
}
