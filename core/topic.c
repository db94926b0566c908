/* Topics: created from their metadata record (their partitions placed by
 * partition.c and opened by opening.c), looked up and freed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "opening.h"
#include "partition.h"
#include "store.h"
#include "topic.h"
#include "types.h"

struct kq__topic *kq__topic_get(struct kq_broker *b, const char *name)
{
	return kq__map_get(&b->topics, name, strlen(name));
}

int kq__topic_create(struct kq_broker *b, const char *name, uint32_t nparts,
		     uint32_t replicas, size_t partitioner,
		     int64_t retention_ms, int64_t retention_bytes,
		     uint64_t group_base, unsigned *failed, int *first_error)
{
	struct kq__topic *t = calloc(1, sizeof(*t));
	uint32_t i;
	int rv;

	if (!t)
		return -ENOMEM;
	t->b = b;
	t->name = strdup(name);
	t->nparts = nparts;
	t->replicas = replicas;
	t->partitioner = partitioner < b->npartitioners ? partitioner : 0;
	t->retention_ms = retention_ms;
	t->retention_bytes = retention_bytes;
	t->group_base = group_base;
	t->parts = calloc(nparts, sizeof(*t->parts));
	if (!t->name || !t->parts) {
		free(t->name);
		free(t->parts);
		free(t);
		return -ENOMEM;
	}
	for (i = 0; i < nparts; i++) {
		t->parts[i].topic = t;
		t->parts[i].id = i;
		t->parts[i].keep_below = UINT64_MAX;
		rv = kq__partition_place(b, t, &t->parts[i]);
		if (rv != 0) {
			t->nparts = i; /* the ones placed are freed */
			kq__topic_free(b, t);
			return rv;
		}
	}
	rv = kq__map_put(&b->topics, name, strlen(name), t);
	if (rv != 0) {
		kq__topic_free(b, t);
		return rv;
	}
	b->npartitions += nparts;
	for (i = 0; i < nparts; i++)
		if (kq__partition_held_here(b, &t->parts[i]))
			t->parts[i].open_error = -EINPROGRESS;
	*failed = 0;
	/* A topic whose record is applied while the broker stops is opened
	 * at the next start, not now. */
	if (b->stopping) {
		kq__opening_cancel(b, t);
		*failed = t->open_failed;
		*first_error = t->open_first_error;
		return 0;
	}
	if (b->serving) {
		kq__opening_later(b, t);
		return 0;
	}
	kq__opening_step(b, t, UINT64_MAX);
	*failed = t->open_failed;
	*first_error = t->open_first_error;
	return 0;
}

void kq__topic_free(struct kq_broker *b, struct kq__topic *t)
{
	struct kq__map_entry *e;
	struct kq__cgroup *g;
	uint32_t i;

	for (i = 0; i < t->nparts; i++) {
		struct kq__partition *p = &t->parts[i];

		if (p->group)
			b->cops->group_close(p->group);
		kq__store_close(&p->store);
		free(p->replicas);
	}
	while ((e = kq__map_next(&t->cgroups, NULL))) {
		g = e->value;
		kq__map_del(&t->cgroups, g->name, strlen(g->name));
		b->ncgroups--;
		kq__cgroup_free(g);
	}
	kq__map_free(&t->cgroups);
	free(t->parts);
	free(t->name);
	free(t->recorded_partitioner);
	free(t);
}
