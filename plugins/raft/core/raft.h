/* The Raft algorithm core: a pure, deterministic state machine.
 *
 * No sockets, files or clock: time arrives as ticks, randomness comes from
 * a seed, and everything the core wants done leaves through a "ready"
 * that the caller drains.  Inputs are received messages (kq__raft_step),
 * ticks (kq__raft_tick), proposals (kq__raft_propose) and durability
 * notices (kq__raft_persisted).  Outputs are messages to send, entries to
 * persist, the hard state to persist before sending, a snapshot to install
 * and committed entries to apply.
 *
 * Ownership of payloads: inside the core every payload is a reference
 * counted buffer (kq__raft_buf_*).  Entries and snapshots handed *in*
 * (propose, step, config) are borrowed for the call and copied.  Anything
 * handed *out* in a ready is borrowed from the core until
 * kq__raft_advance(); a caller that keeps a payload longer takes a
 * reference with kq__raft_buf_ref().
 *
 * Processing a ready, in this order:
 *   1. save rd.hs durably when rd.hs_changed (term and vote);
 *   2. install rd.snapshot durably when set (the log restarts after it);
 *   3. write rd.entries: drop stored entries with index >= entries[0].index,
 *      then append; when they (and everything written before) are durable,
 *      call kq__raft_persisted(r, rd.persist_id) - possibly much later;
 *   4. send rd.msgs (they may depend on steps 1 and 2, never on 3);
 *   5. apply rd.committed in order;
 *   6. kq__raft_advance(r, &rd).
 * No other call may be made on the core between kq__raft_ready() and
 * kq__raft_advance(). */
#ifndef KQ_RAFT_H
#define KQ_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Node ids are non-zero; 0 means "nobody". */
#define KQ__RAFT_NONE 0

/* The highest term a node takes or accepts.  Terms grow by one per
 * election, so no real cluster comes near it; a message claiming more is
 * refused, and term arithmetic never wraps. */
#define KQ__RAFT_MAX_TERM (UINT64_MAX >> 2)

/* Entry flags; the control bit equals KQ_RECORD_CONTROL so an entry maps
 * to a record without translation. */
enum {
	KQ__RAFT_ENTRY_CONTROL = 1u << 0, /* no-op at the start of a term */
};

/* Allocates a reference counted payload buffer of `len` bytes (count 1).
 * Returns NULL on allocation failure. */
void *kq__raft_buf_alloc(size_t len);
/* A new buffer holding a copy of p[0..len); NULL when p is NULL. */
void *kq__raft_buf_copy(const void *p, size_t len);
/* Takes one more reference; p may be NULL. */
void kq__raft_buf_ref(void *p);
/* Drops one reference, freeing the buffer on the last; p may be NULL. */
void kq__raft_buf_unref(void *p);

/* One log entry.  index is the Raft index (= the record offset), term the
 * term of the leader that created it. */
struct kq__raft_entry {
	uint64_t index;
	uint64_t term;
	uint32_t flags; /* KQ__RAFT_ENTRY_* */
	uint32_t len;
	void *data; /* payload; see the ownership rules above */
};

/* A snapshot point: the log holds nothing at or below `index`.
 * With data != NULL it is a state-machine snapshot (metadata group); with
 * data == NULL it is a log group's retention point: there is no state to
 * install, the log simply restarts at index + 1. */
struct kq__raft_snapshot {
	uint64_t index;
	uint64_t term;
	void *data; /* kq__raft_buf or NULL */
	uint32_t len;
};

/* Raft's persistent currentTerm and votedFor. */
struct kq__raft_hard_state {
	uint64_t term;
	uint64_t vote;
};

