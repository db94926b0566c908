/* Where a read of a partition this broker holds may go: from the first
 * offset retention kept, to the commit end, never into offsets lost to
 * damage.  Every read of records goes through here: CONS (consume.c)
 * and a read another broker asks for (fetch.c). */
#include <inttypes.h>
#include <stdio.h>

#include "bounds.h"
#include "types.h"

/* Records lost to damage are refused, never skipped unawares: a read
 * that starts in a lost range fails naming it (CMIT past it to go on);
 * one that starts below a range stops before it.  A lost range ends at
 * most at the commit end, so CMIT can always pass it. */
static int stop_at_lost(struct kq_broker *b, const struct kq__partition *p,
			uint64_t pos, uint64_t *end, char *errmsg,
			size_t errlen)
{
	const struct kq_offset_range *lost;
	int n = b->sops->lost(p->store.log, &lost);

	for (int i = 0; i < n; i++) {
		if (lost[i].end <= pos)
			continue;
		if (lost[i].from <= pos) {
			snprintf(errmsg, errlen,
				 "partition %s-%u lost offsets %" PRIu64
				 "..%" PRIu64
				 " to damage found at start-up (see the broker "
				 "log); CMIT past them to read on",
				 p->topic->name, p->id, lost[i].from,
				 lost[i].end - 1);
			return KQ_EINTERNAL;
		}
		if (lost[i].from < *end)
			*end = lost[i].from;
		break;
	}
	return 0;
}

int kq__read_bounds(struct kq_broker *b, const struct kq__partition *p,
		    uint64_t *pos, uint64_t *end, char *errmsg, size_t errlen)
{
	uint64_t first = b->sops->first_offset(p->store.log);
	uint64_t commit = b->cops->commit_end(p->group);

	/* Retention may have deleted what was asked for. */
	if (*pos < first)
		*pos = first;
	if (*end > commit)
		*end = commit;
	return stop_at_lost(b, p, *pos, end, errmsg, errlen);
}
