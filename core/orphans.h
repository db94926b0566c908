#ifndef KQ_CORE_ORPHANS_H
#define KQ_CORE_ORPHANS_H

#include "types.h"

/* orphans.c: moves partition folders the metadata does not know to
 * <dir>/orphaned/, with one warning line each.  Does nothing unless this
 * broker is the sole replica of its metadata (so knows it whole). */
void kq__orphans_move(struct kq_broker *b);

#endif /* KQ_CORE_ORPHANS_H */
