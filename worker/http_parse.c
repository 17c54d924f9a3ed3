/*
 * http_parse.c - libhttp-parser glue: feeds a connection's read buffer to
 * http_parser, records the request head as offsets into that buffer and pauses the
 * parser at the end of each request so the caller can run the handler between two
 * pipelined requests without copying anything.
 *
 * It also enforces what RFC 9112 requires and the library (Debian's 2.9, built
 * without HTTP_PARSER_STRICT) lets through: CRLF line ends (hp_check_crlf), major
 * version 1 and exactly one valid Host (hp_check_head).
 */
#include "http_parse.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Longest Host value we check; a DNS name is at most 253 bytes. */
#define HP_HOST_MAX 1024

enum { HP_CB_NONE, HP_CB_URL, HP_CB_FIELD, HP_CB_VALUE };

/* hp_crlf: what the next byte outside a body may be. */
enum { HP_CRLF_ANY, HP_CRLF_WANT_LF, HP_CRLF_WANT_CR };
/* hp_size: not in a chunk-size line, in its digits, in its extension. */
enum { HP_SIZE_NONE, HP_SIZE_DIGITS, HP_SIZE_EXT };

static int hp_begin_cb(http_parser *);
static int hp_url_cb(http_parser *, const char *, size_t);
static int hp_field_cb(http_parser *, const char *, size_t);
static int hp_value_cb(http_parser *, const char *, size_t);
static int hp_headers_cb(http_parser *);
static int hp_body_cb(http_parser *, const char *, size_t);
static int hp_chunk_header_cb(http_parser *);
static int hp_complete_cb(http_parser *);

static const http_parser_settings hp_settings = {
	.on_message_begin = hp_begin_cb,
	.on_url = hp_url_cb,
	.on_header_field = hp_field_cb,
	.on_header_value = hp_value_cb,
	.on_headers_complete = hp_headers_cb,
	.on_body = hp_body_cb,
	.on_message_complete = hp_complete_cb,
	.on_chunk_header = hp_chunk_header_cb,
};

void
hp_setup(uint32_t max_header_bytes)
{
	/* The library counts request line + headers against this: 431 beyond it. */
	if (max_header_bytes > 0)
		http_parser_set_max_header_size(max_header_bytes);
}

void
hp_init(struct hp *h, const struct hp_ops *ops, void *arg)
{
	memset(h, 0, offsetof(struct hp, hp_msg));
	http_parser_init(&h->hp_parser, HTTP_REQUEST);
	h->hp_parser.data = h;
	h->hp_ops = ops;
	h->hp_arg = arg;
	h->hp_msg.nfields = 0;
}

static void
hp_fail(struct hp *h, int status, const char *reason)
{
	h->hp_status = status;
	h->hp_reason = reason;
}

/* Remembers that the head refers to bytes up to END (plus its terminator). */
static void
hp_note_end(struct hp *h, uint32_t end)
{
	if (end + 1 > h->hp_msg.keep_end)
		h->hp_msg.keep_end = end + 1;
}

/*
 * RFC 9112 2.2 and 7.1: every line of the head, of a chunk-size line and of the
 * trailers ends in CRLF, and chunk data is followed by CRLF. The library also takes a
 * bare LF as a line end (request line, header and trailer lines, the empty line),
 * lets a bare CR end the head and then swallows the next byte whatever it is, keeps
 * reading a chunk extension across a bare LF (so "3;x\nabc" waits for a CR that may
 * never come), and takes any two bytes as the CRLF after chunk data. So every byte it
 * consumed outside a body comes through here, in order: an LF must follow a CR, a CR
 * must be followed by an LF, and the first two bytes after chunk data must be CRLF.
 * Leading empty lines before a request stay allowed (RFC 9112 2.2), as CRLF only.
 */
