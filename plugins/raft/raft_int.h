/* Internals of the Raft core shared by its files; not for the adapter. */
#ifndef KQ_RAFT_INT_H
#define KQ_RAFT_INT_H

#include "raft.h"

/* Bytes an entry costs in a message besides its payload (index, term,
 * flags, length), so that byte bounds also bound empty entries. */
#define KQ__RAFT_ENTRY_OVERHEAD 24

/* ------------------------------------------------------------ log cache */

/* The replica's log: a snapshot point (base, base_term) followed by the
 * entries base + 1 .. base + n, all held in memory.  The log owns one
 * reference to every payload and to the snapshot data. */
struct kq__raft_log {
	struct kq__raft_entry *e;
	size_t n;
	size_t cap;
	struct kq__raft_snapshot snap; /* base = snap.index */
};

/* Frees every entry and the snapshot; the log is empty afterwards. */
void kq__raft_log_fini(struct kq__raft_log *l);
/* Index of the last entry (the snapshot index when empty). */
uint64_t kq__raft_log_last(const struct kq__raft_log *l);
/* Term of the last entry (the snapshot term when empty). */
uint64_t kq__raft_log_last_term(const struct kq__raft_log *l);
/* Term at `index` for snap.index <= index <= last; -1 otherwise. */
int kq__raft_log_term(const struct kq__raft_log *l, uint64_t index,
		      uint64_t *term);
/* True when the log holds `index` with `term`. */
bool kq__raft_log_match(const struct kq__raft_log *l, uint64_t index,
			uint64_t term);
/* The entry at `index` or NULL (borrowed from the log). */
struct kq__raft_entry *kq__raft_log_get(const struct kq__raft_log *l,
					uint64_t index);
/* Appends copies of e[0..n) (payloads referenced, not copied); their
 * indexes must continue the log.  Returns 0 or -ENOMEM. */
int kq__raft_log_append(struct kq__raft_log *l, const struct kq__raft_entry *e,
			size_t n);
/* Drops entries with index >= from. */
void kq__raft_log_truncate(struct kq__raft_log *l, uint64_t from);
/* Drops entries up to index (<= last), which becomes the snapshot point
 * with `data` (one reference taken). */
void kq__raft_log_compact(struct kq__raft_log *l, uint64_t index, void *data,
			  uint32_t len);
/* Drops everything; the log restarts after snapshot s (data referenced). */
void kq__raft_log_restore(struct kq__raft_log *l,
			  const struct kq__raft_snapshot *s);
/* The largest index i <= index (and >= the snapshot index) whose term is
 * <= term; the fast backtracking search of both ends. */
uint64_t kq__raft_log_find_conflict(const struct kq__raft_log *l,
				    uint64_t index, uint64_t term);

/* ------------------------------------------------------------ progress */

enum kq__raft_pr_state {
	KQ__RAFT_PR_PROBE = 0, /* one APPEND at a time until one matches */
	KQ__RAFT_PR_REPLICATE, /* pipelined, bounded by the inflight window */
	KQ__RAFT_PR_SNAPSHOT,  /* waiting for a snapshot to be acknowledged */
};

struct kq__raft_inflight {
	uint64_t last; /* last index carried by the APPEND */
	size_t bytes;
};

/* The leader's view of one replica (the leader's own included). */
struct kq__raft_progress {
	uint64_t id;
	uint64_t match; /* highest index known durable and matching there */
	uint64_t next;	/* next index to send */
	enum kq__raft_pr_state state;
	bool probe_sent;       /* PROBE: an APPEND is out, wait */
	bool recent_active;    /* heard from since the last quorum check */
	uint64_t pending_snap; /* SNAPSHOT: index of the snapshot sent */
	unsigned state_ticks;  /* SNAPSHOT: ticks since it was sent */
	int vote;	       /* 0 unknown, 1 granted, -1 rejected */
	/* In-flight window: a ring of APPENDs not yet acknowledged. */
	struct kq__raft_inflight *infl;
	unsigned infl_start;
	unsigned infl_count;
	unsigned infl_cap;
	size_t infl_bytes;
};

/* Progress records are owned by struct kq__raft, one per voter; the
 * in-flight ring is allocated on first use and freed by
 * kq__raft_pr_fini(). */

/* A new leader's view: nothing known to match, probing from `next`. */
void kq__raft_pr_reset(struct kq__raft_progress *p, uint64_t next);
/* State changes; each empties the in-flight window. */
void kq__raft_pr_become_probe(struct kq__raft_progress *p);
void kq__raft_pr_become_replicate(struct kq__raft_progress *p);
void kq__raft_pr_become_snapshot(struct kq__raft_progress *p, uint64_t index);
/* A successful response up to `index`; true when match advanced. */
bool kq__raft_pr_update(struct kq__raft_progress *p, uint64_t index);
/* A rejection of prev `rejected` with the leader-side probe index `probe`;
 * false when the rejection is stale. */
bool kq__raft_pr_decr(struct kq__raft_progress *p, uint64_t rejected,
		      uint64_t probe);
/* True when no APPEND may be sent now. */
bool kq__raft_pr_paused(const struct kq__raft_progress *p, size_t max_bytes,
			unsigned max_msgs);