enum kq__raft_msg_type {
	KQ__RAFT_MSG_APPEND = 1,   /* index/log_term: prev entry; entries;
				    * commit */
	KQ__RAFT_MSG_APPEND_RESP,  /* success: index = durable match;
				    * reject: index = rejected prev,
				    * hint/log_term = conflict hint */
	KQ__RAFT_MSG_VOTE,	   /* index/log_term: candidate's last;
				    * hint 1: a transfer, which the lease
				    * of a live leader does not hold back */
	KQ__RAFT_MSG_VOTE_RESP,	   /* reject */
	KQ__RAFT_MSG_PREVOTE,	   /* term: the term it would campaign in */
	KQ__RAFT_MSG_PREVOTE_RESP, /* granted: term = requested term */
	KQ__RAFT_MSG_HEARTBEAT,	   /* commit = min(match, leader commit) */
	KQ__RAFT_MSG_HEARTBEAT_RESP,
	KQ__RAFT_MSG_SNAPSHOT,	  /* snap; answered by an APPEND_RESP */
	KQ__RAFT_MSG_TIMEOUT_NOW, /* the leader hands over: campaign now */
};

/* One message between replicas of a group.  Messages given to
 * kq__raft_step() are borrowed for the call. */
struct kq__raft_msg {
	enum kq__raft_msg_type type;
	uint64_t from;
	uint64_t to;
	uint64_t term;
	uint64_t index;
	uint64_t log_term;
	uint64_t commit;
	uint64_t hint;
	bool reject;
	bool quiet; /* HEARTBEAT: the leader sleeps, and so may its follower */
	struct kq__raft_entry *entries;
	size_t n_entries;
	struct kq__raft_snapshot snap;
};

/* A short name for a message type, for traces. Static string. */
const char *kq__raft_msg_name(enum kq__raft_msg_type t);

enum kq__raft_role {
	KQ__RAFT_FOLLOWER = 0,
	KQ__RAFT_PRE_CANDIDATE,
	KQ__RAFT_CANDIDATE,
	KQ__RAFT_LEADER,
};

/* What a replica starts from.  Every pointer is borrowed for the
 * kq__raft_new() call. */
struct kq__raft_config {
	uint64_t id;
	const uint64_t *voters; /* the fixed voter set, including id */
	size_t n_voters;
	unsigned election_ticks; /* election timeout is random in
				  * [election_ticks, 2 * election_ticks) */
	/* The first election timeout instead, when not 0: a new group's
	 * preferred leader campaigns before the others would, so that it
	 * is elected once instead of elected and then handed over to. */
	unsigned first_election_ticks;
	unsigned heartbeat_ticks;
	uint64_t seed; /* drives the election timeouts */
	bool pre_vote;
	bool check_quorum;
	/* Groups sleep when idle: see kq__raft_quiet(). */
	bool quiesce;
	/* Byte bounds count each entry's payload plus a fixed overhead;
	 * 0 means unbounded. */
	size_t max_msg_bytes;	   /* per APPEND (at least one entry is
				    * always sent) */
	size_t max_inflight_bytes; /* unacknowledged, per follower */
	/* Unacknowledged APPENDs per follower; 0 means 64. */
	unsigned max_inflight_msgs;

	/* Durable state recovered from disk: the hard state, the snapshot
	 * point, and the stored log snap.index + 1 .. last_index, of which
	 * `entries` hands in the newest n_entries (any number, 0 included;
	 * their indexes are taken from their place).  last_index 0 means
	 * snap.index + n_entries: everything is handed in.  last_term is
	 * the term of the entry at last_index, needed only when it is
	 * stored but not handed in. */
	struct kq__raft_hard_state hs;
	struct kq__raft_snapshot snap;	      /* {0, 0, NULL} when none */
	const struct kq__raft_entry *entries; /* the stored log's tail */
	size_t n_entries;
	uint64_t last_index;
	uint64_t last_term;

