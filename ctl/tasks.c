/*
 * tasks.c - `edgevisorctl tasks NAME` and `edgevisorctl tasks retry NAME ID`: the
 * durable tasks of one function, read from its journal directly (not through the
 * admin endpoint: edgevisorctl runs as root on the host, the journal is a file, and
 * the supervisor's loop never has to read it). Opened read-only for the listing;
 * the retry is one transaction beside the running workers (SQLite's WAL lets
 * readers and one writer at a time share the file; a busy journal is waited for).
 * The files are the tenant's: they are opened with the filesystem uid and gid of
 * the journal directory's owner, so a link the tenant planted is followed with its
 * rights, not root's.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../common/clock.h"
#include "../common/paths.h"
#include "../supervisor/dsn_file.h"
#include "../worker/durable_store.h"
#include "tasks.h"

#define LIST_PAGE 256
#define STATE_DEFAULT "/var/lib/edgevisor"

/* <state_directory>/durable/NAME/journal.db, state_directory from CONFIG if given. */
static int
journal_path(const char *config, const char *name, char *out, size_t len)
{
	char state[4096] = STATE_DEFAULT;

	if (config != NULL) {
		json_error_t je;
		json_t *root = json_load_file(config, 0, &je), *v;

		if (root == NULL) {
			fprintf(stderr, "edgevisorctl: %s:%d:%d: %s\n", config, je.line, je.column,
			    je.text);
			return -1;
		}
		if (json_is_string(v = json_object_get(root, "state_directory")))
			snprintf(state, sizeof(state), "%s", json_string_value(v));
		json_decref(root);
	} else if (getenv("EDGEVISOR_STATE_DIRECTORY") != NULL) {
		snprintf(state, sizeof(state), "%s", getenv("EDGEVISOR_STATE_DIRECTORY"));
	}
	if (*name == '\0' || strlen(name) > 64 ||
	    strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") !=
	    strlen(name)) {
		fprintf(stderr, "edgevisorctl: tasks: bad function name \"%s\"\n", name);
		return -1;
	}
	if (snprintf(out, len, "%s/durable/%s/journal.db", state, name) >= (int)len) {
		fprintf(stderr, "edgevisorctl: tasks: path too long\n");
		return -1;
	}
	return 0;
}

/*
 * NAME's connection string when CONFIG gives it "durable": {"backend": "postgresql"}
 * (in "functions"; a function from "include" is not looked for): 1 with *DSN set,
 * 0 for any other backend, -1 on error (said).
 */
static int
pg_dsn(const char *config, const char *name, char **dsn)
{
	json_error_t je;
	json_t *root, *fns, *fn, *d;
	const char *file = NULL;
	char err[600];
	size_t i;
	int rc = 0;

	*dsn = NULL;
	if (config == NULL || (root = json_load_file(config, 0, &je)) == NULL)
		return 0;   /* journal_path reports a bad file */
	fns = json_object_get(root, "functions");
	json_array_foreach(fns, i, fn) {
		const char *n = json_string_value(json_object_get(fn, "name"));

		if (n == NULL || strcmp(n, name) != 0)
			continue;
		d = json_object_get(fn, "durable");
		if (json_is_string(json_object_get(d, "backend")) &&
		    strcmp(json_string_value(json_object_get(d, "backend")), "postgresql") == 0)
			file = json_string_value(json_object_get(d, "dsn_file"));
		break;
	}
	if (file != NULL) {
		/* as the supervisor does: a private file, the DSN never printed */
		if (dsn_file_read(file, dsn, err, sizeof(err)) < 0) {
			fprintf(stderr, "edgevisorctl: tasks: %s\n", err);
			rc = -1;
		} else {
			rc = 1;
		}
	}
	json_decref(root);
	return rc;
}

static struct durable_store *
open_journal(const char *config, const char *name, uint32_t flags)
{
	struct durable_conf dc = { .backend = DURABLE_BACKEND_LOCAL, .function = name };
	struct durable_store *s;
	char path[4200], err[512], *dsn;
	struct stat st;
	int pg;

	if (journal_path(config, name, path, sizeof(path)) < 0 ||
	    (pg = pg_dsn(config, name, &dsn)) < 0)
		return NULL;
	if (pg) {
		dc.backend = DURABLE_BACKEND_POSTGRESQL;
		dc.dsn = dsn;
		s = durable_store_open(&dc, flags, err, sizeof(err));
		dsn_free(dsn);
		if (s == NULL)
			fprintf(stderr, "edgevisorctl: tasks: %s\n", err);
		return s;
	}
	{
		char dir[sizeof(path)];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", path);
		if ((slash = strrchr(dir, '/')) != NULL)
			*slash = '\0';
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "edgevisorctl: tasks: %s: %s\n", dir,
			    errno != 0 ? strerror(errno) : "not a directory");
			return NULL;
		}
		setfsgid(st.st_gid);
		setfsuid(st.st_uid);
	}
	/* Never create one: a missing journal means no task was ever enqueued. */
	if (stat(path, &st) < 0) {
		fprintf(stderr, "edgevisorctl: tasks: %s: %s (no durable task recorded yet, or "
		    "not a function with \"durable\")\n", path, strerror(errno));
		return NULL;
	}
	dc.path = path;
	if ((s = durable_store_open(&dc, flags, err, sizeof(err))) == NULL)
		fprintf(stderr, "edgevisorctl: tasks: %s\n", err);
	return s;
}

