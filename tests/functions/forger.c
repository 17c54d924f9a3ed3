/*
 * forger - a hostile tenant for test_routing.py: GET /forge passes a socket of its own
 * (one end of a socketpair holding a request for another function) to the supervisor
 * as a routed connection it gives back (WIRE_CTL_MOVE on the control socket, listener
 * 1); GET /check answers whatever came back on the other end ("" if nothing did).
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edgevisor.h"
#include "wire.h"

static int kept = -1;
static struct wire_carry wc;

static void
forge(void)
{
	static const char req[] = "GET /a/forged HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
		return;
	(void)!write(sp[0], req, sizeof(req) - 1);
	memset(&wc, 0, sizeof(wc));
	wc.version = WIRE_VERSION;
	wc.type = WIRE_CTL_MOVE;
	wc.listener = 1;
	wc.size = (uint32_t)WIRE_CARRY_HEAD;
	{
		/* By hand: the worker exports only edge_* to the function. */
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cb;
		struct iovec iov = { .iov_base = &wc, .iov_len = WIRE_CARRY_HEAD };
		struct msghdr mh = {
			.msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cb.buf, .msg_controllen = sizeof(cb.buf),
		};
		struct cmsghdr *cm;

		memset(&cb, 0, sizeof(cb));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &sp[1], sizeof(int));
		(void)!sendmsg(WIRE_CTL_FD, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	close(sp[1]);
	kept = sp[0];
}

static void
handle(edge_req *req, edge_res *res)
{
	char buf[512];
	ssize_t n = 0;

	if (strcmp(edge_req_path(req), "/forge") == 0) {
		forge();
		edge_res_send(res, 200, "text/plain", "sent\n", 5);
		return;
	}
	if (kept >= 0) {
		n = read(kept, buf, sizeof(buf));
		if (n < 0)
			n = 0;
	}
	edge_res_send(res, 200, "text/plain", buf, (size_t)n);
}

EDGE_FUNCTION(NULL, handle);
