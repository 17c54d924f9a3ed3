/*
 * cgroup.c - the supervisor's cgroup tree (<base>/supervisor, <base>/<fn>,
 * <base>/<fn>/w<ID>) on cgroup v1 or v2: detection, building, caps, workers,
 * teardown. With cgroup_fs.c (one directory's files), the only user of libcgroup.
 *
 * libcgroup creates, sets, reads, attaches the supervisor and (v1) deletes. Where it
 * has no call or misbehaves (cgroup.subtree_control, cgroup.kill, cgroup.procs,
 * v2 deletion, the pre-exec attach of a forked child) the file is used directly,
 * and every libcgroup call falls back to the file when it fails, so the errno we
 * report is the kernel's. With EDGEVISOR_CGROUP_ROOT set (tests, VMs) libcgroup is
 * bypassed: it only knows the mounts in /proc/mounts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <libcgroup.h>
#include <linux/magic.h>

#include "cgroup.h"
#include "cgroup_fs.h"
#include "cgroup_path.h"
#include "list.h"
#include "log.h"

#define CG_DEFAULT_ROOT	"/sys/fs/cgroup"
#define CG_LEAF		"supervisor"
#define CG_PERIOD_US	100000
#define CG_RETRY_MS	20		/* a busy cgroup's removal is tried again after */
#define CG_RETRY_MAX	100		/* ... and given up (logged) after 2 s */

struct cg_state cg = {
	.h = { { .h_ctrl = "cpu" }, { .h_ctrl = "cpuacct" }, { .h_ctrl = "memory" },
	    { .h_ctrl = "pids" } },
};

static char cg_errbuf[512];

static void	set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void	teardown(bool functions);
static void	reset(void);
static void	retry_cancel(const char *sub);

static void
set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cg_errbuf, sizeof(cg_errbuf), fmt, ap);
	va_end(ap);
}


/* MOUNT/BASE[/SUB] of H as one log value (errno kept for the caller's strerror). */
static const char *
qpath(const struct cg_hier *h, const char *sub)
{
	char path[PATH_MAX];
	int saved = errno;

	if (cg_path(path, sizeof(path), h, sub, NULL) < 0)
		snprintf(path, sizeof(path), "(too long)");
	errno = saved;
	return log_qv(path);
}

/* Function cgroups left under <base> by an earlier run that did not shut down. */
static void
stale_cleanup(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	for (int i = 0; i < H_MAX; i++) {
		if (!cg.h[i].h_on || cg_path(path, sizeof(path), &cg.h[i], NULL,
		    NULL) < 0 || (d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.' ||
			    strcmp(de->d_name, CG_LEAF) == 0)
				continue;
			log_info("cgroup_stale", "path=%s", qpath(&cg.h[i], de->d_name));
			cgx_remove_tree(&cg.h[i], de->d_name, 1);
		}
		closedir(d);
	}
}

/*
 * Our own cgroup in each hierarchy from /proc/self/cgroup: the "0::" line on v2,
 * the line naming the controller on v1. Stored without the leading '/'.
 */