static const char *
state_label(const struct durable_info *d)
{
	if (d->state == DURABLE_PENDING && d->attempts > 0)
		return "retrying";
	return durable_state_name((int)d->state);
}

static void
fmt_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		snprintf(out, len, "-");
		return;
	}
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
cmd_tasks(const char *config, const char *name, bool json)
{
	struct durable_store *s = open_journal(config, name, DURABLE_OPEN_READONLY);
	struct durable_count counts[DURABLE_KIND_MAX + 1];
	struct durable_info *page = NULL;
	json_t *jc = NULL, *jt = NULL;
	int64_t after = 0, now = clock_wall_ms();
	size_t n, total = 0;
	char err[512];
	int rc = 1;

	if (s == NULL)
		return 1;
	if (s->ops->counts(s, counts, DURABLE_KIND_MAX + 1, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "edgevisorctl: tasks: %s\n", err);
		goto out;
	}
	if (json) {
		jc = json_array();
		jt = json_array();
	} else {
		printf("%-20s %8s %8s %8s %8s %9s %9s %8s %8s %10s\n", "KIND", "PENDING",
		    "RETRYING", "RUNNING", "DEAD", "ENQUEUED", "SUCCEEDED", "RETRIED", "FAILED",
		    "OLDEST_S");
	}
	for (size_t i = 0; i < n; i++) {
		const struct durable_count *c = &counts[i];
		double age = c->oldest_ms > 0 ? (double)(now - c->oldest_ms) / 1000.0 : 0;

		if (json)
			json_array_append_new(jc, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f}",
			    "kind", c->kind, "pending", (json_int_t)c->pending,
			    "retrying", (json_int_t)c->retrying, "running", (json_int_t)c->running,
			    "dead", (json_int_t)c->dead, "enqueued", (json_int_t)c->enqueued,
			    "succeeded", (json_int_t)c->succeeded, "retried", (json_int_t)c->retried,
			    "failed", (json_int_t)c->failed, "oldest_age_s", age));
		else
			printf("%-20s %8llu %8llu %8llu %8llu %9llu %9llu %8llu %8llu %10.1f\n", c->kind,
			    (unsigned long long)c->pending, (unsigned long long)c->retrying,
			    (unsigned long long)c->running, (unsigned long long)c->dead,
			    (unsigned long long)c->enqueued, (unsigned long long)c->succeeded,
			    (unsigned long long)c->retried, (unsigned long long)c->failed, age);
	}
	if ((page = calloc(LIST_PAGE, sizeof(*page))) == NULL)
		goto out;
	if (!json)
		printf("\n%-10s %-20s %-9s %-8s %-21s %-24s %s\n", "ID", "KIND", "STATE",
		    "ATTEMPTS", "NEXT_OR_LEASE_END", "OWNER", "LAST_ERROR");
	do {
		if (s->ops->list(s, -1, after, LIST_PAGE, page, &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "edgevisorctl: tasks: %s\n", err);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			const struct durable_info *d = &page[i];
			char when[32], att[24];

			fmt_time(d->state == DURABLE_DEAD ? d->finished_ms : d->run_at_ms, when,
			    sizeof(when));
			snprintf(att, sizeof(att), "%u/%u", d->attempts, d->max_attempts);
			if (json)
				json_array_append_new(jt, json_pack("{s:I, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:s, s:s}",
				    "id", (json_int_t)d->id, "kind", d->kind, "state", state_label(d),
				    "attempts", (int)d->attempts, "max_attempts", (int)d->max_attempts,
				    "created_ms", (json_int_t)d->created_ms,
				    "next_ms", (json_int_t)d->run_at_ms,
				    "finished_ms", (json_int_t)d->finished_ms, "owner", d->owner,
				    "why", d->why));
			else
				printf("%-10lld %-20s %-9s %-8s %-21s %-24s %s\n", (long long)d->id,
				    d->kind, state_label(d), att, when, d->owner[0] ? d->owner : "-",
				    d->why[0] ? d->why : "-");
			after = d->id;
			total++;
		}
	} while (n == LIST_PAGE);
	if (json) {
		json_t *doc = json_pack("{s:s, s:o, s:o}", "function", name, "kinds", jc,
		    "tasks", jt);

		jc = jt = NULL;
		json_dumpf(doc, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(doc);
	} else if (total == 0) {
		printf("(no pending, running, retrying or dead task)\n");
	}
	rc = 0;
out:
	json_decref(jc);
	json_decref(jt);
	free(page);
	s->ops->close(s);
	return rc;
}

int
cmd_tasks_retry(const char *config, const char *name, const char *id_text)
{
	struct durable_store *s;
	char *end, err[512];
	long long id;
	int rc = 0;

	errno = 0;
	id = strtoll(id_text, &end, 10);
	if (errno != 0 || *end != '\0' || id <= 0) {
		fprintf(stderr, "edgevisorctl: tasks retry: bad task id \"%s\"\n", id_text);
		return 1;
	}
	if ((s = open_journal(config, name, 0)) == NULL)
		return 1;
	if (s->ops->retry(s, id, clock_wall_ms(), err, sizeof(err)) < 0) {
		fprintf(stderr, "edgevisorctl: tasks retry: %s\n", err);
		rc = 1;
	} else {
		printf("task %lld of %s: pending again (attempts reset)\n", id, name);
	}
	s->ops->close(s);
	return rc;
}
