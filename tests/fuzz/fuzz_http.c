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
 *
 * That reference is the same libhttp-parser the worker links, so it checks the glue
 * (worker/http_parse.c, worker/http.c), not the library: a framing bug inside the
 * library would be agreed on by both sides. The smuggling class is therefore also
 * judged by rules written down here, from the README, with no http_parser in them:
 *   - a fixed table of requests (CL+TE, duplicate CL, obfuscated TE, bare LF, bare
 *     CR, chunk-size overflow, requests hidden in bodies, Host, the version, Upgrade)
 *     with the answers each must get, run whole and byte by byte when the fuzzer
 *     starts (fixed_cases());
 *   - for every input, an independent scan of the first request's head
 *     (sm_judge()): a bare LF or CR where CRLF is required (head, chunk-size lines,
 *     trailers), HTTP/1.1 without Host, two Hosts, a Host that is plainly not
 *     host[:port], Content-Length and Transfer-Encoding together, two
 *     Content-Lengths or a bad one, a Transfer-Encoding whose final coding is not
 *     chunked, whitespace before a colon, a control character in a value, obs-fold,
 *     a chunk size that overflows 64 bits: the first answer must be a 400 and
 *     nothing may be answered 200; a major version other than 1 in an otherwise
 *     plain head: the first answer must be a 505.
 * The reference reads on after an Upgrade offer, as the worker does (it ignores it).
 */
#include <ctype.h>
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
	/*
	 * The library returns early, with no error, after a request that offers an
	 * Upgrade ("the rest is another protocol"). The worker ignores the offer and
	 * reads on (README, HTTP behaviour), so the reference reads on too. After a
	 * CONNECT the worker answers 501 and reads nothing more: stop there.
	 */
	for (size_t off = 0; off < size;) {
		size_t n = http_parser_execute(&p, &ref_settings, (const char *)data + off,
		    size - off);

		off += n;
		if (n == 0 || HTTP_PARSER_ERRNO(&p) != HPE_OK || !p.upgrade ||
		    p.method == HTTP_CONNECT)
			break;
	}
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

/* ---- the smuggling rules, independent of http_parser ------------------------------ */

enum sm_verdict {
	SM_NONE,        /* no fixed expectation */
	SM_400,         /* the first (and only) answer is 400 */
	SM_NO_200,      /* the first request is not answered 200 (400 or 413, or nothing) */
	SM_505,         /* the first (and only) answer is 505 */
};

static bool
sm_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
sm_ieq(const uint8_t *s, size_t n, const char *lit)
{
	return n == strlen(lit) && strncasecmp((const char *)s, lit, n) == 0;
}

/* Parses 1*DIGIT (base 10) or 1*HEXDIG (base 16) in S[0..N): 0 ok, 1 overflow,
 * -1 not a number. */
