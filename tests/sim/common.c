/* See common.h. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

void sim_trace(const struct sim_clock *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->tracing)
		return;
	printf("[%6" PRIu64 ".%02" PRIu64 "] ", c->now / SIM_TICK,
	       c->now % SIM_TICK);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

void sim_violate(struct sim_clock *c, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (c->violation[0])
		return;
	k = snprintf(c->violation, sizeof(c->violation),
		     "tick %" PRIu64 ".%02" PRIu64 ": ", c->now / SIM_TICK,
		     c->now % SIM_TICK);
	va_start(ap, fmt);
	vsnprintf(c->violation + k, sizeof(c->violation) - (size_t)k, fmt, ap);
	va_end(ap);
	sim_trace(c, "VIOLATION %s", c->violation);
}

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

void sim_run(struct evq *q, struct sim_clock *clock, void *sim,
	     void (*handle)(void *sim, struct ev *e),
	     int (*converged)(void *sim), const bool *healed,
	     const uint64_t *tick, uint64_t tick_limit)
{
	uint64_t events = 0;

	evq_push(q, (struct ev){.time = 0, .type = EV_CONTROL});
	while (!clock->violation[0] && q->n) {
		struct ev e = evq_pop(q);

		clock->now = e.time;
		if (e.type == EV_CONTROL)
			events = 0;
		if (++events > 200000) {
			/* Replicas answering each other without end. */
			sim_violate(clock, "message storm: over 200000 events "
					   "in one tick");
			if (e.msg)
				msg_free(e.msg);
			break;
		}
		handle(sim, &e);
		if (*healed && e.type == EV_CONTROL && converged(sim))
			break;
		if (*tick > tick_limit)
			sim_violate(clock,
				    "no convergence after tick %" PRIu64
				    " (the faults stop, then converge_ticks)",
				    tick_limit);
	}
}
