/*
 * test_config.c - supervisor.conf loading: every tests/unit/config/valid/<case> must
 * load, every tests/unit/config/invalid/<case> must fail with a message holding each
 * line of its "expected" file; then direct checks of defaults and values read.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <seccomp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../supervisor/config.h"
#include "../../supervisor/identity.h"
#include "../../common/log.h"
#include "unit.h"

#define VALID_DIR   "tests/unit/config/valid"
#define INVALID_DIR "tests/unit/config/invalid"

static int nvalid, ninvalid;

/* Reads a whole small file into a NUL-terminated buffer (the caller frees it). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (f == NULL)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Case directories under DIR, sorted so the output is stable. */
static int
list_cases(const char *dir, struct dirent ***out)
{
	return scandir(dir, out, NULL, alphasort);
}

static void
run_valid(void)
{
	struct dirent **de;
	char path[PATH_MAX], name[300], err[512];
	struct sv_conf *conf;
	int n;

	if ((n = list_cases(VALID_DIR, &de)) < 0) {
		unit_result("valid cases", strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		if (de[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), VALID_DIR "/%s/supervisor.conf", de[i]->d_name);
			snprintf(name, sizeof(name), "valid/%s", de[i]->d_name);
			err[0] = '\0';
			conf = config_load(path, err, sizeof(err));
			unit_result(name, conf != NULL ? NULL : err);
			config_free(conf);
			nvalid++;
		}
		free(de[i]);
	}
	free(de);
}

