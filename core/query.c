/* Read-only queries answered from this broker's view: LIST, DESC, ASGN,
 * GRPS and STAT. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "topic.h"
#include "types.h"

static int by_name(const void *a, const void *b)
{
	const struct kq__topic *x = *(struct kq__topic *const *)a;
	const struct kq__topic *y = *(struct kq__topic *const *)b;

	return strcmp(x->name, y->name);
}

int kq__list_topics(struct kq_broker *b,
		    void (*cb)(void *ctx, const char *name, uint32_t n),
		    void *ctx)
{
	struct kq__topic **all = malloc((b->topics.count + 1) * sizeof(*all));
	struct kq__map_entry *e = NULL;
	size_t n = 0, i;

	if (!all)
		return -ENOMEM;
	while ((e = kq__map_next(&b->topics, e)))
		all[n++] = e->value;
	qsort(all, n, sizeof(*all), by_name);
	for (i = 0; i < n; i++)
		cb(ctx, all[i]->name, all[i]->nparts);
	free(all);
	return (int)n;
}

static struct kq__topic *topic_or_fail(struct kq_broker *b, const char *name,
				       char *errmsg, size_t errlen)
{
	struct kq__topic *t = kq__topic_get(b, name);

	if (!t)
		snprintf(errmsg, errlen, "no topic named %s", name);
	return t;
}

int kq__describe(struct kq_broker *b, const char *topic,
		 void (*cb)(void *ctx, const struct kq_partition_info *p),
		 void *ctx, char *errmsg, size_t errlen)
{
	struct kq__topic *t = topic_or_fail(b, topic, errmsg, errlen);
	struct kq_partition_info info;

	if (!t)
		return KQ_ENOTOPIC;
	for (uint32_t i = 0; i < t->nparts; i++) {
		struct kq__partition *p = &t->parts[i];

		info.partition = i;
		info.replicas = p->replicas;
		info.nreplicas = p->nreplicas;
		/* Without a local replica this broker knows no offsets yet. */
		info.leader = p->group ? b->cops->leader(p->group) : 0;
		info.start = p->group ? b->sops->first_offset(p->store.log) : 0;
		info.end = p->group ? b->cops->commit_end(p->group) : 0;
		if (info.start > info.end)
			info.start = info.end;
		info.error = p->open_error;
		cb(ctx, &info);
	}
	return (int)t->nparts;
}

static struct kq__member *member_or_fail(struct kq_broker *b, const char *topic,
					 uint64_t sub_id, char *errmsg,
					 size_t errlen, int *rv)
{
	struct kq__member *m;

	if (!kq__topic_get(b, topic)) {
		snprintf(errmsg, errlen, "no topic named %s", topic);
		*rv = KQ_ENOTOPIC;
		return NULL;
	}
	m = kq__map_get(&b->subs, &sub_id, sizeof(sub_id));
	if (!m || strcmp(m->cgroup->topic->name, topic) != 0) {
		snprintf(errmsg, errlen,
			 "no subscription %" PRIu64 " on topic %s", sub_id,
			 topic);
		*rv = KQ_ENOSUB;
		return NULL;
	}
	return m;
}

int kq__assignment(struct kq_broker *b, const char *topic, uint64_t sub_id,
		   void (*cb)(void *ctx, uint32_t partition), void *ctx,
		   char *errmsg, size_t errlen)
{
	int rv = 0, n = 0;
	struct kq__member *m =
		member_or_fail(b, topic, sub_id, errmsg, errlen, &rv);

	if (!m)
		return rv;
	for (uint32_t i = 0; i < m->cgroup->topic->nparts; i++)
		if (m->cgroup->owner[i] == sub_id) {
			cb(ctx, i);
			n++;
		}
	return n;
}

