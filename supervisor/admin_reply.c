/*
 * admin_reply.c - the admin's answers, written one way (admin_reply.h).
 */
#include "admin_reply.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

void
admin_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
    struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_send_reply(req, code, reason, body);
}

void
admin_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *obj)
{
	struct evbuffer *b = evbuffer_new();
	char *s = obj ? json_dumps(obj, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

	json_decref(obj);
	if (b == NULL || s == NULL) {
		free(s);
		if (b)
			evbuffer_free(b);
		evhttp_send_error(req, 500, "cannot build the reply");
		return;
	}
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	free(s);
	admin_reply(req, code, reason, "application/json", b);
	evbuffer_free(b);
}

void
admin_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
	admin_reply_json(req, code, reason, json_pack("{s:s}", "error", msg));
}
