/*
 * config.c - loading supervisor.conf with jansson and validating all of it before use.
 *
 * Validation stops at the first error and reports it as FILE:LINE:COL: KEYPATH: what.
 * jansson keeps no positions for values, so on error the key path is walked again
 * in the file text (locate()); jansson measures every token, we only skip blanks
 * and punctuation between them.
 */
#include "config.h"
#include "../common/token.h"
#include "cgroup_path.h"
#include "dsn_file.h"
#include "identity.h"
#include "../common/net.h"
#include "../common/paths.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAXDEPTH 8
#define CONF_NAME_MAX 32
#define CONF_FILE_MAX (4 << 20)	/* an included file (a function or a few) */

/* Where in the text an error points. */
enum conf_loc {
	LOC_VALUE,   /* the value at the key path */
	LOC_KEY,     /* the key string of the last path element */
	LOC_PARENT,  /* the object holding the (missing) last element */
};

/* One listen address seen so far, canonical form, for the duplicate check. */
struct conf_addr {
	char *canon;
	char *where;                 /* key path of its first use */
	SLIST_ENTRY(conf_addr) entry;
};
SLIST_HEAD(conf_addr_list, conf_addr);

struct loader {
	const char *path;
	char *err;
	size_t errlen;
	/* The key path of what is being checked: a key, or an index when key is NULL. */
	const char *key[CONF_MAXDEPTH];
	size_t idx[CONF_MAXDEPTH];
	int depth;
	bool included;               /* path is an "include" file, not the main one */
	bool routed;                 /* the config has "listeners": "listen" is optional */
	struct conf_addr_list addrs;
	struct name_index addr_ix;   /* canon -> struct conf_addr, for the duplicate check */
};

static const char *const policy_names[] = {
	[POLICY_PER_WORKER] = "per_worker",
	[POLICY_PER_REQUEST] = "per_request",
	[POLICY_ONESHOT] = "oneshot",
};
static const char *const cg_mode_names[] = {
	[CG_MODE_AUTO] = "auto",
	[CG_MODE_REQUIRED] = "required",
	[CG_MODE_OFF] = "off",
};
static const char *const log_level_names[] = { "error", "warn", "info", "debug" };

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const top_keys[] = {
	"admin", "admin_token_file", "metrics", "cgroup_parent", "cgroups", "log_level",
	"log_file", "library_check_timeout_ms", "functions", "include", "dynamic_users",
	"state_directory", "listeners", "health_drain_ms", "sigterm_health_drain", NULL
};
static const char *const listener_keys[] = {
	"listen", "routes", "head_timeout_ms", "max_header_bytes", NULL
};
static const char *const route_keys[] = {
	"host", "path", "function", "supabase", "strip_prefix", NULL
};
#define SUPABASE_PREFIX "/functions/v1"
static const char *const fn_keys[] = {
	"name", "library", "listen", "policy", "workers", "min_workers", "max_workers",
	"scale_target", "scale_idle_ms", "cold_wait_ms", "user", "group", "limits", "seccomp",
	"durable", "max_concurrency", "queue_timeout_ms", "max_queued", NULL
};

/* Every limit: key, field, range and default, so checking them is one loop. */
struct limit_def {
	const char *key;
	size_t off;
	uint32_t min, max, def;
};
#define LIM(k, lo, hi, d) { #k, offsetof(struct fn_limits, k), lo, hi, d }
static const struct limit_def limit_defs[] = {
	LIM(memory_mb, 0, 1048576, 0),
	LIM(function_memory_mb, 0, 1048576, 0),
	LIM(cpu_percent, 0, 6400, 0),
	LIM(function_cpu_percent, 0, 6400, 0),
	LIM(cpu_time_ms, 0, 86400000, 0),
	LIM(wall_clock_ms, 0, 2147483647, 0),
	LIM(request_timeout_ms, 1, 3600000, 30000),
	LIM(idle_timeout_ms, 1, 3600000, 60000),
	LIM(idle_worker_ms, 0, 2147483647, 0),
	LIM(max_requests, 0, 2147483647, 0),
	LIM(drain_timeout_ms, 0, 3600000, 30000),
	LIM(beforeunload_grace_ms, 0, 600000, 2000),
	LIM(max_header_bytes, 1024, 1048576, 16384),
	LIM(max_body_bytes, 0, 1073741824, 1048576),
	LIM(soft_limit_percent, 1, 100, 90),
	LIM(max_pending_tasks, 1, 1048576, 16384),
	LIM(task_threads, 1, 256, 4),
	LIM(nofile, 64, 1048576, 4096),
	LIM(max_connections, 1, 1000000, 10000),
	LIM(max_pids, 0, 4194304, 0),
	LIM(function_max_pids, 0, 4194304, 0),
	LIM(fetch_max_concurrent, 1, 65536, 256),
	LIM(fetch_max_queued, 1, 1048576, 4096),
	LIM(fetch_max_response_bytes, 1, 1073741824, 1048576),
	LIM(ws_max_message_bytes, 1, 1073741824, 1048576),
	LIM(ws_max_buffer_bytes, 1024, 1073741824, 1048576),
};
#undef LIM

/* Skips blanks and the separators ',' and ':'; containers are entered explicitly. */
static size_t
skip_blank(const char *t, size_t len, size_t off)
{
	while (off < len && (isspace((unsigned char)t[off]) || t[off] == ',' ||
	    t[off] == ':'))
		off++;
	return off;
}

/* Lets jansson measure the token (or whole container) at OFF; returns its end. */
static int
skip_token(const char *t, size_t len, size_t *off, json_t **out)
{
	json_error_t e;
	json_t *v;

	v = json_loadb(t + *off, len - *off, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &e);
	if (v == NULL)
		return -1;
	*off += (size_t)e.position;
	if (out != NULL)
		*out = v;
	else
		json_decref(v);
	return 0;
}

/* Byte offset of the value (or key) at the first DEPTH path elements, or -1. */
static long
locate(const struct loader *ld, const char *t, size_t len, int depth, int want_key)
{
	size_t off = skip_blank(t, len, 0), at;
	json_t *k;
	int match;

	for (int d = 0; d < depth; d++) {
		if (ld->key[d] != NULL) {
			if (off >= len || t[off] != '{')
				return -1;
			off++;
			for (;;) {
				off = skip_blank(t, len, off);
				if (off >= len || t[off] == '}')
					return -1;
				at = off;
				if (skip_token(t, len, &off, &k) < 0)
					return -1;
				match = json_is_string(k) &&
				    strcmp(json_string_value(k), ld->key[d]) == 0;
				json_decref(k);
				off = skip_blank(t, len, off);
				if (match) {
					if (want_key && d == depth - 1)
						return (long)at;
					break;
				}
				if (skip_token(t, len, &off, NULL) < 0)
					return -1;
			}
		} else {
			if (off >= len || t[off] != '[')
				return -1;
			off++;
			for (size_t i = 0;; i++) {
				off = skip_blank(t, len, off);
				if (off >= len || t[off] == ']')
					return -1;
				if (i == ld->idx[d])
					break;
				if (skip_token(t, len, &off, NULL) < 0)
					return -1;
			}
		}
	}
	return (long)off;
}

