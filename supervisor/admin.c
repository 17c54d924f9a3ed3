/*
 * admin.c - the operator's endpoint: GET /status (JSON), /metrics (Prometheus
 * text), /health, and POST /reload, /drain/<fn>, /stop; plus the read-only metrics
 * listener (/metrics and /health only). Who may call what is admin_auth.c's. evhttp
 * serves both on the supervisor's own loop and owns their listening sockets.
 * /status and /metrics read a file or two per worker and build a large page: on
 * the loop they only take a snapshot (admin_snap.c, memory only); the page is
 * rendered on a thread (admin_render.c, admin_job.c) and sent when it is done. The
 * other handlers read only memory and answer at once, so the admin never blocks
 * the loop that hands connections to workers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "../common/net.h"
#include "admin.h"
#include "admin_auth.h"
#include "admin_job.h"
#include "admin_render.h"
#include "admin_reply.h"
#include "admin_snap.h"
#include "reload.h"
#include "state.h"

/* Admin requests are tiny; anything bigger is not ours. */
#define ADMIN_MAX_HEADERS 8192
#define ADMIN_MAX_BODY    4096
/* A client that sends nothing for this long is dropped. */
#define ADMIN_TIMEOUT_S   10
/*
 * Room for a burst of clients while the loop is busy for a moment (health checks of
 * several load balancers, a scraper, a script polling /status): at 64, a burst of
 * 160 short clients on a 2-core host sometimes found the backlog full, and a unix
 * socket's non-blocking connect then fails with EAGAIN at once. The kernel caps it
 * at net.core.somaxconn.
 */
#define ADMIN_BACKLOG     1024

static struct evhttp *admin_http;
static struct evhttp_bound_socket *admin_bound;
static char admin_addr[512];
/* The socket file we created, and its identity, so we only ever remove our own. */
static char admin_path[NET_UNIX_PATH_MAX];
static struct net_unix_id admin_id;
/* The read-only listener ("metrics"): its own evhttp, so no route leaks across. */
static struct evhttp *metrics_http;
static struct evhttp_bound_socket *metrics_bound;
static char metrics_addr[512];
/* request_cb's argument: which listener a request came in on. */
static const char on_admin = 'a', on_metrics = 'm';

static void request_cb(struct evhttp_request *req, void *arg);

/* What /health says: starting (no generation ready yet), serving, draining (a host
 * drain's window: still serving, the balancer should move away), stopping. */
static const char *
health_state(void)
{
	if (sv.stopping)
		return "stopping";
	if (sv.host_draining)
		return "draining";
	return sv.ready_gen == 0 ? "starting" : "serving";
}

/* ---- GET /status, GET /metrics: rendered off the loop (admin_job.h) ------------- */

static void *
take_snapshot(void *arg)
{
	return admin_snap_take(admin_addr, metrics_addr, health_state());
}

static void
drop_snapshot(void *snap)
{
	admin_snap_free(snap);
}

static int
render_status(void *snap, struct evbuffer *out)
{
	return admin_render_status(snap, out);
}

static int
render_metrics(void *snap, struct evbuffer *out)
{
	return admin_render_metrics(snap, out);
}

static const struct admin_page status_page = {
	.path = "/status", .content_type = "application/json",
	.take = take_snapshot, .render = render_status, .drop = drop_snapshot,
};
static const struct admin_page metrics_page = {
	.path = "/metrics", .content_type = "text/plain; version=0.0.4; charset=utf-8",
	.take = take_snapshot, .render = render_metrics, .drop = drop_snapshot,
};

/* ---- requests ------------------------------------------------------------------ */

/* What the endpoint asks the orchestrator for (admin_set_ops); NULL until set. */
static const struct admin_ops *ops;
static enum host_drain_result (*host_drain)(uint32_t ms, const char *via);

void
admin_set_ops(const struct admin_ops *o)
{
	ops = o;
}

static void
stop_cb(evutil_socket_t fd, short what, void *arg)
{
	ops->stop(false);
}

void
admin_set_host_drain(enum host_drain_result (*begin)(uint32_t ms, const char *via))
{
	host_drain = begin;
}

/* The stop reply is out: now stop (a client gone early is covered by the timer). */
static void
stop_sent_cb(struct evhttp_request *req, void *arg)
{
	ops->stop(false);
}

static json_t *
plan_names(const struct reload *r, enum rl_change c)
{
	json_t *a = json_array();

	for (size_t i = 0; a != NULL && i < r->nitems; i++)
		if (r->items[i].change == c)
			json_array_append_new(a, json_string(r->items[i].name));
	return a;
}

