/* kafkaesque plugin SDK: consensus modules.
 *
 * A consensus module orders and commits the records of replicated logs.
 * Each log is one group: group 0 is the metadata group (topics, groups,
 * committed offsets), every partition is a group of its own whose log is
 * the partition's message log.  The module never touches files itself: it
 * appends, syncs and reads through host->store, which the core backs with
 * the storage module.
 *
 * The single-broker module `local` commits a record once the storage holds
 * it durably; `raft` replicates it to a majority first. */
#ifndef KAFKAESQUE_CONSENSUS_H
#define KAFKAESQUE_CONSENSUS_H

#include "storage.h"

/* A log as the core lends it to a consensus module (opaque). */
struct kq_store;

/* One broker of the cluster, as the config file lists it. */
struct kq_peer_config {
	int id;
	const char *host; /* its address, for clients and the cluster port */
	int port;	  /* its client port */
	int raft_port;	  /* its cluster port */
};

/* The "cluster" section, checked by the core with its defaults applied
 * (docs/configuration.md), so that no module parses it again.  Owned by
 * the core, as host->cluster. */
struct kq_cluster_config {
	int raft_port; /* this broker's cluster port, -raftport applied */
	const struct kq_peer_config *peers; /* in the file's order */
	size_t n_peers;			    /* 0: none listed */
	const char *secret_file;	    /* NULL: none */
	unsigned auth_timeout_ms;
	unsigned max_connections;
	unsigned max_connections_per_address;
};

struct kq_sync_req;
/* Runs on the loop thread once every record appended to the log before
 * the sync call is durable (status 0) or could not be made so. */
typedef void (*kq_sync_cb)(struct kq_sync_req *req, int status);

/* Caller-owned; must stay valid until its callback runs.  The callback
 * never runs when the call that takes it fails. */
struct kq_sync_req {
	void *data;		  /* for the caller */
	kq_sync_cb cb;		  /* private */
	struct kq_sync_req *next; /* private */
};

/* Durable logs, implemented by the core over the storage module.  The
 * calls mirror struct kq_storage_ops; sync is asynchronous and grouped:
 * every sync requested on a log during one loop turn shares one fsync,
 * run on a worker thread. */
struct kq_store_api {
	int (*append)(struct kq_store *st, const struct kq_record *recs,
		      size_t n);
	int (*sync)(struct kq_store *st, struct kq_sync_req *req,
		    kq_sync_cb cb);
	int (*read)(struct kq_store *st, uint64_t from, uint64_t end,
		    size_t max_bytes, kq_record_cb cb, void *ctx,
		    uint64_t *next);
	uint64_t (*first_offset)(struct kq_store *st);
	uint64_t (*next_offset)(struct kq_store *st);
	int (*term_at)(struct kq_store *st, uint64_t offset, uint64_t *term);
	int (*truncate)(struct kq_store *st, uint64_t from);
	int (*reset)(struct kq_store *st, uint64_t next);
	/* Stages term and vote (hs, borrowed): a sync() requested after
	 * this call makes them durable, whatever the fsync policy, and
	 * until its callback reports 0 they must not be acted on.  Many
	 * logs' hard states staged in one loop turn share one flush.
	 * KQ_EBUSY (the log is not failed): sync() first, then stage
	 * again. */
	int (*stage_hard_state)(struct kq_store *st,
				const struct kq_hard_state *hs);
	int (*load_hard_state)(struct kq_store *st, struct kq_hard_state *hs);

	/* Snapshots of a state-machine group; see kq_storage_ops.
	 * save_snapshot.  Load hands back a buffer the caller frees with
	 * host->free, or -ENOENT when there is none. */
	int (*save_snapshot)(struct kq_store *st, uint64_t index, uint64_t term,
			     const void *data, size_t len);
	int (*load_snapshot)(struct kq_store *st, uint64_t *index,
			     uint64_t *term, void **data, size_t *len);
	/* Deletes whole segments below `before` (after a snapshot covers
	 * them); see kq_storage_ops.compact. */
	int (*compact)(struct kq_store *st, uint64_t before);
	/* Offsets lost to damage; see kq_storage_ops.lost.  A module that
	 * assigns offsets itself starts above them. */
	int (*lost)(struct kq_store *st, const struct kq_offset_range **out);
	/* The group of this log stopped for a cause of its own (err: out
	 * of memory, an internal check): the core closes both and opens
	 * them again once nothing is in flight on them, as it does after
	 * a write or sync error of the log. */
	void (*group_stopped)(struct kq_store *st, int err);
};

/* Called on the loop thread for every committed record of a group, in
 * offset order, exactly once per group_open (replayed from the start of
 * the log on open).  The record is borrowed for the call. */
typedef void (*kq_apply_fn)(void *ctx, const struct kq_record *rec);

