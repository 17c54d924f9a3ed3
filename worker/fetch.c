/*
 * fetch.c - outbound HTTP from the loop: edge_fetch() on libcurl's multi interface,
 * driven by the worker's libevent base (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION).
 *
 * One CURLM per worker, made at the first fetch, when libcurl itself is loaded
 * (curl_lazy.h: a worker that never fetches pays nothing): its connection cache is what reuses connections between fetches. Each
 * fetch is an async task (tasks.c), begun in edge_fetch and ended after its callback,
 * so the scoreboard names it, draining waits for it, a SIGKILL counts it lost and a
 * failure reaches the task-error hook. Nothing is started from inside edge_fetch: a
 * fetch joins a queue and a zero-time event starts what fits under max_inflight, so
 * the callback can never run inside the caller's edge_fetch and a burst of calls is
 * started in one go.
 *
 * The task is begun with the fetch's timeout plus FETCH_TIMEOUT_SLACK_MS: curl's own
 * timeout (what is left of the fetch's at its start) ends it with a clear reason;
 * the task's timer is only a backstop for a fetch that sat in the queue too long.
 *
 * Not here: SIGTERM. tasks_cut_all() tells the hook "cut" for every pending task,
 * fetches included, and the worker exits with the transfers; the board keeps them
 * pending, so the supervisor counts them lost.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "curl_lazy.h"
#include "fetch.h"
#include "fetch_allow.h"
#include "worker.h"

#define FETCH_TIMEOUT_SLACK_MS	1000
#define FETCH_METHOD_MAX	32
#define FETCH_REASON_MAX	512
#define FETCH_IDLE_EASY		256	/* finished easy handles kept for the next fetches */

struct buf {
	char *b_data;
	size_t b_len;
	size_t b_cap;
};

struct fetch {
	TAILQ_ENTRY(fetch) f_q;		/* fx.queue while waiting */
	edge_task *f_task;
	int64_t f_id;
	edge_fetch_cb f_cb;
	void *f_arg;
	char *f_url;
	char *f_method;			/* NULL = GET */
	struct curl_slist *f_hdrs;
	char *f_body;
	size_t f_body_len;
	uint32_t f_max_redirects;
	uint32_t f_timeout_ms;
	uint64_t f_deadline_ms;
	uint32_t f_max_body;		/* the limits when it was asked for */
	uint32_t f_max_headers;
	CURL *f_easy;
	const char *f_why;		/* set by a callback that stopped the transfer */
	char f_detail[CURL_ERROR_SIZE];
	char f_err[CURL_ERROR_SIZE];
	struct buf f_rbody;
	struct buf f_rhdrs;
};

TAILQ_HEAD(fetch_queue, fetch);

/* The loop thread's only. */
static struct {
	struct edge_ctx *ctx;
	CURLM *multi;
	struct event *timer;		/* curl's one timeout */
	struct event *pump;		/* starts queued fetches from the loop */
	struct fetch_limits lim;
	struct fetch_allow op_allow;	/* the operator's */
	struct fetch_allow fn_allow;	/* the function's own (edge_fetch_allow) */
	struct fetch_queue queue;
	uint32_t nqueued;
	uint32_t ninflight;
	CURL *idle[FETCH_IDLE_EASY];	/* reset, ready for another fetch */
	unsigned nidle;
} fx = {
	.lim = {
		.max_inflight = FETCH_DEF_MAX_INFLIGHT,
		.max_queued = FETCH_DEF_MAX_QUEUED,
		.max_body = FETCH_DEF_MAX_BODY,
		.max_headers = FETCH_DEF_MAX_HEADERS,
		.default_timeout_ms = FETCH_DEF_TIMEOUT_MS,
	},
	.queue = TAILQ_HEAD_INITIALIZER(fx.queue),
};

static void fetch_check_done(void);

