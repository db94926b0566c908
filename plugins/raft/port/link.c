/* The cluster port's connections: one per pair of brokers, the lower id
 * dialing (with a backoff) and the higher accepting (capped in all and
 * per address); the handshake (auth.h) before any frame; frames read,
 * parsed and handed up through the port's callbacks (c->cfg), the
 * heartbeat answers of a read flushed together through c->read_done;
 * frames written within a bounded queue. */
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <kafkaesque/error.h>
#include <kafkaesque/list.h>

#include "link.h"

static void schedule_dial(struct peer *p);
static void flush_conn(struct conn *cn);
static void parse(struct conn *cn);
static void on_resume(uv_idle_t *h);

void kq__link_handle_closed(uv_handle_t *h)
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

void kq__link_rlog(struct kq__cluster *c, struct kq_ratelimit *r,
		   enum kq_log_level level, const char *fmt, ...)
{
	uint64_t held;
	char line[512];
	va_list ap;

	if (!kq_ratelimit_allow(r, uv_now(c->host->loop), LOG_EVERY_MS,
				LOG_BURST, &held))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (held)
		c->host->log(c->host, level,
			     "%s (and %llu more like it not logged)", line,
			     (unsigned long long)held);
	else
		c->host->log(c->host, level, "%s", line);
}

/* Closes a connection; a dialer tries again after its backoff. */
void kq__link_close(struct conn *cn)
{
	struct peer *p = cn->peer;

	if (cn->closing)
		return;
	cn->closing = 1;
	/* What it holds is tried now, as a write before the close would
	 * have been (a last answer before hanging up). */
	flush_conn(cn);
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
	cn->out_tail = &cn->out;
	cn->since_ms = uv_now(c->host->loop);
	KQ_LIST_PUSH(c->conns, cn);
	return cn;
}

/* One write of a connection's held frames. */
struct batch {
	uv_write_t req;
	struct conn *conn;
	size_t len, replies;
	struct wreq *frames;
	uv_buf_t bufs[];
};

static void free_frames(struct wreq *w)
{
	while (w) {
		struct wreq *next = w->next;

		free(w);
		w = next;
	}
}

static void on_written(uv_write_t *req, int status)
{
	struct batch *b = (struct batch *)req;
	struct conn *cn = b->conn;

	cn->queued -= b->len;
	cn->replies -= b->replies;
	free_frames(b->frames);
	free(b);
	if (status < 0 && status != UV_ECANCELED && !cn->closing) {
		if (cn->peer)
			cn->c->host->log(cn->c->host, KQ_LOG_INFO,
					 "cluster: broker %d: write: %s",
					 cn->peer->id, uv_strerror(status));
		kq__link_close(cn);
	}
}

/* Writes what the connection holds, in one write. */
static void flush_conn(struct conn *cn)
{
	struct wreq *frames = cn->out;
	struct batch *b;
	size_t n = 0, len = 0, replies = 0;
	int rv;

	if (!frames)
		return;
	cn->out = NULL;
	cn->out_tail = &cn->out;
	for (struct wreq *w = frames; w; w = w->next, n++) {
		len += w->len;
		replies += w->reply ? w->len : 0;
	}
	b = malloc(sizeof(*b) + n * sizeof(b->bufs[0]));
	if (!b) {
		cn->queued -= len;
		cn->replies -= replies;
		free_frames(frames);
		kq__link_close(cn);
		return;
	}
	b->conn = cn;
	b->len = len;
	b->replies = replies;
	b->frames = frames;
	n = 0;
	for (struct wreq *w = frames; w; w = w->next)
		b->bufs[n++] = uv_buf_init((char *)w->data, (unsigned)w->len);
	rv = uv_write(&b->req, (uv_stream_t *)&cn->tcp, b->bufs, (unsigned)n,
		      on_written);
	if (rv != 0) {
		cn->queued -= len;
		cn->replies -= replies;
		free_frames(frames);
		free(b);
		kq__link_close(cn);
		return;
	}
	cn->c->writes++;
}

void kq__link_flush(struct kq__cluster *c)
{
	for (struct conn *cn = c->conns; cn; cn = cn->next)
		if (!cn->closing)
			flush_conn(cn);
}

static void on_flush(uv_prepare_t *h)
{
	uv_prepare_stop(h);
	kq__link_flush(h->data);
}

void kq__link_flush_init(struct kq__cluster *c)
{
	uv_prepare_init(c->host->loop, &c->flush);
	c->flush.data = c;
	uv_idle_init(c->host->loop, &c->resume);
	c->resume.data = c;
	c->flush_init = 1;
	c->handles += 2;
}

static struct wreq *wreq_new(size_t len, int reply)
{
	struct wreq *w = malloc(sizeof(*w) + len);

	if (!w)
		return NULL;
	w->next = NULL;
	w->len = len;
	w->reply = reply;
	return w;
}