static int
hp_check_crlf(struct hp *h, const char *base, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++) {
		unsigned char c = (unsigned char)base[i];

		switch (h->hp_crlf) {
		case HP_CRLF_WANT_LF:
			if (c != '\n')
				return hp_fail(h, 400, "bare_cr"), -1;
			h->hp_crlf = HP_CRLF_ANY;
			/* The LF after chunk data starts a size line; the one after a size
			 * line ends it. */
			h->hp_size = h->hp_after_data ? HP_SIZE_DIGITS : HP_SIZE_NONE;
			h->hp_after_data = false;
			break;
		case HP_CRLF_WANT_CR:
			if (c != '\r')
				return hp_fail(h, 400, "chunk_data_without_crlf"), -1;
			h->hp_crlf = HP_CRLF_WANT_LF;
			h->hp_after_data = true;
			break;
		default:
			if (c == '\n')
				return hp_fail(h, 400, "bare_lf"), -1;
			/*
			 * chunk-size = 1*HEXDIG (RFC 9112 7.1). The library reads some bytes
			 * >= 0x80 as digits and then waits for a chunk that never comes.
			 */
			if (h->hp_size == HP_SIZE_DIGITS && !isxdigit(c)) {
				if (c != ';' && c != ' ' && c != '\t' && c != '\r')
					return hp_fail(h, 400, "bad_chunk_size"), -1;
				h->hp_size = HP_SIZE_EXT;
			}
			/* An extension is ignored, but no control character may hide in it. */
			if (h->hp_size == HP_SIZE_EXT && ((c < 0x20 && c != '\t' && c != '\r') ||
			    c == 0x7f))
				return hp_fail(h, 400, "bad_chunk_ext"), -1;
			if (c == '\r')
				h->hp_crlf = HP_CRLF_WANT_LF;
			break;
		}
	}
	return 0;
}

/*
 * RFC 9112 3.2: Host = uri-host [ ":" port ], empty when the target has no
 * authority. The library's URL parser reads it as the authority of "http://V/":
 * what it takes is letters, digits, '.', '-', '_', an IP literal and a port up to
 * 65535; a userinfo, a path, a query or anything else in V is invalid. (It refuses
 * '~', sub-delims and %-escapes too, which a reg-name allows and no DNS name has.)
 */
static bool
hp_valid_host(const char *v, size_t len)
{
	char url[HP_HOST_MAX + 8];
	struct http_parser_url u;
	const uint16_t want = (1 << UF_SCHEMA) | (1 << UF_HOST) | (1 << UF_PATH);

	/* Trailing whitespace is not part of a field value (the library keeps it). */
	while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
		len--;
	if (len == 0)
		return true;
	/* An empty userinfo ("@a") leaves no field the library marks: refused here. */
	if (len > HP_HOST_MAX || memchr(v, '@', len) != NULL)
		return false;
	memcpy(url, "http://", 7);
	memcpy(url + 7, v, len);
	url[7 + len] = '/';
	http_parser_url_init(&u);
	if (http_parser_parse_url(url, len + 8, 0, &u) != 0)
		return false;
	return (u.field_set & ~(1 << UF_PORT)) == want && u.field_data[UF_PATH].len == 1;
}

/* RFC 9112 2.3 and 3.2: the head's version and its Host field. */
static int
hp_check_head(struct hp *h)
{
	const struct hp_msg *m = &h->hp_msg;
	const struct hp_field *host = NULL, *f;
	uint32_t i;

	/* We speak 1.x (a higher minor is served as 1.1); HTTP/0.9 and 2+ are not spoken. */
	if (m->version_major != 1)
		return hp_fail(h, 505, "version_not_supported"), -1;
	/* RFC 9112 6.3: a Transfer-Encoding whose final coding is not chunked. The
	 * library refuses it only on a request it reads a body for, not on one offering
	 * an Upgrade (it would hand the rest to the new protocol); we ignore the offer
	 * and read on, so it is refused here. */
	if (h->hp_parser.uses_transfer_encoding && !(h->hp_parser.flags & F_CHUNKED))
		return hp_fail(h, 400, "bad_transfer_encoding"), -1;
	for (i = 0; i < m->nfields; i++) {
		f = &m->fields[i];
		if (f->name_len != 4 || strncasecmp(h->hp_base + f->name_off, "host", 4) != 0)
			continue;
		if (host != NULL)
			return hp_fail(h, 400, "duplicate_host"), -1;
		host = f;
	}
	if (host == NULL)
		return m->version_minor >= 1 ? (hp_fail(h, 400, "missing_host"), -1) : 0;
	if (!hp_valid_host(h->hp_base + host->value_off, host->value_len))
		return hp_fail(h, 400, "bad_host"), -1;
	return 0;
}