/* Finds LINE:COL (1-based, columns in characters as jansson counts them). */
static void
position(const struct loader *ld, enum conf_loc where, int *line, int *col)
{
	FILE *f;
	char *t = NULL;
	size_t len = 0;
	long off;

	*line = 1;
	*col = 1;
	if ((f = fopen(ld->path, "r")) == NULL)
		return;
	/* getdelim with NUL reads a text file whole. */
	if (getdelim(&t, &len, '\0', f) < 0) {
		fclose(f);
		free(t);
		return;
	}
	len = strlen(t);
	fclose(f);
	if (where == LOC_PARENT)
		off = locate(ld, t, len, ld->depth - 1, 0);
	else
		off = locate(ld, t, len, ld->depth, where == LOC_KEY);
	for (long i = 0; i < off; i++) {
		if (t[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)t[i] & 0xc0) != 0x80)
			(*col)++;
	}
	free(t);
}

/* Writes the key path, e.g. functions[1].limits.memory_mb. */
static void
keypath(const struct loader *ld, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int d = 0; d < ld->depth && n < len; d++) {
		if (ld->key[d] != NULL)
			n += snprintf(buf + n, len - n, "%s%s", d > 0 ? "." : "", ld->key[d]);
		else
			n += snprintf(buf + n, len - n, "[%zu]", ld->idx[d]);
	}
}

/*
 * Keys and values quoted in a message come from the file and may hold any escaped
 * byte: a control character (a "\n" in a key) would split the one log line.
 */
static void
one_line(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* Records the error at the current key path; always returns -1. */
static int __attribute__((format(printf, 3, 4)))
conf_error(struct loader *ld, enum conf_loc where, const char *fmt, ...)
{
	char kp[256], msg[256];
	int line, col;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	keypath(ld, kp, sizeof(kp));
	position(ld, where, &line, &col);
	snprintf(ld->err, ld->errlen, "%s:%d:%d: %s%s%s", ld->path, line, col, kp,
	    kp[0] != '\0' ? ": " : "", msg);
	one_line(ld->err);
	return -1;
}

static void
push_key(struct loader *ld, const char *key)
{
	ld->key[ld->depth] = key;
	ld->depth++;
}

static void
push_idx(struct loader *ld, size_t idx)
{
	ld->key[ld->depth] = NULL;
	ld->idx[ld->depth] = idx;
	ld->depth++;
}

static void
pop(struct loader *ld)
{
	ld->depth--;
}

/* Refuses any key of OBJ not in KNOWN (NULL-terminated). */
static int
check_keys(struct loader *ld, json_t *obj, const char *const *known)
{
	const char *key;
	json_t *v;
	int ok;

	json_object_foreach(obj, key, v) {
		ok = 0;
		for (const char *const *k = known; *k != NULL && !ok; k++)
			ok = strcmp(*k, key) == 0;
		if (!ok) {
			push_key(ld, key);
			return conf_error(ld, LOC_KEY, "unknown key");
		}
	}
	return 0;
}

/* The object at the current path: KEY of it must be present. */
static int
require(struct loader *ld, json_t *obj, const char *key)
{
	int rc = 0;

	if (json_object_get(obj, key) == NULL) {
		push_key(ld, key);
		rc = conf_error(ld, LOC_PARENT, "missing required key");
		pop(ld);
	}
	return rc;
}

/*
 * The getters below push the key they check and pop it again; on an error the path
 * is left where the error was, since the loader is then thrown away.
 *
 * Copies string KEY of OBJ into *OUT (absent: left as is). NONEMPTY refuses "".
 * Returns 0, or -1 with the error recorded.
 */
static int
get_string(struct loader *ld, json_t *obj, const char *key, int nonempty, char **out)
{
	json_t *v = json_object_get(obj, key);
	char *s;
	int rc = 0;

	if (v == NULL)
		return 0;
	push_key(ld, key);
	if (!json_is_string(v) || (nonempty && json_string_length(v) == 0)) {
		rc = conf_error(ld, LOC_VALUE, "must be a%s string",
		    nonempty ? " non-empty" : "");
		goto out;
	}
	if ((s = strdup(json_string_value(v))) == NULL) {
		rc = conf_error(ld, LOC_VALUE, "%s", strerror(errno));
		goto out;
	}
	free(*out);
	*out = s;
out:
	pop(ld);
	return rc;
}

/* Reads integer KEY of OBJ into *OUT if present, within MIN..MAX. */
static int
get_uint(struct loader *ld, json_t *obj, const char *key, uint32_t min, uint32_t max,
    uint32_t *out)
{
	json_t *v = json_object_get(obj, key);
	json_int_t n;
	int rc = 0;

	if (v == NULL)
		return 0;
	push_key(ld, key);
	n = json_is_integer(v) ? json_integer_value(v) : -1;
	if (!json_is_integer(v) || n < (json_int_t)min || n > (json_int_t)max)
		rc = conf_error(ld, LOC_VALUE, "must be an integer between %u and %u",
		    min, max);
	else
		*out = (uint32_t)n;
	pop(ld);
	return rc;
}

/* Reads boolean KEY of OBJ into *OUT if present. */
static int
get_bool(struct loader *ld, json_t *obj, const char *key, bool *out)
{
	json_t *v = json_object_get(obj, key);
	int rc = 0;

	if (v == NULL)
		return 0;
	push_key(ld, key);
	if (!json_is_boolean(v))
		rc = conf_error(ld, LOC_VALUE, "must be true or false");
	else
		*out = json_is_true(v);
	pop(ld);
	return rc;
}

/* Maps string KEY of OBJ to its index in NAMES (absent: *OUT unchanged). */
static int
get_enum(struct loader *ld, json_t *obj, const char *key, const char *const *names,
    size_t n, int *out)
{
	json_t *v = json_object_get(obj, key);
	char list[128];
	size_t len = 0;

	if (v == NULL)
		return 0;
	push_key(ld, key);
	for (size_t i = 0; json_is_string(v) && i < n; i++) {
		if (strcmp(json_string_value(v), names[i]) == 0) {
			*out = (int)i;
			pop(ld);
			return 0;
		}
	}
	list[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof(list); i++)
		len += snprintf(list + len, sizeof(list) - len, "%s\"%s\"",
		    i > 0 ? ", " : "", names[i]);
	conf_error(ld, LOC_VALUE, "must be one of %s", list);
	pop(ld);
	return -1;
}

/* Checks the string at the current path as an address, and that it is unused so far. */
static int
check_addr(struct loader *ld, const char *s, int remember)
{
	struct net_addr na;
	char where[4400];
	struct conf_addr *a;
	const char *why;

	if (net_parse(s, &na, &why) < 0)
		return conf_error(ld, LOC_VALUE, "%s", why);
	if ((a = name_index_find(&ld->addr_ix, na.canon)) != NULL)
		return conf_error(ld, LOC_VALUE, "address \"%s\" already used at %s",
		    s, a->where);
	if (!remember)
		return 0;
	{
		char kp[256];

		/* In an included file, the place names the file too. */
		keypath(ld, kp, sizeof(kp));
		snprintf(where, sizeof(where), "%s%s%s", ld->included ? ld->path : "",
		    ld->included ? ": " : "", kp);
	}
	if ((a = calloc(1, sizeof(*a))) == NULL || (a->canon = strdup(na.canon)) == NULL ||
	    (a->where = strdup(where)) == NULL) {
		if (a != NULL) {
			free(a->canon);
			free(a);
		}
		return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
	}
	SLIST_INSERT_HEAD(&ld->addrs, a, entry);
	if (name_index_add(&ld->addr_ix, a->canon, a, NULL) < 0)
		return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
	return 0;
}

/*
 * A pids cap counts threads too: below the worker's own loop and pool threads it
 * could not even start, so such a value is a config error, not a crash loop.
 */
static int
pids_floor(struct loader *ld, const char *key, uint32_t val, uint32_t threads)
{
	int rc = 0;

	if (val == 0 || val > threads)
		return 0;
	push_key(ld, key);
	rc = conf_error(ld, LOC_VALUE, "must be 0 or more than task_threads (%u): the "
	    "worker's own threads count against it", threads);
	pop(ld);
	return rc;
}

static int
load_limits(struct loader *ld, json_t *fn, struct fn_limits *lim)
{
	json_t *obj = json_object_get(fn, "limits");
	int rc = -1;

	for (size_t i = 0; i < NELEM(limit_defs); i++)
		*(uint32_t *)((char *)lim + limit_defs[i].off) = limit_defs[i].def;
	if (obj == NULL)
		return 0;
	push_key(ld, "limits");
	if (!json_is_object(obj)) {
		conf_error(ld, LOC_VALUE, "must be an object");
		goto out;
	}
	{
		const char *known[NELEM(limit_defs) + 1];

		for (size_t i = 0; i < NELEM(limit_defs); i++)
			known[i] = limit_defs[i].key;
		known[NELEM(limit_defs)] = NULL;
		if (check_keys(ld, obj, known) < 0)
			goto out;
	}
	for (size_t i = 0; i < NELEM(limit_defs); i++) {
		const struct limit_def *d = &limit_defs[i];

		if (get_uint(ld, obj, d->key, d->min, d->max,
		    (uint32_t *)((char *)lim + d->off)) < 0)
			goto out;
	}
	if (pids_floor(ld, "max_pids", lim->max_pids, lim->task_threads) < 0 ||
	    pids_floor(ld, "function_max_pids", lim->function_max_pids,
	    lim->task_threads) < 0)
		goto out;
	rc = 0;
out:
	pop(ld);
	return rc;
}

static int
load_listen(struct loader *ld, json_t *fn, struct fn_conf *fc)
{
	json_t *arr = json_object_get(fn, "listen"), *v;
	size_t i;
	int rc = -1;

	/* Served only through shared listeners' routes. */
	if (arr == NULL && ld->routed)
		return 0;
	push_key(ld, "listen");
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		conf_error(ld, LOC_VALUE, "must be a non-empty array of addresses");
		goto out;
	}
	if ((fc->listen = calloc(json_array_size(arr), sizeof(char *))) == NULL) {
		conf_error(ld, LOC_VALUE, "%s", strerror(errno));
		goto out;
	}
	json_array_foreach(arr, i, v) {
		push_idx(ld, i);
		if (!json_is_string(v)) {
			conf_error(ld, LOC_VALUE, "must be a string");
			pop(ld);
			goto out;
		}
		if (check_addr(ld, json_string_value(v), 1) < 0) {
			pop(ld);
			goto out;
		}
		if ((fc->listen[i] = strdup(json_string_value(v))) == NULL) {
			conf_error(ld, LOC_VALUE, "%s", strerror(errno));
			pop(ld);
			goto out;
		}
		fc->nlisten++;
		pop(ld);
	}
	rc = 0;
out:
	pop(ld);
	return rc;
}

