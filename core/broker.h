/* The broker: modules wired together around one libuv loop.  Internal to
 * the core; transports see it only through struct kq_broker_api. */
#ifndef KQ_CORE_BROKER_H
#define KQ_CORE_BROKER_H

#include <kafkaesque/kafkaesque.h>

#include "conf.h"
#include "map.h"
#include "plugin.h"

struct kq_broker;
struct kq__topic;
struct kq__group;

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
	int unsynced; /* appends since the last sync began */
	int failed;   /* the first write or sync error: the log is reopened
		       * (see kq__defer_reopen) */
	uint64_t sync_target; /* next offset when the running sync began */
	uint64_t durable_end; /* next offset covered by the last good sync */
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

/* A consumer group of one topic: members (live subscriptions, in join
 * order), current owners and committed offsets. */
struct kq__member {
	uint64_t sub_id;
	uint32_t cap;
	int broker;    /* the broker whose client joined (its home) */
	uint64_t boot; /* and that broker's run */
	int leaving;   /* a leave record of it is being committed */
	unsigned gen;  /* restore's mark */
	/* [nparts] the offset after the last batch CONS without an offset
	 * handed out on each partition and the consumer has not yet
	 * acknowledged (0: none); NULL before the first such CONS. */
	uint64_t *handed;
	/* The connection that holds it: only on its home broker, NULL once
	 * that connection closed (a leave is then owed). */
	struct kq_session *session;
	struct kq__group *group;
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

struct kq__group {
	char *name;
	struct kq__topic *topic;
	struct kq__member **members;
	size_t nmembers;
	uint64_t *owner;     /* [nparts] sub id, 0 = none */
	uint64_t *committed; /* [nparts] next offset to read */
	uint64_t seeks;	     /* CMIT with an offset so far: a read begun
			      * before one hands out nothing to ack */
};

struct kq__topic {
	struct kq_broker *b;
	char *name;
	uint32_t nparts;
	uint32_t replicas;
	size_t partitioner; /* index into b->partitioners */
	int64_t retention_ms;
	int64_t retention_bytes;
	uint64_t seq, keyless_seq;
	uint64_t group_base; /* consensus group id of partition 0 */
	struct kq__partition *parts;
	struct kq__map groups; /* name -> struct kq__group */
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
	size_t ngroups;		       /* over every topic, for limits */
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
	unsigned members_gen;
	uv_timer_t members_timer;