void
fetch_set_limits(const struct fetch_limits *lim)
{
	if (lim->max_inflight > 0)
		fx.lim.max_inflight = lim->max_inflight;
	if (lim->max_queued > 0)
		fx.lim.max_queued = lim->max_queued;
	if (lim->max_body > 0)
		fx.lim.max_body = lim->max_body;
	if (lim->max_headers > 0)
		fx.lim.max_headers = lim->max_headers;
	if (lim->default_timeout_ms > 0)
		fx.lim.default_timeout_ms = lim->default_timeout_ms;
	if (fx.multi != NULL)
		curl_multi_setopt(fx.multi, CURLMOPT_MAXCONNECTS, (long)fx.lim.max_inflight);
}

int
fetch_allow_operator(const char *pattern)
{
	return fetch_allow_add(&fx.op_allow, pattern);
}

int
edge_fetch_allow(edge_ctx *ctx, const char *pattern)
{
	if (ctx == NULL) {
		errno = EINVAL;
		return -1;
	}
	return fetch_allow_add(&fx.fn_allow, pattern);
}

static bool
host_allowed(const char *host)
{
	return fetch_allow_match(&fx.op_allow, host) && fetch_allow_match(&fx.fn_allow, host);
}

/* Appends LEN bytes to B unless it would pass CAP; returns 0, or -1 (over, or ENOMEM). */
static int
buf_add(struct buf *b, const char *data, size_t len, size_t cap)
{
	size_t want = b->b_len + len + 1;	/* + the NUL the callback gets */
	char *p;

	if (b->b_len + len > cap)
		return -1;
	if (want > b->b_cap) {
		size_t ncap = b->b_cap > 0 ? b->b_cap : 1024;

		while (ncap < want)
			ncap *= 2;
		if ((p = realloc(b->b_data, ncap)) == NULL)
			return -1;
		b->b_data = p;
		b->b_cap = ncap;
	}
	memcpy(b->b_data + b->b_len, data, len);
	b->b_len += len;
	b->b_data[b->b_len] = '\0';
	return 0;
}

/* ---- libevent <-> curl ---------------------------------------------------------- */

static void
fetch_event_cb(evutil_socket_t fd, short what, void *arg)
{
	int action = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
	int running;

	curl_multi_socket_action(fx.multi, fd, action, &running);
	fetch_check_done();
}

static void
fetch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	int running;

	curl_multi_socket_action(fx.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	fetch_check_done();
}

/* curl says what to watch on socket S; SOCKP is the event we attached to it. */
static int
fetch_socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct event *ev = sockp;
	short kind;

	if (what == CURL_POLL_REMOVE) {
		if (ev != NULL)
			event_free(ev);
		return 0;
	}
	kind = EV_PERSIST | ((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0);
	if (ev == NULL) {
		if ((ev = event_new(fx.ctx->base, s, kind, fetch_event_cb, NULL)) == NULL)
			return -1;
		curl_multi_assign(fx.multi, s, ev);
	} else {
		event_del(ev);
		event_assign(ev, fx.ctx->base, s, kind, fetch_event_cb, NULL);
	}
	return event_add(ev, NULL) == 0 ? 0 : -1;
}

/* curl asks to be called back in TIMEOUT_MS (-1: never); 0 means on the next turn. */
static int
fetch_timerfn(CURLM *multi, long timeout_ms, void *userp)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };

	if (timeout_ms < 0)
		return evtimer_del(fx.timer) == 0 ? 0 : -1;
	return evtimer_add(fx.timer, &tv) == 0 ? 0 : -1;
}

/* ---- one fetch ------------------------------------------------------------------ */

/* An easy handle is a few KiB set up afresh: a reset one costs far less per fetch. */
static void
fetch_free(struct fetch *f)
{
	if (f->f_easy != NULL && fx.nidle < FETCH_IDLE_EASY) {
		curl_easy_reset(f->f_easy);
		fx.idle[fx.nidle++] = f->f_easy;
	} else if (f->f_easy != NULL) {
		curl_easy_cleanup(f->f_easy);
	}
	curl_slist_free_all(f->f_hdrs);
	free(f->f_url);
	free(f->f_method);
	free(f->f_body);
	free(f->f_rbody.b_data);
	free(f->f_rhdrs.b_data);
	free(f);
}

