/* The `raft` consensus module: state shared by its files. */
#ifndef KQ_RAFT_MODULE_H
#define KQ_RAFT_MODULE_H

#include <stdbool.h>

#include <kafkaesque/consensus.h>

#include "port/cluster.h"
#include "core/raft.h"

/* A proposal waiting for its last entry to commit. */
struct kq__raft_pending {
	struct kq_propose_req *req;
	kq_propose_cb cb;
	uint64_t first, last; /* Raft indexes = offsets */
	uint64_t term;	      /* the term it was proposed in */
	int status;	      /* set once it is settled */
	struct kq__raft_pending *next;
};

struct kq__raft_sync;

/* Where a term starts in a group's log: the entries from `index` up to
 * the next start have term `term`. */
struct kq__raft_term_start {
	uint64_t index;
	uint64_t term;
};

/* One replicated log: the core, the log lent by the broker and the
 * proposals in flight.  Owned by the module from group_open until
 * group_close (or, when closed from inside its own processing, until that
 * processing unwinds). */
struct kq_group {
	struct kq__raft_module *mod;
	uint64_t id;
	char *name;
	struct kq_store *store; /* borrowed from the core */
	kq_apply_fn apply;
	void *apply_ctx;
	/* State-machine groups only (NULL for message logs). */
	int (*snapshot)(void *ctx, void **data, size_t *len);
	int (*restore)(void *ctx, const void *data, size_t len);
	struct kq__raft *r;

	/* The terms of the log from its snapshot point (terms[0]) on, kept
	 * as entries are written: the term_at hook and the term of a point
	 * retention moved past come from here, not from storage. */
	struct kq__raft_term_start *terms;
	size_t n_terms, cap_terms;
	uint64_t applied;    /* last index handed to apply (or restored) */
	uint64_t snap_index; /* the snapshot point stored last */

	struct kq__raft_pending *pend; /* oldest first */
	struct kq__raft_pending **pend_tail;
	struct kq__raft_sync *syncs; /* syncs in flight */
	uint64_t persist_upto;	     /* highest persist id made durable */
	uint64_t persist_told;	     /* the highest told to the core */
	/* Term and vote known durable, and whether a sync is making the
	 * core's newer ones so: no ready is taken until they are, since
	 * its messages may rest on them. */
	struct kq__raft_hard_state hs_durable;
	bool hs_saving;
	uint64_t written_end; /* offset after the last written */
	uint64_t replayed;    /* applied at open, not again */
	uint64_t leader_seen; /* for leader-change log lines */
	uint64_t *voters;     /* its replicas' broker ids */
	size_t n_voters;
	int preferred;		 /* its first replica (0: none): the
				  * leader placement chose */
	unsigned led_ticks;	 /* ticks led since the last hand-over
				  * try */
	unsigned handover_tries; /* since the preferred broker last led:
				  * the wait is election_ticks << it */
	uint64_t refused;	 /* peer messages refused */
	int failed;		 /* the error that stopped the group */
	bool running;		 /* inside run(): no re-entry */
	bool again;		 /* run() was asked for again */
	bool closed;

	bool asleep; /* quiet, and so off the module's awake list */
	/* Ticks spent campaigning (pre-candidate or candidate) in a row;
	 * counted in the module's campaigns while below two election
	 * timeouts. */
	unsigned campaign_ticks;
	bool counted;

	struct kq_group *next_hash;
	struct kq_group *prev_all, *next_all;
	struct kq_group *prev_awake, *next_awake;
};

/* The module instance: settings, the one tick timer for every group, the
 * groups by id and the cluster port.  Owned by the core through init and
 * fini. */
struct kq__raft_module {
	const struct kq_host *host;
	unsigned tick_ms;
	unsigned election_ticks;
	unsigned heartbeat_ticks;
	bool pre_vote;
	bool check_quorum;
	unsigned snapshot_every; /* entries applied between snapshots of a
				  * state-machine group; 0: never */
	unsigned cache_bytes;	 /* per group; 0: keep every entry */
	bool balance_leaders;	 /* a partition's leader hands over to its
				  * first replica when that one is back */
	unsigned handovers;	 /* hand-overs begun in this tick */
	unsigned max_campaigns;	 /* elections in flight at once */
	unsigned campaigns;	 /* groups counted as campaigning */
	uint64_t seed;		 /* mixed with each group's id for its election
				  * timeouts: fixed by a simulation, random here */

