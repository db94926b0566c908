/* Consumer-group assignment: which member of a group owns each partition
 * of a topic.  A pure function of the group's state, so that every broker
 * applying the same metadata computes the same answer. */
#ifndef KQ_CORE_ASSIGN_H
#define KQ_CORE_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

/* A member of a consumer group, in join order. */
struct kq__assign_member {
	uint64_t sub_id; /* the subscription id, non-zero and unique */
	uint32_t cap;	 /* most partitions it takes; 0: no cap */
};

/* owner[p] is the sub_id owning partition p (0 = unassigned) for p in
 * [0, nparts).  owner[] is the caller's, rewritten in place to the new
 * assignment; members (borrowed for the call) are listed in join order.
 *
 * The new assignment is
 * - balanced: each member's count is its target, found by water-filling:
 *   members whose cap is below the fair share get their cap, the rest is
 *   shared evenly among the others, the +1 remainders going first to
 *   members already holding more than the even share, then in join order;
 * - capped: no member above its cap;
 * - complete: no partition unassigned while some member is under its cap;
 * - sticky: every member keeps its lowest-numbered partitions up to its
 *   target and gives up the rest; owners that are not members lose all;
 *   members below target take free partitions in join order, lowest
 *   numbers first, those that had an owner before those that had none
 *   (so a partition left unassigned stays so rather than moving);
 * - deterministic: it depends only on the arguments.
 *
 * Returns the number of partitions whose owner changed, or, leaving
 * owner[] untouched, KQ_EBADARG when a member's sub_id is 0 or repeated
 * or nparts exceeds INT_MAX, and -ENOMEM when out of memory. */
int kq__assign(uint32_t nparts, uint64_t *owner,
	       const struct kq__assign_member *members, size_t nmembers);

#endif /* KQ_CORE_ASSIGN_H */
