/*
 * router.c - the shared listeners (see router.h).
 *
 * A routed connection's life here: accepted (non-blocking), its head peeked with
 * recv(MSG_PEEK) - usually whole at once, TCP_DEFER_ACCEPT waited for its first
 * bytes - and parsed with libhttp-parser only up to the end of the head (request
 * line and Host); then dispatch_to_pool() of the function its route names, with
 * nothing consumed. A head that has not arrived whole is read (consumed) into the
 * connection's buffer instead, so that a half-sent head cannot keep the socket
 * readable and the loop spinning; those bytes travel to the worker with the fd.
 * Nothing here blocks: each connection waits on its own read event with the
 * listener's head_timeout_ms as its deadline, so a slowloris costs one buffer and
 * one event and delays nobody.
 */
#include "router.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/head.h"
#include "../common/list.h"
#include "../common/log.h"
#include "../common/net.h"
#include "../common/route.h"
#include "../common/wire.h"
#include "config.h"
#include "dispatch.h"
#include "pool.h"
#include "state.h"

#define ACCEPT_BURST   64
#define LINGER_MS      1000     /* after a refusal: read and discard, then close */
#define HEAD_CAP       WIRE_CARRY_MAX /* a listener's max_header_bytes is below it */
#define MOVES_PER_ROUND 64  /* one worker's event, before the loop turns */

struct rconn;

struct rlistener {
	TAILQ_ENTRY(rlistener) l_entry;
	char l_addr[256];
	uint32_t l_id;               /* names it in a wire_carry; never reused */
	int l_fd;
	struct net_addr l_na;
	struct net_unix_id l_uid;
	struct sockaddr_storage l_sa; /* the listening socket's own address */
	socklen_t l_salen;
	struct event *l_ev, *l_pause_ev;
	unsigned l_pauses;
	/* In force, and the pending config's (moved in at commit). */
	struct route_table l_routes, l_new_routes;
	uint32_t l_head_ms, l_max_head, l_new_head_ms, l_new_max_head;
	bool l_seen, l_fresh, l_has_new;
	TAILQ_HEAD(, rconn) l_conns;
};

struct rconn {
	TAILQ_ENTRY(rconn) c_entry;
	struct rlistener *c_l;
	int c_fd;
	struct event *c_ev;
	uint64_t c_deadline_ms;
	bool c_lingering;            /* refused: discarding input until EOF or the timer */
	uint32_t c_n;                /* bytes consumed into c_buf (or carried) */
	uint32_t c_cap;              /* c_buf's size: what was carried, HEAD_CAP once read into */
	char *c_buf;
};

static TAILQ_HEAD(, rlistener) rlisteners = TAILQ_HEAD_INITIALIZER(rlisteners);
static struct event_base *router_base;
static uint32_t next_id = 1;
/* Bumped whenever a commit changes some listener's routes; workers hear of it
 * (WIRE_CTL_ROUTES) and stop keeping connections routed under an older one. */
static uint32_t routes_epoch = 1;

/* The one peek buffer: a head is parsed whole from it and nothing is kept there. */
static char peekbuf[HEAD_CAP + 1];

static const struct { int status; const char *body; } refusals[] = {
	{ 400, "bad request\n" },
	{ 404, "no route\n" },
	{ 408, "request timeout\n" },
	{ 431, "request header fields too large\n" },
};

static void conn_cb(evutil_socket_t fd, short what, void *arg);

static void
conn_free(struct rconn *c)
{
	TAILQ_REMOVE(&c->c_l->l_conns, c, c_entry);
	if (c->c_ev != NULL)
		event_free(c->c_ev);
	if (c->c_fd >= 0)
		close(c->c_fd);
	free(c->c_buf);
	free(c);
}

static const char *
status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	default: return "Request Header Fields Too Large";
	}
}

/* (Re)arms C's read event with what is left of its deadline. */
static int
conn_wait(struct rconn *c)
{
	uint64_t now = clock_ms(), left = c->c_deadline_ms > now ? c->c_deadline_ms - now : 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000 * 1000) };

	if (c->c_ev == NULL &&
	    (c->c_ev = event_new(router_base, c->c_fd, EV_READ, conn_cb, c)) == NULL)
		return -1;
	return event_add(c->c_ev, &tv);
}

