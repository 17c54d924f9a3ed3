/*
 * text.h - the one sanitizer for text a tenant wrote (task names on the scoreboard,
 * init-failure text on the status pipe, anything read from memory the worker or the
 * function can scribble on) before it reaches a log line, JSON or a terminal.
 */
#ifndef EV_TEXT_H
#define EV_TEXT_H

#include <stddef.h>

/* Also make it one word: a task name stands bare in tables and log fields. */
#define TEXT_TOKEN 0x1

/*
 * Copies at most SRCLEN bytes of SRC, stopping at a NUL (none is needed), into DST
 * (DSTLEN > 0 bytes, always NUL-terminated, cut to fit). Every byte that is not
 * printable ASCII becomes '?' - so the result is valid UTF-8 for jansson and holds no
 * terminal control. With TEXT_TOKEN, blanks, '"', '=', '\' and those bytes become '_'.
 * SRC and DST may be the same buffer. Returns the length written.
 */
size_t text_sanitize(char *dst, size_t dstlen, const char *src, size_t srclen, int flags);

#endif
