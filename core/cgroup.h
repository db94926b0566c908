#ifndef KQ_CORE_CGROUP_H
#define KQ_CORE_CGROUP_H

#include "types.h"

/* cgroup.c: consumer groups and their members, as objects. */
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
/* Stamps g as touched by the record at `end` - 1 whose timestamp is ts;
 * end 0: by a change a standalone broker applies without a record. */
void kq__cgroup_touch(struct kq__cgroup *g, int64_t ts, uint64_t end);
/* Frees g when nothing keeps it: no members and no committed offset. */
void kq__cgroup_release(struct kq__cgroup *g);
/* Recomputes the group's owners after a join or leave. */
void kq__cgroup_rebalance(struct kq__cgroup *g);
/* Frees m (its group keeps no pointer to it any more). */
void kq__cgroup_member_free(struct kq_broker *b, struct kq__member *m);
/* Takes m off its session's list of subscriptions, if it has one. */
void kq__cgroup_member_unlink(struct kq__member *m);
/* Frees g and its members (the caller took it off its topic). */
void kq__cgroup_free(struct kq__cgroup *g);

#endif /* KQ_CORE_CGROUP_H */