static int
hp_begin_cb(http_parser *p)
{
	struct hp *h = p->data;

	h->hp_in_msg = true;
	h->hp_in_body = false;
	h->hp_last = HP_CB_NONE;
	h->hp_msg.nfields = 0;
	h->hp_msg.url_len = 0;
	h->hp_msg.keep_end = 0;
	return 0;
}

static int
hp_url_cb(http_parser *p, const char *at, size_t len)
{
	struct hp *h = p->data;
	uint32_t off = (uint32_t)(at - h->hp_base);

	/* A piece split across reads continues the previous one: the buffer keeps both. */
	if (h->hp_last != HP_CB_URL) {
		h->hp_msg.url_off = off;
		h->hp_msg.url_len = 0;
	}
	h->hp_msg.url_len += (uint32_t)len;
	h->hp_last = HP_CB_URL;
	hp_note_end(h, off + (uint32_t)len);
	return 0;
}

static int
hp_field_cb(http_parser *p, const char *at, size_t len)
{
	struct hp *h = p->data;
	struct hp_field *f;
	uint32_t off = (uint32_t)(at - h->hp_base);

	/* "Name : v" passes the space on; RFC 7230 3.2.4: a MUST-400 (a smuggling vector). */
	if (memchr(at, ' ', len) != NULL || memchr(at, '\t', len) != NULL)
		return hp_fail(h, 400, "space_in_field_name"), -1;
	if (h->hp_last != HP_CB_FIELD) {
		if (h->hp_msg.nfields == HP_MAX_FIELDS) {
			hp_fail(h, 431, "too_many_headers");
			return -1;
		}
		f = &h->hp_msg.fields[h->hp_msg.nfields++];
		f->name_off = off;
		f->name_len = 0;
	} else
		f = &h->hp_msg.fields[h->hp_msg.nfields - 1];
	f->name_len += (uint32_t)len;
	/* Until a value arrives it is empty and shares the name's terminator. */
	f->value_off = f->name_off + f->name_len;
	f->value_len = 0;
	h->hp_last = HP_CB_FIELD;
	hp_note_end(h, off + (uint32_t)len);
	return 0;
}

static int
hp_value_cb(http_parser *p, const char *at, size_t len)
{
	struct hp *h = p->data;
	struct hp_field *f;
	uint32_t off = (uint32_t)(at - h->hp_base);

	if (h->hp_msg.nfields == 0)
		return 0;
	f = &h->hp_msg.fields[h->hp_msg.nfields - 1];
	/* A piece not adjacent to the last one: obs-fold, which RFC 7230 lets us refuse. */
	if (h->hp_last == HP_CB_VALUE && off != f->value_off + f->value_len)
		return hp_fail(h, 400, "obs_fold"), -1;
	/* The library checks a value's bytes only after the first ("X: \0a" passes):
	 * NUL and the other CTLs but HT are refused wherever they are (RFC 9110 5.5). */
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)at[i] < 0x20 && at[i] != '\t') || at[i] == 0x7f)
			return hp_fail(h, 400, "ctl_in_value"), -1;
	if (h->hp_last != HP_CB_VALUE) {
		/*
		 * obs-fold after an empty first line: the library skips "Name:\r\n b" up to
		 * the 'b' as whitespace before the value (and reports "Name:\r\n \r\n" as an
		 * empty value), so the fold shows only in the bytes between the colon and
		 * this piece: a line end followed by SP or HT.
		 */
		for (const char *s = h->hp_base + f->name_off + f->name_len; s + 1 < at; s++)
			if (*s == '\n' && (s[1] == ' ' || s[1] == '\t'))
				return hp_fail(h, 400, "obs_fold"), -1;
		/* An empty value comes at the next line's start: point it at the name's NUL. */
		f->value_off = len > 0 ? off : f->name_off + f->name_len;
		f->value_len = 0;
	}
	f->value_len += (uint32_t)len;
	h->hp_last = HP_CB_VALUE;
	hp_note_end(h, off + (uint32_t)len);
	return 0;
}

