/* The cluster port over libuv TCP. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <kafkaesque/error.h>
#include <kafkaesque/list.h>

#include "auth.h"
#include "cluster.h"
#include "frame.h"

/* Output bytes queued per connection beyond which messages are dropped:
 * Raft resends what it misses, and a stalled peer must not eat memory. */
#define QUEUE_MAX (32u << 20)
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

/* Defaults of the cluster section's keys (docs/configuration.md). */
#define AUTH_TIMEOUT_MS_DEFAULT	     5000
#define MAX_CONNECTIONS_DEFAULT	     128
#define MAX_CONNECTIONS_PER_ADDR_DEF 16

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
	size_t queued; /* bytes handed to uv_write, not yet done */
	struct conn *prev, *next;
};

struct peer {
	struct kq__cluster *c;
	int id;
	char *host;
	int port;
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

/* A rate-limited log line (a token bucket counted in ms); the lines it
 * kept back are counted in the next one. */
struct ratelog {
	uint64_t budget_ms;
	uint64_t last_ms;
	uint64_t quiet;
};

struct kq__cluster {
	const struct kq_host *host;
	struct kq__cluster_config cfg;
	int self;
	struct kq__auth_key *key; /* NULL: no secret, open mode */
	unsigned auth_timeout_ms;
	unsigned max_conns;	     /* accepted connections in all */
	unsigned max_conns_per_addr; /* accepted ones from one address */
	unsigned n_inbound;	     /* accepted and not closing */
	struct ratelog rl_cap, rl_auth, rl_deadline;
	uv_tcp_t listener;
	int listening;
	struct peer *peers;
	size_t n_peers;
	struct conn *conns;
	int handles; /* handles initialised and not yet closed */
	int closed;
	uint64_t ticks;
	uint64_t dropped; /* messages dropped, for debug lines */
	uint64_t unknown;
};

struct wreq {
	uv_write_t req;
	struct conn *conn;
	size_t len;
	uint8_t data[];
};

static void on_handle_closed(uv_handle_t *h)
{
	struct kq__cluster *c = h->data;

	c->handles--;
}

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *cn = h->data;
	struct kq__cluster *c = cn->c;

	KQ_LIST_REMOVE(c->conns, cn);
	kq__auth_clear(&cn->auth);
	free(cn->buf);
	free(cn);
	c->handles--;
}