/*
 * A small fixed answer from the supervisor itself, never blocking: the socket's
 * buffer is empty, so it fits. Then the input is drained for a moment before the
 * close, so the client reads the answer instead of a reset.
 */
static void
refuse(struct rconn *c, int status, const char *why)
{
	char out[256];
	const char *body = "";
	int n;

	for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
		if (refusals[i].status == status)
			body = refusals[i].body;
	n = snprintf(out, sizeof(out), "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", status, status_text(status),
	    strlen(body), body);
	log_debug("route_refused", "addr=%s status=%d why=%s", log_qv(c->c_l->l_addr), status, why);
	(void)!send(c->c_fd, out, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (shutdown(c->c_fd, SHUT_WR) < 0) {
		conn_free(c);
		return;
	}
	c->c_lingering = true;
	c->c_deadline_ms = clock_ms() + LINGER_MS;
	if (conn_wait(c) < 0)
		conn_free(c);
}

/* ---- deciding -------------------------------------------------------------- */

/*
 * Fills CY's sticky fields: whether the worker may keep this connection's later
 * requests for the same route (route_sticky), and how it recognises them.
 */
static void
sticky_spec(struct dispatch_carry *cy, const struct rlistener *l, const struct route_hit *hit,
    const struct head *h, const char *fn)
{
	size_t hl = h->host_len, n;
	const char *colon;
	int w;

	cy->sticky = 0;
	cy->host[0] = cy->prefix[0] = '\0';
	if (!route_sticky(&l->l_routes, hit, h->host, h->host_len))
		return;
	if (h->host != NULL) {
		/* Lower case, without the port, as the worker compares it. */
		const char *br = memchr(h->host, ']', hl);

		colon = memchr(br ? br : h->host, ':', hl - (size_t)((br ? br : h->host) - h->host));
		if (colon != NULL)
			hl = (size_t)(colon - h->host);
		if (hl >= sizeof(cy->host))
			return;
		for (n = 0; n < hl; n++)
			cy->host[n] = (char)tolower((unsigned char)h->host[n]);
		cy->host[hl] = '\0';
	}
	w = hit->route->kind == ROUTE_SUPABASE ?
	    snprintf(cy->prefix, sizeof(cy->prefix), "%s/%s", hit->route->path, fn) :
	    snprintf(cy->prefix, sizeof(cy->prefix), "%s", hit->route->path);
	if (w < 0 || (size_t)w >= sizeof(cy->prefix)) {
		cy->prefix[0] = '\0';
		return;
	}
	cy->sticky = WIRE_STICKY | (h->host == NULL ? WIRE_STICKY_NOHOST : 0);
}

/*
 * The head H is whole: FD (of listener L, with the N bytes CARRIED already read
 * from it) goes to its function. Returns 0 (FD is dispatch's now), the status to
 * refuse it with (and *WHY), or -1: out of memory. FD stays the caller's unless 0.
 */
static int
route_to(const struct rlistener *l, int fd, const char *carried, uint32_t n,
    const struct head *h, const char **why)
{
	struct route_hit hit;
	struct dispatch_carry *cy;
	char fn[ROUTE_FN_LEN];
	struct pool *p;

	if (h->nhost > 1) {
		*why = "duplicate_host";
		return 400;
	}
	if (h->nhost == 0 && l->l_routes.has_host) {
		*why = "no_host";
		return 400;
	}
	if (route_match(&l->l_routes, h->host, h->host_len, h->path, h->path_len, &hit) < 0 ||
	    hit.fnlen >= sizeof(fn)) {
		*why = "no_route";
		return 404;
	}
	memcpy(fn, hit.fn, hit.fnlen);
	fn[hit.fnlen] = '\0';
	/* The route of the config in force names it; a function the reload removed
	 * (or a Supabase name nobody has) is a 404, never another function. */
	if ((p = pool_current(fn, sv.ready_gen)) == NULL) {
		*why = "no_function";
		return 404;
	}
	if ((cy = malloc(sizeof(*cy) + n)) == NULL)
		return -1;
	cy->listener = l->l_id;
	cy->strip = (uint32_t)hit.strip;
	cy->epoch = routes_epoch;
	sticky_spec(cy, l, &hit, h, fn);
	cy->nbytes = n;
	if (n > 0)
		memcpy(cy->bytes, carried, n);
	/* FD and CY are dispatch's now. */
	dispatch_to_pool(p, fd, clock_ms(), cy);
	return 0;
}

/* C's head H is whole: to its function (with what C carried), or refused. */
static void
decide(struct rconn *c, const struct head *h)
{
	const char *why = NULL;
	int r = route_to(c->c_l, c->c_fd, c->c_buf, c->c_n, h, &why);

	if (r == 0)
		c->c_fd = -1;   /* dispatched */
	if (r > 0)
		refuse(c, r, why);
	else
		conn_free(c);
}

/*
 * Looks at what C has sent so far (what it carried, then a peek): decides, waits
 * for more (consuming what came, see the top), or refuses.
 */
static void
conn_try(struct rconn *c)
{
	size_t max = c->c_l->l_max_head, n = c->c_n;
	struct head h;
	enum head_result r;
	ssize_t got;

	if (n > 0) {
		memcpy(peekbuf, c->c_buf, n);
		/* What a worker gave back often holds the whole next head: no peek then. */
		if (head_parse(peekbuf, n, &h) == HEAD_DONE) {
			decide(c, &h);
			return;
		}
	}
	/* What a worker gave back may hold more than max. */
	got = -1;
	errno = EAGAIN;
	if (n <= max) {
		do
			got = recv(c->c_fd, peekbuf + n, max + 1 - n, MSG_PEEK | MSG_DONTWAIT);
		while (got < 0 && errno == EINTR);
	}
	if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		conn_free(c);
		return;
	}
	if (got > 0)
		n += (size_t)got;
	r = head_parse(peekbuf, n, &h);
	if (r == HEAD_DONE) {
		decide(c, &h);
		return;
	}
	if (r == HEAD_BAD) {
		refuse(c, 400, "bad_head");
		return;
	}
	/* Still not whole at max bytes: it is longer than max. */
	if (n >= max) {
		refuse(c, 431, "head_too_large");
		return;
	}
	if (got == 0) {
		/* EOF before a whole head: nobody to answer. */
		conn_free(c);
		return;
	}
	if (got > 0) {
		/* Take it off the socket (see the top); it is carried to the worker. */
		if (c->c_cap < HEAD_CAP) {
			char *nb = realloc(c->c_buf, HEAD_CAP);

			if (nb == NULL) {
				conn_free(c);
				return;
			}
			c->c_buf = nb;
			c->c_cap = HEAD_CAP;
		}
		do
			got = recv(c->c_fd, c->c_buf + c->c_n, (size_t)got, MSG_DONTWAIT);
		while (got < 0 && errno == EINTR);
		if (got <= 0) {
			conn_free(c);
			return;
		}
		c->c_n += (uint32_t)got;
	}
	if (conn_wait(c) < 0)
		conn_free(c);
}

