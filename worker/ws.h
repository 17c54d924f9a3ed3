/*
 * ws.h - what http.c and ws.c (WebSocket connections, edge_ws_* of edgevisor.h) ask
 * of each other. http.c owns the connection until edge_ws_accept() takes it over;
 * the connection stays counted there (so a worker drains only after its WebSockets
 * ended) until ws.c gives it back with http_upgrade_closed().
 */
#ifndef WK_WS_H
#define WK_WS_H

#include <stddef.h>
#include <stdint.h>

#include "edgevisor.h"

/* Bytes handed over with the connection (malloc'd; the receiver frees them). */
struct ws_bytes {
	char *data;
	size_t len;
};

/*
 * http.c: switches RES's connection to WS. Appends the 101 answer (the user headers
 * of RES, Upgrade, Connection, Sec-WebSocket-Accept: ACCEPT) to the output still
 * pending, and hands that output (*OUT) and the input read past the request (*IN)
 * over; http.c stops watching the socket. Returns the socket, or -1 (nothing
 * changed): RES is not held, streamed, timed out or gone, or its request is not an
 * HTTP/1.1 upgrade offer without a body.
 */
int http_upgrade(edge_res *res, edge_ws *ws, const char *accept, struct ws_bytes *out,
    struct ws_bytes *in);
/* http.c: the WebSocket of RES's connection ended: close it (the socket too). */
void http_upgrade_closed(edge_res *res);
/* http.c: whether the request of RES may still be answered by an upgrade. */
int http_upgrade_ok(const edge_res *res);

/* ws.c: the operator's caps (ws_max_message_bytes, ws_max_buffer_bytes), before any
 * accept; until then EDGE_WS_MAX_MESSAGE and EDGE_WS_BUFFER apply. */
void ws_set_limits(uint32_t max_message, uint32_t max_buffer);
/* ws.c: the worker retires: send close 1001 and drop it after the close wait. */
void ws_drain(edge_ws *ws);
/* ws.c: the worker exits: free WS without a word to anyone (http.c closes the fd). */
void ws_abandon(edge_ws *ws);

#endif
