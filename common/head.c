/*
 * head.c - request line and Host from a whole head (head.h), with libhttp-parser.
 */
#include "head.h"

#include <string.h>
#include <strings.h>

#include <http_parser.h>

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct head *h = p->data;

	if (h->url == NULL)
		h->url = at;
	h->url_len = (size_t)(at + len - h->url);
	return 0;
}

static int
on_field(http_parser *p, const char *at, size_t len)
{
	struct head *h = p->data;

	/* The buffer is whole: a name arrives in one piece. */
	h->in_host = len == 4 && strncasecmp(at, "host", 4) == 0;
	if (h->in_host)
		h->nhost++;
	return 0;
}

static int
on_value(http_parser *p, const char *at, size_t len)
{
	struct head *h = p->data;

	if (h->in_host && h->nhost == 1) {
		if (h->host == NULL)
			h->host = at;
		h->host_len = (size_t)(at + len - h->host);
	}
	return 0;
}

static int
on_head_done(http_parser *p)
{
	struct head *h = p->data;

	h->done = true;
	/* Only the head is ours to read: stop here. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings head_settings = {
	.on_url = on_url, .on_header_field = on_field, .on_header_value = on_value,
	.on_headers_complete = on_head_done,
};

enum head_result
head_parse(const char *buf, size_t len, struct head *h)
{
	struct http_parser_url u;
	http_parser p;

	memset(h, 0, sizeof(*h));
	http_parser_init(&p, HTTP_REQUEST);
	p.data = h;
	http_parser_execute(&p, &head_settings, buf, len);
	if (!h->done)
		return HTTP_PARSER_ERRNO(&p) == HPE_OK ? HEAD_MORE : HEAD_BAD;
	http_parser_url_init(&u);
	if (h->url_len == 0 || http_parser_parse_url(h->url, h->url_len, 0, &u) != 0)
		return HEAD_BAD;
	h->path = "/";
	h->path_len = 1;
	if (u.field_set & (1 << UF_PATH)) {
		h->path = h->url + u.field_data[UF_PATH].off;
		h->path_len = u.field_data[UF_PATH].len;
	}
	while (h->host != NULL && h->host_len > 0 &&
	    (h->host[h->host_len - 1] == ' ' || h->host[h->host_len - 1] == '\t'))
		h->host_len--;
	return HEAD_DONE;
}
