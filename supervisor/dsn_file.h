/*
 * dsn_file.h - a PostgreSQL connection string kept in a file (durable.dsn_file).
 *
 * The string holds a password: the supervisor reads it (as root, at config load)
 * and hands it to the function's workers in their config record; no other process
 * reads the file, so it must be as private as an ssh key.
 */
#ifndef SV_DSN_FILE_H
#define SV_DSN_FILE_H

#include <stddef.h>

#define DSN_MAX 2048   /* fits wire_durable.path with room */

/*
 * Reads the DSN in PATH: one line of printable characters (a trailing newline
 * allowed), 1..DSN_MAX bytes. The file must be a regular file owned by root or our
 * effective uid, not accessible by group or others. Returns a malloc()ed copy in
 * *OUT, or -1 with a one-line reason in ERR that names PATH, never the DSN.
 */
int dsn_file_read(const char *path, char **out, char *err, size_t errlen);

/* Zeroes and frees a DSN from dsn_file_read (NULL: nothing). */
void dsn_free(char *dsn);

#endif
