/*
 * config.h - supervisor.conf: loaded with jansson, validated whole before use.
 *
 * Every error names FILE:LINE:COL and the key path (functions[1].limits.memory_mb).
 * A loaded config is immutable; a reload builds a new one and swaps it.
 */
#ifndef SV_CONFIG_H
#define SV_CONFIG_H

#include "../common/name_index.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "../common/list.h"
#include "../common/route.h"
#include "seccomp_profile.h"
#include <sys/types.h>

/* The longest health_drain_ms: a load balancer moves away within seconds. */
#define HEALTH_DRAIN_MAX_MS 300000

enum fn_policy { POLICY_PER_WORKER = 0, POLICY_PER_REQUEST, POLICY_ONESHOT };
enum cg_mode { CG_MODE_AUTO = 0, CG_MODE_REQUIRED, CG_MODE_OFF };

/* Every limit; 0 means "none" where the key's doc says so. */
struct fn_limits {
	uint32_t memory_mb;           /* cgroup memory cap per worker, 0 = none */
	uint32_t function_memory_mb;  /* cgroup cap for the whole function, 0 = none */
	uint32_t cpu_percent;         /* per worker, % of one core, 0 = none */
	uint32_t function_cpu_percent;/* whole function, 0 = none */
	uint32_t cpu_time_ms;         /* CPU budget per worker, 0 = none */
	uint32_t wall_clock_ms;       /* lifetime per worker, 0 = none */
	uint32_t request_timeout_ms;  /* 504 after it */
	uint32_t idle_timeout_ms;     /* keep-alive idle close */
	uint32_t idle_worker_ms;      /* retire an idle worker (early_drop), 0 = never */
	uint32_t max_requests;        /* recycle after N requests, 0 = never */
	uint32_t drain_timeout_ms;    /* draining -> terminating after it */
	uint32_t beforeunload_grace_ms; /* SIGTERM -> SIGKILL */
	uint32_t max_header_bytes;
	uint32_t max_body_bytes;
	uint32_t soft_limit_percent;  /* retire at this % of cpu/memory/wall clock */
	uint32_t max_pending_tasks;   /* per worker */
	uint32_t task_threads;        /* blocking-task pool size per worker */
	uint32_t nofile;              /* worker RLIMIT_NOFILE */
	uint32_t max_connections;     /* per worker; 503 beyond it */
	uint32_t max_pids;            /* cgroup pids cap per worker (tasks), 0 = none */
	uint32_t function_max_pids;   /* pids cap for the whole function, 0 = none */
	uint32_t fetch_max_concurrent;  /* edge_fetch transfers at once per worker */
	uint32_t fetch_max_queued;      /* edge_fetch calls waiting for one of those */
	uint32_t fetch_max_response_bytes; /* a fetch's response body; "too_large" beyond */
	uint32_t ws_max_message_bytes;  /* an incoming WebSocket message; close 1009 beyond */
	uint32_t ws_max_buffer_bytes;   /* outgoing WebSocket bytes queued per connection */
};

/* "durable": a function's durable tasks (worker/durable.c); backend 0 = none. */
enum fn_durable_backend { DURABLE_OFF = 0, DURABLE_LOCAL, DURABLE_POSTGRESQL };
struct fn_durable {
	uint32_t backend;             /* enum fn_durable_backend */
	uint64_t journal_max_bytes;   /* cap of the function's journal, 0 = none */
	uint32_t lease_ms;
	uint32_t retry_base_ms;
	uint32_t retry_max_ms;
	uint32_t concurrency;         /* attempts at once per worker */
	uint32_t idempotency_window_ms;
	char *dir;                    /* local: <state_directory>/durable/<name>, 0700, the uid's */
	char *dsn_file;               /* postgresql: the file "dsn_file" names */
	char *dsn;                    /* postgresql: its connection string (a secret: dsn_free) */
};

