/*
 * dsn_file.c - reads durable.dsn_file (see dsn_file.h): checked like a private key,
 * read whole through one descriptor (the checks are on what was opened).
 */
#include "dsn_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
dsn_file_read(const char *path, char **out, char *err, size_t errlen)
{
	/* the longest DSN, its CRLF, and one byte to notice a longer one */
	char buf[DSN_MAX + 3];
	struct stat st;
	size_t len = 0;
	ssize_t got;
	int fd, rc = -1;

	*out = NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: owned by uid %u: must be owned by root or uid %u",
		    path, (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "%s: permissions %04o are too open: the connection string "
		    "holds a password and must not be accessible by group or others (chmod 600)",
		    path, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	while (len < sizeof(buf)) {
		got = read(fd, buf + len, sizeof(buf) - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0 || len > DSN_MAX) {
		snprintf(err, errlen, "%s: must hold one connection string of 1 to %d bytes",
		    path, DSN_MAX);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			snprintf(err, errlen, "%s: must hold one line (a control character at byte "
			    "%zu)", path, i + 1);
			goto out;
		}
	if ((*out = strndup(buf, len)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return rc;
}

void
dsn_free(char *dsn)
{
	if (dsn == NULL)
		return;
	explicit_bzero(dsn, strlen(dsn));
	free(dsn);
}
