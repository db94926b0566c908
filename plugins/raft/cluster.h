/* The cluster port: one TCP connection per pair of brokers carrying the
 * Raft messages of every group, heartbeats coalesced per tick.  The lower
 * broker id dials, the higher accepts; both open with a handshake (auth.h)
 * that, with a cluster secret, proves each end holds it before any frame
 * reaches Raft.  Connections not yet authenticated are capped in frame
 * size, number (in all and per address) and time. */
#ifndef KQ_RAFT_CLUSTER_H
#define KQ_RAFT_CLUSTER_H

#include <kafkaesque/plugin.h>

#include "raft.h"

struct kq__cluster;

/* Called for every message received for a group; `m` and its payloads
 * are borrowed for the call. */
typedef void (*kq__cluster_deliver_fn)(void *ctx, uint64_t group,
				       const struct kq__raft_msg *m);

struct kq__cluster_config {
	unsigned tick_ms;
	unsigned election_ticks;
	unsigned heartbeat_ticks;
	kq__cluster_deliver_fn deliver;
	void *ctx;
};

/* Reads host->cluster (peers, secret_file, auth_timeout_ms,
 * max_connections, max_connections_per_address), resolves the peers, reads
 * the secret (only the derived key is kept, owned by the cluster and wiped
 * when it is freed; without a secret it logs one warning that the port is
 * open), starts listening on this broker's raft port and dials the peers
 * with higher ids.  Without a "cluster" section or peers it does nothing
 * but answer peer_up for its own id.  Errors are logged as one line each
 * (KQ_ECONFIG, or the listen error).  On success *out is owned by the caller: close it with
 * kq__cluster_close() and free it with kq__cluster_free() once
 * kq__cluster_handles() is 0. */
int kq__cluster_new(const struct kq_host *host,
		    const struct kq__cluster_config *cfg,
		    struct kq__cluster **out);

/* Queues a message (borrowed; copied into the frame) for its `to`
 * broker.  Dropped when that broker is not connected or its output queue
 * is full: Raft retries.  Heartbeats wait for the next flush. */
void kq__cluster_send(struct kq__cluster *c, uint64_t group,
		      const struct kq__raft_msg *m);

/* Once per tick: sends the coalesced heartbeats (or a keepalive) to every
 * connected peer. */
void kq__cluster_tick(struct kq__cluster *c);

/* 1 when `id` is this broker, or connected (handshake done) with a frame
 * received within the last three election timeouts; 0 otherwise. */
int kq__cluster_peer_up(const struct kq__cluster *c, int id);

/* Closes the listener, every connection and timer.  Nothing is sent or
 * received afterwards. */
void kq__cluster_close(struct kq__cluster *c);

/* libuv handles of the cluster not yet fully closed. */
int kq__cluster_handles(const struct kq__cluster *c);

/* Frees the cluster; only once kq__cluster_handles() is 0. */
void kq__cluster_free(struct kq__cluster *c);

#endif /* KQ_RAFT_CLUSTER_H */
