/*
 * test_log.c - hostile values through the real logger (stderr captured on a pipe),
 * parsed back by a logfmt reader written from the rules in log.h: every value comes
 * back exactly, every line stays one line with the fields it was given.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/log.h"
#include "unit.h"

#define MAX_FIELDS 16

struct field {
	char key[64];
	char val[4096];
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/*
 * Parses one line (no newline) into F; returns the number of fields, or -1 when the
 * line is not logfmt as log.h defines it (unknown escape, open quote, stray byte).
 */
static int
parse_logfmt(const char *s, struct field *f, int max)
{
	int n = 0;

	while (*s != '\0') {
		size_t k = 0, v = 0;

		if (n == max)
			return -1;
		while (*s != '=' && *s != '\0' && *s != ' ' && k < sizeof(f[n].key) - 1)
			f[n].key[k++] = *s++;
		f[n].key[k] = '\0';
		if (k == 0 || *s++ != '=')
			return -1;
		if (*s == '"') {
			for (s++; *s != '"'; s++) {
				int c = (unsigned char)*s;

				if (c == '\0' || c < ' ' || c >= 0x7f || v >= sizeof(f[n].val) - 1)
					return -1;
				if (c == '\\') {
					switch (*++s) {
					case '"': case '\\': c = *s; break;
					case 'n': c = '\n'; break;
					case 'r': c = '\r'; break;
					case 't': c = '\t'; break;
					case 'x':
						if (hexval(s[1]) < 0 || hexval(s[2]) < 0)
							return -1;
						c = hexval(s[1]) * 16 + hexval(s[2]);
						s += 2;
						break;
					default:
						return -1;
					}
				}
				f[n].val[v++] = (char)c;
			}
			s++;
		} else {
			for (; *s != ' ' && *s != '\0'; s++) {
				unsigned char c = (unsigned char)*s;

				if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\' ||
				    v >= sizeof(f[n].val) - 1)
					return -1;
				f[n].val[v++] = (char)c;
			}
		}
		f[n].val[v] = '\0';
		n++;
		if (*s == ' ')
			s++;
		else if (*s != '\0')
			return -1;
	}
	return n;
}

/* Captured stderr: what the logger wrote between capture_start and capture_end. */
static int cap_pipe[2] = { -1, -1 }, cap_saved = -1;
static char cap_buf[65536];

static int
capture_start(void)
{
	if (pipe(cap_pipe) < 0 || (cap_saved = dup(STDERR_FILENO)) < 0 ||
	    dup2(cap_pipe[1], STDERR_FILENO) < 0)
		return -1;
	close(cap_pipe[1]);
	cap_pipe[1] = -1;
	return 0;
}

/* Restores stderr and returns the captured text (NUL-terminated), or NULL. */
static const char *
capture_end(void)
{
	size_t len = 0;
	ssize_t r;

	dup2(cap_saved, STDERR_FILENO);
	close(cap_saved);
	cap_saved = -1;
	while ((r = read(cap_pipe[0], cap_buf + len, sizeof(cap_buf) - 1 - len)) > 0)
		len += (size_t)r;
	close(cap_pipe[0]);
	cap_pipe[0] = -1;
	cap_buf[len] = '\0';
	return r < 0 ? NULL : cap_buf;
}

static const char *
field(struct field *f, int n, const char *key)
{
	for (int i = 0; i < n; i++)
		if (strcmp(f[i].key, key) == 0)
			return f[i].val;
	return NULL;
}

static const char *const hostile[] = {
	"", "plain", "with space", "a=b", "=", "\"", "quote\"inside", "back\\slash",
	"ends in a backslash\\", "new\nline ts=x lvl=error ev=forged",
	"\" ev=forged x=\"", "ev=forged", "cr\rtab\there", "\x01\x02\x1f\x7f",
	"\xc3\xa9t\xc3\xa9 \xff\xfe", "must be one of \"auto\", \"required\", \"off\"",
	"\\x41 is not A", "\\\"\\", "  ", "k=v k2=\"v2\"",
};

/* Every hostile value as the only field and beside others, through log_qv. */
static void
case_roundtrip(void)
{
	struct field f[MAX_FIELDS];
	const char *out = NULL;
	char *line, *save = NULL;
	size_t nh = sizeof(hostile) / sizeof(hostile[0]), seen = 0;
	int n;

	UNIT_CHECK(capture_start() == 0);
	for (size_t i = 0; i < nh; i++)
		log_error("hostile", "i=%zu v=%s tail=%s", i, log_qv(hostile[i]), log_qv("end"));
	UNIT_CHECK((out = capture_end()) != NULL);
	for (line = strtok_r((char *)out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save), seen++) {
		UNIT_CHECKF(seen < nh, "more lines than values: %s", line);
		n = parse_logfmt(line, f, MAX_FIELDS);
		UNIT_CHECKF(n == 7, "line %zu: %d fields: %s", seen, n, line);
		UNIT_CHECKF(strcmp(field(f, n, "ev"), "hostile") == 0 &&
		    strcmp(field(f, n, "proc"), "test[a b]") == 0 &&
		    strcmp(field(f, n, "lvl"), "error") == 0, "forged: %s", line);
		UNIT_CHECKF(strtoul(field(f, n, "i"), NULL, 10) == seen, "order: %s", line);
		UNIT_CHECKF(strcmp(field(f, n, "v"), hostile[seen]) == 0, "value %zu: %s",
		    seen, line);
		UNIT_CHECKF(strcmp(field(f, n, "tail"), "end") == 0, "tail: %s", line);
	}
	UNIT_CHECKF(seen == nh, "%zu lines for %zu values", seen, nh);
out:
	if (cap_saved >= 0)
		capture_end();
}