struct wreq *kq__link_wreq(struct conn *cn, size_t len)
{
	if (cn->closing || cn->queued - cn->replies + len > QUEUE_MAX)
		return NULL;
	return wreq_new(len, 0);
}

struct wreq *kq__link_reply_wreq(struct conn *cn, size_t len)
{
	if (cn->closing || cn->replies + len > REPLY_MAX)
		return NULL;
	return wreq_new(len, 1);
}

void kq__link_write(struct conn *cn, struct wreq *w)
{
	struct kq__cluster *c = cn->c;

	if (cn->closing) {
		free(w);
		return;
	}
	cn->queued += w->len;
	if (w->reply)
		cn->replies += w->len;
	*cn->out_tail = w;
	cn->out_tail = &w->next;
	if (!uv_is_active((uv_handle_t *)&c->flush))
		uv_prepare_start(&c->flush, on_flush);
	if (cn->peer)
		cn->peer->last_tx_tick = c->ticks;
}

/* Sends what the handshake queued (our hello, our AUTH). */
static void send_handshake(struct conn *cn)
{
	struct wreq *w;

	if (!cn->auth.out_len)
		return;
	w = kq__link_wreq(cn, cn->auth.out_len);
	if (!w) {
		kq__link_close(cn);
		return;
	}
	memcpy(w->data, cn->auth.out, cn->auth.out_len);
	cn->auth.out_len = 0;
	kq__link_write(cn, w);
}

struct peer *kq__link_peer(const struct kq__cluster *c, uint64_t id)
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
	kq__link_close(cn);
	return -1;
}

/* Who the other end of a connection is, for log lines before it proved
 * anything. */
void kq__link_describe(const struct conn *cn, char *out, size_t len)
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

	kq__link_describe(cn, who, sizeof(who));
	kq__link_rlog(
		c, &c->rl_auth, rv == KQ_ECORRUPT ? KQ_LOG_INFO : KQ_LOG_WARN,
		"cluster: %s: %s%s; closed", who,
		rv == KQ_ECORRUPT ? "bad frame before authentication: " : "",
		why);
	kq__link_close(cn);
}

/* The handshake succeeded: only now may the connection replace an older
 * one of the same broker, and its frames reach Raft. */
static void established(struct conn *cn)
{
	struct kq__cluster *c = cn->c;
	struct peer *p = cn->peer;

	if (!cn->dialed) {
		struct conn *old;
		uint64_t now = uv_now(c->host->loop),
			 live_ms =
				 2ull * c->cfg.heartbeat_ticks * c->cfg.tick_ms;

		p = kq__link_peer(c, (uint64_t)cn->auth.peer);
		old = p->conn;
		/* Its old connection still brings frames: a second broker
		 * has this id (a broker that restarts or reconnects closed
		 * the old one first, or went silent).  Replacing would
		 * flap between the two without end, and let both take part
		 * in Raft under one id. */
		if (old && old != cn && old->authed && !old->closing &&
		    now - p->last_rx_ms < live_ms) {
			kq__link_rlog(
				c, &c->rl_twin, KQ_LOG_ERROR,
				"cluster: connection from %s refused: it "
				"proved to be broker %d, whose connection "
				"from %s brought a frame %llu ms ago; "
				"two brokers run with id %d?",
				cn->remote_text, p->id, old->remote_text,
				(unsigned long long)(now - p->last_rx_ms),
				p->id);
			kq__link_close(cn);
			return;
		}
		/* A dialer that reconnects replaces its old connection,
		 * which may not have noticed yet that the other end died. */
		if (old && old != cn)
			kq__link_close(old);
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
	struct peer *p = kq__link_peer(c, (uint64_t)id);

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

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct conn *cn = s->data;
	struct kq__cluster *c = cn->c;
	size_t off = 0;
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
		kq__link_close(cn);
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
		/* Refused (another broker with that id is live): nothing
		 * more of it is read, and it has no peer. */
		if (cn->closing)
			return;
		memmove(cn->buf, cn->buf + off, cn->len - off);
		cn->len -= off;
	}
	parse(cn);
	/* Heartbeat answers of the whole read leave together. */
	c->read_done(c);
}

/* Hands up the complete frames buffered, within the turn's budget: past
 * it the connection stops reading until the next turn (on_resume), so
 * that a burst of frames cannot hold the loop for all of them. */