static int group_by_name(const void *a, const void *b)
{
	const struct kq__cgroup *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* A partition and the subscription that owns it, sorted by owner then
 * partition: a member's partitions are then one run, found by a binary
 * search, where a scan of every partition for every member cost members
 * times partitions (100,000 members of a 1,000-partition topic held the
 * loop for 290 ms a GRPS). */
struct owned {
	uint64_t sub;
	uint32_t part;
};

static int by_owner(const void *a, const void *b)
{
	const struct owned *x = a, *y = b;

	if (x->sub != y->sub)
		return x->sub < y->sub ? -1 : 1;
	return x->part < y->part ? -1 : x->part > y->part;
}

/* The first of own[0..n) owned by `sub` or after it. */
static size_t first_of(const struct owned *own, size_t n, uint64_t sub)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (own[mid].sub < sub)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int kq__groups(struct kq_broker *b, const char *topic,
	       void (*cb)(void *ctx, const char *group, uint64_t sub_id,
			  const uint32_t *parts, uint32_t nparts),
	       void *ctx, char *errmsg, size_t errlen)
{
	struct kq__topic *t = topic_or_fail(b, topic, errmsg, errlen);
	struct kq__map_entry *e = NULL;
	struct kq__cgroup **groups;
	struct owned *own;
	uint32_t *parts;
	size_t n = 0;
	int count = 0;

	if (!t)
		return KQ_ENOTOPIC;
	parts = malloc(t->nparts * sizeof(*parts));
	own = malloc(t->nparts * sizeof(*own));
	groups = malloc((t->cgroups.count ? t->cgroups.count : 1) *
			sizeof(*groups));
	if (!parts || !own || !groups) {
		free(parts);
		free(own);
		free(groups);
		return -ENOMEM;
	}
	while ((e = kq__map_next(&t->cgroups, e)))
		groups[n++] = e->value;
	qsort(groups, n, sizeof(*groups), group_by_name);
	for (size_t k = 0; k < n; k++) {
		struct kq__cgroup *g = groups[k];
		size_t nown = 0;

		for (uint32_t i = 0; i < t->nparts; i++)
			if (g->owner[i] != 0)
				own[nown++] = (struct owned){g->owner[i], i};
		qsort(own, nown, sizeof(*own), by_owner);
		for (size_t i = 0; i < nown; i++)
			parts[i] = own[i].part;
		for (size_t m = 0; m < g->nmembers; m++) {
			uint64_t id = g->members[m]->sub_id;
			size_t at = first_of(own, nown, id), end = at;

			while (end < nown && own[end].sub == id)
				end++;
			cb(ctx, g->name, id, parts + at, (uint32_t)(end - at));
			count++;
		}
	}
	free(parts);
	free(own);
	free(groups);
	return count;
}

/* How many partitions broker `id` leads, as this broker knows. */
static uint32_t leads(struct kq_broker *b, int id)
{
	struct kq__map_entry *e = NULL;
	uint32_t n = 0;

	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *t = e->value;

		for (uint32_t p = 0; p < t->nparts; p++)
			if (t->parts[p].group &&
			    b->cops->leader(t->parts[p].group) == id)
				n++;
	}
	return n;
}

int kq__brokers(struct kq_broker *b,
		void (*cb)(void *ctx, const struct kq_broker_info *bi),
		void *ctx)
{
	const struct kq__config *cfg = b->cfg;
	struct kq_broker_info bi;
	int leader = b->meta_group ? b->cops->leader(b->meta_group) : 0;

	if (cfg->npeers == 0) {
		/* Its address is the asking transport's own. */
		bi.id = cfg->broker_id;
		bi.host = NULL;
		bi.port = 0;
		bi.up = 1;
		bi.meta_leader = leader == bi.id;
		bi.leads = leads(b, bi.id);
		cb(ctx, &bi);
		return cfg->broker_id;
	}
	for (size_t i = 0; i < cfg->npeers; i++) {
		bi.id = cfg->peers[i].id;
		bi.host = cfg->peers[i].host;
		bi.port = cfg->peers[i].port;
		bi.up = b->cops->peer_up ? b->cops->peer_up(b->consensus.state,
							    bi.id) > 0
					 : bi.id == cfg->broker_id;
		bi.meta_leader = leader == bi.id;
		bi.leads = leads(b, bi.id);
		cb(ctx, &bi);
	}
	return cfg->broker_id;
}