static void
linger_read(struct rconn *c)
{
	char scratch[4096];
	ssize_t n;

	for (;;) {
		n = recv(c->c_fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && conn_wait(c) == 0)
			return;
		conn_free(c);
		return;
	}
}

static void
conn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;

	if (c->c_lingering) {
		if (what & EV_TIMEOUT)
			conn_free(c);
		else
			linger_read(c);
		return;
	}
	if (what & EV_TIMEOUT) {
		refuse(c, 408, "head_timeout");
		return;
	}
	conn_try(c);
}

/* A new connection to route: FD (and BYTES already read from it) are ours. */
static void
conn_start(struct rlistener *l, int fd, const char *bytes, size_t n)
{
	struct rconn *c = calloc(1, sizeof(*c));

	if (c == NULL || (n > 0 && (c->c_buf = malloc(n)) == NULL)) {
		free(c);
		close(fd);
		return;
	}
	c->c_l = l;
	c->c_fd = fd;
	c->c_deadline_ms = clock_ms() + l->l_head_ms;
	if (n > 0) {
		memcpy(c->c_buf, bytes, n);
		c->c_n = c->c_cap = (uint32_t)n;
	}
	TAILQ_INSERT_TAIL(&l->l_conns, c, c_entry);
	conn_try(c);
}

/* ---- listeners ------------------------------------------------------------- */

static void
accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct rlistener *l = arg;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = dispatch_accept(lfd, l->l_addr, l->l_ev, l->l_pause_ev, &l->l_pauses);

		if (fd < 0)
			break;
		conn_start(l, fd, NULL, 0);
	}
}

