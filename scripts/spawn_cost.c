/*
 * spawn_cost.c - what starting one child costs the thread that starts it, at a given
 * process size (scripts/bench.sh, phase reload500): fork, as the supervisor spawned
 * before, against clone(CLONE_VM | CLONE_VFORK), as child_spawn (supervisor/child.c)
 * does now. The process first takes the supervisor's shape (bench.sh reads it from
 * the running supervisor): FDS open descriptors, MAPS separate mappings, and RSS_KIB
 * of touched memory spread over them. Each child marks its descriptors close-on-exec and execs
 * /bin/true, as a worker's set-up ends; the time is from the call to its return in
 * the parent (fork: the page-table copy; clone: the child's run up to its exec).
 * Prints "fork_us vfork_us", the medians of N spawns each.
 *
 * Usage: spawn_cost FDS MAPS RSS_KIB N
 */
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"

#define STACK_SIZE (256 * 1024)

static char *const child_argv[] = { "true", NULL };
static char *const child_envp[] = { NULL };

static int __attribute__((noreturn))
child(void *arg)
{
	(void)arg;
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		(void)close_range(3, ~0U, 0);
	execve("/bin/true", child_argv, child_envp);
	_exit(127);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median of N spawns by fork (VFORK false) or clone(CLONE_VM | CLONE_VFORK). */
static uint64_t
median_us(int n, bool vfork_like, void *stack)
{
	uint64_t *t = calloc((size_t)n, sizeof(*t)), m;

	if (t == NULL)
		return 0;
	for (int i = 0; i < n; i++) {
		uint64_t t0 = clock_us();
		pid_t pid;

		if (vfork_like) {
			pid = clone(child, (char *)stack + STACK_SIZE,
			    CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
		} else {
			pid = fork();
			if (pid == 0)
				child(NULL);
		}
		t[i] = clock_us() - t0;
		if (pid < 0) {
			perror("spawn");
			exit(1);
		}
		(void)waitpid(pid, NULL, 0);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp_u64);
	m = t[n / 2];
	free(t);
	return m;
}

int
main(int argc, char **argv)
{
	long fds, maps, rss_kib, n, page = sysconf(_SC_PAGESIZE);
	size_t each;
	void *stack;

	if (argc != 5 || (fds = atol(argv[1])) < 0 || (maps = atol(argv[2])) <= 0 ||
	    (rss_kib = atol(argv[3])) < 0 || (n = atol(argv[4])) <= 0) {
		fprintf(stderr, "usage: spawn_cost FDS MAPS RSS_KIB N\n");
		return 2;
	}
	for (long i = 0; i + 1 < fds; i += 2) {
		int p[2];

		if (pipe(p) < 0) {
			perror("pipe");
			return 1;
		}
	}
	/* Touched pages are what fork's copy of the page tables walks; each mapping is
	 * one more area for it to copy. A guard page between two keeps them apart. */
	each = ((size_t)rss_kib * 1024 / (size_t)maps + (size_t)page - 1) / (size_t)page * (size_t)page;
	for (long i = 0; i < maps; i++) {
		char *m = mmap(NULL, each + (size_t)page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED || mprotect(m + each, (size_t)page, PROT_NONE) < 0) {
			perror("mmap");
			return 1;
		}
		memset(m, 1, each);
	}
	stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	printf("%llu %llu\n", (unsigned long long)median_us((int)n, false, stack),
	    (unsigned long long)median_us((int)n, true, stack));
	return 0;
}
