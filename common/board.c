/*
 * board.c - creating and mapping the scoreboard shared between supervisor and worker.
 */
#include "board.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int
board_create(uint32_t task_slots, struct board **out)
{
	size_t len = board_size(task_slots);
	struct board *b;
	int fd, saved;

	fd = memfd_create("edgevisor-board", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)len) < 0)
		goto fail;
	/* The worker may not shrink it under the supervisor's mapping (SIGBUS). */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b == MAP_FAILED)
		goto fail;
	/*
	 * Not copied into the children we fork: a supervisor with a thousand workers
	 * holds a thousand boards, and fork's copy of their mappings made every spawn
	 * cost O(workers) (the child gets its board as an fd anyway).
	 */
	(void)madvise(b, len, MADV_DONTFORK);
	b->version = BOARD_VERSION;
	b->task_slots = task_slots;
	*out = b;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
board_map(int fd, struct board **out)
{
	struct stat st;
	struct board *b;

	if (fstat(fd, &st) < 0)
		return -1;
	if ((size_t)st.st_size < sizeof(struct board)) {
		errno = EPROTO;
		return -1;
	}
	b = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (b == MAP_FAILED)
		return -1;
	if (b->version != BOARD_VERSION || board_size(b->task_slots) != (size_t)st.st_size) {
		munmap(b, st.st_size);
		errno = EPROTO;
		return -1;
	}
	*out = b;
	return 0;
}

void
board_copy_name(char *dst, const struct board_task *t)
{
	text_sanitize(dst, BOARD_TASK_NAME + 1, t->name, BOARD_TASK_NAME, TEXT_TOKEN);
}

void
board_unmap(struct board *b, uint32_t task_slots)
{
	if (b != NULL)
		munmap(b, board_size(task_slots));
}