static int
read_own(void)
{
	char line[PATH_MAX + 64], *ctrls, *path, *tok, *save;
	bool found = false;
	FILE *f;

	if ((f = fopen("/proc/self/cgroup", "re")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if ((ctrls = strchr(line, ':')) == NULL ||
		    (path = strchr(++ctrls, ':')) == NULL)
			continue;
		*path++ = '\0';
		while (*path == '/')
			path++;
		if (cg.version == 2) {
			if (*ctrls == '\0') {
				snprintf(cg.h[0].h_own, sizeof(cg.h[0].h_own), "%s", path);
				found = true;
			}
			continue;
		}
		for (tok = strtok_r(ctrls, ",", &save); tok != NULL;
		    tok = strtok_r(NULL, ",", &save))
			for (int i = 0; i < H_MAX; i++)
				if (strcmp(tok, cg.h[i].h_ctrl) == 0) {
					snprintf(cg.h[i].h_own, sizeof(cg.h[i].h_own),
					    "%s", path);
					found = true;
				}
	}
	fclose(f);
	if (!found)
		errno = ENOENT;
	return found ? 0 : -1;
}

static long
fs_magic(const char *path)
{
	struct statfs sfs;

	return statfs(path, &sfs) < 0 ? -1 : (long)sfs.f_type;
}

/* True if DIR/cgroup.controllers lists cpu and memory. */
static bool
v2_has_controllers(const char *dir)
{
	char path[PATH_MAX], buf[512];

	if (cgfs_pathf(path, sizeof(path), "%s/cgroup.controllers", dir) < 0 ||
	    cgfs_read(path, buf, sizeof(buf)) < 0)
		return false;
	return cgfs_has_word(buf, "cpu") && cgfs_has_word(buf, "memory");
}

/* Finds the hierarchies under ROOT: which version, which mounts. */
static int
detect(const char *root, bool override)
{
	char path[PATH_MAX], *mp;
	long magic = fs_magic(root);

	if (cgfs_pathf(path, sizeof(path), "%s/cgroup.controllers", root) < 0)
		return -1;
	if (magic == CGROUP2_SUPER_MAGIC || (override && cgfs_exists(path))) {
		cg.version = 2;
		snprintf(cg.h[0].h_mount, sizeof(cg.h[0].h_mount), "%s", root);
		goto found;
	}
	/* Hybrid: the unified mount counts only if cpu and memory live there. */
	if (!override && cgfs_pathf(path, sizeof(path), "%s/unified", root) == 0 &&
	    fs_magic(path) == CGROUP2_SUPER_MAGIC && v2_has_controllers(path)) {
		cg.version = 2;
		snprintf(cg.h[0].h_mount, sizeof(cg.h[0].h_mount), "%s", path);
		goto found;
	}
	cg.version = 1;
	for (int i = 0; i < H_MAX; i++) {
		mp = NULL;
		if (!override && cg.lib &&
		    cgroup_get_subsys_mount_point(cg.h[i].h_ctrl, &mp) == 0) {
			snprintf(cg.h[i].h_mount, sizeof(cg.h[i].h_mount), "%s", mp);
			free(mp);
		} else {
			free(mp);
			if (cgfs_pathf(cg.h[i].h_mount, sizeof(cg.h[i].h_mount), "%s/%s",
			    root, cg.h[i].h_ctrl) < 0)
				cg.h[i].h_mount[0] = '\0';
			else if (!override &&
			    fs_magic(cg.h[i].h_mount) != CGROUP_SUPER_MAGIC)
				cg.h[i].h_mount[0] = '\0';
		}
		cg.h[i].h_on = cg.h[i].h_mount[0] != '\0' &&
		    access(cg.h[i].h_mount, F_OK) == 0;
	}
	/* cpu,cpuacct co-mounted: one hierarchy serves both. */
	if (cg.h[H_CPUACCT].h_on && cg.h[H_CPU].h_on) {
		char a[PATH_MAX], b[PATH_MAX];

		if (realpath(cg.h[H_CPU].h_mount, a) != NULL &&
		    realpath(cg.h[H_CPUACCT].h_mount, b) != NULL && strcmp(a, b) == 0)
			cg.h[H_CPUACCT].h_on = false;
	}
	if (!cg.h[H_CPU].h_on || !cg.h[H_MEM].h_on) {
		set_err("no cgroup v2 with cpu and memory and no v1 %s hierarchy under %s",
		    !cg.h[H_CPU].h_on ? "cpu" : "memory", root);
		errno = ENOENT;
		return -1;
	}
found:
	if (cg.version == 2)
		for (int i = 1; i < H_MAX; i++)
			cg.h[i].h_on = false;
	cg.fake = override && fs_magic(cg.h[0].h_mount) != CGROUP2_SUPER_MAGIC &&
	    fs_magic(cg.h[0].h_mount) != CGROUP_SUPER_MAGIC;
	cg.h[0].h_on = true;
	return 0;
}

/* Explains a failed mkdir/write under DIR in words an operator can act on. */
static void
explain(const char *what, const char *path, int e)
{
	const char *why = "";

	if (e == EACCES || e == EPERM)
		why = geteuid() == 0 ? " (cgroup not delegated to us)" :
		    " (not root and the cgroup is not delegated to this user)";
	else if (e == EROFS)
		why = " (cgroup filesystem is read-only)";
	else if (e == EBUSY)
		why = " (the parent cgroup still holds other processes)";
	set_err("%s %s: %s%s", what, path, strerror(e), why);
}

/*
 * Enables CTRLS ("+cpu +memory[ +pids]") in the subtree_control at PATH. If that
 * fails with +pids, pids is dropped (a warning, not a failure) and it is tried again.
 */
static int
v2_enable(const char *path, const char *ctrls)
{
	char without[32], *p;

	if (cgfs_write(path, ctrls, strlen(ctrls)) == 0)
		return 0;
	if (!cg.pids || strstr(ctrls, "+pids") == NULL)
		return -1;
	log_warn("cgroup_pids_off", "path=%s err=%s msg=\"max_pids is not enforced\"",
	    log_qv(path), log_qv(strerror(errno)));
	cg.pids = false;
	/* +pids is always the last word. */
	snprintf(without, sizeof(without), "%s", ctrls);
	if ((p = strstr(without, "+pids")) != NULL) {
		if (p > without)
			p--;
		*p = '\0';
	}
	return without[0] == '\0' ? 0 : cgfs_write(path, without, strlen(without));
}

/*
 * v2: the supervisor into its leaf, then +cpu +memory (and +pids where the
 * delegation has it) for the tree (no internal processes).
 */
static int
v2_build(void)
{
	static const char *const names[] = { "cpu", "memory", "pids" };
	struct cg_hier *h = &cg.h[0];
	char path[PATH_MAX], own[PATH_MAX], buf[512], ctrls[32], need[32], *p;
	size_t nl = 0, ol = 0;

	if (cgfs_pathf(own, sizeof(own), "%s%s%s", h->h_mount, h->h_own[0] ? "/" : "",
	    h->h_own) < 0 ||
	    cgfs_pathf(path, sizeof(path), "%s/cgroup.controllers", own) < 0)
		return -1;
	if (cgfs_read(path, buf, sizeof(buf)) < 0) {
		explain("cannot read", path, errno);
		return -1;
	}
	if (!cgfs_has_word(buf, "cpu") || !cgfs_has_word(buf, "memory")) {
		set_err("controller %s not available in %s (cgroup.controllers: %.*s)",
		    !cgfs_has_word(buf, "cpu") ? "cpu" : "memory", own,
		    (int)strcspn(buf, "\n"), buf);
		errno = ENOTSUP;
		return -1;
	}
	cg.pids = cgfs_has_word(buf, "pids");
	snprintf(ctrls, sizeof(ctrls), "+cpu +memory%s", cg.pids ? " +pids" : "");
	if (cgx_create(h, NULL) < 0) {
		cg_path(path, sizeof(path), h, NULL, NULL);
		explain("cannot create", path, errno);
		return -1;
	}
	if (cgx_create(h, CG_LEAF) < 0 ||
	    cg_path(path, sizeof(path), h, CG_LEAF, "cgroup.procs") < 0 ||
	    cgfs_write_pid(path, getpid()) < 0) {
		explain("cannot move the supervisor into", path, errno);
		return -1;
	}
	h->h_moved = true;
	/*
	 * The parent of <base> must pass the controllers down too. Only what it lacks
	 * is enabled, and only that is switched off again at teardown.
	 */
	if (cgfs_pathf(path, sizeof(path), "%s/cgroup.subtree_control", own) < 0)
		return -1;
	if (cgfs_read(path, buf, sizeof(buf)) < 0)
		buf[0] = '\0';
	need[0] = cg.own_off[0] = '\0';
	for (size_t i = 0; i < (cg.pids ? 3u : 2u); i++) {
		if (cgfs_has_word(buf, names[i]))
			continue;
		nl += (size_t)snprintf(need + nl, sizeof(need) - nl, "%s+%s",
		    nl ? " " : "", names[i]);
		ol += (size_t)snprintf(cg.own_off + ol, sizeof(cg.own_off) - ol, "%s-%s",
		    ol ? " " : "", names[i]);
	}
	if (need[0] != '\0' && v2_enable(path, need) < 0) {
		cg.own_off[0] = '\0';
		explain("cannot enable +cpu +memory in", path, errno);
		return -1;
	}
	/* Not enabled after all: nothing to switch off. */
	if (!cg.pids && (p = strstr(cg.own_off, "-pids")) != NULL) {
		if (p > cg.own_off)
			p--;
		*p = '\0';
	}
	/* At the root they stay: other cgroups may rely on them. */
	if (h->h_own[0] == '\0')
		cg.own_off[0] = '\0';
	snprintf(ctrls, sizeof(ctrls), "+cpu +memory%s", cg.pids ? " +pids" : "");
	if (cg_path(path, sizeof(path), h, NULL, "cgroup.subtree_control") < 0 ||
	    v2_enable(path, ctrls) < 0) {
		explain("cannot enable +cpu +memory in", path, errno);
		return -1;
	}
	if (cgfs_read(path, buf, sizeof(buf)) < 0 || !cgfs_has_word(buf, "cpu") ||
	    !cgfs_has_word(buf, "memory")) {
		set_err("%s does not list cpu and memory after enabling them", path);
		errno = ENOTSUP;
		return -1;
	}
	if (cg.pids && !cgfs_has_word(buf, "pids")) {
		log_warn("cgroup_pids_off", "path=%s msg=\"pids not enabled: max_pids is "
		    "not enforced\"", log_qv(path));
		cg.pids = false;
	}
	return 0;
}

/* v1: the same tree in every hierarchy; the supervisor into its leaf in each. */
static int
v1_build(void)
{
	char path[PATH_MAX], rel[PATH_MAX];
	struct cgroup *c;
	uint64_t hier;
	int r;

	for (int i = 0; i < H_MAX; i++) {
		struct cg_hier *h = &cg.h[i];

		if (!h->h_on)
			continue;
		if (cgx_create(h, NULL) < 0) {
			cg_path(path, sizeof(path), h, NULL, NULL);
			explain("cannot create", path, errno);
			goto fail;
		}
		/*
		 * Without use_hierarchy a function cap would not bound its workers;
		 * it can only be switched on while <base> has no children.
		 */
		if (i == H_MEM && cgx_get_u64(h, NULL, "memory.use_hierarchy",
		    &hier) == 0 && hier == 0 &&
		    cgx_set(h, NULL, "memory.use_hierarchy", "1") < 0)
			log_warn("cgroup_use_hierarchy", "path=%s err=%s",
			    qpath(h, NULL), log_qv(strerror(errno)));
		if (cgx_create(h, CG_LEAF) < 0) {
			cg_path(path, sizeof(path), h, CG_LEAF, NULL);
			explain("cannot create", path, errno);
			goto fail;
		}
		r = ECGFAIL;
		if (cg.lib && cg_rel(rel, sizeof(rel), h, CG_LEAF) == 0 &&
		    (c = cgroup_new_cgroup(rel)) != NULL) {
			if (cgroup_add_controller(c, h->h_ctrl) != NULL)
				r = cgroup_attach_task_pid(c, getpid());
			cgroup_free(&c);
		}
		if (cg_path(path, sizeof(path), h, CG_LEAF, "cgroup.procs") < 0)
			goto fail;
		if (r != 0 && cgfs_write_pid(path, getpid()) < 0) {
			explain("cannot move the supervisor into", path, errno);
			goto fail;
		}
		h->h_moved = true;
		continue;
fail:
		if (i != H_PIDS)
			return -1;
		/* pids is optional: without it only max_pids goes unenforced. */
		log_warn("cgroup_pids_off", "err=%s msg=\"max_pids is not enforced\"",
		    log_qv(cg_errbuf));
		cg_errbuf[0] = '\0';
		(void)cgx_remove(h, CG_LEAF);
		(void)cgx_remove(h, NULL);
		h->h_on = false;
	}
	cg.pids = cg.h[H_PIDS].h_on;
	return 0;
}

/*
 * A live process in <base>/supervisor is another supervisor with the same base:
 * its workers would look stale to us, so refuse rather than kill them.
 */
static int
in_use(void)
{
	char path[PATH_MAX];
	struct cg_hier *h = &cg.h[cg.version == 2 ? 0 : H_MEM];
	FILE *f;
	int pid;

	if (cg.fake || cg_path(path, sizeof(path), h, CG_LEAF, "cgroup.procs") < 0 ||
	    (f = fopen(path, "re")) == NULL)
		return 0;
	while (fscanf(f, "%d", &pid) == 1) {
		if (pid > 0 && pid != getpid()) {
			fclose(f);
			cg_path(path, sizeof(path), h, NULL, NULL);
			set_err("cgroup %s is in use by another supervisor (pid %d)",
			    path, pid);
			errno = EBUSY;
			return -1;
		}
	}
	fclose(f);
	return 0;
}

int
cg_init(enum cg_mode mode, const char *parent, char *err, size_t errlen)
{
	const char *root = getenv("EDGEVISOR_CGROUP_ROOT");
	char path[PATH_MAX];
	bool override = root != NULL && *root != '\0', built = false;
	const char *why;
	int r;

	if (cg.version != 0)
		cg_shutdown();
	cg_errbuf[0] = '\0';
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (mode == CG_MODE_OFF)
		return 0;
	cg.required = mode == CG_MODE_REQUIRED;
	if (!override)
		root = CG_DEFAULT_ROOT;
	if (cg_parent_check(parent, &why) < 0) {
		set_err("cgroup_parent \"%s\" %s", parent ? parent : "", why);
		errno = EINVAL;
		goto fail;
	}
	cg.lib = false;
	if (!override) {
		if ((r = cgroup_init()) == 0)
			cg.lib = true;
		else
			log_debug("cgroup_lib_init", "err=%s", log_qv(cgroup_strerror(r)));
	}
	if (detect(root, override) < 0)
		goto fail;
	if (cg.lib && cg.version == 2) {
		char *mp = NULL;

		/* libcgroup must see the same unified mount, or we keep to files. */
		if (cgroup_get_subsys_mount_point("memory", &mp) != 0 || mp == NULL ||
		    strcmp(mp, cg.h[0].h_mount) != 0)
			cg.lib = false;
		free(mp);
	}
	if (read_own() < 0) {
		set_err("cannot find our cgroup in /proc/self/cgroup: %s",
		    strerror(errno));
		goto fail;
	}
	for (int i = 0; i < H_MAX; i++) {
		struct cg_hier *h = &cg.h[i];

		if (!h->h_on)
			continue;
		/* A test root does not mirror the real tree: build at its top. */
		if (override && cgfs_pathf(path, sizeof(path), "%s/%s", h->h_mount,
		    h->h_own) == 0 && !cgfs_exists(path))
			h->h_own[0] = '\0';
		if (cgfs_pathf(h->h_base, sizeof(h->h_base), "%s%s%s", h->h_own,
		    h->h_own[0] ? "/" : "", parent) < 0) {
			set_err("cgroup path too long: %s/%s", h->h_own, parent);
			goto fail;
		}
	}
	if (in_use() < 0)
		goto fail;
	built = true;
	if ((cg.version == 2 ? v2_build() : v1_build()) < 0)
		goto fail;
	stale_cleanup();
	cg_path(path, sizeof(path), &cg.h[cg.version == 2 ? 0 : H_MEM], NULL, NULL);
	log_info("cgroup_init", "version=v%d base=%s lib=%s pids=%s%s", cg.version, log_qv(path),
	    cg.lib ? "libcgroup" : "files", cg.pids ? "yes" : "no",
	    cg.fake ? " fake=1" : "");
	return 0;

fail:
	if (cg_errbuf[0] == '\0')
		set_err("%s", strerror(errno));
	/*
	 * Undo only what this call built (never function cgroups: before in_use()
	 * passed they may be a live supervisor's); ENOENT and the cause stay silent.
	 */
	cg.quiet = true;
	if (built)
		teardown(false);
	reset();
	cg.quiet = false;
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "cgroups: %s", cg_errbuf);
	return mode == CG_MODE_REQUIRED ? -1 : 0;
}

