/*
 * log.c - structured logfmt lines on stderr (journald keeps one line per event).
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_level = LOG_LVL_INFO;

static char log_proc[64] = "edgevisor";
static char log_path[4096];
static const char *const log_names[] = { "error", "warn", "info", "debug" };

void
log_set_proc(const char *fmt, ...)
{
	char tag[sizeof(log_proc)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(tag, sizeof(tag), fmt, ap);
	va_end(ap);
	log_quote(log_proc, sizeof(log_proc), tag);
}

int
log_parse_level(const char *name, int *out)
{
	for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
		if (strcmp(name, log_names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

int
log_open_file(const char *path)
{
	if (path == NULL || *path == '\0') {
		log_path[0] = '\0';
		return 0;
	}
	if (strlen(path) >= sizeof(log_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(log_path, path);
	return log_reopen();
}

/* Reopens the log file in place of fd 2, so every module keeps writing to stderr. */
int
log_reopen(void)
{
	int fd, saved;

	if (log_path[0] == '\0')
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (dup2(fd, STDERR_FILENO) < 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

/* A byte that may stand in a bare value. */
static int
bare_ok(unsigned char c)
{
	return c > ' ' && c < 0x7f && c != '"' && c != '=' && c != '\\';
}

/* Writes C as it stands inside quotes into OUT; returns its length (1, 2 or 4). */
static size_t
quote_char(unsigned char c, char out[4])
{
	static const char hex[] = "0123456789abcdef";

	switch (c) {
	case '"': case '\\': out[0] = '\\'; out[1] = (char)c; return 2;
	case '\n': out[0] = '\\'; out[1] = 'n'; return 2;
	case '\r': out[0] = '\\'; out[1] = 'r'; return 2;
	case '\t': out[0] = '\\'; out[1] = 't'; return 2;
	}
	if (c >= ' ' && c < 0x7f) {
		out[0] = (char)c;
		return 1;
	}
	out[0] = '\\';
	out[1] = 'x';
	out[2] = hex[c >> 4];
	out[3] = hex[c & 0xf];
	return 4;
}

char *
log_quote(char *dst, size_t len, const char *s)
{
	const unsigned char *p;
	size_t need = 2, o = 0, k;
	char e[4];
	int bare;

	if (s == NULL)
		s = "";
	bare = *s != '\0';
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		bare = bare && bare_ok(*p);
		need += quote_char(*p, e);
	}
	if (bare && (size_t)((const char *)p - s) < len) {
		memcpy(dst, s, (size_t)((const char *)p - s) + 1);
		return dst;
	}
	/* Too long: keep room for the closing ..." and the NUL. */
	size_t room = need < len ? len - 1 : len - 5;

	dst[o++] = '"';
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		k = quote_char(*p, e);
		if (o + k + 1 > room)
			break;
		memcpy(dst + o, e, k);
		o += k;
	}
	if (*p != '\0') {
		memcpy(dst + o, "...", 3);
		o += 3;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

const char *
log_qv(const char *s)
{
	static _Thread_local char buf[LOG_QV_SLOTS][LOG_QV_LEN];
	static _Thread_local unsigned next;

	return log_quote(buf[next++ % LOG_QV_SLOTS], LOG_QV_LEN, s);
}

/*
 * Where LINE[START..CUT) may end without breaking a value: not inside an escape
 * sequence. *INQ says whether a quoted value is open there.
 */
static size_t
safe_cut(const char *line, size_t start, size_t cut, int *inq)
{
	size_t safe = start, i;
	int esc = 0, q = 0;    /* esc: -1 after a backslash, N hex digits still to come */

	*inq = 0;
	for (i = start; i < cut; i++) {
		char c = line[i];

		if (esc == -1)
			esc = c == 'x' ? 2 : 0;
		else if (esc > 0)
			esc--;
		else if (q && c == '\\')
			esc = -1;
		else if (c == '"')
			q = !q;
		if (esc == 0) {
			safe = i + 1;
			*inq = q;
		}
	}
	return safe;
}

void
log_emit(int lvl, const char *ev, const char *fmt, ...)
{
	static const char cut_tail[] = " truncated=1";
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	size_t n, start, max = sizeof(line) - 1;   /* room for the newline */
	int m, inq;
	int saved = errno;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	m = snprintf(line, sizeof(line),
	    "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ lvl=%s proc=%s ev=%s ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000, log_names[lvl], log_proc, ev);
	start = (m < 0 || (size_t)m >= sizeof(line) / 2) ? 0 : (size_t)m;
	va_start(ap, fmt);
	m = vsnprintf(line + start, sizeof(line) - start, fmt, ap);
	va_end(ap);
	n = start + (m < 0 ? 0 : (size_t)m);
	/* Whatever a caller let through unescaped, the line stays one line. */
	for (size_t i = start; i < n && i < max; i++)
		if ((unsigned char)line[i] < ' ' || line[i] == 0x7f)
			line[i] = '?';
	if (n > max) {
		/* Cut at a character, close the value it is in, and say so. */
		n = safe_cut(line, start, max - (sizeof(cut_tail) - 1) - 1, &inq);
		if (inq)
			line[n++] = '"';
		memcpy(line + n, cut_tail, sizeof(cut_tail) - 1);
		n += sizeof(cut_tail) - 1;
	}
	line[n++] = '\n';
	/* One write per line: lines from several processes on one stderr do not mix. */
	(void)!write(STDERR_FILENO, line, n);
	errno = saved;
}
