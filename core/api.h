#ifndef KQ_CORE_API_H
#define KQ_CORE_API_H

#include "types.h"

/* api.c: the broker API table transports call. */
extern const struct kq_broker_api kq__broker_api;
void kq__sessions_close_all(struct kq_broker *b);

#endif /* KQ_CORE_API_H */
