/*
 * ws_echo - a WebSocket echo: every text or binary message comes back as it came.
 * A request without a WebSocket upgrade offer gets a line saying so. A client that does not
 * read its echoes while it keeps sending is closed with 1013 (try again later): an
 * echo has nowhere else to put them.
 */
#include <string.h>
#include <edgevisor.h>

static void
on_event(edge_ws *ws, const struct edge_ws_msg *m, void *arg)
{
	(void)arg;
	switch (m->ev) {
	case EDGE_WS_TEXT:
	case EDGE_WS_BINARY:
		if (edge_ws_send(ws, m->ev, m->data, m->len) == 1)
			edge_ws_close(ws, 1013, "not reading");
		break;
	case EDGE_WS_CLOSE:      /* answered by the runtime; GONE follows */
	case EDGE_WS_WRITABLE:   /* never waited for: a full buffer closes instead */
	case EDGE_WS_GONE:       /* nothing of ours to free */
		break;
	}
}

static void
handle(edge_req *req, edge_res *res)
{
	const char *up = edge_req_header(req, "Upgrade");

	/* Another offer (h2c) or none: plain HTTP, as for a function that takes none. */
	if (up == NULL || strcasestr(up, "websocket") == NULL) {
		edge_res_send(res, 200, "text/plain", "ws_echo: speak WebSocket to me\n", 31);
		return;
	}
	/* A bad handshake was answered (400/426) by edge_ws_accept itself. */
	edge_ws_accept(req, res, on_event, NULL);
}

EDGE_FUNCTION(NULL, handle);
