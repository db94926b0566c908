/* What the two simulations (raft_sim.c, the pure core; replica_sim.c,
 * whole replicas with their storage) share: a seeded random source, the
 * network's messages and the event queue in time order. */
#ifndef KQ_TESTS_SIM_COMMON_H
#define KQ_TESTS_SIM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/raft/core/raft.h"

/* The program's name in fatal messages; set by each simulation. */
extern const char *sim_name;

/* A stateless mix of z (splitmix64's). */
static inline uint64_t mix(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ull;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The next number of the random stream s. */
static inline uint64_t rnd(uint64_t *s)
{
	*s += 0x9e3779b97f4a7c15ull;
	return mix(*s);
}

/* Uniform in [0, n). */
static inline uint64_t below(uint64_t *s, uint64_t n)
{
	return n ? rnd(s) % n : 0;
}

/* True with probability permille / 1000. */
static inline int chance(uint64_t *s, unsigned permille)
{
	return below(s, 1000) < permille;
}

#define SIM_MAX_NODES 5
#define SIM_TICK      100 /* time units per tick; messages take a few */

/* A simulation's clock and verdict, a member of its state: the time in
 * units of 1/SIM_TICK tick, whether lines are traced, and the first
 * invariant broken ("" while none). */
struct sim_clock {
	uint64_t now;
	int tracing;
	char violation[512];
};

/* Prints a line stamped with the time, when tracing. */
void sim_trace(const struct sim_clock *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Records the first violation, stamped with the time (later ones are
 * not kept), and traces it. */
void sim_violate(struct sim_clock *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Draws a new network for n nodes: blocked[a][b] set when what a sends
 * b is lost.  Healed, one node isolated, split in two by a random mask,
 * or one to three one-way cuts, each a quarter of the time; desc (len
 * bytes) says which. */
void net_partition(int blocked[SIM_MAX_NODES][SIM_MAX_NODES], int n,
		   uint64_t *rng, char *desc, size_t len);

/* realloc that exits (status 2) when memory runs out. */
void *xrealloc(void *p, size_t n);

/* A message on the simulated network: a deep copy that holds references
 * to its entries' and snapshot's buffers. */
struct netmsg {
	struct kq__raft_msg m;
	bool forged; /* replica_sim: made up by the network, not a node */
};

struct netmsg *msg_copy(const struct kq__raft_msg *m);
void msg_free(struct netmsg *c);

/* The kinds of event: a tick's faults and proposals, a node's tick, a
 * message delivered, a sync done, a crash. */
enum ev_type { EV_CONTROL, EV_TICK, EV_DELIVER, EV_SYNC, EV_CRASH };

/* An event. */
struct ev {
	uint64_t time;
	uint64_t seq; /* ties break in the order pushed */
	enum ev_type type;
	int node;
	unsigned incarnation;
	struct netmsg *msg;
};

/* The events to come, earliest first (a binary heap). */
struct evq {
	struct ev *heap;
	size_t n, cap;
	uint64_t seq;
};

void evq_push(struct evq *q, struct ev e);
/* The earliest event; q must not be empty. */
struct ev evq_pop(struct evq *q);
void evq_free(struct evq *q);

/* Runs the events of q in time order, from a control event at time 0
 * that it queues, each with handle(sim, e) at its time, until a violation or no
 * event is left, or, once the faults stopped (*healed), a control event after
 * which converged(sim).  Over 200000 events between two control events are a
 * message storm, and *tick past tick_limit without convergence, violations. */
void sim_run(struct evq *q, struct sim_clock *clock, void *sim,
	     void (*handle)(void *sim, struct ev *e),
	     int (*converged)(void *sim), const bool *healed,
	     const uint64_t *tick, uint64_t tick_limit);

#endif /* KQ_TESTS_SIM_COMMON_H */
