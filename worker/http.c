/*
 * http.c - the worker's HTTP/1.1 connections: the client sockets handed over by the
 * supervisor, read, parsed (http_parse.c), answered by the function's handler and
 * written back, with keep-alive, pipelining, timeouts and the request/response API
 * of edgevisor.h (edge_req_*, edge_res_*).
 *
 * Hot path: one read buffer per connection (the request's strings are offsets into
 * it, NUL-terminated in place), one body buffer, one output buffer that collects the
 * responses of a pipelined batch and is written with one send(). Connection structs
 * and their buffers are recycled through a free list, so a request costs no malloc.
 * Timers use libevent common timeouts (O(1)); the idle timer is re-armed lazily.
 *
 * One request per connection is in flight: the parser pauses after each request, the
 * handler runs outside the parser, and if it answers later (async) the connection
 * reads nothing more until edge_res_send().
 *
 * A streamed response (edge_res_start/write/end) holds the request the same way
 * until its end. Its bytes wait in c_out, bounded by EDGE_STREAM_BUFFER; the function
 * hears of room, of a drain and of the stream's loss through c_notify, a zero timer,
 * so that its callback never runs inside one of our calls.
 *
 * A streamed request body (edge_stream_bodies) dispatches the handler at the end of
 * the head (HP_HEAD) instead of the request's end. Its pieces go through c_body, at
 * most one read buffer's worth at a time, and are handed to the function from
 * conn_process, outside the parser; while the function pauses, or has not consumed a
 * piece, the socket is not read, so the client's send blocks (TCP backpressure). The
 * head stays at the front of c_in, which is grown to its cap before the handler runs,
 * so the request's strings never move while the body streams.
 *
 * A WebSocket (ws.c) takes a connection over from a handler that accepts an upgrade
 * (http_upgrade): from then on ws.c owns the socket's events and this file only keeps
 * the struct on the list, so that the connection counts until it ends.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "clock.h"
#include "head.h"
#include "http_parse.h"
#include "log.h"
#include "wire.h"
#include "worker.h"
#include "ws.h"

#define IN_INITIAL      4096        /* first read buffer: a typical request fits */
#define IN_MIN_FREE     1024        /* read only with at least this much room */
#define IN_SLACK        8192        /* read buffer cap beyond max_header_bytes */
#define OUT_INITIAL     1024        /* first output buffer: a response head and a small
                                     * body; an idle SSE stream keeps only this */
#define OUT_KEEP        (256 * 1024) /* larger output buffers are freed after use */
#define BODY_KEEP       (64 * 1024)  /* larger body buffers are freed on release */
#define RES_HDRS_MAX    8192        /* user response headers, total */
#define LINGER_MS       2000        /* read-and-discard after an error response */
#define FREE_CONNS_MAX  256
#define RETIRE_IDLE_MS  1000        /* idle keep-alive wait once retiring */

struct buf {
	char *b_data;
	size_t b_len;
	size_t b_cap;
};

enum conn_timer {
	CT_NONE = 0,
	CT_IDLE,        /* keep-alive, between requests */
	CT_READ,        /* first byte of a request seen, waiting for the rest: 408 */
	CT_HANDLER,     /* the handler answers later: 504 */
	CT_WRITE,       /* the client does not read our output: close */
	CT_LINGER,      /* discarding input after an error response */
	CT_RESUME,      /* zero timeout: an async answer arrived, carry on */
	CT_STREAM,      /* a streamed response: no byte moved for request_timeout: close */
	CT_BODY,        /* a streamed request body: no byte moved for request_timeout */
};

/* c_bs: where a streamed request body is. */
enum body_state {
	BS_NONE = 0,    /* no streamed body (none, buffered, or complete and delivered) */
	BS_OFFER,       /* the handler runs at the head and may take the body */
	BS_TAKE,        /* taken: c_bs_fn hears the pieces */
	BS_DROP,        /* not taken, or answered before its end: pieces are thrown away */
};

/* c_stream_events: what the stream callback is to be told. */
#define SEV_WRITABLE  0x1
#define SEV_DRAINING  0x2
#define SEV_GONE      0x4

/* Room a chunk's framing takes: up to 16 hex digits, CRLF, CRLF. */
#define CHUNK_FRAMING 20
#define STREAM_WRITE_MAX (EDGE_STREAM_BUFFER - 32)

struct conn;

struct edge_req {
	struct conn *rq_conn;
	const char *rq_method;
	const char *rq_path;
	const char *rq_query;
};

struct edge_res {
	struct conn *rs_conn;
};

struct conn {
	int c_fd;
	short c_want;                 /* EV_READ / EV_WRITE registered on c_ev */
	enum conn_timer c_tkind;
	struct event c_ev;
	struct event c_timer;
	uint64_t c_active_ms;         /* last activity, for the lazy idle timer */
	uint64_t c_req_us;            /* the request in the handler: when it was complete */
	struct hp c_hp;
	struct buf c_in;              /* raw input; the request's strings live here */
	size_t c_parsed;              /* c_in bytes the parser has consumed */
	struct buf c_body;            /* the de-chunked body of the current request */
	struct buf c_out;             /* responses not yet written */
	size_t c_out_off;
	struct buf c_hdrs;            /* user headers of the response being built */
	struct edge_req c_req;
	struct edge_res c_res;
	uint32_t c_nreq;              /* requests dispatched on this connection */
	int c_status;                 /* refusal chosen by a parser callback */
	bool c_keepalive;             /* the current request allows keep-alive */
	bool c_http10;
	bool c_head;
	bool c_res_close;             /* the handler asked for Connection: close */
	bool c_held;                  /* the handler holds c_res: not sent yet */
	bool c_dispatching;           /* inside the handler call */
	bool c_expired;               /* 504 sent: a late edge_res_send gets -1 */
	bool c_closing;               /* close once c_out is written */
	bool c_linger;                /* on close, discard input first */
	bool c_lingering;
	bool c_eof;
	bool c_zombie;                /* closed while the handler held c_res */
	bool c_oneshot_due;
	bool c_peer_done;
	bool c_stream;                /* a streamed response is open (started, not ended) */
	bool c_stream_chunked;        /* HTTP/1.1: chunked; else the close ends the body */
	bool c_stream_close;          /* close once the stream ends */
	uint8_t c_stream_events;      /* SEV_*: pending for the callback */
	size_t c_stream_need;         /* bytes of the write that did not fit; 0: none */
	edge_ws *c_ws;                /* a WebSocket owns the socket now (ws.c) */
	enum body_state c_bs;         /* a streamed request body in progress */
	bool c_bs_paused;             /* the function paused it: read nothing */
	bool c_bs_complete;           /* the parser saw its end (END not yet told) */
	bool c_bs_expect;             /* Expect: 100-continue, answered when taken */
	bool c_bs_abort_due;          /* c_notify is to tell c_bs_fn ABORT */
	edge_body_fn c_bs_fn;
	void *c_bs_arg;
	bool c_routed;                /* from a shared listener: requests of other routes move */
	bool c_move;                  /* the next request goes back once output is written */
	uint32_t c_lid;               /* that listener's id, for the move */
	uint32_t c_strip;             /* path bytes the handler does not see (its route's) */
	uint32_t c_epoch;             /* routes epoch of the sticky spec below */
	uint32_t c_sticky;            /* WIRE_STICKY_*: later requests of its route stay */
	char *c_route;                /* sticky: host "\0" prefix, or NULL */
	edge_stream_fn c_stream_fn;
	void *c_stream_arg;
	struct event c_notify;        /* delivers c_stream_events from the loop */
	char c_peer[INET6_ADDRSTRLEN + 10];
	TAILQ_ENTRY(conn) c_entry;
};

TAILQ_HEAD(conn_list, conn);

static void conn_io_cb(evutil_socket_t, short, void *);
static void conn_timer_cb(evutil_socket_t, short, void *);
static void stream_notify_cb(evutil_socket_t, short, void *);
static void stream_check_room(struct conn *);
static int conn_head_cb(void *, struct hp_msg *);
static int conn_body_cb(void *, const char *, size_t);
static void stream_notify(struct conn *, uint8_t);
static void body_abort(struct conn *);
static void conn_move(struct conn *);

static const struct hp_ops conn_hp_ops = { conn_head_cb, conn_body_cb };

static struct conn_list conns = TAILQ_HEAD_INITIALIZER(conns);
static struct conn_list free_conns = TAILQ_HEAD_INITIALIZER(free_conns);
static unsigned nconns, nfree;
/*
 * Moves given back this loop turn, sent together at its end as one packed record
 * (wire_send_carries; one wakeup of the supervisor for them all): the carries, and
 * their fds, still ours until sent. They count as connections (http_conn_count), so
 * a retiring worker does not report drained with one unsent.
 */
