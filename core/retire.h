#ifndef KQ_CORE_RETIRE_H
#define KQ_CORE_RETIRE_H

#include "types.h"

/* retire.c: offsets retention, the forget records of groups with no
 * member past groups.offsets_retention_ms, proposed on the metadata
 * leader. */
/* b->retire_timer's callback. */
void kq__retire_on_timer(uv_timer_t *tm);
/* The timer's period in ms. */
uint64_t kq__retire_period(const struct kq_broker *b);

#endif /* KQ_CORE_RETIRE_H */
