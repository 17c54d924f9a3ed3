/*
 * main.c - edgevisorctl, the operator's client of the admin endpoint
 * (supervisor/admin.c):
 *
 *   edgevisorctl [-s ADDR | -c CONFIG] [--token-file FILE] status [--json] | metrics |
 *       reload | stop | drain NAME | drain --all [--wait] | top ...
 *
 * ADDR is "unix:/path", "host:port" or "[v6]:port" (common/net.h); it comes from -s,
 * else the "admin" key of CONFIG, else $EDGEVISOR_ADMIN, else EV_ADMIN_DEFAULT
 * (common/paths.h). The bearer token for a TCP admin comes from --token-file, else
 * CONFIG's "admin_token_file". Exit status: 0 done, 1 error (message on stderr), 2 usage.
 *
 * The requests go through admin_client.c (one blocking request per call); `top` is
 * top.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/paths.h"
#include "../common/token.h"
#include "admin_client.h"
#include "top.h"
#include "units.h"
#include "tasks.h"

static const char *addr;
static char token[TOKEN_MAX + 1];   /* "" = send none */
static char token_path[512];        /* CONFIG's admin_token_file, if any */

static void
usage(void)
{
	fprintf(stderr,
	    "usage: edgevisorctl [-s ADDR | -c CONFIG] [--token-file FILE] COMMAND\n"
	    "  status [--json]  workers and per-function totals (--json: the raw document)\n"
	    "  metrics          the Prometheus text of GET /metrics\n"
	    "  reload [--wait]  apply the config file (like SIGHUP): changed functions roll,\n"
	    "                   unchanged ones keep their workers; --wait: return once the\n"
	    "                   new generation is ready, or fail saying why not (ExecReload)\n"
	    "  deploy NAME      reload, then wait until NAME's new workers are ready or say\n"
	    "                   why not (only NAME's outcome decides the exit status)\n"
	    "  functions        one line per function: state, generation, min/max, workers,\n"
	    "                   queued connections, cold starts, scale-ups/downs\n"
	    "  top [--once | --batch N] [--interval MS] [--sort n|r|p|m|c]\n"
	    "                   live view of /status, refreshed every second (keys: q quit,\n"
	    "                   n r p m c sort, Up/Down + Enter workers, Esc back);\n"
	    "                   --once/--batch N: plain-text frames for scripts\n"
	    "  stop             graceful stop: drain, then exit (like SIGTERM)\n"
	    "  drain NAME       replace every worker of function NAME\n"
	    "  drain --all [--wait]  host drain: /health 503 for health_drain_ms while\n"
	    "                   serving, then every worker drains and the supervisor exits;\n"
	    "                   --wait: return once it has exited (deploy scripts)\n"
	    "  tasks NAME [--json]  durable tasks of NAME: counts per kind, then every\n"
	    "                   pending, running, retrying and dead task (read from its\n"
	    "                   journal under CONFIG's state_directory)\n"
	    "  tasks retry NAME ID  make dead task ID of NAME pending again\n"
	    "ADDR: unix:/path, host:port or [v6]:port; default $EDGEVISOR_ADMIN or %s\n"
	    "FILE: the admin bearer token (default: CONFIG's admin_token_file)\n",
	    EV_ADMIN_DEFAULT);
}

/* The "admin" key of a supervisor config; NULL (and a message) if unusable. */
static const char *
admin_from_config(const char *path)
{
	static char buf[512];
	json_error_t je;
	json_t *root, *a;

	if ((root = json_load_file(path, 0, &je)) == NULL) {
		ctl_fail("%s:%d:%d: %s", path, je.line, je.column, je.text);
		return NULL;
	}
	if (json_is_string(json_object_get(root, "admin_token_file")))
		snprintf(token_path, sizeof(token_path), "%s",
		    json_string_value(json_object_get(root, "admin_token_file")));
	a = json_object_get(root, "admin");
	if (a == NULL) {
		snprintf(buf, sizeof(buf), "%s", EV_ADMIN_DEFAULT);
	} else if (json_is_string(a)) {
		snprintf(buf, sizeof(buf), "%s", json_string_value(a));
	} else {
		ctl_fail("%s: \"admin\" is %s: the admin endpoint is off", path,
		    json_is_null(a) ? "null" : "not a string");
		json_decref(root);
		return NULL;
	}
	json_decref(root);
	return buf;
}

