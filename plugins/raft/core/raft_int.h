/* Internals of the Raft core shared by its files; not for the adapter. */
#ifndef KQ_RAFT_INT_H
#define KQ_RAFT_INT_H

#include "raft.h"

/* Bytes an entry costs in a message besides its payload (index, term,
 * flags, length), so that byte bounds also bound empty entries. */
#define KQ__RAFT_ENTRY_OVERHEAD 24

/* ------------------------------------------------------------ log cache */

/* The replica's log: a snapshot point (base, base_term), then entries
 * base + 1 .. first - 1 held only by the caller's storage (durable; read
 * back through the hooks), then the cached entries first .. first + n - 1
 * in e[head .. head + n).  The log owns one reference to every cached
 * payload and to the snapshot data. */
struct kq__raft_log {
	struct kq__raft_entry *e;
	size_t head;
	size_t n;
	size_t cap;
	uint64_t first;	    /* index of e[head] (last + 1 when n == 0) */
	uint64_t prev_term; /* term of the entry at first - 1 */
	size_t bytes;	    /* cached payloads plus the per-entry overhead */
	struct kq__raft_snapshot snap; /* base = snap.index */
	/* Storage hooks (kq__raft_config); NULL: nothing is ever evicted. */
	int (*read)(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		    struct kq__raft_entry *out, size_t *n);
	int (*term_at)(void *ctx, uint64_t index, uint64_t *term);
	void *ctx;
	int error; /* the first hook error; the core stops on it */
};

/* Frees every entry and the snapshot; the log is empty afterwards. */
void kq__raft_log_fini(struct kq__raft_log *l);
/* Index of the last entry (the snapshot index when empty). */
uint64_t kq__raft_log_last(const struct kq__raft_log *l);
/* Term of the last entry (the snapshot term when empty). */
uint64_t kq__raft_log_last_term(const struct kq__raft_log *l);
/* Term at `index` for snap.index <= index <= last, asking the term_at
 * hook for what is not cached; -1 otherwise or on a hook error (then
 * l->error is set). */
int kq__raft_log_term(struct kq__raft_log *l, uint64_t index, uint64_t *term);
/* True when the log holds `index` with `term`. */
bool kq__raft_log_match(struct kq__raft_log *l, uint64_t index, uint64_t term);
/* The cached entry at `index` or NULL (borrowed from the log). */
struct kq__raft_entry *kq__raft_log_get(const struct kq__raft_log *l,
					uint64_t index);
/* Entries from..to (from <= to <= last, from > snap.index), at least one,
 * no more than max_bytes in all beyond the first (0: no bound), from the
 * cache or the read hook.  *out is a malloc'd array owned by the caller,
 * holding one reference per payload.  Returns 0, -ENOMEM or the hook's
 * error (also kept in l->error). */
int kq__raft_log_entries(struct kq__raft_log *l, uint64_t from, uint64_t to,
			 size_t max_bytes, struct kq__raft_entry **out,
			 size_t *n);
/* Appends copies of e[0..n) (payloads referenced, not copied); their
 * indexes must continue the log.  Returns 0 or -ENOMEM. */
int kq__raft_log_append(struct kq__raft_log *l, const struct kq__raft_entry *e,
			size_t n);
/* Drops entries with index >= from.  Returns 0, or the hook's error when
 * the term before `from` had to be read and could not be. */
int kq__raft_log_truncate(struct kq__raft_log *l, uint64_t from);
/* Drops entries up to index (<= last), which becomes the snapshot point
 * with `data` (one reference taken). */
void kq__raft_log_compact(struct kq__raft_log *l, uint64_t index, void *data,
			  uint32_t len);
/* Drops everything; the log restarts after snapshot s (data referenced). */
void kq__raft_log_restore(struct kq__raft_log *l,
			  const struct kq__raft_snapshot *s);
/* Drops cached entries from the front, none above `durable`, until the
 * cache holds at most `bound` bytes (0: no bound). */
void kq__raft_log_evict(struct kq__raft_log *l, uint64_t durable, size_t bound);
/* The largest index i <= index (and >= the snapshot index) whose term is
 * <= term; the fast backtracking search of both ends.  Terms never
 * decrease along a log, so this is a binary search. */
uint64_t kq__raft_log_find_conflict(struct kq__raft_log *l, uint64_t index,
				    uint64_t term);

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
/* The progress record of voter id (borrowed), NULL for a stranger. */
struct kq__raft_progress *kq__raft_pr(struct kq__raft *r, uint64_t id);
/* Votes or copies that make a majority of the voters. */
size_t kq__raft_quorum(const struct kq__raft *r);
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
	/* A leader handing over: the voter asked to campaign, and the ticks
	 * since.  No proposal is taken meanwhile, so the voter's log stays
	 * as long as any (else it could not win). */
	uint64_t transferee;
	unsigned transfer_elapsed;
	unsigned election_ticks;
	unsigned heartbeat_ticks;
	unsigned rand_timeout;
	bool pre_vote;
	bool check_quorum;
	bool quiesce;
	bool quiet; /* asleep: see kq__raft_quiet() */
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
	size_t cache_bytes; /* bound on cached durable entries; 0: none */
	bool skip_apply;    /* committed entries are not handed out */

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
	int fatal;	  /* a Raft guarantee was contradicted */
	uint64_t refused; /* messages refused, see kq__raft_refused() */
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

/* Replication (raft_replication.c). */
/* Sends p what it lacks (a SNAPSHOT when it is compacted away) unless p is
 * paused; an empty APPEND only with send_empty.  True when sent. */
bool kq__raft_send_append(struct kq__raft *r, struct kq__raft_progress *p,
			  bool send_empty);
/* kq__raft_send_append() to every follower, pipelining in REPLICATE. */
void kq__raft_bcast_append(struct kq__raft *r, bool send_empty);
void kq__raft_bcast_heartbeat(struct kq__raft *r, bool quiet);
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
