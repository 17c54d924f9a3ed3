/*
 * ws.c - WebSocket connections (RFC 6455): the handshake of edge_ws_accept, then
 * frames on the worker's loop through wslay's event API, and edge_ws_send/close.
 *
 * wslay does the framing and its checks: client frames must be masked (1002), bad
 * opcodes, fragmented or oversized control frames and RSV bits (1002), a message
 * over max_recv_msg_length (1009, checked on each frame's declared length, before
 * its payload is buffered), text and close reasons that are not UTF-8 (1007,
 * fail-fast across fragments), close codes; it reassembles fragments and answers
 * pings and close frames. wslay owns no I/O: its recv/send callbacks below read and
 * write the non-blocking socket; read readiness drives wslay_event_recv, write
 * readiness (only after a send would block) wslay_event_send. libwebsockets was
 * not chosen because it wants to own the event loop and the sockets.
 *
 * The handshake's SHA-1 and base64 come from nettle (plain functions: no
 * configuration or provider loading at first use, unlike OpenSSL 3's EVP).
 *
 * The function's callback is never called from inside an edge_ws_* call: API calls
 * made outside our own I/O callbacks only queue and schedule a pump (a zero timer).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <wslay/wslay.h>

#include "clock.h"
#include "log.h"
#include "worker.h"
#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24           /* base64 of 16 bytes */
#define WS_ACCEPT_LEN 28        /* base64 of a SHA-1 */
/* Pongs and close replies are queued by wslay outside our cap: a peer that pings
 * but never reads is dropped once the queue holds this much. */
#define WS_QUEUE_HARD (2 * ws_max_buffer)

struct edge_ws {
	int w_fd;
	edge_res *w_res;              /* http.c's handle on the connection */
	wslay_event_context_ptr w_ctx;
	struct event w_ev;            /* socket readiness */
	short w_want;
	struct event w_timer;         /* idle, then the close wait */
	struct event w_kick;          /* zero timer: pump after an API call */
	struct ws_bytes w_out;        /* raw bytes before any frame: the 101 */
	size_t w_out_off;
	struct ws_bytes w_in;         /* input read past the handshake */
	size_t w_in_off;
	edge_ws_fn w_fn;
	void *w_arg;
	uint64_t w_active_ms;         /* last byte from the peer */
	uint64_t w_close_by_ms;       /* our close is queued: give up at this time */
	bool w_closing;               /* we queued a close (ours, not an answer) */
	bool w_blocked;               /* the last send would block */
	bool w_need_writable;         /* a send returned 1 */
	bool w_in_io;                 /* inside our own callback: the caller pumps */
	bool w_dead;                  /* an I/O error: finish on the next pump */
	bool w_rx_failed;             /* our recv callback saw EOF or an error */
	int w_raw_close;              /* a close code we wrote ourselves (see frame_error) */
};

/* The operator's caps (ws_set_limits); the compiled-in ones until set. */
static size_t ws_max_message = EDGE_WS_MAX_MESSAGE, ws_max_buffer = EDGE_WS_BUFFER;

static void ws_pump(edge_ws *ws, bool readable);
static void ws_io_cb(evutil_socket_t fd, short what, void *arg);

/* ---- handshake ---------------------------------------------------------------- */