/* Bare where nothing needs quoting; the exact escapes log.h promises. */
static void
case_forms(void)
{
	static const char *const cases[][2] = {
		{ "word", "word" }, { "/run/x.sock", "/run/x.sock" }, { "", "\"\"" },
		{ "a b", "\"a b\"" }, { "a=b", "\"a=b\"" }, { "\"", "\"\\\"\"" },
		{ "\\", "\"\\\\\"" }, { "\n\r\t", "\"\\n\\r\\t\"" },
		{ "\x01\x7f\x80\xff", "\"\\x01\\x7f\\x80\\xff\"" },
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		UNIT_CHECKF(strcmp(log_quote(buf, sizeof(buf), cases[i][0]), cases[i][1]) == 0,
		    "%zu: got %s want %s", i, buf, cases[i][1]);
	UNIT_CHECK(strcmp(log_quote(buf, sizeof(buf), NULL), "\"\"") == 0);
out:
	;
}

/* A value cut to its buffer stays one closed value, never half an escape. */
static void
case_value_cut(void)
{
	char small[LOG_QUOTE_MIN + 5], big[LOG_QV_LEN * 2];
	struct field f[MAX_FIELDS];
	int n;

	for (size_t len = LOG_QUOTE_MIN; len <= sizeof(small); len++) {
		log_quote(small, len, "\x01\x02\x03\x04 ab");
		UNIT_CHECKF(strlen(small) < len, "len %zu: %s", len, small);
		snprintf(big, sizeof(big), "v=%s", small);
		n = parse_logfmt(big, f, MAX_FIELDS);
		UNIT_CHECKF(n == 1, "len %zu: not one value: %s", len, small);
	}
	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	{
		const char *q = log_qv(big);
		size_t l = strlen(q);

		UNIT_CHECKF(l < LOG_QV_LEN && strcmp(q + l - 4, "...\"") == 0, "%s", q);
	}
out:
	;
}

/* A line over the line buffer: cut inside a value, the quote closed, said so. */
static void
case_line_cut(void)
{
	static char big[4096], q[sizeof(big) * 4 + 8];
	struct field f[MAX_FIELDS];
	const char *out = NULL;
	int n;

	for (size_t i = 0; i < sizeof(big) - 1; i++)
		big[i] = "ab\n\"\\ \x01="[i % 8];
	UNIT_CHECK(capture_start() == 0);
	log_quote(q, sizeof(q), big);
	log_warn("long", "v=%s after=1", q);
	UNIT_CHECK((out = capture_end()) != NULL);
	UNIT_CHECKF(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
	cap_buf[strlen(out) - 1] = '\0';
	n = parse_logfmt(out, f, MAX_FIELDS);
	UNIT_CHECKF(n == 6, "%d fields: %s", n, out);
	UNIT_CHECK(strcmp(field(f, n, "truncated"), "1") == 0);
	UNIT_CHECK(strncmp(field(f, n, "v"), big, strlen(field(f, n, "v"))) == 0);
out:
	if (cap_saved >= 0)
		capture_end();
}

/* Even a raw newline a caller forgot to escape cannot start a second line. */
static void
case_raw_control(void)
{
	const char *out = NULL;

	UNIT_CHECK(capture_start() == 0);
	log_info("raw", "v=%s", "x\nts=now lvl=error ev=forged");
	UNIT_CHECK((out = capture_end()) != NULL);
	UNIT_CHECKF(strchr(out, '\n') == out + strlen(out) - 1, "split: %s", out);
	UNIT_CHECK(strstr(out, "v=x?ts=now") != NULL);
out:
	if (cap_saved >= 0)
		capture_end();
}

/* Below the level nothing is written and no argument is evaluated. */
static int evaluated;

static const char *
count_eval(void)
{
	evaluated++;
	return "x";
}

static void
case_level(void)
{
	const char *out = NULL;
	int saved = log_level;

	log_level = LOG_LVL_WARN;
	UNIT_CHECK(capture_start() == 0);
	log_info("quiet", "v=%s", count_eval());
	log_debug("quiet", "v=%s", count_eval());
	UNIT_CHECK((out = capture_end()) != NULL);
	UNIT_CHECKF(out[0] == '\0' && evaluated == 0, "wrote %s", out);
out:
	log_level = saved;
	if (cap_saved >= 0)
		capture_end();
}

int
main(int argc, char **argv)
{
	if (unit_chdir_root(argc, argv) < 0)
		return 1;
	log_set_proc("test[a b]");
	unit_run("roundtrip", case_roundtrip);
	unit_run("forms", case_forms);
	unit_run("value_cut", case_value_cut);
	unit_run("line_cut", case_line_cut);
	unit_run("raw_control", case_raw_control);
	unit_run("level", case_level);
	return unit_exit();
}
