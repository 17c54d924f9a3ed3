/*
 * dsn_file.c - reads durable.dsn_file (see dsn_file.h): checked like a private key,
 * read whole through one descriptor (the checks are on what was opened).
 */
#include "dsn_file.h"
#include "../common/secret_file.h"

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
	size_t len;
	int rc = -1;

	*out = NULL;
	if (secret_file_read(path, "the connection string holds a password and", buf,
	    sizeof(buf), &len, err, errlen) < 0)
		return -1;
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
