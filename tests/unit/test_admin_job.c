/*
 * test_admin_job.c - admin pages rendered off the loop (supervisor/admin_job.c),
 * served by a real evhttp on loopback to real sockets. The page's render blocks on
 * a gate the case opens, so "while a render is under way" is a state the case
 * holds, not a race it hopes to win: the loop keeps running meanwhile, requests
 * that arrive share the next render, the queue is bounded, and the evhttp freed
 * under a waiting request (libevent frees the request: an admin endpoint moved, the
 * exit) neither crashes nor answers it (run under ASan: `make asan`).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "../../common/clock.h"
#include "../../supervisor/admin_job.h"
#include "unit.h"

static struct event_base *base;
static struct evhttp *http;
static uint16_t port;
static int gate[2] = { -1, -1 };
static atomic_int renders_started, renders_done;
static int takes;

static void *
take(void *arg)
{
	int *n = malloc(sizeof(*n));

	if (n != NULL)
		*n = ++takes;
	return n;
}

/* Waits for one byte on the gate: the case decides when a render ends. */
static int
render(void *snap, struct evbuffer *out)
{
	char c;

	atomic_fetch_add(&renders_started, 1);
	while (read(gate[0], &c, 1) < 0 && errno == EINTR)
		;
	evbuffer_add_printf(out, "snapshot %d\n", *(int *)snap);
	atomic_fetch_add(&renders_done, 1);
	return 0;
}

static void
drop(void *snap)
{
	free(snap);
}

static const struct admin_page page = {
	.path = "/page", .content_type = "text/plain", .take = take, .render = render, .drop = drop,
};

static void
gen_cb(struct evhttp_request *req, void *arg)
{
	admin_job_serve(&page, req);
}

static void
open_gate(int n)
{
	while (n-- > 0)
		if (write(gate[1], "x", 1) != 1)
			abort();
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Runs the loop until PRED holds (true) or MS pass (false). */
static bool
pump_until(bool (*pred)(void *), void *arg, uint64_t ms)
{
	uint64_t end = clock_ms() + ms;

	while (!pred(arg)) {
		if (clock_ms() >= end)
			return false;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return true;
}

static int
serve(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if ((http = evhttp_new(base)) == NULL)
		return -1;
	evhttp_set_gencb(http, gen_cb, NULL);
	if ((bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0)) == NULL)
		return -1;
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&a, &len) < 0)
		return -1;
	port = ntohs(a.sin_port);
	return 0;
}

/* One client: a request sent at once, its answer read as the loop runs. */
struct client {
	int fd;
	char buf[4096];
	size_t len;
	bool eof;
};

