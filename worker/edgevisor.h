/*
 * edgevisor.h - the only header a function author includes.
 *
 * A function is a shared object that ends with EDGE_FUNCTION(init, handle). The
 * worker dlopen()s it, checks EDGE_API_VERSION, calls init once (like a module's top
 * level) and handle once per request, all on the worker's single event-loop thread.
 *
 * Background tasks are the C twin of EdgeRuntime.waitUntil(promise): a blocking task
 * runs on the worker's task thread pool; an async task is a handle that code on the
 * loop ends later. The worker stays alive until every task has ended (or it is shut
 * down, and then the beforeunload hooks are told why).
 *
 * Strings returned by the request accessors stay valid until the response is sent.
 * Every call here must be made on the loop thread, except from inside a blocking task
 * function, which may call nothing but edge_log().
 */
#ifndef EDGEVISOR_H
#define EDGEVISOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGE_API_VERSION 1

typedef struct edge_ctx edge_ctx;   /* the worker: one per process */
typedef struct edge_req edge_req;   /* one request */
typedef struct edge_res edge_res;   /* its response */
typedef struct edge_task edge_task; /* an async background task */
struct event_base;

typedef int (*edge_init_fn)(edge_ctx *ctx);
typedef void (*edge_handler_fn)(edge_req *req, edge_res *res);

struct edge_function {
	uint32_t api_version;
	edge_init_fn init;       /* may be NULL */
	edge_handler_fn handle;
};

/* Declares the function's entry point; exactly one per shared object. */
#define EDGE_FUNCTION(init_fn, handle_fn)                                     \
	__attribute__((visibility("default"))) const struct edge_function        \
	    edge_function_entry = { EDGE_API_VERSION, (init_fn), (handle_fn) }

/* ---- request ---------------------------------------------------------------- */
const char *edge_req_method(const edge_req *req);  /* "GET", "POST", ... */
const char *edge_req_path(const edge_req *req);    /* "/a/b", decoded no further */
const char *edge_req_query(const edge_req *req);   /* after '?', or "" */
/* Header by name (case-insensitive), or NULL. */
const char *edge_req_header(const edge_req *req, const char *name);
size_t edge_req_header_count(const edge_req *req);
/* The I-th header; returns 0, or -1 when I is out of range. */
int edge_req_header_at(const edge_req *req, size_t i, const char **name, const char **value);
/* The body (de-chunked), capped at the function's max_body_bytes; *LEN its size. */
const void *edge_req_body(const edge_req *req, size_t *len);
const char *edge_req_peer(const edge_req *req);    /* "127.0.0.1:54321", "unix" */
edge_ctx *edge_req_ctx(const edge_req *req);

/* ---- response --------------------------------------------------------------- */
/* Adds a header to the response; returns 0, or -1 if sent already or too large. */
int edge_res_header(edge_res *res, const char *name, const char *value);
/*
 * Sends the response now: STATUS, CONTENT_TYPE (NULL for none) and LEN bytes of BODY
 * (copied). Call it from the handler, or later from the loop (an async response):
 * the request stays valid until then. Returns 0, or -1 if it was sent already or the
 * request timed out (the client got 504).
 */
int edge_res_send(edge_res *res, int status, const char *content_type,
    const void *body, size_t len);

/* ---- streaming response --------------------------------------------------------- */
/*
 * A body produced over time (server-sent events, a large download): start it, write
 * pieces from the loop as they are produced, end it. HTTP/1.1 gets
 * Transfer-Encoding: chunked (keep-alive and pipelining go on after the end); HTTP/1.0
 * gets a body that ends when the connection closes; HEAD gets the head only (writes
 * are taken and dropped).
 *
 * Backpressure: at most EDGE_STREAM_BUFFER bytes (chunk framing included) wait in
 * the worker per response. A write that does not fit is not taken and returns 1: the
 * client is slow; the stream callback is told EDGE_STREAM_WRITABLE once it fits.
 *
 * request_timeout_ms applies to stalls, not to the stream's life: a stream that moves
 * no byte (nothing written by the function, nothing read by the client) for that long
 * is closed and told EDGE_STREAM_GONE. A stream counts as work in flight: a worker
 * drains only after it ended; when the worker starts draining the callback is told
 * EDGE_STREAM_DRAINING (an endless stream should end now; a finite one may finish).
 */