static int
sm_number(const uint8_t *s, size_t n, int base, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		int d;

		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (base == 16 && s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (base == 16 && s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return -1;
		if (x > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
			return 1;
		x = x * (uint64_t)base + (uint64_t)d;
	}
	*v = x;
	return 0;
}

static void
sm_trim(const uint8_t **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t'))
		(*s)++, (*n)--;
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* The most bytes a judged head (or trailer section) and the most fields a judged
 * request may have: well inside max_header_bytes and the 100 fields the worker takes,
 * so no 431 can come before the answer a rule demands. */
#define SM_HEAD_MAX   (MAX_HEADER - 256)
#define SM_FIELDS_MAX 99

static bool
sm_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/*
 * Is the (trimmed) Host value V[0..N) plainly not host[:port]? RFC 9112 3.2 and
 * RFC 3986 3.2.2-3: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address
 * / reg-name, reg-name = *( unreserved / pct-encoded / sub-delims ), port = *DIGIT.
 * True only for a value that breaks that grammar outright: a byte no part of it has
 * (a '/', '?', '#', '@', a space...), a '%' without two hex digits, a bracket outside
 * an IP literal, a second ':' or a port that is not digits. Values the grammar allows
 * and the worker refuses on purpose (README: '~', sub-delims, %-escapes, and a port
 * past 65535 or an empty one) and the inside of an IP literal are not judged.
 */
static bool
sm_host_invalid(const uint8_t *v, size_t n)
{
	const uint8_t *colon;
	size_t i;

	for (i = 0; i < n; i++) {
		if (!sm_alnum(v[i]) && (v[i] == '\0' || strchr("-._~%!$&'()*+,;=:[]", v[i]) == NULL))
			return true;
		if (v[i] == '%' && !(i + 2 < n && isxdigit(v[i + 1]) && isxdigit(v[i + 2])))
			return true;
	}
	if (n > 0 && v[0] == '[')
		return false;
	if (memchr(v, '[', n) != NULL || memchr(v, ']', n) != NULL)
		return true;
	if ((colon = memchr(v, ':', n)) != NULL)
		for (const uint8_t *t = colon + 1; t < v + n; t++)
			if (*t < '0' || *t > '9')
				return true;
	return false;
}

/*
 * The trailer section of a chunked body, from Q (just after the last chunk's CRLF)
 * to its empty line or the input's end: every line ends in CRLF and no CR is bare
 * (RFC 9112 7.1.2, README: 400 at once). The worker adds trailers to the head's
 * NFIELDS; judged only when the whole section in the input stays inside the 431
 * limits (the library reads it all before the line ends are checked).
 */
static enum sm_verdict
sm_trailers(const uint8_t *d, size_t n, size_t q, size_t nfields, size_t body_start,
    const char **why)
{
	const char *bad = NULL;

	while (q < n) {
		const uint8_t *s = d + q, *lf = memchr(s, '\n', n - q);
		size_t len = lf != NULL ? (size_t)(lf - s) : n - q, i;

		/* A CR followed by anything but the line's LF (a CR that ends the input is
		 * not known yet). */
		for (i = 0; i + 1 < len && bad == NULL; i++)
			if (s[i] == '\r')
				bad = "a bare CR in the trailers";
		if (lf == NULL)
			break;
		if ((len == 0 || s[len - 1] != '\r') && bad == NULL)
			bad = "a bare LF ending a trailer line or the trailers";
		q += len + 1;
		if (len <= 1)
			break;          /* the empty line: the end of the request */
		nfields++;
	}
	if (bad == NULL || nfields > SM_FIELDS_MAX || q - body_start > SM_HEAD_MAX)
		return SM_NONE;
	*why = bad;
	return SM_400;
}

/*
 * Judges the first request of D[0..N) by the README's rules alone. *WHY names the
 * rule. An answer is demanded only where no other can come first: heads (and
 * trailers) are kept inside the 431 limits; the line ends, the version and Host are
 * checked when the head ends, before anything else the worker refuses from the head
 * (413 from a declared length, 417, 501), so they are judged whatever else the head
 * holds, the other rules only when no such refusal can come first. A request line
 * that is not plainly "METHOD /target HTTP/D.D" is not judged. A major version other
 * than 1 is 505, judged only when nothing else in the head could be refused (the
 * README's Host rules and its 505 would then disagree, or the library might refuse
 * the head itself); a bare CR or LF still gets its 400, "at once".
 */
static enum sm_verdict
sm_judge(const uint8_t *d, size_t n, const char **why)
{
	static const char *methods[] = { "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS",
	    "PATCH", NULL };
	const char *bad = NULL, *crlf = NULL, *host_bad = NULL;
	size_t p = 0, line, nfields = 0, ncl = 0, nte = 0, nhost = 0, head_end = 0, i;
	const uint8_t *te_last = NULL;
	size_t te_last_len = 0;
	uint64_t cl = 0;
	int major = -1, minor = -1;
	bool first = true, other_refusal = false, cl_bad = false, cl_over = false;
	bool plain_target = true;

	*why = NULL;
	/* Empty lines before a request are skipped (RFC 9112 2.2), CRLF only (README). */
	while (p + 1 < n && d[p] == '\r' && d[p + 1] == '\n')
		p += 2;
	for (line = p; line < n;) {
		const uint8_t *lf = memchr(d + line, '\n', n - line), *s = d + line, *c;
		size_t len;

		if (lf == NULL)
			break;                 /* the head goes on past the input */
		len = (size_t)(lf - s);
		if (len > 0 && s[len - 1] == '\r')
			len--;
		else if (crlf == NULL)
			crlf = first ? "a bare LF before or ending the request line" :
			    "a bare LF ending a header line or the head";
		line = (size_t)(lf - d) + 1;
		if (memchr(s, '\r', len) != NULL && crlf == NULL)
			crlf = "a bare CR in the head";
		if (len == 0) {
			if (first)
				continue;      /* an empty line before the request */
			head_end = line;
			break;
		}
		if (first) {
			const uint8_t *sp1 = memchr(s, ' ', len), *sp2, *ver;
			bool known = false;

			first = false;
			if (sp1 == NULL || (sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - s))) ==
			    NULL)
				return SM_NONE;
			for (i = 0; methods[i] != NULL; i++)
				known |= (size_t)(sp1 - s) == strlen(methods[i]) &&
				    memcmp(s, methods[i], (size_t)(sp1 - s)) == 0;
			ver = sp2 + 1;
			if (!known || sp1[1] != '/' || (size_t)(s + len - ver) != 8 ||
			    memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
			    ver[6] != '.' || ver[7] < '0' || ver[7] > '9')
				return SM_NONE;
			major = ver[5] - '0';
			minor = ver[7] - '0';
			for (const uint8_t *t = sp1 + 1; t < sp2; t++) {
				if (*t <= 0x20 || *t >= 0x7f)
					return SM_NONE;
				plain_target &= sm_alnum(*t) || strchr("/._~?=&-", *t) != NULL;
			}
			continue;
		}
		nfields++;
		if (s[0] == ' ' || s[0] == '\t') {
			if (bad == NULL)
				bad = "obs-fold (a continuation line)";
			continue;
		}
		if ((c = memchr(s, ':', len)) == NULL) {
			if (bad == NULL)
				bad = "a header line without a colon";
			continue;
		}
		{
			const uint8_t *v = c + 1;
			size_t nlen = (size_t)(c - s), vlen = len - nlen - 1;

			for (i = 0; i < nlen && bad == NULL; i++)
				if (s[i] == ' ' || s[i] == '\t')
					bad = "whitespace between a field name and its colon";
				else if (!sm_tchar(s[i]))
					bad = "a field name that is not a token";
			if (nlen == 0 && bad == NULL)
				bad = "an empty field name";
			sm_trim(&v, &vlen);
			for (i = 0; i < vlen && bad == NULL; i++)
				if ((v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
					bad = "a control character in a field value";
			if (sm_ieq(s, nlen, "content-length")) {
				int r = sm_number(v, vlen, 10, &cl);

				ncl++;
				cl_bad |= r < 0;
				cl_over |= r > 0;
				other_refusal |= r == 0 && cl > MAX_BODY;    /* 413 from the head */
			} else if (sm_ieq(s, nlen, "transfer-encoding")) {
				nte++;
				te_last = v;
				te_last_len = vlen;
			} else if (sm_ieq(s, nlen, "host")) {
				nhost++;
				if (host_bad == NULL && sm_host_invalid(v, vlen))
					host_bad = "a Host that is not host[:port]";
			} else if (sm_ieq(s, nlen, "expect"))
				other_refusal = true;          /* 417, or a 100 Continue */
		}
	}
	if (nfields > SM_FIELDS_MAX)
		return SM_NONE;
	if (head_end == 0) {
		/* The head goes on past the input: only a bare CR or LF is judged, which
		 * the worker refuses as soon as it has read it. */
		if (crlf == NULL || n > SM_HEAD_MAX)
			return SM_NONE;
		*why = crlf;
		return SM_400;
	}
	if (head_end > SM_HEAD_MAX)
		return SM_NONE;
	if (crlf != NULL) {
		*why = crlf;
		return SM_400;
	}
	if (major != 1) {
		if (bad != NULL || host_bad != NULL || nhost > 1 || ncl > 0 || nte > 0 ||
		    !plain_target)
			return SM_NONE;
		*why = "a major version other than 1";
		return SM_505;
	}
	/* Host (RFC 9112 3.2): checked with the version, before 413 and 417. */
	if (nhost > 1)
		*why = "two Host fields";
	else if (nhost == 0 && minor >= 1)
		*why = "an HTTP/1.1 request without Host";
	else
		*why = host_bad;
	if (*why != NULL)
		return SM_400;
	if (other_refusal)
		return SM_NONE;
	if (bad == NULL && ncl > 0 && nte > 0)
		bad = "Content-Length and Transfer-Encoding together";
	if (bad == NULL && ncl > 1)
		bad = "two Content-Length fields";
	if (bad == NULL && (cl_bad || cl_over))
		bad = cl_over ? "a Content-Length past 2^64" : "a Content-Length that is not 1*DIGIT";
	if (bad == NULL && nte > 0) {
		/* The final coding: the last list element of the last field. */
		const uint8_t *last = te_last, *comma;
		size_t llen = te_last_len;

		while ((comma = memchr(last, ',', llen)) != NULL) {
			llen -= (size_t)(comma + 1 - last);
			last = comma + 1;
		}
		sm_trim(&last, &llen);
		if (llen == 0)
			return SM_NONE;         /* an empty last element: not judged */
		if (!sm_ieq(last, llen, "chunked"))
			bad = "a Transfer-Encoding whose final coding is not chunked";
	}
	if (bad != NULL) {
		*why = bad;
		return SM_400;
	}
	if (nte > 0) {
		/* The chunks: 1*HEXDIG [";" ext] CRLF, that many bytes, CRLF; up to the
		 * last chunk, or as far as the input goes. */
		size_t q = head_end, total = 0;

		while (q < n) {
			const uint8_t *s = d + q;
			size_t k = 0;
			uint64_t size;
			int r;

			while (q + k < n && isxdigit(s[k]))
				k++;
			if (k == 0) {
				*why = "a chunk size that is not hex";
				return SM_400;
			}
			if ((r = sm_number(s, k, 16, &size)) > 0) {
				*why = "a chunk size that overflows 64 bits";
				return SM_400;
			}
			if (q + k == n)
				break;
			if (size > MAX_BODY - total) {
				*why = "chunks past max_body_bytes";
				return SM_NO_200;
			}
			/* [";" / SP / HT ext] CRLF: no control character in the extension, and
			 * the CR is followed by LF. */
			if (s[k] == ';' || s[k] == ' ' || s[k] == '\t') {
				while (q + k < n && s[k] != '\r') {
					/* The library counts a chunk line against max_header_bytes:
					 * past that the worker answers 431 first, also a refusal. */
					if (k > SM_HEAD_MAX)
						return SM_NONE;
					if ((s[k] < 0x20 && s[k] != '\t') || s[k] == 0x7f) {
						*why = "a control character in a chunk extension";
						return SM_400;
					}
					k++;
				}
				if (q + k == n)
					break;
			}
			if (s[k] != '\r') {
				*why = "a chunk size that is not hex";
				return SM_400;
			}
			if (q + k + 1 >= n)
				break;
			if (s[k + 1] != '\n') {
				*why = "a chunk-size line whose CR is not followed by LF";
				return SM_400;
			}
			if (size == 0)          /* the last chunk: trailers follow */
				return sm_trailers(d, n, q + k + 2, nfields, head_end, why);
			q += k + 2;
			total += size;
			if (n - q < size + 2)
				break;
			if (d[q + size] != '\r' || d[q + size + 1] != '\n') {
				*why = "chunk data not followed by CRLF";
				return SM_400;
			}
			q += size + 2;
		}
	}
	return SM_NONE;
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

/* Feeds DATA to a fresh connection in pieces of PIECE bytes (0: all at once) and
 * collects the worker's output in out/out_len, until the worker has closed. */
static void
drive(const uint8_t *data, size_t size, size_t piece)
{
	size_t off = 0;
	int sv[2], i, stuck = 0;
	bool eof = false;

	out_len = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	http_adopt(sv[0]);
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
}

/* The answers in out as "STATUS[ PATH]..." (PATH: what the echo saw, for a 200). */
static void
summarize(char *buf, size_t buflen)
{
	size_t off = 0, used = 0;

	buf[0] = '\0';
	while (off < out_len && used + 40 < buflen) {
		const char *s = out + off, *hend = memmem(s, out_len - off, "\r\n\r\n", 4), *v;
		size_t vlen, clen = 0;
		int status = atoi(s + 9);

		if (out_len - off < 12 || hend == NULL) {
			used += (size_t)snprintf(buf + used, buflen - used, "%s?", used ? " " : "");
			return;
		}
		if ((v = find_header(s, hend + 2, "Content-Length", &vlen)) != NULL)
			clen = strtoull(v, NULL, 10);
		off = (size_t)(hend + 4 - out);
		if (status == 100)
			continue;
		used += (size_t)snprintf(buf + used, buflen - used, "%s%d", used ? " " : "", status);
		if (status == 200 && off + clen <= out_len) {
			const char *b = out + off, *path = memmem(b, clen, "\nP ", 3), *e;

			if (path != NULL && (e = memchr(path + 3, '\n', clen - (size_t)(path + 3 - b))))
				used += (size_t)snprintf(buf + used, buflen - used, " %.*s",
				    (int)(e - path - 3), path + 3);
		}
		off += clen;
	}
}

/* The status of the first answer that is not 100 Continue, 0 if none. */
static int
first_status(void)
{
	char sum[256];

	summarize(sum, sizeof(sum));
	return sum[0] == '?' ? -1 : atoi(sum);
}

/* Checks the worker's answers against the rules of sm_judge() (not the library). */
static void
check_smuggling(const uint8_t *data, size_t size)
{
	const char *why;
	enum sm_verdict v = sm_judge(data, size, &why);
	int st;

	if (v == SM_NONE)
		return;
	st = first_status();
	if (v == SM_400 && st != 400) {
		fprintf(stderr, "fuzz_http: %s: first answer %d, want 400\n", why, st);
		fail("a request of the smuggling class was not refused with 400", 0);
	}
	if (v == SM_505 && st != 505) {
		fprintf(stderr, "fuzz_http: %s: first answer %d, want 505\n", why, st);
		fail("a request with a major version other than 1 was not refused with 505", 0);
	}
	if (v == SM_NO_200 && st == 200) {
		fprintf(stderr, "fuzz_http: %s: answered 200\n", why);
		fail("a request of the smuggling class was answered 200", 0);
	}
}

/* Requests of the smuggling class and the answers the README promises them ("STATUS
 * PATH" per answer, PATH for a 200), written down here, not derived from a parser.
 * Every HTTP/1.1 request carries "Host: a" unless Host is its point, so each case
 * meets only the rule it is named for. A request hidden in a body is a whole, valid
 * one: were it read as a request it would be answered 200, which shows. */
#define FX(name, req, want) { name, req, sizeof(req) - 1, want }
#define SMUG "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"    /* 35 bytes */
static const struct {
	const char *name, *req;
	size_t len;
	const char *want;
} fixed[] = {
	/* Content-Length and Transfer-Encoding */
	FX("cl-then-te", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" SMUG, "400"),
	FX("te-then-cl", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Content-Length: 40\r\n\r\n0\r\n\r\n" SMUG, "400"),
	FX("te-identity-and-cl", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n"
	    "Content-Length: 4\r\n\r\nabcd", "400"),
	FX("cl-twice-same", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
	    "Content-Length: 4\r\n\r\nabcd", "400"),
	FX("cl-twice-differ", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
	    "Content-Length: 39\r\n\r\nabcd" SMUG, "400"),
	FX("cl-list", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4, 4\r\n\r\nabcd", "400"),
	FX("cl-plus", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +4\r\n\r\nabcd", "400"),
	FX("cl-overflow", "POST /a HTTP/1.1\r\nHost: a\r\n"
	    "Content-Length: 18446744073709551617\r\n\r\n", "400"),
	FX("te-space-colon", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"
	    "0\r\n\r\n" SMUG, "400"),
	FX("te-tab-colon", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n"
	    "0\r\n\r\n", "400"),
	FX("te-xchunked", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"
	    "0\r\n\r\n", "400"),
	FX("te-chunked-identity", "POST /a HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked, identity\r\n\r\n4\r\nabcd\r\n0\r\n\r\n", "400"),
	FX("te-vtab", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \vchunked\r\n\r\n"
	    "0\r\n\r\n", "400"),
	FX("te-twice-last-identity", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
	    "\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", "400"),
	FX("te-obs-fold", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
	    "0\r\n\r\n", "400"),
	/* bare LF and bare CR: 400 at once, wherever CRLF is required */
	FX("bare-lf-hides-te", "POST /a HTTP/1.1\r\nHost: a\r\nX-A: 1\nTransfer-Encoding: chunked"
	    "\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "400"),
	FX("bare-lf-lines", "GET /lf1 HTTP/1.1\nHost: a\n\nGET /lf2 HTTP/1.1\nHost: a\n\n",
	    "400"),
	FX("bare-lf-request-line", "GET /a HTTP/1.1\nHost: a\r\n\r\n", "400"),
	FX("bare-lf-header-line", "GET /a HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n", "400"),
	FX("bare-lf-ends-head", "GET /a HTTP/1.1\r\nHost: a\r\n\n", "400"),
	FX("bare-lf-before-request", "\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n", "400"),
	FX("crlf-before-request", "\r\n\r\nGET /a HTTP/1.1\r\nHost: a\r\n\r\n", "200 /a"),
	FX("bare-lf-head-unfinished", "GET /a HTTP/1.1\nHost: a\r\n", "400"),
	FX("bare-lf-after-ok", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\nHost: a\r\n\r\n",
	    "200 /a 400"),
	FX("bare-cr", "GET /i HTTP/1.1\r\nHost: a\r\nX-Echo: a\rTransfer-Encoding: chunked\r\n"
	    "\r\n", "400"),
	FX("head-cr-then-x", "GET /a HTTP/1.1\r\nHost: a\r\n\rX" SMUG, "400"),
	FX("trailer-bare-lf", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "0\r\nX-T: 1\n\r\n" SMUG, "400"),
	FX("trailer-end-bare-lf", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n0\r\nX-T: 1\r\n\n" SMUG, "400"),
	FX("trailer-ok", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "1\r\nx\r\n0\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", "200 /a 200 /b"),
	/* chunk framing */
	FX("chunk-size-overflow", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n", "400"),
	FX("chunk-size-2^64", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "10000000000000000\r\nabc\r\n0\r\n\r\n", "400"),
	FX("chunk-size-2^64+3-wraps-to-3", "POST /a HTTP/1.1\r\nHost: a\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n" SMUG, "400"),
	FX("chunk-data-without-crlf", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked"
	    "\r\n\r\n3\r\nabcXY0\r\n\r\n" SMUG, "400"),
	FX("chunk-data-bare-lf", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n3\r\nabc\n0\r\n\r\n", "400"),
	FX("chunk-size-bare-lf", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n3\nabc\r\n0\r\n\r\n", "400"),
	FX("chunk-size-high-byte", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n\x9a\r\nabc\r\n0\r\n\r\n", "400"),
	FX("chunk-size-cr-then-x", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n3\rXabc\r\n0\r\n\r\n", "400"),
	FX("chunk-ext-with-lf", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "\r\n3;x\nabc\r\n0\r\n\r\n", "400"),
	FX("chunk-ext-ok", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "3;name=v\r\nabc\r\n0\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", "200 /a 200 /b"),
	/* field syntax */
	FX("obs-fold-empty-value", "GET /a HTTP/1.1\r\nHost: a\r\nX-Echo:\r\n\tb\r\n\r\n", "400"),
	FX("nul-first-in-value", "GET /a HTTP/1.1\r\nHost: a\r\nX-Echo: \0a\r\n\r\n", "400"),
	/* requests hidden in bodies are body */
	FX("request-in-chunk", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "23\r\n" SMUG "\r\n0\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n", "200 /a 200 /ok"),
	FX("request-in-cl-body", "GET /a HTTP/1.1\r\nHost: a\r\nContent-Length: 35\r\n\r\n"
	    SMUG "GET /b HTTP/1.1\r\nHost: a\r\n\r\n", "200 /a 200 /b"),
	/* Host: exactly one in HTTP/1.1, at most one in any version, host[:port] */
	FX("host-missing", "GET /a HTTP/1.1\r\n\r\n", "400"),
	FX("host-missing-second", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
	    "200 /a 400"),
	FX("host-twice", "GET /a HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "400"),
	FX("host-twice-differ-case", "GET /a HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n", "400"),
	FX("host-twice-http10", "GET /a HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "400"),
	FX("host-missing-http10", "GET /a HTTP/1.0\r\n\r\n", "200 /a"),
	FX("host-port", "GET /a HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", "200 /a"),
	FX("host-empty", "GET /a HTTP/1.1\r\nHost:\r\n\r\n", "200 /a"),
	FX("host-with-path", "GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n", "400"),
	FX("host-with-userinfo", "GET /a HTTP/1.1\r\nHost: u@a\r\n\r\n", "400"),
	FX("host-with-space", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", "400"),
	FX("host-port-not-digits", "GET /a HTTP/1.1\r\nHost: a:8o\r\n\r\n", "400"),
	FX("host-two-ports", "GET /a HTTP/1.1\r\nHost: a:1:2\r\n\r\n", "400"),
	/* the version: major 1 only (1.2..1.9 served as 1.1) */
	FX("version-9.9", "GET /a HTTP/9.9\r\nHost: a\r\n\r\n", "505"),
	FX("version-2.0-no-host", "GET /a HTTP/2.0\r\n\r\n", "505"),
	FX("version-0.9-line", "GET /a HTTP/0.9\r\nHost: a\r\n\r\n", "505"),
	FX("version-1.2", "GET /a HTTP/1.2\r\nHost: a\r\n\r\n", "200 /a"),
	FX("version-9.9-bare-lf", "GET /a HTTP/9.9\nHost: a\r\n\r\n", "400"),
	/* an Upgrade offer is ignored: served as HTTP/1.1, and the next request read */
	FX("upgrade-h2c-then-get", "GET /up HTTP/1.1\r\nHost: a\r\n"
	    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
	    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	    "200 /up 200 /next"),
	FX("upgrade-websocket-then-get", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
	    "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	    "200 /ws 200 /next"),
	FX("upgrade-h2c-body-then-get", "POST /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
	    "Upgrade: h2c\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	    "200 /up 200 /next"),
	FX("upgrade-te-not-chunked", "POST /up HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n"
	    "Upgrade: websocket\r\nTransfer-Encoding: identity\r\n\r\n" SMUG, "400"),
};
#undef SMUG

/* Runs the fixed table, whole and byte by byte; aborts on the first wrong answer. */
static void
fixed_cases(void)
{
	static const size_t pieces[] = { 0, 1 };
	char got[512];

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
			const uint8_t *d = (const uint8_t *)fixed[i].req;
			size_t n = fixed[i].len;
			const char *why;
			enum sm_verdict v;

			drive(d, n, pieces[k]);
			summarize(got, sizeof(got));
			if (strcmp(got, fixed[i].want) != 0) {
				fprintf(stderr, "fuzz_http: fixed case %s (%s): answered \"%s\", "
				    "want \"%s\"\n", fixed[i].name, pieces[k] ? "byte by byte" :
				    "whole", got, fixed[i].want);
				fail("a fixed smuggling case got the wrong answer", 0);
			}
			/* The scan agrees with the table (it judges every fuzz input): it
			 * demands 400 exactly where the table does, and 505 likewise. */
			v = sm_judge(d, n, &why);
			if ((v == SM_400) != (strcmp(fixed[i].want, "400") == 0) ||
			    (v == SM_505) != (strcmp(fixed[i].want, "505") == 0)) {
				fprintf(stderr, "fuzz_http: fixed case %s: sm_judge says %s (%s)\n",
				    fixed[i].name, v == SM_400 ? "400" : v == SM_505 ? "505" :
				    v == SM_NO_200 ? "not 200" : "nothing", why ? why : "no rule");
				abort();
			}
		}
	}
	if (verbose)
		fprintf(stderr, "fuzz_http: %zu fixed smuggling cases answered as written\n",
		    sizeof(fixed) / sizeof(fixed[0]));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t pieces[] = { 0, 1, 3, 17, 64, 511 };
	static bool fixed_done;

	if (!fixed_done) {
		fixed_done = true;
		fixed_cases();
	}
	if (size > 65536)
		return 0;
	ref_run(data, size);
	/* 0: all at once; else pieces of that size, each followed by loop rounds. */
	drive(data, size, pieces[fnv(FNV0, data, size) % (sizeof(pieces) / sizeof(pieces[0]))]);
	check_output();
	check_smuggling(data, size);
	return 0;
}
