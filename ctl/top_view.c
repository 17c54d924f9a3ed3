/*
 * top_view.c - the full-screen view of `edgevisorctl top`: the lines top_text.c
 * formats, drawn with ncurses. ncurses does all terminal work - alternate screen,
 * cursor, keypad mode, resize - so nothing here writes an escape sequence.
 */
#include <curses.h>
#include <string.h>

#include "top_text.h"
#include "top_view.h"

static SCREEN *screen;

int
top_view_open(void)
{
	/* newterm, not initscr: initscr exits on an unknown TERM, newterm returns NULL. */
	if ((screen = newterm(NULL, stdout, stdin)) == NULL)
		return -1;
	set_term(screen);
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	/* Esc alone means "back": do not wait a second for an escape sequence. */
	set_escdelay(50);
	curs_set(0);
	return 0;
}

void
top_view_close(void)
{
	endwin();
	delscreen(screen);
	screen = NULL;
}

/* LINE at row Y, cut at the screen's width, padded to it when ATTR is set. */
static void
put(int y, const char *line, attr_t attr)
{
	if (y < 0 || y >= LINES)
		return;
	attron(attr);
	mvaddnstr(y, 0, line, COLS);
	if (attr)
		for (int x = (int)strlen(line); x < COLS; x++)
			addch(' ');
	attroff(attr);
}

void
top_view_draw(const struct top_model *m, const struct top_ui *ui)
{
	char line[TOP_LINE_MAX];
	int nw = top_name_width(m), y = 3, room = LINES - 4;

	erase();
	top_line_supervisor(line, sizeof(line), m);
	put(0, line, A_BOLD);
	if (ui->message[0] != '\0')
		put(1, ui->message, A_BOLD);
	if (!ui->drill) {
		size_t first = 0;

		top_line_columns(line, sizeof(line), nw);
		put(2, line, A_REVERSE);
		/* Scroll so the selected row stays on the screen. */
		if (room > 0 && ui->selected >= (size_t)room)
			first = ui->selected - (size_t)room + 1;
		for (size_t i = first; i < m->nrows && y < LINES - 1; i++, y++) {
			top_line_row(line, sizeof(line), &m->rows[i], nw, i == ui->selected);
			put(y, line, i == ui->selected ? A_BOLD : 0);
		}
		if (m->nrows == 0)
			put(y, "  (no functions)", 0);
		put(LINES - 1, top_help_table, A_REVERSE);
	} else {
		const struct top_worker *w;
		size_t n = top_model_workers_of(m, ui->drill_name, &w);

		if (ui->message[0] == '\0') {
			snprintf(line, sizeof(line), "workers of %s", ui->drill_name);
			put(1, line, 0);
		}
		top_line_worker_columns(line, sizeof(line), nw);
		put(2, line, A_REVERSE);
		for (size_t i = 0; i < n && y < LINES - 1; i++, y++) {
			top_line_worker(line, sizeof(line), &w[i], nw);
			put(y, line, 0);
		}
		if (n == 0) {
			snprintf(line, sizeof(line), "  (no workers of %s)", ui->drill_name);
			put(y, line, 0);
		}
		put(LINES - 1, top_help_workers, A_REVERSE);
	}
	refresh();
}