static int
client_send(struct client *c)
{
	static const char req[] = "GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	memset(c, 0, sizeof(*c));
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if ((c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    write(c->fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1) ||
	    fcntl(c->fd, F_SETFL, O_NONBLOCK) < 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

/* Reads what is there; true once the server closed (the whole answer is in). */
static bool
client_done(void *arg)
{
	struct client *c = arg;
	ssize_t n;

	while (!c->eof && c->len + 1 < sizeof(c->buf)) {
		n = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
		if (n > 0)
			c->len += (size_t)n;
		else if (n == 0 || errno != EAGAIN)
			c->eof = true;
		else
			break;
	}
	c->buf[c->len] = '\0';
	return c->eof;
}

static void
client_close(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static bool
started_is(void *arg)
{
	return atomic_load(&renders_started) == *(int *)arg;
}

static bool
done_is(void *arg)
{
	return atomic_load(&renders_done) == *(int *)arg;
}

static void
reset_counts(void)
{
	atomic_store(&renders_started, 0);
	atomic_store(&renders_done, 0);
	takes = 0;
}

/* The loop runs on while a render is under way; the answer comes once it ends. */
static void
case_answers_off_the_loop(void)
{
	struct client c = { .fd = -1 };
	int one = 1;

	reset_counts();
	UNIT_CHECK(client_send(&c) == 0);
	UNIT_CHECK(pump_until(started_is, &one, 5000));
	/* Blocked on the gate: the loop still turns (the tick), no answer yet. */
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE);
	UNIT_CHECKF(!client_done(&c) && c.len == 0, "answered before the render ended: %s", c.buf);
	open_gate(1);
	UNIT_CHECK(pump_until(client_done, &c, 5000));
	UNIT_CHECKF(strncmp(c.buf, "HTTP/1.1 200", 12) == 0, "%s", c.buf);
	UNIT_CHECKF(strstr(c.buf, "Cache-Control: no-store") != NULL, "%s", c.buf);
	UNIT_CHECKF(strstr(c.buf, "\r\n\r\nsnapshot 1\n") != NULL, "%s", c.buf);
out:
	client_close(&c);
}

/* Requests that arrive during a render wait for one more, from a snapshot taken
 * after they came, and share it. */
static void
case_later_requests_share_the_next(void)
{
	struct client a = { .fd = -1 }, b = { .fd = -1 }, c = { .fd = -1 };
	int one = 1, two = 2;

	reset_counts();
	UNIT_CHECK(client_send(&a) == 0);
	UNIT_CHECK(pump_until(started_is, &one, 5000));
	UNIT_CHECK(client_send(&b) == 0 && client_send(&c) == 0);
	/* Both are read and queued while the first render is blocked. */
	for (int i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_ONCE);
	UNIT_CHECKF(takes == 1, "%d snapshots while one render runs", takes);
	open_gate(1);
	UNIT_CHECK(pump_until(client_done, &a, 5000));
	UNIT_CHECKF(strstr(a.buf, "snapshot 1\n") != NULL, "%s", a.buf);
	UNIT_CHECK(pump_until(started_is, &two, 5000));
	UNIT_CHECKF(takes == 2, "%d snapshots", takes);
	open_gate(1);
	UNIT_CHECK(pump_until(client_done, &b, 5000) && pump_until(client_done, &c, 5000));
	UNIT_CHECKF(strstr(b.buf, "snapshot 2\n") != NULL, "%s", b.buf);
	UNIT_CHECKF(strstr(c.buf, "snapshot 2\n") != NULL, "%s", c.buf);
	UNIT_CHECKF(atomic_load(&renders_done) == 2 && takes == 2, "%d renders, %d snapshots",
	    atomic_load(&renders_done), takes);
out:
	client_close(&a);
	client_close(&b);
	client_close(&c);
}

/* Some client of the flood (ADMIN_JOB_WAITERS + 1 of them) has its whole answer. */
static bool
one_done(void *arg)
{
	struct client *cl = arg;
	bool any = false;

	for (int i = 0; i <= ADMIN_JOB_WAITERS; i++)
		if (client_done(&cl[i]))
			any = true;
	return any;
}

/* At most ADMIN_JOB_WAITERS requests wait; the next is told 503 and when to retry. */
static void
case_flood_is_bounded(void)
{
	struct client cl[ADMIN_JOB_WAITERS + 1];
	int one = 1, n503 = 0, n200 = 0, i;

	reset_counts();
	for (i = 0; i <= ADMIN_JOB_WAITERS; i++)
		cl[i].fd = -1;
	UNIT_CHECK(client_send(&cl[0]) == 0);
	UNIT_CHECK(pump_until(started_is, &one, 5000));
	for (i = 1; i <= ADMIN_JOB_WAITERS; i++)
		UNIT_CHECK(client_send(&cl[i]) == 0);
	/* One of them, the one read past the bound, is answered while the render is
	 * still blocked. */
	UNIT_CHECK(pump_until(one_done, cl, 5000));
	for (i = 1; i <= ADMIN_JOB_WAITERS && !cl[i].eof; i++)
		;
	UNIT_CHECKF(strncmp(cl[i].buf, "HTTP/1.1 503", 12) == 0, "%s", cl[i].buf);
	UNIT_CHECKF(strstr(cl[i].buf, "Retry-After: 1") != NULL, "%s", cl[i].buf);
	open_gate(2);
	for (i = 0; i <= ADMIN_JOB_WAITERS; i++)
		UNIT_CHECK(pump_until(client_done, &cl[i], 5000));
	for (i = 0; i <= ADMIN_JOB_WAITERS; i++) {
		if (strncmp(cl[i].buf, "HTTP/1.1 200", 12) == 0)
			n200++;
		else if (strncmp(cl[i].buf, "HTTP/1.1 503", 12) == 0)
			n503++;
	}
	UNIT_CHECKF(n200 == ADMIN_JOB_WAITERS && n503 == 1, "%d answered, %d refused", n200, n503);
	UNIT_CHECKF(takes == 2, "%d snapshots for the flood", takes);
out:
	for (i = 0; i <= ADMIN_JOB_WAITERS; i++)
		client_close(&cl[i]);
}

/* A client that leaves before its answer: the answer goes nowhere, the next one works. */
static void
case_client_gone(void)
{
	struct client c = { .fd = -1 };
	int one = 1, two = 2;

	reset_counts();
	UNIT_CHECK(client_send(&c) == 0);
	UNIT_CHECK(pump_until(started_is, &one, 5000));
	client_close(&c);
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE);
	open_gate(1);
	UNIT_CHECK(pump_until(done_is, &one, 5000));
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE);
	UNIT_CHECK(client_send(&c) == 0);
	UNIT_CHECK(pump_until(started_is, &two, 5000));
	open_gate(1);
	UNIT_CHECK(pump_until(client_done, &c, 5000));
	UNIT_CHECKF(strstr(c.buf, "snapshot 2\n") != NULL, "%s", c.buf);
out:
	client_close(&c);
}

/* A's request is being rendered (held on the gate), B's waits for the next. */
static int
one_rendering_one_waiting(struct client *a, struct client *b)
{
	int one = 1;

	if (client_send(a) < 0 || !pump_until(started_is, &one, 5000) || client_send(b) < 0)
		return -1;
	for (int i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_ONCE);
	return 0;
}

/* The evhttp freed under a waiting request (libevent frees it with its connection):
 * the render ends, nothing is answered, nothing is touched after it is freed. */
static void
case_evhttp_freed_while_rendering(void)
{
	struct client a = { .fd = -1 }, b = { .fd = -1 };
	int one = 1;

	reset_counts();
	UNIT_CHECK(one_rendering_one_waiting(&a, &b) == 0);
	evhttp_free(http);
	http = NULL;
	/* Both connections are closed, unanswered. */
	UNIT_CHECK(pump_until(client_done, &a, 5000) && pump_until(client_done, &b, 5000));
	UNIT_CHECKF(a.len == 0 && b.len == 0, "answered: %s / %s", a.buf, b.buf);
	open_gate(1);
	UNIT_CHECK(pump_until(done_is, &one, 5000));
	for (int i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE);
	UNIT_CHECKF(takes == 1, "%d snapshots: a dropped waiter started a render", takes);
	UNIT_CHECK(serve() == 0);
out:
	client_close(&a);
	client_close(&b);
}

/* The exit while a render is under way and requests wait: it is joined, they are
 * dropped, the evhttp freed after them frees their requests. */
static void
case_shutdown_while_rendering(void)
{
	struct client a = { .fd = -1 }, b = { .fd = -1 };

	reset_counts();
	UNIT_CHECK(one_rendering_one_waiting(&a, &b) == 0);
	/* The thread may finish before the shutdown joins it: either way. */
	open_gate(1);
	admin_job_shutdown();
	evhttp_free(http);
	http = NULL;
	UNIT_CHECK(atomic_load(&renders_done) == 1);
	UNIT_CHECK(client_done(&a) || pump_until(client_done, &a, 5000));
	UNIT_CHECKF(a.len == 0, "answered: %s", a.buf);
out:
	client_close(&a);
	client_close(&b);
}

int
main(int argc, char **argv)
{
	struct timeval tick = { 0, 5000 };
	struct event *tick_ev;

	signal(SIGPIPE, SIG_IGN);
	if (pipe(gate) < 0 || (base = event_base_new()) == NULL || serve() < 0 ||
	    admin_job_init(base) < 0) {
		printf("not ok - setup: %s\n", strerror(errno));
		return 1;
	}
	/* The loop turns at least every 5 ms, so pump_until sees its deadline. */
	tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick_ev, &tick);
	unit_run("answers_off_the_loop", case_answers_off_the_loop);
	unit_run("later_requests_share_the_next", case_later_requests_share_the_next);
	unit_run("flood_is_bounded", case_flood_is_bounded);
	unit_run("client_gone", case_client_gone);
	unit_run("evhttp_freed_while_rendering", case_evhttp_freed_while_rendering);
	unit_run("shutdown_while_rendering", case_shutdown_while_rendering);
	if (http != NULL)
		evhttp_free(http);
	event_free(tick_ev);
	event_base_free(base);
	return unit_exit();
}
