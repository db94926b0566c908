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

#endif /* KQ_CORE_CONSUME_H */