/* Stops the transfer at the cap: returning short makes curl fail it (CURLE_WRITE_ERROR). */
static size_t
fetch_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;

	if (buf_add(&f->f_rbody, data, n, f->f_max_body) < 0) {
		f->f_why = "too_large";
		if (f->f_rbody.b_len + n > f->f_max_body)
			snprintf(f->f_detail, sizeof(f->f_detail), "response body over %u bytes",
			    f->f_max_body);
		else
			snprintf(f->f_detail, sizeof(f->f_detail), "out of memory");
		return 0;
	}
	return n;
}

/* Keeps the header lines of the last response only (after a 100 or a redirect). */
static size_t
fetch_header_cb(char *data, size_t size, size_t n, void *arg)
{
	struct fetch *f = arg;

	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		f->f_rhdrs.b_len = 0;
	if (buf_add(&f->f_rhdrs, data, n, f->f_max_headers) < 0) {
		f->f_why = "too_large";
		snprintf(f->f_detail, sizeof(f->f_detail), "response headers over %u bytes",
		    f->f_max_headers);
		return 0;
	}
	return n;
}

/* Before each request curl sends (each redirect hop too): its host must be allowed. */
static int
fetch_prereq_cb(void *arg, char *conn_primary_ip, char *conn_local_ip, int primary,
    int local)
{
	struct fetch *f = arg;
	char *url = NULL, *host = NULL;
	CURLU *u;
	bool ok = false;

	if (curl_easy_getinfo(f->f_easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
	    url != NULL && (u = curl_url()) != NULL) {
		if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
			ok = host_allowed(host);
		curl_url_cleanup(u);
	}
	if (ok) {
		curl_free(host);
		return CURL_PREREQFUNC_OK;
	}
	f->f_why = "not_allowed";
	snprintf(f->f_detail, sizeof(f->f_detail), "redirect to host %s is not on the allow-list",
	    host != NULL ? host : "?");
	curl_free(host);
	return CURL_PREREQFUNC_ABORT;
}

/* The first word of a failure's reason, from what stopped it. */
static const char *
fetch_kind(const struct fetch *f, CURLcode rc)
{
	if (f->f_why != NULL)
		return f->f_why;
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return "timeout";
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "unreachable";
	case CURLE_FILESIZE_EXCEEDED:
		return "too_large";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return "tls";
	default:
		return "failed";
	}
}

/* REASON (FETCH_REASON_MAX bytes) for a fetch that ended with RC. */
static void
fetch_reason(const struct fetch *f, CURLcode rc, char *reason)
{
	const char *detail = f->f_detail[0] != '\0' ? f->f_detail :
	    f->f_err[0] != '\0' ? f->f_err : curl_easy_strerror(rc);

	if (rc == CURLE_FILESIZE_EXCEEDED && f->f_why == NULL)
		snprintf(reason, FETCH_REASON_MAX, "too_large: response body over %u bytes "
		    "(its Content-Length says so)", f->f_max_body);
	else
		snprintf(reason, FETCH_REASON_MAX, "%s: %s", fetch_kind(f, rc), detail);
	/* curl's error buffer may end in a newline. */
	reason[strcspn(reason, "\r\n")] = '\0';
}

/* Splits the raw header lines into name/value pairs pointing into the buffer. */
static struct edge_fetch_header *
fetch_parse_headers(struct buf *b, size_t *n)
{
	struct edge_fetch_header *hv;
	size_t lines = 0, k = 0;
	char *p, *end, *nl, *colon, *v, *e;

	*n = 0;
	if (b->b_len == 0)
		return NULL;
	for (size_t i = 0; i < b->b_len; i++)
		lines += b->b_data[i] == '\n';
	if ((hv = calloc(lines + 1, sizeof(*hv))) == NULL)
		return NULL;
	p = b->b_data;
	end = b->b_data + b->b_len;
	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		/* The status line and the blank end have no colon: skipped. */
		if (strncmp(p, "HTTP/", 5) == 0 || (colon = strchr(p, ':')) == NULL)
			continue;
		*colon = '\0';
		for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
			;
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t'); e--)
			*(e - 1) = '\0';
		hv[k].name = p;
		hv[k].value = v;
		k++;
	}
	*n = k;
	return hv;
}