static void rlog(struct kq__cluster *c, struct ratelog *r,
		 enum kq_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void rlog(struct kq__cluster *c, struct ratelog *r,
		 enum kq_log_level level, const char *fmt, ...)
{
	uint64_t now = uv_now(c->host->loop);
	char line[512];
	va_list ap;

	r->budget_ms += now - r->last_ms;
	r->last_ms = now;
	if (r->budget_ms > LOG_BURST * LOG_EVERY_MS)
		r->budget_ms = LOG_BURST * LOG_EVERY_MS;
	if (r->budget_ms < LOG_EVERY_MS) {
		r->quiet++;
		return;
	}
	r->budget_ms -= LOG_EVERY_MS;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (r->quiet)
		c->host->log(c->host, level,
			     "%s (and %llu more like it not logged)", line,
			     (unsigned long long)r->quiet);
	else
		c->host->log(c->host, level, "%s", line);
	r->quiet = 0;
}

static void schedule_dial(struct peer *p);

/* Closes a connection; a dialer tries again after its backoff. */
static void conn_close(struct conn *cn)
{
	struct peer *p = cn->peer;

	if (cn->closing)
		return;
	cn->closing = 1;
	if (cn->inbound) {
		cn->inbound = 0;
		cn->c->n_inbound--;
	}
	uv_close((uv_handle_t *)&cn->tcp, on_conn_closed);
	if (p && p->conn == cn) {
		p->conn = NULL;
		p->n_hb = 0;
		if (p->dials)
			schedule_dial(p);
		if (cn->authed && p->c->cfg.on_down)
			p->c->cfg.on_down(p->c->cfg.ctx, p->id);
	}
}

static struct conn *conn_new(struct kq__cluster *c)
{
	struct conn *cn = calloc(1, sizeof(*cn));

	if (!cn)
		return NULL;
	if (uv_tcp_init(c->host->loop, &cn->tcp) != 0) {
		free(cn);
		return NULL;
	}
	c->handles++;
	cn->c = c;
	cn->tcp.data = cn;
	cn->since_ms = uv_now(c->host->loop);
	KQ_LIST_PUSH(c->conns, cn);
	return cn;
}

static void on_written(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct conn *cn = w->conn;

	cn->queued -= w->len;
	free(w);
	if (status < 0 && status != UV_ECANCELED && !cn->closing) {
		if (cn->peer)
			cn->c->host->log(cn->c->host, KQ_LOG_INFO,
					 "cluster: broker %d: write: %s",
					 cn->peer->id, uv_strerror(status));
		conn_close(cn);
	}
}

/* A frame buffer of `len` bytes to fill and pass to conn_write(); NULL
 * when the connection's queue is full or memory is short. */
static struct wreq *wreq_new(struct conn *cn, size_t len)
{
	struct wreq *w;

	if (cn->closing || cn->queued + len > QUEUE_MAX)
		return NULL;
	w = malloc(sizeof(*w) + len);
	if (!w)
		return NULL;
	w->conn = cn;
	w->len = len;
	return w;
}

static void conn_write(struct conn *cn, struct wreq *w)
{
	uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
	int rv;

	cn->queued += w->len;
	rv = uv_write(&w->req, (uv_stream_t *)&cn->tcp, &b, 1, on_written);
	if (rv != 0) {
		cn->queued -= w->len;
		free(w);
		conn_close(cn);
		return;
	}
	if (cn->peer)
		cn->peer->last_tx_tick = cn->c->ticks;
}

/* Sends what the handshake queued (our hello, our AUTH). */
static void send_handshake(struct conn *cn)
{
	struct wreq *w;

	if (!cn->auth.out_len)
		return;
	w = wreq_new(cn, cn->auth.out_len);
	if (!w) {
		conn_close(cn);
		return;
	}
	memcpy(w->data, cn->auth.out, cn->auth.out_len);
	cn->auth.out_len = 0;
	conn_write(cn, w);
}

static struct peer *peer_get(const struct kq__cluster *c, uint64_t id)
{
	for (size_t i = 0; i < c->n_peers; i++)
		if ((uint64_t)c->peers[i].id == id)
			return &c->peers[i];
	return NULL;
}

/* A frame that cannot be parsed after the handshake. */
static int bad_frame(struct conn *cn, const char *why)
{
	struct kq__cluster *c = cn->c;

	c->host->log(c->host, KQ_LOG_WARN,
		     "cluster: broker %d: bad frame (%s); closing the "
		     "connection",
		     cn->peer->id, why);
	conn_close(cn);
	return -1;
}

/* Who the other end of a connection is, for log lines before it proved
 * anything. */
static void describe(const struct conn *cn, char *out, size_t len)
{
	if (cn->dialed)
		snprintf(out, len, "broker %d", cn->peer->id);
	else if (cn->auth.peer)
		snprintf(out, len, "connection from %s (says broker %d)",
			 cn->remote_text, cn->auth.peer);
	else
		snprintf(out, len, "connection from %s", cn->remote_text);
}

/* The handshake failed: one (rate-limited) line, the connection closes
 * and nothing else changes. */
static void handshake_failed(struct conn *cn, int rv, const char *why)
{
	struct kq__cluster *c = cn->c;
	char who[128];

	describe(cn, who, sizeof(who));
	rlog(c, &c->rl_auth, rv == KQ_ECORRUPT ? KQ_LOG_INFO : KQ_LOG_WARN,
	     "cluster: %s: %s%s; closed", who,
	     rv == KQ_ECORRUPT ? "bad frame before authentication: " : "", why);
	conn_close(cn);
}

/* The handshake succeeded: only now may the connection replace an older
 * one of the same broker, and its frames reach Raft. */
static void established(struct conn *cn)
{
	struct kq__cluster *c = cn->c;
	struct peer *p = cn->peer;

	if (!cn->dialed) {
		p = peer_get(c, (uint64_t)cn->auth.peer);
		/* A dialer that reconnects replaces its old connection,
		 * which may not have noticed yet that the other end died. */
		if (p->conn && p->conn != cn)
			conn_close(p->conn);
		p->conn = cn;
		cn->peer = p;
	}
	cn->authed = 1;
	p->conn_seq++;
	kq__auth_clear(&cn->auth);
	p->backoff_ms = BACKOFF_MIN_MS;
	p->last_rx_ms = uv_now(c->host->loop);
	c->host->log(c->host, KQ_LOG_INFO, "cluster: connected to broker %d%s",
		     p->id, c->key ? " (authenticated)" : "");
}

/* The acceptor's check of the id a hello claims: a configured broker
 * with a lower id (the lower id dials). */
static int may_dial_here(void *ctx, int id)
{
	struct kq__cluster *c = ctx;
	struct peer *p = peer_get(c, (uint64_t)id);

	return p && p->id != c->self && !p->dials;
}

static void deliver_hb(struct conn *cn, const struct kq__frame *f)
{
	struct kq__cluster *c = cn->c;

	for (uint32_t i = 0; i < f->n_hb && !cn->closing && !c->closed; i++) {
		struct kq__frame_hb it;
		struct kq__raft_msg m;

		kq__frame_hb_get(f, i, &it);
		memset(&m, 0, sizeof(m));
		m.type = it.type;
		m.from = f->hb_from;
		m.to = f->hb_to;
		m.term = it.term;
		m.commit = it.commit;
		m.quiet = it.quiet;
		c->cfg.deliver(c->cfg.ctx, it.group, &m);
	}
}

/* Handles one complete frame; -1 when the connection was closed. */
static int on_frame(struct conn *cn, const uint8_t *buf, size_t len)
{
	struct kq__cluster *c = cn->c;
	struct kq__frame f;
	const char *why = "";
	int rv = kq__frame_decode(buf, len, &f, &why);

	if (rv == -ENOMEM) {
		c->dropped++;
		return 0;
	}
	if (rv != 0)
		return bad_frame(cn, why);
	if (f.type == KQ__FRAME_HELLO || f.type == KQ__FRAME_AUTH)
		return bad_frame(cn, f.type == KQ__FRAME_HELLO
					     ? "second hello"
					     : "AUTH after the handshake");
	cn->peer->last_rx_ms = uv_now(c->host->loop);
	if (f.type == KQ__FRAME_MSG) {
		if (f.msg.from != (uint64_t)cn->peer->id ||
		    f.msg.to != (uint64_t)c->self) {
			kq__frame_release(&f);
			return bad_frame(cn, "message not between this pair");
		}
		c->cfg.deliver(c->cfg.ctx, f.group, &f.msg);
		kq__frame_release(&f);
		return cn->closing ? -1 : 0;
	}
	if (f.type == KQ__FRAME_CALL || f.type == KQ__FRAME_REPLY) {
		if (f.type == KQ__FRAME_CALL && c->cfg.on_call)
			c->cfg.on_call(c->cfg.ctx, cn->peer->id,
				       cn->peer->conn_seq, f.call_id, f.body,
				       f.body_len);
		else if (f.type == KQ__FRAME_REPLY && c->cfg.on_reply)
			c->cfg.on_reply(c->cfg.ctx, cn->peer->id, f.call_id,
					f.body, f.body_len);
		return cn->closing ? -1 : 0;
	}
	if (f.n_hb && (f.hb_from != (uint64_t)cn->peer->id ||
		       f.hb_to != (uint64_t)c->self))
		return bad_frame(cn, "heartbeats not between this pair");
	deliver_hb(cn, &f);
	return cn->closing ? -1 : 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *cn = h->data;
	size_t want = 65536;

	/* Before the handshake only its two small frames are taken. */
	if (!cn->authed) {
		want = PREAUTH_BUF - cn->len;
		if (!cn->buf) {
			cn->buf = malloc(PREAUTH_BUF);
			if (!cn->buf) {
				*b = uv_buf_init(NULL, 0);
				return;
			}
			cn->cap = PREAUTH_BUF;
		}
		*b = uv_buf_init((char *)cn->buf + cn->len, (unsigned)want);
		return;
	}
	/* Grow by what arrives, never by what a length field claims. */
	if (cn->cap - cn->len < want) {
		size_t cap = cn->cap ? cn->cap : want;
		uint8_t *nb;

		while (cap - cn->len < want)
			cap *= 2;
		nb = realloc(cn->buf, cap);
		if (!nb) {
			*b = uv_buf_init(NULL, 0);
			return;
		}
		cn->buf = nb;
		cn->cap = cap;
	}
	*b = uv_buf_init((char *)cn->buf + cn->len,
			 (unsigned)(cn->cap - cn->len));
}

static void flush_hb(struct kq__cluster *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *cn = s->data;
	struct kq__cluster *c = cn->c;
	size_t off = 0, flen = 0;
	const char *why = "";

	if (n < 0) {
		if (cn->authed)
			c->host->log(c->host, KQ_LOG_INFO,
				     "cluster: broker %d: %s", cn->peer->id,
				     n == UV_EOF ? "disconnected"
						 : uv_strerror((int)n));
		else if (cn->dialed)
			/* The other end refused our handshake; it says why
			 * in its own log. */
			c->host->log(c->host, KQ_LOG_DEBUG,
				     "cluster: broker %d: %s during the "
				     "handshake",
				     cn->peer->id,
				     n == UV_EOF ? "disconnected"
						 : uv_strerror((int)n));
		conn_close(cn);
		return;
	}
	if (n == 0 || cn->closing)
		return;
	cn->len += (size_t)n;
	if (!cn->authed) {
		int rv = kq__auth_feed(&cn->auth, cn->buf, cn->len, &off, &why);

		if (rv < 0) {
			handshake_failed(cn, rv, why);
			return;
		}
		send_handshake(cn);
		if (cn->closing)
			return;
		if (rv == 0) {
			memmove(cn->buf, cn->buf + off, cn->len - off);
			cn->len -= off;
			return;
		}
		established(cn);
	}
	for (;;) {
		int rv = kq__frame_peek(cn->buf + off, cn->len - off, &flen,
					&why);

		if (rv < 0) {
			bad_frame(cn, why);
			break;
		}
		if (rv == 0)
			break;
		if (on_frame(cn, cn->buf + off, flen) != 0)
			break;
		off += flen;
	}
	if (!cn->closing) {
		memmove(cn->buf, cn->buf + off, cn->len - off);
		cn->len -= off;
		/* Give back the room a large frame needed. */
		if (cn->cap > (1u << 20) && cn->len < cn->cap / 4) {
			uint8_t *nb = realloc(cn->buf, cn->cap / 2);

			if (nb) {
				cn->buf = nb;
				cn->cap /= 2;
			}
		}
	}
	/* Heartbeat answers of the whole read leave together. */
	flush_hb(c);
}

static void conn_start(struct conn *cn)
{
	struct kq__cluster *c = cn->c;

	uv_tcp_nodelay(&cn->tcp, 1);
	if (cn->dialed)
		kq__auth_start(&cn->auth, c->key, c->self, cn->peer->id, true,
			       NULL, NULL);
	else
		kq__auth_start(&cn->auth, c->key, c->self, 0, false,
			       may_dial_here, c);
	if (uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read) != 0) {
		conn_close(cn);
		return;
	}
	send_handshake(cn);
}

