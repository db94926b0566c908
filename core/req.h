#ifndef KQ_CORE_REQ_H
#define KQ_CORE_REQ_H

#include "types.h"

/* req.c: helpers for the core's request entry points, and batches of
 * requests. */
/* Fills req->errmsg from fmt and returns err, for an entry point that
 * refuses a request (its callback then never runs). */
int kq__req_fail(struct kq_req *req, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Readies a caller-owned request for an entry point. */
void kq__req_init(struct kq_req *req, struct kq_session *s,
		  enum kq_req_type type, kq_req_cb cb);
/* Frees a batch of PUBS, whose requests were answered. */
void kq__req_batch_free(struct kq__batch *bt);

#endif /* KQ_CORE_REQ_H */