/* A name listed in the other list of the same "seccomp" object. */
static bool
in_list(json_t *arr, const char *name)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return true;
	return false;
}

/* One list of a "seccomp" object: DENY adds to the default profile, else removes. */
static int
seccomp_list(struct loader *ld, json_t *obj, const char *key, bool deny,
    struct fn_seccomp *p)
{
	json_t *arr = json_object_get(obj, key), *v;
	const char *why;
	size_t i;

	if (arr == NULL)
		return 0;
	push_key(ld, key);
	if (!json_is_array(arr))
		return conf_error(ld, LOC_VALUE, "must be an array of system call names");
	json_array_foreach(arr, i, v) {
		push_idx(ld, i);
		if (!json_is_string(v))
			return conf_error(ld, LOC_VALUE, "must be a system call name");
		if (deny && in_list(json_object_get(obj, "allow"), json_string_value(v)))
			return conf_error(ld, LOC_VALUE, "\"%s\" is in both deny and allow",
			    json_string_value(v));
		if ((why = seccomp_profile_change(p, json_string_value(v), deny)) != NULL)
			return conf_error(ld, LOC_VALUE, "\"%s\": %s", json_string_value(v), why);
		pop(ld);
	}
	pop(ld);
	return 0;
}

/* "seccomp": "default" (also when absent), "off", or {"deny": [], "allow": []}. */
static int
load_seccomp(struct loader *ld, json_t *fn, struct fn_seccomp *p)
{
	static const char *const keys[] = { "deny", "allow", NULL };
	json_t *v = json_object_get(fn, "seccomp");

	seccomp_profile_default(p);
	if (v == NULL)
		return 0;
	push_key(ld, "seccomp");
	if (json_is_string(v) && strcmp(json_string_value(v), "default") == 0) {
		pop(ld);
		return 0;
	}
	if (json_is_string(v) && strcmp(json_string_value(v), "off") == 0) {
		seccomp_profile_off(p);
		pop(ld);
		return 0;
	}
	if (!json_is_object(v))
		return conf_error(ld, LOC_VALUE, "must be \"default\", \"off\" or "
		    "{\"deny\": [...], \"allow\": [...]}");
	if (check_keys(ld, v, keys) < 0 || seccomp_list(ld, v, "allow", false, p) < 0 ||
	    seccomp_list(ld, v, "deny", true, p) < 0)
		return -1;
	pop(ld);
	return 0;
}

/*
 * "durable": {"backend": "local", "journal_max_bytes": N, "lease_ms": N,
 * "retry_base_ms": N, "retry_max_ms": N, "concurrency": N,
 * "idempotency_window_ms": N}. Absent: the function has no durable tasks.
 * "backend": "postgresql" takes "dsn_file" (required, and only there): read now,
 * at start and at every reload, so a DSN that cannot be read fails the load.
 */
/* durable.dsn_file: required with backend postgresql, refused with any other. On
 * PostgreSQL the payload cap is off unless journal_max_bytes is given: it costs a
 * sum over the function's rows at every enqueue there. */
