/*
 * fuzz_config.c - libFuzzer target for the supervisor.conf loader (config_load).
 *
 * The input is written to a memfd and loaded through /proc/self/fd/N, the way the
 * supervisor loads a file (the loader re-reads the text to place errors). Besides
 * "no crash, no leak, no undefined behaviour", it checks the loader's contract:
 * a refused file yields one non-empty line that starts with the file's name, and
 * an accepted one is internally consistent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../supervisor/config.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	/* The loader itself never logs, but keep stderr quiet for libFuzzer's output. */
	log_level = -1;
	if ((memfd = memfd_create("fuzz.conf", 0)) < 0) {
		perror("memfd_create");
		abort();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

static void
check_conf(const struct sv_conf *conf)
{
	const struct fn_conf *fc;
	size_t n = 0;

	TAILQ_FOREACH(fc, &conf->functions, entry) {
		if (fc->name == NULL || fc->name[0] == '\0' || fc->library == NULL ||
		    fc->library[0] != '/' || fc->nlisten == 0 || fc->listen == NULL)
			abort();
		for (size_t i = 0; i < fc->nlisten; i++)
			if (fc->listen[i] == NULL || fc->listen[i][0] == '\0')
				abort();
		n++;
	}
	if (n != conf->nfunctions || conf->path == NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sv_conf *conf;
	char err[1024];
	size_t off = 0;
	ssize_t w;

	if (ftruncate(memfd, 0) < 0 || lseek(memfd, 0, SEEK_SET) < 0)
		abort();
	while (off < size) {
		if ((w = write(memfd, data + off, size - off)) <= 0)
			abort();
		off += (size_t)w;
	}
	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if ((conf = config_load(path, err, sizeof(err))) != NULL) {
		check_conf(conf);
		config_free(conf);
		return 0;
	}
	/* Refused: the message names the file (this one, or an included one: an
	 * absolute path) and is one line. */
	if ((strncmp(err, path, strlen(path)) != 0 && err[0] != '/') ||
	    strchr(err, '\n') != NULL || strlen(err) <= strlen(path) + 1) {
		fprintf(stderr, "bad error message: \"%s\"\n", err);
		abort();
	}
	return 0;
}
