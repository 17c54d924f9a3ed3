/*
 * forger - a hostile tenant for test_routing.py: GET /forge passes a socket of its own
 * (one end of a socketpair holding a request for another function) to the supervisor
 * as a routed connection it gives back (WIRE_CTL_MOVE on the control socket, listener
 * 1); GET /check answers whatever came back on the other end ("" if nothing did).
 * GET /forge_udp?PORT passes a UDP socket bound to the listener's address (127.0.0.1:
 * PORT: the same address and port, another protocol), GET /forge_tcp?PORT its own TCP
 * connection to the listener; each answers "sent", or what failed before the send.
 */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edgevisor.h"
#include "wire.h"

static int kept = -1;
static struct wire_carry wc;

/* Gives FD to the supervisor as if it were a routed connection of listener 1. */
static void
pass(int fd)
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

	memset(&wc, 0, sizeof(wc));
	wc.version = WIRE_VERSION;
	wc.type = WIRE_CTL_MOVE;
	wc.listener = 1;
	wc.size = (uint32_t)WIRE_CARRY_HEAD;
	memset(&cb, 0, sizeof(cb));
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	(void)!sendmsg(WIRE_CTL_FD, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
forge(void)
{
	static const char req[] = "GET /a/forged HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) < 0)
		return;
	(void)!write(sp[0], req, sizeof(req) - 1);
	pass(sp[1]);
	close(sp[1]);
	kept = sp[0];
}

/* A socket of TYPE on 127.0.0.1:PORT: bound there (UDP) or connected there (TCP).
 * Returns what to answer. */
static const char *
forge_inet(int type, const char *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0), r;

	if (fd < 0)
		return "no socket\n";
	sa.sin_port = htons((uint16_t)atoi(port));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r = type == SOCK_DGRAM ? bind(fd, (struct sockaddr *)&sa, sizeof(sa)) :
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	if (r < 0) {
		close(fd);
		return type == SOCK_DGRAM ? "no bind\n" : "no connect\n";
	}
	pass(fd);
	close(fd);
	return "sent\n";
}

static void
handle(edge_req *req, edge_res *res)
{
	char buf[512];
	ssize_t n = 0;

	const char *path = edge_req_path(req), *say;

	if (strcmp(path, "/forge") == 0) {
		forge();
		edge_res_send(res, 200, "text/plain", "sent\n", 5);
		return;
	}
	if (strcmp(path, "/forge_udp") == 0 || strcmp(path, "/forge_tcp") == 0) {
		say = forge_inet(path[7] == 'u' ? SOCK_DGRAM : SOCK_STREAM, edge_req_query(req));
		edge_res_send(res, 200, "text/plain", say, strlen(say));
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
