#ifndef KQ_CORE_TOPIC_H
#define KQ_CORE_TOPIC_H

#include "broker.h"

/* topic.c: topics, their partitions and their consumer groups. */
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
/* Opens this broker's replica of p (its log and consensus group) unless
 * it is open or held elsewhere.  Returns 0 or the error. */
int kq__partition_open(struct kq_broker *b, struct kq__partition *p);
/* 0 when this broker's replica of p serves, else KQ_EUNAVAILABLE with
 * the reason (being opened, cannot be opened, not held here) written to
 * errmsg. */
int kq__partition_usable(const struct kq__partition *p, char *errmsg,
			 size_t errlen);
/* Whether another broker holds a replica of p. */
int kq__partition_held_elsewhere(struct kq_broker *b,
				 const struct kq__partition *p);
/* Whether this broker's replica of p is open and leads it. */
int kq__partition_led_here(struct kq_broker *b, const struct kq__partition *p);
/* The broker stops: topics still being opened end now, their partitions
 * not yet tried failing with KQ_ECANCELED (tried at the next start). */
void kq__topic_open_cancel_all(struct kq_broker *b);
void kq__topic_free(struct kq_broker *b, struct kq__topic *t);
/* How kq__cgroup_get treats a group that does not exist yet. */
enum kq__cgroup_create {
	KQ__CGROUP_FIND,     /* NULL */
	KQ__CGROUP_JOIN,     /* created within limits.max_groups */
	KQ__CGROUP_RECORDED, /* created: the metadata log holds it */
};
/* The group `name` of topic t (owned by the topic), or NULL: absent,
 * out of memory, or (KQ__CGROUP_JOIN) at limits.max_groups. */
struct kq__cgroup *kq__cgroup_get(struct kq__topic *t, const char *name,
				  enum kq__cgroup_create create);
/* Frees g when nothing keeps it: no members and no committed offset. */
void kq__cgroup_release(struct kq__cgroup *g);
/* Recomputes the group's owners after a join or leave. */
void kq__cgroup_rebalance(struct kq__cgroup *g);
/* Frees m (its group keeps no pointer to it any more). */
void kq__member_free(struct kq_broker *b, struct kq__member *m);
/* Takes m off its session's list of subscriptions, if it has one. */
void kq__member_unlink(struct kq__member *m);
/* Frees a batch of PUBS, whose requests were answered. */
void kq__batch_free(struct kq__batch *bt);

/* The brokers of the cluster (one: this broker when standalone), in
 * configuration order. */
size_t kq__brokers_list(struct kq_broker *b, const int **ids);

#endif /* KQ_CORE_TOPIC_H */