/* Whether the comma-separated VALUE holds TOKEN (case-insensitive, RFC 9110 5.6.1). */
static bool
has_token(const char *value, const char *token)
{
	size_t n = strlen(token), len;
	const char *p = value, *e;

	while (value != NULL && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p + strcspn(p, ",");
		len = (size_t)(e - p);
		while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len == n && strncasecmp(p, token, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* A Sec-WebSocket-Key is base64 of exactly 16 bytes (RFC 6455 4.2.1). */
static bool
valid_key(const char *key)
{
	struct base64_decode_ctx b64;
	uint8_t raw[BASE64_DECODE_LENGTH(WS_KEY_LEN)];
	size_t n = sizeof(raw);

	if (key == NULL || strlen(key) != WS_KEY_LEN)
		return false;
	base64_decode_init(&b64);
	if (!base64_decode_update(&b64, &n, raw, WS_KEY_LEN, key) || !base64_decode_final(&b64))
		return false;
	return n == 16;
}

/* Sec-WebSocket-Accept: base64(SHA-1(key + GUID)), NUL-terminated in OUT. */
static void
accept_value(const char *key, char out[WS_ACCEPT_LEN + 1])
{
	struct sha1_ctx sha;
	uint8_t digest[SHA1_DIGEST_SIZE];

	sha1_init(&sha);
	sha1_update(&sha, strlen(key), (const uint8_t *)key);
	sha1_update(&sha, sizeof(WS_GUID) - 1, (const uint8_t *)WS_GUID);
	sha1_digest(&sha, sizeof(digest), digest);
	base64_encode_raw(out, sizeof(digest), digest);
	out[WS_ACCEPT_LEN] = '\0';
}

/* Answers a refused handshake; returns NULL for edge_ws_accept to return. */
static edge_ws *
refuse(edge_res *res, int status, const char *why)
{
	char body[64];
	size_t n;

	log_info("ws_refused", "status=%d reason=%s", status, why);
	if (status == 426)
		edge_res_header(res, "Sec-WebSocket-Version", "13");
	n = (size_t)snprintf(body, sizeof(body), "%s\n", why);
	edge_res_send(res, status, "text/plain", body, n);
	return NULL;
}

/* ---- wslay callbacks ------------------------------------------------------------ */

static ssize_t
recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *arg)
{
	edge_ws *ws = arg;
	size_t left = ws->w_in.len - ws->w_in_off;
	ssize_t n;

	if (left > 0) {
		n = (ssize_t)(left < len ? left : len);
		memcpy(buf, ws->w_in.data + ws->w_in_off, (size_t)n);
		ws->w_in_off += (size_t)n;
		ws->w_active_ms = clock_ms();
		return n;
	}
	for (;;) {
		n = recv(ws->w_fd, buf, len, MSG_DONTWAIT);
		if (n > 0) {
			ws->w_active_ms = clock_ms();
			return n;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		else {
			ws->w_rx_failed = true;
			wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		}
		return -1;
	}
}

static ssize_t
send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *arg)
{
	edge_ws *ws = arg;
	ssize_t n;

	for (;;) {
		n = send(ws->w_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL |
		    ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			ws->w_blocked = true;
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		} else
			wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
}

static void
tell(edge_ws *ws, enum edge_ws_event ev, const void *data, size_t len, int code)
{
	struct edge_ws_msg m = { ev, data, len, code };

	if (ws->w_fn != NULL)
		ws->w_fn(ws, &m, ws->w_arg);
}

static void
msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *arg)
{
	edge_ws *ws = arg;

	switch (a->opcode) {
	case WSLAY_TEXT_FRAME:
		tell(ws, EDGE_WS_TEXT, a->msg, a->msg_length, 0);
		break;
	case WSLAY_BINARY_FRAME:
		tell(ws, EDGE_WS_BINARY, a->msg, a->msg_length, 0);
		break;
	case WSLAY_CONNECTION_CLOSE:
		/* wslay has queued the answer; the reason follows the 2-byte code. */
		tell(ws, EDGE_WS_CLOSE, a->msg_length > 2 ? a->msg + 2 : (const uint8_t *)"",
		    a->msg_length > 2 ? a->msg_length - 2 : 0,
		    a->status_code != 0 ? a->status_code : WSLAY_CODE_NO_STATUS_RCVD);
		break;
	default:
		break;  /* pings are answered by wslay; pongs need nothing */
	}
}

static const struct wslay_event_callbacks ws_callbacks = {
	.recv_callback = recv_cb,
	.send_callback = send_cb,
	.on_msg_recv_callback = msg_cb,
};

/* ---- the connection's life ------------------------------------------------------ */

/*
 * wslay_event_recv failed without our recv callback failing: wslay's frame layer
 * refused a header (a fragmented control frame, one over 125 bytes, a length with
 * its top bit set). It then queues a close without a code, where RFC 6455 7.4.1 wants
 * 1002, so that close is not sent: we write the 4-byte server close frame (FIN +
 * close, unmasked, length 2, code 1002) best-effort and drop the connection.
 */
static void
frame_error(edge_ws *ws)
{
	static const uint8_t close_1002[4] = { 0x88, 0x02, 0x03, 0xea };

	if (ws->w_out_off < ws->w_out.len)
		return;  /* the 101 is not out yet: no frame may go first */
	if (send(ws->w_fd, close_1002, sizeof(close_1002), MSG_DONTWAIT | MSG_NOSIGNAL) ==
	    (ssize_t)sizeof(close_1002))
		ws->w_raw_close = WSLAY_CODE_PROTOCOL_ERROR;
}

static void
ws_want(edge_ws *ws, short mask)
{
	if (ws->w_want == mask)
		return;
	if (ws->w_want != 0)
		event_del(&ws->w_ev);
	ws->w_want = mask;
	if (mask == 0)
		return;
	event_assign(&ws->w_ev, wk.base, ws->w_fd, mask | EV_PERSIST, ws_io_cb, ws);
	event_add(&ws->w_ev, NULL);
}

static void
ws_arm(edge_ws *ws, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000 * 1000) };

	event_add(&ws->w_timer, &tv);
}