/* The reload answer, built while the plan exists. */
static void
plan_seen(const struct reload *plan, void *arg)
{
	json_t **out = arg;

	*out = json_pack("{s:s,s:I,s:o,s:o,s:o,s:o}",
	    "result", "reloading", "generation", (json_int_t)plan->gen,
	    "kept", plan_names(plan, RL_KEPT), "rolled", plan_names(plan, RL_ROLLED),
	    "added", plan_names(plan, RL_ADDED), "removed", plan_names(plan, RL_REMOVED));
}

static void
do_reload(struct evhttp_request *req)
{
	json_t *answer = NULL;
	char err[1024];
	int r;

	if (sv.stopping || sv.host_draining) {
		admin_reply_error(req, 409, "Conflict", sv.stopping ? "the supervisor is stopping" :
		    "the host is draining");
		return;
	}
	r = ops->reload(plan_seen, &answer, err, sizeof(err));
	if (r < 0) {
		admin_reply_error(req, 409, "Conflict", err);
		return;
	}
	if (r > 0) {
		admin_reply_json(req, 202, "Accepted", json_pack("{s:s,s:I}", "result", "queued",
		    "generation", (json_int_t)sv.gen + 1));
		return;
	}
	/* Begun: what it changes is known now; whether it lands, /status and the log say. */
	admin_reply_json(req, 202, "Accepted", answer);
}

static void
do_drain(struct evhttp_request *req, const char *enc)
{
	char *name = evhttp_uridecode(enc, 0, NULL);

	if (name == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (sv.stopping || sv.host_draining)
		admin_reply_error(req, 409, "Conflict", sv.stopping ? "the supervisor is stopping" :
		    "the host is draining");
	else if (*name == '\0' || ops->drain(name) < 0)
		admin_reply_error(req, 404, "Not Found", "no such function");
	else
		admin_reply_json(req, 202, "Accepted", json_pack("{s:s,s:s}", "result", "draining",
		    "function", name));
	free(name);
}

static void
do_stop(struct evhttp_request *req)
{
	struct timeval tv = { 1, 0 };

	evhttp_request_set_on_complete_cb(req, stop_sent_cb, NULL);
	event_base_once(sv.base, -1, EV_TIMEOUT, stop_cb, NULL, &tv);
	admin_reply_json(req, 202, "Accepted", json_pack("{s:s}", "result", "stopping"));
}

/*
 * The host drain: 202 at once, also when one is under way already (a preStop hook or
 * a deploy script may ask twice), saying the phase and the window still to run.
 */
static void
do_host_drain(struct evhttp_request *req)
{
	uint32_t ms = sv.conf != NULL ? sv.conf->health_drain_ms : 0;
	uint64_t now = clock_ms();
	enum host_drain_result r = host_drain(ms, "admin");

	admin_reply_json(req, 202, "Accepted", json_pack("{s:s,s:b,s:I,s:I,s:I}",
	    "result", sv.host_draining ? "draining" : "stopping",
	    "already", r != HD_BEGUN,
	    "health_drain_ms", (json_int_t)ms,
	    "health_drain_left_ms", (json_int_t)(sv.host_draining && sv.host_drain_end_ms > now ?
	        sv.host_drain_end_ms - now : 0),
	    "pid", (json_int_t)getpid()));
}

/* 200 while serving; 503 before the first generation is ready, during a host drain
 * and once stopping. */
static void
do_health(struct evhttp_request *req)
{
	const char *state = health_state();
	bool up = strcmp(state, "serving") == 0;

	admin_reply_json(req, up ? 200 : 503, up ? "OK" : "Service Unavailable",
	    json_pack("{s:s,s:I}", "status", state, "generation", (json_int_t)sv.ready_gen));
}

static void
request_cb(struct evhttp_request *req, void *arg)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
	bool post = cmd == EVHTTP_REQ_POST;
	const char *allow = NULL;

	if (path == NULL || *path == '\0')
		path = "/";
	/* Decided before routing, so a route added later is private by default. */
	if (!admin_auth_public(path)) {
		if (arg == &on_metrics) {
			admin_reply_error(req, 404, "Not Found", "no such endpoint on the metrics "
			    "listener (GET /metrics, GET /health)");
			return;
		}
		if (!admin_auth_privileged(req, path))
			return;
	}
	if (strcmp(path, "/health") == 0) {
		if (get) {
			do_health(req);
			return;
		}
		allow = "GET, HEAD";
	} else if (strcmp(path, "/status") == 0) {
		if (get) {
			admin_job_serve(&status_page, req);
			return;
		}
		allow = "GET, HEAD";
	} else if (strcmp(path, "/metrics") == 0) {
		if (get) {
			admin_job_serve(&metrics_page, req);
			return;
		}
		allow = "GET, HEAD";
	} else if (strcmp(path, "/reload") == 0 || strcmp(path, "/stop") == 0 ||
	    strcmp(path, "/drain") == 0 || strncmp(path, "/drain/", 7) == 0) {
		if (post) {
			log_info("admin_request", "method=POST path=%s via=%s", log_qv(path),
			    admin_path[0] ? "unix" : "tcp");
			if (path[1] == 'r')
				do_reload(req);
			else if (path[1] == 's')
				do_stop(req);
			else if (path[6] == '\0')
				do_host_drain(req);
			else
				do_drain(req, path + 7);
			return;
		}
		allow = "POST";
	}
	if (allow != NULL) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
		admin_reply_error(req, 405, "Method Not Allowed", "method not allowed");
		return;
	}
	admin_reply_error(req, 404, "Not Found",
	    "no such endpoint (GET /status, GET /metrics, GET /health, POST /reload, "
	    "POST /drain, POST /drain/NAME, POST /stop)");
}

