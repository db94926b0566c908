#ifndef KQ_CORE_CONSUME_H
#define KQ_CORE_CONSUME_H

#include "types.h"

/* consume.c: CONS, reading a subscription's partitions. */
int kq__consume_open(struct kq_session *s, struct kq_consume *c,
		     const char *topic, uint64_t sub_id, int64_t from,
		     uint64_t max, char *errmsg, size_t errlen);
int kq__consume_next(struct kq_consume *c, size_t budget, kq_message_cb cb,
		     void *ctx, char *errmsg, size_t errlen);
uint64_t kq__consume_close(struct kq_consume *c);
/* Reads looked at per consume_next() step before it yields the loop
 * (KQ_CONSUME_WAIT, then c->wake() on a later turn). */
#define KQ__CONS_READS_PER_STEP 64
/* From the check handle, once a loop turn: wakes the reads that yielded
 * in an earlier turn. */
void kq__consume_wake_parked(struct kq_broker *b);

#endif /* KQ_CORE_CONSUME_H */
