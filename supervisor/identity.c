/*
 * identity.c - dynamic uids for functions without "user" (identity.h): the record
 * in the state directory, the pick, and writing new picks when a config is taken.
 */
#include "identity.h"
#include "../common/log.h"
#include "../common/name_index.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 32

struct id_entry {
	char name[NAME_MAX_LEN + 1];
	char uidkey[12];             /* uid as decimal text: its key in by_uid */
	uint32_t uid;
	bool recorded;               /* read from the file (else picked by this table) */
};

struct id_table {
	struct id_entry **e;         /* in file order (each its own allocation: indexed) */
	size_t n, cap;
	/* By name and by uid: a 500-function load asks both for every function. */
	struct name_index by_name, by_uid;
	/* Every uid and gid the passwd and group databases enumerate, sorted: read once
	 * per table (a load), since a lookup per function costs a round of NSS file
	 * opens and userdb queries, and 500 of them stalled a reload by ~50 ms. */
	uint32_t *acct;
	size_t nacct;
	bool acct_read;              /* the snapshot is there */
	bool acct_tried;             /* it was attempted (once per table) */
};

static struct id_entry *
find_name(const struct id_table *t, const char *name)
{
	return name_index_find(&t->by_name, name);
}

static struct id_entry *
find_uid(const struct id_table *t, uint32_t uid)
{
	char key[12];

	snprintf(key, sizeof(key), "%u", uid);
	return name_index_find(&t->by_uid, key);
}

/* Gives E the uid UID (E is in the table; no other entry has UID). 0 or -1. */
static int
set_uid(struct id_table *t, struct id_entry *e, uint32_t uid)
{
	name_index_del(&t->by_uid, e->uidkey);
	e->uid = uid;
	snprintf(e->uidkey, sizeof(e->uidkey), "%u", uid);
	return name_index_add(&t->by_uid, e->uidkey, e, NULL) < 0 ? -1 : 0;
}

static int
add(struct id_table *t, const char *name, uint32_t uid, bool recorded)
{
	struct id_entry *ne;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct id_entry **e = realloc(t->e, cap * sizeof(*e));

		if (e == NULL)
			return -1;
		t->e = e;
		t->cap = cap;
	}
	if ((ne = calloc(1, sizeof(*ne))) == NULL)
		return -1;
	snprintf(ne->name, sizeof(ne->name), "%s", name);
	ne->uid = uid;
	snprintf(ne->uidkey, sizeof(ne->uidkey), "%u", uid);
	ne->recorded = recorded;
	/* (Both keys are new: callers looked them up first.) */
	if (name_index_add(&t->by_name, ne->name, ne, NULL) != 0) {
		free(ne);
		return -1;
	}
	if (name_index_add(&t->by_uid, ne->uidkey, ne, NULL) != 0) {
		name_index_del(&t->by_name, ne->name);
		free(ne);
		return -1;
	}
	t->e[t->n++] = ne;
	return 0;
}

void
identity_free(struct id_table *t)
{
	if (t == NULL)
		return;
	free(t->acct);
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i]);
	free(t->e);
	name_index_free(&t->by_name);
	name_index_free(&t->by_uid);
	free(t);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int
acct_push(struct id_table *t, size_t *cap, uint32_t id)
{
	if (t->nacct == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		uint32_t *a = realloc(t->acct, nc * sizeof(*a));

		if (a == NULL)
			return -1;
		t->acct = a;
		*cap = nc;
	}
	t->acct[t->nacct++] = id;
	return 0;
}

/* The accounts snapshot (see struct id_table); on failure the table has none, and
 * account_taken() falls back to one lookup per question. */
static void
acct_read(struct id_table *t)
{
	struct passwd *pw;
	struct group *gr;
	size_t cap = 0, n = 0;
	int ok = 0;

	t->acct_read = t->acct_tried = true;
	setpwent();
	while (ok == 0 && (pw = getpwent()) != NULL)
		ok = acct_push(t, &cap, (uint32_t)pw->pw_uid);
	endpwent();
	setgrent();
	while (ok == 0 && (gr = getgrent()) != NULL)
		ok = acct_push(t, &cap, (uint32_t)gr->gr_gid);
	endgrent();
	if (ok < 0) {
		free(t->acct);
		t->acct = NULL;
		t->nacct = 0;
		t->acct_read = false;
		return;
	}
	qsort(t->acct, t->nacct, sizeof(*t->acct), cmp_u32);
	for (size_t i = 0; i < t->nacct; i++)
		if (n == 0 || t->acct[n - 1] != t->acct[i])
			t->acct[n++] = t->acct[i];
	t->nacct = n;
}

