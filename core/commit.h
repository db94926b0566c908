#ifndef KQ_CORE_COMMIT_H
#define KQ_CORE_COMMIT_H

#include "types.h"

/* commit.c: committed offsets of groups.  The subscription sub_id on
 * `topic`, or an error with errmsg filled. */
int kq__member_find(struct kq_broker *b, const char *topic, uint64_t sub_id,
		    struct kq__member **out, char *errmsg, size_t errlen);
/* Commits what m was handed and has not acknowledged (CONS asking for
 * more); a failure to store it is logged, and the batch comes again. */
void kq__commit_acknowledge(struct kq_broker *b, struct kq__member *m);
/* Where a read of m's partition p from the committed offset starts on
 * this broker: the group's committed offset, or past it what m
 * acknowledged here and is being stored. */
uint64_t kq__commit_position(const struct kq__member *m, uint32_t p);
/* A CMIT with an offset of g's partition p was applied (or a snapshot
 * changed its count of them): batches handed out before on this broker,
 * and acknowledgements of them being stored, no longer count. */
void kq__commit_seeked(struct kq__cgroup *g, uint32_t p);
/* The offsets record `a` was applied here with partitions its member no
 * longer held left out.  When this broker's run proposed it, its CMIT,
 * if any, is answered with an error; another broker's is remembered for
 * kq__commit_was_refused() (the last KQ__REFUSED_MAX). */
void kq__commit_refused(struct kq_broker *b, const struct kq__ask *a);
/* Whether `a` was refused so lately (serve.c: the metadata leader tells
 * its proposer, who may get it only inside a snapshot). */
int kq__commit_was_refused(const struct kq_broker *b, const struct kq__ask *a);
/* At a stop: CMITs waiting for a partition's end from another broker are
 * answered now, ERR UNAVAILABLE. */
void kq__commit_stop(struct kq_broker *b);
int kq__commit(struct kq_session *s, struct kq_req *req, const char *topic,
	       uint64_t sub_id, int64_t partition, uint64_t offset,
	       kq_req_cb cb);

#endif /* KQ_CORE_COMMIT_H */
