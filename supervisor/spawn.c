/*
 * spawn.c - the start of one worker (child_spawn, then exec): its channels (the
 * control socketpair with the config record queued first, the status pipe, the
 * scoreboard memfd), its cgroup, and the child's setup before exec, which is
 * child.c's (shared with the library check), so a worker and a check cannot drift
 * apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "../common/clock.h"
#include "../common/log.h"
#include "cgroup.h"
#include "child.h"
#include "evq.h"
#include "spawn.h"

static struct event_base *spawn_base;
static const char *spawn_worker_path;

void
spawn_init(struct event_base *base, const char *worker_path)
{
	spawn_base = base;
	spawn_worker_path = worker_path;
}

static void ctl_cb(evutil_socket_t fd, short what, void *arg);
static void ctl_cb(evutil_socket_t fd, short what, void *arg);
static void status_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Everything W's worker is told, as the one typed record of wire.h. Returns 0, or
 * -1 (ENAMETOOLONG) when a string does not fit its field.
 */
static int
build_config(struct worker *w, struct wire_config *cfg)
{
	const struct fn_conf *fc = w->w_conf;

	if (child_config(fc, w->w_id, cfg) < 0)
		return -1;
	/* Jitter (up to +10%) so a pool's workers do not all recycle at once. */
	if (cfg->max_requests != 0)
		cfg->max_requests += (uint32_t)random() % (cfg->max_requests / 10 + 1);
	w->w_max_requests = cfg->max_requests;
	if (w->w_cgroup[0] &&
	    cg_worker_procs(fc->name, w->w_id, cfg->cgroup_procs, sizeof(cfg->cgroup_procs)) < 0)
		return -1;
	return 0;
}

int
spawn_worker(struct worker *w)
{
	const struct fn_conf *fc = w->w_conf;
	char *argv[] = { "edgevisor-worker", NULL };
	struct wire_config cfg;
	struct child_spec cs;
	int sp[2] = { -1, -1 }, pp[2] = { -1, -1 }, bfd = -1, sndbuf = 1 << 20;
	pid_t pid;
	int saved;

	w->w_cgroup[0] = '\0';
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		goto fail;
	if (pipe2(pp, O_CLOEXEC) < 0)
		goto fail;
	w->w_board_slots = fc->limits.max_pending_tasks;
	bfd = board_create(w->w_board_slots, &w->w_board);
	if (bfd < 0)
		goto fail;
	/* A deep queue of hand-offs must not block on a busy worker. */
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (fcntl(sp[0], F_SETFL, O_NONBLOCK) < 0 || fcntl(pp[0], F_SETFL, O_NONBLOCK) < 0)
		goto fail;
	if (cg_enabled() &&
	    cg_worker_create(fc, w->w_id, w->w_cgroup, sizeof(w->w_cgroup)) < 0) {
		log_warn("cgroup_worker_failed", "fn=%s wid=%u err=%s", fc->name, w->w_id,
		    log_qv(strerror(errno)));
		w->w_cgroup[0] = '\0';
	}
	/* Queued before the child starts: the config is the first message the worker reads. */
	if (build_config(w, &cfg) < 0 || wire_send_config(sp[0], &cfg) < 0)
		goto fail;
	cs = (struct child_spec){
		.fc = fc, .parent = getpid(), .fds = { sp[1], pp[1], bfd }, .out = -1,
		.attach = w->w_cgroup[0] ? cg_worker_attach : NULL, .cg_id = w->w_id,
		.pdeathsig = SIGTERM, .status_errors = true,
		.path = spawn_worker_path, .argv = argv,
	};
	pid = child_spawn(&cs);
	if (pid < 0)
		goto fail;

	/* Parent: the child's ends and the board fd are its own now. */
	close(sp[1]);
	close(pp[1]);
	close(bfd);
	w->w_pid = pid;
	w->w_ctl = sp[0];
	w->w_status = pp[0];
	w->w_spawned_ms = clock_ms();
	w->w_status_ev = event_new(spawn_base, w->w_status, EV_READ | EV_PERSIST, status_cb, w);
	if (w->w_status_ev == NULL || event_add(w->w_status_ev, NULL) < 0)
		log_error("status_event_failed", "fn=%s wid=%u pid=%d", fc->name, w->w_id, (int)pid);
	/* Moves (routed connections given back) are read by the orchestrator's router. */
	w->w_ctl_ev = event_new(spawn_base, w->w_ctl, EV_READ | EV_PERSIST, ctl_cb, w);
	if (w->w_ctl_ev == NULL || event_add(w->w_ctl_ev, NULL) < 0)
		log_error("ctl_event_failed", "fn=%s wid=%u pid=%d", fc->name, w->w_id, (int)pid);
	log_info("worker_state", "fn=%s wid=%u gen=%u pid=%d from=none to=starting reason=spawned pending=0",
	    fc->name, w->w_id, w->w_gen, (int)pid);
	worker_started(w);
	return 0;
fail:
	saved = errno;
	for (int i = 0; i < 2; i++) {
		if (sp[i] >= 0)
			close(sp[i]);
		if (pp[i] >= 0)
			close(pp[i]);
	}
	if (bfd >= 0)
		close(bfd);
	board_unmap(w->w_board, w->w_board_slots);
	w->w_board = NULL;
	if (w->w_cgroup[0])
		cg_worker_remove(fc->name, w->w_id);
	errno = saved;
	return -1;
}

/* The worker's end of the control socket is readable: it gives connections back (or
 * is gone). Persistent: the router reads them in this same loop turn (evq), so it
 * fires again only for more; re-arming a one-shot event cost two epoll_ctl per turn
 * on the path of every moved connection. The router deletes it at EOF. */
static void
ctl_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	evq_push(EVQ_WORKER_MOVED, w->w_pool, w, 0);
}

/* Status records from a worker; EOF means it is gone (SIGCHLD does the rest). */
static void
status_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wire_status st;
	int r;

	for (;;) {
		r = wire_recv_status(fd, &st);
		if (r == 1) {
			worker_on_status(w, &st);
			continue;
		}
		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			if (r < 0)
				log_warn("status_bad", "fn=%s wid=%u pid=%d err=%s",
				    w->w_conf->name, w->w_id, (int)w->w_pid, log_qv(strerror(errno)));
			event_del(w->w_status_ev);
		}
		return;
	}
}