/* Checks one invalid case; returns NULL if it failed as expected, else why not. */
static const char *
check_invalid(const char *name, char *why, size_t whylen)
{
	char path[PATH_MAX], err[512];
	struct sv_conf *conf;
	char *expected, *line, *save;

	snprintf(path, sizeof(path), INVALID_DIR "/%s/expected", name);
	if ((expected = slurp(path)) == NULL) {
		snprintf(why, whylen, "cannot read expected: %s", strerror(errno));
		return why;
	}
	snprintf(path, sizeof(path), INVALID_DIR "/%s/supervisor.conf", name);
	err[0] = '\0';
	if ((conf = config_load(path, err, sizeof(err))) != NULL) {
		config_free(conf);
		snprintf(why, whylen, "loaded, but must fail");
		goto out;
	}
	if (strchr(err, '\n') != NULL) {
		snprintf(why, whylen, "message is more than one line: %s", err);
		goto out;
	}
	for (line = strtok_r(expected, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (strstr(err, line) == NULL) {
			snprintf(why, whylen, "message \"%s\" lacks \"%s\"", err, line);
			goto out;
		}
	}
	why = NULL;
out:
	free(expected);
	return why;
}

static void
run_invalid(void)
{
	struct dirent **de;
	char name[300], why[1200];
	int n;

	if ((n = list_cases(INVALID_DIR, &de)) < 0) {
		unit_result("invalid cases", strerror(errno));
		return;
	}
	for (int i = 0; i < n; i++) {
		if (de[i]->d_name[0] != '.') {
			snprintf(name, sizeof(name), "invalid/%s", de[i]->d_name);
			unit_result(name, check_invalid(de[i]->d_name, why, sizeof(why)));
			ninvalid++;
		}
		free(de[i]);
	}
	free(de);
}

/* A file with only the required keys gets every documented default. */
static void
case_defaults(void)
{
	char err[512], cwd[PATH_MAX], lib[PATH_MAX + 16];
	struct sv_conf *conf;
	struct fn_conf *fc = NULL;
	struct fn_limits *l;

	conf = config_load(VALID_DIR "/minimal/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(strcmp(conf->path, VALID_DIR "/minimal/supervisor.conf") == 0);
	UNIT_CHECK(conf->admin != NULL &&
	    strcmp(conf->admin, "unix:/run/edgevisor/admin.sock") == 0);
	UNIT_CHECK(strcmp(conf->cgroup_parent, "edgevisor") == 0);
	UNIT_CHECK(conf->cgroups == CG_MODE_AUTO);
	UNIT_CHECK(strcmp(conf->log_level, "info") == 0);
	UNIT_CHECK(conf->log_file == NULL);
	UNIT_CHECK(conf->check_timeout_ms == 5000);
	UNIT_CHECK(conf->nfunctions == 1);
	fc = TAILQ_FIRST(&conf->functions);
	UNIT_CHECK(fc != NULL && TAILQ_NEXT(fc, entry) == NULL);
	UNIT_CHECK(strcmp(fc->name, "a") == 0);
	/* A relative library is resolved against the cwd at load time. */
	UNIT_CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	snprintf(lib, sizeof(lib), "%s/a.so", cwd);
	UNIT_CHECKF(strcmp(fc->library, lib) == 0, "library %s", fc->library);
	UNIT_CHECK(fc->nlisten == 1 && strcmp(fc->listen[0], "127.0.0.1:9000") == 0);
	UNIT_CHECK(fc->policy == POLICY_PER_WORKER);
	UNIT_CHECK(fc->workers == 2);
	UNIT_CHECK(fc->user == NULL && fc->group == NULL);
	/* No user: as root a dynamic uid from systemd's DynamicUser= range, gid the same;
	 * else unchanged. */
	if (geteuid() == 0)
		UNIT_CHECKF(fc->uid_dynamic && fc->uid >= 61184 && fc->uid <= 65519 &&
		    fc->gid == (gid_t)fc->uid && getpwuid(fc->uid) == NULL,
		    "uid %u gid %u", (unsigned)fc->uid, (unsigned)fc->gid);
	else
		UNIT_CHECK(!fc->uid_dynamic && fc->uid == (uid_t)-1 && fc->gid == (gid_t)-1);
	UNIT_CHECK(strcmp(conf->state_directory, "/var/lib/edgevisor") == 0);
	UNIT_CHECK(conf->dyn_first == 61184 && conf->dyn_last == 65519);
	l = &fc->limits;
	UNIT_CHECK(l->memory_mb == 0 && l->function_memory_mb == 0);
	UNIT_CHECK(l->cpu_percent == 0 && l->function_cpu_percent == 0);
	UNIT_CHECK(l->cpu_time_ms == 0 && l->wall_clock_ms == 0);
	UNIT_CHECK(l->request_timeout_ms == 30000 && l->idle_timeout_ms == 60000);
	UNIT_CHECK(l->idle_worker_ms == 0 && l->max_requests == 0);
	UNIT_CHECK(l->drain_timeout_ms == 30000 && l->beforeunload_grace_ms == 2000);
	UNIT_CHECK(l->max_header_bytes == 16384 && l->max_body_bytes == 1048576);
	UNIT_CHECK(l->soft_limit_percent == 90 && l->max_pending_tasks == 16384);
	UNIT_CHECK(l->task_threads == 4 && l->nofile == 4096);
	UNIT_CHECK(l->max_connections == 10000);
	UNIT_CHECK(l->max_pids == 0 && l->function_max_pids == 0);
	UNIT_CHECK(config_find(conf, "a") == fc);
	UNIT_CHECK(config_find(conf, "b") == NULL);
out:
	config_free(conf);
}

/* Every key of the full example is read into its field. */
static void
case_full(void)
{
	char err[512];
	struct sv_conf *conf;
	struct fn_conf *fc = NULL;
	struct fn_limits *l;
	struct passwd *pw;

	conf = config_load(VALID_DIR "/full/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(strcmp(conf->admin, "127.0.0.1:9900") == 0);
	UNIT_CHECK(strcmp(conf->cgroup_parent, "tenants/edge-1") == 0);
	UNIT_CHECK(conf->cgroups == CG_MODE_REQUIRED);
	UNIT_CHECK(strcmp(conf->log_level, "debug") == 0);
	UNIT_CHECK(conf->log_file != NULL &&
	    strcmp(conf->log_file, "/var/log/edgevisor.log") == 0);
	UNIT_CHECK(conf->check_timeout_ms == 1500);
	UNIT_CHECK((fc = config_find(conf, "hello_1")) != NULL);
	UNIT_CHECK(strcmp(fc->library, "/opt/fn/hello.so") == 0);
	UNIT_CHECK(fc->nlisten == 3);
	UNIT_CHECK(strcmp(fc->listen[1], "[::1]:8080") == 0);
	UNIT_CHECK(strcmp(fc->listen[2], "unix:/run/edgevisor/hello.sock") == 0);
	UNIT_CHECK(fc->policy == POLICY_PER_REQUEST && fc->workers == 7);
	UNIT_CHECK((pw = getpwnam("nobody")) != NULL);
	UNIT_CHECK(strcmp(fc->user, "nobody") == 0 && fc->uid == pw->pw_uid);
	UNIT_CHECK(strcmp(fc->group, "root") == 0 && fc->gid == 0);
	l = &fc->limits;
	UNIT_CHECK(l->memory_mb == 64 && l->function_memory_mb == 512);
	UNIT_CHECK(l->cpu_percent == 50 && l->function_cpu_percent == 150);
	UNIT_CHECK(l->cpu_time_ms == 2000 && l->wall_clock_ms == 150000);
	UNIT_CHECK(l->request_timeout_ms == 1000 && l->idle_timeout_ms == 2000);
	UNIT_CHECK(l->idle_worker_ms == 3000 && l->max_requests == 100);
	UNIT_CHECK(l->drain_timeout_ms == 0 && l->beforeunload_grace_ms == 500);
	UNIT_CHECK(l->max_header_bytes == 1024 && l->max_body_bytes == 0);
	UNIT_CHECK(l->soft_limit_percent == 80 && l->max_pending_tasks == 10);
	UNIT_CHECK(l->task_threads == 1 && l->nofile == 64 && l->max_connections == 3);
	UNIT_CHECK(l->max_pids == 16 && l->function_max_pids == 200);
out:
	config_free(conf);
}

/* A user without a group runs with the user's primary group. */
static void
case_user_primary_group(void)
{
	char err[512];
	struct sv_conf *conf;
	struct fn_conf *fc;
	struct passwd *pw;

	conf = config_load(VALID_DIR "/user_nobody/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK((pw = getpwnam("nobody")) != NULL);
	fc = TAILQ_FIRST(&conf->functions);
	UNIT_CHECK(fc->uid == pw->pw_uid && fc->gid == pw->pw_gid && fc->group == NULL);
out:
	config_free(conf);
}

static void
case_policies(void)
{
	char err[512];
	struct sv_conf *conf;
	struct fn_conf *w, *r, *o;

	conf = config_load(VALID_DIR "/all_policies/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(conf->nfunctions == 3);
	UNIT_CHECK((w = config_find(conf, "w")) != NULL && w->policy == POLICY_PER_WORKER);
	UNIT_CHECK((r = config_find(conf, "r")) != NULL && r->policy == POLICY_PER_REQUEST);
	UNIT_CHECK((o = config_find(conf, "o")) != NULL && o->policy == POLICY_ONESHOT);
	UNIT_CHECK(w->workers == 1 && r->workers == 256 && o->workers == 2);
	/* Kept in file order. */
	UNIT_CHECK(TAILQ_FIRST(&conf->functions) == w && TAILQ_NEXT(w, entry) == r);
	UNIT_CHECK(strcmp(config_policy_name(POLICY_PER_WORKER), "per_worker") == 0);
	UNIT_CHECK(strcmp(config_policy_name(POLICY_PER_REQUEST), "per_request") == 0);
	UNIT_CHECK(strcmp(config_policy_name(POLICY_ONESHOT), "oneshot") == 0);
	UNIT_CHECK(strcmp(config_policy_name((enum fn_policy)9), "unknown") == 0);
out:
	config_free(conf);
}

static void
case_admin_null(void)
{
	char err[512];
	struct sv_conf *conf;

	conf = config_load(VALID_DIR "/admin_null/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(conf->admin == NULL);
out:
	config_free(conf);
}

static void
case_missing_file(void)
{
	char err[512];
	struct sv_conf *conf;

	conf = config_load("tests/unit/config/no-such-file.conf", err, sizeof(err));
	UNIT_CHECK(conf == NULL);
	UNIT_CHECKF(strstr(err, "tests/unit/config/no-such-file.conf") != NULL &&
	    strstr(err, "No such file") != NULL, "message: %s", err);
	config_free(NULL);
out:
	;
}

/* The default config that `make run` serves. */
static void
case_default_conf(void)
{
	char err[512];
	struct sv_conf *conf;
	struct fn_conf *fc;
	static const char *const want[][2] = {
		{ "hello", "127.0.0.1:8080" },
		{ "echo", "127.0.0.1:8081" },
		{ "background", "127.0.0.1:8082" },
	};

	conf = config_load("supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(conf->nfunctions == 3 && conf->cgroups == CG_MODE_AUTO);
	for (size_t i = 0; i < 3; i++) {
		UNIT_CHECKF((fc = config_find(conf, want[i][0])) != NULL, "no %s", want[i][0]);
		UNIT_CHECK(fc->nlisten == 1 && strcmp(fc->listen[0], want[i][1]) == 0);
		UNIT_CHECK(fc->workers == 2 && fc->limits.memory_mb > 0);
	}
out:
	config_free(conf);
}

/* The metrics listener may be any TCP address; a null admin_token_file is none. */
static void
case_metrics(void)
{
	char err[512];
	struct sv_conf *conf;

	conf = config_load(VALID_DIR "/metrics_any_address/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(conf->metrics != NULL && strcmp(conf->metrics, "0.0.0.0:9101") == 0);
	UNIT_CHECK(conf->admin_token_file == NULL && conf->admin_token == NULL);
	config_free(conf);
	conf = config_load(VALID_DIR "/minimal/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	UNIT_CHECK(conf->metrics == NULL && conf->admin_token == NULL);
out:
	config_free(conf);
}

/*
 * admin_token_file, with files made here: git keeps no modes but 644/755, and the
 * point is the mode. Each case: the file's content and mode, the owner, and what the
 * error must say (NULL: it loads and the token is CONTENT without its newline).
 */
static void
case_token_file(void)
{
	static const struct {
		const char *content;
		mode_t mode;
		bool nobody;
		const char *want;
	} cases[] = {
		{ "0123456789abcdef-_.~+/==\n", 0600, false, NULL },
		{ "0123456789abcdefXY\r\n", 0400, false, NULL },
		{ "0123456789abcdef\n", 0644, false, "permissions 0644 are too open" },
		{ "0123456789abcdef\n", 0640, false, "permissions 0640 are too open" },
		{ "0123456789abcdef\n", 0602, false, "permissions 0602 are too open" },
		{ "0123456789abcdef\n", 0600, true, "owned by uid" },
		{ "short\n", 0600, false, "shorter than 16 characters" },
		{ "0123456789 abcdef\n", 0600, false, "outside [A-Za-z0-9-._~+/=]" },
		{ "0123456789abcdef\nsecond-line-here\n", 0600, false, "outside" },
		{ "=0123456789abcdef\n", 0600, false, "must start with" },
		{ "0123456789abcdef=x\n", 0600, false, "outside" },
		{ "", 0600, false, "shorter than 16" },
	};
	char dir[] = "/tmp/ev-unit-token.XXXXXX", tok[64], conf_path[64];
	char err[1024], want[300];
	struct sv_conf *conf = NULL;
	struct passwd *pw = getpwnam("nobody");
	FILE *f;

	UNIT_CHECK(mkdtemp(dir) != NULL);
	snprintf(tok, sizeof(tok), "%s/admin.token", dir);
	snprintf(conf_path, sizeof(conf_path), "%s/supervisor.conf", dir);
	UNIT_CHECK((f = fopen(conf_path, "w")) != NULL);
	fprintf(f, "{\n  \"admin\": \"127.0.0.1:9100\",\n  \"admin_token_file\": \"%s\",\n"
	    "  \"functions\": [ { \"name\": \"a\", \"library\": \"a.so\", "
	    "\"listen\": [\"127.0.0.1:9000\"] } ]\n}\n", tok);
	fclose(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unlink(tok);
		UNIT_CHECK((f = fopen(tok, "w")) != NULL);
		fputs(cases[i].content, f);
		fclose(f);
		UNIT_CHECK(chmod(tok, cases[i].mode) == 0);
		if (cases[i].nobody)
			UNIT_CHECK(pw != NULL && chown(tok, pw->pw_uid, pw->pw_gid) == 0);
		err[0] = '\0';
		conf = config_load(conf_path, err, sizeof(err));
		if (cases[i].want == NULL) {
			size_t n = strcspn(cases[i].content, "\r\n");

			UNIT_CHECKF(conf != NULL, "case %zu: %s", i, err);
			UNIT_CHECKF(conf->admin_token != NULL &&
			    strlen(conf->admin_token) == n &&
			    memcmp(conf->admin_token, cases[i].content, n) == 0,
			    "case %zu: token read as \"%s\"", i, conf->admin_token);
			UNIT_CHECK(strcmp(conf->admin_token_file, tok) == 0);
		} else {
			/* The usual FILE:LINE:COL: key: form, the path, never the token. */
			snprintf(want, sizeof(want), "%s:3:23: admin_token_file: %s: ", conf_path, tok);
			UNIT_CHECKF(conf == NULL, "case %zu loaded", i);
			UNIT_CHECKF(strncmp(err, want, strlen(want)) == 0 &&
			    strstr(err, cases[i].want) != NULL, "case %zu: \"%s\"", i, err);
			UNIT_CHECKF(strstr(err, "0123456789") == NULL, "case %zu: token in \"%s\"",
			    i, err);
		}
		config_free(conf);
		conf = NULL;
	}
out:
	config_free(conf);
	unlink(tok);
	unlink(conf_path);
	rmdir(dir);
}

/* Writes a config for the dynamic-user cases: functions NAMES (space-separated),
 * the state directory DIR, the range FIRST..LAST. */
static int
dyn_conf(const char *path, const char *dir, const char *names, unsigned first,
    unsigned last)
{
	char buf[256], *save, *n;
	FILE *f = fopen(path, "w");
	int port = 9000;

	if (f == NULL)
		return -1;
	fprintf(f, "{\n  \"state_directory\": \"%s\",\n  \"dynamic_users\": "
	    "{\"first\": %u, \"last\": %u},\n  \"functions\": [", dir, first, last);
	snprintf(buf, sizeof(buf), "%s", names);
	for (n = strtok_r(buf, " ", &save); n != NULL; n = strtok_r(NULL, " ", &save)) {
		fprintf(f, "%s\n    { \"name\": \"%s\", \"library\": \"a.so\", \"listen\": "
		    "[\"127.0.0.1:%d\"] }", port == 9000 ? "" : ",", n, port);
		port++;
	}
	fprintf(f, "\n  ]\n}\n");
	return fclose(f);
}

/* The uid of function NAME in a config of NAMES; applied (recorded) when APPLY.
 * Returns the uid, 0 on a refused load (ERR says why). */
static unsigned
dyn_uid(const char *path, const char *dir, const char *names, unsigned first,
    unsigned last, const char *name, bool apply, char *err, size_t len)
{
	struct sv_conf *conf;
	struct fn_conf *fc;
	unsigned uid = 0;

	err[0] = '\0';
	if (dyn_conf(path, dir, names, first, last) < 0 ||
	    (conf = config_load(path, err, len)) == NULL)
		return 0;
	if ((fc = config_find(conf, name)) != NULL && fc->uid_dynamic)
		uid = (unsigned)fc->uid;
	if (apply && identity_apply(conf, err, len) < 0)
		uid = 0;
	config_free(conf);
	return uid;
}

/*
 * Dynamic uids: distinct per function, outside passwd/group, recorded only when
 * applied, the same after a restart whatever else is added or removed, never given
 * to a second name even once the first is gone, and refused when the record is
 * writable by others or a recorded uid has become a real account.
 */
static void
case_dynamic_users(void)
{
	char dir[64] = "/tmp/ev-unit-dyn.XXXXXX", conf_path[96], state[96], err[1024];
	unsigned a, b, a2, b2, c, b3;
	struct sv_conf *conf = NULL;
	struct stat st;
	FILE *f;

	if (geteuid() != 0) {
		/* Not root: no dynamic uid at all, the record is never read. */
		UNIT_CHECK((conf = config_load(VALID_DIR "/minimal/supervisor.conf", err,
		    sizeof(err))) != NULL && !TAILQ_FIRST(&conf->functions)->uid_dynamic);
		goto out;
	}
	log_level = LOG_LVL_WARN;   /* identity_apply's ev=dynamic_user lines */
	UNIT_CHECK(mkdtemp(dir) != NULL);
	snprintf(conf_path, sizeof(conf_path), "%s/supervisor.conf", dir);
	snprintf(state, sizeof(state), "%s/state/" IDENTITY_FILE, dir);
	strcat(dir, "/state");
	/* -t's view: picked, nothing written (the state directory does not even exist). */
	a = dyn_uid(conf_path, dir, "alpha beta", 61184, 65519, "alpha", false, err,
	    sizeof(err));
	b = dyn_uid(conf_path, dir, "alpha beta", 61184, 65519, "beta", false, err,
	    sizeof(err));
	UNIT_CHECKF(a != 0 && b != 0 && a != b, "alpha %u beta %u: %s", a, b, err);
	UNIT_CHECK(getpwuid(a) == NULL && getgrgid(a) == NULL && getpwuid(b) == NULL);
	UNIT_CHECK(stat(state, &st) < 0 && errno == ENOENT);
	/* Applied: recorded, and a later load (a restart) with beta first and a new
	 * function in front gives both the same uids. */
	UNIT_CHECK(dyn_uid(conf_path, dir, "alpha beta", 61184, 65519, "alpha", true, err,
	    sizeof(err)) == a);
	UNIT_CHECK(stat(state, &st) == 0 && (st.st_mode & 022) == 0);
	a2 = dyn_uid(conf_path, dir, "gamma beta alpha", 61184, 65519, "alpha", true, err,
	    sizeof(err));
	b2 = dyn_uid(conf_path, dir, "gamma beta alpha", 61184, 65519, "beta", false, err,
	    sizeof(err));
	UNIT_CHECKF(a2 == a && b2 == b, "after restart alpha %u beta %u (%s)", a2, b2, err);
	/* A range of two: x and y take both; with x removed y keeps its uid, and a new
	 * z gets nothing rather than x's uid (x's files would become z's). */
	UNIT_CHECK(dyn_uid(conf_path, dir, "x y", 62000, 62001, "x", true, err,
	    sizeof(err)) != 0);
	b = dyn_uid(conf_path, dir, "x y", 62000, 62001, "y", false, err, sizeof(err));
	b3 = dyn_uid(conf_path, dir, "y", 62000, 62001, "y", true, err, sizeof(err));
	UNIT_CHECKF(b != 0 && b3 == b, "y %u then %u", b, b3);
	c = dyn_uid(conf_path, dir, "y z", 62000, 62001, "z", false, err, sizeof(err));
	UNIT_CHECKF(c == 0 && strstr(err, "functions[1].name: no free uid left in "
	    "dynamic_users 62000..62001 for \"z\"") != NULL, "z %u: %s", c, err);
	/* A recorded uid that is now a real account (nobody, 65534) is refused. */
	UNIT_CHECK((f = fopen(state, "a")) != NULL);
	fprintf(f, "ghost 65534\n");
	fclose(f);
	c = dyn_uid(conf_path, dir, "ghost", 65530, 65534, "ghost", false, err, sizeof(err));
	UNIT_CHECKF(c == 0 && strstr(err, "functions[0].name: dynamic uid 65534 of "
	    "\"ghost\" is now the account \"nobody\"") != NULL, "%s", err);
	/* A record others may write decides nothing. */
	UNIT_CHECK(chmod(state, 0666) == 0);
	c = dyn_uid(conf_path, dir, "alpha", 61184, 65519, "alpha", false, err, sizeof(err));
	UNIT_CHECKF(c == 0 && strstr(err, ":2:22: state_directory: ") != NULL &&
	    strstr(err, "writable by nobody else") != NULL, "%s", err);
	UNIT_CHECK(chmod(state, 0644) == 0);
	/* Garbage in the record is refused with its line. */
	UNIT_CHECK((f = fopen(state, "a")) != NULL);
	fprintf(f, "bad line here\n");
	fclose(f);
	c = dyn_uid(conf_path, dir, "alpha", 61184, 65519, "alpha", false, err, sizeof(err));
	UNIT_CHECKF(c == 0 && strstr(err, IDENTITY_FILE ":") != NULL &&
	    strstr(err, "not \"NAME UID\"") != NULL, "%s", err);
out:
	config_free(conf);
	if (strstr(dir, "/state") != NULL) {
		char lock[128];

		snprintf(lock, sizeof(lock), "%s.lock", state);
		unlink(state);
		unlink(lock);
		rmdir(dir);
		*strrchr(dir, '/') = '\0';
	}
	unlink(conf_path);
	rmdir(dir);
}

/* The rule for syscall NAME in P, or NULL. */
static const struct wire_syscall *
rule(const struct fn_seccomp *p, const char *name)
{
	int nr = seccomp_syscall_resolve_name(name);

	for (uint32_t i = 0; i < p->n; i++)
		if (p->rules[i].nr == nr)
			return &p->rules[i];
	return NULL;
}

/* "seccomp" absent or "default": the default profile; "off": none; an object
 * changes the default: deny adds (or makes a conditional rule total), allow drops. */
static void
case_seccomp(void)
{
	char err[512];
	struct sv_conf *conf;
	const struct fn_seccomp *d, *e, *o, *c;
	const char *always[] = { "mount", "umount2", "pivot_root", "ptrace", "process_vm_readv",
	    "process_vm_writev", "kexec_load", "bpf", "perf_event_open", "keyctl", "add_key",
	    "userfaultfd", "unshare", "setns", "init_module", "finit_module", "reboot",
	    "swapon", "clock_settime", "settimeofday", NULL };

	conf = config_load(VALID_DIR "/seccomp_forms/supervisor.conf", err, sizeof(err));
	UNIT_CHECKF(conf != NULL, "%s", err);
	d = &config_find(conf, "d")->seccomp;
	e = &config_find(conf, "e")->seccomp;
	o = &config_find(conf, "o")->seccomp;
	c = &config_find(conf, "c")->seccomp;
	UNIT_CHECK(d->on && d->arch == seccomp_arch_native() && d->n > 40);
	UNIT_CHECK(memcmp(d, e, sizeof(*d)) == 0);
	for (const char **n = always; *n != NULL; n++)
		UNIT_CHECKF(rule(d, *n) != NULL && rule(d, *n)->kind == WIRE_SC_ALWAYS, "%s", *n);
	UNIT_CHECK(rule(d, "clone") != NULL && rule(d, "clone")->kind == WIRE_SC_CLONE_NS);
	UNIT_CHECK(rule(d, "clone3") != NULL && rule(d, "clone3")->kind == WIRE_SC_ENOSYS);
	UNIT_CHECK(rule(d, "personality")->kind == WIRE_SC_PERSONALITY);
	UNIT_CHECK(rule(d, "read") == NULL && rule(d, "chdir") == NULL);
	UNIT_CHECK(!o->on && o->n == 0);
	UNIT_CHECK(c->on && c->n == d->n - 1);
	UNIT_CHECK(rule(c, "chdir") != NULL && rule(c, "chdir")->kind == WIRE_SC_ALWAYS);
	UNIT_CHECK(rule(c, "clone")->kind == WIRE_SC_ALWAYS);
	UNIT_CHECK(rule(c, "ptrace") == NULL && rule(c, "personality") == NULL);
	UNIT_CHECK(rule(c, "mount") != NULL);
out:
	config_free(conf);
}

/* Guards against a suite that passes because it found nothing to run. */
static void
case_counts(void)
{
	UNIT_CHECKF(nvalid >= 6 && ninvalid >= 25, "found %d valid, %d invalid cases",
	    nvalid, ninvalid);
out:
	;
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	run_valid();
	run_invalid();
	unit_run("case_counts", case_counts);
	unit_run("defaults", case_defaults);
	unit_run("full_values", case_full);
	unit_run("user_primary_group", case_user_primary_group);
	unit_run("policies", case_policies);
	unit_run("admin_null", case_admin_null);
	unit_run("missing_file", case_missing_file);
	unit_run("default_supervisor_conf", case_default_conf);
	unit_run("metrics", case_metrics);
	unit_run("admin_token_file", case_token_file);
	unit_run("dynamic_users", case_dynamic_users);
	unit_run("seccomp", case_seccomp);
	return unit_exit();
}
