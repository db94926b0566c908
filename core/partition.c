/* A partition's replica on this broker: where the partition is placed,
 * opening its log and consensus group, and whether it serves here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "partition.h"
#include "store.h"
#include "types.h"
#include "why.h"

size_t kq__partition_brokers(struct kq_broker *b, const int **ids)
{
	*ids = b->broker_ids;
	return b->nbroker_ids;
}

int kq__partition_place(struct kq_broker *b, struct kq__topic *t,
			struct kq__partition *p)
{
	const int *ids;
	size_t n = kq__partition_brokers(b, &ids), r = t->replicas, start;
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

int kq__partition_held_here(struct kq_broker *b, const struct kq__partition *p)
{
	for (size_t k = 0; k < p->nreplicas; k++)
		if (p->replicas[k] == b->cfg->broker_id)
			return 1;
	return 0;
}

int kq__partition_open(struct kq_broker *b, struct kq__partition *p)
{
	struct kq__topic *t = p->topic;
	uint32_t id = p->id;
	struct kq_log_options opts = {
		.segment_bytes = 0,
		.retention_ms = t->retention_ms,
		.retention_bytes = t->retention_bytes,
	};
	struct kq_group_config gc;
	char dir[4096], name[300];
	int rv;

	if (!kq__partition_held_here(b, p) || p->group)
		return 0;
	snprintf(dir, sizeof(dir), "%s/%s-%u", b->dir, t->name, id);
	snprintf(name, sizeof(name), "%s-%u", t->name, id);
	rv = kq__store_open(b, &p->store, dir, &opts, p->keep_below);
	if (rv != 0)
		return rv;
	memset(&gc, 0, sizeof(gc));
	gc.id = t->group_base + id;
	gc.name = name;
	gc.dir = p->store.dir;
	gc.store = &p->store;
	gc.replicas = p->replicas;
	gc.nreplicas = p->nreplicas;
	rv = b->cops->group_open(b->consensus.state, &gc, &p->group);
	if (rv != 0) {
		kq__error("partition %s: consensus: %s", name, kq_strerror(rv));
		kq__store_close(&p->store);
		return rv;
	}
	return 0;
}

int kq__partition_usable(const struct kq__partition *p, char *errmsg,
			 size_t errlen)
{
	const char *name = p->topic->name;

	if (p->open_error == -EINPROGRESS)
		snprintf(errmsg, errlen,
			 "partition %s-%u is still being opened here; try "
			 "again",
			 name, p->id);
	else if (p->open_error == KQ_ECANCELED)
		snprintf(errmsg, errlen,
			 "partition %s-%u was not opened: the broker is "
			 "stopping; it is opened at the next start",
			 name, p->id);
	else if (p->open_error)
		snprintf(errmsg, errlen,
			 "partition %s-%u cannot be opened here: %s; it is "
			 "retried",
			 name, p->id, kq__why(p->open_error));
	else if (!p->group && p->topic->b->stopping &&
		 kq__partition_held_here(p->topic->b, p))
		/* Its group closed early, to cancel its proposals. */
		snprintf(errmsg, errlen,
			 "partition %s-%u is closed here: the broker is "
			 "stopping",
			 name, p->id);
	else if (!p->group)
		snprintf(errmsg, errlen,
			 "partition %s-%u has no replica on this broker", name,
			 p->id);
	else
		return 0;
	return KQ_EUNAVAILABLE;
}

int kq__partition_led_here(struct kq_broker *b, const struct kq__partition *p)
{
	return p->group && !p->open_error &&
	       b->cops->leader(p->group) == b->cfg->broker_id;
}

int kq__partition_held_elsewhere(struct kq_broker *b,
				 const struct kq__partition *p)
{
	for (size_t k = 0; k < p->nreplicas; k++)
		if (p->replicas[k] != b->cfg->broker_id)
			return 1;
	return 0;
}