static void on_connected(uv_connect_t *req, int status)
{
	struct conn *cn = req->data;

	if (cn->closing)
		return;
	if (status < 0) {
		cn->c->host->log(cn->c->host, KQ_LOG_DEBUG,
				 "cluster: dialing broker %d: %s", cn->peer->id,
				 uv_strerror(status));
		conn_close(cn);
		return;
	}
	conn_start(cn);
}

static void dial(struct peer *p)
{
	struct kq__cluster *c = p->c;
	struct conn *cn;

	if (c->closed || p->conn)
		return;
	cn = conn_new(c);
	if (!cn) {
		schedule_dial(p);
		return;
	}
	cn->peer = p;
	cn->dialed = 1;
	p->conn = cn;
	cn->creq.data = cn;
	if (uv_tcp_connect(&cn->creq, &cn->tcp,
			   (const struct sockaddr *)&p->addr,
			   on_connected) != 0)
		conn_close(cn);
}

static void on_retry(uv_timer_t *t)
{
	dial(t->data);
}

static void schedule_dial(struct peer *p)
{
	if (p->c->closed || !p->retry_init)
		return;
	uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
	p->backoff_ms *= 2;
	if (p->backoff_ms > BACKOFF_MAX_MS)
		p->backoff_ms = BACKOFF_MAX_MS;
}

