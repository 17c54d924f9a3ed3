/*
 * top_view.h - the ncurses screen of `edgevisorctl top` (the lines come from
 * top_text.c, the figures from top_model.c).
 */
#ifndef EV_CTL_TOP_VIEW_H
#define EV_CTL_TOP_VIEW_H

#include <stdbool.h>

#include "top_model.h"

/* What the full-screen view is showing besides the model. */
struct top_ui {
	size_t selected;                    /* index into the rows */
	bool drill;                         /* the workers of drill_name */
	char drill_name[TOP_NAME_MAX + 1];
	char message[512];                  /* a fetch error, "" = none */
};

/* The full screen: 0, or -1 if the terminal cannot be used (an unknown TERM). */
int top_view_open(void);
void top_view_close(void);
void top_view_draw(const struct top_model *m, const struct top_ui *ui);

#endif