/*
 * The head is complete. Its checks and the owner's head callback run in hp_execute,
 * after the parser pauses here: only then is it known where the head ends, so that
 * its line ends are checked before anything (a 100 Continue) is answered.
 */
static int
hp_headers_cb(http_parser *p)
{
	struct hp *h = p->data;
	struct hp_msg *m = &h->hp_msg;

	m->method = http_method_str((enum http_method)p->method);
	m->version_major = p->http_major;
	m->version_minor = p->http_minor;
	m->keep_alive = http_should_keep_alive(p) != 0;
	m->chunked = (p->flags & F_CHUNKED) != 0;
	m->has_length = (p->flags & F_CONTENTLENGTH) != 0;
	m->content_length = m->has_length ? p->content_length : 0;
	m->is_head = p->method == HTTP_HEAD;
	m->connect = p->method == HTTP_CONNECT;
	/* The library sets this before the callback: Upgrade + Connection: upgrade, or CONNECT. */
	m->upgrade = p->upgrade != 0 && !m->connect;
	h->hp_in_body = true;
	h->hp_head_done = true;
	http_parser_pause(p, 1);
	return 0;
}

static int
hp_body_cb(http_parser *p, const char *at, size_t len)
{
	struct hp *h = p->data;
	size_t start = (size_t)(at - h->hp_base);
	int status;

	/* The framing bytes before this piece (a chunk-size line) are checked first. */
	if (hp_check_crlf(h, h->hp_base, h->hp_scan, start) < 0)
		return -1;
	h->hp_scan = start + len;
	if (h->hp_msg.chunked) {
		h->hp_chunk_left -= len;
		/* The library takes any two bytes after chunk data for its CRLF. */
		if (h->hp_chunk_left == 0)
			h->hp_crlf = HP_CRLF_WANT_CR;
	}
	if ((status = h->hp_ops->body(h->hp_arg, at, len)) != 0) {
		hp_fail(h, status, NULL);
		return -1;
	}
	return 0;
}

static int
hp_chunk_header_cb(http_parser *p)
{
	struct hp *h = p->data;

	h->hp_chunk_left = p->content_length;
	return 0;
}

static int
hp_complete_cb(http_parser *p)
{
	struct hp *h = p->data;

	h->hp_in_msg = false;
	h->hp_in_body = false;
	/* Stop right after this request: the caller runs its handler, then resumes. */
	http_parser_pause(p, 1);
	return 0;
}

