/* Consumer groups of a topic and their members, as objects: found or
 * created within limits.max_groups, freed when nothing keeps them,
 * rebalanced after a join or leave. */
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "assign.h"
#include "cgroup.h"
#include "types.h"

void kq__cgroup_member_unlink(struct kq__member *m)
{
	if (!m->session)
		return;
	KQ_LIST_REMOVE_BY(m->session->members, m, prev_in_session,
			  next_in_session);
	m->session->nmembers--;
	m->session = NULL;
}

void kq__cgroup_member_free(struct kq_broker *b, struct kq__member *m)
{
	kq__cgroup_member_unlink(m);
	if (kq__map_get(&b->subs, &m->sub_id, sizeof(m->sub_id)) == m)
		kq__map_del(&b->subs, &m->sub_id, sizeof(m->sub_id));
	/* What it was handed and never acknowledged goes to the group's
	 * next reader. */
	free(m->handed);
	free(m->acking);
	free(m);
}

void kq__cgroup_free(struct kq__cgroup *g)
{
	for (size_t i = 0; i < g->nmembers; i++)
		kq__cgroup_member_free(g->topic->b, g->members[i]);
	free(g->name);
	free(g->members);
	free(g->owner);
	free(g->committed);
	free(g->seeks);
	free(g);
}

struct kq__cgroup *kq__cgroup_get(struct kq__topic *t, const char *name,
				  enum kq__cgroup_create create)
{
	struct kq_broker *b = t->b;
	struct kq__cgroup *g = kq__map_get(&t->cgroups, name, strlen(name));

	if (g || create == KQ__CGROUP_FIND)
		return g;
	if (create == KQ__CGROUP_JOIN && b->ncgroups >= b->cfg->max_groups)
		return NULL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->name = strdup(name);
	g->topic = t;
	g->owner = calloc(t->nparts, sizeof(*g->owner));
	g->committed = calloc(t->nparts, sizeof(*g->committed));
	g->seeks = calloc(t->nparts, sizeof(*g->seeks));
	if (!g->name || !g->owner || !g->committed || !g->seeks ||
	    kq__map_put(&t->cgroups, name, strlen(name), g) != 0) {
		kq__cgroup_free(g);
		return NULL;
	}
	b->ncgroups++;
	return g;
}

void kq__cgroup_touch(struct kq__cgroup *g, int64_t ts, uint64_t end)
{
	/* No record holds it: after every record applied, and after the
	 * forget this broker (the only one) proposed last, which it must
	 * stop; a forget proposed later goes. */
	if (!end) {
		end = g->topic->b->meta_applied_end;
		if (end <= g->forget_at)
			end = g->forget_at + 1;
	}
	g->touched_ms = ts;
	g->touched_end = end;
}

void kq__cgroup_release(struct kq__cgroup *g)
{
	struct kq__topic *t = g->topic;

	if (g->nmembers)
		return;
	for (uint32_t i = 0; i < t->nparts; i++)
		if (g->committed[i])
			return;
	kq__map_del(&t->cgroups, g->name, strlen(g->name));
	t->b->ncgroups--;
	kq__cgroup_free(g);
}

void kq__cgroup_rebalance(struct kq__cgroup *g)
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
