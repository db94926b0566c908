/* The data the core's files share: the broker (modules wired together
 * around one libuv loop), its topics, partitions, stores, consumer groups
 * and sessions.  Internal to the core; transports see the broker only
 * through struct kq_broker_api.  Each file declares its functions in its
 * own header. */
#ifndef KQ_CORE_TYPES_H
#define KQ_CORE_TYPES_H

#include <kafkaesque/kafkaesque.h>

#include "conf.h"
#include "map.h"
#include "plugin.h"

struct kq_broker;
struct kq__topic;
struct kq__cgroup;

/* A store: a storage log lent to the consensus module (host->store),
 * with grouped, asynchronous syncs. */
struct kq_store {
	struct kq_broker *b;
	struct kq_log *log; /* storage-owned */
	char *dir;
	struct kq_sync_req *waiting; /* covered by the next sync (FIFO) */
	struct kq_sync_req **waiting_tail;
	struct kq_sync_req *running; /* covered by the sync in flight */
	uv_work_t work;
	int sync_running;
	int sync_status;
	int appended;  /* appended to since the last sync began */
	int hs_staged; /* a hard state staged since (or refused until a
			* sync): synced whatever the policy */
	int failed;    /* the first write or sync error: the log is reopened
			* (see kq__defer_reopen) */
	uint64_t sync_target; /* next offset when the running sync began */
	uint64_t durable_end; /* next offset covered by the last good sync,
			       * lowered by a truncate or reset */
	int listed;	      /* on b->sync_list */
	struct kq_store *next_listed;
	struct kq_store *prev_all, *next_all;
};

/* Publishes waiting for the end of the loop turn, proposed together. */
struct kq__batch {
	struct kq_propose_req preq;
	struct kq__partition *part;
	struct kq_req **reqs;
	uint32_t *lens;	 /* message lengths */
	uint32_t *klens; /* key lengths (key follows message) */
	size_t n, cap;
	char *buf;
	size_t used, bufcap;
};

struct kq__partition {
	struct kq__topic *topic;
	uint32_t id;
	int *replicas; /* broker ids, placement order */
	size_t nreplicas;
	struct kq_store store;	 /* only on a broker holding a replica */
	struct kq_group *group;	 /* consensus-owned; NULL when this
				  * broker holds no replica */
	int open_error;		 /* why this broker's replica could not
				  * be opened (retried); 0 when open or
				  * not held here; -EINPROGRESS while the
				  * topic's creation has not reached it */
	unsigned reopen_tries;	 /* failed attempts, for the log lines */
	uint64_t keep_below;	 /* a reopen drops records from here on:
				  * written, never made durable, never
				  * acknowledged (UINT64_MAX: none) */
	struct kq__batch *batch; /* NULL when nothing waits */
	/* Batches forwarded to another broker, oldest first: one at a time
	 * is out, so that they are stored in the order they came. */
	struct kq__fwd *fwd_head, *fwd_tail;
	struct kq__partition *next_dirty;
	int dirty;
};

/* A member of a consumer group: one subscription. */
struct kq__member {
	uint64_t sub_id;
	uint32_t cap;
	int broker;    /* the broker whose client joined (its home) */
	uint64_t boot; /* and that broker's run */
	int leaving;   /* a leave record of it is being committed */
	unsigned gen;  /* restore's mark */
	/* [nparts] the offset after the last batch CONS without an offset
	 * handed out on each partition and the consumer has not yet
	 * acknowledged (0: none); NULL before the first such CONS.  This
	 * broker's own, as is `acking`. */
	uint64_t *handed;
	/* [nparts] acknowledgements proposed here and not yet applied: a
	 * read from the committed offsets goes on from them meanwhile (0:
	 * none); allocated with handed. */
	uint64_t *acking;
	/* The connection that holds it: only on its home broker, NULL once
	 * that connection closed (a leave is then owed). */
	struct kq_session *session;
	struct kq__cgroup *cgroup;
	struct kq__member *prev_in_session, *next_in_session;
};

/* A broker's registration in the metadata: members are kept only for the
 * run that registered last, so a restart or an expiry ends the members
 * of a run that is gone, on every broker alike. */
struct kq__reg {
	int id;
	uint64_t boot;	     /* 0: none (expired, or never registered) */
	uint64_t down_since; /* metadata leader: when it was last seen
			      * down (ms, 0 while up) */
	int expiring;	     /* metadata leader: an expiry in flight */
};

/* A consumer group of one topic: members (live subscriptions, in join
 * order), current owners and committed offsets.  "cgroup" in names, since
 * a partition's `group` (struct kq_group) is its consensus group. */
