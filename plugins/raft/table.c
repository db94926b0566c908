/* The raft module's groups: found by id, listed (every open group, and
 * those awake, which each tick visits), and the start of the `later`
 * timer that completes what closed groups and failed calls left.  What
 * happens when the last group goes, and the timer itself, are the
 * module's (plugin.c), handed over as mod->emptied and mod->start_later;
 * the replica simulation runs this table with hooks of its own. */
#include <errno.h>
#include <stdlib.h>

#include <kafkaesque/list.h>

#include "module.h"

static size_t bucket_of(const struct kq__raft_module *mod, uint64_t id)
{
	id ^= id >> 29;
	id *= 0xbf58476d1ce4e5b9ull;
	id ^= id >> 32;
	return (size_t)(id & (mod->n_buckets - 1));
}

struct kq_group *kq__raft_module_find(struct kq__raft_module *mod, uint64_t id)
{
	struct kq_group *g;

	if (!mod->n_buckets)
		return NULL;
	for (g = mod->buckets[bucket_of(mod, id)]; g; g = g->next_hash)
		if (g->id == id)
			return g;
	return NULL;
}

static int grow(struct kq__raft_module *mod)
{
	size_t n = mod->n_buckets ? mod->n_buckets * 2 : 64;
	struct kq_group **nb = calloc(n, sizeof(*nb)), **old = mod->buckets;
	size_t old_n = mod->n_buckets;

	if (!nb)
		return -ENOMEM;
	mod->buckets = nb;
	mod->n_buckets = n;
	for (size_t i = 0; i < old_n; i++) {
		struct kq_group *g = old[i], *next;

		for (; g; g = next) {
			size_t b = bucket_of(mod, g->id);

			next = g->next_hash;
			g->next_hash = nb[b];
			nb[b] = g;
		}
	}
	free(old);
	return 0;
}

int kq__raft_module_add(struct kq__raft_module *mod, struct kq_group *g,
			uint64_t id)
{
	size_t b;

	if (mod->n_groups >= mod->n_buckets && grow(mod) != 0)
		return -ENOMEM;
	b = bucket_of(mod, id);
	g->next_hash = mod->buckets[b];
	mod->buckets[b] = g;
	KQ_LIST_PUSH_BY(mod->all, g, prev_all, next_all);
	g->asleep = true; /* so that it is put on the awake list */
	kq__raft_module_sleep(mod, g, false);
	mod->n_groups++;
	return 0;
}

void kq__raft_module_sleep(struct kq__raft_module *mod, struct kq_group *g,
			   bool asleep)
{
	if (asleep == g->asleep)
		return;
	g->asleep = asleep;
	if (asleep)
		KQ_LIST_REMOVE_BY(mod->awake, g, prev_awake, next_awake);
	else
		KQ_LIST_PUSH_BY(mod->awake, g, prev_awake, next_awake);
}

void kq__raft_module_remove(struct kq__raft_module *mod, struct kq_group *g,
			    uint64_t id)
{
	struct kq_group **pp = &mod->buckets[bucket_of(mod, id)];

	while (*pp && *pp != g)
		pp = &(*pp)->next_hash;
	if (*pp)
		*pp = g->next_hash;
	KQ_LIST_REMOVE_BY(mod->all, g, prev_all, next_all);
	kq__raft_module_sleep(mod, g, true);
	mod->n_groups--;
	if (mod->n_groups == 0 && mod->emptied)
		mod->emptied(mod);
}

void kq__raft_module_later(struct kq__raft_module *mod)
{
	mod->start_later(mod);
}
