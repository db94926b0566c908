#ifndef KQ_CORE_OPENING_H
#define KQ_CORE_OPENING_H

#include "types.h"

/* opening.c: a new topic's partitions opened, at once or a slice at a
 * time.  At the end each logs what failed, schedules retries and calls
 * t->opened_cb. */
/* Opens t's partitions from t->open_next until `deadline` (uv_hrtime())
 * has passed, at least one.  Returns 1 when every partition was tried,
 * else 0. */
int kq__opening_step(struct kq_broker *b, struct kq__topic *t,
		     uint64_t deadline);
/* Opens t's partitions a slice per loop turn, after the topics queued
 * before it. */
void kq__opening_later(struct kq_broker *b, struct kq__topic *t);
/* Ends t's opening now (the broker stops): partitions not yet tried
 * fail with KQ_ECANCELED and are retried at the next start. */
void kq__opening_cancel(struct kq_broker *b, struct kq__topic *t);
/* The broker stops: topics still being opened end now, their partitions
 * not yet tried failing with KQ_ECANCELED (tried at the next start). */
void kq__opening_cancel_all(struct kq_broker *b);

#endif /* KQ_CORE_OPENING_H */
