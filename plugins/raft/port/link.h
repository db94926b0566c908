/* The cluster port's connections (link.c), shared with the port's other
 * files: cluster.c (what is sent, liveness, the port's life) and
 * peers.c (the cluster section).  Internal to the module. */
#ifndef KQ_RAFT_LINK_H
#define KQ_RAFT_LINK_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include <kafkaesque/ratelimit.h>

#include "auth.h"
#include "cluster.h"
#include "frame.h"

/* Output bytes queued per connection beyond which messages are dropped:
 * Raft resends what it misses, and a stalled peer must not eat memory.
 * Replies (answers to a peer's requests) are not counted in it. */
#define QUEUE_MAX (32u << 20)
/* Bytes of replies queued per connection, on top of QUEUE_MAX: an answer
 * is never refused for Raft's traffic (the peer would wait for it until
 * its deadline, though its request may have run), only when the peer
 * leaves this much of them unread. */
#define REPLY_MAX (16u << 20)
/* Items per coalesced heartbeat frame, well below KQ__FRAME_MAX. */
#define HB_PER_FRAME   65536
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
/* Receive buffer of a connection not yet authenticated: its hello and
 * AUTH fit, nothing bigger is ever buffered for a stranger. */
#define PREAUTH_BUF (2 * (KQ__FRAME_HEAD + KQ__FRAME_PREAUTH_MAX))
/* Each kind of refusal logs a burst of LOG_BURST lines at most, then one
 * per LOG_EVERY_MS, so that a flood of connections cannot flood the log
 * while a single refusal is always logged. */
#define LOG_EVERY_MS 1000
#define LOG_BURST    5

/* Frames a connection hands up in one loop turn at most: a message may
 * be an append to a partition's log (past segment.open_files a reopen
 * of its file), on the loop thread, and a leader's turn may send one to
 * thousands of partitions.  The rest stay buffered, the socket unread,
 * until the next turn. */
#define TURN_FRAMES 256

struct peer;

struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct kq__cluster *c;
	struct peer *peer; /* NULL on an accepted one until authenticated */
	int dialed;	   /* we dialed it (else accepted) */
	int inbound;	   /* counted in c->n_inbound */
	int authed;	   /* the handshake succeeded */
	int closing;
	struct kq__auth auth;
	uint64_t since_ms;		/* when it was created */
	struct sockaddr_storage remote; /* accepted ones: the other end */
	char remote_text[64];		/* "address:port", for log lines */
	uint8_t *buf;			/* received bytes not yet parsed */
	size_t len, cap;
	size_t queued;	/* bytes held or handed to uv_write, not yet done */
	size_t replies; /* of which replies (REPLY_MAX) */
	/* Frames held for one write at the loop turn's end, in order. */
	struct wreq *out, **out_tail;
	unsigned turn_frames; /* handed up this turn (TURN_FRAMES) */
	int paused;	      /* reading stopped until the next turn */
	struct conn *prev, *next;
};

struct peer {
	struct kq__cluster *c;
	int id;
	const char *host; /* borrowed from host->cluster */
	int port;	  /* its cluster port */
	struct sockaddr_storage addr;
	int dials;	   /* this broker dials it (lower id dials) */
	struct conn *conn; /* the established or dialing connection */
	uv_timer_t retry;
	int retry_init; /* retry is an initialised handle */
	unsigned backoff_ms;
	uint64_t last_rx_ms;
	uint64_t last_tx_tick;
	uint64_t conn_seq;	 /* numbers its connections, for replies */
	struct kq__frame_hb *hb; /* heartbeats waiting for the flush */
	size_t n_hb, cap_hb;
};