#define EDGE_STREAM_BUFFER (256 * 1024)  /* fixed for now; a limits key later */

enum edge_stream_event {
	EDGE_STREAM_WRITABLE = 1,  /* the write that returned 1 fits now */
	EDGE_STREAM_DRAINING,      /* the worker is retiring: end an endless stream */
	EDGE_STREAM_GONE,          /* client left, stalled, or the worker stops: call edge_res_end */
};
typedef void (*edge_stream_fn)(edge_res *res, enum edge_stream_event ev, void *arg);

/*
 * Sends STATUS, CONTENT_TYPE (NULL for none) and the headers added so far; FN(ARG)
 * (may be NULL) is told the events above, on the loop, never from inside a call here.
 * Call it from the handler or later, like edge_res_send. Returns 0, or -1 (answered
 * already, timed out, STATUS 1xx/204/304 or out of range).
 */
int edge_res_start(edge_res *res, int status, const char *content_type,
    edge_stream_fn fn, void *arg);
/*
 * Queues LEN bytes of body (copied). Returns 0 (taken), 1 (not taken: the buffer is
 * full, wait for EDGE_STREAM_WRITABLE), or -1 (not taken: the stream is gone, or LEN
 * is over EDGE_STREAM_BUFFER - 32; stop writing and call edge_res_end).
 */
int edge_res_write(edge_res *res, const void *data, size_t len);
/*
 * Ends the body (the client sees a complete response once the buffer is written).
 * RES and the request are invalid afterwards. Returns 0, or -1 if the stream was gone
 * before its end (the client did not get all of it).
 */
int edge_res_end(edge_res *res);

/* ---- WebSocket (RFC 6455) ------------------------------------------------------ */
/*
 * A handler (or code answering later, while the request is held) may take an
 * `Upgrade: websocket` request with edge_ws_accept(): the client gets 101 and the
 * connection speaks WebSocket from then on. Messages arrive whole (fragments are
 * reassembled) and are sent whole; pings are answered with pongs by the runtime.
 *
 * Caps: an incoming message over EDGE_WS_MAX_MESSAGE closes the connection with
 * 1009; outgoing messages wait in the worker up to EDGE_WS_BUFFER bytes per
 * connection (a send that does not fit returns 1: wait for EDGE_WS_WRITABLE).
 * Protocol errors get their close code from the runtime: 1002 (e.g. an unmasked
 * client frame), 1007 (a text message that is not UTF-8), 1009 (too big).
 *
 * An open WebSocket is work in flight: when the worker retires, each one is sent
 * close 1001 (going away) and has EDGE_WS_CLOSE_WAIT_MS to answer it before it is
 * dropped. idle_timeout_ms counts from the last frame the client sent (a ping
 * counts): a silent connection is closed with 1000.
 */
typedef struct edge_ws edge_ws;

#define EDGE_WS_MAX_MESSAGE   (1024 * 1024)  /* per incoming message, after reassembly */
#define EDGE_WS_BUFFER        (1024 * 1024)  /* outgoing bytes queued per connection */
#define EDGE_WS_CLOSE_WAIT_MS 2000           /* our close sent: wait this long for theirs */

enum edge_ws_event {
	EDGE_WS_TEXT = 1,    /* a whole text message (valid UTF-8); also a send type */
	EDGE_WS_BINARY,      /* a whole binary message; also a send type */
	EDGE_WS_CLOSE,       /* the peer sent close (code, reason): answered already */
	EDGE_WS_WRITABLE,    /* a send that returned 1 fits now */
	EDGE_WS_GONE,        /* the connection is closed; WS is invalid once this returns */
};

struct edge_ws_msg {
	enum edge_ws_event ev;
	const void *data;    /* TEXT, BINARY: the message; CLOSE: the reason; valid in the call */
	size_t len;
	int code;            /* CLOSE, GONE: the code the peer sent (1005: none, 1006: no close) */
};
typedef void (*edge_ws_fn)(edge_ws *ws, const struct edge_ws_msg *msg, void *arg);