bool
cg_enabled(void)
{
	return cg.version != 0;
}

const char *
cg_describe(void)
{
	return cg.version == 2 ? "v2" : cg.version == 1 ? "v1" : "off";
}

/* A function name becomes a directory: no separators, no dot names, not our leaf. */
static bool
name_ok(const char *fn)
{
	return fn != NULL && *fn != '\0' && *fn != '.' && strchr(fn, '/') == NULL &&
	    strcmp(fn, CG_LEAF) != 0 && strlen(fn) < 200;
}

/*
 * Removals the kernel refuses for now (EBUSY: a killed task not yet gone, a child
 * cgroup left) are tried again from a timer on the supervisor's loop, never waited
 * for there. Nothing is reported up: a cgroup that stays busy past CG_RETRY_MAX
 * rounds is logged and left (cg_shutdown and the next start's stale cleanup try
 * again). FIFO, so a function's leaves go before the function.
 */
struct cg_retry {
	TAILQ_ENTRY(cg_retry) r_entry;
	unsigned r_tries;
	char r_sub[256];
};
static TAILQ_HEAD(, cg_retry) retries = TAILQ_HEAD_INITIALIZER(retries);
static struct event_base *retry_base;
static struct event *retry_ev;

/* One attempt at <base>/SUB in every hierarchy: kill what is left, rmdir. */
static int
sub_gone_once(const char *sub)
{
	int rc = 0, e = 0;

	for (int i = 0; i < H_MAX; i++) {
		if (!cg.h[i].h_on)
			continue;
		(void)cgx_kill_once(&cg.h[i], sub);
		if (cgx_rmdir_once(&cg.h[i], sub) < 0) {
			if (rc == 0 || errno != EBUSY)
				e = errno;
			rc = -1;
		}
	}
	errno = e;
	return rc;
}