static int
load_dsn(struct loader *ld, json_t *v, struct fn_durable *d)
{
	char why[512];
	int rc = 0;

	if (d->backend != DURABLE_POSTGRESQL) {
		if (json_object_get(v, "dsn_file") == NULL)
			return 0;
		push_key(ld, "dsn_file");
		return conf_error(ld, LOC_KEY, "only with \"backend\": \"postgresql\"");
	}
	if (json_object_get(v, "journal_max_bytes") == NULL)
		d->journal_max_bytes = 0;
	if (json_object_get(v, "dsn_file") == NULL) {
		push_key(ld, "dsn_file");
		return conf_error(ld, LOC_PARENT, "missing required key (the file holding the "
		    "connection string)");
	}
	if (get_string(ld, v, "dsn_file", 1, &d->dsn_file) < 0)
		return -1;
	push_key(ld, "dsn_file");
	if (dsn_file_read(d->dsn_file, &d->dsn, why, sizeof(why)) < 0)
		rc = conf_error(ld, LOC_VALUE, "%s", why);
	pop(ld);
	return rc;
}

static int
load_durable(struct loader *ld, json_t *fn, struct fn_durable *d)
{
	static const char *const keys[] = { "backend", "journal_max_bytes", "lease_ms",
		"retry_base_ms", "retry_max_ms", "concurrency", "idempotency_window_ms",
		"dsn_file", NULL };
	static const char *const backends[] = { "local", "postgresql" };
	json_t *v = json_object_get(fn, "durable"), *mb;
	int backend = 0;

	memset(d, 0, sizeof(*d));
	if (v == NULL)
		return 0;
	push_key(ld, "durable");
	if (!json_is_object(v))
		return conf_error(ld, LOC_VALUE, "must be an object {\"backend\": \"local\", ...}");
	d->journal_max_bytes = 256ull << 20;
	d->lease_ms = 30000;
	d->retry_base_ms = 1000;
	d->retry_max_ms = 300000;
	d->concurrency = 16;
	d->idempotency_window_ms = 86400000;
	if (check_keys(ld, v, keys) < 0 ||
	    get_enum(ld, v, "backend", backends, NELEM(backends), &backend) < 0 ||
	    get_uint(ld, v, "lease_ms", 500, 3600000, &d->lease_ms) < 0 ||
	    get_uint(ld, v, "retry_base_ms", 1, 3600000, &d->retry_base_ms) < 0 ||
	    get_uint(ld, v, "retry_max_ms", 1, 86400000, &d->retry_max_ms) < 0 ||
	    get_uint(ld, v, "concurrency", 1, 4096, &d->concurrency) < 0 ||
	    get_uint(ld, v, "idempotency_window_ms", 0, 2147483647,
	    &d->idempotency_window_ms) < 0)
		return -1;
	if ((mb = json_object_get(v, "journal_max_bytes")) != NULL) {
		push_key(ld, "journal_max_bytes");
		/* At least a few pages: the schema itself takes some. */
		if (!json_is_integer(mb) || (json_integer_value(mb) != 0 &&
		    json_integer_value(mb) < 65536))
			return conf_error(ld, LOC_VALUE, "must be 0 (no cap) or an integer of at "
			    "least 65536");
		d->journal_max_bytes = (uint64_t)json_integer_value(mb);
		pop(ld);
	}
	if (d->retry_max_ms < d->retry_base_ms) {
		push_key(ld, "retry_max_ms");
		return conf_error(ld, LOC_VALUE, "must not be below retry_base_ms (%u)",
		    d->retry_base_ms);
	}
	if (json_object_get(v, "backend") == NULL) {
		push_key(ld, "backend");
		return conf_error(ld, LOC_PARENT, "missing required key");
	}
	d->backend = DURABLE_LOCAL + (uint32_t)backend;
	if (load_dsn(ld, v, d) < 0)
		return -1;
	pop(ld);
	return 0;
}

/*
 * What SQLite does to keep the journal (open, positioned reads and writes, flushes,
 * POSIX locks, the mapped -shm file): a function whose "seccomp" refuses one of them
 * would have a journal it cannot write, so that is a config error.
 */
static int
durable_seccomp(struct loader *ld, json_t *fn, const struct fn_conf *fc)
{
	static const char *const needs[] = { "openat", "pread64", "pwrite64", "fsync",
		"fdatasync", "fcntl", "ftruncate", "mmap", "munmap", "fstat", "newfstatat",
		"lseek", "unlink", "getrandom", NULL };
	/* PostgreSQL: libpq's socket to the server, and the store thread's wait on it */
	static const char *const pg_needs[] = { "socket", "connect", "poll", "sendto",
		"recvfrom", "getsockopt", "setsockopt", "getsockname", NULL };
	bool pg = fc->durable.backend == DURABLE_POSTGRESQL;
	const char *bad;

	if (fc->durable.backend == DURABLE_OFF ||
	    (bad = seccomp_profile_denies_any(&fc->seccomp, pg ? pg_needs : needs)) == NULL)
		return 0;
	push_key(ld, "seccomp");
	return conf_error(ld, json_object_get(fn, "seccomp") != NULL ? LOC_VALUE : LOC_PARENT,
	    "denies %s, which %s needs", bad,
	    pg ? "the PostgreSQL client of \"durable\"" : "the durable journal (\"durable\")");
}

/* The local journal's directory, now that state_directory is known. */
static int
durable_dirs(struct loader *ld, struct sv_conf *conf)
{
	struct fn_conf *fc;

	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (fc->durable.backend == DURABLE_LOCAL &&
		    asprintf(&fc->durable.dir, "%s/durable/%s", conf->state_directory,
		    fc->name) < 0) {
			fc->durable.dir = NULL;
			return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
		}
	return 0;
}

/* Resolves user and group to ids now, so a typo fails the load, not a spawn. */
static int
load_identity(struct loader *ld, struct fn_conf *fc)
{
	struct passwd *pw;
	struct group *gr;

	fc->uid = (uid_t)-1;
	fc->gid = (gid_t)-1;
	if (fc->user != NULL) {
		push_key(ld, "user");
		if ((pw = getpwnam(fc->user)) == NULL)
			return conf_error(ld, LOC_VALUE, "unknown user \"%s\"", fc->user);
		pop(ld);
		fc->uid = pw->pw_uid;
		fc->gid = pw->pw_gid;
	}
	if (fc->group != NULL) {
		push_key(ld, "group");
		if ((gr = getgrnam(fc->group)) == NULL)
			return conf_error(ld, LOC_VALUE, "unknown group \"%s\"", fc->group);
		pop(ld);
		fc->gid = gr->gr_gid;
	}
	return 0;
}

/* A relative library path is taken from the cwd at load time, as operators expect. */
static int
absolute_library(struct loader *ld, struct fn_conf *fc)
{
	char cwd[4096], *abs;
	int rc = 0;

	if (fc->library[0] == '/')
		return 0;
	push_key(ld, "library");
	if (getcwd(cwd, sizeof(cwd)) == NULL ||
	    asprintf(&abs, "%s/%s", cwd, fc->library) < 0) {
		rc = conf_error(ld, LOC_VALUE, "cannot resolve: %s", strerror(errno));
		goto out;
	}
	free(fc->library);
	fc->library = abs;
out:
	pop(ld);
	return rc;
}

/*
 * The library file's identity, so a reload can tell a rebuilt .so at the same path
 * from an untouched one. A missing file leaves zeros: the library check reports it.
 */
