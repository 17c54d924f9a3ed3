/*
 * router.h - the shared listeners ("listeners" in the config, router.c): accept,
 * learn each request's function from its head (request line and Host, peeked, not
 * consumed), and hand the connection to that function's dispatch path
 * (dispatch_to_pool). Unknown route 404, bad Host 400, slow head 408, big head 431,
 * all answered here without a worker. Connections a worker gives back (the next
 * request on a keep-alive connection, WIRE_CTL_MOVE) are routed the same way.
 *
 * Like dispatch.c's, listeners outlive config generations: an address that stays
 * keeps its socket and gets the new routes when the config commits.
 */
#ifndef SV_ROUTER_H
#define SV_ROUTER_H

#include <stddef.h>

struct event_base;
struct sv_conf;
struct worker;

void router_init(struct event_base *base);
/* As dispatch_listen/commit/abort/close_all, for CONF's "listeners". */
int router_listen(struct sv_conf *conf, char *err, size_t errlen);
void router_commit(void);
void router_abort(void);
void router_close_all(void);
/* W's control socket is readable: takes the connections it gave back. */
void router_take_moves(struct worker *w);

#endif
