#ifndef KQ_CORE_CREATE_H
#define KQ_CORE_CREATE_H

#include "types.h"

/* create.c: CRTP. */
int kq__create_topic(struct kq_session *s, struct kq_req *req,
		     const struct kq_topic_spec *spec, kq_req_cb cb);
/* CRTP without forwarding: run by the metadata leader for another
 * broker's client. */
int kq__create_topic_here(struct kq_session *s, struct kq_req *req,
			  const struct kq_topic_spec *spec, kq_req_cb cb);
/* Tells a CRTP waiting for topic `name` why its record could not be
 * applied (a negative code); nothing when no CRTP waits for it. */
void kq__create_failed(struct kq_broker *b, const char *name, int err);

#endif /* KQ_CORE_CREATE_H */