static int same_address(const struct sockaddr_storage *a,
			const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
			      &((const struct sockaddr_in *)b)->sin_addr,
			      sizeof(struct in_addr)) == 0;
	if (a->ss_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
			      &((const struct sockaddr_in6 *)b)->sin6_addr,
			      sizeof(struct in6_addr)) == 0;
	return 1; /* other families share one budget */
}

static void remote_text(struct conn *cn)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (cn->remote.ss_family == AF_INET) {
		const struct sockaddr_in *sa =
			(const struct sockaddr_in *)&cn->remote;

		uv_ip4_name(sa, ip, sizeof(ip));
		port = ntohs(sa->sin_port);
	} else if (cn->remote.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sa =
			(const struct sockaddr_in6 *)&cn->remote;

		uv_ip6_name(sa, ip, sizeof(ip));
		port = ntohs(sa->sin6_port);
	}
	snprintf(cn->remote_text, sizeof(cn->remote_text), "%s:%d", ip, port);
}

/* Accepted connections from the address of cn, cn excluded. */
static unsigned count_from(const struct kq__cluster *c, const struct conn *cn)
{
	unsigned n = 0;

	for (const struct conn *o = c->conns; o; o = o->next)
		if (o != cn && o->inbound &&
		    same_address(&o->remote, &cn->remote))
			n++;
	return n;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct kq__cluster *c = server->data;
	struct conn *cn;
	int len = (int)sizeof(cn->remote);
	unsigned from;

	if (status < 0 || c->closed)
		return;
	cn = conn_new(c);
	if (!cn)
		return;
	/* Accepted even past a cap: left in the backlog it would be
	 * offered again at once. */
	if (uv_accept(server, (uv_stream_t *)&cn->tcp) != 0) {
		conn_close(cn);
		return;
	}
	if (uv_tcp_getpeername(&cn->tcp, (struct sockaddr *)&cn->remote,
			       &len) != 0) {
		conn_close(cn);
		return;
	}
	remote_text(cn);
	if (c->n_inbound >= c->max_conns) {
		rlog(c, &c->rl_cap, KQ_LOG_WARN,
		     "cluster: connection from %s refused: %u connections "
		     "open (cluster.max_connections)",
		     cn->remote_text, c->n_inbound);
		conn_close(cn);
		return;
	}
	from = count_from(c, cn);
	if (from >= c->max_conns_per_addr) {
		rlog(c, &c->rl_cap, KQ_LOG_WARN,
		     "cluster: connection from %s refused: %u connections "
		     "open from that address "
		     "(cluster.max_connections_per_address)",
		     cn->remote_text, from);
		conn_close(cn);
		return;
	}
	cn->inbound = 1;
	c->n_inbound++;
	conn_start(cn);
}