/* Records an APPEND ending at `last` of `bytes`; -ENOMEM on failure. */
int kq__raft_pr_infl_add(struct kq__raft_progress *p, uint64_t last,
			 size_t bytes, unsigned max_msgs);
/* Frees the window up to and including `index`. */
void kq__raft_pr_infl_free_to(struct kq__raft_progress *p, uint64_t index);
/* Frees the oldest slot (a heartbeat answer proves the link is alive). */
void kq__raft_pr_infl_free_first(struct kq__raft_progress *p);
/* Frees the in-flight ring. */
void kq__raft_pr_fini(struct kq__raft_progress *p);

/* ------------------------------------------------------------ the core */

/* A write handed out but not yet reported durable.  A truncation lowers
 * `last` so a late notice never vouches for entries written afterwards. */
struct kq__raft_write {
	uint64_t id;
	uint64_t last;
};

struct kq__raft {
	uint64_t id;
	struct kq__raft_progress *prs; /* one per voter */
	size_t n_prs;
	unsigned election_ticks;
	unsigned heartbeat_ticks;
	unsigned rand_timeout;
	bool pre_vote;
	bool check_quorum;
	size_t max_msg_bytes;
	size_t max_inflight_bytes;
	unsigned max_inflight_msgs;
	uint64_t rng;

	enum kq__raft_role role;
	uint64_t term;
	uint64_t vote;
	uint64_t lead;
	unsigned election_elapsed;
	unsigned heartbeat_elapsed;
	struct kq__raft_hard_state hs_saved;

	struct kq__raft_log log;
	uint64_t commit;
	uint64_t applied;   /* last index handed out for applying */
	uint64_t unstable;  /* first index not yet handed out for writing */
	uint64_t persisted; /* durable through here (own log) */
	uint64_t verified;  /* follower: matches the leader through here */
	uint64_t acked;	    /* follower: acknowledged to the leader so far */

	struct kq__raft_write *writes; /* not yet durable, oldest first */
	size_t n_writes;
	size_t cap_writes;
	uint64_t next_write_id;

	bool snap_pending; /* a restored snapshot awaits the caller */

	struct kq__raft_msg *out; /* outbox, handed out by ready() */
	size_t n_out;
	size_t cap_out;

	/* What the current ready handed out, consumed by advance(). */
	uint64_t rd_unstable;
	uint64_t rd_applied;
	size_t rd_n_out;
	struct kq__raft_entry *rd_committed;
	bool in_ready;
	int fatal; /* a Raft guarantee was contradicted */
};

/* Messages (raft_msg.c). */
/* Queues m in the outbox, which takes over its entries array and payload
 * references (released on failure too).  Returns 0 or -ENOMEM. */
int kq__raft_send(struct kq__raft *r, struct kq__raft_msg *m);
/* Frees a queued message's entries array and drops its references. */
void kq__raft_msg_release(struct kq__raft_msg *m);

/* Election and roles (raft.c). */
/* Becomes a follower of `term` (forgetting the vote if the term is new)
 * with `lead` as the known leader. */
void kq__raft_become_follower(struct kq__raft *r, uint64_t term, uint64_t lead);
/* The progress record of voter id (borrowed), NULL for a stranger. */
struct kq__raft_progress *kq__raft_pr(struct kq__raft *r, uint64_t id);
/* Votes or copies that make a majority of the voters. */
size_t kq__raft_quorum(const struct kq__raft *r);

/* Replication (raft_replication.c). */
/* Sends p what it lacks (a SNAPSHOT when it is compacted away) unless p is
 * paused; an empty APPEND only with send_empty.  True when sent. */
bool kq__raft_send_append(struct kq__raft *r, struct kq__raft_progress *p,
			  bool send_empty);
/* kq__raft_send_append() to every follower, pipelining in REPLICATE. */
void kq__raft_bcast_append(struct kq__raft *r, bool send_empty);
void kq__raft_bcast_heartbeat(struct kq__raft *r);
/* Leader: advances the commit index by the figure 2 rule; true when it
 * moved. */
bool kq__raft_maybe_commit(struct kq__raft *r);
/* Raises the commit index to index (bounded by the last entry). */
void kq__raft_commit_to(struct kq__raft *r, uint64_t index);
/* Handlers of received messages, by role: followers take APPEND,
 * HEARTBEAT and SNAPSHOT, leaders the responses.  m is borrowed. */
void kq__raft_handle_append(struct kq__raft *r, const struct kq__raft_msg *m);
void kq__raft_handle_heartbeat(struct kq__raft *r,
			       const struct kq__raft_msg *m);
void kq__raft_handle_snapshot(struct kq__raft *r, const struct kq__raft_msg *m);
void kq__raft_handle_append_resp(struct kq__raft *r,
				 const struct kq__raft_msg *m);
void kq__raft_handle_heartbeat_resp(struct kq__raft *r,
				    const struct kq__raft_msg *m);
/* Follower: acknowledge what is durable and verified; `force` answers
 * even when nothing advanced. */
void kq__raft_follower_ack(struct kq__raft *r, bool force);
/* Drops own entries from `from` on, keeping durability bookkeeping. */
void kq__raft_truncate(struct kq__raft *r, uint64_t from);

#endif /* KQ_RAFT_INT_H */