static void
retry_arm(void)
{
	struct timeval tv = { 0, CG_RETRY_MS * 1000 };

	if (retry_ev != NULL && !TAILQ_EMPTY(&retries) && !evtimer_pending(retry_ev, NULL))
		evtimer_add(retry_ev, &tv);
}

static void
retry_drop(struct cg_retry *r)
{
	TAILQ_REMOVE(&retries, r, r_entry);
	free(r);
}

static void
retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cg_retry *r, *tmp;
	char path[PATH_MAX];

	TAILQ_FOREACH_SAFE(r, &retries, r_entry, tmp) {
		if (sub_gone_once(r->r_sub) == 0) {
			retry_drop(r);
			continue;
		}
		if (errno == EBUSY && ++r->r_tries < CG_RETRY_MAX)
			continue;
		cg_path(path, sizeof(path), &cg.h[cg.version == 2 ? 0 : H_MEM], r->r_sub, NULL);
		log_warn("cgroup_remove_failed", "path=%s err=%s tries=%u msg=\"gave up\"",
		    path, log_qv(strerror(errno)), r->r_tries);
		retry_drop(r);
	}
	retry_arm();
}

/* Something is created at or below SUB again: a pending removal of it or of an
 * ancestor must not take it away. */
static void
retry_cancel(const char *sub)
{
	struct cg_retry *r, *tmp;

	TAILQ_FOREACH_SAFE(r, &retries, r_entry, tmp) {
		size_t n = strlen(r->r_sub);

		if (strncmp(sub, r->r_sub, n) == 0 && (sub[n] == '\0' || sub[n] == '/'))
			retry_drop(r);
	}
}

