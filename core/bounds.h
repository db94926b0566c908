#ifndef KQ_CORE_BOUNDS_H
#define KQ_CORE_BOUNDS_H

#include "types.h"

/* bounds.c: the range of p a read from *pos up to *end may return
 * here: *pos is raised to the first offset retention kept, *end cut to
 * the commit end and to the first range lost to damage.  Fails (errmsg
 * filled) when *pos is in a lost range. */
int kq__read_bounds(struct kq_broker *b, const struct kq__partition *p,
		    uint64_t *pos, uint64_t *end, char *errmsg, size_t errlen);

#endif /* KQ_CORE_BOUNDS_H */