	struct kq__partition *dirty; /* partitions with a batch */
	struct kq_store *sync_list;  /* logs with syncs requested */
	struct kq_store **syncing;   /* kq__store_flush's scratch */
	size_t syncing_cap;
	struct kq_store *all_stores;
	struct kq_req *done; /* completions to deliver (FIFO) */
	struct kq_req **done_tail;
	unsigned works; /* syncs running on worker threads */
	uv_check_t check;
	uv_idle_t idle;
	uv_timer_t sync_timer;
	uv_timer_t retention_timer;
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
	unsigned fwd_pass; /* walks of the forward timer */
	struct kq__fetch *fetches, *fetches_tail; /* reads waiting for a
						   * replica to ask */
	uv_timer_t fetch_timer;
	struct kq__seeking *seekings; /* CMITs waiting for a partition's end
				       * from another broker (commit.c) */
	uint64_t nforwarded;	      /* requests sent to other brokers */
	unsigned stopping_transports;
	int stopping;
	int exit_code;
	void (*on_ready)(struct kq_broker *b);
};

/* Creates a broker on `loop` from a validated configuration (borrowed
 * until kq__broker_close).  Loads and initialises every module, recovers
 * the data folder and starts the transports.  Errors are logged as one
 * line each and returned. */
int kq__broker_open(uv_loop_t *loop, struct kq__config *cfg,
		    struct kq_broker **out);

/* Initialises the broker's own libuv handles on `loop` (each closed by
 * the stop); kq__broker_open() does it first. */
void kq__broker_init_handles(struct kq_broker *b, uv_loop_t *loop);

/* Starts a graceful stop: transports stop accepting, work in flight
 * finishes, logs are synced; the loop then runs out of handles. */
void kq__broker_stop(struct kq_broker *b);

/* Frees the broker after the loop has stopped. */
void kq__broker_close(struct kq_broker *b);

/* Internal plumbing shared by the core's files. */
extern const struct kq_broker_api kq__broker_api;
extern const struct kq_store_api kq__store_api;

/* Runs batched proposals, syncs and queued completions. */
void kq__broker_flush(struct kq_broker *b);

/* orphans.c: moves partition folders the metadata does not know to
 * <dir>/orphaned/, with one warning line each.  Does nothing unless this
 * broker is the sole replica of its metadata (so knows it whole). */
void kq__orphans_move(struct kq_broker *b);

/* instance.c: module instances. */
/* Fills in->host for a module of `kind` named in->mod.name: the services
 * the core lends it, its config section and, by kind, the broker API
 * (transports) or the store and serve hooks (consensus).  The table
 * borrows from b and b->cfg, which outlive it. */
void kq__instance_host(struct kq_broker *b, struct kq__instance *in,
		       enum kq_plugin_kind kind);
/* Loads every configured module and fills its host table. */
int kq__instance_load_all(struct kq_broker *b);
/* Inits storage, consensus and partitioners, and reads the sync policy. */
int kq__instance_init_all(struct kq_broker *b);
/* Inits and starts every transport. */
int kq__instance_start_transports(struct kq_broker *b);
/* Calls the module's fini, if its init succeeded, and unloads it. */
void kq__instance_fini(struct kq__instance *in);

/* reopen.c: b->reopen_timer's callback (b->reopen_cb). */
void kq__reopen_on_timer(uv_timer_t *tm);

/* retention.c: b->retention_timer's callback. */
void kq__retention_on_timer(uv_timer_t *tm);

/* defer.c */
/* Makes sure the end-of-turn flush (b->flush_cb) runs soon. */
void kq__defer_wake(struct kq_broker *b);
/* Queues req's callback with `status` for the end of this loop turn. */
void kq__defer_complete(struct kq_broker *b, struct kq_req *req, int status);
/* Runs the queued callbacks, in the order they were queued. */
void kq__defer_deliver(struct kq_broker *b);
/* How often partitions that could not be opened are tried again. */
#define KQ__REOPEN_MS 5000
/* Starts retrying logs that failed (b->reopen_cb every KQ__REOPEN_MS),
 * unless that runs already or the broker stops. */
void kq__defer_reopen(struct kq_broker *b);

/* store.c: the one place the storage module's fsync policy is read
 * (b->sync_policy, at init) and applied. */
void kq__store_policy(struct kq_broker *b);
/* Starts the interval policy's timer (b->sync_timer), if that is it. */
void kq__store_start(struct kq_broker *b);
/* Where records of pl may have been acknowledged up to: a reopen drops
 * what lies past it (written, never acknowledged). */
uint64_t kq__store_acked_end(const struct kq_store *pl);
/* Opens the log at `dir` with `opts` (its `unsynced` is the policy's). */
int kq__store_open(struct kq_broker *b, struct kq_store *pl, const char *dir,
		   const struct kq_log_options *opts);
void kq__store_close(struct kq_store *pl);
void kq__store_flush(struct kq_broker *b);
void kq__store_sync_all(struct kq_broker *b);

/* topic.c */
struct kq__topic *kq__topic_get(struct kq_broker *b, const char *name);
/* Creates the topic and opens the partitions this broker holds (an
 * applied metadata record).  Partitions that cannot be opened stay in
 * the topic with their open_error and are retried: *failed counts them,
 * *first_error says why the first one failed.  Once the broker serves,
 * the partitions are opened a slice at a time after this returns (with
 * *failed 0): t->opened_cb, when set, hears how that ended.  Fails only
 * without memory. */
int kq__topic_create(struct kq_broker *b, const char *name, uint32_t nparts,
		     uint32_t replicas, size_t partitioner,
		     int64_t retention_ms, int64_t retention_bytes,
		     uint64_t group_base, unsigned *failed, int *first_error);
/* Opens this broker's replica of p (its log and consensus group) unless
 * it is open or held elsewhere.  Returns 0 or the error. */
int kq__partition_open(struct kq_broker *b, struct kq__partition *p);
/* 0 when this broker's replica of p serves, else KQ_EUNAVAILABLE with
 * the reason (being opened, cannot be opened, not held here) written to
 * errmsg. */
int kq__partition_usable(const struct kq__partition *p, char *errmsg,
			 size_t errlen);
/* Whether another broker holds a replica of p. */
int kq__partition_held_elsewhere(struct kq_broker *b,
				 const struct kq__partition *p);
/* Whether this broker's replica of p is open and leads it. */
int kq__partition_led_here(struct kq_broker *b, const struct kq__partition *p);
/* The broker stops: topics still being opened end now, their partitions
 * not yet tried failing with KQ_ECANCELED (tried at the next start). */
void kq__topic_open_cancel_all(struct kq_broker *b);
void kq__topic_free(struct kq_broker *b, struct kq__topic *t);
/* How kq__group_get treats a group that does not exist yet. */
enum kq__group_create {
	KQ__GROUP_FIND,	    /* NULL */
	KQ__GROUP_JOIN,	    /* created within limits.max_groups */
	KQ__GROUP_RECORDED, /* created: the metadata log holds it */
};
/* The group `name` of topic t (owned by the topic), or NULL: absent,
 * out of memory, or (KQ__GROUP_JOIN) at limits.max_groups. */
struct kq__group *kq__group_get(struct kq__topic *t, const char *name,
				enum kq__group_create create);
/* Frees g when nothing keeps it: no members and no committed offset. */
void kq__group_release(struct kq__group *g);
/* Recomputes the group's owners after a join or leave. */
void kq__group_rebalance(struct kq__group *g);
/* Frees m (its group keeps no pointer to it any more). */
void kq__member_free(struct kq_broker *b, struct kq__member *m);
/* Takes m off its session's list of subscriptions, if it has one. */
void kq__member_unlink(struct kq__member *m);
/* Frees a batch of PUBS, whose requests were answered. */
void kq__batch_free(struct kq__batch *bt);

/* roster.c: consumer group membership as the metadata log's records
 * made it, the same on every broker, so that each computes the same
 * assignment. */
/* Applies a membership record (join, leave, register, expire); returns
 * 0, or -ENOENT when `type` is none of them. */
int kq__roster_apply(struct kq_broker *b, const char *type, json_t *rec);
/* Adds the group's members and owners to its snapshot item. */
void kq__roster_snapshot_group(struct kq__group *g, json_t *item);
/* The registrations, for the snapshot. */
json_t *kq__roster_snapshot(struct kq_broker *b);
/* Replaces membership with a snapshot's (doc: the whole document). */
void kq__roster_restore(struct kq_broker *b, json_t *doc);
/* The partitions group g assigns to `id`, as a new array. */
int kq__roster_assigned(struct kq__group *g, uint64_t id, uint32_t **out,
			uint32_t *n);

/* Whether m joined through a connection of this broker's run. */
static inline int kq__member_home(const struct kq_broker *b,
				  const struct kq__member *m)
{
	return m->broker == b->cfg->broker_id && m->boot == b->boot_id;
}

/* members.c: membership proposed (joins, leaves, this run's
 * registration, expiry of brokers out of reach) as metadata records. */
struct kq__joining;
/* Proposes this run's registration unless it is applied or in flight. */
void kq__members_register(struct kq_broker *b);
/* Proposes req's join of group `group` of `topic` with id `sub_id`; req
 * completes once it is applied here (result: the assignment).  Returns 0,
 * or an error with req->errmsg set (req does not complete). */
int kq__members_join(struct kq_broker *b, struct kq_req *req, const char *topic,
		     const char *group, uint64_t sub_id, uint32_t cap);
/* Proposes m's leave; req (may be NULL) completes once it is applied
 * here.  Returns 0, or an error with req->errmsg set. */
int kq__members_leave(struct kq_broker *b, struct kq__member *m,
		      struct kq_req *req);
/* A session closes: its members are left, its joins in flight will be. */
void kq__members_session_closed(struct kq_broker *b, struct kq_session *s);
/* Sets up the registrations of the configured brokers (before the
 * metadata is opened). */
int kq__members_init(struct kq_broker *b);
/* Starts the membership timer (registration retries, owed leaves, and
 * on the metadata leader the expiry of brokers gone for
 * cluster.session_timeout_ms). */
void kq__members_start(struct kq_broker *b);
/* Runs the membership timer now: a member owes a leave, or this run must
 * register again (b->members_wake_cb, for roster.c). */
void kq__members_wake(struct kq_broker *b);
/* Why a metadata write was refused, in req->errmsg; returns the error. */
int kq__meta_refused(struct kq_broker *b, struct kq_req *req, int rv);

/* The brokers of the cluster (one: this broker when standalone), in
 * configuration order. */
size_t kq__brokers_list(struct kq_broker *b, const int **ids);

/* apply.c: the metadata state machine. */
/* Readies this run's state (subscription ids, boot id, members), opens
 * the metadata log applying through it, and starts reserving ids and
 * registering for consumer groups. */
int kq__apply_open(struct kq_broker *b);
/* kq__meta_reopen(), then the same reservation and registration. */
int kq__apply_reopen(struct kq_broker *b);

/* meta.c: the metadata log (group 0). */
/* What the metadata group calls (struct kq_group_config). */
struct kq__meta_sm {
	void (*apply)(void *ctx, const struct kq_record *r);
	int (*snapshot)(void *ctx, void **data, size_t *len);
	int (*restore)(void *ctx, const void *data, size_t len);
};
/* Opens the metadata log and its group, which applies through `sm`
 * (static; kept for reopens). */
int kq__meta_open(struct kq_broker *b, const struct kq__meta_sm *sm);
void kq__meta_close(struct kq_broker *b);
/* Reopens the metadata log and group after the log failed a write or a
 * sync, keeping the state in memory; records never made durable under
 * fsync always are dropped.  Call only when kq__meta_idle(). */
int kq__meta_reopen(struct kq_broker *b);
int kq__meta_idle(struct kq_broker *b);
/* Proposes a metadata record (JSON); cb may be NULL.  The request is
 * allocated and freed internally.  On a broker that does not lead the
 * metadata the record is forwarded to the leader, and cb runs once this
 * broker applied it too (kq__fwd_meta). */
int kq__meta_propose(struct kq_broker *b, json_t *record,
		     void (*cb)(void *ctx, int status), void *ctx);
/* In a cluster, whether another broker leads the metadata, or none is
 * known yet: writes go there (forward.c). */
int kq__meta_led_elsewhere(struct kq_broker *b);
/* The same with the record as `len` bytes of JSON text (copied). */
int kq__meta_propose_text(struct kq_broker *b, const char *text, size_t len,
			  void (*cb)(void *ctx, int status), void *ctx);

/* api.c: the broker API table transports call. */
void kq__sessions_close_all(struct kq_broker *b);

/* req.c */
/* Fills req->errmsg from fmt and returns err, for an entry point that
 * refuses a request (its callback then never runs). */
int kq__req_fail(struct kq_req *req, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Readies a caller-owned request for an entry point. */
void kq__req_init(struct kq_req *req, struct kq_session *s,
		  enum kq_req_type type, kq_req_cb cb);

/* create.c: CRTP. */
int kq__create_topic(struct kq_session *s, struct kq_req *req,
		     const struct kq_topic_spec *spec, kq_req_cb cb);
/* CRTP without forwarding: run by the metadata leader for another
 * broker's client. */
int kq__create_topic_here(struct kq_session *s, struct kq_req *req,
			  const struct kq_topic_spec *spec, kq_req_cb cb);
/* Tells a CRTP waiting for topic `name` why its record could not be
 * applied (a negative code); nothing when no CRTP waits for it. */
void kq__create_failed(struct kq_broker *b, const char *name, int err);

/* publish.c: PUBS. */
int kq__publish(struct kq_session *s, struct kq_req *req, const char *topic,
		const void *msg, size_t len, kq_req_cb cb);
/* Proposes (or forwards) every partition's batch: the end of the turn. */
void kq__batch_flush(struct kq_broker *b);

/* subscribe.c: SUBS and UNSB. */
int kq__subscribe(struct kq_session *s, struct kq_req *req, const char *topic,
		  const char *group, uint32_t cap, kq_req_cb cb);
int kq__unsubscribe(struct kq_session *s, struct kq_req *req, const char *topic,
		    uint64_t sub_id, kq_req_cb cb);
/* SUBS waiting for ids or for this run's registration go on, or fail
 * with `status` when that is an error. */
void kq__subscribe_resume(struct kq_broker *b, int status);
/* Reserves subscription ids when few are left. */
void kq__subscribe_reserve_ids(struct kq_broker *b);
/* s closes: its SUBS still waiting for ids will not join. */
void kq__subscribe_session_closed(struct kq_broker *b, struct kq_session *s);

/* serve.c: requests other brokers forwarded here. */
/* Answers a request of another broker (serve.c): `answer` is
 * borrowed for the call. */
typedef void (*kq__serve_done_fn)(void *ctx, const uint8_t *answer, size_t len);
/* The consensus host's serve(): runs a request another broker's core
 * sent; answers once, now or later, with the module's reply(). */
void kq__serve(const struct kq_host *host, struct kq_incoming *in, int from,
	       const void *req, size_t len);
/* Runs a forwarded request this broker turned out to lead; done runs
 * once, now or later, with the answer. */
void kq__serve_local(struct kq_broker *b, const uint8_t *req, size_t len,
		     kq__serve_done_fn done, void *ctx);

/* forward.c: commands whose leader is another broker. */
struct kq__fwd;
/* Sends a CRTP to the metadata leader (or waits for one); req->cb runs
 * from a later loop turn.  Returns 0, -ENOMEM, or -E2BIG (options). */
int kq__fwd_create(struct kq_broker *b, struct kq_req *req,
		   const struct kq_topic_spec *spec, uint32_t nparts);
/* Sends a metadata record (`len` bytes of JSON, copied) to the metadata
 * leader; cb (may be NULL) runs from a later loop turn, once the record
 * is committed and applied here, or failed.  Returns 0 or -ENOMEM. */
int kq__fwd_meta(struct kq_broker *b, const char *text, size_t len,
		 void (*cb)(void *ctx, int status), void *ctx);
/* The replica to ask about partition `part` (of `n` replicas, borrowed)
 * when this broker (`self`) holds none: the first up, from the
 * partition's own turn, that is not this broker, preferring one other
 * than `refused_by` (which just answered "not me"); that one when it is
 * the only one up, as it may lead by the time it is asked again.  0 when
 * none is up. */
int kq__fwd_pick(const int *replicas, size_t n, uint32_t part, int self,
		 int refused_by, int (*up)(void *ctx, int id), void *ctx);
/* Sends a partition's batch to its leader; takes the batch. */
void kq__fwd_publish(struct kq_broker *b, struct kq__partition *p,
		     struct kq__batch *bt);
/* b->fwd_timer: sends what waits for a leader, fails what timed out. */
void kq__fwd_on_timer(uv_timer_t *tm);
/* Whether a forwarded request awaits its answer (the stop waits). */
int kq__fwd_busy(const struct kq_broker *b);
/* At a stop: fails what waits for a leader. */
void kq__fwd_stop(struct kq_broker *b);

/* The kind byte of a forwarded request. */
enum {
	KQ__FWD_CREATE = 1,
	KQ__FWD_PUBLISH = 2,
	KQ__FWD_META = 3,
	KQ__FWD_FETCH = 4
};

/* fetch.c: reads of partitions this broker holds no replica of, from a
 * broker that holds one. */
struct kq__fetch;
struct kq__seeking;
/* Committed records of a read, as one broker answered it: taken with
 * kq__chunk_take(), then `status` (0, or the error that ends the read,
 * with errmsg) holds. */
struct kq__chunk {
	int status;
	char errmsg[256];
	uint64_t from; /* the offset the read asked from */
	uint64_t next; /* where the next read starts */
	uint64_t end;  /* the bound of the read */
	uint32_t left; /* records not yet taken */
	struct kq_reader r;
	uint8_t data[];
};
/* Takes the chunk (the reader frees it with kq__chunk_free); a failure
 * comes as a chunk whose status is negative. */
typedef void (*kq__fetch_cb)(void *ctx, struct kq__chunk *ch);
/* Reads t's partition `part` from `from` up to `end` (cut to what is
 * committed where it is read), about `budget` bytes and at most `max`
 * messages (0: no bound), from a broker holding a replica.  cb runs once,
 * from a later loop turn, unless the read is canceled first; the fetch
 * is freed before cb runs.  Returns 0 or -ENOMEM (cb never runs). */
int kq__fetch_start(struct kq_broker *b, struct kq__topic *t, uint32_t part,
		    uint64_t from, uint64_t end, size_t budget, uint32_t max,
		    kq__fetch_cb cb, void *ctx, struct kq__fetch **out);
/* cb will not run; f is freed now or when its call ends. */
void kq__fetch_cancel(struct kq__fetch *f);
/* b->fetch_timer: asks again what waits, fails what timed out. */
void kq__fetch_on_timer(uv_timer_t *tm);
/* At a stop: fails the reads that wait. */
void kq__fetch_stop(struct kq_broker *b);
/* bounds.c: the range of p a read from *pos up to *end may return here: *pos is
 * raised to the first offset retention kept, *end cut to the commit end
 * and to the first range lost to damage.  Fails (errmsg filled) when
 * *pos is in a lost range. */
int kq__read_bounds(struct kq_broker *b, const struct kq__partition *p,
		    uint64_t *pos, uint64_t *end, char *errmsg, size_t errlen);
/* The next record of the chunk into rec (borrowed from the chunk): 1, or
 * 0 when none is left. */
int kq__chunk_take(struct kq__chunk *ch, struct kq_record *rec);
void kq__chunk_free(struct kq__chunk *ch);

/* consume.c, commit.c and query.c: the read side of kq__broker_api. */
int kq__consume_open(struct kq_session *s, struct kq_consume *c,
		     const char *topic, uint64_t sub_id, int64_t from,
		     uint64_t max, char *errmsg, size_t errlen);
int kq__consume_next(struct kq_consume *c, size_t budget, kq_message_cb cb,
		     void *ctx, char *errmsg, size_t errlen);
uint64_t kq__consume_close(struct kq_consume *c);

/* commit.c: committed offsets of groups.  The subscription sub_id on
 * `topic`, or an error with errmsg filled. */
int kq__member_find(struct kq_broker *b, const char *topic, uint64_t sub_id,
		    struct kq__member **out, char *errmsg, size_t errlen);
/* Commits what m was handed and has not acknowledged (CONS asking for
 * more); a failure to store it is logged, and the batch comes again. */
void kq__commit_acknowledge(struct kq_broker *b, struct kq__member *m);
/* At a stop: CMITs waiting for a partition's end from another broker are
 * answered now, ERR UNAVAILABLE. */
void kq__commit_stop(struct kq_broker *b);
int kq__commit(struct kq_session *s, struct kq_req *req, const char *topic,
	       uint64_t sub_id, int64_t partition, uint64_t offset,
	       kq_req_cb cb);
/* query.c */
int kq__list_topics(struct kq_broker *b,
		    void (*cb)(void *ctx, const char *name, uint32_t n),
		    void *ctx);
int kq__describe(struct kq_broker *b, const char *topic,
		 void (*cb)(void *ctx, const struct kq_partition_info *p),
		 void *ctx, char *errmsg, size_t errlen);
int kq__assignment(struct kq_broker *b, const char *topic, uint64_t sub_id,
		   void (*cb)(void *ctx, uint32_t partition), void *ctx,
		   char *errmsg, size_t errlen);
int kq__groups(struct kq_broker *b, const char *topic,
	       void (*cb)(void *ctx, const char *group, uint64_t sub_id,
			  const uint32_t *parts, uint32_t nparts),
	       void *ctx, char *errmsg, size_t errlen);
int kq__brokers(struct kq_broker *b,
		void (*cb)(void *ctx, const struct kq_broker_info *bi),
		void *ctx);

#endif /* KQ_CORE_BROKER_H */