static void parse(struct conn *cn)
{
	struct kq__cluster *c = cn->c;
	size_t off = 0, flen = 0;
	const char *why = "";

	if (!uv_is_active((uv_handle_t *)&c->resume))
		uv_idle_start(&c->resume, on_resume);
	for (;;) {
		int rv;

		if (cn->turn_frames >= TURN_FRAMES) {
			if (!cn->paused) {
				uv_read_stop((uv_stream_t *)&cn->tcp);
				cn->paused = 1;
				c->pauses++;
			}
			break;
		}
		rv = kq__frame_peek(cn->buf + off, cn->len - off, &flen, &why);
		if (rv < 0) {
			bad_frame(cn, why);
			break;
		}
		if (rv == 0)
			break;
		cn->turn_frames++;
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
}

/* A new turn: every connection's budget starts again, and those that
 * used theirs go on with what they hold, then read again once it is
 * handed up.  The handle stops on a turn that finds none paused. */
static void on_resume(uv_idle_t *h)
{
	struct kq__cluster *c = h->data;
	int any = 0, paused = 0;

	for (struct conn *cn = c->conns; cn; cn = cn->next) {
		cn->turn_frames = 0;
		if (!cn->paused || cn->closing)
			continue;
		cn->paused = 0;
		any = 1;
		parse(cn);
		if (cn->closing || cn->paused)
			continue;
		if (uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read) !=
		    0)
			kq__link_close(cn);
	}
	if (any)
		c->read_done(c);
	for (struct conn *cn = c->conns; cn; cn = cn->next)
		paused |= cn->paused && !cn->closing;
	if (!paused && !any)
		uv_idle_stop(h);
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
		kq__link_close(cn);
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
		kq__link_close(cn);
		return;
	}
	conn_start(cn);
}

void kq__link_dial(struct peer *p)
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
		kq__link_close(cn);
}

static void on_retry(uv_timer_t *t)
{
	kq__link_dial(t->data);
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

int kq__link_same_address(const struct sockaddr_storage *a,
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
		    kq__link_same_address(&o->remote, &cn->remote))
			n++;
	return n;
}

/* The oldest accepted connection without a handshake yet, from cn's
 * address when `same_address` (else from any), cn excluded: NULL when
 * none.  A peer's handshake takes a round trip; a stranger's may sit
 * until auth_timeout_ms, and must not keep peers out meanwhile. */
static struct conn *oldest_stranger(struct kq__cluster *c,
				    const struct conn *cn, int same_address)
{
	struct conn *best = NULL;

	for (struct conn *o = c->conns; o; o = o->next)
		if (o != cn && o->inbound && !o->authed && !o->closing &&
		    (!same_address ||
		     kq__link_same_address(&o->remote, &cn->remote)) &&
		    (!best || o->since_ms < best->since_ms))
			best = o;
	return best;
}

/* Room for cn past a cap: the oldest stranger goes, or cn does (0). */
static int make_room(struct kq__cluster *c, struct conn *cn, int same_address,
		     const char *why, unsigned open)
{
	struct conn *o = oldest_stranger(c, cn, same_address);

	if (o) {
		kq__link_rlog(c, &c->rl_cap, KQ_LOG_WARN,
			      "cluster: connection from %s closed, without a "
			      "handshake after %llu ms, to make room for one "
			      "from %s: %u connections open%s (%s)",
			      o->remote_text,
			      (unsigned long long)(uv_now(c->host->loop) -
						   o->since_ms),
			      cn->remote_text, open,
			      same_address ? " from that address" : "", why);
		kq__link_close(o);
		return 1;
	}
	kq__link_rlog(c, &c->rl_cap, KQ_LOG_WARN,
		      "cluster: connection from %s refused: %u connections "
		      "open%s (%s)",
		      cn->remote_text, open,
		      same_address ? " from that address" : "", why);
	kq__link_close(cn);
	return 0;
}

void kq__link_on_connection(uv_stream_t *server, int status)
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
		kq__link_close(cn);
		return;
	}
	if (uv_tcp_getpeername(&cn->tcp, (struct sockaddr *)&cn->remote,
			       &len) != 0) {
		kq__link_close(cn);
		return;
	}
	remote_text(cn);
	from = count_from(c, cn);
	if (from >= c->max_conns_per_addr &&
	    !make_room(c, cn, 1, "cluster.max_connections_per_address", from))
		return;
	if (c->n_inbound >= c->max_conns &&
	    !make_room(c, cn, 0, "cluster.max_connections", c->n_inbound))
		return;
	cn->inbound = 1;
	c->n_inbound++;
	conn_start(cn);
}

void kq__link_check_deadlines(struct kq__cluster *c)
{
	uint64_t now = uv_now(c->host->loop);

	for (struct conn *cn = c->conns; cn; cn = cn->next) {
		char who[128];

		if (cn->authed || cn->closing ||
		    now - cn->since_ms < c->auth_timeout_ms)
			continue;
		kq__link_describe(cn, who, sizeof(who));
		kq__link_rlog(c, &c->rl_deadline,
			      cn->dialed ? KQ_LOG_DEBUG : KQ_LOG_INFO,
			      "cluster: %s: no handshake within %u ms "
			      "(cluster.auth_timeout_ms); closed",
			      who, c->auth_timeout_ms);
		kq__link_close(cn);
	}
}
