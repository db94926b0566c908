#ifndef KQ_CORE_API_H
#define KQ_CORE_API_H

#include "types.h"

/* api.c: the broker API table transports call. */
extern const struct kq_broker_api kq__broker_api;

#endif /* KQ_CORE_API_H */
