#ifndef KQ_CORE_FORWARD_H
#define KQ_CORE_FORWARD_H

#include "types.h"

/* forward.c: commands whose leader is another broker. */
struct kq__fwd;
/* Sends a CRTP to the metadata leader (or waits for one); req->cb runs
 * from a later loop turn.  Returns 0, -ENOMEM, or -E2BIG (options). */
int kq__fwd_create(struct kq_broker *b, struct kq_req *req,
		   const struct kq_topic_spec *spec, uint32_t nparts);
/* Sends a metadata record (`len` bytes of JSON, copied) to the metadata
 * leader; cb (may be NULL) runs from a later loop turn, once the record
 * is committed and applied here, or failed.  With `at_stop`, a stop that
 * begins meanwhile does not fail it: it is still sent, and the stop
 * waits for it until topics.request_timeout_ms.  Returns 0 or -ENOMEM. */
int kq__fwd_meta(struct kq_broker *b, const char *text, size_t len, int at_stop,
		 void (*cb)(void *ctx, int status), void *ctx);
/* The replica to ask about partition `part` (of `n` replicas, borrowed)
 * when this broker (`self`) holds none: the first up, from the
 * partition's own turn, that is not this broker, preferring one other
 * than `refused_by` (which just answered "not me"); that one when it is
 * the only one up, as it may lead by the time it is asked again.  0 when
 * none is up. */
int kq__fwd_pick(const int *replicas, size_t n, uint32_t part, int self,
		 int refused_by, int (*up)(void *ctx, int id), void *ctx);
/* Sends a partition's batch to its leader; takes the batch. */
void kq__fwd_publish(struct kq_broker *b, struct kq__partition *p,
		     struct kq__batch *bt);
/* b->fwd_timer: sends what waits for a leader, fails what timed out. */
void kq__fwd_on_timer(uv_timer_t *tm);
/* Whether a forwarded request awaits its answer (the stop waits). */
int kq__fwd_busy(const struct kq_broker *b);
/* At a stop: fails what waits for a leader. */
void kq__fwd_stop(struct kq_broker *b);

/* The kind byte of a forwarded request. */
enum {
	KQ__FWD_CREATE = 1,
	KQ__FWD_PUBLISH = 2,
	KQ__FWD_META = 3,
	KQ__FWD_FETCH = 4
};

#endif /* KQ_CORE_FORWARD_H */
