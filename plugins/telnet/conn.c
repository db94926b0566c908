/* telnet transport: one connection's life.  Its input (read under the
 * server's input budget, cut into lines), the queue of commands whose
 * answers go out in order, its output and backpressure, and its close.
 * What a command means is in commands.c, reached only through the hooks
 * plugin.c sets (srv->cmd); the listener that opens connections is in
 * server.c, told through srv->conn_closed when one is gone. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kafkaesque/kafkaesque.h>
#include <kafkaesque/list.h>

#include "telnet.h"

/* A connection stops parsing input while this many commands await their
 * turn to answer, and goes on below the low mark. */
#define SLOTS_HIGH 4096
#define SLOTS_LOW  3072

/* Spare slots kept for reuse per server. */
#define FREE_SLOTS_MAX 1024

/* A write buffer grown past this is released after use, so one large
 * answer does not pin memory for the connection's life. */
#define WBUF_KEEP ((size_t)2 << 20)

/* ---------------------------------------------------------------- slots */

struct kq__tn_slot *kq__tn_slot_new(struct kq__tn_conn *c, int pubs)
{
	struct kq__tn_server *srv = c->srv;
	struct kq__tn_slot *s = srv->free_slots;

	if (s) {
		srv->free_slots = s->next;
		srv->nfree--;
	} else {
		s = calloc(1, sizeof(*s));
		if (!s)
			return NULL;
	}
	/* A reused slot keeps its answer buffer's memory. */
	*s = (struct kq__tn_slot){
		.conn = c,
		.pubs = pubs,
		.out = {.p = s->out.p, .cap = s->out.cap},
	};
	s->req.data = s;
	if (c->tail)
		c->tail->next = s;
	else
		c->head = s;
	c->tail = s;
	c->nslots++;
	c->nbusy++;
	if (pubs)
		c->nbusy_pubs++;
	return s;
}

/* Keeps a few slots (with their answer buffers) for reuse. */
static void slot_release(struct kq__tn_server *srv, struct kq__tn_slot *s)
{
	if (srv->nfree >= FREE_SLOTS_MAX || s->out.cap > 4096) {
		kq__tn_buf_free(&s->out);
		free(s);
		return;
	}
	s->next = srv->free_slots;
	srv->free_slots = s;
	srv->nfree++;
}

void kq__tn_slot_finish(struct kq__tn_conn *c, struct kq__tn_slot *s)
{
	if (s->done)
		return;
	s->done = 1;
	c->done_bytes += s->out.len;
	c->pub_bytes -= s->pub_bytes;
	s->pub_bytes = 0;
	c->nbusy--;
	if (s->pubs)
		c->nbusy_pubs--;
	kq__tn_conn_process(c);
}

void kq__tn_slot_orphan_done(struct kq__tn_slot *s)
{
	struct kq__tn_conn *c = s->conn;

	slot_release(c->srv, s);
	kq__tn_conn_free(c);
}

void kq__tn_flush_slots(struct kq__tn_conn *c)
{
	struct kq__tn_slot *s;

	while ((s = c->head) && s->done) {
		if (s->out.failed ||
		    kq__tn_buf_append(&c->out, s->out.p, s->out.len) < 0) {
			kq__tn_close(c);
			return;
		}
		c->head = s->next;
		if (!c->head)
			c->tail = NULL;
		c->nslots--;
		c->done_bytes -=
			s->out.len < c->done_bytes ? s->out.len : c->done_bytes;
		slot_release(c->srv, s);
	}
}

/* ---------------------------------------------------------------- output */

size_t kq__tn_pending(const struct kq__tn_conn *c)
{
	return c->out.len + (c->writing ? c->wbuf.len : 0);
}

static void on_write(uv_write_t *req, int status);