/* ---- status table ----------------------------------------------------------------- */

static json_int_t
num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static const char *
str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static void print_functions(json_t *st);

static void
print_status(json_t *st)
{
	json_t *s = json_object_get(st, "supervisor"), *fns = json_object_get(st, "functions");
	json_t *ws = json_object_get(st, "workers"), *o;
	char b1[32], b2[32], b3[32], oldest[96];
	size_t i;

	printf("edgevisor pid %lld  generation %lld  up %s  cgroups %s  config %s%s\n\n",
	    num(s, "pid"), num(s, "generation"), fmt_ms(num(s, "uptime_ms"), b1, sizeof(b1)),
	    str(s, "cgroups", "?"), str(s, "config", "?"),
	    json_is_true(json_object_get(s, "stopping")) ? "  (stopping)" : "");
	printf("%-16s %4s %7s %-11s %3s %8s %8s %7s %8s %5s %19s %-11s %s\n", "FUNCTION", "ID",
	    "PID", "STATE", "GEN", "UPTIME", "MEM", "CPU", "REQS", "CONNS",
	    "TASKS PEND/STA/OK/F", "LAST", "OLDEST PENDING");
	json_array_foreach(ws, i, o) {
		json_t *t = json_object_get(o, "tasks"), *old = json_object_get(t, "oldest_pending");
		char tasks[64];

		snprintf(tasks, sizeof(tasks), "%lld/%lld/%lld/%lld", num(t, "pending"),
		    num(t, "started"), num(t, "completed"), num(t, "failed"));
		if (json_is_object(old))
			snprintf(oldest, sizeof(oldest), "%s (%s)", str(old, "name", "?"),
			    fmt_ms(num(old, "age_ms"), b3, sizeof(b3)));
		else
			snprintf(oldest, sizeof(oldest), "-");
		printf("%-16s %4lld %7lld %-11s %3lld %8s %8s %7s %8lld %5lld %19s %-11s %s\n",
		    str(o, "function", "?"), num(o, "id"), num(o, "pid"), str(o, "state", "?"),
		    num(o, "generation"), fmt_ms(num(o, "uptime_ms"), b1, sizeof(b1)),
		    fmt_bytes(num(o, "memory_current"), b2, sizeof(b2)),
		    fmt_ms(num(o, "cpu_ms"), b3, sizeof(b3)), num(o, "requests"),
		    num(o, "connections"), tasks, str(o, "last_unload_reason", "-"), oldest);
	}
	if (json_array_size(ws) == 0)
		printf("(no workers)\n");
	printf("\n%-16s %-11s %7s %10s %9s %9s %7s %6s %7s %7s  %s\n", "FUNCTION", "POLICY",
	    "WORKERS", "REQUESTS", "STARTED", "COMPLETED", "FAILED", "LOST", "PENDING",
	    "CRASHES", "UNLOADS");
	json_array_foreach(fns, i, o) {
		json_t *t = json_object_get(o, "totals"), *u = json_object_get(t, "unloads"), *v;
		char unloads[256] = "", ws_s[32];
		const char *k;
		size_t off = 0;

		json_object_foreach(u, k, v)
			if (json_integer_value(v) > 0 && off < sizeof(unloads))
				off += (size_t)snprintf(unloads + off, sizeof(unloads) - off, "%s%s=%lld",
				    off ? "," : "", k, json_integer_value(v));
		snprintf(ws_s, sizeof(ws_s), "%lld/%lld", num(o, "live_workers"), num(o, "workers"));
		printf("%-16s %-11s %7s %10lld %9lld %9lld %7lld %6lld %7lld %7lld  %s%s%s\n",
		    str(o, "name", "?"), str(o, "policy", "?"), ws_s, num(t, "requests"),
		    num(t, "tasks_started"), num(t, "tasks_completed"), num(t, "tasks_failed"),
		    num(t, "tasks_lost"), num(t, "tasks_pending"), num(t, "crashes"),
		    off ? unloads : "-",
		    json_is_true(json_object_get(o, "failed")) ? "  FAILED" : "",
		    json_is_true(json_object_get(o, "current")) ? "" : "  (removed, draining)");
	}
	printf("\n");
	print_functions(st);
}