static void
library_identity(struct fn_conf *fc)
{
	struct stat st;

	if (stat(fc->library, &st) < 0)
		return;
	fc->lib_dev = (uint64_t)st.st_dev;
	fc->lib_ino = (uint64_t)st.st_ino;
	fc->lib_size = (uint64_t)st.st_size;
	fc->lib_mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
	fc->lib_mode = (uint32_t)st.st_mode;
}

static void
addrs_free(struct conf_addr_list *addrs)
{
	struct conf_addr *a;

	while ((a = SLIST_FIRST(addrs)) != NULL) {
		SLIST_REMOVE_HEAD(addrs, entry);
		free(a->canon);
		free(a->where);
		free(a);
	}
}

static void
fn_free(struct fn_conf *fc)
{
	if (fc == NULL)
		return;
	free(fc->name);
	free(fc->library);
	for (size_t i = 0; i < fc->nlisten; i++)
		free(fc->listen[i]);
	free(fc->listen);
	free(fc->user);
	free(fc->group);
	free(fc->durable.dir);
	free(fc->durable.dsn_file);
	dsn_free(fc->durable.dsn);
	free(fc);
}

/*
 * Pool size: "workers": N is min = max = N (a fixed pool, as before the keys
 * existed); "min_workers" (0 = scale to zero) and "max_workers" size it on demand.
 * One or the other, not both.
 */
static int
load_sizing(struct loader *ld, json_t *fn, struct fn_conf *fc)
{
	bool fixed = json_object_get(fn, "workers") != NULL;
	bool has_min = json_object_get(fn, "min_workers") != NULL;
	bool has_max = json_object_get(fn, "max_workers") != NULL;

	if (get_uint(ld, fn, "workers", 1, 256, &fc->workers) < 0 ||
	    get_uint(ld, fn, "min_workers", 0, 256, &fc->min_workers) < 0 ||
	    get_uint(ld, fn, "max_workers", 1, 256, &fc->max_workers) < 0 ||
	    get_uint(ld, fn, "scale_target", 1, 1000000, &fc->scale_target) < 0 ||
	    get_uint(ld, fn, "scale_idle_ms", 100, 86400000, &fc->scale_idle_ms) < 0 ||
	    get_uint(ld, fn, "cold_wait_ms", 100, 600000, &fc->cold_wait_ms) < 0)
		return -1;
	if (fixed && (has_min || has_max)) {
		push_key(ld, has_min ? "min_workers" : "max_workers");
		return conf_error(ld, LOC_KEY, "give \"workers\" (a fixed pool) or "
		    "\"min_workers\"/\"max_workers\", not both");
	}
	if (!has_min && !has_max) {
		fc->min_workers = fc->max_workers = fc->workers;
		return 0;
	}
	if (!has_max)
		fc->max_workers = fc->min_workers ? fc->min_workers : 1;
	if (fc->min_workers > fc->max_workers) {
		push_key(ld, "min_workers");
		return conf_error(ld, LOC_VALUE, "must not exceed max_workers (%u)",
		    fc->max_workers);
	}
	fc->workers = fc->max_workers;
	return 0;
}

/*
 * Admission (dispatch.c's gate): at most max_concurrency connections in flight
 * across the function's workers (0 = no cap); above it up to max_queued wait in the
 * supervisor, each for at most queue_timeout_ms, and the rest hear 503 (paced under
 * a flood, dispatch.c). The
 * queue shares the held-connection array of cold starts, so it is bounded by it.
 */
static int
load_admission(struct loader *ld, json_t *fn, struct fn_conf *fc)
{
	return get_uint(ld, fn, "max_concurrency", 0, 1000000, &fc->max_concurrency) < 0 ||
	    get_uint(ld, fn, "queue_timeout_ms", 1, 600000, &fc->queue_timeout_ms) < 0 ||
	    get_uint(ld, fn, "max_queued", 0, CONF_MAX_QUEUED, &fc->max_queued) < 0 ? -1 : 0;
}

static int
load_function(struct loader *ld, struct sv_conf *conf, json_t *fn)
{
	struct fn_conf *fc;
	int policy = POLICY_PER_WORKER;
	const char *name;
	size_t nlen;

	if (!json_is_object(fn))
		return conf_error(ld, LOC_VALUE, "must be an object");
	if (check_keys(ld, fn, fn_keys) < 0 || require(ld, fn, "name") < 0 ||
	    require(ld, fn, "library") < 0 ||
	    (!ld->routed && require(ld, fn, "listen") < 0))
		return -1;
	if ((fc = calloc(1, sizeof(*fc))) == NULL)
		return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
	fc->workers = 2;
	fc->scale_target = 8;
	fc->scale_idle_ms = 30000;
	fc->cold_wait_ms = 10000;
	fc->queue_timeout_ms = 1000;
	fc->max_queued = 128;
	/* Linked at once so config_free owns it on every error path below. */
	TAILQ_INSERT_TAIL(&conf->functions, fc, entry);
	conf->nfunctions++;

	if (get_string(ld, fn, "name", 1, &fc->name) < 0)
		return -1;
	name = fc->name;
	nlen = strlen(name);
	push_key(ld, "name");
	if (nlen > CONF_NAME_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != nlen)
		return conf_error(ld, LOC_VALUE, "must match [A-Za-z0-9_-]{1,%d}",
		    CONF_NAME_MAX);
	/* The supervisor's own cgroup leaf sits beside the functions' cgroups. */
	if (strcmp(name, "supervisor") == 0)
		return conf_error(ld, LOC_VALUE, "\"supervisor\" is reserved");
	switch (name_index_add(&conf->by_name, fc->name, fc, NULL)) {
	case 1:
		return conf_error(ld, LOC_VALUE, "duplicate function name \"%s\"", name);
	case -1:
		return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
	}
	pop(ld);

	if (get_string(ld, fn, "library", 1, &fc->library) < 0 ||
	    load_listen(ld, fn, fc) < 0 ||
	    get_enum(ld, fn, "policy", policy_names, NELEM(policy_names), &policy) < 0 ||
	    load_sizing(ld, fn, fc) < 0 ||
	    load_admission(ld, fn, fc) < 0 ||
	    get_string(ld, fn, "user", 1, &fc->user) < 0 ||
	    get_string(ld, fn, "group", 1, &fc->group) < 0 ||
	    load_limits(ld, fn, &fc->limits) < 0 ||
	    load_seccomp(ld, fn, &fc->seccomp) < 0 ||
	    load_durable(ld, fn, &fc->durable) < 0 ||
	    durable_seccomp(ld, fn, fc) < 0 ||
	    load_identity(ld, fc) < 0 ||
	    absolute_library(ld, fc) < 0)
		return -1;
	fc->policy = (enum fn_policy)policy;
	library_identity(fc);
	return 0;
}

