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

/* An event; `type` is the simulation's own enum. */
struct ev {
	uint64_t time;
	uint64_t seq; /* ties break in the order pushed */
	int type;
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

#endif /* KQ_TESTS_SIM_COMMON_H */