	uv_timer_t tick;
	uv_timer_t later; /* runs the completions of closed groups */
	/* Starts `later` (plugin.c); the replica simulation sets a flag. */
	void (*start_later)(struct kq__raft_module *mod);
	/* Called when the last group is removed: closes the handles (NULL
	 * in the simulation, which has none). */
	void (*emptied)(struct kq__raft_module *mod);
	int handles; /* the two timers while not closed */
	bool closed; /* handles closed (the last group went) */
	struct kq__cluster *cluster;

	struct kq_group **buckets; /* groups by id */
	size_t n_buckets;
	size_t n_groups;
	struct kq_group *all;	/* every open group */
	struct kq_group *awake; /* those not asleep: ticked every tick */
	uint64_t ticks;		/* since the module started */
	uint64_t swept;		/* the tick the sleeping groups were last
				 * looked at */
	uint64_t up_seen;	/* kq__cluster_heard_mask() at the last
				 * tick */
	bool resweep;		/* a sleeping group waits for a hand-over
				 * slot: look at them again next tick */
	uint64_t unknown;	/* messages for groups not open here */

	/* Proposals of closed groups, completed with KQ_ECANCELED from the
	 * `later` timer. */
	struct kq__raft_pending *canceled;

	/* call.c: requests to other brokers awaiting an answer, those
	 * failed and waiting for `later`, and requests of others being
	 * served here. */
	struct kq_call *calls;
	struct kq_call *calls_failed;
	uint64_t call_seq;
	unsigned n_incoming;
	/* The calls out, by id as well: replies come in any order, and
	 * thousands may be out at once (a batch for each partition led
	 * elsewhere).  Open addressing, at most half full. */
	struct kq_call **call_slots;
	size_t call_cap, n_calls;
	uint64_t calls_looked; /* slots a lookup looked at, for tests */
};

/* Hand-overs to a preferred leader begun per tick, module-wide: a broker
 * that comes back takes its partitions back a few at a time, not in one
 * storm of elections. */
#define KQ__RAFT_HANDOVERS_PER_TICK 16
/* Sleeping groups are looked at every this many election timeouts. */
#define KQ__RAFT_SWEEP_TIMEOUTS 8

/* Requests of other brokers served here at once; more are answered BUSY. */
#define KQ__RAFT_INCOMING_MAX 4096

/* The broker's store calls (host->store). */
static inline const struct kq_store_api *kq__raft_store(struct kq_group *g)
{
	return g->mod->host->store;
}

/* entry.c: a record's payload as an entry's, and back. */
/* Encodes rec's payload into a new buffer (NULL for a control record,
 * which has none): malloc'd, or a kq__raft_buf when `rbuf`; *len
 * receives its size.  Returns 0, KQ_EBADARG (too large) or -ENOMEM. */
int kq__raft_entry_encode(const struct kq_record *rec, bool rbuf, void **out,
			  uint32_t *len);
/* The record view of an entry; its pointers borrow the entry's payload. */
void kq__raft_entry_decode(const struct kq__raft_entry *e,
			   struct kq_record *rec);

/* terms.c: where each term starts in the group's log (g->terms). */
/* Records that `index` has `term`; indexes come in increasing order. */
int kq__raft_terms_push(struct kq_group *g, uint64_t index, uint64_t term);
/* Forgets the terms of entries from `from` on (the point stays). */
void kq__raft_terms_truncate(struct kq_group *g, uint64_t from);
/* The log restarts after `point`, of term `term`. */
void kq__raft_terms_reset(struct kq_group *g, uint64_t point, uint64_t term);
/* Forgets what lies before `point`, which becomes the first index. */
void kq__raft_terms_prune(struct kq_group *g, uint64_t point);
/* The term of `index`, or -ENOENT below the point. */
int kq__raft_terms_lookup(const struct kq_group *g, uint64_t index,
			  uint64_t *term);
/* Finds the term starts inside (lo, hi] of the stored log, given the
 * terms at both ends, by bisection through the store. */
int kq__raft_terms_scan(struct kq_group *g, uint64_t lo, uint64_t tlo,
			uint64_t hi, uint64_t thi);

/* hooks.c: the core's read and term_at hooks (ctx: the group). */
int kq__raft_hook_read(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		       struct kq__raft_entry *out, size_t *n);
int kq__raft_hook_term_at(void *ctx, uint64_t index, uint64_t *term);

/* snapshot.c */
/* Installs the leader's snapshot, or a log group's restart point (data
 * NULL), durably: the snapshot file, then the log restarts after it.
 * Returns 0, or an error with *what naming the step that failed (the
 * caller stops the group).  The state itself is restored by the caller
 * once the ready is done. */
int kq__raft_snap_install(struct kq_group *g, const struct kq__raft_snapshot *s,
			  const char **what);
