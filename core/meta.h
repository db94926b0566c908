#ifndef KQ_CORE_META_H
#define KQ_CORE_META_H

#include "types.h"

/* meta.c: the metadata log (group 0). */
/* What the metadata group calls (struct kq_group_config). */
struct kq__meta_sm {
	void (*apply)(void *ctx, const struct kq_record *r);
	int (*snapshot)(void *ctx, void **data, size_t *len);
	int (*restore)(void *ctx, const void *data, size_t len);
};
/* Opens the metadata log and its group, which applies through `sm`
 * (static; kept for reopens). */
int kq__meta_open(struct kq_broker *b, const struct kq__meta_sm *sm);
void kq__meta_close(struct kq_broker *b);
/* Reopens the metadata log and group after the log failed a write or a
 * sync, keeping the state in memory; records never made durable under
 * fsync always are dropped.  Call only when kq__meta_idle(). */
int kq__meta_reopen(struct kq_broker *b);
int kq__meta_idle(struct kq_broker *b);
/* Proposes a metadata record (JSON); cb may be NULL.  The request is
 * allocated and freed internally.  On a broker that does not lead the
 * metadata the record is forwarded to the leader, and cb runs once this
 * broker applied it too (kq__fwd_meta). */
int kq__meta_propose(struct kq_broker *b, json_t *record,
		     void (*cb)(void *ctx, int status), void *ctx);
/* kq__meta_propose_flags: when forwarded, a stop that begins meanwhile
 * does not fail it (kq__fwd_meta's `at_stop`). */
#define KQ__META_AT_STOP 1
/* kq__meta_propose_flags: in a cluster, forwarded to the metadata leader
 * also while this broker's metadata log has failed (it is applied here
 * once the log is reopened). */
#define KQ__META_IF_FAILED 2
/* kq__meta_propose with KQ__META_* flags. */
int kq__meta_propose_flags(struct kq_broker *b, json_t *record, int flags,
			   void (*cb)(void *ctx, int status), void *ctx);
/* The same with the record as `len` bytes of JSON text (copied). */
int kq__meta_propose_text(struct kq_broker *b, const char *text, size_t len,
			  void (*cb)(void *ctx, int status), void *ctx);
/* In a cluster, whether another broker leads the metadata, or none is
 * known yet: writes go there (forward.c). */
int kq__meta_led_elsewhere(struct kq_broker *b);

/* Why a metadata write was refused, in req->errmsg; returns the error. */
int kq__meta_refused(struct kq_broker *b, struct kq_req *req, int rv);

#endif /* KQ_CORE_META_H */