/*
 * Whether ID is a passwd uid or a group gid, from the snapshot. EXACT asks NSS
 * directly as well: a source that does not enumerate (some LDAP setups) is still
 * asked about a uid before it is handed out for the first time.
 */
static bool
account_taken(struct id_table *t, uint32_t id, bool exact, const char **name)
{
	struct passwd *pw;
	struct group *gr;

	*name = NULL;
	if (!t->acct_tried)
		acct_read(t);
	if (t->acct_read && bsearch(&id, t->acct, t->nacct, sizeof(id), cmp_u32) != NULL)
		exact = true;   /* taken: ask once more for its name */
	else if (t->acct_read && !exact)
		return false;
	if ((pw = getpwuid(id)) != NULL) {
		*name = pw->pw_name;
		return true;
	}
	if ((gr = getgrgid(id)) != NULL) {
		*name = gr->gr_name;
		return true;
	}
	return false;
}

/* One "NAME UID" line; names as the config allows them, so the file stays plain. */
static int
parse_line(char *line, char *name, uint32_t *uid)
{
	char *sp = strchr(line, ' '), *end;
	unsigned long v;
	size_t l;

	if (sp == NULL)
		return -1;
	l = (size_t)(sp - line);
	if (l == 0 || l > NAME_MAX_LEN || strspn(line, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != l)
		return -1;
	errno = 0;
	v = strtoul(sp + 1, &end, 10);
	if (errno != 0 || end == sp + 1 || *end != '\0' || v == 0 || v >= 0xffffffffUL)
		return -1;
	memcpy(name, line, l);
	name[l] = '\0';
	*uid = (uint32_t)v;
	return 0;
}

int
identity_read(const char *dir, struct id_table **out, char *why, size_t len)
{
	char path[4200], *line = NULL, name[NAME_MAX_LEN + 1];
	struct id_table *t;
	size_t cap = 0;
	struct stat st;
	FILE *f = NULL;
	int rc = -1, lineno = 0;
	ssize_t n;
	uint32_t uid;

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(why, len, "%s", strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/" IDENTITY_FILE, dir);
	if ((f = fopen(path, "re")) == NULL) {
		if (errno == ENOENT) {
			*out = t;
			return 0;
		}
		snprintf(why, len, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fileno(f), &st) < 0) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 022) != 0) {
		snprintf(why, len, "%s: must be owned by uid %u and writable by nobody else "
		    "(it decides which uid each function runs as)", path, (unsigned)geteuid());
		goto out;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if (n > 0 && line[n - 1] == '\n')
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (parse_line(line, name, &uid) < 0 || find_name(t, name) != NULL ||
		    find_uid(t, uid) != NULL) {
			snprintf(why, len, "%s:%d: not \"NAME UID\", or a name or uid seen twice",
			    path, lineno);
			goto out;
		}
		if (add(t, name, uid, true) < 0) {
			snprintf(why, len, "%s", strerror(errno));
			goto out;
		}
	}
	*out = t;
	t = NULL;
	rc = 0;
out:
	free(line);
	if (f != NULL)
		fclose(f);
	identity_free(t);
	return rc;
}

/* FNV-1a: fixed and documented, so a lost record rebuilds the same picks in order. */
static uint32_t
name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

int
identity_pick(struct id_table *t, const char *name, uint32_t first, uint32_t last,
    uid_t *uid, bool *recorded, char *why, size_t len)
{
	struct id_entry *e = find_name(t, name);
	uint64_t span = (uint64_t)last - first + 1;
	const char *acct;

	if (e != NULL && e->uid >= first && e->uid <= last) {
		/* A real account created on it since: running the tenant as that account
		 * (or moving the tenant off its files) is the operator's call. */
		if (account_taken(t, e->uid, false, &acct)) {
			snprintf(why, len, "dynamic uid %u of \"%s\" is now the account "
			    "\"%s\": give the function a \"user\", or remove its line from the "
			    "state file to pick another", e->uid, name, acct ? acct : "?");
			return -1;
		}
		*uid = e->uid;
		*recorded = e->recorded;
		return 0;
	}
	/* Recorded outside the range: the operator moved the range; pick anew. */
	for (uint64_t i = 0, h = name_hash(name) % span; i < span; i++) {
		uint32_t cand = first + (uint32_t)((h + i) % span);
		struct id_entry *o = find_uid(t, cand);

		if ((o != NULL && o != e) || account_taken(t, cand, true, &acct))
			continue;
		if (e != NULL) {
			if (set_uid(t, e, cand) < 0) {
				snprintf(why, len, "%s", strerror(errno));
				return -1;
			}
			e->recorded = false;
		} else if (add(t, name, cand, false) < 0) {
			snprintf(why, len, "%s", strerror(errno));
			return -1;
		}
		*uid = cand;
		*recorded = false;
		return 0;
	}
	snprintf(why, len, "no free uid left in dynamic_users %u..%u for \"%s\" (every "
	    "one is recorded or an account)", first, last, name);
	return -1;
}

