/*
 * top_view.h - what `edgevisorctl top` shows: the lines of a frame (shared by the
 * full-screen view and the plain-text frames of --once/--batch) and the ncurses
 * screen. Nothing here fetches or computes a figure (top_model.c does).
 */
#ifndef EV_CTL_TOP_VIEW_H
#define EV_CTL_TOP_VIEW_H

#include <stdbool.h>
#include <stdio.h>

#include "top_model.h"

/* What the full-screen view is showing besides the model. */
struct top_ui {
	size_t selected;                    /* index into the rows */
	bool drill;                         /* the workers of drill_name */
	char drill_name[TOP_NAME_MAX + 1];
	char message[512];                  /* a fetch error, "" = none */
};

/* One plain-text frame: the supervisor line, the functions, every worker. */
void top_view_print(FILE *f, const struct top_model *m);

/* The full screen: 0, or -1 if the terminal cannot be used (said on stderr). */
int top_view_open(void);
void top_view_close(void);
void top_view_draw(const struct top_model *m, const struct top_ui *ui);

#endif
