/*
 * top.c - `edgevisorctl top [--once | --batch N] [--interval MS] [--sort KEY]`:
 * GET /status every interval (default 1 s), the rows from top_model.c, drawn by
 * top_view.c (the screen) or printed by top_text.c (plain frames for scripts); the
 * keys of the full-screen view.
 *
 * The fetch is the blocking admin_client.c request with a 2 s timeout, so a wedged
 * supervisor freezes the screen for at most that long, then the view says so and
 * shows the last good data. SIGINT and SIGTERM end the loop (the flag is read after
 * each getch, which waits at most 250 ms), so the terminal is restored by endwin;
 * SIGWINCH is ncurses' own: getch returns KEY_RESIZE with LINES/COLS updated.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curses.h>

#include "admin_client.h"
#include "top.h"
#include "top_model.h"
#include "top_text.h"
#include "top_view.h"

#define FETCH_TIMEOUT_S 2
#define KEY_WAIT_MS     250

static volatile sig_atomic_t got_signal;

static void
on_signal(int sig)
{
	got_signal = sig;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000L };

	while (!got_signal && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One snapshot into M. 0 or -1 (the reason in admin_last_error()). */
static int
fetch(struct top_model *m)
{
	json_t *st = admin_get_status();
	int rc;

	if (st == NULL)
		return -1;
	rc = top_model_update(m, st, now_s());
	if (rc < 0)
		ctl_fail("/status: not the document top knows");
	json_decref(st);
	return rc;
}

/* --once / --batch N: N plain frames, each over one interval (rates need two
 * snapshots, so the first frame comes one interval after the start). */
static int
run_batch(struct top_model *m, long frames, long interval_ms)
{
	if (fetch(m) < 0)
		return 1;
	for (long i = 0; i < frames; i++) {
		nap_ms(interval_ms);
		if (got_signal)
			return 128 + got_signal;
		if (fetch(m) < 0)
			return 1;
		top_text_print(stdout, m);
	}
	return 0;
}

static size_t
row_index(const struct top_model *m, const char *name, size_t dflt)
{
	for (size_t i = 0; i < m->nrows; i++)
		if (strcmp(m->rows[i].name, name) == 0)
			return i;
	return m->nrows == 0 ? 0 : dflt < m->nrows ? dflt : m->nrows - 1;
}

static int
run_screen(struct top_model *m, long interval_ms)
{
	struct top_ui ui = { 0 };
	char sel_name[TOP_NAME_MAX + 1] = "", when[16];
	double next = 0;
	bool quit = false;
	time_t wall;
	struct tm tm;

	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		ctl_fail("top: not a terminal (--once or --batch N print plain frames)");
		return 1;
	}
	/* The first frame has figures, not a blank screen, and a dead admin is an error. */
	if (fetch(m) < 0)
		return 1;
	wall = time(NULL);
	strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&wall, &tm));
	next = now_s() + interval_ms / 1000.0;
	admin_quiet(true);
	if (top_view_open() < 0) {
		admin_quiet(false);
		ctl_fail("top: cannot use the terminal (TERM=%s)",
		    getenv("TERM") ? getenv("TERM") : "");
		return 1;
	}
	while (!quit && !got_signal) {
		double t = now_s();
		int ch;

		if (t >= next) {
			if (fetch(m) < 0) {
				snprintf(ui.message, sizeof(ui.message), "%s (last good data: %s)",
				    admin_last_error(), when);
			} else {
				ui.message[0] = '\0';
				wall = time(NULL);
				strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&wall, &tm));
			}
			next = now_s() + interval_ms / 1000.0;
			t = now_s();
		}
		/* The selection follows its function across refreshes and sorts. */
		ui.selected = row_index(m, sel_name, ui.selected);
		top_view_draw(m, &ui);
		{
			double wait_ms = (next - t) * 1000;

			timeout(wait_ms < 0 ? 0 : wait_ms > KEY_WAIT_MS ? KEY_WAIT_MS : (int)wait_ms);
		}
		ch = getch();
		switch (ch) {
		case ERR:
		case KEY_RESIZE:        /* ncurses resized stdscr: the next draw fits */
			break;
		case 'q':
		case 'Q':
			quit = true;
			break;
		case KEY_UP:
		case 'k':
			if (!ui.drill && ui.selected > 0)
				ui.selected--;
			break;
		case KEY_DOWN:
		case 'j':
			if (!ui.drill && ui.selected + 1 < m->nrows)
				ui.selected++;
			break;
		case KEY_ENTER:
		case '\n':
		case '\r':
		case KEY_RIGHT:
			if (!ui.drill && ui.selected < m->nrows) {
				ui.drill = true;
				snprintf(ui.drill_name, sizeof(ui.drill_name), "%s",
				    m->rows[ui.selected].name);
			}
			break;
		case 27:                /* Esc */
		case KEY_LEFT:
		case KEY_BACKSPACE:
			ui.drill = false;
			break;
		case ' ':
			next = 0;       /* refresh now */
			break;
		default:
			if (top_sort_key(ch) >= 0) {
				top_model_sort(m, (enum top_sort)top_sort_key(ch));
				ui.selected = row_index(m, sel_name, ui.selected);
			}
			break;
		}
		if (ui.selected < m->nrows)
			snprintf(sel_name, sizeof(sel_name), "%s", m->rows[ui.selected].name);
	}
	top_view_close();
	admin_quiet(false);
	return got_signal ? 128 + got_signal : 0;
}

static void
usage_top(void)
{
	fprintf(stderr, "usage: edgevisorctl top [--once | --batch N] [--interval MS] "
	    "[--sort n|r|p|m|c]\n");
}

int
cmd_top(int argc, char **argv)
{
	struct sigaction sa;
	struct top_model m;
	long frames = 0, interval_ms = 1000;
	int sort = TOP_SORT_NAME, rc;
	char *end;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--once") == 0) {
			frames = 1;
		} else if (strcmp(a, "--batch") == 0 && v != NULL) {
			frames = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || frames < 1 || frames > 1000000) {
				ctl_fail("top: --batch %s: a number of frames, 1 or more", v);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--interval") == 0 && v != NULL) {
			interval_ms = strtol(v, &end, 10);
			if (*v == '\0' || *end != '\0' || interval_ms < 100 || interval_ms > 3600000) {
				ctl_fail("top: --interval %s: milliseconds, 100 to 3600000", v);
				return 2;
			}
			i++;
		} else if (strcmp(a, "--sort") == 0 && v != NULL) {
			if (strlen(v) != 1 || (sort = top_sort_key(v[0])) < 0) {
				ctl_fail("top: --sort %s: one of n r p m c", v);
				return 2;
			}
			i++;
		} else {
			usage_top();
			return 2;
		}
	}
	/* Ours before initscr: ncurses then leaves SIGINT/SIGTERM to us (it only takes
	 * signals still at their default). No SA_RESTART: a blocked read returns. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	admin_timeout(FETCH_TIMEOUT_S);
	top_model_init(&m);
	m.sort = (enum top_sort)sort;
	rc = frames > 0 ? run_batch(&m, frames, interval_ms) : run_screen(&m, interval_ms);
	top_model_free(&m);
	return rc;
}