/* Takes a state machine's snapshot once snapshot_every entries were
 * applied since the last, then compacts the core and the log; a failure
 * is logged and tried again as many entries later. */
void kq__raft_snap_maybe(struct kq_group *g);
/* Retention asks for the entries before `before` to go: only those
 * committed, durable and applied here are deleted, after the restart
 * point and its exact term are saved.  Returns segments deleted or a
 * negative error; *failed names the step when the group must stop (the
 * caller stops it, in group.c). */
int kq__raft_snap_retain(struct kq_group *g, uint64_t before,
			 const char **failed);

/* open.c: kq_consensus_ops.group_open. */
int kq__raft_group_open(void *state, const struct kq_group_config *cfg,
			struct kq_group **out);

/* group.c: the per-group adapter around struct kq__raft. */
/* Drains the core (readies, then proposals settled); re-entry loops
 * instead of nesting.  Frees a group closed meanwhile. */
void kq__raft_group_run(struct kq_group *g);
void kq__raft_group_close(struct kq_group *g);
int kq__raft_group_propose(struct kq_group *g, struct kq_propose_req *req,
			   const struct kq_record *recs, size_t n,
			   kq_propose_cb cb);
uint64_t kq__raft_group_commit_end(struct kq_group *g);
/* kq_consensus_ops.group_retain: kq__raft_snap_retain(), stopping the
 * group when the retention point could not be recorded. */
int kq__raft_group_retain(struct kq_group *g, uint64_t before);
int kq__raft_group_leader(struct kq_group *g);
/* Stops the group for good after a storage or core error (`what`
 * failed, logged): it neither sends nor acknowledges anything any more,
 * but for a resignation. */
void kq__raft_group_fail(struct kq_group *g, int rv, const char *what);
/* tick.c: a tick of a group's logical clock; a group asleep is looked at only
 * every few ticks (`ticks` have passed since it was last): it wakes if
 * the broker it relies on went down, and a leader may hand over. */
void kq__raft_group_tick(struct kq_group *g, unsigned ticks);
/* A message from the cluster port for group g (borrowed). */
void kq__raft_group_step(struct kq_group *g, const struct kq__raft_msg *m);
/* Completes the canceled proposals queued on the module. */
void kq__raft_run_canceled(struct kq__raft_module *mod);

/* table.c: the group table, and the start of the `later` timer. */
struct kq_group *kq__raft_module_find(struct kq__raft_module *mod, uint64_t id);
int kq__raft_module_add(struct kq__raft_module *mod, struct kq_group *g,
			uint64_t id);
void kq__raft_module_remove(struct kq__raft_module *mod, struct kq_group *g,
			    uint64_t id);
/* Starts the `later` timer so canceled proposals complete soon. */
void kq__raft_module_later(struct kq__raft_module *mod);
/* Moves g off the awake list (asleep) or back onto it. */
void kq__raft_module_sleep(struct kq__raft_module *mod, struct kq_group *g,
			   bool asleep);

/* call.c: kq_consensus_ops.call and reply, and the cluster port's
 * callbacks for CALL and REPLY frames and closed connections. */
int kq__raft_call(void *state, struct kq_call *call, int to, const void *buf,
		  size_t len, unsigned timeout_ms, kq_call_cb cb);
void kq__raft_reply(void *state, struct kq_incoming *in, const void *buf,
		    size_t len);
void kq__raft_calls_serve(void *ctx, int from, uint64_t conn, uint64_t id,
			  const uint8_t *body, size_t len);
void kq__raft_calls_reply(void *ctx, int from, uint64_t id, const uint8_t *body,
			  size_t len);
void kq__raft_calls_down(void *ctx, int id);
/* Fails the calls past their deadline; once per tick. */
void kq__raft_calls_tick(struct kq__raft_module *mod);
/* Fails every pending call with KQ_ECANCELED (from `later`). */
void kq__raft_calls_cancel(struct kq__raft_module *mod);
/* Runs the callbacks of failed calls; from the `later` timer. */
void kq__raft_calls_run_failed(struct kq__raft_module *mod);
/* Frees what the calls' bookkeeping holds; at fini, none left out. */
void kq__raft_calls_free(struct kq__raft_module *mod);

/* A broker not heard for this long (an election timeout: it sends at
 * least a keepalive every heartbeat interval) wakes the sleeping groups
 * it leads, as their election timers would have had they run. */
static inline uint64_t kq__raft_silence_ms(const struct kq__raft_module *mod)
{
	return (uint64_t)mod->election_ticks * mod->tick_ms;
}

#endif /* KQ_RAFT_MODULE_H */