static void
ws_free(edge_ws *ws)
{
	ws_want(ws, 0);
	event_del(&ws->w_timer);
	event_del(&ws->w_kick);
	wslay_event_context_free(ws->w_ctx);
	free(ws->w_out.data);
	free(ws->w_in.data);
	free(ws);
}

/* The connection is over: tell the function, give the socket back to http.c. */
static void
ws_finish(edge_ws *ws)
{
	edge_res *res = ws->w_res;
	int code = wslay_event_get_close_received(ws->w_ctx) ?
	    wslay_event_get_status_code_received(ws->w_ctx) : WSLAY_CODE_ABNORMAL_CLOSURE;
	int sent = wslay_event_get_close_sent(ws->w_ctx) ?
	    wslay_event_get_status_code_sent(ws->w_ctx) : ws->w_raw_close;

	/* Protocol errors are the client's news worth a line; normal ends are not. */
	if (sent != 0 && sent != 1000 && sent != 1001)
		log_info("ws_closed", "sent=%d received=%d", sent, code);
	else
		log_debug("ws_closed", "sent=%d received=%d", sent, code);
	ws_want(ws, 0);
	ws->w_in_io = true;
	ws->w_dead = true;
	tell(ws, EDGE_WS_GONE, NULL, 0, code);
	ws_free(ws);
	/* Last: with the worker retiring, this may report drained and exit. */
	http_upgrade_closed(res);
}

/* Queues our close with CODE and starts the bounded wait for the peer's. */
static void
ws_close_begin(edge_ws *ws, uint16_t code, const char *reason, uint64_t wait_ms)
{
	size_t n = reason != NULL ? strlen(reason) : 0;

	if (ws->w_closing || wslay_event_get_close_sent(ws->w_ctx))
		return;
	if (wslay_event_queue_close(ws->w_ctx, code, (const uint8_t *)reason, n) != 0) {
		ws->w_dead = true;
		return;
	}
	ws->w_closing = true;
	ws->w_close_by_ms = clock_ms() + wait_ms;
	ws_arm(ws, wait_ms);
}

/* Writes the raw bytes, then what wslay has queued. Returns 0, or -1 (gone). */
static int
ws_write(edge_ws *ws)
{
	ssize_t n;

	ws->w_blocked = false;
	while (ws->w_out_off < ws->w_out.len) {
		n = send(ws->w_fd, ws->w_out.data + ws->w_out_off, ws->w_out.len - ws->w_out_off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n >= 0) {
			ws->w_out_off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			ws->w_blocked = true;
			return 0;
		}
		return -1;
	}
	if (ws->w_out.data != NULL) {
		free(ws->w_out.data);
		ws->w_out.data = NULL;
		ws->w_out.len = ws->w_out_off = 0;
	}
	if (wslay_event_want_write(ws->w_ctx) && wslay_event_send(ws->w_ctx) != 0)
		return -1;
	return 0;
}

