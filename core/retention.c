/* The retention sweep: every topics.retention_check_ms, each partition
 * replica here drops the segments its topic's retention lets go, through
 * its consensus group (which never lets retention pass what it still
 * needs).  A sweep goes a slice at a time, one slice per loop turn:
 * deleting files blocks on a busy disk, and 10,000 partitions whose old
 * segments expired together held the loop for seconds in one sweep. */
#include <stdlib.h>

#include <kafkaesque/clock.h>

#include "log.h"
#include "retention.h"
#include "types.h"

/* What one slice may do: partitions looked at, and time taken. */
#define SLICE_NS (2u * 1000 * 1000)

/* The topics with a retention, as the sweep begins: a topic is never
 * freed while the broker runs, and one created meanwhile waits for the
 * next sweep. */
static int sweep_begin(struct kq_broker *b)
{
	struct kq__map_entry *e = NULL;
	size_t n = 0;

	b->sweep = calloc(b->topics.count ? b->topics.count : 1,
			  sizeof(*b->sweep));
	if (!b->sweep)
		return -1; /* out of memory: the next period tries again */
	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *tp = e->value;

		if (tp->retention_ms >= 0 || tp->retention_bytes >= 0)
			b->sweep[n++] = tp;
	}
	b->nsweep = n;
	b->sweep_i = 0;
	b->sweep_part = 0;
	b->sweep_now = kq_wall_ms();
	b->sweep_segments = 0;
	b->sweep_partitions = 0;
	return 0;
}

static void sweep_end(struct kq_broker *b)
{
	if (b->sweep_segments > 0)
		kq__info("retention deleted %llu segment(s) of %llu "
			 "partition(s)",
			 (unsigned long long)b->sweep_segments,
			 (unsigned long long)b->sweep_partitions);
	kq__retention_free(b);
}

static void retain(struct kq_broker *b, struct kq__topic *tp, uint32_t i)
{
	struct kq__partition *p = &tp->parts[i];
	uint64_t before;
	int n;

	b->retention_looked++;
	/* Partitions replicated elsewhere have no log here. */
	if (!p->group ||
	    b->sops->retention_point(p->store.log, b->sweep_now, &before) !=
		    0 ||
	    before <= b->sops->first_offset(p->store.log))
		return;
	n = b->cops->group_retain(p->group, before);
	if (n < 0) {
		kq__warn("partition %s-%u: retention failed: %s", tp->name, i,
			 kq_strerror(n));
	} else if (n > 0) {
		kq__debug("partition %s-%u: retention deleted %d segment(s)",
			  tp->name, i, n);
		b->sweep_segments += (unsigned)n;
		b->sweep_partitions++;
	}
}

/* Up to KQ__RETENTION_SLICE partitions, or SLICE_NS; 1 when more are
 * left. */
static int slice(struct kq_broker *b)
{
	uint64_t t0 = uv_hrtime();

	unsigned k = 0;

	b->retention_slices++;
	while (b->sweep_i < b->nsweep) {
		struct kq__topic *tp = b->sweep[b->sweep_i];

		if (b->sweep_part >= tp->nparts) {
			b->sweep_i++;
			b->sweep_part = 0;
			continue;
		}
		if (k++ >= KQ__RETENTION_SLICE || uv_hrtime() - t0 >= SLICE_NS)
			return 1;
		retain(b, tp, b->sweep_part++);
	}
	return 0;
}

void kq__retention_on_timer(uv_timer_t *t)
{
	struct kq_broker *b = t->data;
	uint64_t period = b->cfg->retention_check_ms;

	if (!b->sweep && sweep_begin(b) != 0)
		return;
	if (slice(b)) {
		/* The next slice after this turn's I/O: a 0 ms timer would
		 * run again before it. */
		uv_timer_start(t, kq__retention_on_timer, 1, 0);
		return;
	}
	sweep_end(b);
	uv_timer_start(t, kq__retention_on_timer, period, period);
}

void kq__retention_free(struct kq_broker *b)
{
	free(b->sweep);
	b->sweep = NULL;
	b->nsweep = 0;
}