/*
 * Checks the handshake (GET, HTTP/1.1, Upgrade: websocket, Connection: upgrade, a
 * 16-byte Sec-WebSocket-Key, Sec-WebSocket-Version: 13) and answers 101 with the
 * headers added by edge_res_header (e.g. Sec-WebSocket-Protocol). FN(ARG) hears the
 * events above, on the loop, never from inside a call here. Returns the WebSocket
 * (REQ and RES are then invalid), or NULL: the request was answered with 400 (a bad
 * handshake), 426 (another version), 503 (the worker is retiring), or could not be
 * answered (sent already, timed out, gone).
 */
edge_ws *edge_ws_accept(edge_req *req, edge_res *res, edge_ws_fn fn, void *arg);
/*
 * Queues one message of TYPE (EDGE_WS_TEXT: the caller makes it UTF-8, or
 * EDGE_WS_BINARY), copied. Returns 0 (taken), 1 (not taken: EDGE_WS_BUFFER is full,
 * wait for EDGE_WS_WRITABLE) or -1 (closing or gone, LEN over EDGE_WS_BUFFER, a bad
 * TYPE).
 */
int edge_ws_send(edge_ws *ws, enum edge_ws_event type, const void *data, size_t len);
/*
 * Starts the closing handshake with CODE (1000-1003, 1007-1014, 3000-4999) and
 * REASON (may be NULL, at most 123 bytes): queued messages go first, then GONE comes
 * once the peer answers or after EDGE_WS_CLOSE_WAIT_MS. Returns 0, or -1 (closing
 * already, a bad code or reason).
 */
int edge_ws_close(edge_ws *ws, int code, const char *reason);

/* ---- background tasks --------------------------------------------------------- */
typedef int (*edge_task_fn)(void *arg); /* 0 = success, non-zero = failed */

/*
 * Runs FN(ARG) on the task thread pool, after the current response if called from a
 * handler. Never blocks. Returns the task id (> 0), or -1 if the worker is shutting
 * down or holds its maximum of pending tasks (then FN is not called).
 */
int64_t edge_wait_until(edge_ctx *ctx, edge_task_fn fn, void *arg);
/* The same with a NAME (for logs and status) and its own TIMEOUT_MS (0 = none). */
int64_t edge_wait_until_named(edge_ctx *ctx, const char *name, uint32_t timeout_ms,
    edge_task_fn fn, void *arg);

/*
 * An async task: begins now and is pending until edge_task_end() is called on the
 * loop thread with STATUS 0 (success) or non-zero and a REASON (failure). Returns the
 * handle, or NULL like edge_wait_until. The handle is invalid after edge_task_end().
 */
edge_task *edge_task_begin(edge_ctx *ctx, const char *name, uint32_t timeout_ms);
void edge_task_end(edge_task *task, int status, const char *reason);
int64_t edge_task_id(const edge_task *task);
/* The worker's libevent base, to drive async work from the loop. */
struct event_base *edge_ctx_base(edge_ctx *ctx);

/* ---- outbound HTTP (fetch) ---------------------------------------------------- */
/*
 * An HTTP(S) request sent from the worker's loop (libcurl underneath: connections
 * are reused per worker, TLS verified against the system's CA store). A fetch is an
 * async background task: it has an id and a name, keeps the worker from draining
 * until it ended, reaches the task-error hook when it fails, and is counted lost if
 * the worker dies. Limits per worker (defaults; the operator may change them): 256
 * transfers at once, more wait in a queue of 4096, then edge_fetch refuses; 1 MiB of
 * response body and 64 KiB of response headers, past which the fetch fails
 * "too_large"; 30 s when the request gives no timeout.
 */

struct edge_fetch_header {
	const char *name;
	const char *value;
};

struct edge_fetch_req {
	const char *method;            /* NULL = "GET"; "HEAD" gets no body */
	const char *url;               /* http:// or https:// only */
	const struct edge_fetch_header *headers;
	size_t nheaders;
	const void *body;              /* sent when BODY_LEN > 0 (copied) */
	size_t body_len;
	uint32_t timeout_ms;           /* the whole fetch, queue included; 0 = the default */
	const char *name;              /* the task's name; NULL = "fetch" */
	uint32_t max_redirects;        /* 0 = a 3xx is the answer; else followed, each hop allow-listed */
};