struct kq__cgroup {
	char *name;
	struct kq__topic *topic;
	struct kq__member **members;
	size_t nmembers;
	uint64_t *owner; /* [nparts] sub id, 0 = none */
	/* Applied from the metadata log only, so the same on every broker
	 * (the proposer's own changes wait for their record too). */
	uint64_t *committed; /* [nparts] next offset to read */
	uint64_t *seeks;     /* [nparts] CMITs with an offset applied: an
			      * acknowledgement of a batch handed out
			      * before one does not count */
	/* The timestamp_ms of the last metadata record that changed its
	 * members or offsets (the leader's clock); 0: not known yet
	 * (restored from a snapshot that did not hold it).  Only for the
	 * leader's choice of groups to forget: a broker may stamp it with a
	 * time of its own (apply.c). */
	int64_t touched_ms;
	/* The metadata log offset after that record, the same on every
	 * broker (0: older than any, as restored from a snapshot that did
	 * not hold it): a forget proposed before it does not apply. */
	uint64_t touched_end;
	int listed;	    /* restore's mark */
	int forgetting;	    /* this leader proposed its forget (retire.c) */
	uint64_t forget_at; /* the "at" of the last forget it proposed */
};

struct kq__topic {
	struct kq_broker *b;
	char *name;
	uint32_t nparts;
	uint32_t replicas;
	size_t partitioner; /* index into b->partitioners */
	/* The partitioner its record names, which snapshots keep though it
	 * may not be loaded here (then `partitioner` is the first loaded);
	 * NULL: the one at `partitioner`. */
	char *recorded_partitioner;
	int64_t retention_ms;
	int64_t retention_bytes;
	uint64_t seq, keyless_seq;
	uint64_t group_base; /* consensus group id of partition 0 */
	struct kq__partition *parts;
	struct kq__map cgroups; /* name -> struct kq__cgroup */
	/* Opening a new topic's partitions a slice at a time, so that a
	 * big CRTP does not stall other clients: the next partition to
	 * open (nparts when done), what failed, and who waits for the end
	 * (called once, with the count of partitions that failed and the
	 * first error). */
	uint32_t open_next;
	unsigned open_failed;
	int open_first_error;
	void (*opened_cb)(void *ctx, unsigned failed, int first_error);
	void *opened_ctx;
	struct kq__topic *opening_next; /* in b->opening */
};

struct kq_session {
	struct kq_broker *b;
	struct kq__member *members; /* subscriptions made here */
	size_t nmembers;
	size_t njoining; /* its SUBS whose join is being committed */
	int closed;
	unsigned refs; /* requests and reads in flight + 1 */
	struct kq_session *prev, *next;
};

/* A module instance: the module, its host table and its state. */
struct kq__instance {
	struct kq__module mod;
	struct kq_host host;
	void *state;
	int started;
};

/* Refused offsets records of other brokers a broker remembers: their
 * proposals' callbacks run in the same loop turn as their apply. */
#define KQ__REFUSED_MAX 256

struct kq__cons_cursor; /* consume.c */

struct kq_broker {
	uv_loop_t *loop;
	struct kq__config *cfg;
	char *dir;   /* <data_dir>/kafkaesque-<id> */
	int lock_fd; /* holds the folder's lock until close; -1 before */

	struct kq__instance *transports;
	size_t ntransports;
	struct kq__instance *partitioners;
	size_t npartitioners;
	struct kq__instance storage;
	struct kq__instance consensus;
	const struct kq_storage_ops *sops;
	const struct kq_consensus_ops *cops;
	int sync_policy;
	uint32_t sync_interval_ms;

	int *broker_ids; /* the cluster's brokers (or this one) */
	size_t nbroker_ids;
	struct kq__map topics;	       /* name -> struct kq__topic */
	struct kq__map subs;	       /* sub id (8 bytes) -> kq__member */
	size_t ncgroups;	       /* over every topic, for limits */
	uint64_t npartitions;	       /* over every topic, for limits */
	uint64_t npartitions_creating; /* of topics being created */
	struct kq__map creating;       /* topic names being created */
	struct kq__map unopened; /* topics of the metadata whose partitions
				  * could not be opened (values unused) */
	struct kq_store meta_store;
	struct kq_group *meta_group; /* NULL while it cannot be reopened */
	const struct kq__meta_sm *meta_sm;
	uint64_t meta_applied_end;  /* after the last record applied */
	int meta_reopening;	    /* the group replays what is held */
	unsigned meta_reopen_tries; /* failed attempts, for the log lines */
	uint64_t meta_keep_below;   /* its reopen drops records from here
				     * on, as a partition's keep_below */
	uint64_t next_sub_id;	    /* next id to hand out */
	uint64_t my_sub_id_limit;   /* end of the block reserved for us */
	uint64_t sub_id_limit;	    /* ids below this are reserved by
				     * someone (any broker, any run) */
	uint64_t sub_id_floor;	    /* as stored in <dir>/sub_ids */
	uint64_t boot_id;	    /* tells this run's reservations apart */
	int reserving;		    /* a reservation is being committed */
	struct kq_req *sub_waiting; /* SUBS waiting for ids (FIFO) */
	struct kq_req **sub_waiting_tail;
	struct kq__reg *regs;	/* [nbroker_ids] */
	int registered;		/* this run's registration is applied */
	int registering;	/* and being committed */
	struct kq__map joining; /* sub id -> SUBS whose join is being
				 * committed (struct kq__joining) */
	size_t orphans;		/* home members owing a leave */
	int ending_run; /* the stop's record ending its members is out */
	/* Loop time the metadata log was seen failed (0: it is not); then
	 * the end of this run's members is out, and was committed but not
	 * applied here yet (members.c). */
	uint64_t meta_failed_at;
	int ending_failed, failed_ended;
	unsigned members_gen;
	uv_timer_t members_timer;
	/* Some groups have touched_ms 0: apply.c stamps them. */
	int cgroups_untimed;
	/* Forget records in flight (retire.c). */
	unsigned forgets;

