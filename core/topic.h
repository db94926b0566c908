#ifndef KQ_CORE_TOPIC_H
#define KQ_CORE_TOPIC_H

#include "types.h"

/* topic.c: topics, created, looked up and freed. */
struct kq__topic *kq__topic_get(struct kq_broker *b, const char *name);
/* Creates the topic and opens the partitions this broker holds (an
 * applied metadata record).  Partitions that cannot be opened stay in
 * the topic with their open_error and are retried: *failed counts them,
 * *first_error says why the first one failed.  Once the broker serves,
 * the partitions are opened a slice at a time after this returns (with
 * *failed 0): t->opened_cb, when set, hears how that ended.  Fails only
 * without memory. */
int kq__topic_create(struct kq_broker *b, const char *name, uint32_t nparts,
		     uint32_t replicas, size_t partitioner,
		     int64_t retention_ms, int64_t retention_bytes,
		     uint64_t group_base, unsigned *failed, int *first_error);
void kq__topic_free(struct kq_broker *b, struct kq__topic *t);

#endif /* KQ_CORE_TOPIC_H */