/* A fetch ended (RC from curl, or an error of ours with F->f_why set): report it. */
static void
fetch_complete(struct fetch *f, CURLcode rc)
{
	char reason[FETCH_REASON_MAX] = "";
	struct edge_fetch_res res = { .id = f->f_id };
	struct edge_fetch_header *hv = NULL;
	long status = 0;

	if (f->f_easy != NULL) {
		curl_multi_remove_handle(fx.multi, f->f_easy);
		fx.ninflight--;
	}
	if (rc == CURLE_OK && f->f_why == NULL) {
		if (f->f_easy != NULL)
			curl_easy_getinfo(f->f_easy, CURLINFO_RESPONSE_CODE, &status);
		res.status = (int)status;
		hv = fetch_parse_headers(&f->f_rhdrs, &res.nheaders);
		res.headers = hv;
		res.body = f->f_rbody.b_data != NULL ? f->f_rbody.b_data : "";
		res.body_len = f->f_rbody.b_len;
	} else {
		fetch_reason(f, rc, reason);
		res.error = reason;
		res.body = "";
	}
	if (f->f_cb != NULL)
		f->f_cb(fx.ctx, &res, f->f_arg);
	/* After the callback: until it returned, the fetch kept the worker from draining. */
	edge_task_end(f->f_task, res.error != NULL, res.error);
	free(hv);
	fetch_free(f);
	if (!TAILQ_EMPTY(&fx.queue))
		event_active(fx.pump, EV_TIMEOUT, 0);
}

static void
fetch_check_done(void)
{
	CURLMsg *msg;
	struct fetch *f;
	int left;

	while ((msg = curl_multi_info_read(fx.multi, &left)) != NULL) {
		CURL *easy = msg->easy_handle;
		CURLcode rc = msg->data.result;

		if (msg->msg != CURLMSG_DONE)
			continue;
		f = NULL;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&f);
		if (f != NULL)
			fetch_complete(f, rc);
	}
}

/* Hands F to curl; returns 0, or -1 with F->f_why and f_detail set. */
static int
fetch_start(struct fetch *f)
{
	uint64_t now = clock_ms();
	CURL *e;
	bool follow = f->f_max_redirects > 0;

	if (now >= f->f_deadline_ms) {
		f->f_why = "timeout";
		snprintf(f->f_detail, sizeof(f->f_detail),
		    "not started within %u ms (%u fetches in flight)", f->f_timeout_ms,
		    fx.ninflight);
		return -1;
	}
	e = f->f_easy = fx.nidle > 0 ? fx.idle[--fx.nidle] : curl_easy_init();
	if (e == NULL)
		goto nomem;
	/* Any failed setopt is an option this libcurl lacks: refuse rather than run unsafe. */
	if (curl_easy_setopt(e, CURLOPT_URL, f->f_url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, f) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->f_err) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    /* The worker's environment names no proxy for tenants: only what we say. */
	    curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)f->f_max_redirects) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(f->f_deadline_ms - now)) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)f->f_max_body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, f) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, fetch_header_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, f) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->f_hdrs) != CURLE_OK)
		goto badopt;
	/* Each hop of a redirect is checked against the allow-lists before it is sent. */
	if (follow && (fx.op_allow.fa_n > 0 || fx.fn_allow.fa_n > 0) &&
	    (curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, fetch_prereq_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PREREQDATA, f) != CURLE_OK))
		goto badopt;
	if (f->f_body_len > 0 &&
	    (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)f->f_body_len) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_POSTFIELDS, f->f_body) != CURLE_OK))
		goto badopt;
	if (f->f_method != NULL && strcmp(f->f_method, "HEAD") == 0) {
		if (curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK)
			goto badopt;
	} else if (f->f_method != NULL && !(strcmp(f->f_method, "POST") == 0 && f->f_body_len > 0) &&
	    !(strcmp(f->f_method, "GET") == 0 && f->f_body_len == 0)) {
		if (curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, f->f_method) != CURLE_OK)
			goto badopt;
	}
	if (curl_multi_add_handle(fx.multi, e) != CURLM_OK)
		goto nomem;
	fx.ninflight++;
	return 0;
