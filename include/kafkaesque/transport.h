/* kafkaesque plugin SDK: transport modules and the broker API.
 *
 * A transport owns its listening sockets, parses its protocol and writes
 * answers.  Everything a command means (names, partitions, groups,
 * assignment, offsets, durability) lives behind struct kq_broker_api, so a
 * second transport is only a parser and a writer.
 *
 * Asynchronous calls follow libuv's rules: the request is caller-owned and
 * must stay valid until its callback runs; the callback runs exactly once,
 * on the loop thread, and never when the call itself returns an error. */
#ifndef KAFKAESQUE_TRANSPORT_H
#define KAFKAESQUE_TRANSPORT_H

#include "plugin.h"

struct kq_session; /* one client connection, owned by the broker */

enum kq_req_type {
	KQ_REQ_CREATE_TOPIC = 1,
	KQ_REQ_PUBLISH,
	KQ_REQ_SUBSCRIBE,
	KQ_REQ_UNSUBSCRIBE,
	KQ_REQ_COMMIT,
};

struct kq_req;
/* status is 0 or a negative error; on error req->errmsg says why. */
typedef void (*kq_req_cb)(struct kq_req *req, int status);

/* The broker's own fields of a request, named so that no slot is used by
 * number.  A transport never reads or writes them. */
struct kq_req_private {
	struct kq_req *wait_next; /* a SUBS waiting for subscription ids */
	void *wait_args;	  /* and what it asked */
	struct kq_req *done_next; /* an answer queued for the turn's end */
	int done_status;	  /* and its status */
};

/* A request to the broker.  Caller-owned.  After the callback, release
 * what the result holds with api->req_cleanup(). */
struct kq_req {
	void *data;	       /* for the caller */
	enum kq_req_type type; /* set by the call */
	char errmsg[256];      /* human text of a failure ("" if none) */
	union {
		struct {
			uint32_t partitions;
		} create_topic;
		struct {
			uint32_t partition;
			uint64_t offset;
		} publish;
		struct {
			uint64_t sub_id;
			uint32_t nparts;
			uint32_t *parts; /* increasing; host-allocated */
		} subscribe;
		struct {
			uint32_t changed; /* partitions whose committed
					   * offset changed */
		} commit;
	} result;
	/* private to the broker */
	kq_req_cb cb;
	struct kq_session *session;
	struct kq_req_private priv;
};

/* What CRTP asks for.  Borrowed for the duration of the call. */
struct kq_topic_spec {
	const char *name;
	uint32_t partitions;	    /* 0: the configured default */
	const char *const *options; /* "key=value" words, validated by the
				     * broker (replicas, partitioner,
				     * retention.ms, retention.bytes) */
	size_t noptions;
};

/* One partition of DESC. */
struct kq_partition_info {
	uint32_t partition;
	int leader; /* broker id, 0 when none */
	const int *replicas;
	size_t nreplicas;
	uint64_t start; /* first readable offset */
	uint64_t end;	/* next offset */
	int error;	/* why this broker's replica cannot be opened (it is
			 * retried), 0 when it is fine */
};

/* One broker of STAT. */
struct kq_broker_info {
	int id;
	const char *host; /* client address; NULL with port 0 for a
			   * standalone broker, whose address is the asking
			   * transport's own */
	int port;
	int up;
	int meta_leader;
	uint32_t leads; /* partitions it leads, among those this broker
			 * holds a replica of (their leader is known here) */
};

/* A consumed message, borrowed for the callback. */
struct kq_message {
	uint32_t partition;
	uint64_t offset;
	const void *data;
	size_t len;
};
typedef int (*kq_message_cb)(void *ctx, const struct kq_message *msg);

/* The broker's own fields of a read. */
struct kq_consume_private {
	void *cursor;
};

/* A CONS read in progress.  Caller-owned storage for the broker's cursor;
 * valid from consume_open() until consume_close(). */
struct kq_consume {
	void *data; /* for the caller */
	/* Set by the caller before consume_open(): the broker calls it, on
	 * the loop thread and never from within one of its calls, when a
	 * consume_next() that answered KQ_CONSUME_WAIT can go on.  NULL: the
	 * read covers only partitions this broker holds a replica of. */
	void (*wake)(struct kq_consume *c);
	struct kq_consume_private priv; /* the broker's; never touched by
					 * the caller */
};

/* consume_next(): records are on their way from another broker. */
#define KQ_CONSUME_WAIT 2

struct kq_broker_api {
	/* A session per client connection.  Closing one ends its
	 * subscriptions (partitions are reassigned).  Requests in flight
	 * still complete; the transport frees its connection after the last
	 * callback. */
	int (*session_open)(struct kq_broker *b, struct kq_session **out);
	void (*session_close)(struct kq_session *s);

