/*
 * admin_render.h - a snapshot (admin_snap.h) rendered as /status JSON or /metrics
 * text (admin_render.c). Thread-safe and without globals: meant for admin_job.c's
 * thread, off the supervisor's loop. It reads /proc/PID/stat and the workers'
 * cgroup files (limits.c's proc_usage, cgroup.c's cg_worker_stats: stack buffers and
 * the cgroup state fixed at cg_init) and durable_watch.c's counts (under its mutex).
 */
#ifndef SV_ADMIN_RENDER_H
#define SV_ADMIN_RENDER_H

struct admin_snap;
struct evbuffer;

/* GET /status: SNAP's workers measured, the JSON document (and a newline) added to
 * OUT. 0, or -1 when out of memory. */
int admin_render_status(struct admin_snap *snap, struct evbuffer *out);
/* GET /metrics: the same in the Prometheus text exposition format 0.0.4. */
int admin_render_metrics(struct admin_snap *snap, struct evbuffer *out);

#endif
