/*
 * unit.h - the few helpers every C unit test shares.
 *
 * Convention: one line per case, "ok - NAME", "not ok - NAME: WHY" or, for a case
 * that cannot run here, "skip - NAME: WHY" (unit_skip: never printed as "ok"); the
 * binary exits 1 if any case failed, else 0 (a skip is not a failure). argv[1] is
 * the repo root (default: cwd).
 *
 *	static void
 *	case_pipe(void)
 *	{
 *		int p[2] = { -1, -1 };
 *
 *		UNIT_CHECK(pipe(p) == 0);
 *		UNIT_CHECKF(p[0] != p[1], "same fd %d", p[0]);
 *	out:
 *		close(p[0]);
 *		close(p[1]);
 *	}
 *	...
 *	unit_run("pipe", case_pipe);
 *	return unit_exit();
 */
#ifndef EV_UNIT_H
#define EV_UNIT_H

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int unit_nfailed;
static char unit_why[512];   /* first failure of the running case, "" = none */

/* Records why the running case failed; the first reason is the one reported. */
static inline void __attribute__((format(printf, 2, 3)))
unit_fail(int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (unit_why[0] != '\0')
		return;
	n = snprintf(unit_why, sizeof(unit_why), "line %d: ", line);
	va_start(ap, fmt);
	vsnprintf(unit_why + n, sizeof(unit_why) - (size_t)n, fmt, ap);
	va_end(ap);
}

/* In a case: on a false COND, record it and jump to the case's "out" label. */
#define UNIT_CHECK(cond) do {						\
	if (!(cond)) {							\
		int e_ = errno;						\
		unit_fail(__LINE__, "%s%s%s", #cond, e_ ? ": " : "",	\
		    e_ ? strerror(e_) : "");				\
		goto out;						\
	}								\
} while (0)

#define UNIT_CHECKF(cond, ...) do {					\
	if (!(cond)) {							\
		unit_fail(__LINE__, __VA_ARGS__);			\
		goto out;						\
	}								\
} while (0)

/* Prints the verdict of one case; WHY == NULL or "" means it passed. */
static inline void
unit_result(const char *name, const char *why)
{
	if (why == NULL || why[0] == '\0') {
		printf("ok - %s\n", name);
	} else {
		printf("not ok - %s: %s\n", name, why);
		unit_nfailed++;
	}
	fflush(stdout);
}

/* Runs one case function and prints its verdict. */
static inline void
unit_run(const char *name, void (*fn)(void))
{
	unit_why[0] = '\0';
	errno = 0;
	fn();
	unit_result(name, unit_why);
}

/* Reports a case that cannot run here, and why: a skip, not a pass. */
static inline void
unit_skip(const char *name, const char *why)
{
	printf("skip - %s: %s\n", name, why);
	fflush(stdout);
}

/* Moves to the repo root given as argv[1], if any; returns 0 or -1. */
static inline int
unit_chdir_root(int argc, char **argv)
{
	if (argc > 1 && chdir(argv[1]) < 0) {
		fprintf(stderr, "cannot chdir to %s: %s\n", argv[1], strerror(errno));
		return -1;
	}
	return 0;
}

/* Counts this process's open descriptors (for leak checks), or -1. */
static inline int
unit_fd_count(void)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;   /* the directory's own fd */
}

static inline int
unit_exit(void)
{
	return unit_nfailed > 0 ? 1 : 0;
}

#endif
