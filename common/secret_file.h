/*
 * secret_file.h - reading a private one-line file: the admin token, a PostgreSQL
 * connection string. Checked like a private key on what was opened (fstat of the
 * descriptor, no window between the check and the read): a regular file, owned by
 * root or us, not accessible by group or others.
 */
#ifndef EV_SECRET_FILE_H
#define EV_SECRET_FILE_H

#include <stddef.h>

/*
 * Reads PATH into BUF (CAP bytes; a longer file shows as CAP bytes read) and strips
 * one trailing LF or CRLF: *LEN is what is left. WHAT names the content in the
 * permissions error ("the token"). 0, or -1 with ERR (BUF then holds nothing). The
 * caller wipes BUF when done (explicit_bzero).
 */
int secret_file_read(const char *path, const char *what, char *buf, size_t cap, size_t *len,
    char *err, size_t errlen);

#endif
