/* The retention sweep: every topics.retention_check_ms, each partition
 * replica here drops the segments its topic's retention lets go, through
 * its consensus group (which never lets retention pass what it still
 * needs). */
#include <kafkaesque/clock.h>

#include "log.h"
#include "retention.h"
#include "types.h"

void kq__retention_on_timer(uv_timer_t *t)
{
	struct kq_broker *b = t->data;
	struct kq__map_entry *e = NULL;
	int64_t now;

	now = kq_wall_ms();
	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *tp = e->value;

		if (tp->retention_ms < 0 && tp->retention_bytes < 0)
			continue;
		for (uint32_t i = 0; i < tp->nparts; i++) {
			struct kq__partition *p = &tp->parts[i];
			uint64_t before;
			int n;

			/* Partitions replicated elsewhere have no log here. */
			if (!p->group ||
			    b->sops->retention_point(p->store.log, now,
						     &before) != 0 ||
			    before <= b->sops->first_offset(p->store.log))
				continue;
			n = b->cops->group_retain(p->group, before);
			if (n < 0)
				kq__warn(
					"partition %s-%u: retention failed: %s",
					tp->name, i, kq_strerror(n));
			else if (n > 0)
				kq__info("partition %s-%u: retention deleted "
					 "%d segment(s)",
					 tp->name, i, n);
		}
	}
}