void kq__tn_flush(struct kq__tn_conn *c)
{
	struct kq__tn_buf t;
	uv_buf_t b;
	int r;

	if (c->closing || c->writing || c->out.len == 0)
		return;
	if (c->out.failed) {
		kq__tn_close(c);
		return;
	}
	/* Swap so answers keep gathering while this batch is written. */
	t = c->wbuf;
	c->wbuf = c->out;
	c->out = t;
	c->out.len = 0;
	b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
	r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (r < 0) {
		kq__tn_close(c);
		return;
	}
	c->writing = 1;
	c->srv->nwrites++;
}

static void on_write(uv_write_t *req, int status)
{
	struct kq__tn_conn *c = req->data;

	c->writing = 0;
	c->wbuf.len = 0;
	if (c->wbuf.cap > WBUF_KEEP)
		kq__tn_buf_free(&c->wbuf);
	if (c->closing)
		return;
	if (status < 0) {
		kq__tn_close(c);
		return;
	}
	if (c->cons_slot)
		c->srv->cmd.cons_pump(c);
	kq__tn_conn_process(c);
}

/* ---------------------------------------------------------------- closing */

void kq__tn_conn_free(struct kq__tn_conn *c)
{
	struct kq__tn_server *srv = c->srv;

	if (!c->closed || c->inflight > 0)
		return;
	KQ_LIST_REMOVE(srv->conns, c);
	kq__tn_framer_free(&c->fr);
	kq__tn_buf_free(&c->pend);
	kq__tn_buf_free(&c->out);
	kq__tn_buf_free(&c->wbuf);
	free(c);
}

static void on_conn_closed(uv_handle_t *h)
{
	struct kq__tn_conn *c = h->data;
	struct kq__tn_server *srv = c->srv;

	c->closed = 1;
	srv->nhandles--;
	kq__tn_conn_free(c);
	srv->conn_closed(srv);
}

static void charge_input(struct kq__tn_conn *c);