/*
 * What the callback is told, once, on the loop. ERROR is NULL when a response came
 * (any STATUS); otherwise it says why, starting with one word: "unreachable:",
 * "timeout:", "too_large:", "not_allowed:", "tls:", "failed:" (STATUS is 0 then).
 * Everything here is valid during the callback only; BODY is NUL-terminated.
 */
struct edge_fetch_res {
	int64_t id;                    /* the task id edge_fetch returned */
	int status;
	const char *error;
	const struct edge_fetch_header *headers;  /* of the last response, in order */
	size_t nheaders;
	const char *body;
	size_t body_len;
};
typedef void (*edge_fetch_cb)(edge_ctx *ctx, const struct edge_fetch_res *res, void *arg);

/*
 * Starts (or queues) REQ, copied; CB(ctx, res, ARG) (may be NULL) is called once when
 * it ends, never from inside this call. A failure also reaches the task-error hook
 * with the same reason (after the callback). Returns the task id (> 0), or -1 with
 * errno: EINVAL (bad request, URL or scheme), EACCES (host not on an allow-list),
 * EAGAIN (the queue or the task table is full), ESHUTDOWN (the worker is stopping);
 * then CB is not called. On SIGTERM an unfinished fetch is cut (the hook hears "cut",
 * CB is not called) and counted lost, like any task.
 */
int64_t edge_fetch(edge_ctx *ctx, const struct edge_fetch_req *req, edge_fetch_cb cb,
    void *arg);
/*
 * Restricts this worker's fetches to hosts matching PATTERN and the other patterns
 * added (exact host, "*.suffix", or "*"); with none added every host is allowed. An
 * operator's list, when there is one, applies too: a fetch must pass both. Returns 0,
 * or -1 (EINVAL bad pattern, ENOSPC over 256 patterns).
 */
int edge_fetch_allow(edge_ctx *ctx, const char *pattern);

/* ---- durable tasks ------------------------------------------------------------ */
/*
 * A durable task is data (a KIND and a payload), recorded in the function's journal
 * before edge_enqueue* reports success, so it outlives this worker, the supervisor
 * and a reboot. A worker of the same function runs it later with the handler
 * registered for its kind (edge_durable_handle, in init).
 *
 * Delivery is AT LEAST ONCE: an attempt cut by a crash or a kill runs again after
 * its lease ends, so a handler can see a task twice. Make handlers safe to repeat
 * (an idempotent write, or a check keyed on edge_durable_id); give an enqueue an
 * idempotency key so that a repeated enqueue (a client's retry) records one task.
 *
 * A handler ends an attempt with EDGE_DURABLE_OK (done), EDGE_DURABLE_RETRY (again
 * after an exponential backoff with jitter, until max_attempts, then dead) or
 * EDGE_DURABLE_FAIL (dead now: a permanent failure). Dead tasks stay in the journal
 * until `edgevisorctl tasks retry ID` re-drives them.
 */
typedef struct edge_durable edge_durable;  /* one attempt of a durable task */

enum edge_durable_result {
	EDGE_DURABLE_OK = 0,
	EDGE_DURABLE_RETRY = 1,
	EDGE_DURABLE_FAIL = 2,
	EDGE_DURABLE_LATER = 3,   /* async handlers only: edge_durable_done() follows */
};

struct edge_durable_opts {
	uint32_t delay_ms;              /* first run not before now + delay */
	uint32_t max_attempts;          /* 0 = 5 */
	uint32_t timeout_ms;            /* per attempt; 0 = 30 s (async handlers: RETRY after) */
	const char *idempotency_key;    /* NULL = none; 1..255 bytes */
};

/*
 * A handler: PAYLOAD (LEN bytes, NUL-terminated for convenience) is valid until the
 * attempt ends. Returns an enum edge_durable_result.
 */
typedef int (*edge_durable_fn)(edge_durable *task, const void *payload, size_t len,
    void *arg);