/* One included file: a function object, or an array of them. Its errors name it. */
static int
load_file(struct loader *ld, struct sv_conf *conf, const char *file)
{
	struct loader sub = *ld;
	json_error_t je;
	json_t *v, *fn;
	struct stat st;
	size_t i;
	int rc = 0;

	/* A glob can match a folder or a device: only plain files hold functions. */
	if (stat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(ld->err, ld->errlen, "%s: %s", file,
		    stat(file, &st) < 0 ? strerror(errno) : "not a regular file");
		one_line(ld->err);
		return -1;
	}
	if (st.st_size > CONF_FILE_MAX) {
		snprintf(ld->err, ld->errlen, "%s: larger than %d bytes: not a function file",
		    file, CONF_FILE_MAX);
		return -1;
	}
	if ((v = json_load_file(file, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		if (je.line < 0)
			snprintf(ld->err, ld->errlen, "%s: %s", file, je.text);
		else
			snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", file, je.line,
			    je.column > 0 ? je.column : 1, je.text);
		one_line(ld->err);
		return -1;
	}
	/* Key paths start again inside the file; the address list is shared. */
	sub.path = file;
	sub.depth = 0;
	sub.included = true;
	if (json_is_array(v)) {
		json_array_foreach(v, i, fn) {
			push_idx(&sub, i);
			if ((rc = load_function(&sub, conf, fn)) < 0)
				break;
			pop(&sub);
		}
	} else if (json_is_object(v)) {
		rc = load_function(&sub, conf, v);
	} else {
		rc = conf_error(&sub, LOC_VALUE, "must be a function object or an array of them");
	}
	ld->addrs = sub.addrs;
	ld->addr_ix = sub.addr_ix;
	json_decref(v);
	return rc;
}

/*
 * dynamic_users and state_directory, then each function without "user" gets its uid
 * from the record (identity.h) when we are root. Nothing is written here: the
 * supervisor records new picks when it takes the config (identity_apply).
 */
static int
load_dynamic(struct loader *ld, struct sv_conf *conf, json_t *root)
{
	static const char *const keys[] = { "first", "last", NULL };
	json_t *obj = json_object_get(root, "dynamic_users");
	struct id_table *t = NULL;
	struct fn_conf *fc;
	char why[512];
	size_t i = 0;
	int rc = -1;

	if (get_string(ld, root, "state_directory", 1, &conf->state_directory) < 0)
		return -1;
	push_key(ld, "state_directory");
	if (conf->state_directory[0] != '/')
		return conf_error(ld, LOC_VALUE, "must be an absolute path");
	pop(ld);
	if (obj != NULL) {
		push_key(ld, "dynamic_users");
		if (!json_is_object(obj))
			return conf_error(ld, LOC_VALUE, "must be an object "
			    "{\"first\": UID, \"last\": UID}");
		if (check_keys(ld, obj, keys) < 0 ||
		    get_uint(ld, obj, "first", 1000, 2147483646, &conf->dyn_first) < 0 ||
		    get_uint(ld, obj, "last", 1000, 2147483646, &conf->dyn_last) < 0)
			return -1;
		if (conf->dyn_first > conf->dyn_last)
			return conf_error(ld, LOC_VALUE, "first (%u) is above last (%u)",
			    conf->dyn_first, conf->dyn_last);
		pop(ld);
	}
	/* Without root every worker runs as we do: there is no uid to hand out. */
	if (geteuid() != 0)
		return 0;
	if (identity_read(conf->state_directory, &t, why, sizeof(why)) < 0) {
		push_key(ld, "state_directory");
		return conf_error(ld, json_object_get(root, "state_directory") != NULL ?
		    LOC_VALUE : LOC_PARENT, "%s", why);
	}
	push_key(ld, "functions");
	TAILQ_FOREACH(fc, &conf->functions, entry) {
		uid_t uid;

		push_idx(ld, i++);
		if (fc->user == NULL) {
			if (identity_pick(t, fc->name, conf->dyn_first, conf->dyn_last, &uid,
			    &fc->uid_recorded, why, sizeof(why)) < 0) {
				push_key(ld, "name");
				conf_error(ld, LOC_VALUE, "%s", why);
				goto out;
			}
			fc->uid = uid;
			fc->uid_dynamic = true;
			if (fc->group == NULL)
				fc->gid = (gid_t)uid;
		}
		pop(ld);
	}
	pop(ld);
	rc = 0;
out:
	identity_free(t);
	return rc;
}

/*
 * admin_token_file: read now, at start and at every reload, so a token that cannot
 * be used fails the load (and `edgevisor -t`) instead of locking the operator out.
 */
static int
load_token(struct loader *ld, struct sv_conf *conf, json_t *root)
{
	char why[512];
	int rc = 0;

	if (json_is_null(json_object_get(root, "admin_token_file")))
		return 0;
	if (get_string(ld, root, "admin_token_file", 1, &conf->admin_token_file) < 0)
		return -1;
	if (conf->admin_token_file == NULL)
		return 0;
	push_key(ld, "admin_token_file");
	if ((conf->admin_token = malloc(TOKEN_MAX + 1)) == NULL)
		rc = conf_error(ld, LOC_VALUE, "%s", strerror(errno));
	else if (token_read(conf->admin_token_file, conf->admin_token, why,
	    sizeof(why)) < 0)
		rc = conf_error(ld, LOC_VALUE, "%s", why);
	pop(ld);
	return rc;
}

/*
 * "include": a glob (or an array of globs), relative to the main file's folder, of
 * files with more functions: one tenant per file, so deploying one is one file.
 * Files load in name order; a glob that matches nothing is no error (no tenant yet).
 */
static int
load_includes(struct loader *ld, struct sv_conf *conf, json_t *inc)
{
	char dir[4096], pat[8192];
	const char *slash = strrchr(ld->path, '/');
	json_t *one;
	size_t i;
	int rc = 0;

	push_key(ld, "include");
	if (!json_is_string(inc) && !json_is_array(inc)) {
		rc = conf_error(ld, LOC_VALUE, "must be a glob or an array of globs");
		goto out;
	}
	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - ld->path) : 1,
	    slash ? ld->path : ".");
	for (i = 0; rc == 0 && i < (json_is_array(inc) ? json_array_size(inc) : 1); i++) {
		glob_t g;
		int gr;

		one = json_is_array(inc) ? json_array_get(inc, i) : inc;
		if (json_is_array(inc))
			push_idx(ld, i);
		if (!json_is_string(one) || json_string_length(one) == 0) {
			rc = conf_error(ld, LOC_VALUE, "must be a non-empty string (a glob)");
			break;
		}
		if (json_string_value(one)[0] == '/')
			snprintf(pat, sizeof(pat), "%s", json_string_value(one));
		else
			snprintf(pat, sizeof(pat), "%s/%s", dir, json_string_value(one));
		gr = glob(pat, GLOB_ERR, NULL, &g);
		if (gr != 0 && gr != GLOB_NOMATCH) {
			rc = conf_error(ld, LOC_VALUE, "%s: cannot read the folder", pat);
			globfree(&g);
			break;
		}
		for (size_t k = 0; gr == 0 && rc == 0 && k < g.gl_pathc; k++)
			rc = load_file(ld, conf, g.gl_pathv[k]);
		globfree(&g);
		if (json_is_array(inc) && rc == 0)
			pop(ld);
	}
out:
	if (rc == 0)
		pop(ld);
	return rc;
}