	/* Partitions with a batch, in the order they got it (FIFO): a
	 * flush proposes a bounded number, the rest go on next turn. */
	struct kq__partition *dirty, *dirty_last;
	size_t ndirty;
	/* Of those, still to take in the flush's round: the ones queued
	 * when it began (publish.c); 0 between rounds.  And the flushes of
	 * it since the syncs last started. */
	size_t round_left;
	unsigned round_flushes;
	struct kq_store *sync_list; /* logs with syncs requested */
	struct kq_store **syncing;  /* kq__store_flush's scratch */
	size_t syncing_cap;
	struct kq_store *all_stores;
	struct kq_req *done; /* completions to deliver (FIFO) */
	struct kq_req **done_tail;
	unsigned works; /* syncs running on worker threads */
	/* Partition proposals (local batches and forwarded ones served here)
	 * whose callback has not run: a stop frees no partition before. */
	unsigned proposals;
	uv_check_t check;
	uv_idle_t idle;
	uv_timer_t sync_timer;
	uv_timer_t retention_timer;
	uv_timer_t retire_timer; /* groups past their offsets' retention */
	uv_timer_t reopen_timer; /* retries partitions that failed to open */
	/* Set by broker.c for defer.c: the end-of-turn flush, and the
	 * retry of what failed to open.  Hooks like these let the files
	 * below broker.c ask for work above them without calling up. */
	void (*flush_cb)(struct kq_broker *b);
	uv_timer_cb reopen_cb;
	/* Set by broker.c for members.c: this run's registration for
	 * consumer groups ended (0: registered), so waiting SUBS go on. */
	void (*registered_cb)(struct kq_broker *b, int status);
	/* kq__members_wake, for roster.c, below members.c */
	void (*members_wake_cb)(struct kq_broker *b);
	/* For forward.c: runs a request here (kq__serve_local). */
	void (*serve_local_cb)(struct kq_broker *b, const uint8_t *req,
			       size_t len,
			       void (*done)(void *ctx, const uint8_t *answer,
					    size_t len),
			       void *ctx);
	uv_idle_t open_idle; /* opens new topics' partitions */
	struct kq__topic *opening, **opening_tail; /* FIFO, for open_idle */
	int serving; /* start-up is over: new topics open a slice at a time */
	uv_signal_t sigint, sigterm, sighup;

	struct kq_session *sessions;
	struct kq_session *serve_session; /* other brokers' requests */
	struct kq__fwd *fwds, *fwds_tail; /* forwarded requests, oldest
					   * first */
	uv_timer_t fwd_timer;
	struct kq__fwd *fwd_ready, *fwd_ready_tail; /* to step next turn */
	struct kq__fwd *fwd_walk, *fwd_walk_tail;   /* stepped every 20 ms */
	uint64_t fwd_walk_at; /* loop time of the next walk of every one */
	unsigned fwd_pass;    /* marks what one run of the timer saw */
	/* For the tests: walks of every request, and requests looked at. */
	uint64_t fwd_walks, fwd_looked;
	int fwd_at_stop; /* forwarded records a stop waits for */
	/* CONS reads that yielded the loop (consume.c), and a count for
	 * tests. */
	struct kq__cons_cursor *cons_parked, *cons_parked_tail;
	uint64_t cons_turn, cons_parks;
	/* The retention sweep in progress (retention.c; NULL: none): the
	 * topics it covers, where it is, what it deleted; counts for
	 * tests. */
	struct kq__topic **sweep;
	size_t nsweep, sweep_i;
	uint32_t sweep_part;
	int64_t sweep_now;
	uint64_t sweep_segments, sweep_partitions;
	uint64_t retention_looked, retention_slices;
	struct kq__fetch *fetches, *fetches_tail; /* reads waiting for a
						   * replica to ask */
	uv_timer_t fetch_timer;
	struct kq__seeking *seekings; /* CMITs waiting for a partition's end
				       * from another broker (commit.c) */
	/* Offsets records proposed here, not yet completed (commit.c),
	 * and the number the next one carries as "ask". */
	struct kq__storing *storings;
	uint64_t asked;
	/* Offsets records of other brokers applied without some of their
	 * partitions, newest last (apply.c): the metadata leader tells
	 * their proposer, whose own apply may be replaced by a snapshot. */
	struct kq__ask {
		int broker;
		uint64_t boot, ask;
	} refused[KQ__REFUSED_MAX];
	unsigned nrefused;   /* written so far; the ring keeps the last */
	uint64_t nforwarded; /* requests sent to other brokers */
	unsigned stopping_transports;
	int stopping;
	int exit_code;
	void (*on_ready)(struct kq_broker *b);
};

#endif /* KQ_CORE_TYPES_H */
