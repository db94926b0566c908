/* Retries of what could not be opened, or failed: partition logs and the
 * metadata log, every KQ__REOPEN_MS until they open (started with
 * kq__defer_reopen). */
#include <errno.h>

#include "apply.h"
#include "defer.h"
#include "log.h"
#include "meta.h"
#include "partition.h"
#include "reopen.h"
#include "store.h"
#include "types.h"

/* Partitions that could not be opened (out of descriptors or space, a
 * folder not writable), and logs that failed a write or a sync, are
 * opened again until they open. */
void kq__reopen_on_timer(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;
	struct kq__map_entry *e = NULL;
	unsigned left = 0;

	/* Whatever could not open is opened at the next start. */
	if (b->stopping) {
		uv_timer_stop(tm);
		return;
	}
	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *t = e->value;

		for (uint32_t i = 0; i < t->nparts; i++) {
			struct kq__partition *p = &t->parts[i];
			struct kq_store *pl = &p->store;
			int rv, was = p->open_error;

			if (p->group && pl->failed) {
				/* Reopened once nothing is in flight on it:
				 * recovery keeps what is durable, and its
				 * group starts again from there. */
				if (kq__store_busy(pl) || p->batch ||
				    p->dirty) {
					left++;
					continue;
				}
				was = pl->failed;
				p->keep_below = kq__store_acked_end(pl);
				b->cops->group_close(p->group);
				p->group = NULL;
				kq__store_close(pl);
			} else if (!p->open_error ||
				   p->open_error == -EINPROGRESS ||
				   p->open_error == KQ_ECANCELED) {
				continue; /* open, or its creation is on */
			}
			rv = kq__partition_open(b, p);
			p->open_error = rv;
			if (rv == 0)
				p->keep_below = UINT64_MAX;
			if (rv == 0) {
				kq__info("partition %s-%u: opened again after "
					 "%s",
					 t->name, i, kq_strerror(was));
				p->reopen_tries = 0;
				continue;
			}
			left++;
			/* One line at the first failure, then one a
			 * minute. */
			if (p->reopen_tries++ % (60000 / KQ__REOPEN_MS) == 0)
				kq__warn("partition %s-%u: cannot be opened: "
					 "%s; trying again every %u ms",
					 t->name, i, kq_strerror(rv),
					 KQ__REOPEN_MS);
		}
	}
	if (b->meta_store.failed || !b->meta_group) {
		int was = b->meta_store.failed;

		if (!kq__meta_idle(b)) {
			left++;
		} else if (kq__apply_reopen(b) == 0) {
			kq__info("metadata log: opened again after %s",
				 kq_strerror(was));
			b->meta_reopen_tries = 0;
		} else {
			left++;
			if (b->meta_reopen_tries++ % (60000 / KQ__REOPEN_MS) ==
			    0)
				kq__warn("metadata log: cannot be reopened; "
					 "trying again every %u ms",
					 KQ__REOPEN_MS);
		}
	}
	if (!left)
		uv_timer_stop(tm);
}