/* Writes T whole next to the file and renames it over: never a half-written record. */
static int
write_table(const char *dir, const struct id_table *t, char *why, size_t len)
{
	char path[4200], tmp[4210];
	FILE *f;
	int dfd, rc = -1;

	snprintf(path, sizeof(path), "%s/" IDENTITY_FILE, dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if ((f = fopen(tmp, "we")) == NULL) {
		snprintf(why, len, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	fchmod(fileno(f), 0644);
	fprintf(f, "# edgevisor dynamic users: NAME UID. A line is a function's uid for "
	    "good;\n# delete it only if no file of that uid is left anywhere.\n");
	for (size_t i = 0; i < t->n; i++)
		fprintf(f, "%s %u\n", t->e[i]->name, t->e[i]->uid);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		snprintf(why, len, "%s: %s", tmp, strerror(errno));
		fclose(f);
		goto out;
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = 0;
out:
	if (rc < 0)
		unlink(tmp);
	return rc;
}

static int
record(struct sv_conf *conf, char *err, size_t len)
{
	char lock[4200];
	struct id_table *t = NULL;
	struct fn_conf *fc;
	bool dirty = false;
	int lfd = -1, rc = -1;

	TAILQ_FOREACH(fc, &conf->functions, entry)
		dirty |= fc->uid_dynamic && !fc->uid_recorded;
	if (!dirty)
		return 0;
	if (mkdir(conf->state_directory, 0755) < 0 && errno != EEXIST) {
		snprintf(err, len, "state_directory %s: %s", conf->state_directory,
		    strerror(errno));
		return -1;
	}
	/* Serializes against another supervisor (or a restart) sharing the directory. */
	snprintf(lock, sizeof(lock), "%s/" IDENTITY_FILE ".lock", conf->state_directory);
	if ((lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 ||
	    flock(lfd, LOCK_EX) < 0) {
		snprintf(err, len, "%s: %s", lock, strerror(errno));
		goto out;
	}
	if (identity_read(conf->state_directory, &t, err, len) < 0)
		goto out;
	TAILQ_FOREACH(fc, &conf->functions, entry) {
		struct id_entry *byname, *byuid;

		if (!fc->uid_dynamic || fc->uid_recorded)
			continue;
		byname = find_name(t, fc->name);
		byuid = find_uid(t, fc->uid);
		if (byname != NULL && byname->uid == fc->uid)
			continue;
		if (byuid != NULL || (byname != NULL && byname->uid >= conf->dyn_first &&
		    byname->uid <= conf->dyn_last)) {
			snprintf(err, len, "function %s: dynamic uid %u was recorded for another "
			    "function meanwhile (another supervisor shares %s); load again",
			    fc->name, (unsigned)fc->uid, conf->state_directory);
			goto out;
		}
		if (byname != NULL ? set_uid(t, byname, fc->uid) < 0 :
		    add(t, fc->name, fc->uid, false) < 0) {
			snprintf(err, len, "%s", strerror(errno));
			goto out;
		}
	}
	if (write_table(conf->state_directory, t, err, len) < 0)
		goto out;
	TAILQ_FOREACH(fc, &conf->functions, entry) {
		if (!fc->uid_dynamic || fc->uid_recorded)
			continue;
		fc->uid_recorded = true;
		log_info("dynamic_user", "fn=%s uid=%u gid=%u state=\"%s/" IDENTITY_FILE "\"",
		    fc->name, (unsigned)fc->uid, (unsigned)fc->gid, conf->state_directory);
	}
	rc = 0;
out:
	identity_free(t);
	if (lfd >= 0)
		close(lfd);
	return rc;
}

int
identity_apply(struct sv_conf *conf, char *err, size_t len)
{
	struct fn_conf *fc;

	if (record(conf, err, len) < 0)
		return -1;
	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (fc->uid == 0)
			log_warn("tenant_root", "fn=%s user=\"%s\" msg=\"workers of this function "
			    "run tenant code as root\"", fc->name, fc->user);
	return 0;
}
