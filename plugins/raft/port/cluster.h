/* The cluster port: one TCP connection per pair of brokers carrying the
 * Raft messages of every group, heartbeats coalesced per tick.  The lower
 * broker id dials, the higher accepts; both open with a handshake (auth.h)
 * that, with a cluster secret, proves each end holds it before any frame
 * reaches Raft.  Connections not yet authenticated are capped in frame
 * size, number (in all and per address) and time. */
#ifndef KQ_RAFT_CLUSTER_H
#define KQ_RAFT_CLUSTER_H

#include <kafkaesque/plugin.h>

#include "../core/raft.h"

struct kq__cluster;

/* Called for every message received for a group; `m` and its payloads
 * are borrowed for the call. */
typedef void (*kq__cluster_deliver_fn)(void *ctx, uint64_t group,
				       const struct kq__raft_msg *m);

/* A CALL frame from broker `from` over its connection number `conn`
 * (for the reply), or a REPLY frame; `body` is borrowed for the call. */
typedef void (*kq__cluster_call_fn)(void *ctx, int from, uint64_t conn,
				    uint64_t id, const uint8_t *body,
				    size_t len);
typedef void (*kq__cluster_reply_fn)(void *ctx, int from, uint64_t id,
				     const uint8_t *body, size_t len);
/* The connection to broker `id` closed: its calls get no reply. */
typedef void (*kq__cluster_down_fn)(void *ctx, int id);

/* What the adapter sets the port up with: its timing and the callbacks
 * through which frames and closed connections come back up (not the
 * cluster section, which is host->cluster). */
struct kq__cluster_setup {
	unsigned tick_ms;
	unsigned election_ticks;
	unsigned heartbeat_ticks;
	kq__cluster_deliver_fn deliver;
	kq__cluster_call_fn on_call;
	kq__cluster_reply_fn on_reply;
	kq__cluster_down_fn on_down;
	void *ctx;
};

/* Reads host->cluster (peers, secret_file, auth_timeout_ms,
 * max_connections, max_connections_per_address), resolves the peers, reads
 * the secret (only the derived key is kept, owned by the cluster and wiped
 * when it is freed; without a secret it logs one warning that the port is
 * open), starts listening on this broker's raft port and dials the peers
 * with higher ids.  Without a "cluster" section or peers it does nothing
 * but answer peer_up for its own id.  Errors are logged as one line each
 * (KQ_ECONFIG, or the listen error).  On success *out is owned by the caller:
 * close it with kq__cluster_close() and free it with kq__cluster_free() once
 * kq__cluster_handles() is 0. */
int kq__cluster_new(const struct kq_host *host,
		    const struct kq__cluster_setup *cfg,
		    struct kq__cluster **out);

/* Queues a message (borrowed; copied into the frame) for its `to`
 * broker.  Dropped when that broker is not connected or its output queue
 * is full: Raft retries.  Heartbeats wait for the next flush. */
void kq__cluster_send(struct kq__cluster *c, uint64_t group,
		      const struct kq__raft_msg *m);

/* Queues a CALL frame (`len` body bytes, borrowed, copied) for broker
 * `to`.  Returns 0, KQ_EUNAVAILABLE when `to` is not connected (or is
 * this broker), KQ_EBUSY when Raft's messages and requests fill half of
 * its output queue (16 MiB), or -E2BIG when the frame alone would. */
int kq__cluster_call(struct kq__cluster *c, int to, uint64_t id,
		     const void *body, size_t len);

/* Queues a REPLY frame on connection number `conn` of broker `to`; dropped
 * when that connection closed since the call came (the caller gives up on
 * it) or 16 MiB of replies wait unsent on it already.  Replies have that
 * bound of their own: Raft's messages and requests never crowd them out. */
void kq__cluster_reply(struct kq__cluster *c, int to, uint64_t conn,
		       uint64_t id, const void *body, size_t len);

/* Once per tick: sends the coalesced heartbeats (or a keepalive) to every
 * connected peer. */
void kq__cluster_tick(struct kq__cluster *c);

/* 1 when `id` is this broker, or connected (handshake done) with a frame
 * received within the last three election timeouts; 0 otherwise. */
int kq__cluster_peer_up(const struct kq__cluster *c, int id);
/* Whether broker id is connected and sent a frame (keepalives go every
 * heartbeat interval) within the last window_ms; 1 for this broker. */
int kq__cluster_peer_heard(const struct kq__cluster *c, int id,
			   uint64_t window_ms);
/* Bit i set when the i-th configured peer (the first 64) was heard
 * within window_ms. */
uint64_t kq__cluster_heard_mask(const struct kq__cluster *c,
				uint64_t window_ms);

/* Writes now the frames held for the end of this loop turn (sends are
 * held so that a turn's frames to a peer leave in one write): what was
 * sent before an answer to a client leaves before it. */
void kq__cluster_flush(struct kq__cluster *c);

/* Closes the listener, every connection and timer.  Nothing is sent or
 * received afterwards. */
void kq__cluster_close(struct kq__cluster *c);

/* libuv handles of the cluster not yet fully closed. */
int kq__cluster_handles(const struct kq__cluster *c);

/* Frees the cluster; only once kq__cluster_handles() is 0. */
void kq__cluster_free(struct kq__cluster *c);

#endif /* KQ_RAFT_CLUSTER_H */
