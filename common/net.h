/*
 * net.h - the one place that knows what an endpoint address is and how to open one:
 * the config checks listen and admin addresses with net_parse, dispatch and the admin
 * endpoint listen with net_listen, edgevisorctl connects with net_connect.
 *
 *	unix:/abs/path      a unix stream socket (path shorter than sun_path)
 *	host:port           an IPv4 address or a host name (labels of [A-Za-z0-9-])
 *	[v6]:port           an IPv6 address
 *
 * port is 1-65535. A unix socket file is claimed by net_unix_claim: one policy for
 * every listener (see there).
 */
#ifndef EV_NET_H
#define EV_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define NET_UNIX_PATH_MAX 108      /* sizeof(sun_path), NUL included */
#define NET_ADDR_MAX      288      /* the longest canonical form, NUL included */

enum net_kind { NET_UNIX = 1, NET_TCP };

struct net_addr {
	enum net_kind kind;
	char path[NET_UNIX_PATH_MAX];   /* NET_UNIX: the socket file */
	char host[256];                 /* NET_TCP: IPv4, IPv6 (no brackets) or a name */
	char port[6];                   /* NET_TCP: decimal, no leading zero */
	int family;                     /* AF_INET, AF_INET6, or AF_UNSPEC for a name */
	/*
	 * One endpoint, one string: "unix:/p", "1.2.3.4:80", "[::1]:80", "name:80"
	 * (lower case), so two spellings of an address compare equal.
	 */
	char canon[NET_ADDR_MAX];
};

/* Parses S into *A. Returns 0, or -1 with a short reason in *WHY (a static string). */
int net_parse(const char *s, struct net_addr *a, const char **why);

struct net_listen_opts {
	int backlog;
	bool nodelay;            /* TCP_NODELAY on the listener: accepted sockets inherit it */
	int defer_accept_s;      /* TCP_DEFER_ACCEPT, 0 = off */
	bool loopback_only;      /* refuse an address that is not loopback */
	mode_t unix_mode;        /* the socket file is born with this mode; 0 = umask's */
};

/*
 * A non-blocking, close-on-exec listening socket on A: SO_REUSEADDR, IPV6_V6ONLY
 * for IPv6, the first address a host name resolves to; a unix socket file is
 * claimed first (net_unix_claim). Returns the fd, or -1 with a one-line reason
 * (without the address) in ERR.
 */
int net_listen(const struct net_addr *a, const struct net_listen_opts *o, char *err,
    size_t errlen);

/*
 * The stale-socket policy, for every unix listener: PATH absent is free; a socket
 * file nobody listens on (connect: ECONNREFUSED) is left over from a dead process and
 * removed; a socket another live process is listening on is refused ("in use by
 * another process"), and so is anything that is not a socket (never removed).
 * Returns 0 when PATH is free to bind, or -1 with the reason in ERR.
 */
int net_unix_claim(const char *path, char *err, size_t errlen);

/*
 * The socket file a listener bound, known by its identity: at close it is removed
 * only while it is still ours (another process may have claimed the path since).
 */
struct net_unix_id {
	dev_t dev;
	ino_t ino;
};
/* Records the identity of the socket file at PATH. Returns 0, or -1 with errno. */
int net_unix_id(const char *path, struct net_unix_id *id);
/* Removes PATH if it is still the file ID names; anything else is left alone. */
void net_unix_release(const char *path, const struct net_unix_id *id);

/*
 * A connected, blocking, close-on-exec socket to A (every address a name resolves
 * to, in order), with send and receive timeouts of TIMEOUT_S seconds (0 = none).
 * Returns the fd, or -1 with errno.
 */
int net_connect(const struct net_addr *a, int timeout_s);

#endif
