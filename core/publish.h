#ifndef KQ_CORE_PUBLISH_H
#define KQ_CORE_PUBLISH_H

#include "types.h"

/* publish.c: PUBS. */
int kq__publish(struct kq_session *s, struct kq_req *req, const char *topic,
		const void *msg, size_t len, kq_req_cb cb);
/* Proposes (or forwards) every partition's batch: the end of the turn. */
void kq__batch_flush(struct kq_broker *b);
/* A partition proposal's callback ran (b->proposals): this file's and
 * serve.c's forwarded ones. */
void kq__proposal_done(struct kq_broker *b);

#endif /* KQ_CORE_PUBLISH_H */
