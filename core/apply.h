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

#endif /* KQ_CORE_APPLY_H */
