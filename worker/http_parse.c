/*
 * http_parse.c - libhttp-parser glue: feeds a connection's read buffer to
 * http_parser, records the request head as offsets into that buffer and pauses the
 * parser at the end of each request so the caller can run the handler between two
 * pipelined requests without copying anything.
 */
#include "http_parse.h"

#include <string.h>

enum { HP_CB_NONE, HP_CB_URL, HP_CB_FIELD, HP_CB_VALUE };

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
	if ((status = h->hp_ops->head(h->hp_arg, m)) != 0) {
		hp_fail(h, status, NULL);
		return -1;
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

	/* A zero length would tell the library the peer closed: never pass one. */
	if (*off >= len)
		return HP_AGAIN;
	h->hp_base = base;
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