/*
 * Reads (when READABLE) and writes what can be, tells the function of room, and
 * decides what the socket waits for; finishes the connection once wslay wants
 * neither (both close frames went, or an error closed it).
 */
static void
ws_pump(edge_ws *ws, bool readable)
{
	ws->w_in_io = true;
	if (ws->w_dead)
		goto gone;
	/* Frames that came with the handshake are read without a readiness event. */
	readable = readable || ws->w_in_off < ws->w_in.len;
	if (readable && wslay_event_want_read(ws->w_ctx) && wslay_event_recv(ws->w_ctx) != 0) {
		if (!ws->w_rx_failed)
			frame_error(ws);
		goto gone;
	}
	if (ws_write(ws) < 0 || ws->w_dead)
		goto gone;
	if (ws->w_need_writable && !ws->w_closing &&
	    wslay_event_get_queued_msg_length(ws->w_ctx) <= ws_max_buffer / 2) {
		ws->w_need_writable = false;
		tell(ws, EDGE_WS_WRITABLE, NULL, 0, 0);
		if (ws_write(ws) < 0 || ws->w_dead)
			goto gone;
	}
	if (wslay_event_get_queued_msg_length(ws->w_ctx) > WS_QUEUE_HARD) {
		log_info("ws_not_reading", "queued=%zu", wslay_event_get_queued_msg_length(ws->w_ctx));
		goto gone;
	}
	if (!wslay_event_want_read(ws->w_ctx) && !wslay_event_want_write(ws->w_ctx) &&
	    ws->w_out_off >= ws->w_out.len)
		goto gone;
	ws_want(ws, (short)((wslay_event_want_read(ws->w_ctx) ? EV_READ : 0) |
	    (ws->w_blocked ? EV_WRITE : 0)));
	ws->w_in_io = false;
	return;
gone:
	ws_finish(ws);
}

static void
ws_io_cb(evutil_socket_t fd, short what, void *arg)
{
	ws_pump(arg, (what & EV_READ) != 0);
}

static void
ws_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	ws_pump(arg, false);
}

/* After an API call from outside our callbacks: pump from the loop, not from here. */
static void
ws_kick(edge_ws *ws)
{
	static const struct timeval zero = { 0, 0 };

	if (!ws->w_in_io)
		event_add(&ws->w_kick, &zero);
}

/* Bounded by the beforeunload grace too: a close handshake must not outlast the
 * time a terminating worker has left. */
static uint64_t
close_wait_ms(void)
{
	uint64_t ms = EDGE_WS_CLOSE_WAIT_MS;

	return wk.conf.grace_ms > 0 && wk.conf.grace_ms < ms ? wk.conf.grace_ms : ms;
}

/* Idle (lazily re-armed from w_active_ms), or our close got no answer in time. */
static void
ws_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	edge_ws *ws = arg;
	uint64_t now = clock_ms(), idle = wk.conf.idle_timeout_ms;

	if (ws->w_closing) {
		if (now < ws->w_close_by_ms) {
			ws_arm(ws, ws->w_close_by_ms - now);
			return;
		}
		log_debug("ws_close_timeout", "ms=%llu", (unsigned long long)close_wait_ms());
		ws_finish(ws);
		return;
	}
	if (idle == 0)
		return;
	if (now - ws->w_active_ms < idle) {
		ws_arm(ws, idle - (now - ws->w_active_ms));
		return;
	}
	ws_close_begin(ws, WSLAY_CODE_NORMAL_CLOSURE, "idle", close_wait_ms());
	ws_pump(ws, false);
}

/* ---- http.c's calls (ws.h) ------------------------------------------------------ */

void
ws_drain(edge_ws *ws)
{
	ws_close_begin(ws, WSLAY_CODE_GOING_AWAY, "going away", close_wait_ms());
	ws_kick(ws);
}

void
ws_abandon(edge_ws *ws)
{
	ws_free(ws);
}

/* ---- API (edgevisor.h) ---------------------------------------------------------- */