static void
resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rlistener *l = arg;

	event_add(l->l_ev, NULL);
}

static struct rlistener *
find_addr(const char *addr)
{
	struct rlistener *l;

	TAILQ_FOREACH(l, &rlisteners, l_entry)
		if (strcmp(l->l_addr, addr) == 0)
			return l;
	return NULL;
}

static struct rlistener *
find_id(uint32_t id)
{
	struct rlistener *l;

	TAILQ_FOREACH(l, &rlisteners, l_entry)
		if (l->l_id == id)
			return l;
	return NULL;
}

static void
listener_free(struct rlistener *l)
{
	struct rconn *c;

	/* Heads still being read have nowhere to go. */
	while ((c = TAILQ_FIRST(&l->l_conns)) != NULL)
		conn_free(c);
	TAILQ_REMOVE(&rlisteners, l, l_entry);
	if (l->l_ev != NULL)
		event_free(l->l_ev);
	if (l->l_pause_ev != NULL)
		event_free(l->l_pause_ev);
	close(l->l_fd);
	if (l->l_na.kind == NET_UNIX)
		net_unix_release(l->l_na.path, &l->l_uid);
	route_table_free(&l->l_routes);
	route_table_free(&l->l_new_routes);
	free(l);
}

/* A copy of SRC's routes (the config that holds them may be freed first), indexed
 * for the match every routed request costs. */
static int
copy_routes(struct route_table *dst, const struct route_table *src)
{
	route_table_free(dst);
	for (size_t i = 0; i < src->n; i++)
		if (route_add(dst, &src->r[i]) < 0)
			return -1;
	return route_table_index(dst);
}

static int
open_listener(struct rlistener *l, const char *addr, char *err, size_t errlen)
{
	if ((l->l_fd = dispatch_open_listener(addr, &l->l_na, &l->l_uid, err, errlen)) < 0)
		return -1;
	l->l_salen = sizeof(l->l_sa);
	if (getsockname(l->l_fd, (struct sockaddr *)&l->l_sa, &l->l_salen) < 0)
		l->l_salen = 0;
	return 0;
}

/*
 * Whether FD is a connected (not listening) stream socket. For a TCP listener one
 * call: TCP_INFO exists only on a TCP socket (a UDP or Unix socket refuses the
 * level), and its first byte, all we ask the kernel to copy, is the state. Every
 * move pays this, so it is one syscall rather than SO_TYPE + SO_ACCEPTCONN.
 */
static bool
connected_stream(const struct rlistener *l, int fd)
{
	int type = 0, listening = 1;
	socklen_t tl = sizeof(type), al = sizeof(listening);

	if (l->l_sa.ss_family == AF_INET || l->l_sa.ss_family == AF_INET6) {
		unsigned char state = TCP_LISTEN;
		socklen_t sl = sizeof(state);

		return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &state, &sl) == 0 && sl == 1 &&
		    state != TCP_LISTEN;
	}
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM &&
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &al) == 0 && listening == 0;
}

/*
 * FD, given back by a worker, is a connection this listener accepted: a connected
 * stream socket whose own address is the listener's (its port, and its IP unless the
 * listener took any). A tenant's worker cannot pass off a socket of its own making
 * (a socketpair, a UDP socket on the port, its own outbound connection) as a client
 * of another function: nothing else can have the listener's address as its own.
 */
static bool
accepted_here(const struct rlistener *l, int fd)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	if (l->l_salen == 0 || !connected_stream(l, fd) ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0 ||
	    sa.ss_family != l->l_sa.ss_family)
		return false;
	if (sa.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)&sa, *b = (const void *)&l->l_sa;

		return a->sin_port == b->sin_port && (b->sin_addr.s_addr == htonl(INADDR_ANY) ||
		    a->sin_addr.s_addr == b->sin_addr.s_addr);
	}
	if (sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)&sa, *b = (const void *)&l->l_sa;

		return a->sin6_port == b->sin6_port && (IN6_IS_ADDR_UNSPECIFIED(&b->sin6_addr) ||
		    memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0);
	}
	if (sa.ss_family == AF_UNIX) {
		const struct sockaddr_un *a = (const void *)&sa, *b = (const void *)&l->l_sa;

		return len == l->l_salen && memcmp(a->sun_path, b->sun_path,
		    len - offsetof(struct sockaddr_un, sun_path)) == 0;
	}
	return false;
}