/* ---- listening ------------------------------------------------------------------ */

/* mkdir -p DIR with mode 0755 for what it creates. */
static int
make_dirs(const char *dir)
{
	char buf[sizeof(admin_path)];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

/* Creates the directory the socket file PATH goes in, if it is missing. */
static int
make_parent(const char *path, char *err, size_t errlen)
{
	char dir[sizeof(admin_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return 0;
	*slash = '\0';
	if (make_dirs(dir) < 0) {
		snprintf(err, errlen, "unix:%s: cannot create %s: %s", path, dir, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Listens on A: a unix socket born 0600 (its file's identity goes to *ID, so that
 * we only ever remove our own), or a loopback port - the endpoint has no
 * authentication. Returns the fd, or -1 with the reason in ERR.
 */
static int
admin_listen(const char *addr, const struct net_addr *a, struct net_unix_id *id,
    char *err, size_t errlen)
{
	static const struct net_listen_opts opts = {
		.backlog = ADMIN_BACKLOG, .loopback_only = true, .unix_mode = 0600,
	};
	char msg[256];
	int fd;

	if (a->kind == NET_UNIX && make_parent(a->path, err, errlen) < 0)
		return -1;
	if ((fd = net_listen(a, &opts, msg, sizeof(msg))) < 0) {
		snprintf(err, errlen, "%s: %s", addr, msg);
		return -1;
	}
	if (a->kind == NET_UNIX && net_unix_id(a->path, id) < 0) {
		snprintf(err, errlen, "%s: %s", addr, strerror(errno));
		close(fd);
		unlink(a->path);
		return -1;
	}
	return fd;
}

/*
 * An endpoint that is replaced or closed stops listening at once, but its evhttp is
 * freed a moment later: the request that replaced it (a POST /reload that moves the
 * admin endpoint) is still being answered on it.
 */
#define RETIRED_MAX 8
static struct evhttp *retired[RETIRED_MAX];
static struct event *retired_ev;

static void
free_retired(void)
{
	for (int i = 0; i < RETIRED_MAX; i++) {
		if (retired[i] != NULL)
			evhttp_free(retired[i]);
		retired[i] = NULL;
	}
}

static void
retired_cb(evutil_socket_t fd, short what, void *arg)
{
	free_retired();
}

static void
retire_http(struct evhttp *http, struct evhttp_bound_socket *bs)
{
	static const struct timeval later = { 1, 0 };

	if (bs != NULL)
		evhttp_del_accept_socket(http, bs);
	if (retired_ev == NULL)
		retired_ev = evtimer_new(sv.base, retired_cb, NULL);
	for (int i = 0; i < RETIRED_MAX; i++) {
		if (retired[i] == NULL) {
			retired[i] = http;
			if (retired_ev != NULL)
				evtimer_add(retired_ev, &later);
			return;
		}
	}
	/* Eight endpoints replaced within a second: the oldest is long answered. */
	evhttp_free(retired[0]);
	memmove(retired, retired + 1, (RETIRED_MAX - 1) * sizeof(retired[0]));
	retired[RETIRED_MAX - 1] = http;
}

/* A new evhttp for the admin or the metrics listener (ON: on_admin, on_metrics). */
static struct evhttp *
new_http(const char *on, char *err, size_t errlen)
{
	struct evhttp *http = evhttp_new(sv.base);

	if (http == NULL) {
		snprintf(err, errlen, "evhttp_new failed");
		return NULL;
	}
	evhttp_set_gencb(http, request_cb, (void *)on);
	evhttp_set_timeout(http, ADMIN_TIMEOUT_S);
	evhttp_set_max_headers_size(http, ADMIN_MAX_HEADERS);
	evhttp_set_max_body_size(http, ADMIN_MAX_BODY);
	return http;
}

/* Opens the admin endpoint at ADDR (see admin_start). */
static int
admin_open(const char *addr, char *err, size_t errlen)
{
	struct evhttp *http, *old_http = admin_http;
	struct evhttp_bound_socket *bs;
	struct net_addr a;
	struct net_unix_id id = { 0 };
	const char *why;
	int fd;

	if (old_http != NULL && strcmp(addr, admin_addr) == 0)
		return 0;
	if (net_parse(addr, &a, &why) < 0) {
		snprintf(err, errlen, "%s: %s", addr, why);
		return -1;
	}
	if ((http = new_http(&on_admin, err, errlen)) == NULL)
		return -1;
	if ((fd = admin_listen(addr, &a, &id, err, errlen)) < 0)
		goto fail;
	if ((bs = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		snprintf(err, errlen, "%s: cannot serve: %s", addr, strerror(errno));
		close(fd);
		if (a.kind == NET_UNIX)
			unlink(a.path);
		goto fail;
	}
	/* The old endpoint goes only once the new one listens. */
	if (old_http != NULL) {
		retire_http(old_http, admin_bound);
		if (admin_path[0])
			net_unix_release(admin_path, &admin_id);
	}
	admin_http = http;
	admin_bound = bs;
	snprintf(admin_path, sizeof(admin_path), "%s", a.kind == NET_UNIX ? a.path : "");
	admin_id = id;
	snprintf(admin_addr, sizeof(admin_addr), "%s", addr);
	log_info("admin_listen", "addr=%s", log_qv(addr));
	return 0;
fail:
	evhttp_free(http);
	return -1;
}

/* Opens the metrics listener at ADDR (any TCP address); the old one goes once it
 * listens. */
static int
metrics_open(const char *addr, char *err, size_t errlen)
{
	static const struct net_listen_opts opts = { .backlog = ADMIN_BACKLOG };
	struct evhttp_bound_socket *bs;
	struct evhttp *http;
	struct net_addr a;
	const char *why;
	char msg[256];
	int fd;

	if (metrics_http != NULL && strcmp(addr, metrics_addr) == 0)
		return 0;
	if (net_parse(addr, &a, &why) < 0) {
		snprintf(err, errlen, "%s: %s", addr, why);
		return -1;
	}
	if (a.kind == NET_UNIX) {
		snprintf(err, errlen, "%s: the metrics listener is TCP only", addr);
		return -1;
	}
	if ((http = new_http(&on_metrics, err, errlen)) == NULL)
		return -1;
	if ((fd = net_listen(&a, &opts, msg, sizeof(msg))) < 0) {
		snprintf(err, errlen, "%s: %s", addr, msg);
		evhttp_free(http);
		return -1;
	}
	if ((bs = evhttp_accept_socket_with_handle(http, fd)) == NULL) {
		snprintf(err, errlen, "%s: cannot serve: %s", addr, strerror(errno));
		close(fd);
		evhttp_free(http);
		return -1;
	}
	if (metrics_http != NULL)
		retire_http(metrics_http, metrics_bound);
	metrics_http = http;
	metrics_bound = bs;
	snprintf(metrics_addr, sizeof(metrics_addr), "%s", addr);
	log_info("metrics_listen", "addr=%s", log_qv(addr));
	return 0;
}

static void
metrics_close(void)
{
	if (metrics_http == NULL)
		return;
	retire_http(metrics_http, metrics_bound);
	metrics_http = NULL;
	metrics_bound = NULL;
	metrics_addr[0] = '\0';
}

static void admin_close(void);

int
admin_start(const struct sv_conf *conf, char *err, size_t errlen)
{
	/* The token first: a listener that opens below must never serve without it. */
	admin_auth_set_token(conf->admin_token);
	if (admin_job_init(sv.base) < 0) {
		snprintf(err, errlen, "admin: cannot set up the page renderer: %s", strerror(errno));
		return -1;
	}
	if (conf->admin == NULL)
		admin_close();
	else if (admin_open(conf->admin, err, errlen) < 0)
		return -1;
	if (conf->metrics == NULL)
		metrics_close();
	else if (metrics_open(conf->metrics, err, errlen) < 0)
		return -1;
	return 0;
}

void
admin_stop(void)
{
	/* First: the render threads end before what they read (durable_watch.c, the
	 * cgroup state) is shut down, and no waiter outlives its evhttp. */
	admin_job_shutdown();
	admin_close();
	metrics_close();
	admin_auth_set_token(NULL);
	/* At exit no request is in flight: free them now. */
	free_retired();
	if (retired_ev != NULL)
		event_free(retired_ev);
	retired_ev = NULL;
}

static void
admin_close(void)
{
	if (admin_http == NULL)
		return;
	retire_http(admin_http, admin_bound);
	admin_http = NULL;
	admin_bound = NULL;
	/* Only our own socket: a newer supervisor may have taken the path. */
	if (admin_path[0])
		net_unix_release(admin_path, &admin_id);
	admin_path[0] = '\0';
	admin_addr[0] = '\0';
}