/*
 * Removes <base>/SUB (every process in it killed). On the loop: one attempt, and
 * if the kernel says busy the retry timer takes over; 0 either way. Without a
 * loop: waits, bounded, as at start and exit.
 */
static int
remove_later(const char *sub)
{
	char path[PATH_MAX];
	struct cg_retry *r;
	int rc = 0;

	if (retry_base == NULL) {
		for (int i = 0; i < H_MAX; i++) {
			if (!cg.h[i].h_on || (cgx_kill_procs(&cg.h[i], sub) >= 0 &&
			    cgx_remove(&cg.h[i], sub) == 0))
				continue;
			cg_path(path, sizeof(path), &cg.h[i], sub, NULL);
			log_warn("cgroup_remove_failed", "path=%s err=%s", path,
			    log_qv(strerror(errno)));
			rc = -1;
		}
		return rc;
	}
	if (sub_gone_once(sub) == 0)
		return 0;
	if (errno != EBUSY) {
		cg_path(path, sizeof(path), &cg.h[cg.version == 2 ? 0 : H_MEM], sub, NULL);
		log_warn("cgroup_remove_failed", "path=%s err=%s", path, log_qv(strerror(errno)));
		return -1;
	}
	TAILQ_FOREACH(r, &retries, r_entry)
		if (strcmp(r->r_sub, sub) == 0)
			return 0;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return -1;
	snprintf(r->r_sub, sizeof(r->r_sub), "%s", sub);
	TAILQ_INSERT_TAIL(&retries, r, r_entry);
	retry_arm();
	return 0;
}

/* Every pending removal, now, waiting as needed: the loop is about to go. */
static void
retry_flush(void)
{
	struct cg_retry *r;

	while ((r = TAILQ_FIRST(&retries)) != NULL) {
		for (int i = 0; i < H_MAX; i++)
			if (cg.h[i].h_on && (cgx_kill_procs(&cg.h[i], r->r_sub) < 0 ||
			    cgx_remove(&cg.h[i], r->r_sub) < 0) && !cg.quiet)
				log_warn("cgroup_remove_failed", "path=%s/%s/%s err=%s",
				    cg.h[i].h_mount, cg.h[i].h_base, r->r_sub, log_qv(strerror(errno)));
		retry_drop(r);
	}
}

int
cg_set_base(struct event_base *base)
{
	if (base == retry_base)
		return 0;
	if (retry_ev != NULL) {
		event_free(retry_ev);
		retry_ev = NULL;
	}
	retry_base = NULL;
	if (base == NULL) {
		retry_flush();
		return 0;
	}
	if ((retry_ev = evtimer_new(base, retry_cb, NULL)) == NULL)
		return -1;
	retry_base = base;
	retry_arm();
	return 0;
}

/* Memory cap on <base>/SUB: MB == 0 lifts it. Swap is capped at zero on top. */
static int
set_memory(const char *sub, uint32_t mb)
{
	char val[32], path[PATH_MAX];
	struct cg_hier *h = &cg.h[cg.version == 2 ? 0 : H_MEM];

	if (mb == 0)
		snprintf(val, sizeof(val), "%s", cg.version == 2 ? "max" : "-1");
	else
		snprintf(val, sizeof(val), "%llu", (unsigned long long)mb << 20);
	if (cg.version == 2) {
		if (cgx_set(h, sub, "memory.max", val) < 0)
			goto fail;
		if (cg_path(path, sizeof(path), h, sub, "memory.swap.max") == 0 &&
		    cgfs_exists(path) && cgx_set(h, sub, "memory.swap.max",
		    mb ? "0" : "max") < 0)
			goto fail;
		return 0;
	}
	/* memsw must stay >= limit: raise it first when the limit goes up. */
	cg_path(path, sizeof(path), h, sub, "memory.memsw.limit_in_bytes");
	if (!cgfs_exists(path))
		return cgx_set(h, sub, "memory.limit_in_bytes", val) < 0 ? -1 : 0;
	if (cgx_set(h, sub, "memory.limit_in_bytes", val) < 0 &&
	    (cgx_set(h, sub, "memory.memsw.limit_in_bytes", val) < 0 ||
	    cgx_set(h, sub, "memory.limit_in_bytes", val) < 0))
		goto fail;
	if (cgx_set(h, sub, "memory.memsw.limit_in_bytes", val) < 0)
		goto fail;
	return 0;
fail:
	log_warn("cgroup_set_failed", "path=%s memory=%s err=%s",
	    qpath(h, sub), val, log_qv(strerror(errno)));
	return -1;
}