	/* The caller's storage, for entries the core does not cache: the
	 * stored log between the snapshot point and the cache (durable
	 * entries: written and reported by kq__raft_persisted, or handed
	 * in at start).  Both hooks are synchronous and deterministic;
	 * they are needed when anything is left in storage (last_index
	 * beyond the entries handed in, or cache_bytes set).
	 *
	 * read fills out[0..*n) with the entries from, from + 1, ... (at
	 * most to - from + 1 of them, room for that many is given; at least
	 * one; it may stop once their payloads reach max_bytes, 0 meaning
	 * no bound).  Each out[i].data is a buffer from kq__raft_buf_alloc()
	 * (or NULL for no payload) whose reference passes to the core.
	 * term_at gives the term of one stored entry.  Both return 0 or a
	 * negative error, which stops the core with that error. */
	int (*read)(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		    struct kq__raft_entry *out, size_t *n);
	int (*term_at)(void *ctx, uint64_t index, uint64_t *term);
	void *hook_ctx;
	/* Bound on the bytes (payload plus KQ__RAFT_ENTRY_OVERHEAD each) of
	 * durable entries kept in memory; older ones are read back through
	 * the hooks.  Entries not yet durable are always kept.  0: keep
	 * everything (the hooks are then needed only for the stretch left
	 * in storage at start). */
	size_t cache_bytes;
	/* Committed entries are not handed out in readies (a log nobody
	 * applies); they count as applied once committed. */
	bool skip_apply;
};

/* The core's outputs, filled by kq__raft_ready().  Everything in it is
 * owned by the core and valid until kq__raft_advance(). */
struct kq__raft_ready {
	bool hs_changed;
	struct kq__raft_hard_state hs;
	const struct kq__raft_snapshot *snapshot;
	const struct kq__raft_entry *entries; /* to persist */
	size_t n_entries;
	uint64_t persist_id; /* non-zero when entries is non-empty */
	const struct kq__raft_msg *msgs;
	size_t n_msgs;
	/* To apply; at most max_msg_bytes of them per ready (at least
	 * one), so entries read back from storage come in slices. */
	const struct kq__raft_entry *committed;
	size_t n_committed;
};

struct kq__raft;

/* Creates a replica.  Returns NULL on allocation failure or a config that
 * does not hold together (id not a voter, no voters).  Owned by the
 * caller, freed with kq__raft_free(). */
struct kq__raft *kq__raft_new(const struct kq__raft_config *cfg);
/* Frees the replica and everything it owns; r may be NULL. */
void kq__raft_free(struct kq__raft *r);

/* Advances the logical clock by one tick.  Returns 0, KQ_EINTERNAL when
 * called between kq__raft_ready() and kq__raft_advance(), or the error
 * that stopped the core earlier. */
int kq__raft_tick(struct kq__raft *r);

/* Feeds one received message (borrowed).  Returns 0, or KQ_EINTERNAL when
 * it contradicts Raft's guarantees (e.g. asks to drop committed entries),
 * or -ENOMEM. */
int kq__raft_step(struct kq__raft *r, const struct kq__raft_msg *m);

/* Appends `n` entries (borrowed; index and term are assigned, flags and
 * payload are kept) as one batch: one write and, per follower, one
 * message when it fits.  *first receives the first index.  Returns
 * KQ_EUNAVAILABLE when this replica is not the leader. */
int kq__raft_propose(struct kq__raft *r, const struct kq__raft_entry *e,
		     size_t n, uint64_t *first);
/* The same without copying: each e[i].data is a buffer from
 * kq__raft_buf_alloc() (or NULL), and the core takes a reference of its
 * own to it; the caller keeps and drops its own. */
int kq__raft_propose_bufs(struct kq__raft *r, const struct kq__raft_entry *e,
			  size_t n, uint64_t *first);

/* Everything handed out for writing by the readies up to and including
 * persist_id `id` is durable. */
void kq__raft_persisted(struct kq__raft *r, uint64_t id);

/* Drops entries up to `index` (which must be applied and durable) after
 * the caller stored a snapshot of the state there (data, borrowed), or,
 * with data == NULL, after a log group's retention deleted them.  A
 * follower that needs them later gets the snapshot instead.  Returns
 * KQ_EBADARG for an index out of range. */
int kq__raft_compact(struct kq__raft *r, uint64_t index, const void *data,
		     uint32_t len);