badopt:
	f->f_why = "failed";
	snprintf(f->f_detail, sizeof(f->f_detail), "libcurl refused an option this fetch needs");
	goto fail;
nomem:
	f->f_why = "failed";
	snprintf(f->f_detail, sizeof(f->f_detail), "out of memory");
fail:
	if (f->f_easy != NULL)
		curl_easy_cleanup(f->f_easy);
	f->f_easy = NULL;
	return -1;
}

/* Starts queued fetches while there is room; one that cannot start ends with why. */
static void
fetch_pump_cb(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *f;

	while (fx.ninflight < fx.lim.max_inflight && (f = TAILQ_FIRST(&fx.queue)) != NULL) {
		TAILQ_REMOVE(&fx.queue, f, f_q);
		fx.nqueued--;
		if (fetch_start(f) < 0)
			fetch_complete(f, CURLE_OK);
	}
}

/* The multi handle and its events, at the first fetch; returns 0 or -1. */
static int
fetch_setup(struct edge_ctx *ctx)
{
	static bool global_done;

	if (fx.multi != NULL)
		return 0;
	if (curl_lazy_load() < 0) {
		errno = ENOSYS;
		return -1;
	}
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			goto fail;
		global_done = true;
	}
	fx.ctx = ctx;
	if ((fx.timer = evtimer_new(ctx->base, fetch_timer_cb, NULL)) == NULL ||
	    (fx.pump = event_new(ctx->base, -1, 0, fetch_pump_cb, NULL)) == NULL ||
	    (fx.multi = curl_multi_init()) == NULL)
		goto fail;
	if (curl_multi_setopt(fx.multi, CURLMOPT_SOCKETFUNCTION, fetch_socket_cb) != CURLM_OK ||
	    curl_multi_setopt(fx.multi, CURLMOPT_TIMERFUNCTION, fetch_timerfn) != CURLM_OK ||
	    /* Idle connections kept for reuse: as many as can be busy at once. */
	    curl_multi_setopt(fx.multi, CURLMOPT_MAXCONNECTS, (long)fx.lim.max_inflight) != CURLM_OK)
		goto fail;
	return 0;
fail:
	log_error("fetch_setup_failed", "msg=\"cannot set up libcurl's multi handle\"");
	if (fx.multi != NULL)
		curl_multi_cleanup(fx.multi);
	fx.multi = NULL;
	if (fx.timer != NULL)
		event_free(fx.timer);
	if (fx.pump != NULL)
		event_free(fx.pump);
	fx.timer = fx.pump = NULL;
	errno = ENOMEM;
	return -1;
}

/* RFC 9110 token characters (a method, a header name). */
static bool
is_token(const char *s, size_t max)
{
	size_t n = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s != '\0'; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (n == max || c <= 0x20 || c >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", c) != NULL)
			return false;
	}
	return true;
}

/* The request's headers as curl's list; NULL with errno (EINVAL: CR/LF in a value). */
static int
fetch_headers(const struct edge_fetch_req *req, struct curl_slist **out)
{
	struct curl_slist *l = NULL, *nl;
	char *line;

	*out = NULL;
	for (size_t i = 0; i < req->nheaders; i++) {
		const char *name = req->headers[i].name, *value = req->headers[i].value;

		if (value == NULL)
			value = "";
		/* A CR or LF in a value would let the caller add headers, or a request. */
		if (!is_token(name, 256) || strpbrk(value, "\r\n") != NULL) {
			errno = EINVAL;
			goto fail;
		}
		/* "Name;" is curl's way to send a header with an empty value. */
		if ((*value == '\0' ? asprintf(&line, "%s;", name) :
		    asprintf(&line, "%s: %s", name, value)) < 0)
			goto fail;
		nl = curl_slist_append(l, line);
		free(line);
		if (nl == NULL)
			goto fail;
		l = nl;
	}
	*out = l;
	return 0;
fail:
	curl_slist_free_all(l);
	return -1;
}

