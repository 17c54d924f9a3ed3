/*
 * names.h - an enum's name from its table of names, "unknown" for a value outside
 * it (values that come from a peer or a file must not index past the table).
 */
#ifndef EV_NAMES_H
#define EV_NAMES_H

#include <stddef.h>

#define NAME_OF(table, i)                                                        \
	((size_t)(i) < sizeof(table) / sizeof((table)[0]) && (table)[(size_t)(i)] != NULL \
	    ? (table)[(size_t)(i)] : "unknown")

#endif
