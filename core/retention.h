#ifndef KQ_CORE_RETENTION_H
#define KQ_CORE_RETENTION_H

#include "types.h"

/* retention.c: b->retention_timer's callback; a sweep looks at most this
 * many partitions per loop turn. */
#define KQ__RETENTION_SLICE 64
void kq__retention_on_timer(uv_timer_t *tm);
/* Drops a sweep in progress (the broker closes). */
void kq__retention_free(struct kq_broker *b);

#endif /* KQ_CORE_RETENTION_H */
