/*
 * top_text.h - the lines of a `edgevisorctl top` frame (top_text.c), shared by the
 * ncurses screen and the plain-text frames. Columns are fixed-width, right-aligned
 * figures; an absent figure (TOP_ABSENT, a cap of 0) is "-".
 */
#ifndef EV_CTL_TOP_TEXT_H
#define EV_CTL_TOP_TEXT_H

#include <stdbool.h>
#include <stdio.h>

#include "top_model.h"

#define TOP_LINE_MAX 512

extern const char top_help_table[];
extern const char top_help_workers[];

/* The width of the name column for M's rows. */
int top_name_width(const struct top_model *m);
void top_line_supervisor(char *buf, size_t len, const struct top_model *m);
void top_line_columns(char *buf, size_t len, int name_width);
/* SELECTED marks the row with '>' in its first column. */
void top_line_row(char *buf, size_t len, const struct top_row *r, int name_width,
    bool selected);
void top_line_worker_columns(char *buf, size_t len, int name_width);
void top_line_worker(char *buf, size_t len, const struct top_worker *w, int name_width);

/* One plain-text frame: the supervisor line, the functions, every worker. */
void top_text_print(FILE *f, const struct top_model *m);

#endif
