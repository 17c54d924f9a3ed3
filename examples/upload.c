/*
 * upload - a streamed request body: POST (or PUT) any size, Content-Length or
 * chunked, far above max_body_bytes; the worker holds one read buffer of it at a
 * time. The answer is {"bytes":N} (and "sha256":"..." with ?hash=1, from nettle).
 *
 *   curl -sS -T big.iso http://127.0.0.1:8085/            # Content-Length
 *   curl -sS -T - http://127.0.0.1:8085/?hash=1 < big.iso  # chunked
 *
 * POST /hold pauses its body after the first piece (the client's send then blocks:
 * backpressure) until a GET /release arrives on any connection; it shows a function
 * that takes its time with each piece, e.g. while a write to storage is in flight.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include <edgevisor.h>

#define HELD_MAX 64

struct upload {
	edge_res *res;
	uint64_t bytes;
	uint64_t pieces;
	int hash;
	int hold;
	struct sha256_ctx sha;
};

/* Uploads paused by /hold, resumed by /release. */
static edge_req *held[HELD_MAX];
static size_t nheld;

static void
unhold(edge_req *req)
{
	size_t i;

	for (i = 0; i < nheld; i++)
		if (held[i] == req) {
			held[i] = held[--nheld];
			return;
		}
}

static void
answer(edge_req *req, struct upload *u)
{
	uint8_t digest[SHA256_DIGEST_SIZE];
	char out[160], hex[2 * SHA256_DIGEST_SIZE + 1];
	size_t i;
	int n;

	if (u->hash) {
		sha256_digest(&u->sha, sizeof(digest), digest);
		for (i = 0; i < sizeof(digest); i++)
			snprintf(hex + 2 * i, 3, "%02x", digest[i]);
		n = snprintf(out, sizeof(out), "{\"bytes\":%" PRIu64 ",\"pieces\":%" PRIu64
		    ",\"sha256\":\"%s\"}\n", u->bytes, u->pieces, hex);
	} else
		n = snprintf(out, sizeof(out), "{\"bytes\":%" PRIu64 ",\"pieces\":%" PRIu64 "}\n",
		    u->bytes, u->pieces);
	edge_res_send(u->res, 200, "application/json", out, (size_t)n);
	(void)req;
}

static int
on_body(edge_req *req, enum edge_body_event ev, const void *data, size_t len, void *arg)
{
	struct upload *u = arg;

	switch (ev) {
	case EDGE_BODY_DATA:
		u->bytes += len;
		u->pieces++;
		if (u->hash)
			sha256_update(&u->sha, len, data);
		/* Hold: pause after the first piece; /release resumes. */
		if (u->hold && u->pieces == 1 && nheld < HELD_MAX) {
			held[nheld++] = req;
			return 1;
		}
		return 0;
	case EDGE_BODY_END:
		answer(req, u);
		break;
	case EDGE_BODY_ABORT:
		/* The client is gone or stalled: let the request go. */
		unhold(req);
		edge_res_send(u->res, 500, NULL, NULL, 0);
		break;
	}
	if (ev != EDGE_BODY_DATA)
		free(u);
	return 0;
}

static int
init(edge_ctx *ctx)
{
	return edge_stream_bodies(ctx);
}

static void
handle(edge_req *req, edge_res *res)
{
	const char *path = edge_req_path(req);
	struct upload *u;
	char out[64];
	size_t i, n;

	if (strcmp(path, "/release") == 0) {
		n = nheld;
		for (i = 0; i < n; i++)
			edge_req_body_resume(held[i]);
		nheld = 0;
		n = (size_t)snprintf(out, sizeof(out), "{\"released\":%zu}\n", n);
		edge_res_send(res, 200, "application/json", out, n);
		return;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		edge_res_send(res, 503, "text/plain", "no memory\n", 10);
		return;
	}
	u->res = res;
	u->hash = strstr(edge_req_query(req), "hash=1") != NULL;
	u->hold = strcmp(path, "/hold") == 0;
	if (u->hash)
		sha256_init(&u->sha);
	if (edge_req_stream_body(req, on_body, u) < 0) {
		/* No body (a GET, or an empty POST): an empty upload. */
		answer(req, u);
		free(u);
	}
}

EDGE_FUNCTION(init, handle);