/* CPU cap on <base>/SUB in percent of one core: PCT == 0 lifts it. */
static int
set_cpu(const char *sub, uint32_t pct)
{
	char val[48];
	unsigned long long quota = (unsigned long long)pct * (CG_PERIOD_US / 100);
	struct cg_hier *h = &cg.h[cg.version == 2 ? 0 : H_CPU];

	if (cg.version == 2) {
		if (pct == 0)
			snprintf(val, sizeof(val), "max %d", CG_PERIOD_US);
		else
			snprintf(val, sizeof(val), "%llu %d", quota, CG_PERIOD_US);
		if (cgx_set(h, sub, "cpu.max", val) < 0)
			goto fail;
		return 0;
	}
	snprintf(val, sizeof(val), "%d", CG_PERIOD_US);
	if (cgx_set(h, sub, "cpu.cfs_period_us", val) < 0)
		goto fail;
	if (pct == 0)
		snprintf(val, sizeof(val), "-1");
	else
		snprintf(val, sizeof(val), "%llu", quota);
	if (cgx_set(h, sub, "cpu.cfs_quota_us", val) < 0)
		goto fail;
	return 0;
fail:
	log_warn("cgroup_set_failed", "path=%s cpu=%s err=%s",
	    qpath(h, sub), log_qv(val), log_qv(strerror(errno)));
	return -1;
}

/* Process (task) cap on <base>/SUB: N == 0 lifts it. No pids controller: nothing. */
static int
set_pids(const char *sub, uint32_t n)
{
	char val[16];
	struct cg_hier *h = &cg.h[cg.version == 2 ? 0 : H_PIDS];

	if (!cg.pids)
		return 0;
	if (n == 0)
		snprintf(val, sizeof(val), "max");
	else
		snprintf(val, sizeof(val), "%u", (unsigned)n);
	if (cgx_set(h, sub, "pids.max", val) < 0) {
		log_warn("cgroup_set_failed", "path=%s pids=%s err=%s",
		    qpath(h, sub), val, log_qv(strerror(errno)));
		return -1;
	}
	return 0;
}

int
cg_check_function(const struct fn_conf *fn, char *err, size_t errlen)
{
	if (cg.version == 0 || cg.pids ||
	    (fn->limits.max_pids == 0 && fn->limits.function_max_pids == 0))
		return 0;
	if (cg.required) {
		if (err != NULL && errlen > 0)
			snprintf(err, errlen, "function %s: max_pids needs the cgroup pids "
			    "controller, and %s", fn->name, cg.version == 2 ?
			    "the delegated cgroup's cgroup.controllers has no pids" :
			    "no v1 pids hierarchy is mounted");
		errno = ENOTSUP;
		return -1;
	}
	if (!cg.pids_warned)
		log_warn("cgroup_pids_off", "fn=%s msg=\"no pids controller: max_pids is "
		    "not enforced\"", fn->name);
	cg.pids_warned = true;
	return 0;
}

int
cg_function_setup(const struct fn_conf *fn)
{
	const char *ctrls = cg.pids ? "+cpu +memory +pids" : "+cpu +memory";
	char path[PATH_MAX];

	if (cg.version == 0)
		return 0;
	if (!name_ok(fn->name)) {
		errno = EINVAL;
		return -1;
	}
	retry_cancel(fn->name);
	for (int i = 0; i < H_MAX; i++) {
		if (cg.h[i].h_on && cgx_create(&cg.h[i], fn->name) < 0) {
			cg_path(path, sizeof(path), &cg.h[i], fn->name, NULL);
			log_warn("cgroup_create_failed", "path=%s err=%s", log_qv(path),
			    log_qv(strerror(errno)));
			return -1;
		}
	}
	/* v2: the workers below get cpu and memory only if the function passes them on. */
	if (cg.version == 2 && (cg_path(path, sizeof(path), &cg.h[0], fn->name,
	    "cgroup.subtree_control") < 0 ||
	    cgfs_write(path, ctrls, strlen(ctrls)) < 0)) {
		log_warn("cgroup_set_failed", "path=%s err=%s", log_qv(path),
		    log_qv(strerror(errno)));
		return -1;
	}
	(void)cg_check_function(fn, NULL, 0);
	if (set_memory(fn->name, fn->limits.function_memory_mb) < 0 ||
	    set_cpu(fn->name, fn->limits.function_cpu_percent) < 0 ||
	    set_pids(fn->name, fn->limits.function_max_pids) < 0)
		return -1;
	return 0;
}

int
cg_function_remove(const char *fn)
{
	int rc = 0;

	if (cg.version == 0)
		return 0;
	if (!name_ok(fn)) {
		errno = EINVAL;
		return -1;
	}
	if (retry_base == NULL) {
		for (int i = 0; i < H_MAX; i++)
			if (cg.h[i].h_on && cgx_remove_tree(&cg.h[i], fn, 1) < 0)
				rc = -1;
		return rc;
	}
	/* On the loop: the leaves first, then the function; what is busy is retried. */
	for (int i = 0; i < H_MAX; i++) {
		char path[PATH_MAX], sub[256];
		struct dirent *de;
		DIR *d;

		if (!cg.h[i].h_on || cg_path(path, sizeof(path), &cg.h[i], fn, NULL) < 0 ||
		    (d = opendir(path)) == NULL)
			continue;
		while ((de = readdir(d)) != NULL)
			if (de->d_type == DT_DIR && de->d_name[0] != '.' &&
			    cgfs_pathf(sub, sizeof(sub), "%s/%s", fn, de->d_name) == 0 &&
			    remove_later(sub) < 0)
				rc = -1;
		closedir(d);
	}
	if (remove_later(fn) < 0)
		rc = -1;
	return rc;
}

