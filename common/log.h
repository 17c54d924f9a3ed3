/*
 * log.h - the one logging module: one structured (logfmt) line per event on stderr.
 *
 * Every line carries ts, lvl, proc (the process tag: "supervisor", "worker[hello/3]")
 * and ev (a short event name), then the caller's key=value fields. The level is
 * checked before any argument is evaluated, so a disabled debug line costs a compare.
 */
#ifndef EV_LOG_H
#define EV_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log_level;

/* Sets the process tag printed as proc=...; the string is copied. */
void log_set_proc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Parses "error|warn|info|debug"; returns 0, or -1 on an unknown name. */
int log_parse_level(const char *name, int *out);
/* Redirects stderr to PATH (append); NULL keeps stderr. Used again on SIGUSR1. */
int log_open_file(const char *path);
int log_reopen(void);

void log_emit(int lvl, const char *ev, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_error(ev, ...) do { if (log_level >= LOG_LVL_ERROR) log_emit(LOG_LVL_ERROR, ev, __VA_ARGS__); } while (0)
#define log_warn(ev, ...)  do { if (log_level >= LOG_LVL_WARN)  log_emit(LOG_LVL_WARN, ev, __VA_ARGS__); } while (0)
#define log_info(ev, ...)  do { if (log_level >= LOG_LVL_INFO)  log_emit(LOG_LVL_INFO, ev, __VA_ARGS__); } while (0)
#define log_debug(ev, ...) do { if (log_level >= LOG_LVL_DEBUG) log_emit(LOG_LVL_DEBUG, ev, __VA_ARGS__); } while (0)

#endif
