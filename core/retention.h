#ifndef KQ_CORE_RETENTION_H
#define KQ_CORE_RETENTION_H

#include "types.h"

/* retention.c: b->retention_timer's callback. */
void kq__retention_on_timer(uv_timer_t *tm);

#endif /* KQ_CORE_RETENTION_H */