enum hp_result
hp_execute(struct hp *h, char *base, size_t *off, size_t len)
{
	enum http_errno e;
	size_t n;
	int status;

	/* A zero length would tell the library the peer closed: never pass one. */
	if (*off >= len)
		return HP_AGAIN;
	h->hp_base = base;
	h->hp_scan = *off + (h->hp_lf_checked ? 1 : 0);
	h->hp_lf_checked = false;
	for (;;) {
		n = http_parser_execute(&h->hp_parser, &hp_settings, base + *off, len - *off);
		*off += n;
		e = HTTP_PARSER_ERRNO(&h->hp_parser);
		if (e != HPE_PAUSED || !h->hp_head_done)
			break;
		/* Paused at the head's end: its last LF, at *off, is consumed on resume. */
		h->hp_head_done = false;
		if (hp_check_crlf(h, base, h->hp_scan, *off + 1) < 0 || hp_check_head(h) < 0)
			return HP_ERROR;
		h->hp_scan = *off + 1;
		/* A chunked body begins with a chunk-size line. */
		h->hp_size = h->hp_msg.chunked ? HP_SIZE_DIGITS : HP_SIZE_NONE;
		h->hp_after_data = false;
		status = h->hp_ops->head(h->hp_arg, &h->hp_msg);
		if (status == HP_HEAD_STOP) {
			/* The head's last LF (checked) is consumed by the next call. */
			http_parser_pause(&h->hp_parser, 0);
			h->hp_lf_checked = true;
			return HP_HEAD;
		}
		if (status != 0) {
			hp_fail(h, status, NULL);
			return HP_ERROR;
		}
		http_parser_pause(&h->hp_parser, 0);
	}
	if (e == HPE_PAUSED || e == HPE_OK) {
		if (hp_check_crlf(h, base, h->hp_scan, *off) < 0)
			return HP_ERROR;
		if (e == HPE_OK)
			return HP_AGAIN;
		http_parser_pause(&h->hp_parser, 0);
		return HP_DONE;
	}
	/* What the library took before its error is framing it read past: a bad byte
	 * there came first, and is the answer (a control character early in a chunk
	 * extension, then a line too long, is 400, not 431). */
	if (h->hp_status == 0)
		(void)hp_check_crlf(h, base, h->hp_scan, *off);
	if (h->hp_status == 0) {
		if (e == HPE_HEADER_OVERFLOW)
			hp_fail(h, 431, "header_overflow");
		else
			hp_fail(h, 400, http_errno_name(e));
	}
	return HP_ERROR;
}

int
hp_finish(struct hp *h, char *base, const char **path, const char **query)
{
	struct hp_msg *m = &h->hp_msg;
	struct http_parser_url u;
	char *url = base + m->url_off;
	uint32_t i;

	http_parser_url_init(&u);
	if (m->url_len == 0 || http_parser_parse_url(url, m->url_len,
	    h->hp_parser.method == HTTP_CONNECT, &u) != 0)
		return -1;
	/* Every terminator lands on a ':', CR or SP the parser has consumed. */
	for (i = 0; i < m->nfields; i++) {
		base[m->fields[i].name_off + m->fields[i].name_len] = '\0';
		base[m->fields[i].value_off + m->fields[i].value_len] = '\0';
	}
	if (u.field_set & (1 << UF_QUERY)) {
		*query = url + u.field_data[UF_QUERY].off;
		url[u.field_data[UF_QUERY].off + u.field_data[UF_QUERY].len] = '\0';
	} else
		*query = "";
	if (u.field_set & (1 << UF_PATH)) {
		*path = url + u.field_data[UF_PATH].off;
		url[u.field_data[UF_PATH].off + u.field_data[UF_PATH].len] = '\0';
	} else
		*path = "/";
	return 0;
}

void
hp_keep(const struct hp *h, size_t parsed, size_t *start, size_t *end)
{
	if (!h->hp_in_msg || h->hp_msg.url_len == 0) {
		*start = *end = parsed;
		return;
	}
	*start = h->hp_msg.url_off;
	/* In the body only the head's strings matter; body bytes were copied out. */
	*end = h->hp_in_body ? h->hp_msg.keep_end : parsed;
	if (*end > parsed)
		*end = parsed;
}

void
hp_shift(struct hp *h, size_t delta)
{
	struct hp_msg *m = &h->hp_msg;
	uint32_t d = (uint32_t)delta, i;

	if (!h->hp_in_msg || m->url_len == 0)
		return;
	m->url_off -= d;
	m->keep_end -= d;
	for (i = 0; i < m->nfields; i++) {
		m->fields[i].name_off -= d;
		m->fields[i].value_off -= d;
	}
}