/* ---- commands ------------------------------------------------------------------- */

static int
cmd_status(bool raw)
{
	struct reply r;
	json_error_t je;
	json_t *st;
	int rc = 1;

	if (admin_http("GET", "/status", &r) < 0)
		return 1;
	if (r.code != 200) {
		admin_fail_reply("status", &r);
		goto out;
	}
	if (raw) {
		fwrite(r.body, 1, r.len, stdout);
		rc = 0;
		goto out;
	}
	if ((st = json_loads(r.body, 0, &je)) == NULL) {
		ctl_fail("%s: bad JSON in /status: %s", addr, je.text);
		goto out;
	}
	print_status(st);
	json_decref(st);
	rc = 0;
out:
	free(r.body);
	return rc;
}

static int
cmd_metrics(void)
{
	struct reply r;
	int rc = 1;

	if (admin_http("GET", "/metrics", &r) < 0)
		return 1;
	if (r.code == 200) {
		fwrite(r.body, 1, r.len, stdout);
		rc = 0;
	} else
		admin_fail_reply("metrics", &r);
	free(r.body);
	return rc;
}

/* POST PATH; prints a one-line summary of the JSON reply. */
static int
cmd_post(const char *what, const char *path)
{
	struct reply r;
	json_t *o;
	int rc = 1;

	if (admin_http("POST", path, &r) < 0)
		return 1;
	if (r.code / 100 != 2) {
		admin_fail_reply(what, &r);
		free(r.body);
		return 1;
	}
	o = json_loads(r.body, 0, NULL);
	if (json_object_get(o, "generation"))
		printf("%s: %s, generation %lld\n", what, str(o, "result", "ok"),
		    num(o, "generation"));
	else
		printf("%s: %s\n", what, str(o, "result", "ok"));
	json_decref(o);
	rc = 0;
	free(r.body);
	return rc;
}

/* PID has exited (gone, or a zombie its parent has yet to reap). */
static bool
pid_gone(pid_t pid)
{
	char path[64], buf[256], *rp;
	FILE *f;
	bool gone = true;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return true;
	/* The state follows the last ')' (the command name may hold one). */
	if (fgets(buf, sizeof(buf), f) != NULL && (rp = strrchr(buf, ')')) != NULL)
		gone = rp[1] == ' ' && rp[2] == 'Z';
	fclose(f);
	return gone;
}

/*
 * drain --all: POST /drain (the host drain: /health 503 for health_drain_ms while
 * serving, then every worker drains and the supervisor exits). With WAIT, returns
 * once it is gone: its admin endpoint refuses connections and, over a unix socket
 * (the same host), its process has exited - what a deploy script waits for before
 * it starts the new version.
 */