/*
 * metrics: a TCP address only. It serves nothing that needs a caller's identity
 * (GET /metrics, GET /health), so unlike the admin it may listen beyond loopback,
 * e.g. for a load balancer's health check.
 */
static int
load_metrics(struct loader *ld, struct sv_conf *conf, json_t *root)
{
	int rc = 0;

	if (json_is_null(json_object_get(root, "metrics")))
		return 0;
	if (get_string(ld, root, "metrics", 1, &conf->metrics) < 0)
		return -1;
	if (conf->metrics == NULL)
		return 0;
	push_key(ld, "metrics");
	if (strncmp(conf->metrics, "unix:", 5) == 0)
		rc = conf_error(ld, LOC_VALUE, "must be \"host:port\" or \"[v6]:port\" "
		    "(the read-only listener is TCP only)");
	else
		rc = check_addr(ld, conf->metrics, 0);
	pop(ld);
	return rc;
}

/* Optional string KEY of OBJ into BUF (absent: ""). */
static int
get_short(struct loader *ld, json_t *obj, const char *key, const char **out)
{
	json_t *v = json_object_get(obj, key);

	*out = "";
	if (v == NULL)
		return 0;
	if (!json_is_string(v)) {
		push_key(ld, key);
		return conf_error(ld, LOC_VALUE, "must be a string");
	}
	*out = json_string_value(v);
	return 0;
}

/*
 * One route: {"path": "/api", "host": "*.example.com", "function": "hello",
 * "strip_prefix": false} or {"supabase": true} (function = the segment after
 * /functions/v1, which it strips by default).
 */
static int
load_route(struct loader *ld, struct sv_conf *conf, json_t *obj, struct route *r)
{
	const char *host, *path, *fn, *why;
	bool supa = false, strip;

	if (!json_is_object(obj))
		return conf_error(ld, LOC_VALUE, "must be an object");
	if (check_keys(ld, obj, route_keys) < 0 || get_bool(ld, obj, "supabase", &supa) < 0 ||
	    get_short(ld, obj, "host", &host) < 0 || get_short(ld, obj, "path", &path) < 0 ||
	    get_short(ld, obj, "function", &fn) < 0)
		return -1;
	memset(r, 0, sizeof(*r));
	r->kind = supa ? ROUTE_SUPABASE : ROUTE_PREFIX;
	strip = supa;
	if (get_bool(ld, obj, "strip_prefix", &strip) < 0)
		return -1;
	r->strip = strip;
	if (supa && json_object_get(obj, "path") == NULL)
		path = SUPABASE_PREFIX;
	if (route_set(r, host, path, &why) < 0) {
		push_key(ld, strncmp(why, "host", 4) == 0 ? "host" : "path");
		return conf_error(ld, LOC_VALUE, "%s", why);
	}
	if (supa && fn[0] != '\0') {
		push_key(ld, "function");
		return conf_error(ld, LOC_VALUE, "a \"supabase\" route takes the function "
		    "from the path; it names none");
	}
	if (!supa) {
		if (require(ld, obj, "function") < 0)
			return -1;
		push_key(ld, "function");
		if (config_find(conf, fn) == NULL)
			return conf_error(ld, LOC_VALUE, "no function \"%s\"", fn);
		pop(ld);
		snprintf(r->fn, sizeof(r->fn), "%s", fn);
	}
	keypath(ld, r->where, sizeof(r->where));
	return 0;
}

static int
load_listener(struct loader *ld, struct sv_conf *conf, json_t *obj, struct sv_listener *l)
{
	json_t *routes, *v;
	struct route r;
	size_t i, a, b;

	if (!json_is_object(obj))
		return conf_error(ld, LOC_VALUE, "must be an object");
	if (check_keys(ld, obj, listener_keys) < 0 || require(ld, obj, "listen") < 0 ||
	    require(ld, obj, "routes") < 0 ||
	    get_string(ld, obj, "listen", 1, &l->listen) < 0 ||
	    get_uint(ld, obj, "head_timeout_ms", 10, 600000, &l->head_timeout_ms) < 0 ||
	    get_uint(ld, obj, "max_header_bytes", 1024, 65536, &l->max_header_bytes) < 0)
		return -1;
	push_key(ld, "listen");
	if (check_addr(ld, l->listen, 1) < 0)
		return -1;
	pop(ld);
	routes = json_object_get(obj, "routes");
	push_key(ld, "routes");
	if (!json_is_array(routes) || json_array_size(routes) == 0)
		return conf_error(ld, LOC_VALUE, "must be a non-empty array of routes");
	json_array_foreach(routes, i, v) {
		push_idx(ld, i);
		if (load_route(ld, conf, v, &r) < 0)
			return -1;
		if (route_add(&l->routes, &r) < 0)
			return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
		pop(ld);
	}
	if (route_check(&l->routes, &a, &b) < 0) {
		int line, col;

		/* Both places: the first by key path and position, the error at the second. */
		push_idx(ld, a);
		position(ld, LOC_VALUE, &line, &col);
		pop(ld);
		push_idx(ld, b);
		return conf_error(ld, LOC_VALUE, "duplicates (shadows) the route at %s "
		    "(%d:%d): same host and path", l->routes.r[a].where, line, col);
	}
	pop(ld);
	return 0;
}

/* "listeners": shared addresses whose requests go to functions by route. */
static int
load_listeners(struct loader *ld, struct sv_conf *conf, json_t *root)
{
	json_t *arr = json_object_get(root, "listeners"), *v;
	size_t i;

	if (arr == NULL)
		return 0;
	push_key(ld, "listeners");
	if (!json_is_array(arr))
		return conf_error(ld, LOC_VALUE, "must be an array of listeners");
	if (json_array_size(arr) > 0 &&
	    (conf->listeners = calloc(json_array_size(arr), sizeof(*conf->listeners))) == NULL)
		return conf_error(ld, LOC_VALUE, "%s", strerror(errno));
	json_array_foreach(arr, i, v) {
		struct sv_listener *l = &conf->listeners[i];

		l->head_timeout_ms = 5000;
		l->max_header_bytes = 16384;
		conf->nlisteners++;
		push_idx(ld, i);
		if (load_listener(ld, conf, v, l) < 0)
			return -1;
		pop(ld);
	}
	pop(ld);
	return 0;
}

