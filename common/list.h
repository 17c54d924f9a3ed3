/*
 * list.h - <sys/queue.h> plus the *_FOREACH_SAFE iterators that BSD has and glibc's
 * copy lacks (removing the current element while walking a list).
 */
#ifndef EV_LIST_H
#define EV_LIST_H

#include <sys/queue.h>

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                        \
	for ((var) = TAILQ_FIRST(head);                                   \
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);        \
	    (var) = (tvar))
#endif
#ifndef STAILQ_FOREACH_SAFE
#define STAILQ_FOREACH_SAFE(var, head, field, tvar)                       \
	for ((var) = STAILQ_FIRST(head);                                  \
	    (var) != NULL && ((tvar) = STAILQ_NEXT(var, field), 1);       \
	    (var) = (tvar))
#endif

#endif