/* Leadership transfer: asks voter `to`, whose log matches the leader's
 * to its last entry, to campaign at once (TIMEOUT_NOW; its VOTE passes
 * the other voters' lease).  Returns 0, KQ_EUNAVAILABLE when this replica
 * does not lead or already hands over, KQ_EBADARG for itself or a
 * non-voter, KQ_EBUSY when `to` has not caught up.  Until a higher term reaches
 * it, or for an election timeout, the leader takes no proposal
 * (KQ_EUNAVAILABLE), so that `to` stays up to date and wins. */
int kq__raft_transfer(struct kq__raft *r, uint64_t to);

/* Whether the replica sleeps (with quiesce set).  A leader whose log is
 * committed and durable, held by every follower, and not handing over,
 * sends one last heartbeat marked quiet and sleeps; a follower sleeps on
 * such a heartbeat.  Asleep, tick() does nothing, so an idle group costs
 * nothing per tick: no heartbeats, no election timer.  Any message but a
 * heartbeat or its answer, a proposal and a transfer wake it; so must
 * the caller, with kq__raft_wake(), once a follower's leader or a
 * majority of a leader's voters seem down (liveness is then the caller's
 * business, per broker rather than per group). */
bool kq__raft_quiet(const struct kq__raft *r);
/* Ends the sleep: ticks count again from an empty election timer. */
void kq__raft_wake(struct kq__raft *r);
/* True when the next tick would start an election (pre-vote or vote)
 * of a replica that is not campaigning yet: the caller may hold the tick
 * back to spread a burst of elections over time (each costs a durable
 * save on every replica it reaches); holding ticks back only delays. */
bool kq__raft_campaign_due(const struct kq__raft *r);

/* True when kq__raft_ready() has something to hand out. */
bool kq__raft_has_ready(const struct kq__raft *r);
/* Fills rd (caller-owned struct, core-owned contents) with what is to be
 * done now, in the order given at the top of this file. */
void kq__raft_ready(struct kq__raft *r, struct kq__raft_ready *rd);
/* Releases what the ready borrowed and marks it done. */
void kq__raft_advance(struct kq__raft *r, struct kq__raft_ready *rd);

/* Read-only views for the adapter, tests and the simulation: the role,
 * current term, vote in it (KQ__RAFT_NONE: none; with the term, the hard
 * state the next ready hands out), known leader (KQ__RAFT_NONE when
 * unknown), commit index,
 * last index, first index held (snapshot index + 1), the bytes the log
 * cache holds and the index through which the own log is known durable. */
enum kq__raft_role kq__raft_role(const struct kq__raft *r);
uint64_t kq__raft_term(const struct kq__raft *r);
uint64_t kq__raft_vote(const struct kq__raft *r);
uint64_t kq__raft_leader(const struct kq__raft *r);
uint64_t kq__raft_commit(const struct kq__raft *r);
uint64_t kq__raft_last_index(const struct kq__raft *r);
uint64_t kq__raft_first_index(const struct kq__raft *r);
size_t kq__raft_cached_bytes(const struct kq__raft *r);
uint64_t kq__raft_persisted_index(const struct kq__raft *r);
/* The last index handed out as committed (a ready's `committed`). */
uint64_t kq__raft_applied(const struct kq__raft *r);
/* Messages refused so far: terms past KQ__RAFT_MAX_TERM, or appends that
 * contradict committed entries.  A refused message changes nothing. */
uint64_t kq__raft_refused(const struct kq__raft *r);
/* The term of the entry at `index` (the snapshot's term at its index),
 * from the cache or the term_at hook; returns -1 when the log does not
 * hold it or the hook failed (which stops the core). */
int kq__raft_term_at(struct kq__raft *r, uint64_t index, uint64_t *term);
/* The cached entry at `index`, borrowed until the next call into the
 * core; NULL when it is not held in memory. */
const struct kq__raft_entry *kq__raft_entry_at(const struct kq__raft *r,
					       uint64_t index);

#endif /* KQ_RAFT_H */