#define EDGE_DURABLE_BLOCKING 0x1u  /* run FN on the task thread pool; else on the loop */

/*
 * Registers FN(ARG) for KIND ([A-Za-z0-9_.:-]{1,63}); call it in init. A blocking
 * handler runs on the task pool and returns its result; a loop handler may return
 * EDGE_DURABLE_LATER and call edge_durable_done() later (e.g. from an edge_fetch
 * callback). Returns 0, or -1 (EINVAL bad kind or flags, EEXIST registered already,
 * ENOSPC over 64 kinds, ENOTSUP the function has no "durable" config).
 */
int edge_durable_handle(edge_ctx *ctx, const char *kind, unsigned flags, edge_durable_fn fn,
    void *arg);

/*
 * Records a task and blocks until it is durable (group-committed with every other
 * enqueue of the moment). May be called from the loop (it then waits for one commit:
 * prefer edge_enqueue_async in request handlers) or from a blocking task. Returns
 * the task id (> 0; the first task's id for a repeated idempotency key), or -1 with
 * errno: EINVAL (bad kind, options or payload over 1 MiB), ENOSPC (the function's
 * journal is full), ENOTSUP (no "durable" config), ESHUTDOWN (the worker is
 * stopping), EIO or EAGAIN (the journal failed; nothing was recorded).
 */
int64_t edge_enqueue(edge_ctx *ctx, const char *kind, const void *payload, size_t len,
    const struct edge_durable_opts *opts);

/* Told once, on the loop, when an async enqueue is durable (ID > 0, ERR 0) or failed
 * (ID -1, ERR an errno as for edge_enqueue). */
typedef void (*edge_enqueue_cb)(edge_ctx *ctx, int64_t id, int err, void *arg);

/*
 * The same without blocking, from the loop: CB(ARG) is told the outcome once, never
 * from inside this call. Returns 0, or -1 with errno (EINVAL, ENOTSUP, ESHUTDOWN)
 * and then CB is not called.
 */
int edge_enqueue_async(edge_ctx *ctx, const char *kind, const void *payload, size_t len,
    const struct edge_durable_opts *opts, edge_enqueue_cb cb, void *arg);

/* Ends an attempt whose handler returned EDGE_DURABLE_LATER; on the loop. WHY (may
 * be NULL) is kept as the task's last reason. TASK is invalid afterwards. */
void edge_durable_done(edge_durable *task, int result, const char *why);
int64_t edge_durable_id(const edge_durable *task);
/* This attempt's number, 1-based, and the task's max_attempts. */
uint32_t edge_durable_attempt(const edge_durable *task);
uint32_t edge_durable_max_attempts(const edge_durable *task);
const char *edge_durable_kind(const edge_durable *task);

/* ---- events: beforeunload and task errors ------------------------------------ */
/*
 * REASON is one of "cpu", "memory", "wall_clock", "early_drop", "termination";
 * DEADLINE_MS is how long the worker has left before it is killed.
 */
typedef void (*edge_unload_fn)(edge_ctx *ctx, const char *reason, int64_t deadline_ms,
    void *arg);
int edge_on_beforeunload(edge_ctx *ctx, edge_unload_fn fn, void *arg);

/* What the task-error hook is told: the twin of 'unhandledrejection'. */
struct edge_task_error {
	int64_t id;
	const char *name;
	const char *reason;  /* "failed", "timeout", "cut", or the async task's reason */
	int code;            /* the task function's return value, 0 when not returned */
	int handled;         /* set by edge_task_error_prevent_default() */
};
typedef void (*edge_task_error_fn)(edge_ctx *ctx, struct edge_task_error *err, void *arg);
int edge_on_task_error(edge_ctx *ctx, edge_task_error_fn fn, void *arg);
/* Marks the error handled: the worker does not log it (preventDefault). */
void edge_task_error_prevent_default(struct edge_task_error *err);

/* ---- misc --------------------------------------------------------------------- */
const char *edge_ctx_function(const edge_ctx *ctx); /* the function's name */
/* A log line from the function, tagged with the worker; safe from any thread. */
void edge_log(edge_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif
