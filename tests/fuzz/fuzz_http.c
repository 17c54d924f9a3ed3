/*
 * fuzz_http.c - libFuzzer target for the worker's HTTP layer (worker/http.c and
 * worker/http_parse.c), driven in-process through a socketpair.
 *
 * Each input is the byte stream of one client connection. It is written to one end
 * of a socketpair, in pieces whose size depends on the input (so split reads are
 * exercised), the other end is http_adopt()ed, and the worker's event loop runs
 * until the connection is quiet; then the client half-closes and the loop runs
 * until the worker has closed it. The worker's output must be:
 *   - a sequence of complete, well-formed responses, nothing else;
 *   - first, one 200 per request, each echoing exactly the request that a separate,
 *     clean parse of the same bytes (a second http_parser) sees at that position,
 *     so no request is invented, merged, split or smuggled;
 *   - then at most one error answer (4xx/5xx with Connection: close), last;
 *   - when there is no error answer, every request up to the first non-keep-alive
 *     one is answered.
 * And the worker must close the connection after the client's EOF (no hang).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <http_parser.h>

#include "edgevisor.h"
#include "log.h"
#include "worker.h"

#define MAX_BODY     1024
#define MAX_HEADER   2048
#define MAX_REQS     8192
#define OUT_MAX      (1 << 22)
#define SPIN_MAX     2000    /* loop rounds allowed to close after the client's EOF */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The worker's globals that worker/main.c would provide. */
struct edge_ctx wk;

void
worker_check_drained(void)
{
}

void
worker_report_limit(uint32_t reason, bool hard)
{
}

/* FUZZ_VERBOSE=1 in the environment: print what the handler and the reference saw. */
static bool verbose;

/* ---- FNV-1a, to compare headers and bodies by digest ----------------------------- */

static uint64_t
fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		h ^= s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ULL

/* ---- the function under the worker: describes the request it got ------------------ */

static void
echo_handle(edge_req *req, edge_res *res)
{
	char out[8192];
	const char *name, *value, *x;
	const void *body;
	size_t blen, n, i, count = edge_req_header_count(req);
	uint64_t hh = FNV0;
	int len;

	for (i = 0; i < count; i++) {
		if (edge_req_header_at(req, i, &name, &value) < 0)
			abort();
		if (verbose)
			fprintf(stderr, "handler header %zu: \"%s\" = \"%s\"\n", i, name, value);
		hh = fnv(hh, name, strlen(name));
		hh = fnv(hh, ":", 1);
		hh = fnv(hh, value, strlen(value));
		hh = fnv(hh, "\n", 1);
	}
	if (edge_req_header_at(req, count, &name, &value) != -1)
		abort();
	body = edge_req_body(req, &blen);
	if (blen > MAX_BODY)
		abort();
	len = snprintf(out, sizeof(out), "M %s\nP %s\nQ %s\nH %zu %016llx\nB %zu %016llx\n",
	    edge_req_method(req), edge_req_path(req), edge_req_query(req), count,
	    (unsigned long long)hh, blen, (unsigned long long)fnv(FNV0, body, blen));
	n = len < 0 ? 0 : (size_t)len >= sizeof(out) ? sizeof(out) - 1 : (size_t)len;
	/* A request header echoed back must not be able to inject a response header. */
	if ((x = edge_req_header(req, "X-Echo")) != NULL)
		edge_res_header(res, "X-Echo", x);
	edge_res_send(res, 200, "text/plain", out, n);
}

static const struct edge_function fn_entry = { EDGE_API_VERSION, NULL, echo_handle };

/* ---- the reference: a clean parse of the same bytes ------------------------------ */

struct ref_req {
	char method[16];
	char *url;
	size_t url_len;
	size_t nfields;
	uint64_t hhash;
	uint64_t bhash;
	size_t blen;
	bool keep_alive;
	bool complete;
};

struct ref {
	struct ref_req r[MAX_REQS];
	size_t n;              /* complete requests */
	int last;              /* 1 url, 2 field, 3 value */
	char *cur;             /* the current header piece (name or value) */
	size_t cur_len;
	bool truncated;
};

static struct ref ref;

static struct ref_req *
ref_cur(void)
{
	return ref.n < MAX_REQS ? &ref.r[ref.n] : NULL;
}

static void
ref_append(char **p, size_t *len, const char *at, size_t n)
{
	char *q = realloc(*p, *len + n + 1);

	if (q == NULL)
		abort();
	memcpy(q + *len, at, n);
	*len += n;
	q[*len] = '\0';
	*p = q;
}

/* Header names and values reach the handler as C strings: up to the first NUL. */
static void
ref_flush_piece(void)
{
	struct ref_req *r = ref_cur();

	if (r != NULL && (ref.last == 2 || ref.last == 3)) {
		const char *s = ref.cur ? ref.cur : "";

		if (verbose)
			fprintf(stderr, "reference %s: \"%s\"\n", ref.last == 2 ? "name" : "value", s);

		r->hhash = fnv(r->hhash, s, strlen(s));
		r->hhash = fnv(r->hhash, ref.last == 2 ? ":" : "\n", 1);
	}
	free(ref.cur);
	ref.cur = NULL;
	ref.cur_len = 0;
}

static int
ref_begin_cb(http_parser *p)
{
	struct ref_req *r = ref_cur();

	if (r == NULL) {
		ref.truncated = true;
		return -1;
	}
	memset(r, 0, sizeof(*r));
	r->hhash = FNV0;
	r->bhash = FNV0;
	ref.last = 0;
	return 0;
}

static int
ref_url_cb(http_parser *p, const char *at, size_t n)
{
	struct ref_req *r = ref_cur();

	ref_append(&r->url, &r->url_len, at, n);
	ref.last = 1;
	return 0;
}

static int
ref_field_cb(http_parser *p, const char *at, size_t n)
{
	struct ref_req *r = ref_cur();

	if (ref.last != 2) {
		ref_flush_piece();
		r->nfields++;
		ref.last = 2;
	}
	ref_append(&ref.cur, &ref.cur_len, at, n);
	return 0;
}

static int
ref_value_cb(http_parser *p, const char *at, size_t n)
{
	if (ref.last != 3) {
		ref_flush_piece();
		ref.last = 3;
	}
	ref_append(&ref.cur, &ref.cur_len, at, n);
	return 0;
}

/* Ends the header block (or the trailer block: the worker shows trailers as headers). */
static void
ref_end_fields(struct ref_req *r)
{
	bool no_value = ref.last == 2;

	ref_flush_piece();
	if (no_value)
		r->hhash = fnv(r->hhash, "\n", 1);
	ref.last = 0;
}

static int
ref_headers_cb(http_parser *p)
{
	struct ref_req *r = ref_cur();

	ref_end_fields(r);
	snprintf(r->method, sizeof(r->method), "%s", http_method_str(p->method));
	r->keep_alive = http_should_keep_alive(p) != 0;
	return 0;
}

static int
ref_body_cb(http_parser *p, const char *at, size_t n)
{
	struct ref_req *r = ref_cur();

	r->bhash = fnv(r->bhash, at, n);
	r->blen += n;
	return 0;
}

static int
ref_complete_cb(http_parser *p)
{
	ref_end_fields(ref_cur());
	ref_cur()->complete = true;
	ref.n++;
	return 0;
}

static const http_parser_settings ref_settings = {
	.on_message_begin = ref_begin_cb,
	.on_url = ref_url_cb,
	.on_header_field = ref_field_cb,
	.on_header_value = ref_value_cb,
	.on_headers_complete = ref_headers_cb,
	.on_body = ref_body_cb,
	.on_message_complete = ref_complete_cb,
};

static void
ref_run(const uint8_t *data, size_t size)
{
	http_parser p;

	/* Entries 0..n (n: one in progress) hold URLs from the last run. */
	for (size_t i = 0; i <= ref.n && i < MAX_REQS; i++) {
		free(ref.r[i].url);
		ref.r[i].url = NULL;
	}
	free(ref.cur);
	ref.cur = NULL;
	ref.n = 0;
	ref.last = 0;
	ref.truncated = false;
	http_parser_init(&p, HTTP_REQUEST);
	if (size > 0)
		http_parser_execute(&p, &ref_settings, (const char *)data, size);
	free(ref.cur);
	ref.cur = NULL;
}

/* What echo_handle answers to reference request R, or -1 if its URL is bad. */
static int
ref_expect(const struct ref_req *r, char *out, size_t outlen)
{
	struct http_parser_url u;
	char path[8192], query[8192];
	int len;

	http_parser_url_init(&u);
	if (r->url_len == 0 || http_parser_parse_url(r->url, r->url_len,
	    strcmp(r->method, "CONNECT") == 0, &u) != 0)
		return -1;
	if (u.field_set & (1 << UF_PATH))
		snprintf(path, sizeof(path), "%.*s", (int)u.field_data[UF_PATH].len,
		    r->url + u.field_data[UF_PATH].off);
	else
		strcpy(path, "/");
	if (u.field_set & (1 << UF_QUERY))
		snprintf(query, sizeof(query), "%.*s", (int)u.field_data[UF_QUERY].len,
		    r->url + u.field_data[UF_QUERY].off);
	else
		query[0] = '\0';
	len = snprintf(out, outlen, "M %s\nP %s\nQ %s\nH %zu %016llx\nB %zu %016llx\n",
	    r->method, path, query, r->nfields, (unsigned long long)r->hhash, r->blen,
	    (unsigned long long)r->bhash);
	return len < 0 || (size_t)len >= outlen ? -1 : len;
}

/* ---- the worker's output ------------------------------------------------------ */

static char *out;
static size_t out_len;

static void
fail(const char *what, size_t at)
{
	fprintf(stderr, "fuzz_http: %s (output offset %zu of %zu)\n", what, at, out_len);
	fprintf(stderr, "---- output:\n%.*s\n----\n", (int)(out_len > 4000 ? 4000 : out_len),
	    out);
	abort();
}

/* Reads what the worker wrote so far; returns true at EOF. */
static bool
drain_client(int fd)
{
	ssize_t n;

	for (;;) {
		if (out_len == OUT_MAX)
			fail("output larger than any answer to this input", out_len);
		n = recv(fd, out + out_len, OUT_MAX - out_len, MSG_DONTWAIT);
		if (n > 0) {
			out_len += (size_t)n;
			continue;
		}
		if (n == 0)
			return true;
		if (errno == EINTR)
			continue;
		/* ECONNRESET counts as the close it is. */
		return errno != EAGAIN && errno != EWOULDBLOCK;
	}
}

/* A header's value in [HEAD, END) (the header block), or NULL. */
static const char *
find_header(const char *head, const char *end, const char *name, size_t *vlen)
{
	size_t nlen = strlen(name);
	const char *line = memchr(head, '\n', (size_t)(end - head));

	while (line != NULL && line + 1 < end) {
		const char *s = line + 1, *e = memchr(s, '\n', (size_t)(end - s));

		if (e == NULL)
			e = end;
		if ((size_t)(e - s) > nlen + 1 && strncasecmp(s, name, nlen) == 0 &&
		    s[nlen] == ':') {
			const char *v = s + nlen + 1;

			while (v < e && *v == ' ')
				v++;
			*vlen = (size_t)(e - v);
			if (*vlen > 0 && v[*vlen - 1] == '\r')
				(*vlen)--;
			return v;
		}
		line = e < end ? e : NULL;
	}
	return NULL;
}

static void
check_output(void)
{
	size_t off = 0, nok = 0, want;
	bool error_seen = false;
	char expect[20000];

	while (off < out_len) {
		const char *s = out + off, *hend, *v;
		size_t left = out_len - off, vlen, clen = 0, hlen;
		int status;
		bool has_cl, is_close;

		if (error_seen)
			fail("output after the error answer", off);
		if (left < 16 || memcmp(s, "HTTP/1.1 ", 9) != 0)
			fail("not a status line", off);
		if ((hend = memmem(s, left, "\r\n\r\n", 4)) == NULL)
			fail("response head not terminated", off);
		hlen = (size_t)(hend - s) + 4;
		status = atoi(s + 9);
		if (status < 100 || status > 599)
			fail("bad status code", off);
		/* Every header line ends in CRLF: no bare CR or LF was injected. */
		for (const char *p = s; p < hend; p++)
			if ((*p == '\r' && p[1] != '\n') || (*p == '\n' && p[-1] != '\r'))
				fail("bare CR or LF in a response head", off);
		if (status == 100) {
			if (hlen != 25)
				fail("100 Continue with headers", off);
			off += hlen;
			continue;
		}
		v = find_header(s, hend + 2, "Content-Length", &vlen);
		has_cl = v != NULL;
		if (has_cl)
			clen = strtoull(v, NULL, 10);
		is_close = (v = find_header(s, hend + 2, "Connection", &vlen)) != NULL &&
		    vlen == 5 && strncasecmp(v, "close", 5) == 0;
		if (status == 200) {
			const struct ref_req *r;
			int elen;

			if (nok >= ref.n && ref.truncated)
				return;
			if (nok >= ref.n)
				fail("more answers than requests (a request was invented)", off);
			r = &ref.r[nok];
			if ((elen = ref_expect(r, expect, sizeof(expect))) < 0)
				fail("200 to a request with a bad URL", off);
			if (!has_cl || clen != (size_t)elen)
				fail("Content-Length does not match the echo", off);
			if (strcmp(r->method, "HEAD") != 0) {
				if (left < hlen + clen)
					fail("body cut short", off);
				if (memcmp(s + hlen, expect, clen) != 0) {
					fprintf(stderr, "expected echo:\n%s", expect);
					fail("answer describes another request (smuggling)", off);
				}
				off += hlen + clen;
			} else
				off += hlen;
			nok++;
			if (is_close != !r->keep_alive)
				fail("Connection: close does not follow the request", off);
			continue;
		}
		if (status < 400 || !is_close)
			fail("a non-200 answer that is not a closing error", off);
		if (!has_cl || left < hlen + clen)
			fail("error answer without a whole body", off);
		off += hlen + clen;
		error_seen = true;
	}
	if (error_seen)
		return;
	/* No error: every request up to the first closing one was answered. */
	want = 0;
	while (want < ref.n && ref.r[want].keep_alive)
		want++;
	if (want < ref.n)
		want++;
	if (nok != want && !ref.truncated) {
		fprintf(stderr, "answered %zu of %zu requests (want %zu)\n", nok, ref.n, want);
		fail("a request went unanswered", out_len);
	}
}

/* ---- the driver ------------------------------------------------------------------ */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_level = -1;
	verbose = getenv("FUZZ_VERBOSE") != NULL;
	if ((wk.base = event_base_new()) == NULL)
		abort();
	wk.fn = &fn_entry;
	wk.conf = (struct wk_conf){
		.name = "fuzz", .library = "none", .request_timeout_ms = 30000,
		.idle_timeout_ms = 60000, .max_header_bytes = MAX_HEADER,
		.max_body_bytes = MAX_BODY, .max_pending_tasks = 16, .task_threads = 1,
		.grace_ms = 2000,
	};
	TAILQ_INIT(&wk.unload_hooks);
	TAILQ_INIT(&wk.error_hooks);
	if (http_init(&wk) < 0)
		abort();
	if ((out = malloc(OUT_MAX)) == NULL)
		abort();
	return 0;
}

static void
spin(int cfd, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		event_base_loop(wk.base, EVLOOP_NONBLOCK);
		drain_client(cfd);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[] = { 0, 1, 3, 17, 64, 511 };
	size_t off = 0, piece;
	int sv[2], i, stuck = 0;
	bool eof = false;

	if (size > 65536)
		return 0;
	ref_run(data, size);
	out_len = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	http_adopt(sv[0]);
	/* 0: all at once; else pieces of that size, each followed by loop rounds. */
	piece = pieces[fnv(FNV0, data, size) % (sizeof(pieces) / sizeof(pieces[0]))];
	while (off < size) {
		size_t n = piece == 0 || piece > size - off ? size - off : piece;
		ssize_t w = send(sv[1], data + off, n, MSG_NOSIGNAL);

		if (w < 0 && (errno == EAGAIN || errno == EPIPE || errno == ECONNRESET)) {
			/* The worker closed or stopped reading: the rest is moot. */
			if (errno != EAGAIN || http_conn_count() == 0)
				break;
			if (++stuck > SPIN_MAX)
				fail("the worker stopped reading (hang)", out_len);
			spin(sv[1], 1);
			continue;
		}
		if (w < 0)
			abort();
		off += (size_t)w;
		spin(sv[1], 2);
	}
	shutdown(sv[1], SHUT_WR);
	for (i = 0; i < SPIN_MAX && !(eof && http_conn_count() == 0); i++) {
		event_base_loop(wk.base, EVLOOP_NONBLOCK);
		eof = drain_client(sv[1]);
	}
	if (http_conn_count() != 0)
		fail("connection still open after the client's EOF (hang)", out_len);
	if (!eof)
		fail("no EOF from the worker after it closed", out_len);
	close(sv[1]);
	check_output();
	return 0;
}