static struct wire_carry move_q[WIRE_PACK_MAX];
static int move_fd[WIRE_PACK_MAX];
static unsigned nmoves;
static struct event move_ev;
static const struct timeval *tv_request, *tv_idle, *tv_linger;
/* While retiring, an idle keep-alive connection waits this long, not idle_timeout. */
static const struct timeval *tv_retire_idle;
static bool limit_reported, oneshot_reported, quiet_close;
static bool stream_bodies;        /* edge_stream_bodies(): bodies reach the function in pieces */
static char date_buf[40];
static time_t date_sec = -1;

/* ---- buffers ------------------------------------------------------------------ */

/* Makes room for EXTRA more bytes, growing by doubling up to MAX bytes in all. */
static int
buf_reserve(struct buf *b, size_t extra, size_t max, size_t initial)
{
	size_t cap;
	char *p;

	if (b->b_cap - b->b_len >= extra)
		return 0;
	if (extra > max || b->b_len > max - extra) {
		errno = ENOBUFS;
		return -1;
	}
	cap = b->b_cap ? b->b_cap : initial;
	while (cap - b->b_len < extra)
		cap *= 2;
	if (cap > max)
		cap = max;
	if ((p = realloc(b->b_data, cap)) == NULL)
		return -1;
	b->b_data = p;
	b->b_cap = cap;
	return 0;
}

static void
buf_free(struct buf *b)
{
	free(b->b_data);
	b->b_data = NULL;
	b->b_len = b->b_cap = 0;
}

static char *
put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

#define PUTS(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *
put_uint(char *p, uint64_t v)
{
	char tmp[24];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = tmp[--n];
	return p;
}

/* ---- small helpers -------------------------------------------------------------- */

