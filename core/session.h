#ifndef KQ_CORE_SESSION_H
#define KQ_CORE_SESSION_H

#include "types.h"

/* session.c: a transport's connections as the broker sees them. */
/* A new session of b (owned by the broker until kq__session_close()).
 * 0 or -ENOMEM. */
int kq__session_open(struct kq_broker *b, struct kq_session **out);
/* Ends s: its group members leave, its waiting subscriptions are
 * answered, and it is freed. */
void kq__session_close(struct kq_session *s);
/* Closes every session of b (the stop, or a failed start). */
void kq__session_close_all(struct kq_broker *b);

#endif /* KQ_CORE_SESSION_H */