static int
load_root(struct loader *ld, struct sv_conf *conf, json_t *root)
{
	json_t *fns, *fn, *admin, *inc;
	const char *why;
	int mode = CG_MODE_AUTO, level = 2;
	size_t i;

	if (!json_is_object(root))
		return conf_error(ld, LOC_VALUE, "the top level must be an object");
	if (check_keys(ld, root, top_keys) < 0)
		return -1;

	/* "admin": null turns the admin endpoint off. */
	admin = json_object_get(root, "admin");
	if (json_is_null(admin)) {
		free(conf->admin);
		conf->admin = NULL;
	} else if (get_string(ld, root, "admin", 1, &conf->admin) < 0)
		return -1;
	if (get_string(ld, root, "cgroup_parent", 1, &conf->cgroup_parent) < 0 ||
	    get_enum(ld, root, "cgroups", cg_mode_names, NELEM(cg_mode_names), &mode) < 0 ||
	    get_enum(ld, root, "log_level", log_level_names, NELEM(log_level_names),
	    &level) < 0 ||
	    get_string(ld, root, "log_file", 1, &conf->log_file) < 0 ||
	    get_uint(ld, root, "library_check_timeout_ms", 100, 600000,
	    &conf->check_timeout_ms) < 0 ||
	    get_uint(ld, root, "health_drain_ms", 0, HEALTH_DRAIN_MAX_MS,
	    &conf->health_drain_ms) < 0 ||
	    get_bool(ld, root, "sigterm_health_drain", &conf->sigterm_health_drain) < 0)
		return -1;
	conf->cgroups = (enum cg_mode)mode;
	if ((conf->log_level = strdup(log_level_names[level])) == NULL)
		return conf_error(ld, LOC_VALUE, "%s", strerror(errno));

	push_key(ld, "cgroup_parent");
	if (cg_parent_check(conf->cgroup_parent, &why) < 0)
		return conf_error(ld, LOC_VALUE, "%s", why);
	pop(ld);

	fns = json_object_get(root, "functions");
	inc = json_object_get(root, "include");
	ld->routed = json_object_get(root, "listeners") != NULL;
	if (fns == NULL && inc == NULL)
		return require(ld, root, "functions");
	if (fns != NULL) {
		push_key(ld, "functions");
		if (!json_is_array(fns) || (json_array_size(fns) == 0 && inc == NULL))
			return conf_error(ld, LOC_VALUE, "must be a non-empty array of functions");
		json_array_foreach(fns, i, fn) {
			push_idx(ld, i);
			if (load_function(ld, conf, fn) < 0)
				return -1;
			pop(ld);
		}
		pop(ld);
	}
	if (inc != NULL && load_includes(ld, conf, inc) < 0)
		return -1;

	/* Checked last so a clash names the listen address it collides with. */
	if (conf->admin != NULL) {
		push_key(ld, "admin");
		if (check_addr(ld, conf->admin, 1) < 0)
			return -1;
		pop(ld);
	}
	if (load_listeners(ld, conf, root) < 0 ||
	    load_metrics(ld, conf, root) < 0 || load_token(ld, conf, root) < 0 ||
	    load_dynamic(ld, conf, root) < 0 || durable_dirs(ld, conf) < 0)
		return -1;
	return 0;
}

struct sv_conf *
config_load(const char *path, char *err, size_t errlen)
{
	struct loader ld = { .path = path, .err = err, .errlen = errlen };
	struct sv_conf *conf = NULL;
	json_error_t je;
	json_t *root;
	int saved = 0;

	SLIST_INIT(&ld.addrs);
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		if (je.line < 0)
			snprintf(err, errlen, "%s: %s", path, je.text);
		else
			snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column,
			    je.text);
		one_line(err);
		errno = EINVAL;
		return NULL;
	}
	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		goto fail;
	TAILQ_INIT(&conf->functions);
	conf->check_timeout_ms = 5000;
	conf->sigterm_health_drain = true;
	if ((conf->path = strdup(path)) == NULL ||
	    (conf->admin = strdup(EV_ADMIN_DEFAULT)) == NULL ||
	    (conf->cgroup_parent = strdup("edgevisor")) == NULL ||
	    (conf->state_directory = strdup(IDENTITY_STATE_DIR)) == NULL)
		goto fail;
	conf->dyn_first = IDENTITY_FIRST;
	conf->dyn_last = IDENTITY_LAST;
	if (load_root(&ld, conf, root) < 0) {
		saved = EINVAL;
		goto fail;
	}
	json_decref(root);
	addrs_free(&ld.addrs);
	name_index_free(&ld.addr_ix);
	return conf;
fail:
	if (saved == 0) {
		saved = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
	}
	addrs_free(&ld.addrs);
	name_index_free(&ld.addr_ix);
	json_decref(root);
	config_free(conf);
	errno = saved;
	return NULL;
}

void
config_free(struct sv_conf *conf)
{
	struct fn_conf *fc;

	if (conf == NULL)
		return;
	while ((fc = TAILQ_FIRST(&conf->functions)) != NULL) {
		TAILQ_REMOVE(&conf->functions, fc, entry);
		fn_free(fc);
	}
	name_index_free(&conf->by_name);
	for (size_t i = 0; i < conf->nlisteners; i++) {
		free(conf->listeners[i].listen);
		route_table_free(&conf->listeners[i].routes);
	}
	free(conf->listeners);
	free(conf->path);
	free(conf->admin);
	free(conf->admin_token_file);
	if (conf->admin_token != NULL)
		explicit_bzero(conf->admin_token, TOKEN_MAX + 1);
	free(conf->admin_token);
	free(conf->metrics);
	free(conf->cgroup_parent);
	free(conf->state_directory);
	free(conf->log_level);
	free(conf->log_file);
	free(conf);
}

const char *
config_policy_name(enum fn_policy p)
{
	return (unsigned)p < NELEM(policy_names) ? policy_names[p] : "unknown";
}

/* Only what the worker sees: a function that moved to another port is the same. */
bool
config_fn_same(const struct fn_conf *a, const struct fn_conf *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->library, b->library) == 0 &&
	    a->policy == b->policy && a->min_workers == b->min_workers &&
	    a->max_workers == b->max_workers && a->scale_target == b->scale_target &&
	    a->scale_idle_ms == b->scale_idle_ms && a->cold_wait_ms == b->cold_wait_ms &&
	    a->uid == b->uid &&
	    a->gid == b->gid && memcmp(&a->limits, &b->limits, sizeof(a->limits)) == 0 &&
	    a->lib_dev == b->lib_dev && a->lib_ino == b->lib_ino &&
	    a->lib_size == b->lib_size && a->lib_mtime_ns == b->lib_mtime_ns &&
	    a->seccomp.on == b->seccomp.on && a->seccomp.arch == b->seccomp.arch &&
	    a->seccomp.n == b->seccomp.n && memcmp(a->seccomp.rules, b->seccomp.rules,
	    a->seccomp.n * sizeof(a->seccomp.rules[0])) == 0 &&
	    a->durable.backend == b->durable.backend &&
	    a->durable.journal_max_bytes == b->durable.journal_max_bytes &&
	    a->durable.lease_ms == b->durable.lease_ms &&
	    a->durable.retry_base_ms == b->durable.retry_base_ms &&
	    a->durable.retry_max_ms == b->durable.retry_max_ms &&
	    a->durable.concurrency == b->durable.concurrency &&
	    a->durable.idempotency_window_ms == b->durable.idempotency_window_ms &&
	    (a->durable.dir == NULL) == (b->durable.dir == NULL) &&
	    (a->durable.dir == NULL || strcmp(a->durable.dir, b->durable.dir) == 0) &&
	    (a->durable.dsn == NULL) == (b->durable.dsn == NULL) &&
	    (a->durable.dsn == NULL || strcmp(a->durable.dsn, b->durable.dsn) == 0);
}

struct fn_conf *
config_find(struct sv_conf *conf, const char *name)
{
	return name_index_find(&conf->by_name, name);
}