/* Checks URL's scheme (http, https) and host (the allow-lists); 0, or -1 with errno. */
static int
fetch_check_url(const char *url, const char *name)
{
	char *scheme = NULL, *host = NULL;
	CURLU *u;
	int rc = -1;

	if ((u = curl_url()) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	errno = EINVAL;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
		log_warn("fetch_refused", "task_name=%s reason=bad_url url=%s", log_qv(name),
		    log_qv(url));
		goto out;
	}
	if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
		log_warn("fetch_refused", "task_name=%s reason=scheme url=%s", log_qv(name),
		    log_qv(url));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		log_warn("fetch_refused", "task_name=%s reason=bad_url url=%s", log_qv(name),
		    log_qv(url));
		goto out;
	}
	if (!host_allowed(host)) {
		/* The operator wants to see a tenant reaching for a host it may not. */
		log_warn("fetch_refused", "task_name=%s reason=not_allowed host=%s", log_qv(name),
		    log_qv(host));
		errno = EACCES;
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

int64_t
edge_fetch(edge_ctx *ctx, const struct edge_fetch_req *req, edge_fetch_cb cb, void *arg)
{
	const char *name;
	struct fetch *f = NULL;
	uint32_t timeout;
	int saved;

	if (ctx == NULL || ctx->base == NULL || req == NULL || req->url == NULL ||
	    (req->nheaders > 0 && req->headers == NULL) ||
	    (req->body_len > 0 && req->body == NULL) ||
	    (req->method != NULL && !is_token(req->method, FETCH_METHOD_MAX))) {
		errno = EINVAL;
		return -1;
	}
	if (ctx->terminating) {
		errno = ESHUTDOWN;
		return -1;
	}
	name = req->name != NULL && *req->name != '\0' ? req->name : "fetch";
	if (fetch_setup(ctx) < 0 || fetch_check_url(req->url, name) < 0)
		return -1;
	if (fx.nqueued + fx.ninflight >= fx.lim.max_queued + fx.lim.max_inflight) {
		errno = EAGAIN;
		return -1;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	timeout = req->timeout_ms > 0 ? req->timeout_ms : fx.lim.default_timeout_ms;
	f->f_cb = cb;
	f->f_arg = arg;
	f->f_timeout_ms = timeout;
	f->f_deadline_ms = clock_ms() + timeout;
	f->f_max_body = fx.lim.max_body;
	f->f_max_headers = fx.lim.max_headers;
	f->f_max_redirects = req->max_redirects < FETCH_MAX_REDIRECTS ? req->max_redirects :
	    FETCH_MAX_REDIRECTS;
	if ((f->f_url = strdup(req->url)) == NULL ||
	    (req->method != NULL && (f->f_method = strdup(req->method)) == NULL) ||
	    fetch_headers(req, &f->f_hdrs) < 0)
		goto fail;
	if (req->body_len > 0) {
		if ((f->f_body = malloc(req->body_len)) == NULL)
			goto fail;
		memcpy(f->f_body, req->body, req->body_len);
		f->f_body_len = req->body_len;
	}
	if ((f->f_task = edge_task_begin(ctx, name, timeout + FETCH_TIMEOUT_SLACK_MS)) == NULL)
		goto fail;
	f->f_id = edge_task_id(f->f_task);
	TAILQ_INSERT_TAIL(&fx.queue, f, f_q);
	fx.nqueued++;
	/* Started from the loop, never inside this call: see the top of the file. */
	event_active(fx.pump, EV_TIMEOUT, 0);
	return f->f_id;
fail:
	saved = errno;
	fetch_free(f);
	errno = saved;
	return -1;
}