void
router_init(struct event_base *base)
{
	router_base = base;
}

int
router_listen(struct sv_conf *conf, char *err, size_t errlen)
{
	struct rlistener *l;

	TAILQ_FOREACH(l, &rlisteners, l_entry)
		l->l_seen = l->l_fresh = l->l_has_new = false;
	for (size_t i = 0; i < conf->nlisteners; i++) {
		const struct sv_listener *sl = &conf->listeners[i];

		if ((l = find_addr(sl->listen)) == NULL) {
			if ((l = calloc(1, sizeof(*l))) == NULL) {
				snprintf(err, errlen, "listen %s: out of memory", sl->listen);
				goto rollback;
			}
			snprintf(l->l_addr, sizeof(l->l_addr), "%s", sl->listen);
			TAILQ_INIT(&l->l_conns);
			if (open_listener(l, sl->listen, err, errlen) < 0) {
				free(l);
				goto rollback;
			}
			l->l_id = next_id++;
			l->l_ev = event_new(router_base, l->l_fd, EV_READ | EV_PERSIST, accept_cb, l);
			l->l_pause_ev = evtimer_new(router_base, resume_cb, l);
			l->l_fresh = true;
			TAILQ_INSERT_TAIL(&rlisteners, l, l_entry);
			log_info("listen", "routes=%zu addr=%s", sl->routes.n, log_qv(sl->listen));
		}
		l->l_seen = l->l_has_new = true;
		l->l_new_head_ms = sl->head_timeout_ms;
		l->l_new_max_head = sl->max_header_bytes < HEAD_CAP ? sl->max_header_bytes : HEAD_CAP;
		if (copy_routes(&l->l_new_routes, &sl->routes) < 0) {
			snprintf(err, errlen, "listen %s: out of memory", sl->listen);
			goto rollback;
		}
	}
	return 0;
rollback:
	router_abort();
	return -1;
}

void
router_abort(void)
{
	struct rlistener *l, *tmp;

	TAILQ_FOREACH_SAFE(l, &rlisteners, l_entry, tmp) {
		if (l->l_fresh) {
			listener_free(l);
			continue;
		}
		l->l_seen = true;
		l->l_has_new = false;
		route_table_free(&l->l_new_routes);
	}
}

/* Same routes, same order: nothing a worker keeps can have changed. */
static bool
routes_same(const struct route_table *a, const struct route_table *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct route *x = &a->r[i], *y = &b->r[i];

		if (x->kind != y->kind || x->strip != y->strip || strcmp(x->host, y->host) != 0 ||
		    strcmp(x->path, y->path) != 0 || strcmp(x->fn, y->fn) != 0)
			return false;
	}
	return true;
}

/* Tells every worker the routes changed: one small record each, never waited for. */
static void
announce_epoch(void)
{
	struct wire_ctl msg = {
		.version = WIRE_VERSION, .type = WIRE_CTL_ROUTES, .arg = routes_epoch,
	};
	struct pool *p;
	struct worker *w;
	unsigned failed = 0;

	TAILQ_FOREACH(p, &pools, p_entry)
		TAILQ_FOREACH(w, &p->p_workers, w_entry)
			if (w->w_ctl >= 0 && wire_send_ctl(w->w_ctl, &msg, NULL, 0) < 0)
				failed++;
	log_info("routes_changed", "epoch=%u unannounced=%u", routes_epoch, failed);
}

void
router_commit(void)
{
	struct rlistener *l, *tmp;
	bool changed = false;

	TAILQ_FOREACH_SAFE(l, &rlisteners, l_entry, tmp) {
		if (!l->l_seen) {
			log_info("unlisten", "routes=%zu addr=%s", l->l_routes.n, log_qv(l->l_addr));
			listener_free(l);
			changed = true;
			continue;
		}
		if (l->l_has_new) {
			changed |= !l->l_fresh && !routes_same(&l->l_routes, &l->l_new_routes);
			/* From now on every head is matched against the new routes, moved
			 * connections' too (they name the listener, not its routes). */
			route_table_free(&l->l_routes);
			l->l_routes = l->l_new_routes;
			memset(&l->l_new_routes, 0, sizeof(l->l_new_routes));
			l->l_head_ms = l->l_new_head_ms;
			l->l_max_head = l->l_new_max_head;
			l->l_has_new = false;
		}
		l->l_fresh = false;
		if (!event_pending(l->l_ev, EV_READ, NULL) && !evtimer_pending(l->l_pause_ev, NULL))
			event_add(l->l_ev, NULL);
	}
	if (changed) {
		routes_epoch++;
		announce_epoch();
	}
}

