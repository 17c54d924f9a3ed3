/*
 * log.h - the one logging module: one structured (logfmt) line per event on stderr.
 *
 * Every line carries ts, lvl, proc (the process tag: "supervisor", "worker[hello/3]")
 * and ev (a short event name), then the caller's key=value fields. The level is
 * checked before any argument is evaluated, so a disabled debug line costs a compare.
 *
 * A value that is not a fixed word (an error text, a path, a message, anything a
 * tenant or a config file wrote) goes through log_qv(), never a bare or hand-quoted
 * %s, so that it can neither cut the line nor forge a field:
 *
 *	log_warn("accept_failed", "addr=%s err=%s", log_qv(addr), log_qv(strerror(errno)));
 */
#ifndef EV_LOG_H
#define EV_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log_level;

/* Sets the process tag printed as proc=...; the string is copied. */
void log_set_proc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses "error|warn|info|debug"; returns 0, or -1 on an unknown name. */
int log_parse_level(const char *name, int *out);
/* Redirects stderr to PATH (append); NULL keeps stderr. Used again on SIGUSR1. */
int log_open_file(const char *path);
int log_reopen(void);

/*
 * The logfmt form of S, written to DST (LEN bytes, at least LOG_QUOTE_MIN): S itself
 * when it is a non-empty run of printable ASCII without ' ', '"', '=' or '\\';
 * otherwise S in double quotes with '"' and '\\' escaped by a backslash, newline,
 * CR and tab as \n \r \t, and every other byte below 0x20 or above 0x7e as \xNN
 * (two lower-case hex digits). NULL is "". A value that does not fit is cut at a
 * whole character and ends in ..." (still one well-formed value). Returns DST.
 */
#define LOG_QUOTE_MIN 8
char *log_quote(char *dst, size_t len, const char *s);

/*
 * log_quote() into one of LOG_QV_SLOTS rotating thread-local buffers of LOG_QV_LEN
 * bytes, for use as an argument of the log_* calls: at most LOG_QV_SLOTS of them in
 * one call (a later call reuses the oldest buffer). Safe from any thread.
 */
#define LOG_QV_SLOTS 4
#define LOG_QV_LEN   768
const char *log_qv(const char *s);

/*
 * One line: ts, lvl, proc, ev, then FMT's fields. A line longer than the line buffer
 * is cut between characters of a value, its open quote closed, and " truncated=1"
 * appended; a raw control character that reached FMT unescaped is written as '?':
 * whatever the caller passed, it is one line.
 */
void log_emit(int lvl, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(ev, ...) do { if (log_level >= LOG_LVL_ERROR) log_emit(LOG_LVL_ERROR, ev, __VA_ARGS__); } while (0)
#define log_warn(ev, ...)  do { if (log_level >= LOG_LVL_WARN)  log_emit(LOG_LVL_WARN, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...)  do { if (log_level >= LOG_LVL_INFO)  log_emit(LOG_LVL_INFO, ev, __VA_ARGS__); } while (0)
#define log_debug(ev, ...) do { if (log_level >= LOG_LVL_DEBUG) log_emit(LOG_LVL_DEBUG, ev, __VA_ARGS__); } while (0)

#endif
