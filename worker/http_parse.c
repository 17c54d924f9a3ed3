/*
 * http_parse.c - libhttp-parser glue: feeds a connection's read buffer to
 * http_parser, records the request head as offsets into that buffer and pauses the
 * parser at the end of each request so the caller can run the handler between two
 * pipelined requests without copying anything.
 */
#include "http_parse.h"

#include <string.h>

enum { HP_CB_NONE, HP_CB_URL, HP_CB_FIELD, HP_CB_VALUE };
/* hp_scan_head: before a request, in a line, at a line's start, after a CR, done. */
enum { SC_IDLE, SC_LINE, SC_BOL, SC_CR, SC_DONE };
/* hp_scan_chunk: not in a size line, at its start, in the digits, in an extension,
 * after its CR. */
enum { CS_NONE, CS_START, CS_SIZE, CS_EXT, CS_CR };

static int hp_scan_chunk(struct hp *h, size_t from, size_t to);

static int hp_begin_cb(http_parser *);
static int hp_url_cb(http_parser *, const char *, size_t);
static int hp_field_cb(http_parser *, const char *, size_t);
static int hp_value_cb(http_parser *, const char *, size_t);
static int hp_headers_cb(http_parser *);
static int hp_body_cb(http_parser *, const char *, size_t);
static int hp_complete_cb(http_parser *);

