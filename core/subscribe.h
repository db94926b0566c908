#ifndef KQ_CORE_SUBSCRIBE_H
#define KQ_CORE_SUBSCRIBE_H

#include "types.h"

/* subscribe.c: SUBS and UNSB. */
int kq__subscribe(struct kq_session *s, struct kq_req *req, const char *topic,
		  const char *group, uint32_t cap, kq_req_cb cb);
int kq__unsubscribe(struct kq_session *s, struct kq_req *req, const char *topic,
		    uint64_t sub_id, kq_req_cb cb);
/* SUBS waiting for ids or for this run's registration go on, or fail
 * with `status` when that is an error. */
void kq__subscribe_resume(struct kq_broker *b, int status);
/* Reserves subscription ids when few are left. */
void kq__subscribe_reserve_ids(struct kq_broker *b);
/* s closes: its SUBS still waiting for ids will not join. */
void kq__subscribe_session_closed(struct kq_broker *b, struct kq_session *s);

#endif /* KQ_CORE_SUBSCRIBE_H */
