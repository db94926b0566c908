#ifndef KQ_CORE_APPLY_H
#define KQ_CORE_APPLY_H

#include "types.h"

/* apply.c: the metadata state machine. */
/* Readies this run's state (subscription ids, boot id, members), opens
 * the metadata log applying through it, and starts reserving ids and
 * registering for consumer groups. */
int kq__apply_open(struct kq_broker *b);
/* kq__meta_reopen(), then the same reservation and registration. */
int kq__apply_reopen(struct kq_broker *b);
/* Whether the offsets record of broker `broker`'s run `boot` numbered
 * `ask` was applied here lately without some of its partitions (the
 * member no longer held them). */
int kq__apply_was_refused(const struct kq_broker *b, int broker, uint64_t boot,
			  uint64_t ask);

#endif /* KQ_CORE_APPLY_H */
