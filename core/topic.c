/* Topics, their partitions (a log and a consensus group each) and their
 * consumer groups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "assign.h"
#include "broker.h"
#include "defer.h"
#include "log.h"
#include "store.h"
#include "topic.h"
#include "why.h"

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

	if (!holds_replica(b, p) || p->group)
		return 0;
	snprintf(dir, sizeof(dir), "%s/%s-%u", b->dir, t->name, id);
	snprintf(name, sizeof(name), "%s-%u", t->name, id);
	rv = kq__store_open(b, &p->store, dir, &opts);
	if (rv != 0)
		return rv;
	/* Reopened after a failure: records written but never made durable
	 * were never acknowledged, and may not survive a crash, so they
	 * must not become committed now. */
	if (p->keep_below != UINT64_MAX &&
	    b->sops->next_offset(p->store.log) > p->keep_below) {
		rv = b->sops->truncate(p->store.log, p->keep_below);
		if (rv != 0) {
			kq__store_close(&p->store);
			return rv;
		}
	}
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

static int open_step(struct kq_broker *b, struct kq__topic *t,
		     uint64_t deadline);
static void open_cancel(struct kq_broker *b, struct kq__topic *t);
static void open_later(struct kq_broker *b, struct kq__topic *t);

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
		rv = place(b, t, &t->parts[i]);
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
		if (holds_replica(b, &t->parts[i]))
			t->parts[i].open_error = -EINPROGRESS;
	*failed = 0;
	/* A topic whose record is applied while the broker stops is opened
	 * at the next start, not now. */
	if (b->stopping) {
		open_cancel(b, t);
		*failed = t->open_failed;
		*first_error = t->open_first_error;
		return 0;
	}
	if (b->serving) {
		open_later(b, t);
		return 0;
	}
	open_step(b, t, UINT64_MAX);
	*failed = t->open_failed;
	*first_error = t->open_first_error;
	return 0;
}

static void open_done(struct kq_broker *b, struct kq__topic *t)
{
	void (*cb)(void *, unsigned, int) = t->opened_cb;

	/* A partition that cannot be opened does not hide the others: it
	 * answers UNAVAILABLE with its cause and is retried. */
	if (t->open_failed && b->stopping) {
		kq__info("topic %s: %u of %u partitions not opened: the "
			 "broker is stopping",
			 t->name, t->open_failed, t->nparts);
	} else if (t->open_failed) {
		kq__error("topic %s: %u of %u partitions cannot be opened "
			  "here (%s); retrying every %u ms",
			  t->name, t->open_failed, t->nparts,
			  kq_strerror(t->open_first_error), KQ__REOPEN_MS);
		kq__defer_reopen(b);
	}
	t->opened_cb = NULL;
	if (cb)
		cb(t->opened_ctx, t->open_failed, t->open_first_error);
}

/* Opens t's partitions from t->open_next until `deadline` (uv_hrtime())
 * has passed, at least one.  At the end, logs what failed, schedules
 * retries and calls t->opened_cb.  Returns 1 when every partition was
 * tried, else 0. */
static int open_step(struct kq_broker *b, struct kq__topic *t,
		     uint64_t deadline)
{
	while (t->open_next < t->nparts) {
		struct kq__partition *p = &t->parts[t->open_next++];
		int rv = kq__partition_open(b, p);

		p->open_error = rv;
		if (rv != 0 && t->open_failed++ == 0)
			t->open_first_error = rv;
		if (uv_hrtime() >= deadline)
			break;
	}
	if (t->open_next < t->nparts)
		return 0;
	open_done(b, t);
	return 1;
}

/* Ends t's opening now (the broker stops): partitions not yet tried
 * fail with KQ_ECANCELED and are retried at the next start. */
static void open_cancel(struct kq_broker *b, struct kq__topic *t)
{
	while (t->open_next < t->nparts) {
		struct kq__partition *p = &t->parts[t->open_next++];

		if (p->open_error != -EINPROGRESS)
			continue;
		p->open_error = KQ_ECANCELED;
		if (t->open_failed++ == 0)
			t->open_first_error = KQ_ECANCELED;
	}
	open_done(b, t);
}

/* How long one turn of the loop may spend opening new partitions: a
 * few fdatasyncs' worth, so that other clients are served in between. */
#define OPEN_SLICE_NS (5 * 1000 * 1000)

static void on_open_idle(uv_idle_t *h)
{
	struct kq_broker *b = h->data;
	uint64_t deadline = uv_hrtime() + OPEN_SLICE_NS;

	while (b->opening) {
		struct kq__topic *t = b->opening;

		if (!open_step(b, t, deadline))
			return;
		b->opening = t->opening_next;
		t->opening_next = NULL;
		if (!b->opening)
			b->opening_tail = &b->opening;
		if (uv_hrtime() >= deadline)
			return;
	}
	uv_idle_stop(h);
}

static void open_later(struct kq_broker *b, struct kq__topic *t)
{
	t->opening_next = NULL;
	*b->opening_tail = t;
	b->opening_tail = &t->opening_next;
	uv_idle_start(&b->open_idle, on_open_idle);
}

/* The broker stops: topics still being opened end now. */
void kq__topic_open_cancel_all(struct kq_broker *b)
{
	while (b->opening) {
		struct kq__topic *t = b->opening;

		b->opening = t->opening_next;
		t->opening_next = NULL;
		open_cancel(b, t);
	}
	b->opening_tail = &b->opening;
	uv_idle_stop(&b->open_idle);
}

/* ------------------------------------------------------------ members */

void kq__member_unlink(struct kq__member *m)
{
	if (!m->session)
		return;
	KQ_LIST_REMOVE_BY(m->session->members, m, prev_in_session,
			  next_in_session);
	m->session->nmembers--;
	m->session = NULL;
}

void kq__member_free(struct kq_broker *b, struct kq__member *m)
{
	kq__member_unlink(m);
	if (kq__map_get(&b->subs, &m->sub_id, sizeof(m->sub_id)) == m)
		kq__map_del(&b->subs, &m->sub_id, sizeof(m->sub_id));
	/* What it was handed and never acknowledged goes to the group's
	 * next reader. */
	free(m->handed);
	free(m);
}

static void group_free(struct kq__cgroup *g)
{
	for (size_t i = 0; i < g->nmembers; i++)
		kq__member_free(g->topic->b, g->members[i]);
	free(g->name);
	free(g->members);
	free(g->owner);
	free(g->committed);
	free(g);
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
		group_free(g);
	}
	kq__map_free(&t->cgroups);
	free(t->parts);
	free(t->name);
	free(t);
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
	if (!g->name || !g->owner || !g->committed ||
	    kq__map_put(&t->cgroups, name, strlen(name), g) != 0) {
		group_free(g);
		return NULL;
	}
	b->ncgroups++;
	return g;
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
	group_free(g);
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

/* ------------------------------------------------------------ batches */

void kq__batch_free(struct kq__batch *bt)
{
	free(bt->reqs);
	free(bt->lens);
	free(bt->klens);
	free(bt->buf);
	free(bt);
}
