#ifndef KQ_CORE_DEFER_H
#define KQ_CORE_DEFER_H

#include "types.h"

/* defer.c: work the loop runs after this turn's callbacks. */
/* Makes sure the end-of-turn flush (b->flush_cb) runs soon. */
void kq__defer_wake(struct kq_broker *b);
/* Queues req's callback with `status` for the end of this loop turn. */
void kq__defer_complete(struct kq_broker *b, struct kq_req *req, int status);
/* Runs the queued callbacks, in the order they were queued. */
void kq__defer_deliver(struct kq_broker *b);
/* How often partitions that could not be opened are tried again. */
#define KQ__REOPEN_MS 5000
/* Starts retrying logs that failed (b->reopen_cb every KQ__REOPEN_MS),
 * unless that runs already or the broker stops. */
void kq__defer_reopen(struct kq_broker *b);

#endif /* KQ_CORE_DEFER_H */
