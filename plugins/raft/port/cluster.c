/* The cluster port over libuv TCP: its life (new, close, free), what it
 * sends (Raft messages, heartbeats coalesced per tick and per peer,
 * calls and replies) and whom it has heard.  The connections themselves
 * are link.c's; the cluster section is read by peers.c. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <kafkaesque/error.h>
#include <kafkaesque/list.h>

#include "link.h"

static struct conn *peer_conn(struct kq__cluster *c, uint64_t id)
{
	struct peer *p = kq__link_peer(c, id);

	if (!p || !p->conn || !p->conn->authed || p->conn->closing)
		return NULL;
	return p->conn;
}

void kq__cluster_send(struct kq__cluster *c, uint64_t group,
		      const struct kq__raft_msg *m)
{
	struct conn *cn;
	struct wreq *w;
	size_t size;

	if (c->closed)
		return;
	cn = peer_conn(c, m->to);
	if (!cn) {
		c->dropped++;
		return;
	}
	if (m->type == KQ__RAFT_MSG_HEARTBEAT ||
	    m->type == KQ__RAFT_MSG_HEARTBEAT_RESP) {
		struct peer *p = cn->peer;

		if (p->n_hb == p->cap_hb) {
			size_t cap = p->cap_hb ? p->cap_hb * 2 : 64;
			struct kq__frame_hb *nb =
				realloc(p->hb, cap * sizeof(*nb));

			if (!nb) {
				c->dropped++;
				return;
			}
			p->hb = nb;
			p->cap_hb = cap;
		}
		p->hb[p->n_hb++] = (struct kq__frame_hb){
			.group = group,
			.type = m->type,
			.quiet = m->quiet,
			.term = m->term,
			.commit = m->commit,
		};
		return;
	}
	size = kq__frame_msg_size(m);
	w = size == SIZE_MAX ? NULL : kq__link_wreq(cn, size);
	if (!w) {
		c->dropped++;
		c->host->log(c->host, KQ_LOG_DEBUG,
			     "cluster: broker %d: dropped a %s of group %llu",
			     cn->peer->id, kq__raft_msg_name(m->type),
			     (unsigned long long)group);
		return;
	}
	kq__frame_put_msg(w->data, group, m);
	kq__link_write(cn, w);
}

/* Requests go while Raft's messages and requests fill at most half of a
 * connection's output queue, so that Raft's own messages always find
 * room.  Replies have a bound of their own (REPLY_MAX): the Raft traffic
 * of the very requests answered must not crowd out their answers. */
static int put_call(struct conn *cn, enum kq__frame_type type, uint64_t id,
		    const void *body, size_t len)
{
	size_t size = kq__frame_call_size(len);
	struct wreq *w;

	if (size == SIZE_MAX || size > QUEUE_MAX / 2)
		return -E2BIG;
	if (type == KQ__FRAME_REPLY)
		w = kq__link_reply_wreq(cn, size);
	else if (cn->queued - cn->replies + size > QUEUE_MAX / 2)
		return KQ_EBUSY;
	else
		w = kq__link_wreq(cn, size);
	if (!w)
		return KQ_EBUSY;
	kq__frame_put_call(w->data, type, id, body, len);
	kq__link_write(cn, w);
	return 0;
}

int kq__cluster_call(struct kq__cluster *c, int to, uint64_t id,
		     const void *body, size_t len)
{
	struct conn *cn;

	if (c->closed || to == c->self)
		return KQ_EUNAVAILABLE;
	cn = peer_conn(c, (uint64_t)to);
	if (!cn)
		return KQ_EUNAVAILABLE;
	return put_call(cn, KQ__FRAME_CALL, id, body, len);
}

void kq__cluster_reply(struct kq__cluster *c, int to, uint64_t conn,
		       uint64_t id, const void *body, size_t len)
{
	struct conn *cn;

	if (c->closed)
		return;
	cn = peer_conn(c, (uint64_t)to);
	if (!cn || cn->peer->conn_seq != conn ||
	    put_call(cn, KQ__FRAME_REPLY, id, body, len) != 0)
		c->dropped++;
}

/* Sends the heartbeats waiting for a peer in as few frames as fit; with
 * `keepalive`, an empty frame when none wait. */
static void flush_peer(struct kq__cluster *c, struct peer *p, int keepalive)
{
	struct conn *cn = p->conn;
	size_t done = 0;

	if (!cn || !cn->authed || cn->closing) {
		p->n_hb = 0;
		return;
	}
	if (!p->n_hb && !keepalive)
		return;
	do {
		uint32_t n = (uint32_t)(p->n_hb - done > HB_PER_FRAME
						? HB_PER_FRAME
						: p->n_hb - done);
		struct wreq *w = kq__link_wreq(cn, kq__frame_hb_size(n));

		if (!w) {
			c->dropped += p->n_hb - done;
			break;
		}
		kq__frame_put_hb(w->data, (uint64_t)c->self, (uint64_t)p->id,
				 p->hb + done, n);
		kq__link_write(cn, w);
		done += n;
	} while (done < p->n_hb && !cn->closing);
	p->n_hb = 0;
}

static void flush_hb(struct kq__cluster *c)
{
	for (size_t i = 0; i < c->n_peers; i++)
		if (c->peers[i].n_hb)
			flush_peer(c, &c->peers[i], 0);
}