static int
cmd_host_drain(bool wait, int timeout_s)
{
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	time_t end = time(NULL) + timeout_s;
	struct reply r;
	json_t *o;
	pid_t pid;

	if (admin_http("POST", "/drain", &r) < 0)
		return 1;
	if (r.code / 100 != 2) {
		admin_fail_reply("drain --all", &r);
		free(r.body);
		return 1;
	}
	o = json_loads(r.body, 0, NULL);
	free(r.body);
	pid = (pid_t)num(o, "pid");
	if (strcmp(str(o, "result", "?"), "draining") == 0)
		printf("drain --all: /health answers 503, serving for %lld ms more, then the "
		    "workers drain%s\n", (long long)num(o, "health_drain_left_ms"),
		    json_is_true(json_object_get(o, "already")) ? " (already draining)" : "");
	else
		printf("drain --all: the workers drain, then the supervisor exits\n");
	json_decref(o);
	if (!wait)
		return 0;
	while (time(NULL) < end) {
		if (admin_reachable())
			;
		else if (!admin_is_unix() || pid <= 0 || pid_gone(pid)) {
			printf("drain --all: the supervisor has exited\n");
			return 0;
		}
		nanosleep(&nap, NULL);
	}
	ctl_fail("drain --all: the supervisor still runs after %d s", timeout_s);
	return 1;
}

/*
 * Waits until /status says generation GEN is all ready (systemd's ExecReload must
 * not return before that: systemd 252 ends the reload job when ExecReload exits).
 */
static int
wait_ready(json_int_t gen, int timeout_s)
{
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	time_t end = time(NULL) + timeout_s;
	struct reply r;

	while (time(NULL) < end) {
		json_t *o, *svo;
		json_int_t ready = -1, now = -1;

		if (admin_http("GET", "/status", &r) < 0)
			return 1;
		/* A refusal (401 after the token changed) will not turn into readiness. */
		if (r.code != 200) {
			admin_fail_reply("reload --wait", &r);
			free(r.body);
			return 1;
		}
		o = json_loads(r.body, 0, NULL);
		free(r.body);
		svo = json_object_get(o, "supervisor");
		ready = num(svo, "ready_generation");
		now = num(svo, "generation");
		if (num(json_object_get(svo, "reload"), "failed_generation") == gen) {
			/* Refused after it began (a library check): it will never be ready. */
			ctl_fail("reload: generation %lld refused: %s", (long long)gen,
			    str(json_object_get(svo, "reload"), "failed_why", "?"));
			json_decref(o);
			return 1;
		}
		json_decref(o);
		if (ready >= gen) {
			printf("reload: generation %lld ready\n", (long long)gen);
			return 0;
		}
		/* Another reload overtook ours: that one's readiness is not ours to wait for. */
		if (now > gen) {
			printf("reload: generation %lld superseded by %lld\n", (long long)gen,
			    (long long)now);
			return 0;
		}
		nanosleep(&nap, NULL);
	}
	ctl_fail("reload: generation %lld not ready after %d s", (long long)gen, timeout_s);
	return 1;
}

/* The function NAME in a /status document, or NULL. */
static json_t *
find_function(json_t *st, const char *name)
{
	json_t *o;
	size_t i;

	json_array_foreach(json_object_get(st, "functions"), i, o)
		if (strcmp(str(o, "name", ""), name) == 0)
			return o;
	return NULL;
}

/* One line per function: state, generation, pool size and the on-demand figures. */
static void
print_functions(json_t *st)
{
	json_t *o;
	size_t i;

	printf("%-20s %-8s %4s %7s %5s %5s %6s %6s %9s\n", "FUNCTION", "STATE", "GEN",
	    "MIN/MAX", "LIVE", "READY", "QUEUED", "COLD", "UP/DOWN");
	json_array_foreach(json_object_get(st, "functions"), i, o) {
		json_t *sc = json_object_get(o, "scaling");
		char mm[32], ud[32];

		snprintf(mm, sizeof(mm), "%lld/%lld", num(sc, "min_workers"), num(sc, "max_workers"));
		snprintf(ud, sizeof(ud), "%lld/%lld", num(sc, "scale_ups"), num(sc, "scale_downs"));
		printf("%-20s %-8s %4lld %7s %5lld %5lld %6lld %6lld %9s%s\n", str(o, "name", "?"),
		    str(o, "state", "?"), num(o, "generation"), mm, num(o, "live_workers"),
		    num(json_object_get(o, "states"), "ready"), num(sc, "queued"),
		    num(sc, "cold_starts"), ud,
		    json_is_true(json_object_get(o, "current")) ? "" : "  (removed, draining)");
	}
}

