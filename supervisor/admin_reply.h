/*
 * admin_reply.h - how every admin answer is written (admin_reply.c): its
 * Content-Type, Cache-Control: no-store (nothing the admin says may be cached), and
 * JSON bodies as jansson prints them (two-space indent, keys in order, a newline).
 * Used by admin.c, admin_auth.c and admin_job.c; on the loop only.
 */
#ifndef SV_ADMIN_REPLY_H
#define SV_ADMIN_REPLY_H

#include <jansson.h>

struct evbuffer;
struct evhttp_request;

/* Sends CODE REASON with BODY (NULL: none) of TYPE. */
void admin_reply(struct evhttp_request *req, int code, const char *reason, const char *type,
    struct evbuffer *body);
/* Sends OBJ (stolen; NULL or unprintable: 500) as JSON. */
void admin_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *obj);
/* Sends {"error": MSG}. */
void admin_reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg);

#endif