void kq__tn_close(struct kq__tn_conn *c)
{
	struct kq__tn_server *srv = c->srv;
	struct kq__tn_slot *s, *next;

	if (c->closing)
		return;
	c->closing = 1;
	/* Answers nobody will read are dropped; a slot whose request is in
	 * flight now belongs to that request. */
	for (s = c->head; s; s = next) {
		next = s->next;
		if (s->inflight)
			s->orphan = 1;
		else
			slot_release(srv, s);
	}
	c->head = c->tail = NULL;
	c->nslots = c->nbusy = c->nbusy_pubs = 0;
	c->held = NULL;
	if (c->cons_slot) {
		c->cons_slot = NULL;
		srv->api->consume_close(&c->cons);
	}
	if (c->session) {
		srv->api->session_close(c->session);
		c->session = NULL;
	}
	if (c->counted) {
		c->counted = 0;
		srv->nlive--;
	}
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
	if (c->stalled) {
		c->stalled = 0;
		srv->stalled--;
	}
	charge_input(c); /* gives its input budget back */
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* Closes a connection that has nothing more to say: after QUIT, after the
 * client's EOF once every answer is written, or while stopping. */
static void check_idle(struct kq__tn_conn *c)
{
	if (c->closing || c->writing || c->out.len > 0)
		return;
	if (c->quit || c->refused) {
		kq__tn_close(c);
		return;
	}
	/* Stopping: commands already started still get their answers (the
	 * grace timer bounds the wait); nothing new is read. */
	if (c->srv->stopping && !c->head) {
		kq__tn_close(c);
		return;
	}
	if (c->eof && !c->held && c->inoff == c->inlen && !c->head)
		kq__tn_close(c);
}

/* ---------------------------------------------------------------- input */

/* Input buffers above this are given back once empty. */
#define IN_KEEP (64 * 1024)

static void update_reading(struct kq__tn_conn *c);

/* Part of a line is buffered (a line already handed out is not). */
static int mid_line(const struct kq__tn_conn *c)
{
	return !c->fr.emitted && c->fr.len > 0;
}

static void refuse(struct kq__tn_conn *c, int err, const char *text);

/* Every second while connections are stalled for the input budget: one
 * whose client hung up is closed (it is not read, so it would never see
 * that), and one stalled past stall_timeout_ms is told why and closed,
 * so that clients that stop in the middle of a line cannot hold the
 * budget for ever. */
static void on_starve(uv_timer_t *t)
{
	struct kq__tn_server *srv = t->data;
	uint64_t now = uv_now(srv->host->loop);
	struct kq__tn_conn *o, *next, *oldest;

	for (o = srv->conns; o; o = next) {
		struct pollfd p = {.events = POLLRDHUP};
		uv_os_fd_t fd;

		next = o->next;
		if (!o->stalled || o->closing ||
		    uv_fileno((uv_handle_t *)&o->tcp, &fd) != 0)
			continue;
		/* Unread input hides an end of stream from recv(); the
		 * peer's hang-up shows all the same. */
		p.fd = fd;
		if (poll(&p, 1, 0) == 1 &&
		    (p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
			kq__tn_close(o);
	}
	/* While the budget is used up, the connection that has been in
	 * the middle of one line the longest goes first: each one closed
	 * gives budget back, and lines that started later go on. */
	while (srv->in_used >= srv->max_input) {
		oldest = NULL;
		for (o = srv->conns; o; o = o->next)
			if (o->stalled && !o->closing && !o->refused &&
			    (!oldest || o->line_since < oldest->line_since))
				oldest = o;
		if (!oldest || now - oldest->line_since < srv->stall_timeout_ms)
			break;
		KQ__TN_LOG(
			srv, KQ_LOG_WARN,
			"closing a connection in the middle of a line for over "
			"%u ms: the input budget is used up",
			srv->stall_timeout_ms);
		kq__tn_flush_slots(oldest);
		refuse(oldest, KQ_EBUSY,
		       "the broker's input budget is used up; closing");
	}
	if (!srv->stalled)
		uv_timer_stop(t);
}

/* Counts what c buffers of its input against the server's budget,
 * giving back big buffers that are empty; once the budget has room
 * again, the connections stalled for it read again. */
static void charge_input(struct kq__tn_conn *c)
{
	struct kq__tn_server *srv = c->srv;
	size_t now;
	int was_over = srv->in_used >= srv->max_input;

	if (!c->held && !mid_line(c) && c->fr.cap > IN_KEEP)
		kq__tn_framer_free(&c->fr);
	if (c->pend.len == 0 && c->pend.cap > IN_KEEP)
		kq__tn_buf_free(&c->pend);
	if (!mid_line(c))
		c->in_line = 0;
	else if (!c->in_line) {
		c->in_line = 1;
		c->line_since = uv_now(srv->host->loop);
	}
	/* What input holds: the line being built (its whole buffer) and
	 * what waits to be parsed.  The buffers an idle connection keeps
	 * (at most IN_KEEP each) are bounded by max_connections instead, so
	 * idle connections cannot use the budget up.  A refused connection
	 * reads no more and has given its buffers back. */
	now = c->closing || c->refused
		      ? 0
		      : (mid_line(c) || c->held ? c->fr.cap : 0) + c->pend.len;
	srv->in_used = srv->in_used - c->charged + now;
	c->charged = now;
	if (was_over && srv->in_used < srv->max_input && srv->stalled)
		for (struct kq__tn_conn *o = srv->conns; o; o = o->next)
			if (o->stalled && o != c)
				update_reading(o);
}

/* Past the budget, a connection in the middle of a line is not read:
 * its line could only grow.  Complete lines still flow. */
static int over_budget(const struct kq__tn_conn *c)
{
	return c->srv->in_used >= c->srv->max_input && mid_line(c);
}

static int throttled(struct kq__tn_conn *c)
{
	/* Answers done behind one that is not count too: synchronous
	 * commands pipelined behind a PUBS would otherwise pile up there
	 * without bound. */
	size_t pending = kq__tn_pending(c) + c->done_bytes;

	if (c->throttled) {
		if (pending <= KQ__TN_OUT_LOW && c->nslots <= SLOTS_LOW &&
		    c->pub_bytes <= KQ__TN_PUBS_LOW)
			c->throttled = 0;
	} else if (pending >= KQ__TN_OUT_HIGH || c->nslots >= SLOTS_HIGH ||
		   c->pub_bytes >= KQ__TN_PUBS_HIGH) {
		c->throttled = 1;
	}
	return c->throttled;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct kq__tn_conn *c = h->data;

	*buf = uv_buf_init(c->srv->rbuf, sizeof(c->srv->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void update_reading(struct kq__tn_conn *c)
{
	int starved = !c->closing && !c->refused && over_budget(c);
	int want = !c->closing && !c->eof && !c->quit && !c->refused &&
		   !c->srv->stopping && !c->held && c->inoff == c->inlen &&
		   !throttled(c) && !starved;

	if (starved != (int)c->stalled) {
		struct kq__tn_server *srv = c->srv;

		c->stalled = (unsigned)starved;
		if (!starved) {
			srv->stalled--;
		} else {
			if (srv->stalled++ == 0 && srv->starve &&
			    !uv_is_active((uv_handle_t *)srv->starve))
				uv_timer_start(srv->starve, on_starve, 1000,
					       1000);
		}
	}

	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) <
		    0) {
			kq__tn_close(c);
			return;
		}
		c->reading = 1;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = 0;
	}
}

static int blank(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			return 0;
	return 1;
}

static void answer_toolong(struct kq__tn_conn *c)
{
	struct kq__tn_slot *s = kq__tn_slot_new(c, 0);

	if (!s) {
		kq__tn_close(c);
		return;
	}
	kq__tn_buf_printf(&s->out, "ERR TOOLONG line longer than %zu bytes\r\n",
			  c->srv->max_line);
	kq__tn_slot_finish(c, s);
}

/* Refuses a telnet option: we do none, and say so only when asked to. */
static void answer_option(struct kq__tn_conn *c, const struct kq__tn_event *ev)
{
	unsigned char reply[3] = {KQ__TN_IAC, 0, ev->opt};

	if (ev->cmd == KQ__TN_DO)
		reply[1] = KQ__TN_WONT;
	else if (ev->cmd == KQ__TN_WILL)
		reply[1] = KQ__TN_DONT;
	else
		return;
	kq__tn_buf_append(&c->out, reply, sizeof(reply));
}

/* Parses and runs input until it is used up or a command must wait. */
static void parse_input(struct kq__tn_conn *c)
{
	while (!c->closing && !c->quit && !c->refused && !c->srv->stopping) {
		struct kq__tn_event ev;
		size_t used = 0;
		int r;

		if (c->held) {
			char *line = c->held;

			if (!c->srv->cmd.can_start(c, line, c->heldlen))
				return;
			c->held = NULL;
			c->srv->cmd.exec(c, line, c->heldlen);
			continue;
		}
		if (c->inoff == c->inlen || throttled(c))
			return;
		r = kq__tn_framer_next(&c->fr, c->in + c->inoff,
				       c->inlen - c->inoff, &used, &ev);
		if (r < 0) {
			kq__tn_close(c);
			return;
		}
		c->inoff += used;
		switch (r) {
		case KQ__TN_EV_LINE:
			if (blank(ev.line, ev.len))
				break;
			if (!c->srv->cmd.can_start(c, ev.line, ev.len)) {
				c->held = ev.line;
				c->heldlen = ev.len;
				return;
			}
			c->srv->cmd.exec(c, ev.line, ev.len);
			break;
		case KQ__TN_EV_TOOLONG: answer_toolong(c); break;
		case KQ__TN_EV_OPTION: answer_option(c, &ev); break;
		default: break;
		}
	}
}

/* The one place that moves a connection forward after anything changed:
 * runs what input it can, writes finished answers, adjusts reading. */
void kq__tn_conn_process(struct kq__tn_conn *c)
{
	if (c->closing)
		return;
	if (c->processing) {
		c->again = 1;
		return;
	}
	c->processing = 1;
	do {
		c->again = 0;
		kq__tn_flush_slots(c);
		parse_input(c);
		kq__tn_flush_slots(c);
	} while (c->again && !c->closing);
	c->processing = 0;
	if (c->closing)
		return;
	if (c->inoff == c->inlen && c->in == c->pend.p) {
		c->pend.len = 0;
		c->in = NULL;
		c->inlen = c->inoff = 0;
	}
	kq__tn_flush(c);
	charge_input(c);
	update_reading(c);
	check_idle(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct kq__tn_conn *c = stream->data;

	if (nread == 0)
		return;
	if (nread < 0) {
		if (nread != UV_EOF) {
			kq__tn_close(c);
			return;
		}
		/* Half-closed: answer what was sent, then close. */
		c->eof = 1;
		kq__tn_conn_process(c);
		return;
	}
	c->in = buf->base;
	c->inlen = (size_t)nread;
	c->inoff = 0;
	kq__tn_conn_process(c);
	if (c->closing || c->in != buf->base)
		return;
	if (c->inoff == c->inlen) {
		c->in = NULL;
		c->inlen = c->inoff = 0;
		return;
	}
	/* Keep what must wait: the shared buffer is reused by the next
	 * read of any connection. */
	if (kq__tn_buf_append(&c->pend, c->in + c->inoff, c->inlen - c->inoff) <
	    0) {
		kq__tn_close(c);
		return;
	}
	c->in = c->pend.p;
	c->inlen = c->pend.len;
	c->inoff = 0;
	charge_input(c);
}

/* ---------------------------------------------------------------- accept */

static void refuse(struct kq__tn_conn *c, int err, const char *text)
{
	/* It parses nothing more: its input goes now, not once the answer
	 * is written (a client that does not read would keep it). */
	kq__tn_framer_free(&c->fr);
	kq__tn_buf_free(&c->pend);
	c->in = NULL;
	c->inlen = c->inoff = 0;
	c->held = NULL;
	c->refused = 1;
	kq__tn_buf_printf(&c->out, "ERR %s ", kq_err_code(err));
	kq__tn_buf_append_text(&c->out,
			       text && *text ? text : kq_strerror(err));
	kq__tn_buf_append(&c->out, "\r\n", 2);
	kq__tn_conn_process(c);
}

void kq__tn_conn_open(struct kq__tn_server *srv, int fd)
{
	struct kq__tn_conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		KQ__TN_LOG(srv, KQ_LOG_ERROR, "accept: out of memory");
		close(fd);
		return;
	}
	c->srv = srv;
	kq__tn_framer_init(&c->fr, srv->max_line);
	r = uv_tcp_init(srv->host->loop, &c->tcp);
	if (r < 0) {
		close(fd);
		free(c);
		return;
	}
	c->tcp.data = c;
	c->wreq.data = c;
	KQ_LIST_PUSH(srv->conns, c);
	srv->nhandles++;
	r = uv_tcp_open(&c->tcp, fd);
	if (r < 0) {
		KQ__TN_LOG(srv, KQ_LOG_WARN, "accept: %s", uv_strerror(r));
		close(fd);
		kq__tn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (srv->nlive >= srv->max_conns) {
		refuse(c, KQ_EBUSY, "too many connections");
		return;
	}
	r = srv->api->session_open(srv->host->broker, &c->session);
	if (r < 0) {
		c->session = NULL;
		refuse(c, r, "");
		return;
	}
	c->counted = 1;
	c->authed = srv->password_len == 0;
	srv->nlive++;
	kq__tn_conn_process(c);
}
