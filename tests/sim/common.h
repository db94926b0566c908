/* What the two simulations (raft_sim.c, the pure core; replica_sim.c,
 * whole replicas with their storage) share: a seeded random source, the
 * network and its faults, the event queue in time order, the driver that
 * runs a seed's events and draws its crashes and partitions, the checks
 * of leaders and acknowledgements, and the program around the seeds. */
#ifndef KQ_TESTS_SIM_COMMON_H
#define KQ_TESTS_SIM_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/raft/core/raft.h"

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

/* The options both simulations take. */
struct sim_opts {
	uint64_t seeds;
	uint64_t first_seed;
	int nodes;		 /* 0: alternate 3 and 5 */
	unsigned ticks;		 /* with faults */
	unsigned converge_ticks; /* after them, to converge */
	int trace;
};

/* The simulated network: blocked[a][b] set when what node a + 1 sends
 * node b + 1 is lost; its faults' rates; and what they did so far. */
struct sim_net {
	int blocked[SIM_MAX_NODES][SIM_MAX_NODES];
	unsigned loss; /* permille */
	unsigned dup;  /* permille */
	unsigned delay_max;
	unsigned reorder;   /* permille of messages delayed a lot */
	unsigned partition; /* permille per tick */
	uint64_t drops, dups, reorders, partitions;
};

/* A message acknowledged to its client: every leader of a later term
 * must hold it. */
struct sim_ack {
	uint64_t index;
	uint64_t fp;
	uint64_t term;
};

/* Each simulation defines its state, struct sim, with a struct
 * sim_world in it, and its options, struct opts, with a struct sim_opts
 * in it. */
struct sim;
struct opts;

/* What the driver and the checkers of both simulations keep of one
 * seed's run: a member (w) of each simulation's state. */
struct sim_world {
	const struct sim_opts *o;
	struct sim *sim; /* the state it is in */
	uint64_t seed;
	uint64_t rng;
	int n; /* nodes, with ids 1 to n */
	struct sim_clock clock;
	uint64_t tick;	       /* of the last control event */
	bool healed;	       /* the faults stopped */
	unsigned crash;	       /* permille per tick */
	unsigned leader_crash; /* permille of new leaders crashed soon */
	struct sim_net net;
	struct evq events;

	/* Checker state. */
	uint64_t *leader_of; /* term -> node id */
	size_t cap_leader_of;
	struct sim_ack *acks;
	size_t n_acks;
	size_t cap_acks;
};

/* What each simulation does at the events sim_run() hands it.  Node i is
 * the node with id i + 1. */

/* At each control event while the faults last, after the network and
 * crash draws: the other faults, restarts and proposals. */
void sim_faults(struct sim *s);
/* Crashes node i if it is up. */
void sim_crash(struct sim *s, int i);
/* When the faults stop, after the network healed: the rest stop and the
 * crashed nodes restart. */
void sim_heal(struct sim *s);
/* At each control event from then on: the final proposal. */
void sim_settle(struct sim *s);
/* Node i's tick. */
void sim_tick(struct sim *s, int i);
/* A message delivered, a sync done or a crash. */
void sim_handle(struct sim *s, struct ev *e);
/* After every event. */
void sim_after(struct sim *s, const struct ev *e);
/* Node i's core, or NULL when it is down. */
struct kq__raft *sim_core(struct sim *s, int i);
/* Whether the nodes converged, asked at the control events once the
 * faults stopped, when there is a leader (node leader). */
int sim_converged(struct sim *s, int leader);

/* Starts one seed's world (zeroed by the caller) in s: its random
 * stream, its number of nodes (--nodes, or 3 and 5 by turns) and its
 * tracing. */
void sim_begin(struct sim_world *w, const struct sim_opts *o, uint64_t seed,
	       struct sim *s);

/* Draws the network's faults for a seed: loss below loss_lim permille,
 * duplication, delay and reordering below reorder_lim permille. */
void net_draw(struct sim_net *net, uint64_t *rng, unsigned loss_lim,
	      unsigned reorder_lim);

/* Sends m through the network's faults: returns 0 when it is lost, or
 * the copies that will be delivered. */
int net_send(struct sim_world *w, const struct kq__raft_msg *m);

/* Crashes node i (of the given incarnation), with probability permille
 * / 1000 while the faults last, within `within` time units. */
void sim_crash_soon(struct sim_world *w, unsigned permille, uint64_t within,
		    int i, unsigned incarnation);

/* Node i leads term t: no other node may (election safety).  True the
 * first time it is seen leading t (*seen is the last term it was), and
 * then the caller checks that it holds what it must: it may be crashed
 * soon after (w->leader_crash). */
bool sim_leader(struct sim_world *w, uint64_t t, int i, unsigned incarnation,
		uint64_t *seen);

/* The node leading the highest term, or -1. */
int sim_find_leader(const struct sim_world *w);

/* Records a proposal acknowledged to its client. */
void sim_ack(struct sim_world *w, uint64_t index, uint64_t fp, uint64_t term);

/* Checks that the leader (node i) of term t holds every proposal
 * acknowledged in an earlier term at an index (what its messages call
 * it) from `from` on, as holds(s, i, index, fp) says. */
void sim_check_acks(struct sim_world *w, uint64_t t, int i, uint64_t from,
		    const char *what,
		    bool (*holds)(struct sim *s, int i, uint64_t index,
				  uint64_t fp));

/* Runs w's events in time order, from a control event at time 0 that it
 * queues, until a violation or no event is left, or, once the faults
 * stopped, a control event after which the nodes converged.  A control
 * event each tick draws and stops the faults and reschedules itself, as
 * does each node's tick.  Over 200000 events between two control events
 * are a message storm, and no convergence converge_ticks after the
 * faults stop, violations. */
void sim_run(struct sim_world *w);

/* Frees what w holds, and the events left. */
void sim_end(struct sim_world *w);

/* The program: its name, its usage and the numbers of nodes --nodes
 * takes (bit n set: n); each simulation defines it. */
struct sim_prog {
	const char *name;
	const char *usage;
	unsigned nodes;
};

extern const struct sim_prog sim_program;

/* What a program adds to its last lines: its options for a replay, and
 * a note after "0 violations". */
struct sim_summary {
	char replay[192];
	char note[128];
};

/* The program's own options, which each simulation takes: a flag a, or
 * a with its value v; 0 when it does not take them. */
int sim_flag(struct opts *o, const char *a);
int sim_option(struct opts *o, const char *a, const char *v);
/* Runs one seed: 0, or 1 (a violation) with the reason in why. */
int sim_seed(const struct opts *o, uint64_t seed, char *why, size_t why_len);
/* After the seeds: prints the program's totals, and fills r. */
void sim_report(const struct opts *o, struct sim_summary *r);

/* Parses the options (c, within o; by default 100 seeds from seed 1),
 * runs the seeds and reports them, ending with the line "N seeds, V
 * violations" (and how to replay the first failing seed); returns the
 * exit status. */
int sim_main(int argc, char **argv, struct opts *o, struct sim_opts *c);

#endif /* KQ_TESTS_SIM_COMMON_H */