/* The Date header value, formatted at most once a second. */
static const char *
http_date(void)
{
	struct timeval tv;
	struct tm tm;

	event_base_gettimeofday_cached(wk.base, &tv);
	if (tv.tv_sec != date_sec) {
		date_sec = tv.tv_sec;
		gmtime_r(&date_sec, &tm);
		strftime(date_buf, sizeof(date_buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	}
	return date_buf;
}

static const char *
status_text(int status)
{
	const char *s = http_status_str((enum http_status)status);

	return s[0] == '<' ? "Unknown" : s;
}

/*
 * "ip:port" or "unix", looked up and formatted on first use only: most requests
 * never ask, and a getpeername per connection shows on the Connection: close path.
 */
static const char *
conn_peer(struct conn *c)
{
	struct sockaddr_storage sa;
	struct sockaddr_in *sin = (struct sockaddr_in *)&sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&sa;
	socklen_t salen = sizeof(sa);
	char ip[INET6_ADDRSTRLEN];

	if (c->c_peer_done)
		return c->c_peer;
	c->c_peer_done = true;
	if (c->c_fd < 0 || getpeername(c->c_fd, (struct sockaddr *)&sa, &salen) < 0)
		salen = 0;
	switch (salen > 0 ? sa.ss_family : AF_UNSPEC) {
	case AF_INET:
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(c->c_peer, sizeof(c->c_peer), "%s:%u", ip, ntohs(sin->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		snprintf(c->c_peer, sizeof(c->c_peer), "[%s]:%u", ip, ntohs(sin6->sin6_port));
		break;
	case AF_UNIX:
		strcpy(c->c_peer, "unix");
		break;
	default:
		strcpy(c->c_peer, "unknown");
		break;
	}
	return c->c_peer;
}

static const struct timeval *
timer_tv(enum conn_timer kind)
{
	static const struct timeval zero = { 0, 0 };

	switch (kind) {
	case CT_IDLE:
		return wk.retiring && tv_retire_idle != NULL ? tv_retire_idle : tv_idle;
	case CT_READ:
	case CT_HANDLER:
	case CT_WRITE:
	case CT_STREAM:
	case CT_BODY:
		return tv_request;
	case CT_LINGER:
		return tv_linger;
	case CT_RESUME:
		return &zero;
	default:
		return NULL;
	}
}

/* Arms the connection's one timer for KIND (a limit of 0 means no timer). */
static void
conn_timer(struct conn *c, enum conn_timer kind)
{
	const struct timeval *tv = timer_tv(kind);

	if (c->c_tkind != CT_NONE)
		event_del(&c->c_timer);
	c->c_tkind = kind;
	if (tv == NULL) {
		c->c_tkind = CT_NONE;
		return;
	}
	event_add(&c->c_timer, tv);
}

/* Registers interest in MASK (EV_READ / EV_WRITE / 0) on the socket. */
static void
conn_want(struct conn *c, short mask)
{
	if (c->c_want == mask)
		return;
	if (c->c_want != 0)
		event_del(&c->c_ev);
	c->c_want = mask;
	if (mask == 0)
		return;
	event_assign(&c->c_ev, wk.base, c->c_fd, mask | EV_PERSIST, conn_io_cb, c);
	event_add(&c->c_ev, NULL);
}

/* The read buffer's cap: a head up to max_header_bytes, plus room to read on. */
static size_t
conn_in_max(void)
{
	return (size_t)wk.conf.max_header_bytes + IN_SLACK;
}

/* One request answered on C: counted, and its duration into the board's histogram. */
static void
count_request(const struct conn *c)
{
	uint64_t n, now;

	if (wk.board == NULL)
		return;
	now = clock_us();
	hist_observe(&wk.board->req_hist, now >= c->c_req_us ? now - c->c_req_us : 0);
	n = BOARD_BUMP(&wk.board->requests, 1);
	if (wk.conf.max_requests > 0 && n >= wk.conf.max_requests && !limit_reported) {
		limit_reported = true;
		log_info("max_requests", "requests=%llu", (unsigned long long)n);
		worker_report_limit(WIRE_REASON_EARLY_DROP, false);
	}
}

/* ---- connection life ------------------------------------------------------------ */

static struct conn *
conn_get(void)
{
	struct conn *c;

	if ((c = TAILQ_FIRST(&free_conns)) != NULL) {
		TAILQ_REMOVE(&free_conns, c, c_entry);
		nfree--;
	} else if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->c_in.b_len = c->c_body.b_len = c->c_out.b_len = c->c_hdrs.b_len = 0;
	c->c_parsed = c->c_out_off = 0;
	c->c_want = 0;
	c->c_tkind = CT_NONE;
	c->c_nreq = 0;
	c->c_status = 0;
	c->c_keepalive = c->c_http10 = c->c_head = c->c_res_close = false;
	c->c_held = c->c_dispatching = c->c_expired = c->c_closing = false;
	c->c_linger = c->c_lingering = c->c_eof = c->c_zombie = false;
	c->c_oneshot_due = c->c_peer_done = false;
	c->c_stream = c->c_stream_chunked = c->c_stream_close = false;
	c->c_stream_events = 0;
	c->c_stream_need = 0;
	c->c_stream_fn = NULL;
	c->c_ws = NULL;
	c->c_bs = BS_NONE;
	c->c_bs_paused = c->c_bs_complete = c->c_bs_expect = c->c_bs_abort_due = false;
	c->c_bs_fn = NULL;
	c->c_routed = c->c_move = false;
	c->c_lid = c->c_strip = c->c_epoch = c->c_sticky = 0;
	c->c_req.rq_conn = c;
	c->c_res.rs_conn = c;
	hp_init(&c->c_hp, &conn_hp_ops, c);
	return c;
}

/* Returns a closed connection's struct to the free list (buffers kept if small). */
static void
conn_release(struct conn *c)
{
	free(c->c_route);
	c->c_route = NULL;
	if (c->c_stream_events != 0 || c->c_bs_abort_due) {
		event_del(&c->c_notify);
		c->c_stream_events = 0;
		c->c_bs_abort_due = false;
	}
	if (nfree >= FREE_CONNS_MAX) {
		buf_free(&c->c_in);
		buf_free(&c->c_body);
		buf_free(&c->c_out);
		buf_free(&c->c_hdrs);
		free(c);
		return;
	}
	if (c->c_body.b_cap > BODY_KEEP)
		buf_free(&c->c_body);
	if (c->c_out.b_cap > OUT_KEEP)
		buf_free(&c->c_out);
	if (c->c_in.b_cap > IN_INITIAL * 4)
		buf_free(&c->c_in);
	TAILQ_INSERT_HEAD(&free_conns, c, c_entry);
	nfree++;
}

/*
 * Closes the connection. With LINGER (an error answer, or input we did not read),
 * first half-closes and discards input for a while, so the peer reads our answer
 * instead of a reset.
 */
static void
conn_close(struct conn *c, bool linger)
{
	if (linger && !c->c_eof && !c->c_lingering && tv_linger != NULL) {
		if (shutdown(c->c_fd, SHUT_WR) == 0) {
			c->c_lingering = true;
			conn_want(c, EV_READ);
			conn_timer(c, CT_LINGER);
			return;
		}
	}
	conn_want(c, 0);
	if (c->c_tkind != CT_NONE)
		event_del(&c->c_timer);
	c->c_tkind = CT_NONE;
	/* Only at exit (http_shutdown): a WebSocket still open goes with its socket. */
	if (c->c_ws != NULL) {
		ws_abandon(c->c_ws);
		c->c_ws = NULL;
	}
	/* A handler answering later may still ask for the peer: look it up while we can. */
	if (c->c_held)
		conn_peer(c);
	log_debug("http_close", "peer=%s requests=%u", conn_peer(c), c->c_nreq);
	/* A moved connection's fd is the move queue's now (conn_move). */
	if (c->c_fd >= 0)
		close(c->c_fd);
	c->c_fd = -1;
	TAILQ_REMOVE(&conns, c, c_entry);
	nconns--;
	if (wk.board != NULL)
		BOARD_ADD(&wk.board->conns_closed, 1);
	/* The handler still holds the response: keep the struct until it lets go. */
	if (c->c_held) {
		/* Only the request's strings stay: output has nowhere to go now. */
		c->c_zombie = true;
		buf_free(&c->c_out);
		buf_free(&c->c_hdrs);
		c->c_out_off = 0;
		if (c->c_stream)
			stream_notify(c, SEV_GONE);
		body_abort(c);
	} else
		conn_release(c);
	if (wk.retiring && !quiet_close)
		worker_check_drained();
}

/*
 * Writes the status line, Server, Date, Content-Type and the user headers (consumed)
 * at P, which has room for them (see the callers' reserve).
 */
static char *
put_head_start(struct conn *c, char *p, int status, const char *reason, const char *date,
    const char *ctype)
{
	p = PUTS(p, "HTTP/1.1 ");
	p = put_uint(p, (uint64_t)status);
	*p++ = ' ';
	p = put(p, reason, strlen(reason));
	p = PUTS(p, "\r\nServer: edgevisor\r\nDate: ");
	p = put(p, date, strlen(date));
	p = PUTS(p, "\r\n");
	if (ctype != NULL) {
		p = PUTS(p, "Content-Type: ");
		p = put(p, ctype, strlen(ctype));
		p = PUTS(p, "\r\n");
	}
	if (c->c_hdrs.b_len > 0) {
		p = put(p, c->c_hdrs.b_data, c->c_hdrs.b_len);
		c->c_hdrs.b_len = 0;
	}
	return p;
}

/*
 * Appends one response to the output buffer. The user headers in c_hdrs are
 * included (and consumed). Returns 0, or -1 if memory ran out.
 */
static int
conn_respond(struct conn *c, int status, const char *ctype, const void *body,
    size_t len, bool close, bool head)
{
	const char *reason = status_text(status), *date = http_date();
	bool nobody = status == 204 || status == 304;
	size_t need;
	char *p;

	need = 160 + strlen(reason) + strlen(date) + (ctype ? strlen(ctype) : 0) +
	    c->c_hdrs.b_len + len;
	if (buf_reserve(&c->c_out, need, SIZE_MAX, OUT_INITIAL) < 0)
		return -1;
	p = put_head_start(c, c->c_out.b_data + c->c_out.b_len, status, reason, date, ctype);
	if (status != 204) {
		p = PUTS(p, "Content-Length: ");
		p = put_uint(p, nobody ? 0 : len);
		p = PUTS(p, "\r\n");
	}
	if (close)
		p = PUTS(p, "Connection: close\r\n");
	else if (c->c_http10)
		p = PUTS(p, "Connection: keep-alive\r\n");
	p = PUTS(p, "\r\n");
	if (!head && !nobody && len > 0)
		p = put(p, body, len);
	c->c_out.b_len = (size_t)(p - c->c_out.b_data);
	if (close)
		c->c_closing = true;
	if (wk.conf.policy == WK_ONESHOT)
		c->c_oneshot_due = true;
	return 0;
}

/* The runtime's own answer to bad input or a timeout; the connection then closes. */
static void
conn_error(struct conn *c, int status, const char *reason, bool head)
{
	char body[64];
	int n;

	log_info("http_error", "status=%d reason=%s peer=%s", status, reason, conn_peer(c));
	n = snprintf(body, sizeof(body), "%d %s\n", status, status_text(status));
	c->c_hdrs.b_len = 0;
	if (conn_respond(c, status, "text/plain", body, (size_t)n, true, head) < 0)
		c->c_out.b_len = c->c_out_off; /* nothing useful to say: just close */
	c->c_closing = true;
	c->c_linger = true;
}

static const char *
refusal_reason(int status)
{
	switch (status) {
	case 413:
		return "body_too_large";
	case 417:
		return "expectation_failed";
	case 431:
		return "headers_too_large";
	case 501:
		return "not_implemented";
	default:
		return "bad_request";
	}
}

/* ---- parser callbacks ----------------------------------------------------------- */

/*
 * RFC 9110 10.1.1: the head's Expect fields. 1: "100-continue" (every one of them);
 * 0: none; -1: another expectation, which we cannot meet (417).
 */
static int
expects_continue(const struct hp_msg *m, const char *base)
{
	int want = 0;

	for (uint32_t i = 0; i < m->nfields; i++) {
		if (m->fields[i].name_len != 6 ||
		    strncasecmp(base + m->fields[i].name_off, "expect", 6) != 0)
			continue;
		if (m->fields[i].value_len != 12 ||
		    strncasecmp(base + m->fields[i].value_off, "100-continue", 12) != 0)
			return -1;
		want = 1;
	}
	return want;
}

static int
conn_head_cb(void *arg, struct hp_msg *m)
{
	struct conn *c = arg;
	int expect;
	bool body;

	c->c_body.b_len = 0;
	c->c_keepalive = m->keep_alive;
	c->c_http10 = m->version_major == 1 && m->version_minor == 0;
	c->c_head = m->is_head;
	/* No tunnels. */
	if (m->connect)
		return 501;
	body = m->chunked || (m->has_length && m->content_length > 0);
	/* A streamed body has no cap here: the function reads it in pieces (and the
	 * 100 Continue waits until the handler takes the body). */
	if (stream_bodies && body && !m->upgrade) {
		if ((expect = expects_continue(m, c->c_in.b_data)) < 0)
			return 417;
		c->c_bs_expect = expect && m->version_minor >= 1;
		return HP_HEAD_STOP;
	}
	/*
	 * An Upgrade offer (h2c, WebSocket) is ignored, as RFC 9110 7.8 allows, unless
	 * the handler takes it (edge_ws_accept -> http_upgrade): otherwise the request
	 * is served as HTTP/1.1 and the parser reads on after it.
	 */
	if (m->has_length && m->content_length > wk.conf.max_body_bytes)
		return 413;
	if ((expect = expects_continue(m, c->c_in.b_data)) < 0)
		return 417;
	if (expect && body && m->version_minor >= 1) {
		if (buf_reserve(&c->c_out, 32, SIZE_MAX, OUT_INITIAL) < 0)
			return 500;
		memcpy(c->c_out.b_data + c->c_out.b_len, "HTTP/1.1 100 Continue\r\n\r\n", 25);
		c->c_out.b_len += 25;
	}
	return 0;
}

static int
conn_body_cb(void *arg, const char *data, size_t len)
{
	struct conn *c = arg;

	/* Streamed: c_body is emptied before each parse, so one read buffer bounds it. */
	if (c->c_bs == BS_DROP)
		return 0;
	if (c->c_bs != BS_NONE) {
		if (buf_reserve(&c->c_body, len + 1, conn_in_max() + 1, 4096) < 0)
			return 500;
		memcpy(c->c_body.b_data + c->c_body.b_len, data, len);
		c->c_body.b_len += len;
		return 0;
	}
	if (len > wk.conf.max_body_bytes - c->c_body.b_len)
		return 413;
	/* One spare byte: the body is NUL-terminated for handlers that want a string. */
	if (buf_reserve(&c->c_body, len + 1, (size_t)wk.conf.max_body_bytes + 1, 4096) < 0)
		return 500;
	memcpy(c->c_body.b_data + c->c_body.b_len, data, len);
	c->c_body.b_len += len;
	return 0;
}

/* ---- reading, parsing, dispatching, writing ----------------------------------- */

/*
 * Drops consumed input before a read, keeping only the bytes the request in progress
 * still refers to (its head) and moving them to the front.
 */
static void
conn_compact(struct conn *c)
{
	size_t start, end, keep, tail;

	hp_keep(&c->c_hp, c->c_parsed, &start, &end);
	if (start == 0 && end == c->c_parsed)
		return;
	keep = end - start;
	tail = c->c_in.b_len - c->c_parsed;
	if (keep > 0)
		memmove(c->c_in.b_data, c->c_in.b_data + start, keep);
	if (tail > 0)
		memmove(c->c_in.b_data + keep, c->c_in.b_data + c->c_parsed, tail);
	hp_shift(&c->c_hp, start);
	c->c_parsed = keep;
	c->c_in.b_len = keep + tail;
}

/* One recv into the read buffer. Returns 0 (data, EOF or nothing), -1 on error. */
static int
conn_read(struct conn *c)
{
	size_t max = conn_in_max();
	ssize_t n;

	conn_compact(c);
	if (buf_reserve(&c->c_in, IN_MIN_FREE, max, IN_INITIAL) < 0) {
		/* Only a head that outgrew max_header_bytes can fill the buffer. */
		conn_error(c, 431, "headers_too_large", false);
		return 0;
	}
	for (;;) {
		n = recv(c->c_fd, c->c_in.b_data + c->c_in.b_len,
		    c->c_in.b_cap - c->c_in.b_len, MSG_DONTWAIT);
		if (n > 0) {
			c->c_in.b_len += (size_t)n;
			/* A streamed body moves: not stalled. */
			if (c->c_bs != BS_NONE)
				c->c_active_ms = clock_ms();
			return 0;
		}
		if (n == 0) {
			c->c_eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		log_debug("http_read_error", "peer=%s err=%s", conn_peer(c), log_qv(strerror(errno)));
		return -1;
	}
}

/*
 * Runs the handler for the request the parser just completed, or (AT_HEAD) whose
 * head it just completed: a streamed body follows.
 */
static void
conn_dispatch(struct conn *c, bool at_head)
{
	size_t max = conn_in_max();

	if (at_head) {
		/* The head to the front and the buffer at its cap: from here until the
		 * request ends, reading moves no byte of the head (conn_compact keeps it
		 * at 0) and never reallocates, so the request's strings stay valid. */
		conn_compact(c);
		if (buf_reserve(&c->c_in, max - c->c_in.b_len, max, IN_INITIAL) < 0) {
			conn_error(c, 500, "no_memory", false);
			return;
		}
	}
	if (hp_finish(&c->c_hp, c->c_in.b_data, &c->c_req.rq_path, &c->c_req.rq_query) < 0) {
		conn_error(c, 400, "bad_url", false);
		return;
	}
	c->c_req.rq_method = c->c_hp.hp_msg.method;
	/* Its route's prefix is not the function's to see (the supervisor measured it on
	 * this same path); what is left still starts with '/', or is the root. */
	if (c->c_strip > 0 && strlen(c->c_req.rq_path) >= c->c_strip) {
		c->c_req.rq_path += c->c_strip;
		if (c->c_req.rq_path[0] == '\0')
			c->c_req.rq_path = "/";
	}
	/* The 408 deadline belonged to this request; the next one starts its own. */
	if (c->c_tkind == CT_READ) {
		event_del(&c->c_timer);
		c->c_tkind = CT_NONE;
	}
	if (c->c_body.b_data != NULL)
		c->c_body.b_data[c->c_body.b_len] = '\0';
	c->c_nreq++;
	c->c_req_us = clock_us();
	c->c_held = true;
	c->c_expired = false;
	c->c_res_close = false;
	c->c_hdrs.b_len = 0;
	if (at_head) {
		c->c_body.b_len = 0;
		c->c_bs = BS_OFFER;
		c->c_bs_paused = c->c_bs_complete = false;
		c->c_bs_fn = NULL;
		c->c_active_ms = clock_ms();
	}
	log_debug("http_request", "peer=%s method=%s path=%s", conn_peer(c),
	    log_qv(c->c_req.rq_method), log_qv(c->c_req.rq_path));
	c->c_dispatching = true;
	wk.fn->handle(&c->c_req, &c->c_res);
	c->c_dispatching = false;
	/* Not taken: the body is read and thrown away (conn_settle runs its timer). */
	if (c->c_bs == BS_OFFER)
		c->c_bs = BS_DROP;
	/* Answered later (async): read nothing more until then, at most request_timeout. */
	if (c->c_held && c->c_bs == BS_NONE)
		conn_timer(c, c->c_stream ? CT_STREAM : CT_HANDLER);
}

/* Schedules ABORT for a body the function took and will not see complete. */
static void
body_abort(struct conn *c)
{
	static const struct timeval zero = { 0, 0 };

	if (c->c_bs == BS_TAKE && c->c_bs_fn != NULL && c->c_held) {
		c->c_bs_abort_due = true;
		event_add(&c->c_notify, &zero);
	}
	c->c_bs = BS_NONE;
	c->c_bs_paused = c->c_bs_complete = false;
}

/* The socket is read for the streamed body: not paused, its last piece consumed. */
static bool
body_wants_read(const struct conn *c)
{
	return c->c_bs != BS_NONE && !c->c_bs_paused && !c->c_bs_complete &&
	    c->c_body.b_len == 0;
}

/*
 * Hands the body's pending piece to the function, then END once the parser saw the
 * end. Returns true while the body is still being read (more to parse or read).
 */
static bool
body_deliver(struct conn *c)
{
	edge_body_fn fn = c->c_bs_fn;
	size_t len = c->c_body.b_len;

	if (len > 0) {
		if (c->c_bs == BS_TAKE) {
			c->c_active_ms = clock_ms();
			/* A pause asked for by an answer's side effect (BS_DROP) is moot. */
			if (fn(&c->c_req, EDGE_BODY_DATA, c->c_body.b_data, len, c->c_bs_arg) != 0 &&
			    c->c_bs == BS_TAKE)
				c->c_bs_paused = true;
		}
		c->c_body.b_len = 0;
		c->c_body.b_data[0] = '\0';
	}
	if (c->c_bs == BS_NONE || c->c_bs_paused)
		return false;
	if (!c->c_bs_complete)
		return true;
	/* Complete: from here the request is an ordinary held (or answered) one. */
	c->c_bs_complete = false;
	if (c->c_bs == BS_TAKE) {
		c->c_bs = BS_NONE;
		fn(&c->c_req, EDGE_BODY_END, NULL, 0, c->c_bs_arg);
	} else
		c->c_bs = BS_NONE;
	return false;
}

/* The newest routes epoch this worker heard of (WIRE_CTL_ROUTES, or a hand-off). */
static uint32_t routes_epoch;

void
http_routes_epoch(uint32_t epoch)
{
	if (epoch > routes_epoch)
		routes_epoch = epoch;
}

/* PATH[0, LEN) lies under PREFIX, on whole segments. */
static bool
under(const char *prefix, const char *path, size_t len)
{
	size_t pl = strlen(prefix);

	return len >= pl && memcmp(path, prefix, pl) == 0 && (len == pl || path[pl] == '/');
}

/*
 * At a request boundary of a routed connection: true when the next request is this
 * route's (same Host, path under its prefix, routes unchanged), so it is served here;
 * false sets c_move (it goes back) or waits for the rest of its head.
 */
static bool
conn_stays(struct conn *c)
{
	const char *buf = c->c_in.b_data + c->c_parsed;
	size_t len = c->c_in.b_len - c->c_parsed, hl;
	struct head h;
	enum head_result r;

	if (c->c_route == NULL || c->c_epoch != routes_epoch) {
		c->c_move = true;
		return false;
	}
	r = head_parse(buf, len, &h);
	if (r == HEAD_MORE) {
		/* Read on for the rest of it, unless it is past what a head may be. */
		if (len >= wk.conf.max_header_bytes)
			c->c_move = true;
		return false;
	}
	if (r == HEAD_DONE && h.nhost <= 1) {
		const char *want = c->c_route, *prefix = want + strlen(want) + 1;
		bool host_ok;

		if (h.nhost == 0) {
			host_ok = (c->c_sticky & WIRE_STICKY_NOHOST) != 0;
		} else {
			const char *br = memchr(h.host, ']', h.host_len);
			const char *colon = memchr(br ? br : h.host, ':',
			    h.host_len - (size_t)((br ? br : h.host) - h.host));

			hl = colon ? (size_t)(colon - h.host) : h.host_len;
			host_ok = !(c->c_sticky & WIRE_STICKY_NOHOST) && hl == strlen(want) &&
			    strncasecmp(h.host, want, hl) == 0;
		}
		if (host_ok && under(prefix, h.path, h.path_len))
			return true;
	}
	/* Another route's, or a head the supervisor is to judge (400). */
	c->c_move = true;
	return false;
}

/* Parses and answers every complete request in the buffer, in order. */
static void
conn_process(struct conn *c)
{
	enum hp_result r;
	bool held;

	while (!c->c_closing && c->c_ws == NULL) {
		if (c->c_bs != BS_NONE) {
			/* A streamed body: its parsed piece goes to the function first. */
			if (!body_deliver(c)) {
				if (c->c_bs != BS_NONE)
					break;          /* paused */
				continue;               /* END told: an ordinary request now */
			}
			if (c->c_parsed >= c->c_in.b_len)
				break;                  /* read more */
		} else if (c->c_held || c->c_parsed >= c->c_in.b_len)
			break;
		/* The next request on a routed connection may be another function's: unless
		 * its route is this one's, it goes back to the supervisor unread
		 * (conn_settle -> conn_move). */
		else if (c->c_routed && c->c_nreq > 0 && !hp_in_message(&c->c_hp) && !conn_stays(c))
			break;
		r = hp_execute(&c->c_hp, c->c_in.b_data, &c->c_parsed, c->c_in.b_len);
		if (r == HP_AGAIN) {
			if (c->c_bs != BS_NONE)
				continue;               /* hand over what was parsed */
			break;
		}
		if (r == HP_ERROR) {
			if (c->c_bs != BS_NONE) {
				/* Bad framing mid-body: the function hears ABORT, the client 400. */
				held = c->c_held && !c->c_expired;
				body_abort(c);
				if (!held) {
					/* Answered already: nothing more to say, just close. */
					c->c_closing = c->c_linger = true;
					break;
				}
				c->c_expired = true;
				count_request(c);
			}
			conn_error(c, c->c_hp.hp_status, c->c_hp.hp_reason ? c->c_hp.hp_reason :
			    refusal_reason(c->c_hp.hp_status), false);
			break;
		}
		if (r == HP_HEAD)
			conn_dispatch(c, true);
		else if (c->c_bs != BS_NONE)
			c->c_bs_complete = true;        /* END once the last piece is taken */
		else
			conn_dispatch(c, false);
	}
	/* The peer is done sending: answer what was complete, then close. */
	if (c->c_ws == NULL && c->c_eof && !c->c_held && (c->c_parsed >= c->c_in.b_len || c->c_closing))
		c->c_closing = true;
}

/* Sends the queued moves (move_q) and closes our copies of their fds. */
static void
moves_flush(void)
{
	const struct wire_carry *q[WIRE_PACK_MAX];
	unsigned n = nmoves;
	int sent;

	if (n == 0)
		return;
	for (unsigned i = 0; i < n; i++)
		q[i] = &move_q[i];
	sent = wire_send_carries(WIRE_CTL_FD, q, move_fd, n);
	if ((unsigned)(sent < 0 ? 0 : sent) < n)
		/* The supervisor cannot take them now: their clients see a close, never a
		 * request answered by the wrong function. */
		log_warn("http_move_failed", "conns=%u err=%s", n - (unsigned)(sent < 0 ? 0 : sent),
		    log_qv(sent < 0 ? strerror(errno) : "queue full"));
	for (unsigned i = 0; i < n; i++)
		close(move_fd[i]);
	nmoves = 0;
	if (wk.retiring && !quiet_close)
		worker_check_drained();
}

static void
moves_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	moves_flush();
}

/*
 * Every earlier response is written: the routed connection goes back to the
 * supervisor with the bytes read and not parsed (the next head, pipelined data),
 * which routes them on (supervisor/router.c). Queued: the loop turn's moves go
 * together once its callbacks have run (moves_flush_cb, made active here); the
 * connection is closed here but its fd, the queue's, after the send.
 */
static void
conn_move(struct conn *c)
{
	struct wire_carry *wc;
	size_t n = c->c_in.b_len - c->c_parsed;

	if (n > WIRE_CARRY_MAX) {
		log_warn("http_move_too_large", "peer=%s bytes=%zu", conn_peer(c), n);
		conn_close(c, true);
		return;
	}
	if (nmoves == WIRE_PACK_MAX)
		moves_flush();
	wc = &move_q[nmoves];
	wc->version = WIRE_VERSION;
	wc->type = WIRE_CTL_MOVE;
	wc->listener = c->c_lid;
	wc->strip = 0;
	wc->flags = 0;
	wc->nbytes = (uint32_t)n;
	wc->size = (uint32_t)(WIRE_CARRY_HEAD + n);
	memcpy(wc->bytes, c->c_in.b_data + c->c_parsed, n);
	log_debug("http_moved", "peer=%s bytes=%zu requests=%u", conn_peer(c), n, c->c_nreq);
	move_fd[nmoves] = c->c_fd;
	if (nmoves++ == 0)
		event_active(&move_ev, EV_TIMEOUT, 1);
	c->c_parsed = c->c_in.b_len;
	c->c_fd = -1;
	conn_close(c, false);
}

/* Writes pending output. Returns 0 when all is written, 1 if it would block, -1. */
static int
conn_flush(struct conn *c)
{
	ssize_t n;

	/* Each batch goes out in one send; TCP_NODELAY (inherited from the listener)
	 * keeps a later small batch from waiting for the previous one's ACK. */
	while (c->c_out_off < c->c_out.b_len) {
		n = send(c->c_fd, c->c_out.b_data + c->c_out_off,
		    c->c_out.b_len - c->c_out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0) {
			c->c_out_off += (size_t)n;
			/* The client reads: the stream is not stalled. */
			if (c->c_stream && n > 0)
				c->c_active_ms = clock_ms();
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 1;
		log_debug("http_write_error", "peer=%s err=%s", conn_peer(c), log_qv(strerror(errno)));
		return -1;
	}
	c->c_out.b_len = c->c_out_off = 0;
	/* Not under a stream: it refills the buffer at once. */
	if (c->c_out.b_cap > OUT_KEEP && !c->c_stream)
		buf_free(&c->c_out);
	if (c->c_oneshot_due) {
		c->c_oneshot_due = false;
		if (!oneshot_reported) {
			oneshot_reported = true;
			worker_report_limit(WIRE_REASON_EARLY_DROP, true);
		}
	}
	return 0;
}

/*
 * After any event: writes what is pending, then decides what the connection waits
 * for next (read, write, the handler, nothing: close) and which timer runs.
 */
static void
conn_settle(struct conn *c)
{
	int r = 0;

	/* Upgraded: the socket is ws.c's. */
	if (c->c_ws != NULL)
		return;
	if (c->c_out_off < c->c_out.b_len && (r = conn_flush(c)) < 0) {
		conn_close(c, false);
		return;
	}
	if (c->c_stream)
		stream_check_room(c);
	if (r == 1) {
		/* Back-pressure: read nothing while the client does not read. */
		conn_want(c, EV_WRITE);
		if (c->c_stream) {
			if (c->c_tkind != CT_STREAM)
				conn_timer(c, CT_STREAM);
		} else if (c->c_tkind != CT_WRITE && !(c->c_tkind == CT_HANDLER && c->c_held &&
		    !c->c_expired))
			conn_timer(c, CT_WRITE);
		return;
	}
	if (c->c_closing) {
		conn_close(c, c->c_linger || c->c_parsed < c->c_in.b_len ||
		    hp_in_message(&c->c_hp));
		return;
	}
	if (c->c_bs != BS_NONE) {
		/* The client left mid-body (all it sent is parsed): nothing will complete it. */
		if (c->c_eof && !c->c_bs_complete && c->c_parsed >= c->c_in.b_len) {
			log_info("http_body_cut", "peer=%s", conn_peer(c));
			conn_close(c, false);
			return;
		}
		conn_want(c, body_wants_read(c) && !c->c_eof ? EV_READ : 0);
		if (c->c_tkind != CT_BODY && c->c_tkind != CT_RESUME)
			conn_timer(c, CT_BODY);
		return;
	}
	if (c->c_held) {
		conn_want(c, 0);
		if (c->c_stream) {
			if (c->c_tkind != CT_STREAM && c->c_tkind != CT_RESUME)
				conn_timer(c, CT_STREAM);
		} else if (c->c_tkind != CT_HANDLER && c->c_tkind != CT_RESUME)
			conn_timer(c, CT_HANDLER);
		return;
	}
	if (c->c_move) {
		conn_move(c);
		return;
	}
	if (c->c_eof) {
		conn_close(c, false);
		return;
	}
	conn_want(c, EV_READ);
	if (hp_in_message(&c->c_hp)) {
		if (c->c_tkind != CT_READ)
			conn_timer(c, CT_READ);
	} else {
		c->c_active_ms = clock_ms();
		if (c->c_tkind != CT_IDLE)
			conn_timer(c, CT_IDLE);
	}
}

/* Reads and throws away input until EOF, after our final answer. */
static void
conn_linger_read(struct conn *c)
{
	char scratch[4096];
	ssize_t n;

	for (;;) {
		n = recv(c->c_fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		c->c_eof = true;
		conn_close(c, false);
		return;
	}
}

static void
conn_io_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->c_lingering) {
		conn_linger_read(c);
		return;
	}
	if ((what & EV_READ) && (!c->c_held || body_wants_read(c)) && !c->c_closing &&
	    !c->c_eof && c->c_out_off == c->c_out.b_len && conn_read(c) < 0) {
		conn_close(c, false);
		return;
	}
	conn_process(c);
	conn_settle(c);
}

/*
 * A lazily re-armed timer that fired: if less than LIMIT ms passed since the last
 * activity, arms it again for the rest and returns true.
 */
static bool
timer_extend(struct conn *c, enum conn_timer kind, uint64_t limit)
{
	uint64_t now = clock_ms(), left;
	struct timeval tv;

	if (now - c->c_active_ms >= limit)
		return false;
	left = limit - (now - c->c_active_ms);
	tv.tv_sec = (time_t)(left / 1000);
	tv.tv_usec = (suseconds_t)(left % 1000 * 1000);
	c->c_tkind = kind;
	event_add(&c->c_timer, &tv);
	return true;
}

static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	enum conn_timer kind = c->c_tkind;
	uint64_t idle;
	bool held;

	c->c_tkind = CT_NONE;
	switch (kind) {
	case CT_IDLE:
		/* Re-armed lazily: activity since it was set only moved c_active_ms. */
		idle = wk.retiring && wk.conf.idle_timeout_ms > RETIRE_IDLE_MS ?
		    RETIRE_IDLE_MS : wk.conf.idle_timeout_ms;
		if (timer_extend(c, CT_IDLE, idle))
			return;
		log_debug("http_idle", "peer=%s", conn_peer(c));
		conn_close(c, false);
		return;
	case CT_STREAM:
		/* The same lazy re-arm: each byte moved only stamped c_active_ms. */
		if (!c->c_stream || timer_extend(c, CT_STREAM, wk.conf.request_timeout_ms))
			return;
		log_info("http_stream_stalled", "peer=%s ms=%u", conn_peer(c),
		    wk.conf.request_timeout_ms);
		conn_close(c, false);
		return;
	case CT_BODY:
		/* Lazy too: each piece read or handed over only stamped c_active_ms. */
		if (c->c_bs == BS_NONE)
			break;
		if (timer_extend(c, CT_BODY, wk.conf.request_timeout_ms))
			return;
		log_info("http_body_stalled", "peer=%s paused=%d ms=%u", conn_peer(c),
		    c->c_bs_paused, wk.conf.request_timeout_ms);
		if (!c->c_held || c->c_expired) {
			body_abort(c);
			conn_close(c, false);
			return;
		}
		/* The client stalled (408), or the function paused that long (504). */
		held = c->c_bs_paused;
		body_abort(c);
		c->c_expired = true;
		count_request(c);
		conn_error(c, held ? 504 : 408, held ? "body_paused" : "body_timeout", c->c_head);
		break;
	case CT_READ:
		conn_error(c, 408, "request_timeout", false);
		break;
	case CT_HANDLER:
		if (!c->c_held || c->c_expired)
			break;
		c->c_expired = true;
		count_request(c);
		conn_error(c, 504, "handler_timeout", c->c_head);
		break;
	case CT_WRITE:
		log_debug("http_write_timeout", "peer=%s", conn_peer(c));
		conn_close(c, false);
		return;
	case CT_LINGER:
		c->c_eof = true;
		conn_close(c, false);
		return;
	case CT_RESUME:
	case CT_NONE:
		break;
	}
	conn_process(c);
	conn_settle(c);
}

/* ---- module interface (worker.h) ------------------------------------------------ */

int
http_init(struct edge_ctx *ctx)
{
	struct timeval tv;

	event_assign(&move_ev, ctx->base, -1, 0, moves_flush_cb, NULL);

	if (ctx->conf.request_timeout_ms > 0) {
		tv.tv_sec = ctx->conf.request_timeout_ms / 1000;
		tv.tv_usec = (suseconds_t)(ctx->conf.request_timeout_ms % 1000) * 1000;
		if ((tv_request = event_base_init_common_timeout(ctx->base, &tv)) == NULL)
			return -1;
	}
	if (ctx->conf.idle_timeout_ms > 0) {
		tv.tv_sec = ctx->conf.idle_timeout_ms / 1000;
		tv.tv_usec = (suseconds_t)(ctx->conf.idle_timeout_ms % 1000) * 1000;
		if ((tv_idle = event_base_init_common_timeout(ctx->base, &tv)) == NULL)
			return -1;
	}
	if (ctx->conf.idle_timeout_ms > RETIRE_IDLE_MS) {
		tv.tv_sec = RETIRE_IDLE_MS / 1000;
		tv.tv_usec = (suseconds_t)(RETIRE_IDLE_MS % 1000) * 1000;
		if ((tv_retire_idle = event_base_init_common_timeout(ctx->base, &tv)) == NULL)
			return -1;
	}
	tv.tv_sec = LINGER_MS / 1000;
	tv.tv_usec = (LINGER_MS % 1000) * 1000;
	if ((tv_linger = event_base_init_common_timeout(ctx->base, &tv)) == NULL)
		return -1;
	hp_setup(ctx->conf.max_header_bytes);
	return 0;
}

/* A new connection on FD, or NULL (FD closed, counted). */
static struct conn *
conn_new(int fd)
{
	struct conn *c;

	if ((c = conn_get()) == NULL) {
		log_error("http_adopt", "fd=%d err=%s", fd, log_qv(strerror(errno)));
		close(fd);
		if (wk.board != NULL)
			BOARD_ADD(&wk.board->conns_closed, 1);
		return NULL;
	}
	c->c_fd = fd;
	evtimer_assign(&c->c_timer, wk.base, conn_timer_cb, c);
	evtimer_assign(&c->c_notify, wk.base, stream_notify_cb, c);
	TAILQ_INSERT_TAIL(&conns, c, c_entry);
	nconns++;
	return c;
}

void
http_adopt(int fd)
{
	struct conn *c;

	if ((c = conn_new(fd)) == NULL)
		return;
	/*
	 * The request has often arrived already: try it now, skip a loop round. Not
	 * while retiring: a close here could report drained (and exit) before the
	 * rest of the supervisor's batch of fds is adopted.
	 */
	if (wk.retiring)
		conn_settle(c);
	else
		conn_io_cb(fd, EV_READ, c);
}

void
http_adopt_routed(int fd, const struct wire_carry *wc)
{
	struct conn *c;
	size_t max = (size_t)wk.conf.max_header_bytes + IN_SLACK;

	if ((c = conn_new(fd)) == NULL)
		return;
	c->c_routed = true;
	c->c_lid = wc->listener;
	c->c_strip = wc->strip;
	http_routes_epoch(wc->epoch);
	c->c_epoch = wc->epoch;
	c->c_sticky = wc->sticky;
	if (wc->sticky & WIRE_STICKY) {
		size_t hl = strlen(wc->host), pl = strlen(wc->prefix);

		/* Without it the connection only moves more: never wrong, just slower. */
		if ((c->c_route = malloc(hl + pl + 2)) != NULL) {
			memcpy(c->c_route, wc->host, hl + 1);
			memcpy(c->c_route + hl + 1, wc->prefix, pl + 1);
		}
	}
	if (wc->nbytes > 0) {
		/* Read before us: parsed first, before the socket is read. */
		if (buf_reserve(&c->c_in, wc->nbytes, wc->nbytes > max ? wc->nbytes : max,
		    IN_INITIAL) < 0) {
			conn_close(c, false);
			return;
		}
		memcpy(c->c_in.b_data, wc->bytes, wc->nbytes);
		c->c_in.b_len = wc->nbytes;
	}
	/* As http_adopt: while retiring nothing closes inside this call (a zero timer
	 * parses what came); else what came is parsed before the socket is read, since
	 * it may be more than a read may add to. */
	if (wk.retiring) {
		if (c->c_in.b_len > 0)
			conn_timer(c, CT_RESUME);
		else
			conn_settle(c);
	} else if (c->c_in.b_len > 0) {
		conn_process(c);
		conn_settle(c);
	} else
		conn_io_cb(fd, EV_READ, c);
}

void
http_retire(void)
{
	struct conn *c, *next;

	/*
	 * Every response from now on says Connection: close and ends its connection.
	 * An idle keep-alive connection is not closed at once: its client may be sending
	 * the next request right now, and a close would turn that into a reset. It gets
	 * that request answered (with close), or goes after RETIRE_IDLE_MS of silence.
	 */
	TAILQ_FOREACH_SAFE(c, &conns, c_entry, next) {
		if (c->c_tkind == CT_IDLE)
			conn_timer(c, CT_IDLE);
		/* A stream keeps the worker until it ends: an endless one is asked to end. */
		if (c->c_stream)
			stream_notify(c, SEV_DRAINING);
		/* A WebSocket is told 1001 and has a bounded time to answer. */
		if (c->c_ws != NULL)
			ws_drain(c->c_ws);
	}
}

unsigned
http_conn_count(void)
{
	return nconns + nmoves;
}

void
http_shutdown(void)
{
	struct conn *c;

	quiet_close = true;
	while ((c = TAILQ_FIRST(&conns)) != NULL)
		conn_close(c, false);
	/* Queued moves go as the connections do: closed. */
	for (unsigned i = 0; i < nmoves; i++)
		close(move_fd[i]);
	nmoves = 0;
	if (event_initialized(&move_ev))
		event_del(&move_ev);
	quiet_close = false;
	while ((c = TAILQ_FIRST(&free_conns)) != NULL) {
		TAILQ_REMOVE(&free_conns, c, c_entry);
		buf_free(&c->c_in);
		buf_free(&c->c_body);
		buf_free(&c->c_out);
		buf_free(&c->c_hdrs);
		free(c);
	}
	nfree = 0;
}

/* ---- request API (edgevisor.h) -------------------------------------------------- */

const char *
edge_req_method(const edge_req *req)
{
	return req->rq_method;
}

const char *
edge_req_path(const edge_req *req)
{
	return req->rq_path;
}

const char *
edge_req_query(const edge_req *req)
{
	return req->rq_query;
}

const char *
edge_req_header(const edge_req *req, const char *name)
{
	const struct conn *c = req->rq_conn;
	const struct hp_msg *m = &c->c_hp.hp_msg;
	const char *base = c->c_in.b_data;
	uint32_t i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < m->nfields; i++)
		if (strcasecmp(base + m->fields[i].name_off, name) == 0)
			return base + m->fields[i].value_off;
	return NULL;
}

size_t
edge_req_header_count(const edge_req *req)
{
	return req->rq_conn->c_hp.hp_msg.nfields;
}

int
edge_req_header_at(const edge_req *req, size_t i, const char **name, const char **value)
{
	const struct conn *c = req->rq_conn;
	const struct hp_msg *m = &c->c_hp.hp_msg;

	if (i >= m->nfields)
		return -1;
	if (name != NULL)
		*name = c->c_in.b_data + m->fields[i].name_off;
	if (value != NULL)
		*value = c->c_in.b_data + m->fields[i].value_off;
	return 0;
}

const void *
edge_req_body(const edge_req *req, size_t *len)
{
	const struct conn *c = req->rq_conn;

	/* A streamed body is the function's to read in pieces: nothing buffered. */
	if (c->c_bs != BS_NONE) {
		if (len != NULL)
			*len = 0;
		return "";
	}
	if (len != NULL)
		*len = c->c_body.b_len;
	return c->c_body.b_data != NULL ? c->c_body.b_data : "";
}

const char *
edge_req_peer(const edge_req *req)
{
	return conn_peer(req->rq_conn);
}

edge_ctx *
edge_req_ctx(const edge_req *req)
{
	return &wk;
}

/* ---- streamed request body API (edgevisor.h) ---------------------------------- */

int
edge_stream_bodies(edge_ctx *ctx)
{
	(void)ctx;
	stream_bodies = true;
	return 0;
}

int
edge_req_stream_body(edge_req *req, edge_body_fn fn, void *arg)
{
	struct conn *c = req->rq_conn;

	if (fn == NULL || c->c_bs != BS_OFFER || !c->c_held || c->c_zombie)
		return -1;
	c->c_bs = BS_TAKE;
	c->c_bs_fn = fn;
	c->c_bs_arg = arg;
	/* The client waits for this before it sends the body. */
	if (c->c_bs_expect) {
		c->c_bs_expect = false;
		if (buf_reserve(&c->c_out, 32, SIZE_MAX, OUT_INITIAL) == 0) {
			memcpy(c->c_out.b_data + c->c_out.b_len, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			c->c_out.b_len += 25;
		}
	}
	return 0;
}

int
edge_req_body_resume(edge_req *req)
{
	struct conn *c = req->rq_conn;

	if (c->c_bs != BS_TAKE || !c->c_bs_paused || c->c_zombie)
		return -1;
	c->c_bs_paused = false;
	c->c_active_ms = clock_ms();
	/* From the loop: the piece still unparsed in c_in goes first, then reads. */
	if (!c->c_dispatching)
		conn_timer(c, CT_RESUME);
	return 0;
}

/* ---- response API (edgevisor.h) ------------------------------------------------- */

/* A header name is a token: no separators, controls or spaces. */
static bool
valid_name(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f ||
		    strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
			return false;
	return true;
}

static bool
valid_value(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

int
edge_res_header(edge_res *res, const char *name, const char *value)
{
	struct conn *c = res->rs_conn;
	size_t nlen, vlen;
	char *p;

	if (!c->c_held || c->c_expired || c->c_zombie || c->c_stream || name == NULL ||
	    value == NULL)
		return -1;
	if (!valid_name(name) || !valid_value(value))
		return -1;
	/* The runtime owns framing: the body length and the connection's fate. */
	if (strcasecmp(name, "content-length") == 0 ||
	    strcasecmp(name, "transfer-encoding") == 0)
		return -1;
	if (strcasecmp(name, "connection") == 0) {
		if (strcasecmp(value, "close") != 0)
			return -1;
		c->c_res_close = true;
		return 0;
	}
	nlen = strlen(name);
	vlen = strlen(value);
	if (nlen + vlen + 4 > RES_HDRS_MAX - c->c_hdrs.b_len)
		return -1;
	if (buf_reserve(&c->c_hdrs, nlen + vlen + 4, RES_HDRS_MAX, 512) < 0)
		return -1;
	p = c->c_hdrs.b_data + c->c_hdrs.b_len;
	p = put(p, name, nlen);
	p = PUTS(p, ": ");
	p = put(p, value, vlen);
	p = PUTS(p, "\r\n");
	c->c_hdrs.b_len = (size_t)(p - c->c_hdrs.b_data);
	return 0;
}

int
edge_res_send(edge_res *res, int status, const char *content_type,
    const void *body, size_t len)
{
	struct conn *c = res->rs_conn;
	bool close;

	/* A started stream ends with edge_res_end, never here. */
	if (!c->c_held || c->c_stream)
		return -1;
	if (c->c_zombie) {
		/* The connection is gone (timed out or reset): let the struct go. */
		c->c_held = false;
		conn_release(c);
		return -1;
	}
	if (c->c_expired) {
		c->c_held = false;
		return -1;
	}
	if (status < 200 || status > 599 || (len > 0 && body == NULL) ||
	    (content_type != NULL && !valid_value(content_type)))
		return -1;
	close = !c->c_keepalive || c->c_res_close || wk.retiring ||
	    wk.conf.policy == WK_ONESHOT;
	/* Answered before its streamed body ended: the rest is not read, the connection
	 * closes after the answer (lingering, so the client reads it). */
	if (c->c_bs != BS_NONE) {
		close = true;
		c->c_bs = BS_DROP;
		c->c_bs_fn = NULL;
	}
	if (conn_respond(c, status, content_type, body, len, close, c->c_head) < 0)
		return -1;
	c->c_held = false;
	count_request(c);
	/* An async answer: resume this connection from the loop, not from here. */
	if (!c->c_dispatching)
		conn_timer(c, CT_RESUME);
	return 0;
}

/* ---- streaming response API (edgevisor.h) --------------------------------------- */

static size_t
out_pending(const struct conn *c)
{
	return c->c_out.b_len - c->c_out_off;
}

/* Queues EV for the stream's callback; GONE replaces whatever else was pending. */
static void
stream_notify(struct conn *c, uint8_t ev)
{
	static const struct timeval zero = { 0, 0 };

	if (c->c_stream_fn == NULL || (c->c_stream_events & SEV_GONE))
		return;
	c->c_stream_events = ev == SEV_GONE ? SEV_GONE : c->c_stream_events | ev;
	event_add(&c->c_notify, &zero);
}

/*
 * Tells the callback one pending event, GONE first; more are delivered on the next
 * round. After GONE the callback may end the stream, which frees C: nothing touches
 * C after the call.
 */
static void
stream_notify_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval zero = { 0, 0 };
	struct conn *c = arg;
	enum edge_stream_event ev;
	edge_body_fn bfn;

	/* A streamed request body's ABORT (never pending with a response stream). */
	if (c->c_bs_abort_due) {
		c->c_bs_abort_due = false;
		bfn = c->c_bs_fn;
		c->c_bs_fn = NULL;
		bfn(&c->c_req, EDGE_BODY_ABORT, NULL, 0, c->c_bs_arg);
		return;
	}
	if (!c->c_stream || c->c_stream_fn == NULL || c->c_stream_events == 0) {
		c->c_stream_events = 0;
		return;
	}
	if (c->c_stream_events & SEV_GONE) {
		ev = EDGE_STREAM_GONE;
		c->c_stream_events = 0;
	} else if (c->c_stream_events & SEV_DRAINING) {
		ev = EDGE_STREAM_DRAINING;
		c->c_stream_events &= (uint8_t)~SEV_DRAINING;
	} else {
		ev = EDGE_STREAM_WRITABLE;
		c->c_stream_events &= (uint8_t)~SEV_WRITABLE;
	}
	if (c->c_stream_events != 0)
		event_add(&c->c_notify, &zero);
	c->c_stream_fn(&c->c_res, ev, c->c_stream_arg);
}

/*
 * After a flush: a write that did not fit is told to go on once it fits and the
 * buffer is at most half full (so the next refill is not a trickle of small sends).
 */
static void
stream_check_room(struct conn *c)
{
	size_t pending = out_pending(c);

	if (c->c_stream_need == 0 || pending > EDGE_STREAM_BUFFER / 2 ||
	    pending + c->c_stream_need > EDGE_STREAM_BUFFER)
		return;
	c->c_stream_need = 0;
	stream_notify(c, SEV_WRITABLE);
}

int
edge_res_start(edge_res *res, int status, const char *content_type,
    edge_stream_fn fn, void *arg)
{
	struct conn *c = res->rs_conn;
	const char *reason = status_text(status), *date = http_date();
	size_t need;
	char *p;

	/* A streamed response starts after a streamed request body's end. */
	if (!c->c_held || c->c_stream || c->c_bs != BS_NONE)
		return -1;
	if (c->c_zombie) {
		c->c_held = false;
		conn_release(c);
		return -1;
	}
	if (c->c_expired) {
		c->c_held = false;
		return -1;
	}
	/* 204 and 304 have no body, 1xx is not final: edge_res_send is for those. */
	if (status < 200 || status > 599 || status == 204 || status == 304 ||
	    (content_type != NULL && !valid_value(content_type)))
		return -1;
	need = 160 + strlen(reason) + strlen(date) + (content_type ? strlen(content_type) : 0) +
	    c->c_hdrs.b_len;
	if (buf_reserve(&c->c_out, need, SIZE_MAX, OUT_INITIAL) < 0)
		return -1;
	/* HTTP/1.0 has no chunked coding: its body ends with the connection. */
	c->c_stream_chunked = !c->c_http10;
	c->c_stream_close = c->c_http10 || !c->c_keepalive || c->c_res_close || wk.retiring ||
	    wk.conf.policy == WK_ONESHOT;
	p = put_head_start(c, c->c_out.b_data + c->c_out.b_len, status, reason, date,
	    content_type);
	if (c->c_stream_chunked)
		p = PUTS(p, "Transfer-Encoding: chunked\r\n");
	p = c->c_stream_close ? PUTS(p, "Connection: close\r\n\r\n") : PUTS(p, "\r\n");
	c->c_out.b_len = (size_t)(p - c->c_out.b_data);
	c->c_stream = true;
	c->c_stream_need = 0;
	c->c_stream_events = 0;
	c->c_stream_fn = fn;
	c->c_stream_arg = arg;
	c->c_active_ms = clock_ms();
	if (wk.retiring)
		stream_notify(c, SEV_DRAINING);
	/* From the loop (not the handler): send the head now, run the stall timer. */
	if (!c->c_dispatching)
		conn_settle(c);
	return 0;
}

int
edge_res_write(edge_res *res, const void *data, size_t len)
{
	struct conn *c = res->rs_conn;
	size_t need;
	char *p;

	if (!c->c_stream || c->c_zombie || len > STREAM_WRITE_MAX || (len > 0 && data == NULL))
		return -1;
	/* HEAD: the head says what GET would; the body is not sent. An empty chunk
	 * would end a chunked body: nothing to send either. */
	if (c->c_head || len == 0) {
		c->c_active_ms = clock_ms();
		return 0;
	}
	need = len + (c->c_stream_chunked ? CHUNK_FRAMING : 0);
	if (out_pending(c) + need > EDGE_STREAM_BUFFER) {
		c->c_stream_need = need;
		return 1;
	}
	/* The written front of the buffer is dead: reuse it before growing. */
	if (c->c_out_off > 0 && c->c_out.b_cap - c->c_out.b_len < need) {
		memmove(c->c_out.b_data, c->c_out.b_data + c->c_out_off, out_pending(c));
		c->c_out.b_len -= c->c_out_off;
		c->c_out_off = 0;
	}
	if (buf_reserve(&c->c_out, need, SIZE_MAX, OUT_INITIAL) < 0)
		return -1;
	p = c->c_out.b_data + c->c_out.b_len;
	if (c->c_stream_chunked) {
		p += sprintf(p, "%zx", len);
		p = PUTS(p, "\r\n");
	}
	p = put(p, data, len);
	if (c->c_stream_chunked)
		p = PUTS(p, "\r\n");
	c->c_out.b_len = (size_t)(p - c->c_out.b_data);
	c->c_active_ms = clock_ms();
	/* Send now unless the handler is running (its return sends) or the socket is full. */
	if (!c->c_dispatching && !(c->c_want & EV_WRITE))
		conn_settle(c);
	return 0;
}

int
edge_res_end(edge_res *res)
{
	struct conn *c = res->rs_conn;

	if (!c->c_stream)
		return -1;
	c->c_stream = false;
	c->c_stream_fn = NULL;
	c->c_stream_need = 0;
	if (c->c_stream_events != 0) {
		event_del(&c->c_notify);
		c->c_stream_events = 0;
	}
	if (c->c_zombie) {
		/* Gone before its end: the struct was kept for this call. */
		c->c_held = false;
		conn_release(c);
		return -1;
	}
	if (c->c_stream_chunked && !c->c_head) {
		if (buf_reserve(&c->c_out, 5, SIZE_MAX, OUT_INITIAL) < 0)
			c->c_stream_close = true;  /* cannot say "the end": a close must */
		else {
			memcpy(c->c_out.b_data + c->c_out.b_len, "0\r\n\r\n", 5);
			c->c_out.b_len += 5;
		}
	}
	/* A drain that began during the stream: this connection ends with it. */
	if (c->c_stream_close || wk.retiring)
		c->c_closing = true;
	if (wk.conf.policy == WK_ONESHOT)
		c->c_oneshot_due = true;
	c->c_held = false;
	count_request(c);
	/* Like an async answer: carry on (flush, the next pipelined request) from the loop. */
	if (!c->c_dispatching)
		conn_timer(c, CT_RESUME);
	return 0;
}

/* ---- upgrade to WebSocket (ws.h) ------------------------------------------------ */

int
http_upgrade_ok(const edge_res *res)
{
	const struct conn *c = res->rs_conn;
	const struct hp_msg *m = &c->c_hp.hp_msg;

	if (!c->c_held || c->c_stream || c->c_zombie || c->c_expired || c->c_ws != NULL)
		return -1;
	/* An upgrade is HTTP/1.1's; a request body would sit between head and frames. */
	if (c->c_http10 || !m->upgrade || m->chunked || (m->has_length && m->content_length > 0))
		return -1;
	return 0;
}

/* Copies [DATA, DATA + LEN) into *B (malloc'd, NULL when empty). */
static int
bytes_copy(struct ws_bytes *b, const char *data, size_t len)
{
	b->data = NULL;
	b->len = 0;
	if (len == 0)
		return 0;
	if ((b->data = malloc(len)) == NULL)
		return -1;
	memcpy(b->data, data, len);
	b->len = len;
	return 0;
}

int
http_upgrade(edge_res *res, edge_ws *ws, const char *accept, struct ws_bytes *out,
    struct ws_bytes *in)
{
	struct conn *c = res->rs_conn;
	const char *reason = status_text(101), *date = http_date();
	size_t need;
	char *p;

	if (http_upgrade_ok(res) < 0)
		return -1;
	need = 200 + strlen(reason) + strlen(date) + strlen(accept) + c->c_hdrs.b_len;
	if (buf_reserve(&c->c_out, need, SIZE_MAX, OUT_INITIAL) < 0)
		return -1;
	p = put_head_start(c, c->c_out.b_data + c->c_out.b_len, 101, reason, date, NULL);
	p = PUTS(p, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
	p = put(p, accept, strlen(accept));
	p = PUTS(p, "\r\n\r\n");
	c->c_out.b_len = (size_t)(p - c->c_out.b_data);
	/* Earlier pipelined answers still unwritten go first, then the 101. */
	if (bytes_copy(out, c->c_out.b_data + c->c_out_off, c->c_out.b_len - c->c_out_off) < 0)
		return -1;
	/* A client may send its first frames right behind the handshake. */
	if (bytes_copy(in, c->c_in.b_data + c->c_parsed, c->c_in.b_len - c->c_parsed) < 0) {
		free(out->data);
		return -1;
	}
	c->c_out.b_len = c->c_out_off = 0;
	c->c_in.b_len = c->c_parsed;
	c->c_held = false;
	c->c_ws = ws;
	count_request(c);
	conn_want(c, 0);
	if (c->c_tkind != CT_NONE)
		event_del(&c->c_timer);
	c->c_tkind = CT_NONE;
	return c->c_fd;
}

void
http_upgrade_closed(edge_res *res)
{
	struct conn *c = res->rs_conn;

	c->c_ws = NULL;
	/* Half-close and read what is left, so the peer reads our close frame, not a reset. */
	c->c_closing = true;
	conn_close(c, true);
}