void kq__cluster_tick(struct kq__cluster *c)
{
	if (c->closed)
		return;
	c->ticks++;
	kq__link_check_deadlines(c);
	for (size_t i = 0; i < c->n_peers; i++) {
		struct peer *p = &c->peers[i];

		if (p->id == c->self)
			continue;
		/* Quiet pairs (two followers) still prove they are alive. */
		flush_peer(c, p,
			   c->ticks - p->last_tx_tick >=
				   c->cfg.heartbeat_ticks);
	}
}

uint64_t kq__cluster_heard_mask(const struct kq__cluster *c, uint64_t window_ms)
{
	uint64_t mask = 0;

	for (size_t i = 0; i < c->n_peers && i < 64; i++)
		if (kq__cluster_peer_heard(c, c->peers[i].id, window_ms))
			mask |= 1ull << i;
	return mask;
}

int kq__cluster_peer_heard(const struct kq__cluster *c, int id,
			   uint64_t window_ms)
{
	const struct peer *p;

	if (id == c->self)
		return 1;
	p = kq__link_peer(c, (uint64_t)id);
	if (!p || !p->conn || !p->conn->authed || p->conn->closing)
		return 0;
	return uv_now(c->host->loop) - p->last_rx_ms <= window_ms;
}

int kq__cluster_peer_up(const struct kq__cluster *c, int id)
{
	return kq__cluster_peer_heard(
		c, id, 3ull * c->cfg.election_ticks * c->cfg.tick_ms);
}

int kq__cluster_new(const struct kq_host *host,
		    const struct kq__cluster_setup *cfg,
		    struct kq__cluster **out)
{
	struct kq__cluster *c = calloc(1, sizeof(*c));
	struct sockaddr_storage addr;
	struct peer *own = NULL;
	int port, rv;

	if (!c)
		return -ENOMEM;
	c->host = host;
	c->cfg = *cfg;
	c->self = host->broker_id;
	c->read_done = flush_hb;
	*out = c;
	kq__link_flush_init(c);
	rv = kq__peers_read(c, &port);
	if (rv != 0)
		return rv;
	for (size_t i = 0; i < c->n_peers; i++) {
		struct peer *p = &c->peers[i];

		if (p->id == c->self) {
			own = p;
			continue;
		}
		if (kq__peers_resolve(p->host, p->port, &p->addr) != 0) {
			host->log(host, KQ_LOG_ERROR,
				  "cluster.peers: broker %d: cannot resolve "
				  "%s",
				  p->id, p->host);
			return KQ_ECONFIG;
		}
		uv_timer_init(host->loop, &p->retry);
		p->retry.data = p;
		p->retry_init = 1;
		c->handles++;
	}
	if (!own)
		return 0; /* standalone */
	if (kq__peers_resolve(own->host, port, &addr) != 0) {
		host->log(host, KQ_LOG_ERROR,
			  "cluster.peers: broker %d: cannot resolve %s",
			  own->id, own->host);
		return KQ_ECONFIG;
	}
	rv = kq__peers_read_auth(c, own->host, port);
	if (rv != 0)
		return rv;
	kq__peers_check_address_cap(c);
	uv_tcp_init(host->loop, &c->listener);
	c->listener.data = c;
	c->handles++;
	c->listening = 1;
	rv = uv_tcp_bind(&c->listener, (const struct sockaddr *)&addr, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&c->listener, 128,
			       kq__link_on_connection);
	if (rv != 0) {
		host->log(host, KQ_LOG_ERROR,
			  "cluster: cannot listen on %s:%d: %s", own->host,
			  port, uv_strerror(rv));
		return rv;
	}
	host->log(host, KQ_LOG_INFO, "cluster: listening on %s:%d", own->host,
		  port);
	for (size_t i = 0; i < c->n_peers; i++)
		if (c->peers[i].dials)
			kq__link_dial(&c->peers[i]);
	return 0;
}

void kq__cluster_close(struct kq__cluster *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	if (c->listening && !uv_is_closing((uv_handle_t *)&c->listener))
		uv_close((uv_handle_t *)&c->listener, kq__link_handle_closed);
	for (size_t i = 0; i < c->n_peers; i++) {
		struct peer *p = &c->peers[i];

		if (p->retry_init && !uv_is_closing((uv_handle_t *)&p->retry)) {
			p->retry.data = c;
			uv_close((uv_handle_t *)&p->retry,
				 kq__link_handle_closed);
		}
	}
	for (struct conn *cn = c->conns; cn; cn = cn->next)
		kq__link_close(cn);
	if (c->flush_init && !uv_is_closing((uv_handle_t *)&c->flush)) {
		uv_close((uv_handle_t *)&c->flush, kq__link_handle_closed);
		uv_close((uv_handle_t *)&c->resume, kq__link_handle_closed);
	}
	if (c->dropped)
		c->host->log(c->host, KQ_LOG_DEBUG,
			     "cluster: %llu message(s) dropped",
			     (unsigned long long)c->dropped);
}

void kq__cluster_flush(struct kq__cluster *c)
{
	if (!c->closed)
		kq__link_flush(c);
}

int kq__cluster_handles(const struct kq__cluster *c)
{
	return c->handles;
}

void kq__cluster_free(struct kq__cluster *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_peers; i++) {
		free(c->peers[i].hb);
	}
	free(c->peers);
	kq__auth_key_free(c->key);
	free(c);
}