struct kq_group_config {
	uint64_t id;		/* 0: metadata group */
	const char *name;	/* "meta", "<topic>-<partition>" */
	const char *dir;	/* the log's folder, for messages (borrowed
				 * for the call) */
	struct kq_store *store; /* borrowed until group_close() */
	const int *replicas;	/* broker ids holding a replica */
	size_t nreplicas;
	kq_apply_fn apply; /* NULL: the core does not need records
			    * applied (message logs) */
	void *apply_ctx;

	/* State-machine groups (NULL for message logs): `snapshot` writes
	 * the state applied so far into a host-allocated buffer the module
	 * frees with host->free; `restore` replaces the whole state with
	 * one (borrowed).  With them the module may compact the log. */
	int (*snapshot)(void *ctx, void **data, size_t *len);
	int (*restore)(void *ctx, const void *data, size_t len);
};

struct kq_propose_req;
/* Runs on the loop thread when the proposal is committed (status 0,
 * req->first_offset set) or failed: KQ_EUNAVAILABLE (not leader, lost
 * leadership), or the storage error that stopped the log (-ENOSPC, -EIO,
 * ...).  After a failure the records may or may not commit. */
typedef void (*kq_propose_cb)(struct kq_propose_req *req, int status);

/* Caller-owned; must stay valid until its callback runs. */
struct kq_propose_req {
	void *data;	       /* for the caller */
	uint64_t first_offset; /* result: offset of the first record */
	kq_propose_cb cb;      /* private */
};

struct kq_group; /* opaque, owned by the consensus module */

struct kq_call;
/* Runs on the loop thread with the peer's answer (status 0; `reply` is
 * borrowed for the callback) or a failure: KQ_EUNAVAILABLE when the
 * broker was not connected, its connection closed, or no answer came in
 * time (the request may still have run there), KQ_EBUSY when it had too
 * many requests in flight, KQ_ECANCELED when the module is closing. */
typedef void (*kq_call_cb)(struct kq_call *call, int status, const void *reply,
			   size_t len);

/* A request from this broker's core to another's (see call()).
 * Caller-owned; must stay valid until its callback runs. */
struct kq_call {
	void *data; /* for the caller */
	/* private to the module */
	kq_call_cb cb;
	int to;
	uint64_t id;
	uint64_t deadline_ms;
	int status;
	struct kq_call *prev, *next;
};

/* A request from another broker's core, owned by the module from
 * host->serve until the core answers it with reply(). */
struct kq_incoming;

struct kq_consensus_ops {
	KQ_MODULE_OPS_FIELDS

	/* Starts a group over cfg->store.  Committed records are replayed
	 * through cfg->apply before this returns (local) or as they are
	 * learned (replicated). */
	int (*group_open)(void *state, const struct kq_group_config *cfg,
			  struct kq_group **out);
	/* Stops the group.  Proposals still pending complete later with
	 * KQ_ECANCELED; the core closes a group only once its log has no
	 * sync in flight, so with `local` none are left by then. */
	void (*group_close)(struct kq_group *g);

	/* Proposes `n` records; the module assigns offsets and terms.  The
	 * records are borrowed for the call (copied or written before it
	 * returns). */
	int (*propose)(struct kq_group *g, struct kq_propose_req *req,
		       const struct kq_record *recs, size_t n,
		       kq_propose_cb cb);

	/* The offset after the last committed record. */
	uint64_t (*commit_end)(struct kq_group *g);

	/* Broker id of the group's leader, 0 when none is known. */
	int (*leader)(struct kq_group *g);

	/* Retention asks for the records before `before` to go.  The
	 * module deletes (with host->store->compact) only records that are
	 * committed and durable here, after recording durably whatever it
	 * needs to restart after them, so retention never loses an
	 * uncommitted record.  Returns the number of segments deleted or a
	 * negative error; a state-machine group (metadata) ignores it. */
	int (*group_retain)(struct kq_group *g, uint64_t before);

	/* Whether broker `id` is reachable from here: 1 up, 0 down.  A
	 * module without a cluster answers 1 for its own id only. */
	int (*peer_up)(void *state, int id);

	/* Sends `len` bytes (copied during the call) to broker `to`'s core,
	 * which gets them through its host->serve; cb runs once with the
	 * answer, or fails after timeout_ms.  Requests to one broker are
	 * delivered in the order sent.  Returns KQ_EUNAVAILABLE at once
	 * when `to` is this broker or not connected (a module without a
	 * cluster: always), KQ_EBUSY when too much waits to be sent to it,
	 * -E2BIG when `len` is more than the module ever sends at once;
	 * the callback never runs when the call fails. */
	int (*call)(void *state, struct kq_call *call, int to, const void *buf,
		    size_t len, unsigned timeout_ms, kq_call_cb cb);
	/* Answers a request host->serve handed over, exactly once; `len`
	 * bytes are copied.  `in` is freed by the call.  The answer is
	 * dropped when the caller's connection closed meanwhile. */
	void (*reply)(void *state, struct kq_incoming *in, const void *buf,
		      size_t len);
};

#endif /* KAFKAESQUE_CONSENSUS_H */