	int (*create_topic)(struct kq_session *s, struct kq_req *req,
			    const struct kq_topic_spec *spec, kq_req_cb cb);
	/* Publishes `len` bytes (copied during the call).  Answered once the
	 * message is durable by the configured policy and committed. */
	int (*publish)(struct kq_session *s, struct kq_req *req,
		       const char *topic, const void *msg, size_t len,
		       kq_req_cb cb);
	/* Joins `group` on `topic`; cap 0 means no cap. */
	int (*subscribe)(struct kq_session *s, struct kq_req *req,
			 const char *topic, const char *group, uint32_t cap,
			 kq_req_cb cb);
	int (*unsubscribe)(struct kq_session *s, struct kq_req *req,
			   const char *topic, uint64_t sub_id, kq_req_cb cb);
	/* Releases what a completed request's result holds. */
	void (*req_cleanup)(struct kq_req *req);

	/* Starts a CONS.  from < 0: the group's committed offsets, which
	 * advance past what is delivered.  max 0: no limit.  On error errmsg
	 * (errlen bytes) says why and nothing needs closing. */
	int (*consume_open)(struct kq_session *s, struct kq_consume *c,
			    const char *topic, uint64_t sub_id, int64_t from,
			    uint64_t max, char *errmsg, size_t errlen);
	/* Delivers messages to cb until `budget` is used up, counting each
	 * message's length plus 32 bytes for its framing, or until cb
	 * returns non-zero (that message counts as delivered; delivery stops
	 * after it).  Returns 1 when more remain, 0 when done, a negative
	 * error (errmsg filled; the messages delivered before count), or
	 * KQ_CONSUME_WAIT when the next records are read from another
	 * broker, or (with c->wake set) when the read has looked at many
	 * partitions and lets the loop serve others first; c->wake() then
	 * comes on a later loop turn.  Call again once the transport drained
	 * its output, or after c->wake() for KQ_CONSUME_WAIT. */
	int (*consume_next)(struct kq_consume *c, size_t budget,
			    kq_message_cb cb, void *ctx, char *errmsg,
			    size_t errlen);
	/* Ends the read and returns the messages delivered.  A read from the
	 * group's committed offsets (from < 0) commits nothing yet: what it
	 * handed out is acknowledged by the next such read on the same
	 * subscription (which first commits it) or by commit(), and goes to
	 * the group's next reader when the subscription ends before that. */
	uint64_t (*consume_close)(struct kq_consume *c);
	/* partition < 0: commits for the group what subscription sub_id was
	 * handed out and has not acknowledged.  Otherwise sets the group's
	 * committed offset of `partition`, which the subscription must hold,
	 * to `offset` (at most the partition's end, asked of a broker
	 * holding it when this one does not): a way past a damaged record,
	 * or back.  Completes once what changed is stored in the metadata
	 * log (at once when nothing changed), with result.commit.changed
	 * the number of partitions whose committed offset changed. */
	int (*commit)(struct kq_session *s, struct kq_req *req,
		      const char *topic, uint64_t sub_id, int64_t partition,
		      uint64_t offset, kq_req_cb cb);

	/* Queries, answered from this broker's view right away.  Each calls
	 * cb per item and returns the count, or a negative error with errmsg
	 * filled. */
	int (*list_topics)(struct kq_broker *b,
			   void (*cb)(void *ctx, const char *name,
				      uint32_t partitions),
			   void *ctx);
	int (*describe)(struct kq_broker *b, const char *topic,
			void (*cb)(void *ctx,
				   const struct kq_partition_info *p),
			void *ctx, char *errmsg, size_t errlen);
	/* The subscription's partitions in increasing order. */
	int (*assignment)(struct kq_broker *b, const char *topic,
			  uint64_t sub_id,
			  void (*cb)(void *ctx, uint32_t partition), void *ctx,
			  char *errmsg, size_t errlen);
	/* One call per member of every group on the topic. */
	int (*groups)(struct kq_broker *b, const char *topic,
		      void (*cb)(void *ctx, const char *group, uint64_t sub_id,
				 const uint32_t *parts, uint32_t nparts),
		      void *ctx, char *errmsg, size_t errlen);
	/* One call per configured broker; returns this broker's id. */
	int (*brokers)(struct kq_broker *b,
		       void (*cb)(void *ctx, const struct kq_broker_info *bi),
		       void *ctx);
};

/* init reads host->config and does not listen yet. */
struct kq_transport_ops {
	KQ_MODULE_OPS_FIELDS
	/* Binds and starts accepting; errors name the address. */
	int (*start)(void *state);
	/* Stops accepting, lets answers in flight be written, closes every
	 * handle, then calls done (on the loop thread). */
	void (*stop)(void *state, void (*done)(void *ctx), void *ctx);
};

#endif /* KAFKAESQUE_TRANSPORT_H */
