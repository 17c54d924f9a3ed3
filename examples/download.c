/*
 * download - a large streamed download: GET /?mb=1024 sends that many MiB (default
 * 16) of a repeating pattern, produced 64 KiB at a time as the client takes them.
 * The worker holds at most EDGE_STREAM_BUFFER of it, however slow the client:
 * a piece that does not fit waits for EDGE_STREAM_WRITABLE.
 *
 *   curl -s -o /dev/null -w '%{size_download}\n' 'http://127.0.0.1:8084/?mb=1024'
 */
#include <stdlib.h>
#include <string.h>

#include <edgevisor.h>

#define PIECE (64 * 1024)

struct download {
	edge_res *res;
	unsigned long long left;
};

static char pattern[PIECE];

/* Writes pieces until the buffer is full, the body is complete, or the client left. */
static void
download_pump(struct download *d)
{
	int r;

	while (d->left > 0) {
		size_t n = d->left < PIECE ? (size_t)d->left : PIECE;

		if ((r = edge_res_write(d->res, pattern, n)) == 1)
			return;              /* full: EDGE_STREAM_WRITABLE comes */
		if (r < 0)
			break;               /* gone */
		d->left -= n;
	}
	edge_res_end(d->res);
	free(d);
}

static void
download_event(edge_res *res, enum edge_stream_event ev, void *arg)
{
	struct download *d = arg;

	(void)res;
	/* A finite download finishes even when the worker drains. */
	if (ev == EDGE_STREAM_WRITABLE)
		download_pump(d);
	else if (ev == EDGE_STREAM_GONE) {
		edge_res_end(d->res);
		free(d);
	}
}

static int
init(edge_ctx *ctx)
{
	size_t i;

	(void)ctx;
	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = "0123456789abcdef"[i % 16];
	pattern[sizeof(pattern) - 1] = '\n';
	return 0;
}

static void
handle(edge_req *req, edge_res *res)
{
	const char *q = edge_req_query(req), *p = strstr(q, "mb=");
	struct download *d;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		edge_res_send(res, 503, "text/plain", "no memory\n", 10);
		return;
	}
	d->res = res;
	d->left = (unsigned long long)(p ? strtoull(p + 3, NULL, 10) : 16) << 20;
	if (edge_res_start(res, 200, "application/octet-stream", download_event, d) < 0) {
		free(d);
		edge_res_send(res, 503, "text/plain", "cannot stream\n", 14);
		return;
	}
	download_pump(d);
}

EDGE_FUNCTION(init, handle);