void
router_close_all(void)
{
	struct rlistener *l;

	while ((l = TAILQ_FIRST(&rlisteners)) != NULL)
		listener_free(l);
}

/* One connection W gave back, C its carry (checked by wire_recv_batch); FD is ours. */
static void
take_move(struct worker *w, const struct wire_carry *c, int fd)
{
	struct rlistener *l;
	struct head h;
	const char *why;

	/* The listener it came from, with the routes in force now; one that closed
	 * since has nobody to route for. */
	if ((l = find_id(c->listener)) == NULL) {
		close(fd);
		return;
	}
	if (!accepted_here(l, fd)) {
		log_warn("move_bad", "fn=%s wid=%u pid=%d err=%s", w->w_conf->name, w->w_id,
		    (int)w->w_pid, log_qv("not a connection of that listener"));
		close(fd);
		return;
	}
	/* Usually the bytes hold the whole next head (the worker gave it back because it
	 * read it): routed from them at once, with nothing allocated for the wait. A
	 * refusal, or a head still to come, takes the way of a new connection. */
	if (head_parse(c->bytes, c->nbytes, &h) == HEAD_DONE &&
	    route_to(l, fd, c->bytes, c->nbytes, &h, &why) == 0)
		return;
	conn_start(l, fd, c->bytes, c->nbytes);
}

/* One record W sent, RES as wire_recv_batch says; its NFDS fds are ours. */
static void
take_record(struct worker *w, const union wire_msg *m, int *fds, unsigned nfds, int res)
{
	const struct wire_carry *c = &m->carry;

	if (res < 0) {
		log_warn("move_bad", "fn=%s wid=%u pid=%d err=%s", w->w_conf->name, w->w_id,
		    (int)w->w_pid, log_qv(strerror(EPROTO)));
		return;
	}
	if (m->h.type != WIRE_CTL_MOVE) {
		/* A worker sends nothing else: refused like a malformed hand-off. */
		for (unsigned i = 0; i < nfds; i++)
			close(fds[i]);
		log_warn("move_bad", "fn=%s wid=%u pid=%d type=%u", w->w_conf->name, w->w_id,
		    (int)w->w_pid, m->h.type);
		return;
	}
	/* A packed record: one fd per carry, in order (wire_recv_batch checked that). */
	for (unsigned i = 0; i < nfds && c != NULL; i++, c = wire_carry_next(c))
		take_move(w, c, fds[i]);
}

void
router_take_moves(struct worker *w)
{
	/* A record is up to 64 KiB: static, and each batch is handled before the next
	 * read. */
	static union wire_msg m[WIRE_RECV_BATCH];
	static int fds[WIRE_RECV_BATCH][WIRE_MAX_FDS];
	unsigned nfds[WIRE_RECV_BATCH];
	int res[WIRE_RECV_BATCH];

	for (unsigned taken = 0; taken < MOVES_PER_ROUND; ) {
		int r;

		if (w->w_ctl < 0)
			return;
		r = wire_recv_batch(w->w_ctl, m, fds, nfds, res, WIRE_RECV_BATCH);
		if (r > 0) {
			dispatch_carry_batch_begin();
			for (int i = 0; i < r; i++) {
				take_record(w, &m[i], fds[i], nfds[i], res[i]);
				taken += res[i] > 0 ? nfds[i] : 1;
			}
			dispatch_carry_batch_end();
			/* Fewer than asked for: nothing was left (a last EOF shows next turn,
			 * the socket stays readable). */
			if (r < WIRE_RECV_BATCH)
				return;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		/* EOF or an error: the worker is gone; SIGCHLD does the rest. Its (persistent)
		 * event would only fire again until then. */
		if (w->w_ctl_ev != NULL)
			event_del(w->w_ctl_ev);
		return;
	}
	/* MOVES_PER_ROUND taken: the rest next turn (the event is persistent), after
	 * whatever else is ready. */
}
