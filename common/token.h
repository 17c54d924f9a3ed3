/*
 * token.h - the admin endpoint's bearer token (admin_token_file): read from a file
 * that only its owner may read, and compared in constant time.
 *
 * Used by the supervisor (config.c reads it, admin_auth.c compares) and by
 * edgevisorctl (reads it to send it). The token itself never goes into a message.
 */
#ifndef EV_TOKEN_H
#define EV_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_MIN 16    /* characters: a guessable token is no token */
#define TOKEN_MAX 256

/*
 * Reads the token in PATH: one line of RFC 6750 token characters
 * ([A-Za-z0-9-._~+/] then optional '='), TOKEN_MIN..TOKEN_MAX of them, one trailing
 * newline allowed. Like ssh with a private key, the file is refused unless it is a
 * regular file owned by root or by our effective uid and not accessible by group or
 * others. OUT (TOKEN_MAX + 1 bytes) gets the token, NUL-padded to its end. Returns
 * 0, or -1 with a one-line reason in ERR (which names PATH, never the token).
 */
int token_read(const char *path, char out[TOKEN_MAX + 1], char *err, size_t errlen);

/*
 * Whether the LEN bytes at GIVEN equal the token WANT (as token_read fills it:
 * NUL-padded to TOKEN_MAX + 1 bytes). The time taken depends on LEN only, which
 * the caller sent, never on WANT's bytes or length.
 */
bool token_equal(const char *given, size_t len, const char want[TOKEN_MAX + 1]);

#endif
