/* See common.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "%s: out of memory\n", sim_name);
		exit(2);
	}
	return p;
}

void net_partition(int blocked[SIM_MAX_NODES][SIM_MAX_NODES], int n,
		   uint64_t *rng, char *desc, size_t len)
{
	size_t used;

	memset(blocked, 0, sizeof(int[SIM_MAX_NODES][SIM_MAX_NODES]));
	switch (below(rng, 4)) {
	case 0: snprintf(desc, len, "network healed"); break;
	case 1: {
		int a = (int)below(rng, (uint64_t)n);

		for (int i = 0; i < n; i++)
			blocked[a][i] = blocked[i][a] = i != a;
		snprintf(desc, len, "node %d isolated", a + 1);
		break;
	}
	case 2: {
		uint64_t side = rnd(rng);

		for (int i = 0; i < n; i++)
			for (int j = 0; j < n; j++)
				blocked[i][j] =
					((side >> i) & 1) != ((side >> j) & 1);
		snprintf(desc, len, "network split by mask %" PRIx64,
			 side & ((1u << n) - 1));
		break;
	}
	default: {
		int k = 1 + (int)below(rng, 3);

		used = (size_t)snprintf(desc, len, "one-way cuts");
		for (int i = 0; i < k; i++) {
			int a = (int)below(rng, (uint64_t)n);
			int b = (int)below(rng, (uint64_t)n);

			if (a == b)
				continue;
			blocked[a][b] = 1;
			if (used < len)
				used += (size_t)snprintf(desc + used,
							 len - used, " %d->%d",
							 a + 1, b + 1);
		}
		break;
	}
	}
}

struct netmsg *msg_copy(const struct kq__raft_msg *m)
{
	struct netmsg *c = xrealloc(NULL, sizeof(*c));

	c->m = *m;
	c->forged = false;
	c->m.entries = NULL;
	if (m->n_entries) {
		c->m.entries =
			xrealloc(NULL, m->n_entries * sizeof(*m->entries));
		memcpy(c->m.entries, m->entries,
		       m->n_entries * sizeof(*m->entries));
		for (size_t i = 0; i < m->n_entries; i++)
			kq__raft_buf_ref(m->entries[i].data);
	}
	kq__raft_buf_ref(m->snap.data);
	return c;
}

void msg_free(struct netmsg *c)
{
	for (size_t i = 0; i < c->m.n_entries; i++)
		kq__raft_buf_unref(c->m.entries[i].data);
	free(c->m.entries);
	kq__raft_buf_unref(c->m.snap.data);
	free(c);
}

static int ev_less(const struct ev *a, const struct ev *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

void evq_push(struct evq *q, struct ev e)
{
	size_t i;

	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 256;
		q->heap = xrealloc(q->heap, q->cap * sizeof(*q->heap));
	}
	e.seq = q->seq++;
	i = q->n++;
	while (i) {
		size_t p = (i - 1) / 2;

		if (ev_less(&q->heap[p], &e))
			break;
		q->heap[i] = q->heap[p];
		i = p;
	}
	q->heap[i] = e;
}

struct ev evq_pop(struct evq *q)
{
	struct ev top = q->heap[0], last = q->heap[--q->n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= q->n)
			break;
		if (c + 1 < q->n && ev_less(&q->heap[c + 1], &q->heap[c]))
			c++;
		if (!ev_less(&q->heap[c], &last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (q->n)
		q->heap[i] = last;
	return top;
}

void evq_free(struct evq *q)
{
	free(q->heap);
	q->heap = NULL;
	q->n = q->cap = 0;
}