static int
cmd_functions(void)
{
	json_t *st = admin_get_status();

	if (st == NULL)
		return 1;
	print_functions(st);
	json_decref(st);
	return 0;
}

/* POST /reload: the answer (the plan, or "queued"), or NULL when refused (said). */
static json_t *
post_reload(const char *what)
{
	struct reply r;
	json_t *o;

	if (admin_http("POST", "/reload", &r) < 0)
		return NULL;
	if (r.code / 100 != 2) {
		admin_fail_reply(what, &r);
		free(r.body);
		return NULL;
	}
	o = json_loads(r.body, 0, NULL);
	free(r.body);
	if (o == NULL)
		ctl_fail("%s: the answer is not JSON", what);
	return o;
}

/* In the reload answer's list NAME of changes? */
static bool
listed(json_t *answer, const char *list, const char *name)
{
	json_t *v;
	size_t i;

	json_array_foreach(json_object_get(answer, list), i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return true;
	return false;
}

/*
 * Reloads and waits for NAME alone: its new generation ready (or at zero, for an
 * on-demand pool), or why not. The other functions' changes are the reload's too,
 * but deploy only answers for NAME.
 */
static int
cmd_deploy(const char *name, int timeout_s)
{
	struct timespec nap = { 0, 50 * 1000 * 1000 };
	time_t end = time(NULL) + timeout_s;
	json_int_t gen;
	json_t *o, *st, *fn;
	bool queued;

	if ((o = post_reload("deploy")) == NULL)
		return 1;
	gen = num(o, "generation");
	queued = strcmp(str(o, "result", ""), "queued") == 0;
	if (!queued && listed(o, "removed", name)) {
		ctl_fail("deploy: %s is no longer in the config: it drains", name);
		json_decref(o);
		return 1;
	}
	if (!queued && listed(o, "kept", name)) {
		printf("deploy: %s unchanged, its workers keep serving\n", name);
		json_decref(o);
		return 0;
	}
	if (!queued && !listed(o, "rolled", name) && !listed(o, "added", name)) {
		ctl_fail("deploy: no function %s in the config", name);
		json_decref(o);
		return 1;
	}
	json_decref(o);
	printf("deploy: %s: generation %lld %s\n", name, (long long)gen,
	    queued ? "queued behind a reload in flight" : "starting");
	while (time(NULL) < end) {
		json_t *svo;

		if ((st = admin_get_status()) == NULL)
			return 1;
		svo = json_object_get(st, "supervisor");
		if (num(json_object_get(svo, "reload"), "failed_generation") >= gen) {
			ctl_fail("deploy: %s: generation %lld refused: %s", name, (long long)gen,
			    str(json_object_get(svo, "reload"), "failed_why", "?"));
			json_decref(st);
			return 1;
		}
		fn = find_function(st, name);
		if (num(svo, "ready_generation") >= gen && fn != NULL) {
			const char *state = str(fn, "state", "?");
			int rc = 0;

			if (strcmp(state, "failed") == 0 || num(fn, "generation") < gen) {
				ctl_fail("deploy: %s: its new workers fail to start; the old ones (if any) "
				    "keep serving", name);
				rc = 1;
			} else {
				printf("deploy: %s generation %lld %s\n", name, (long long)num(fn,
				    "generation"), state);
			}
			json_decref(st);
			return rc;
		}
		if (num(svo, "ready_generation") >= gen && fn == NULL) {
			ctl_fail("deploy: no function %s in the config", name);
			json_decref(st);
			return 1;
		}
		json_decref(st);
		nanosleep(&nap, NULL);
	}
	ctl_fail("deploy: %s not ready after %d s", name, timeout_s);
	return 1;
}

static int
cmd_reload(bool wait)
{
	json_int_t gen;
	json_t *o;

	if ((o = post_reload("reload")) == NULL)
		return 1;
	gen = num(o, "generation");
	json_decref(o);
	printf("reload: reloading, generation %lld\n", (long long)gen);
	return wait ? wait_ready(gen, 120) : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'W' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *cmd, *token_file = NULL;
	char path[600];
	bool json = false, wait = false, all = false;
	int c;

	while ((c = getopt_long(argc, argv, "+s:c:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': addr = optarg; break;
		case 'c': config = optarg; break;
		case 'j': json = true; break;
		case 'W': wait = true; break;
		case 'T': token_file = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind >= argc) {
		usage();
		return 2;
	}
	cmd = argv[optind++];
	/* Options may also follow the command: "status --json", "reload --wait". */
	for (; optind < argc && argv[optind][0] == '-' && argv[optind][1] == '-'; optind++) {
		if (strcmp(argv[optind], "--json") == 0)
			json = true;
		else if (strcmp(argv[optind], "--wait") == 0)
			wait = true;
		else if (strcmp(argv[optind], "--all") == 0)
			all = true;
		else
			break;
	}
	if (addr == NULL && config != NULL && (addr = admin_from_config(config)) == NULL)
		return 1;
	if (addr == NULL && (addr = getenv("EDGEVISOR_ADMIN")) != NULL && *addr == '\0')
		addr = NULL;
	if (addr == NULL)
		addr = EV_ADMIN_DEFAULT;
	if (token_file == NULL && token_path[0] != '\0')
		token_file = token_path;
	if (token_file != NULL && token_read(token_file, token, path, sizeof(path)) < 0) {
		ctl_fail("token: %s", path);
		return 1;
	}
	if (admin_setup(addr, token) < 0)
		return 1;

	/* The journal is read directly: no admin address or token needed. */
	if (strcmp(cmd, "tasks") == 0 && optind + 3 == argc && strcmp(argv[optind], "retry") == 0)
		return cmd_tasks_retry(config, argv[optind + 1], argv[optind + 2]);
	if (strcmp(cmd, "tasks") == 0 && optind < argc) {
		const char *name = argv[optind++];

		if (optind < argc && strcmp(argv[optind], "--json") == 0) {
			json = true;
			optind++;
		}
		if (optind == argc)
			return cmd_tasks(config, name, json);
	}
	if (strcmp(cmd, "status") == 0 && optind == argc)
		return cmd_status(json);
	if (strcmp(cmd, "metrics") == 0 && optind == argc)
		return cmd_metrics();
	if (strcmp(cmd, "reload") == 0 && optind == argc)
		return cmd_reload(wait);
	if (strcmp(cmd, "stop") == 0 && optind == argc)
		return cmd_post("stop", "/stop");
	if (strcmp(cmd, "top") == 0)
		return cmd_top(argc - optind, argv + optind);
	if (strcmp(cmd, "functions") == 0 && optind == argc)
		return cmd_functions();
	if (strcmp(cmd, "deploy") == 0 && optind + 1 == argc)
		return cmd_deploy(argv[optind], 120);
	if (strcmp(cmd, "drain") == 0 && all && optind == argc)
		return cmd_host_drain(wait, 900);
	if (strcmp(cmd, "drain") == 0 && !all && optind + 1 == argc) {
		const char *name = argv[optind];

		/* Function names are plain ([A-Za-z0-9_-]); anything else cannot exist. */
		if (*name == '\0' || strlen(name) > 64 ||
		    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789_-") != strlen(name)) {
			ctl_fail("drain: bad function name \"%s\"", name);
			return 1;
		}
		snprintf(path, sizeof(path), "/drain/%s", name);
		return cmd_post("drain", path);
	}
	usage();
	return 2;
}
