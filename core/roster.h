#ifndef KQ_CORE_ROSTER_H
#define KQ_CORE_ROSTER_H

#include "jsonw.h"
#include "types.h"

/* roster.c: consumer group membership as the metadata log's records
 * made it, the same on every broker, so that each computes the same
 * assignment. */
/* Applies a membership record (join, leave, register, expire) whose
 * timestamp is ts, ending at log offset `end` (0: a standalone broker's,
 * not logged); the groups it changes are stamped with both
 * (kq__cgroup_touch).  Returns 0, or -ENOENT when `type` is none of
 * them. */
int kq__roster_apply(struct kq_broker *b, const char *type, json_t *rec,
		     int64_t ts, uint64_t end);
/* Writes the group's members and owners into its snapshot item, as
 * `,"members":[...],"owner":[...]`. */
void kq__roster_snapshot_group(struct kq__cgroup *g, struct kq__jsonw *w);
/* The registrations, for the snapshot. */
json_t *kq__roster_snapshot(struct kq_broker *b);
/* Replaces membership with a snapshot's (doc: the whole document). */
void kq__roster_restore(struct kq_broker *b, json_t *doc);
/* The partitions group g assigns to `id`, as a new array. */
int kq__roster_assigned(struct kq__cgroup *g, uint64_t id, uint32_t **out,
			uint32_t *n);

/* Whether m joined through a connection of this broker's run. */
static inline int kq__member_home(const struct kq_broker *b,
				  const struct kq__member *m)
{
	return m->broker == b->cfg->broker_id && m->boot == b->boot_id;
}

#endif /* KQ_CORE_ROSTER_H */
