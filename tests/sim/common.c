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
		fprintf(stderr, "%s: out of memory\n", sim_program.name);
		exit(2);
	}
	return p;
}

/* Draws a new network for n nodes: healed, one node isolated, split in
 * two by a random mask, or one to three one-way cuts, each a quarter of
 * the time; desc (len bytes) says which. */
static void net_partition(int blocked[SIM_MAX_NODES][SIM_MAX_NODES], int n,
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

void sim_begin(struct sim_world *w, const struct sim_opts *o, uint64_t seed,
	       struct sim *s)
{
	w->o = o;
	w->sim = s;
	w->clock.tracing = o->trace;
	w->seed = seed;
	w->rng = mix(seed);
	w->n = o->nodes ? o->nodes : (seed % 2 ? 3 : 5);
}

void net_draw(struct sim_net *net, uint64_t *rng, unsigned loss_lim,
	      unsigned reorder_lim)
{
	net->loss = (unsigned)below(rng, loss_lim);
	net->dup = (unsigned)below(rng, 101);
	net->delay_max = 1 + (unsigned)below(rng, 30);
	net->reorder = (unsigned)below(rng, reorder_lim);
}

int net_send(struct sim_world *w, const struct kq__raft_msg *m)
{
	struct sim_net *net = &w->net;
	int copies = 1;

	if (chance(&w->rng, net->loss)) {
		net->drops++;
		return 0;
	}
	if (chance(&w->rng, net->dup)) {
		net->dups++;
		copies = 2;
	}
	for (int i = 0; i < copies; i++) {
		uint64_t d = 1 + below(&w->rng, net->delay_max);

		if (chance(&w->rng, net->reorder)) {
			net->reorders++;
			d += below(&w->rng, 3 * SIM_TICK);
		}
		evq_push(&w->events, (struct ev){.time = w->clock.now + d,
						 .type = EV_DELIVER,
						 .node = (int)m->to - 1,
						 .msg = msg_copy(m)});
	}
	return copies;
}

void sim_crash_soon(struct sim_world *w, unsigned permille, uint64_t within,
		    int i, unsigned incarnation)
{
	if (!w->healed && chance(&w->rng, permille))
		evq_push(&w->events, (struct ev){.time = w->clock.now + 1 +
							 below(&w->rng, within),
						 .type = EV_CRASH,
						 .node = i,
						 .incarnation = incarnation});
}

bool sim_leader(struct sim_world *w, uint64_t t, int i, unsigned incarnation,
		uint64_t *seen)
{
	uint64_t id = (uint64_t)i + 1;

	if (t >= w->cap_leader_of) {
		size_t n = w->cap_leader_of ? w->cap_leader_of : 256;

		if (t > 1u << 24)
			return false; /* forged huge terms: nothing to index */
		while (n <= t)
			n *= 2;
		w->leader_of =
			xrealloc(w->leader_of, n * sizeof(*w->leader_of));
		memset(w->leader_of + w->cap_leader_of, 0,
		       (n - w->cap_leader_of) * sizeof(*w->leader_of));
		w->cap_leader_of = n;
	}
	if (w->leader_of[t] && w->leader_of[t] != id) {
		sim_violate(&w->clock,
			    "two leaders in term %" PRIu64 ": %" PRIu64
			    " and %" PRIu64,
			    t, w->leader_of[t], id);
		return false;
	}
	w->leader_of[t] = id;
	if (*seen == t)
		return false;
	*seen = t;
	sim_trace(&w->clock, "  node %" PRIu64 " is leader of term %" PRIu64,
		  id, t);
	/* Leaders dying right after their election, before their no-op
	 * commits, are where commit rules go wrong. */
	sim_crash_soon(w, w->leader_crash, 2 * SIM_TICK, i, incarnation);
	return true;
}

int sim_find_leader(const struct sim_world *w)
{
	const struct kq__raft *best = NULL;
	int leader = -1;

	for (int i = 0; i < w->n; i++) {
		const struct kq__raft *r = sim_core(w->sim, i);

		if (r && kq__raft_role(r) == KQ__RAFT_LEADER &&
		    (!best || kq__raft_term(r) > kq__raft_term(best))) {
			best = r;
			leader = i;
		}
	}
	return leader;
}

void sim_ack(struct sim_world *w, uint64_t index, uint64_t fp, uint64_t term)
{
	if (w->n_acks == w->cap_acks) {
		w->cap_acks = w->cap_acks ? 2 * w->cap_acks : 256;
		w->acks = xrealloc(w->acks, w->cap_acks * sizeof(*w->acks));
	}
	w->acks[w->n_acks++] = (struct sim_ack){index, fp, term};
}

void sim_check_acks(struct sim_world *w, uint64_t t, int i, uint64_t from,
		    const char *what,
		    bool (*holds)(struct sim *s, int i, uint64_t index,
				  uint64_t fp))
{
	for (size_t k = 0; k < w->n_acks; k++) {
		const struct sim_ack *a = &w->acks[k];

		if (a->term >= t || a->index < from)
			continue;
		if (!holds(w->sim, i, a->index, a->fp)) {
			sim_violate(&w->clock,
				    "acknowledged proposal at %s %" PRIu64
				    " missing from leader %d of term %" PRIu64,
				    what, a->index, i + 1, t);
			return;
		}
	}
}

/* A control event: the faults of this tick, or their end. */
static void control(struct sim_world *w)
{
	char desc[128];

	w->tick = w->clock.now / SIM_TICK;
	if (w->tick < w->o->ticks) {
		if (chance(&w->rng, w->net.partition)) {
			w->net.partitions++;
			net_partition(w->net.blocked, w->n, &w->rng, desc,
				      sizeof(desc));
			sim_trace(&w->clock, "  %s", desc);
		}
		if (chance(&w->rng, w->crash))
			sim_crash(w->sim, (int)below(&w->rng, (uint64_t)w->n));
		sim_faults(w->sim);
	} else {
		if (w->tick == w->o->ticks) {
			sim_trace(&w->clock, "  FAULTS STOP");
			memset(w->net.blocked, 0, sizeof(w->net.blocked));
			w->net.loss = w->net.dup = w->net.reorder = 0;
			w->healed = true;
			sim_heal(w->sim);
		}
		sim_settle(w->sim);
	}
	evq_push(&w->events, (struct ev){.time = w->clock.now + SIM_TICK,
					 .type = EV_CONTROL});
}

void sim_run(struct sim_world *w)
{
	uint64_t limit = (uint64_t)w->o->ticks + w->o->converge_ticks;
	uint64_t events = 0;
	int leader;

	evq_push(&w->events, (struct ev){.time = 0, .type = EV_CONTROL});
	while (!w->clock.violation[0] && w->events.n) {
		struct ev e = evq_pop(&w->events);

		w->clock.now = e.time;
		if (e.type == EV_CONTROL)
			events = 0;
		if (++events > 200000) {
			/* Replicas answering each other without end. */
			sim_violate(&w->clock, "message storm: over 200000 "
					       "events in one tick");
			if (e.msg)
				msg_free(e.msg);
			break;
		}
		if (e.type == EV_CONTROL) {
			control(w);
		} else if (e.type == EV_TICK) {
			sim_tick(w->sim, e.node);
			evq_push(&w->events,
				 (struct ev){.time = w->clock.now + SIM_TICK,
					     .type = EV_TICK,
					     .node = e.node});
		} else {
			sim_handle(w->sim, &e);
		}
		sim_after(w->sim, &e);
		if (w->healed && e.type == EV_CONTROL &&
		    (leader = sim_find_leader(w)) >= 0 &&
		    sim_converged(w->sim, leader))
			break;
		if (w->tick > limit)
			sim_violate(&w->clock,
				    "no convergence after tick %" PRIu64
				    " (the faults stop, then converge_ticks)",
				    limit);
	}
}

void sim_end(struct sim_world *w)
{
	while (w->events.n) {
		struct ev e = evq_pop(&w->events);

		if (e.msg)
			msg_free(e.msg);
	}
	evq_free(&w->events);
	free(w->leader_of);
	free(w->acks);
}

static void usage(void)
{
	fputs(sim_program.usage, stderr);
	exit(2);
}

/* Takes an option with a value that both simulations take. */
static int common_option(struct sim_opts *c, const char *a, const char *v)
{
	if (!strcmp(a, "--seeds")) {
		c->seeds = strtoull(v, NULL, 10);
	} else if (!strcmp(a, "--first-seed")) {
		c->first_seed = strtoull(v, NULL, 10);
	} else if (!strcmp(a, "--nodes")) {
		c->nodes = atoi(v);
		if (c->nodes < 1 || c->nodes > SIM_MAX_NODES ||
		    !((sim_program.nodes >> c->nodes) & 1))
			usage();
	} else if (!strcmp(a, "--ticks")) {
		c->ticks = (unsigned)strtoul(v, NULL, 10);
	} else if (!strcmp(a, "--converge-ticks")) {
		c->converge_ticks = (unsigned)strtoul(v, NULL, 10);
	} else {
		return 0;
	}
	return 1;
}

int sim_main(int argc, char **argv, struct opts *o, struct sim_opts *c)
{
	struct sim_summary r = {"", ""};
	uint64_t failed = 0, first_failed = 0;
	char why[512], first_why[512] = "";

	c->seeds = 100;
	c->first_seed = 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--trace")) {
			c->trace = 1;
		} else if (!sim_flag(o, a)) {
			if (!v ||
			    !(common_option(c, a, v) || sim_option(o, a, v)))
				usage();
			i++;
		}
	}
	for (uint64_t k = 0; k < c->seeds; k++) {
		uint64_t seed = c->first_seed + k;

		if (!sim_seed(o, seed, why, sizeof(why)))
			continue;
		if (!failed++) {
			first_failed = seed;
			snprintf(first_why, sizeof(first_why), "%s", why);
		}
		fprintf(stderr, "seed %" PRIu64 ": %s\n", seed, why);
	}
	sim_report(o, &r);
	if (failed) {
		char nodes[32] = "";

		/* Every option that shapes a run, so that the line replays
		 * the same run. */
		if (c->nodes)
			snprintf(nodes, sizeof(nodes), " --nodes %d", c->nodes);
		printf("%" PRIu64 " seeds, %" PRIu64
		       " violations, first failing seed %" PRIu64 " (%s); "
		       "replay: %s --seeds 1 --first-seed %" PRIu64
		       "%s%s --ticks %u --converge-ticks %u --trace\n",
		       c->seeds, failed, first_failed, first_why,
		       sim_program.name, first_failed, nodes, r.replay,
		       c->ticks, c->converge_ticks);
		return 1;
	}
	printf("%" PRIu64 " seeds, 0 violations%s\n", c->seeds, r.note);
	return 0;
}
