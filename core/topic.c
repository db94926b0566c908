/* Topics, their partitions (a log and a consensus group each) and their
 * consumer groups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "assign.h"
#include "broker.h"
#include "log.h"

struct kq__topic *kq__topic_get(struct kq_broker *b, const char *name)
{
	return kq__map_get(&b->topics, name, strlen(name));
}

size_t kq__brokers_list(struct kq_broker *b, const int **ids)
{
	*ids = b->broker_ids;
	return b->nbroker_ids;
}

/* Replicas of partition `id`: `replicas` consecutive brokers, starting at
 * an offset of the topic's name hash plus the partition number, so that a
 * topic's leaders spread over the brokers.  Every broker computes the
 * same list. */
static int place(struct kq_broker *b, struct kq__topic *t,
		 struct kq__partition *p)
{
	const int *ids;
	size_t n = kq__brokers_list(b, &ids), r = t->replicas, start;
	uint32_t h = 2166136261u;

	if (r < 1)
		r = 1;
	if (r > n)
		r = n;
	for (const char *c = t->name; *c; c++)
		h = (h ^ (unsigned char)*c) * 16777619u;
	start = (h + p->id) % n;
	p->replicas = calloc(r, sizeof(*p->replicas));
	if (!p->replicas)
		return -ENOMEM;
	for (size_t k = 0; k < r; k++)
		p->replicas[k] = ids[(start + k) % n];
	p->nreplicas = r;
	return 0;
}

static int holds_replica(struct kq_broker *b, const struct kq__partition *p)
{
	for (size_t k = 0; k < p->nreplicas; k++)
		if (p->replicas[k] == b->cfg->broker_id)
			return 1;
	return 0;
}

static int open_partition(struct kq_broker *b, struct kq__topic *t, uint32_t id)
{
	struct kq__partition *p = &t->parts[id];
	struct kq_log_options opts = {
		.segment_bytes = 0,
		.retention_ms = t->retention_ms,
		.retention_bytes = t->retention_bytes,
	};
	struct kq_group_config gc;
	char dir[4096], name[300];
	int rv;

	p->topic = t;
	p->id = id;
	rv = place(b, t, p);
	if (rv != 0 || !holds_replica(b, p))
		return rv;
	snprintf(dir, sizeof(dir), "%s/%s-%u", b->dir, t->name, id);
	snprintf(name, sizeof(name), "%s-%u", t->name, id);
	rv = kq__plog_open(b, &p->plog, dir, &opts);
	if (rv != 0)
		return rv;
	memset(&gc, 0, sizeof(gc));
	gc.id = t->group_base + id;
	gc.name = name;
	gc.log = &p->plog;
	gc.replicas = p->replicas;
	gc.nreplicas = p->nreplicas;
	rv = b->cops->group_open(b->consensus.state, &gc, &p->group);
	if (rv != 0) {
		kq__error("partition %s: consensus: %s", name, kq_strerror(rv));
		kq__plog_close(&p->plog);
		return rv;
	}
	return 0;
}

int kq__topic_create(struct kq_broker *b, const char *name, uint32_t nparts,
		     uint32_t replicas, size_t partitioner,
		     int64_t retention_ms, int64_t retention_bytes,
		     uint64_t group_base)
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
		rv = open_partition(b, t, i);
		if (rv != 0) {
			/* The failed partition may hold its replica list. */
			t->nparts = i + 1;
			kq__topic_free(b, t);
			return rv;
		}
	}
	rv = kq__map_put(&b->topics, name, strlen(name), t);
	if (rv != 0) {
		kq__topic_free(b, t);
		return rv;
	}
	return 0;
}

static void group_free(struct kq__group *g)
{
	free(g->name);
	free(g->members);
	free(g->owner);
	free(g->committed);
	free(g);
}

void kq__topic_free(struct kq_broker *b, struct kq__topic *t)
{
	struct kq__group *g, *next;
	uint32_t i;

	for (i = 0; i < t->nparts; i++) {
		struct kq__partition *p = &t->parts[i];

		if (p->group)
			b->cops->group_close(p->group);
		kq__plog_close(&p->plog);
		free(p->replicas);
	}
	for (g = t->groups; g; g = next) {
		next = g->next;
		group_free(g);
	}
	free(t->parts);
	free(t->name);
	free(t);
}

struct kq__group *kq__group_get(struct kq__topic *t, const char *name,
				int create)
{
	struct kq__group *g;

	for (g = t->groups; g; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g;
	if (!create)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->name = strdup(name);
	g->topic = t;
	g->owner = calloc(t->nparts, sizeof(*g->owner));
	g->committed = calloc(t->nparts, sizeof(*g->committed));
	if (!g->name || !g->owner || !g->committed) {
		group_free(g);
		return NULL;
	}
	/* Keep groups sorted by name so GRPS lists them in a stable order. */
	struct kq__group **pp = &t->groups;

	while (*pp && strcmp((*pp)->name, name) < 0)
		pp = &(*pp)->next;
	g->next = *pp;
	*pp = g;
	return g;
}

void kq__group_rebalance(struct kq__group *g)
{
	struct kq__assign_member *m = NULL;
	size_t i;

	if (g->nmembers) {
		m = calloc(g->nmembers, sizeof(*m));
		if (!m)
			return; /* keep the old, still valid, assignment */
	}
	for (i = 0; i < g->nmembers; i++) {
		m[i].sub_id = g->members[i]->sub_id;
		m[i].cap = g->members[i]->cap;
	}
	kq__assign(g->topic->nparts, g->owner, m, g->nmembers);
	free(m);
}
