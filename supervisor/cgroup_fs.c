/*
 * cgroup_fs.c - one cgroup directory in one hierarchy: build its path, create it,
 * write and read its files, kill what runs in it, remove it (and what is below).
 * libcgroup first where it has the call; the cgroupfs file when it has none or
 * fails, so the errno reported is the kernel's. The tree and its policy are
 * cgroup.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libcgroup.h>

#include "cgroup_fs.h"
#include "log.h"

/* snprintf for paths: -1 (ENAMETOOLONG) instead of a silently cut path. */

int
cgfs_pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Builds MOUNT/BASE[/SUB][/FILE] of hierarchy H; -1 (ENAMETOOLONG) if it does not fit. */
int
cg_path(char *buf, size_t len, const struct cg_hier *h, const char *sub,
    const char *file)
{
	int n;

	n = snprintf(buf, len, "%s/%s%s%s%s%s", h->h_mount, h->h_base,
	    sub ? "/" : "", sub ? sub : "", file ? "/" : "", file ? file : "");
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* BASE[/SUB] relative to the mount: the name libcgroup wants. */
int
cg_rel(char *buf, size_t len, const struct cg_hier *h, const char *sub)
{
	int n;

	n = snprintf(buf, len, "%s%s%s", h->h_base, sub ? "/" : "", sub ? sub : "");
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int
cgfs_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	size_t off = 0;
	int fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (off + 1 < len) {
		n = read(fd, buf + off, len - off - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			saved = errno;
			close(fd);
			errno = saved;
			return -1;
		}
		if (n == 0)
			break;
		off += (size_t)n;
	}
	buf[off] = '\0';
	close(fd);
	return 0;
}

/*
 * Writes VAL in one write(2), as cgroupfs wants. No allocation: the forked child
 * uses it before exec. A fake tree gets its files created.
 */
int
cgfs_write(const char *path, const char *val, size_t len)
{
	ssize_t n;
	int fd, saved, flags = O_WRONLY | O_CLOEXEC;

	if (cg.fake)
		flags |= O_CREAT | O_TRUNC;
	if ((fd = open(path, flags, 0644)) < 0)
		return -1;
	do
		n = write(fd, val, len);
	while (n < 0 && errno == EINTR);
	saved = errno;
	close(fd);
	if (n < 0) {
		errno = saved;
		return -1;
	}
	return 0;
}

bool
cgfs_exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* Writes PID (decimal, no stdio) to PATH: the attach of a process. */
int
cgfs_write_pid(const char *path, pid_t pid)
{
	char num[24];
	size_t i = sizeof(num);
	unsigned long v = (unsigned long)pid;

	do {
		num[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0 && i > 0);
	return cgfs_write(path, num + i, sizeof(num) - i);
}

/* The value after "KEY " on a line of a flat-keyed file, or 0. */
uint64_t
cgfs_kv(const char *buf, const char *key)
{
	size_t klen = strlen(key);
	const char *p = buf;

	while (p != NULL && *p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return strtoull(p + klen + 1, NULL, 10);
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	return 0;
}

/* True if the space-separated list LIST holds WORD (a leading '+' ignored). */
bool
cgfs_has_word(const char *list, const char *word)
{
	size_t wlen = strlen(word);
	const char *p = list;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\n' || *p == '+')
			p++;
		if (strncmp(p, word, wlen) == 0 &&
		    (p[wlen] == ' ' || p[wlen] == '\n' || p[wlen] == '\0'))
			return true;
		while (*p != '\0' && *p != ' ' && *p != '\n')
			p++;
	}
	return false;
}

/*
 * Only for the bounded waits of cgx_remove/cgx_kill_procs, which run only while no
 * loop serves (cg_init before the listeners open, cg_shutdown and the retry flush
 * after the loop ended): on the running loop, removal is cgx_rmdir_once and
 * cgx_kill_once plus cgroup.c's retry timer (remove_later, sub_kill).
 */
void
cgfs_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The libcgroup controller that owns FILE: v2 has one hierarchy for both. */
const char *
cgfs_lib_ctrl(const struct cg_hier *h, const char *file)
{
	if (cg.version == 2)
		return strncmp(file, "cpu.", 4) == 0 ? "cpu" :
		    strncmp(file, "pids.", 5) == 0 ? "pids" : "memory";
	return h->h_ctrl;
}

/* Creates <base>[/SUB] in H: libcgroup first, mkdir(2) if it fails. */
int
cgx_create(struct cg_hier *h, const char *sub)
{
	char path[PATH_MAX], rel[PATH_MAX];
	struct cgroup *c;
	int r = ECGFAIL;

	if (cg_path(path, sizeof(path), h, sub, NULL) < 0 ||
	    cg_rel(rel, sizeof(rel), h, sub) < 0)
		return -1;
	if (cg.lib && cg.version == 1 && (c = cgroup_new_cgroup(rel)) != NULL) {
		if (cgroup_add_controller(c, h->h_ctrl) != NULL)
			r = cgroup_create_cgroup(c, 0);
		cgroup_free(&c);
		if (r == 0 && cgfs_exists(path))
			return 0;
		log_debug("cgroup_lib_fallback", "op=create path=%s err=%s",
		    log_qv(path), log_qv(cgroup_strerror(r)));
	}
	/* v2: libcgroup 2.0.2 would enable controllers up from the mount root. */
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Writes VAL to FILE of <base>[/SUB]: libcgroup first, the file if it fails. */
int
cgx_set(struct cg_hier *h, const char *sub, const char *file, const char *val)
{
	char path[PATH_MAX], rel[PATH_MAX];
	struct cgroup_controller *ctl;
	struct cgroup *c;
	int r = ECGFAIL;

	if (cg_path(path, sizeof(path), h, sub, file) < 0 ||
	    cg_rel(rel, sizeof(rel), h, sub) < 0)
		return -1;
	if (cg.lib && (c = cgroup_new_cgroup(rel)) != NULL) {
		if ((ctl = cgroup_add_controller(c, cgfs_lib_ctrl(h, file))) != NULL &&
		    cgroup_add_value_string(ctl, file, val) == 0)
			r = cgroup_modify_cgroup(c);
		cgroup_free(&c);
		if (r == 0)
			return 0;
		log_debug("cgroup_lib_fallback", "op=set path=%s err=%s",
		    log_qv(path), log_qv(cgroup_strerror(r)));
	}
	return cgfs_write(path, val, strlen(val));
}

/* Reads FILE of <base>[/SUB] into BUF: libcgroup first, the file if it fails. */
int
cgx_get(struct cg_hier *h, const char *sub, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX], rel[PATH_MAX], line[256];
	void *handle = NULL;
	size_t off = 0, n;
	int r;

	if (cg_path(path, sizeof(path), h, sub, file) < 0 ||
	    cg_rel(rel, sizeof(rel), h, sub) < 0)
		return -1;
	if (cg.lib && cgfs_exists(path)) {
		buf[0] = '\0';
		r = cgroup_read_value_begin(cgfs_lib_ctrl(h, file), rel, (char *)file,
		    &handle, line, sizeof(line));
		while (r == 0) {
			n = strlen(line);
			if (off + n >= len)
				break;
			memcpy(buf + off, line, n + 1);
			off += n;
			r = cgroup_read_value_next(&handle, line, sizeof(line));
		}
		if (handle != NULL)
			cgroup_read_value_end(&handle);
		if (r == 0 || r == ECGEOF)
			return 0;
		log_debug("cgroup_lib_fallback", "op=get path=%s err=%s",
		    log_qv(path), log_qv(cgroup_strerror(r)));
	}
	return cgfs_read(path, buf, len);
}

int
cgx_get_u64(struct cg_hier *h, const char *sub, const char *file, uint64_t *out)
{
	char buf[64];

	*out = 0;
	if (cgx_get(h, sub, file, buf, sizeof(buf)) < 0)
		return -1;
	*out = strtoull(buf, NULL, 10);
	return 0;
}

/* A fake tree holds plain files that rmdir(2) would refuse; a cgroupfs does not. */
static void
cgfs_fake_unlink(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d;

	if (!cg.fake || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_type != DT_REG)
			continue;
		if (cgfs_pathf(path, sizeof(path), "%s/%s", dir, de->d_name) == 0)
			unlink(path);
	}
	closedir(d);
}

/*
 * One attempt at removing <base>[/SUB] of H, never waiting. v1: libcgroup,
 * empty-only (its default would migrate strays to the parent); v2: rmdir
 * (libcgroup 2.0.2 fails there). ENOENT is success; EBUSY means the kernel still
 * counts a task (or a child cgroup is left): try again later.
 */
int
cgx_rmdir_once(struct cg_hier *h, const char *sub)
{
	char path[PATH_MAX], rel[PATH_MAX];
	struct cgroup *c;
	int r;

	if (cg_path(path, sizeof(path), h, sub, NULL) < 0 ||
	    cg_rel(rel, sizeof(rel), h, sub) < 0)
		return -1;
	if (cg.lib && cg.version == 1 && cgfs_exists(path) &&
	    (c = cgroup_new_cgroup(rel)) != NULL) {
		r = ECGFAIL;
		if (cgroup_add_controller(c, h->h_ctrl) != NULL)
			r = cgroup_delete_cgroup_ext(c, CGFLAG_DELETE_EMPTY_ONLY);
		cgroup_free(&c);
		if (r != 0)
			log_debug("cgroup_lib_fallback", "op=delete path=%s err=%s",
			    log_qv(path), log_qv(cgroup_strerror(r)));
	}
	cgfs_fake_unlink(path);
	if (rmdir(path) == 0 || errno == ENOENT)
		return 0;
	return -1;
}

/* Removes <base>[/SUB] of H once it is empty, waiting (bounded) while it is busy. */
int
cgx_remove(struct cg_hier *h, const char *sub)
{
	for (int i = 0; i < CG_KILL_ROUNDS; i++) {
		if (cgx_rmdir_once(h, sub) == 0)
			return 0;
		if (errno != EBUSY)
			break;
		cgfs_sleep_ms(10);
	}
	return -1;
}

/*
 * One round of killing every process in <base>/SUB of H, never waiting:
 * cgroup.kill where v2 has it, and SIGKILL to every pid cgroup.procs lists (v1,
 * and v2 without cgroup.kill). Returns how many pids it saw (0: empty), or -1.
 */
int
cgx_kill_once(struct cg_hier *h, const char *sub)
{
	char path[PATH_MAX], kpath[PATH_MAX];
	pid_t self = getpid();
	FILE *f;
	int pid, n = 0;

	/* A fake tree's cgroup.procs is only text: nothing lives there. */
	if (cg.fake)
		return 0;
	if (cg_path(path, sizeof(path), h, sub, "cgroup.procs") < 0 ||
	    cg_path(kpath, sizeof(kpath), h, sub, "cgroup.kill") < 0)
		return -1;
	if (cg.version == 2 && cgfs_exists(kpath) && cgfs_write(kpath, "1", 1) < 0 &&
	    errno != ENOENT)
		log_warn("cgroup_kill_failed", "path=%s err=%s", kpath,
		    log_qv(strerror(errno)));
	if ((f = fopen(path, "re")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (fscanf(f, "%d", &pid) == 1) {
		if (pid <= 0 || pid == self)
			continue;
		n++;
		if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
			log_warn("cgroup_kill_failed", "path=%s pid=%d err=%s",
			    path, pid, log_qv(strerror(errno)));
	}
	fclose(f);
	return n;
}

/* Kills every process in <base>/SUB of H until it is empty, waiting (bounded). */
int
cgx_kill_procs(struct cg_hier *h, const char *sub)
{
	for (int i = 0; i < CG_KILL_ROUNDS; i++) {
		int n = cgx_kill_once(h, sub);

		if (n <= 0)
			return n;
		cgfs_sleep_ms(10);
	}
	errno = EBUSY;
	return -1;
}

/* Kills and removes <base>/SUB of H and everything below it (depth-first). */
int
cgx_remove_tree(struct cg_hier *h, const char *sub, int depth)
{
	char path[PATH_MAX], child[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	if (cg_path(path, sizeof(path), h, sub, NULL) < 0)
		return -1;
	if (depth < 3 && (d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			if (cgfs_pathf(child, sizeof(child), "%s/%s", sub,
			    de->d_name) < 0)
				continue;
			if (cgx_remove_tree(h, child, depth + 1) < 0)
				rc = -1;
		}
		closedir(d);
	}
	if ((cgx_kill_procs(h, sub) < 0 || cgx_remove(h, sub) < 0) && !cg.quiet) {
		log_warn("cgroup_remove_failed", "path=%s err=%s", log_qv(path),
		    log_qv(strerror(errno)));
		rc = -1;
	}
	return rc;
}