edge_ws *
edge_ws_accept(edge_req *req, edge_res *res, edge_ws_fn fn, void *arg)
{
	const char *key = edge_req_header(req, "Sec-WebSocket-Key");
	const char *version = edge_req_header(req, "Sec-WebSocket-Version");
	char accept[WS_ACCEPT_LEN + 1];
	edge_ws *ws;
	int fd;

	if (strcmp(edge_req_method(req), "GET") != 0)
		return refuse(res, 400, "websocket_needs_get");
	if (http_upgrade_ok(res) < 0 || !has_token(edge_req_header(req, "Upgrade"), "websocket") ||
	    !has_token(edge_req_header(req, "Connection"), "upgrade"))
		return refuse(res, 400, "not_a_websocket_upgrade");
	if (version == NULL || strcmp(version, "13") != 0)
		return refuse(res, 426, "websocket_version");
	if (!valid_key(key))
		return refuse(res, 400, "websocket_key");
	/* A new connection would only be told 1001 at once. */
	if (wk.retiring)
		return refuse(res, 503, "retiring");
	if ((ws = calloc(1, sizeof(*ws))) == NULL)
		goto fail;
	if (wslay_event_context_server_init(&ws->w_ctx, &ws_callbacks, ws) != 0) {
		free(ws);
		goto fail;
	}
	wslay_event_config_set_max_recv_msg_length(ws->w_ctx, ws_max_message);
	accept_value(key, accept);
	if ((fd = http_upgrade(res, ws, accept, &ws->w_out, &ws->w_in)) < 0) {
		wslay_event_context_free(ws->w_ctx);
		free(ws);
		goto fail;
	}
	ws->w_fd = fd;
	ws->w_res = res;
	ws->w_fn = fn;
	ws->w_arg = arg;
	ws->w_active_ms = clock_ms();
	evtimer_assign(&ws->w_timer, wk.base, ws_timer_cb, ws);
	evtimer_assign(&ws->w_kick, wk.base, ws_kick_cb, ws);
	if (wk.conf.idle_timeout_ms > 0)
		ws_arm(ws, wk.conf.idle_timeout_ms);
	log_debug("ws_open", "peer=%s", log_qv(edge_req_peer(req)));
	/* The 101 and any frames already read are handled from the loop. */
	ws_kick(ws);
	return ws;
fail:
	log_error("ws_accept_failed", "err=%s", log_qv(strerror(errno)));
	edge_res_send(res, 500, "text/plain", "websocket failed\n", 17);
	return NULL;
}

int
edge_ws_send(edge_ws *ws, enum edge_ws_event type, const void *data, size_t len)
{
	struct wslay_event_msg m;

	if (ws == NULL || (type != EDGE_WS_TEXT && type != EDGE_WS_BINARY) ||
	    (len > 0 && data == NULL) || len > ws_max_buffer)
		return -1;
	if (ws->w_dead || ws->w_closing || !wslay_event_get_write_enabled(ws->w_ctx) ||
	    wslay_event_get_close_received(ws->w_ctx))
		return -1;
	if (wslay_event_get_queued_msg_length(ws->w_ctx) + len > ws_max_buffer) {
		ws->w_need_writable = true;
		return 1;
	}
	m.opcode = type == EDGE_WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
	m.msg = data;
	m.msg_length = len;
	if (wslay_event_queue_msg(ws->w_ctx, &m) != 0)
		return -1;
	ws_kick(ws);
	return 0;
}

int
edge_ws_close(edge_ws *ws, int code, const char *reason)
{
	/* 1004-1006 and 1015 are never sent (RFC 6455 7.4.1); past 1014 up to 2999 is
	 * unassigned. */
	if (ws == NULL || code < 1000 || code > 4999 || (code >= 1004 && code <= 1006) ||
	    (code > 1014 && code < 3000) || (reason != NULL && strlen(reason) > 123))
		return -1;
	if (ws->w_closing || ws->w_dead || wslay_event_get_close_sent(ws->w_ctx))
		return -1;
	ws_close_begin(ws, (uint16_t)code, reason, close_wait_ms());
	ws_kick(ws);
	return 0;
}

void
ws_set_limits(uint32_t max_message, uint32_t max_buffer)
{
	if (max_message > 0)
		ws_max_message = max_message;
	if (max_buffer > 0)
		ws_max_buffer = max_buffer;
}