/* <fn>/<KIND><ID>: KIND "w" for a worker, "check-" for a library check. */
static int
leaf_sub(char *buf, size_t len, const char *fn, const char *kind, uint32_t id)
{
	int n;

	if (!name_ok(fn)) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(buf, len, "%s/%s%u", fn, kind, (unsigned)id);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int
worker_sub(char *buf, size_t len, const char *fn, uint32_t id)
{
	return leaf_sub(buf, len, fn, "w", id);
}

static int
check_sub(char *buf, size_t len, const char *fn, uint32_t id)
{
	return leaf_sub(buf, len, fn, "check-", id);
}

/* <base>/SUB in every hierarchy, with FN's per-worker caps. */
static int
leaf_create(const struct fn_conf *fn, const char *sub)
{
	char dir[PATH_MAX];
	uint32_t cpu = fn->limits.cpu_percent;

	retry_cancel(sub);
	for (int i = 0; i < H_MAX; i++) {
		if (cg.h[i].h_on && cgx_create(&cg.h[i], sub) < 0) {
			cg_path(dir, sizeof(dir), &cg.h[i], sub, NULL);
			log_warn("cgroup_create_failed", "path=%s err=%s", log_qv(dir),
			    log_qv(strerror(errno)));
			return -1;
		}
	}
	/* v1 refuses a child quota above its parent's (EINVAL): clamp to it. */
	if (cg.version == 1 && fn->limits.function_cpu_percent != 0 &&
	    (cpu == 0 || cpu > fn->limits.function_cpu_percent))
		cpu = fn->limits.function_cpu_percent;
	if (set_memory(sub, fn->limits.memory_mb) < 0 || set_cpu(sub, cpu) < 0 ||
	    set_pids(sub, fn->limits.max_pids) < 0)
		return -1;
	return 0;
}

int
cg_worker_create(const struct fn_conf *fn, uint32_t id, char *path, size_t pathlen)
{
	char sub[256];
	struct cg_hier *h;

	if (path != NULL && pathlen > 0)
		path[0] = '\0';
	if (cg.version == 0)
		return 0;
	if (worker_sub(sub, sizeof(sub), fn->name, id) < 0 || leaf_create(fn, sub) < 0)
		return -1;
	h = &cg.h[cg.version == 2 ? 0 : H_MEM];
	if (path != NULL && pathlen > 0)
		snprintf(path, pathlen, "/%s/%s", h->h_base, sub);
	return 0;
}

/* Moves PID into <base>/SUB of every hierarchy; async-signal-safe (see below). */
static int
attach_sub(const char *sub, pid_t pid)
{
	char path[PATH_MAX];

	for (int i = 0; i < H_MAX; i++) {
		if (!cg.h[i].h_on)
			continue;
		if (cg_path(path, sizeof(path), &cg.h[i], sub, "cgroup.procs") < 0 ||
		    cgfs_write_pid(path, pid) < 0)
			return -1;
	}
	return 0;
}

/*
 * Runs in the forked child before exec: only snprintf, open and write, no
 * allocation and no logging. cgroup.procs moves the whole (single-threaded) child.
 */
int
cg_worker_attach(const char *fn, uint32_t id, pid_t pid)
{
	char sub[256];

	if (cg.version == 0)
		return 0;
	if (worker_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return attach_sub(sub, pid);
}

/*
 * The cgroup.procs file of <base>/SUB that lists every process of it: v2's one
 * hierarchy, v1's memory one (a process is in one cgroup of each hierarchy, so any
 * of them lists them all; memory is the one v1 always has here).
 */
static int
procs_path(const char *sub, char *buf, size_t len)
{
	if (len > 0)
		buf[0] = '\0';
	if (cg.version == 0) {
		errno = ENOENT;
		return -1;
	}
	return cg_path(buf, len, &cg.h[cg.version == 2 ? 0 : H_MEM], sub, "cgroup.procs");
}

int
cg_worker_procs(const char *fn, uint32_t id, char *buf, size_t len)
{
	char sub[256];

	if (len > 0)
		buf[0] = '\0';
	if (worker_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return procs_path(sub, buf, len);
}

int
cg_worker_stats(const char *fn, uint32_t id, struct cg_stats *out)
{
	char sub[256], buf[1024];
	struct cg_hier *h;

	memset(out, 0, sizeof(*out));
	if (cg.version == 0) {
		errno = ENOTSUP;
		return -1;
	}
	if (worker_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	if (cg.version == 2) {
		h = &cg.h[0];
		if (cgx_get_u64(h, sub, "memory.current", &out->memory_current) < 0)
			return -1;
		(void)cgx_get_u64(h, sub, "memory.peak", &out->memory_peak);
		if (cgx_get(h, sub, "cpu.stat", buf, sizeof(buf)) == 0) {
			out->cpu_usage_us = cgfs_kv(buf, "usage_usec");
			out->nr_throttled = cgfs_kv(buf, "nr_throttled");
		}
		if (cgx_get(h, sub, "memory.events", buf, sizeof(buf)) == 0)
			out->oom_kills = cgfs_kv(buf, "oom_kill");
		if (cg.pids)
			(void)cgx_get_u64(h, sub, "pids.current", &out->pids_current);
		return 0;
	}
	h = &cg.h[H_MEM];
	if (cgx_get_u64(h, sub, "memory.usage_in_bytes", &out->memory_current) < 0)
		return -1;
	(void)cgx_get_u64(h, sub, "memory.max_usage_in_bytes", &out->memory_peak);
	if (cgx_get(h, sub, "memory.oom_control", buf, sizeof(buf)) == 0)
		out->oom_kills = cgfs_kv(buf, "oom_kill");
	h = &cg.h[cg.h[H_CPUACCT].h_on ? H_CPUACCT : H_CPU];
	if (cgx_get_u64(h, sub, "cpuacct.usage", &out->cpu_usage_us) == 0)
		out->cpu_usage_us /= 1000;
	if (cgx_get(&cg.h[H_CPU], sub, "cpu.stat", buf, sizeof(buf)) == 0)
		out->nr_throttled = cgfs_kv(buf, "nr_throttled");
	if (cg.pids)
		(void)cgx_get_u64(&cg.h[H_PIDS], sub, "pids.current", &out->pids_current);
	return 0;
}

/*
 * Kills every process in <base>/SUB. On the loop (a base is set) one round of
 * SIGKILL, never waiting: the removal that follows kills again on each retry.
 * Without a loop (start, exit, unit tests) it waits, bounded, until SUB is empty.
 */
static int
sub_kill(const char *sub)
{
	int rc = 0;

	for (int i = 0; i < H_MAX; i++) {
		if (!cg.h[i].h_on)
			continue;
		if ((retry_base != NULL ? cgx_kill_once(&cg.h[i], sub) :
		    cgx_kill_procs(&cg.h[i], sub)) < 0)
			rc = -1;
	}
	return rc;
}

int
cg_worker_kill(const char *fn, uint32_t id)
{
	char sub[256];

	if (cg.version == 0)
		return 0;
	if (worker_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return sub_kill(sub);
}

int
cg_worker_remove(const char *fn, uint32_t id)
{
	char sub[256];

	if (cg.version == 0)
		return 0;
	if (worker_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return remove_later(sub);
}

int
cg_check_create(const struct fn_conf *fn, uint32_t id)
{
	char sub[256], path[PATH_MAX];

	if (cg.version == 0) {
		errno = ENOENT;
		return -1;
	}
	if (check_sub(sub, sizeof(sub), fn->name, id) < 0)
		return -1;
	/* A function new in this config has no cgroup yet: give it its caps now. */
	if (cg_path(path, sizeof(path), &cg.h[cg.version == 2 ? 0 : H_MEM], fn->name,
	    NULL) < 0)
		return -1;
	if (!cgfs_exists(path) && cg_function_setup(fn) < 0)
		return -1;
	return leaf_create(fn, sub);
}

int
cg_check_attach(const char *fn, uint32_t id, pid_t pid)
{
	char sub[256];

	if (cg.version == 0)
		return 0;
	if (check_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return attach_sub(sub, pid);
}

int
cg_check_procs(const char *fn, uint32_t id, char *buf, size_t len)
{
	char sub[256];

	if (len > 0)
		buf[0] = '\0';
	if (check_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return procs_path(sub, buf, len);
}

int
cg_check_kill(const char *fn, uint32_t id)
{
	char sub[256];
	int n = 0, k;

	if (cg.version == 0)
		return 0;
	if (check_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	for (int i = 0; i < H_MAX; i++)
		if (cg.h[i].h_on && (k = cgx_kill_once(&cg.h[i], sub)) > n)
			n = k;
	return n;
}

int
cg_check_remove(const char *fn, uint32_t id)
{
	char sub[256];

	if (cg.version == 0)
		return 0;
	if (check_sub(sub, sizeof(sub), fn, id) < 0)
		return -1;
	return remove_later(sub);
}

static void
reset(void)
{
	cg.own_off[0] = '\0';
	cg.pids = cg.required = cg.pids_warned = false;
	cg.version = 0;
	for (int i = 0; i < H_MAX; i++)
		cg.h[i].h_on = cg.h[i].h_moved = false;
}

/*
 * Removes the function cgroups (if FUNCTIONS), moves the supervisor back to the
 * cgroup it started in and removes <base>. v2: the controllers we enabled are
 * switched off first, or the start cgroup would refuse a process.
 */
static void
teardown(bool functions)
{
	const char *off = cg.pids ? "-cpu -memory -pids" : "-cpu -memory";
	char path[PATH_MAX], dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (cg.version == 0)
		return;
	for (int i = 0; i < H_MAX; i++) {
		struct cg_hier *h = &cg.h[i];

		if (!h->h_on)
			continue;
		if (cg_path(dir, sizeof(dir), h, NULL, NULL) < 0)
			continue;
		if (functions && (d = opendir(dir)) != NULL) {
			while ((de = readdir(d)) != NULL)
				if (de->d_type == DT_DIR && de->d_name[0] != '.' &&
				    strcmp(de->d_name, CG_LEAF) != 0)
					cgx_remove_tree(h, de->d_name, 1);
			closedir(d);
		}
		if (cg.version == 2 && !cg.fake) {
			cg_path(path, sizeof(path), h, NULL, "cgroup.subtree_control");
			(void)cgfs_write(path, off, strlen(off));
			if (cg.own_off[0] != '\0') {
				if (cgfs_pathf(path, sizeof(path),
				    "%s/%s/cgroup.subtree_control", h->h_mount,
				    h->h_own) < 0 ||
				    cgfs_write(path, cg.own_off, strlen(cg.own_off)) < 0)
					log_warn("cgroup_restore_failed", "path=%s err=%s",
					    log_qv(path), log_qv(strerror(errno)));
			}
		}
		if (h->h_moved && (cgfs_pathf(path, sizeof(path), "%s%s%s/cgroup.procs",
		    h->h_mount, h->h_own[0] ? "/" : "", h->h_own) < 0 ||
		    cgfs_write_pid(path, getpid()) < 0) && !cg.quiet)
			log_warn("cgroup_restore_failed", "path=%s err=%s", log_qv(path),
			    log_qv(strerror(errno)));
		h->h_moved = false;
		if ((cgx_remove(h, CG_LEAF) < 0 || cgx_remove(h, NULL) < 0) &&
		    !cg.quiet)
			log_warn("cgroup_remove_failed", "path=%s err=%s", log_qv(dir),
			    log_qv(strerror(errno)));
	}
}

void
cg_shutdown(void)
{
	struct cg_hier *h = &cg.h[cg.version == 2 ? 0 : H_MEM];

	if (cg.version == 0)
		return;
	/* The loop is done: what is still busy is waited for now. */
	cg_set_base(NULL);
	teardown(true);
	log_info("cgroup_shutdown", "version=v%d base=%s", cg.version, qpath(h, NULL));
	reset();
}

int
cg_check_conf(const struct sv_conf *conf, char *err, size_t errlen)
{
	const struct fn_conf *fc;

	TAILQ_FOREACH(fc, &conf->functions, entry)
		if (cg_check_function(fc, err, errlen) < 0)
			return -1;
	return 0;
}