static const http_parser_settings hp_settings = {
	.on_message_begin = hp_begin_cb,
	.on_url = hp_url_cb,
	.on_header_field = hp_field_cb,
	.on_header_value = hp_value_cb,
	.on_headers_complete = hp_headers_cb,
	.on_body = hp_body_cb,
	.on_message_complete = hp_complete_cb,
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
	/* The library lets a control character through at a value's start ("X: \0a"):
	 * NUL and the other CTLs but HT are refused wherever they are. */
	for (size_t i = 0; i < len; i++)
		if (((unsigned char)at[i] < 0x20 && at[i] != '\t') || at[i] == 0x7f)
			return hp_fail(h, 400, "ctl_in_value"), -1;
	if (h->hp_last != HP_CB_VALUE && len > 0) {
		/* The value's first byte follows a line break, not the colon: obs-fold
		 * after an empty first line ("Name:\r\n value"), refused like any fold. */
		const char *q = at, *lo = h->hp_base + h->hp_msg.url_off;

		while (q > lo && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if (q > lo && (q[-1] == '\n' || q[-1] == '\r'))
			return hp_fail(h, 400, "obs_fold"), -1;
	}
	if (h->hp_last != HP_CB_VALUE) {
		/* An empty value comes at the next line's start: point it at the name's NUL. */
		f->value_off = len > 0 ? off : f->name_off + f->name_len;
		f->value_len = 0;
	}
	f->value_len += (uint32_t)len;
	h->hp_last = HP_CB_VALUE;
	hp_note_end(h, off + (uint32_t)len);
	return 0;
}

static int
hp_headers_cb(http_parser *p)
{
	struct hp *h = p->data;
	struct hp_msg *m = &h->hp_msg;
	int status;

	m->method = http_method_str((enum http_method)p->method);
	m->version_major = p->http_major;
	m->version_minor = p->http_minor;
	m->keep_alive = http_should_keep_alive(p) != 0;
	m->chunked = (p->flags & F_CHUNKED) != 0;
	m->has_length = (p->flags & F_CONTENTLENGTH) != 0;
	m->content_length = m->has_length ? p->content_length : 0;
	/* The library sets this before the callback: Upgrade + Connection: upgrade, or CONNECT. */
	m->upgrade = p->upgrade != 0;
	m->is_head = p->method == HTTP_HEAD;
	h->hp_in_body = true;
	/* A chunked body starts with a size line right after the head. */
	if (m->chunked && h->hp_sc == SC_DONE) {
		h->hp_cs = CS_START;
		if (hp_scan_chunk(h, h->hp_head_end, h->hp_end) < 0)
			return -1;
	}
	if ((status = h->hp_ops->head(h->hp_arg, m)) != 0) {
		hp_fail(h, status, NULL);
		return -1;
	}
	return 0;
}

/*
 * Checks the CRLF that must follow a chunk's data, from offset POS on (as far as the
 * input goes; the rest at the next hp_execute), then the next chunk-size line. The
 * library, built non-strict, skips any two bytes there: "3\r\nabcXY0\r\n\r\n" would
 * be one complete request, and whatever followed the next one (a smuggling
 * vector). Returns 0 or -1.
 */
static int
hp_check_crlf(struct hp *h, size_t pos)
{
	while (h->hp_crlf > 0 && pos < h->hp_end) {
		if (h->hp_base[pos] != (h->hp_crlf == 2 ? '\r' : '\n'))
			return hp_fail(h, 400, "chunk_data_without_crlf"), -1;
		h->hp_crlf--;
		pos++;
		if (h->hp_crlf == 0) {
			h->hp_cs = CS_START;
			return hp_scan_chunk(h, pos, h->hp_end);
		}
	}
	return 0;
}

static bool
hp_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * Reads a chunk-size line in BASE[FROM, TO) before the library does: 1*HEXDIG, an
 * optional extension (";", SP or HT, then no control character), CRLF. The library
 * takes any byte after the CR as the LF, an LF inside an extension as part of it,
 * and a size byte >= 0x80 as some digit (it indexes its hex table with a signed
 * char): each a framing a stricter front end would not share. Stops at the line's
 * end (the data is counted by the library; its end calls hp_check_crlf). Returns 0
 * or -1.
 */
static int
hp_scan_chunk(struct hp *h, size_t from, size_t to)
{
	for (size_t i = from; i < to && h->hp_cs != CS_NONE; i++) {
		char c = h->hp_base[i];

		switch (h->hp_cs) {
		case CS_START:
			if (!hp_hex(c))
				return hp_fail(h, 400, "bad_chunk_size"), -1;
			h->hp_cs = CS_SIZE;
			break;
		case CS_SIZE:
			if (hp_hex(c))
				;
			else if (c == ';' || c == ' ' || c == '\t')
				h->hp_cs = CS_EXT;
			else if (c == '\r')
				h->hp_cs = CS_CR;
			else
				return hp_fail(h, 400, "bad_chunk_size"), -1;
			break;
		case CS_EXT:
			if (c == '\r')
				h->hp_cs = CS_CR;
			else if (((unsigned char)c < 0x20 && c != '\t') || c == 0x7f)
				return hp_fail(h, 400, "bad_chunk_extension"), -1;
			break;
		case CS_CR:
			if (c != '\n')
				return hp_fail(h, 400, "bad_chunk_size"), -1;
			/* Data follows (its end calls hp_check_crlf), or, after the last
			 * chunk, the trailers (read as header lines). */
			h->hp_cs = CS_NONE;
			break;
		}
	}
	return 0;
}

static int
hp_body_cb(http_parser *p, const char *at, size_t len)
{
	struct hp *h = p->data;
	int status;

	if ((status = h->hp_ops->body(h->hp_arg, at, len)) != 0) {
		hp_fail(h, status, NULL);
		return -1;
	}
	/* The end of a chunk's data: its CRLF follows. */
	if ((p->flags & F_CHUNKED) && p->content_length == 0) {
		h->hp_crlf = 2;
		if (hp_check_crlf(h, (size_t)(at + len - h->hp_base)) < 0)
			return -1;
	}
	return 0;
}

static int
hp_complete_cb(http_parser *p)
{
	struct hp *h = p->data;

	h->hp_in_msg = false;
	h->hp_in_body = false;
	h->hp_sc = SC_IDLE;
	h->hp_cs = CS_NONE;
	h->hp_crlf = 0;
	/* Stop right after this request: the caller runs its handler, then resumes. */
	http_parser_pause(p, 1);
	return 0;
}

/*
 * Reads the head's bytes in BASE[FROM, TO) before the library does: a CR must be
 * followed by LF. The library, built non-strict, takes any byte after a CR as the
 * LF, so "Host: a\r\n\rX..." would end the head at "\rX" and make what follows the
 * next request, where a stricter front end sees one header line (a smuggling
 * vector). Bare LF line ends are tolerated, as the library does. Returns 0 or -1.
 */
static int
hp_scan_head(struct hp *h, const char *base, size_t from, size_t to)
{
	for (size_t i = from; i < to && h->hp_sc != SC_DONE; i++) {
		char c = base[i];

		switch (h->hp_sc) {
		case SC_IDLE:           /* empty lines before a request are skipped */
			if (c != '\r' && c != '\n')
				h->hp_sc = SC_LINE;
			break;
		case SC_CR:
			if (c != '\n')
				return hp_fail(h, 400, "bare_cr"), -1;
			h->hp_sc = h->hp_sc_bol ? SC_DONE : SC_BOL;
			h->hp_head_end = i + 1;
			break;
		case SC_BOL:
			if (c == '\n') {
				h->hp_sc = SC_DONE;
				h->hp_head_end = i + 1;
				break;
			}
			h->hp_sc_bol = true;
			h->hp_sc = c == '\r' ? SC_CR : SC_LINE;
			break;
		case SC_LINE:
			if (c == '\n')
				h->hp_sc = SC_BOL;
			else if (c == '\r') {
				h->hp_sc_bol = false;
				h->hp_sc = SC_CR;
			}
			break;
		}
	}
	return 0;
}

enum hp_result
hp_execute(struct hp *h, char *base, size_t *off, size_t len)
{
	enum http_errno e;
	size_t n;

	/* A zero length would tell the library the peer closed: never pass one. */
	if (*off >= len)
		return HP_AGAIN;
	h->hp_base = base;
	h->hp_end = len;
	if (h->hp_crlf > 0) {
		if (hp_check_crlf(h, *off) < 0)
			return HP_ERROR;
	} else if (h->hp_cs != CS_NONE && hp_scan_chunk(h, *off, len) < 0)
		return HP_ERROR;
	if (h->hp_sc != SC_DONE && hp_scan_head(h, base, *off, len) < 0)
		return HP_ERROR;
	n = http_parser_execute(&h->hp_parser, &hp_settings, base + *off, len - *off);
	*off += n;
	e = HTTP_PARSER_ERRNO(&h->hp_parser);
	if (e == HPE_PAUSED) {
		http_parser_pause(&h->hp_parser, 0);
		return HP_DONE;
	}
	if (e == HPE_OK)
		return HP_AGAIN;
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