struct kq__cluster {
	const struct kq_host *host;
	struct kq__cluster_setup cfg;
	int self;
	struct kq__auth_key *key; /* NULL: no secret, open mode */
	unsigned auth_timeout_ms;
	unsigned max_conns;	     /* accepted connections in all */
	unsigned max_conns_per_addr; /* accepted ones from one address */
	unsigned n_inbound;	     /* accepted and not closing */
	struct kq_ratelimit rl_cap, rl_auth, rl_deadline, rl_twin;
	uv_tcp_t listener;
	int listening;
	struct peer *peers;
	size_t n_peers;
	struct conn *conns;
	int handles; /* handles initialised and not yet closed */
	int closed;
	uint64_t ticks;
	uint64_t dropped; /* messages dropped, for debug lines */
	uint64_t writes;  /* writes of held frames, one per connection a turn */
	/* Writes every connection's held frames before the loop polls, so
	 * that the frames of one turn leave in one write per peer. */
	uv_prepare_t flush;
	int flush_init;
	/* Starts each turn's frame budgets, and goes on with connections
	 * that used theirs; active while a connection read this turn. */
	uv_idle_t resume;
	/* For the tests: connections paused at their budget. */
	uint64_t pauses;
	uint64_t unknown;
	/* Set by cluster.c: a read's frames were handed up, so the
	 * heartbeat answers they made leave together. */
	void (*read_done)(struct kq__cluster *c);
};

struct wreq {
	struct wreq *next; /* held after it on its connection */
	size_t len;
	int reply; /* counted in conn->replies */
	uint8_t data[];
};

/* Logs a line of `r`'s kind, at most LOG_BURST at once and then one per
 * LOG_EVERY_MS; the next line logged counts those held back. */
void kq__link_rlog(struct kq__cluster *c, struct kq_ratelimit *r,
		   enum kq_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Closes a connection; a dialer tries again after its backoff. */
void kq__link_close(struct conn *cn);

/* Closes the connections that did not authenticate in time: a stranger
 * holds a slot for auth_timeout_ms at most, and a dial that hangs is
 * tried again.  Called every tick. */
void kq__link_check_deadlines(struct kq__cluster *c);

/* A frame buffer of `len` bytes to fill and pass to kq__link_write();
 * NULL when the connection's queue (QUEUE_MAX, replies left out) is full
 * or memory is short. */
struct wreq *kq__link_wreq(struct conn *cn, size_t len);
/* The same for a REPLY frame, within REPLY_MAX instead. */
struct wreq *kq__link_reply_wreq(struct conn *cn, size_t len);

/* Hands w (owned from here on) to the connection's socket: held until
 * the loop is about to poll, then written with the others held. */
void kq__link_write(struct conn *cn, struct wreq *w);

/* Writes every connection's held frames now. */
void kq__link_flush(struct kq__cluster *c);

/* Initialises c->flush (counted in c->handles). */
void kq__link_flush_init(struct kq__cluster *c);

/* The configured peer with this id, or NULL. */
struct peer *kq__link_peer(const struct kq__cluster *c, uint64_t id);

/* Who the other end of a connection is, for log lines before it proved
 * anything. */
void kq__link_describe(const struct conn *cn, char *out, size_t len);

/* Dials peer p unless connected or closed; retried with a backoff. */
void kq__link_dial(struct peer *p);

/* The listener's connection callback (c->listener.data is c). */
void kq__link_on_connection(uv_stream_t *server, int status);

/* Whether two addresses are the same host (the port is not compared). */
int kq__link_same_address(const struct sockaddr_storage *a,
			  const struct sockaddr_storage *b);

/* Close callback of the port's own handles (data is the cluster). */
void kq__link_handle_closed(uv_handle_t *h);

/* peers.c: the cluster section. */

/* Reads cluster.peers into c->peers; *listen_port gets this broker's
 * raft port.  Errors are logged (KQ_ECONFIG). */
int kq__peers_read(struct kq__cluster *c, int *listen_port);

/* Resolves host:port into *out; 0 or -1. */
int kq__peers_resolve(const char *host, int port, struct sockaddr_storage *out);

/* Reads the handshake's settings and the secret (see cluster.h). */
int kq__peers_read_auth(struct kq__cluster *c, const char *listen_host,
			int port);

/* Warns when cluster.max_connections_per_address is below the number of
 * peers at one address that dial here. */
void kq__peers_check_address_cap(struct kq__cluster *c);

#endif /* KQ_RAFT_LINK_H */