struct fn_conf {
	char *name;
	char *library;                /* path to the .so */
	char **listen;                /* "host:port", "[v6]:port", "unix:/path" */
	size_t nlisten;
	enum fn_policy policy;
	uint32_t workers;             /* "workers" (= max_workers); spares for per_request/oneshot */
	uint32_t min_workers;         /* kept ready whatever the load; 0 = scale to zero */
	uint32_t max_workers;         /* never more live (starting or ready) at once */
	uint32_t scale_target;        /* load (connections + tasks) per worker above which it grows */
	uint32_t scale_idle_ms;       /* a worker above min_workers idle this long is retired */
	uint32_t cold_wait_ms;        /* a connection waits this long for a starting worker */
	/* Admission (supervisor-side only, so not in config_fn_same: a change keeps the
	 * workers): connections in flight across its workers, 0 = no cap; how long and
	 * how many may wait above it. */
	uint32_t max_concurrency;
#define CONF_MAX_QUEUED 1024          /* = POOL_PENDING_MAX, the held array's bound */
	uint32_t queue_timeout_ms;
	uint32_t max_queued;
	char *user;                   /* NULL = do not change */
	char *group;                  /* NULL = user's primary group */
	uid_t uid;                    /* resolved at load; (uid_t)-1: unchanged (no user,
	                               * supervisor not root) */
	gid_t gid;
	bool uid_dynamic;             /* no user, supervisor root: from dynamic_users */
	bool uid_recorded;            /* that uid is in the state file already */
	struct fn_limits limits;
	/* The library file when the config was loaded (stat), 0s when it was missing. */
	uint64_t lib_dev, lib_ino, lib_size, lib_mtime_ns;
	uint32_t lib_mode;
	struct fn_seccomp seccomp;    /* "seccomp", resolved (default profile if absent) */
	struct fn_durable durable;    /* "durable" */
	TAILQ_ENTRY(fn_conf) entry;
};
TAILQ_HEAD(fn_conf_list, fn_conf);

/* One shared listener ("listeners"): requests go to functions by its routes. */
struct sv_listener {
	char *listen;                 /* its address, as for a function's "listen" */
	uint32_t head_timeout_ms;     /* the first request's head arrives whole within: 408 */
	uint32_t max_header_bytes;    /* a longer head: 431 (before any function is known) */
	struct route_table routes;
};

struct sv_conf {
	char *path;                   /* the file it came from */
	char *admin;                  /* "unix:/path" or "host:port"; NULL = none */
	char *admin_token_file;       /* NULL = none: TCP admin serves only read-only routes */
	char *admin_token;            /* its token (TOKEN_MAX + 1 bytes, NUL-padded), or NULL */
	char *metrics;                /* "host:port" of the read-only listener; NULL = none */
	char *cgroup_parent;          /* below the supervisor's own cgroup */
	enum cg_mode cgroups;
	char *log_level;              /* "info" ... */
	char *log_file;               /* NULL = stderr */
	uint32_t check_timeout_ms;    /* library_check_timeout_ms: a library check's time */
	/* A host drain (host_drain.h): /health answers 503 "draining" this long while
	 * traffic is still served, then the workers drain. 0 = drain at once. */
	uint32_t health_drain_ms;
	bool sigterm_health_drain;    /* SIGTERM begins with that window (default true) */
	char *state_directory;        /* the dynamic-users record lives here */
	uint32_t dyn_first, dyn_last; /* "dynamic_users" range (identity.h) */
	size_t nfunctions;
	struct fn_conf_list functions;
	struct name_index by_name;    /* name -> struct fn_conf (config_find) */
	size_t nlisteners;
	struct sv_listener *listeners; /* "listeners", in file order */
};

/*
 * Loads and validates PATH. Returns the config, or NULL with a one-line message in
 * ERR ("FILE:LINE:COL: KEYPATH: what is wrong").
 */
struct sv_conf *config_load(const char *path, char *err, size_t errlen);
void config_free(struct sv_conf *conf);
const char *config_policy_name(enum fn_policy p);
struct fn_conf *config_find(struct sv_conf *conf, const char *name);
/* A and B give a worker the same configuration and library file (listen aside). */
bool config_fn_same(const struct fn_conf *a, const struct fn_conf *b);

#endif