static struct conn *peer_conn(struct kq__cluster *c, uint64_t id)
{
	struct peer *p = peer_get(c, id);

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
	w = size == SIZE_MAX ? NULL : wreq_new(cn, size);
	if (!w) {
		c->dropped++;
		c->host->log(c->host, KQ_LOG_DEBUG,
			     "cluster: broker %d: dropped a %s of group %llu",
			     cn->peer->id, kq__raft_msg_name(m->type),
			     (unsigned long long)group);
		return;
	}
	kq__frame_put_msg(w->data, group, m);
	conn_write(cn, w);
}

/* Requests and answers take at most half of a connection's output queue,
 * so that Raft's own messages always find room. */
static int put_call(struct conn *cn, enum kq__frame_type type, uint64_t id,
		    const void *body, size_t len)
{
	size_t size = kq__frame_call_size(len);
	struct wreq *w;

	if (size == SIZE_MAX || size > QUEUE_MAX / 2)
		return -E2BIG;
	if (cn->queued + size > QUEUE_MAX / 2)
		return KQ_EBUSY;
	w = wreq_new(cn, size);
	if (!w)
		return KQ_EBUSY;
	kq__frame_put_call(w->data, type, id, body, len);
	conn_write(cn, w);
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
		struct wreq *w = wreq_new(cn, kq__frame_hb_size(n));

		if (!w) {
			c->dropped += p->n_hb - done;
			break;
		}
		kq__frame_put_hb(w->data, (uint64_t)c->self, (uint64_t)p->id,
				 p->hb + done, n);
		conn_write(cn, w);
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

/* Closes the connections that did not authenticate in time: a stranger
 * holds a slot for auth_timeout_ms at most, and a dial that hangs is
 * tried again. */
static void check_deadlines(struct kq__cluster *c)
{
	uint64_t now = uv_now(c->host->loop);

	for (struct conn *cn = c->conns; cn; cn = cn->next) {
		char who[128];

		if (cn->authed || cn->closing ||
		    now - cn->since_ms < c->auth_timeout_ms)
			continue;
		describe(cn, who, sizeof(who));
		rlog(c, &c->rl_deadline,
		     cn->dialed ? KQ_LOG_DEBUG : KQ_LOG_INFO,
		     "cluster: %s: no handshake within %u ms "
		     "(cluster.auth_timeout_ms); closed",
		     who, c->auth_timeout_ms);
		conn_close(cn);
	}
}

void kq__cluster_tick(struct kq__cluster *c)
{
	if (c->closed)
		return;
	c->ticks++;
	check_deadlines(c);
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
	p = peer_get(c, (uint64_t)id);
	if (!p || !p->conn || !p->conn->authed || p->conn->closing)
		return 0;
	return uv_now(c->host->loop) - p->last_rx_ms <= window_ms;
}

int kq__cluster_peer_up(const struct kq__cluster *c, int id)
{
	return kq__cluster_peer_heard(
		c, id, 3ull * c->cfg.election_ticks * c->cfg.tick_ms);
}

static int resolve(const char *host, int port, struct sockaddr_storage *out)
{
	struct addrinfo hints, *res = NULL;
	char serv[16];
	int rv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(serv, sizeof(serv), "%d", port);
	rv = getaddrinfo(host, serv, &hints, &res);
	if (rv != 0 || !res)
		return -1;
	memcpy(out, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static int config_error(struct kq__cluster *c, const char *text)
{
	c->host->log(c->host, KQ_LOG_ERROR, "%s", text);
	return KQ_ECONFIG;
}

/* Reads the peers; the broker's own config check already validated the
 * section's shape, so this only copies it. */
static int read_peers(struct kq__cluster *c, int *listen_port)
{
	const json_t *cl = c->host->cluster;
	json_t *peers = cl ? json_object_get(cl, "peers") : NULL, *p;
	json_t *own_port = cl ? json_object_get(cl, "raft_port") : NULL;
	size_t i;

	*listen_port = 0;
	if (!json_is_array(peers) || json_array_size(peers) == 0)
		return 0;
	c->peers = calloc(json_array_size(peers), sizeof(*c->peers));
	if (!c->peers)
		return -ENOMEM;
	json_array_foreach(peers, i, p)
	{
		struct peer *pr = &c->peers[c->n_peers];
		json_t *id = json_object_get(p, "id");
		json_t *host = json_object_get(p, "host");
		json_t *rp = json_object_get(p, "raft_port");

		if (!json_is_integer(id) || json_integer_value(id) < 1 ||
		    json_integer_value(id) > 0x7fffffff)
			return config_error(c, "cluster.peers: bad id");
		pr->c = c;
		pr->id = (int)json_integer_value(id);
		pr->host = strdup(json_is_string(host) ? json_string_value(host)
						       : "127.0.0.1");
		pr->port = json_is_integer(rp) ? (int)json_integer_value(rp)
					       : 7070;
		pr->backoff_ms = BACKOFF_MIN_MS;
		pr->dials = pr->id > c->self;
		c->n_peers++;
		if (!pr->host)
			return -ENOMEM;
		if (pr->id == c->self)
			*listen_port = pr->port;
	}
	if (json_is_integer(own_port))
		*listen_port = (int)json_integer_value(own_port);
	return 0;
}

static unsigned get_uint(const json_t *cl, const char *key, unsigned def)
{
	json_t *v = cl ? json_object_get(cl, key) : NULL;

	/* The broker's config check already bounded the value. */
	return json_is_integer(v) ? (unsigned)json_integer_value(v) : def;
}

/* Reads the handshake's settings and the secret.  Without a secret the
 * port stays open to anyone who reaches it, as before: say so. */
static int read_auth(struct kq__cluster *c, const char *listen_host, int port)
{
	const struct kq_host *host = c->host;
	const json_t *cl = host->cluster;
	json_t *file = cl ? json_object_get(cl, "secret_file") : NULL;
	char why[256];
	int loose = 0, rv;

	c->auth_timeout_ms =
		get_uint(cl, "auth_timeout_ms", AUTH_TIMEOUT_MS_DEFAULT);
	c->max_conns = get_uint(cl, "max_connections", MAX_CONNECTIONS_DEFAULT);
	c->max_conns_per_addr = get_uint(cl, "max_connections_per_address",
					 MAX_CONNECTIONS_PER_ADDR_DEF);
	if (kq__auth_global_init() != 0) {
		host->log(host, KQ_LOG_ERROR,
			  "cluster: cannot initialise libsodium");
		return KQ_ECONFIG;
	}
	if (!json_is_string(file)) {
		host->log(host, KQ_LOG_WARN,
			  "cluster: no cluster.secret_file: the cluster port "
			  "%s:%d is open to anyone who reaches it",
			  listen_host, port);
		return 0;
	}
	rv = kq__auth_key_load(json_string_value(file), &c->key, &loose, why,
			       sizeof(why));
	if (rv != 0) {
		host->log(host, KQ_LOG_ERROR, "cluster.secret_file: %s: %s",
			  json_string_value(file), why);
		return rv;
	}
	if (loose)
		host->log(host, KQ_LOG_WARN,
			  "cluster.secret_file: %s is readable by its group or "
			  "others (chmod 600 it)",
			  json_string_value(file));
	return 0;
}

/* Peers on one host dial in from one address: a per-address cap below
 * their number would refuse some of them.  Only a warning: the address a
 * peer dials from may differ from the one it listens on. */
static void check_address_cap(struct kq__cluster *c)
{
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct peer *p = &c->peers[i];
		unsigned n = 0;

		if (p->id >= c->self)
			continue;
		for (size_t k = 0; k < c->n_peers; k++)
			if (c->peers[k].id < c->self &&
			    same_address(&c->peers[k].addr, &p->addr))
				n++;
		if (n > c->max_conns_per_addr) {
			c->host->log(c->host, KQ_LOG_WARN,
				     "cluster.max_connections_per_address: "
				     "%u is below the %u brokers at %s that "
				     "dial here",
				     c->max_conns_per_addr, n, p->host);
			return;
		}
	}
}

int kq__cluster_new(const struct kq_host *host,
		    const struct kq__cluster_config *cfg,
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
	*out = c;
	rv = read_peers(c, &port);
	if (rv != 0)
		return rv;
	for (size_t i = 0; i < c->n_peers; i++) {
		struct peer *p = &c->peers[i];

		if (p->id == c->self) {
			own = p;
			continue;
		}
		if (resolve(p->host, p->port, &p->addr) != 0) {
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
	if (resolve(own->host, port, &addr) != 0) {
		host->log(host, KQ_LOG_ERROR,
			  "cluster.peers: broker %d: cannot resolve %s",
			  own->id, own->host);
		return KQ_ECONFIG;
	}
	rv = read_auth(c, own->host, port);
	if (rv != 0)
		return rv;
	check_address_cap(c);
	uv_tcp_init(host->loop, &c->listener);
	c->listener.data = c;
	c->handles++;
	c->listening = 1;
	rv = uv_tcp_bind(&c->listener, (const struct sockaddr *)&addr, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&c->listener, 128, on_connection);
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
			dial(&c->peers[i]);
	return 0;
}

void kq__cluster_close(struct kq__cluster *c)
{
	if (c->closed)
		return;
	c->closed = 1;
	if (c->listening && !uv_is_closing((uv_handle_t *)&c->listener))
		uv_close((uv_handle_t *)&c->listener, on_handle_closed);
	for (size_t i = 0; i < c->n_peers; i++) {
		struct peer *p = &c->peers[i];

		if (p->retry_init && !uv_is_closing((uv_handle_t *)&p->retry)) {
			p->retry.data = c;
			uv_close((uv_handle_t *)&p->retry, on_handle_closed);
		}
	}
	for (struct conn *cn = c->conns; cn; cn = cn->next)
		conn_close(cn);
	if (c->dropped)
		c->host->log(c->host, KQ_LOG_DEBUG,
			     "cluster: %llu message(s) dropped",
			     (unsigned long long)c->dropped);
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
		free(c->peers[i].host);
		free(c->peers[i].hb);
	}
	free(c->peers);
	kq__auth_key_free(c->key);
	free(c);
}
