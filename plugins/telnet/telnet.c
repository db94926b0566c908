/* telnet transport, the connection layer: configuration, the listener and
 * each connection's input, answer order, output and backpressure.  What
 * the commands mean is in commands.c, which this file reaches only through
 * the hooks plugin.c sets (srv->cmd). */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kafkaesque/config.h>
#include <kafkaesque/kafkaesque.h>
#include <kafkaesque/list.h>

#include "telnet.h"

/* A connection stops parsing input while this many commands await their
 * turn to answer, and goes on below the low mark. */
#define SLOTS_HIGH 4096
#define SLOTS_LOW  3072

/* Spare slots kept for reuse per server. */
#define FREE_SLOTS_MAX 1024

/* How long stop() waits for clients to take their answers. */
#define STOP_GRACE_MS 5000

/* A write buffer grown past this is released after use, so one large
 * answer does not pin memory for the connection's life. */
#define WBUF_KEEP ((size_t)2 << 20)

/* Connections taken per readiness of the listener, so that a flood does
 * not starve the connections already open. */
#define ACCEPT_BURST 64

/* How long accepting pauses when no descriptor can be had even to answer
 * (no spare left), and how often running out is logged. */
#define ACCEPT_PAUSE_MS 100
#define BUSY_LOG_MS	10000

#define LOG(srv, lvl, ...) (srv)->host->log((srv)->host, (lvl), __VA_ARGS__)

/* ---------------------------------------------------------------- config */

/* Reads the password: the file's bytes up to an optional final line end.
 */
static int read_password(struct kq__tn_server *srv, const char *path)
{
	unsigned char buf[KQ__TN_PASSWORD_MAX + 3];
	struct stat st;
	size_t n = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		LOG(srv, KQ_LOG_ERROR, "telnet.password_file: %s: %s", path,
		    strerror(errno));
		return KQ_ECONFIG;
	}
	while (n < sizeof(buf) &&
	       (r = read(fd, buf + n, sizeof(buf) - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			LOG(srv, KQ_LOG_ERROR, "telnet.password_file: %s: %s",
			    path, strerror(errno));
			close(fd);
			return KQ_ECONFIG;
		}
		n += (size_t)r;
	}
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		LOG(srv, KQ_LOG_WARN,
		    "telnet.password_file: %s can be read by other users "
		    "(chmod 600 it)",
		    path);
	close(fd);
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	if (n == 0 || n > KQ__TN_PASSWORD_MAX || memchr(buf, '\n', n) ||
	    memchr(buf, '\r', n) || memchr(buf, '\0', n)) {
		LOG(srv, KQ_LOG_ERROR,
		    "telnet.password_file: %s: expected one line of 1 to %d "
		    "bytes",
		    path, KQ__TN_PASSWORD_MAX);
		memset(buf, 0, sizeof(buf));
		return KQ_ECONFIG;
	}
	memcpy(srv->password, buf, n);
	srv->password_len = n;
	memset(buf, 0, sizeof(buf));
	return 0;
}

int kq__tn_password_ok(const struct kq__tn_server *srv, const char *word,
		       size_t len)
{
	volatile unsigned char diff = 0;
	size_t i;

	/* Equal-length buffers: the password zero-padded, and the word
	 * zero-padded (or cut, its length compared apart).  Every byte is
	 * read and no branch depends on the password. */
	for (i = 0; i < KQ__TN_PASSWORD_MAX; i++) {
		unsigned char w = i < len ? (unsigned char)word[i] : 0;

		diff |= (unsigned char)(w ^ srv->password[i]);
	}
	diff |= (unsigned char)((len ^ srv->password_len) != 0);
	return srv->password_len > 0 && diff == 0;
}

/* Seconds of a log window, and the failed AUTH lines each may hold. */
#define AUTH_LOG_WINDOW_MS 10000
#define AUTH_LOG_LINES	   10

void kq__tn_auth_log(struct kq__tn_conn *c)
{
	struct kq__tn_server *srv = c->srv;
	uint64_t now = uv_now(srv->host->loop);
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char addr[64] = "?";

	if (now - srv->auth_log_start >= AUTH_LOG_WINDOW_MS) {
		if (srv->auth_unlogged)
			LOG(srv, KQ_LOG_WARN,
			    "%u more failed AUTH attempt(s) were not logged",
			    srv->auth_unlogged);
		srv->auth_log_start = now;
		srv->auth_logged = srv->auth_unlogged = 0;
	}
	if (srv->auth_logged >= AUTH_LOG_LINES) {
		srv->auth_unlogged++;
		return;
	}
	srv->auth_logged++;
	memset(&ss, 0, sizeof(ss));
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

			addr[0] = '[';
			uv_ip6_name(a, addr + 1, sizeof(addr) - 8);
			snprintf(addr + strlen(addr), 8, "]:%u",
				 ntohs(a->sin6_port));
		} else if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;

			uv_ip4_name(a, addr, sizeof(addr) - 8);
			snprintf(addr + strlen(addr), 8, ":%u",
				 ntohs(a->sin_port));
		}
	}
	LOG(srv, KQ_LOG_WARN, "failed AUTH from %s (%u on this connection)",
	    addr, c->auth_failures);
}

static int read_config(struct kq__tn_server *srv)
{
	static const char *const keys[] = {"host",
					   "port",
					   "max_line",
					   "max_connections",
					   "max_input_bytes",
					   "stall_timeout_ms",
					   "password_file",
					   NULL};
	const struct kq_host *host = srv->host;
	const char *bind = "127.0.0.1", *password = NULL;
	int64_t port = 8080, max_line = KQ__TN_MAX_LINE_DEFAULT;
	int64_t max_conns = 1024, max_input = 128 << 20, stall = 30000;
	int rv;

	rv = kq_config_keys(host, keys);
	if (rv == 0)
		rv = kq_config_string(host, "host", &bind);
	if (rv == 0)
		rv = kq_config_int(host, "port", 1, 65535, &port);
	if (rv == 0)
		rv = kq_config_int(host, "max_line", 16, 1 << 30, &max_line);
	if (rv == 0)
		rv = kq_config_int(host, "max_connections", 1, 1000000,
				   &max_conns);
	if (rv == 0)
		rv = kq_config_int(host, "stall_timeout_ms", 1, 86400000,
				   &stall);
	if (rv == 0)
		rv = kq_config_int(host, "max_input_bytes", 1 << 16, INT64_MAX,
				   &max_input);
	if (rv == 0)
		rv = kq_config_string(host, "password_file", &password);
	if (rv == 0 && password && read_password(srv, password))
		rv = KQ_ECONFIG;
	if (rv != 0)
		return rv;
	srv->port = (int)port;
	srv->max_line = (size_t)max_line;
	srv->max_conns = (unsigned)max_conns;
	srv->stall_timeout_ms = (uint32_t)stall;
	srv->max_input = (size_t)max_input;
	srv->bind_host = strdup(bind);
	return srv->bind_host ? 0 : -ENOMEM;
}

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
	s->next = NULL;
	s->conn = c;
	s->pubs = pubs;
	s->done = 0;
	s->inflight = 0;
	s->orphan = 0;
	s->out.len = 0;
	s->out.failed = 0;
	s->name[0] = '\0';
	memset(&s->req, 0, sizeof(s->req));
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

static void conn_process(struct kq__tn_conn *c);

void kq__tn_slot_finish(struct kq__tn_conn *c, struct kq__tn_slot *s)
{
	if (s->done)
		return;
	s->done = 1;
	c->nbusy--;
	if (s->pubs)
		c->nbusy_pubs--;
	conn_process(c);
}

static void conn_maybe_free(struct kq__tn_conn *c);

void kq__tn_slot_orphan_done(struct kq__tn_slot *s)
{
	struct kq__tn_conn *c = s->conn;

	slot_release(c->srv, s);
	conn_maybe_free(c);
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
	conn_process(c);
}

/* ---------------------------------------------------------------- closing */

static void srv_check_done(struct kq__tn_server *srv);

static void conn_maybe_free(struct kq__tn_conn *c)
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
	conn_maybe_free(c);
	srv_check_done(srv);
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
		LOG(srv, KQ_LOG_WARN,
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
	size_t pending = kq__tn_pending(c);

	if (c->throttled) {
		if (pending <= KQ__TN_OUT_LOW && c->nslots <= SLOTS_LOW)
			c->throttled = 0;
	} else if (pending >= KQ__TN_OUT_HIGH || c->nslots >= SLOTS_HIGH) {
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
static void conn_process(struct kq__tn_conn *c)
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
		conn_process(c);
		return;
	}
	c->in = buf->base;
	c->inlen = (size_t)nread;
	c->inoff = 0;
	conn_process(c);
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
	conn_process(c);
}

/* Takes an accepted socket `fd` (owned from here on). */
static void on_connection(struct kq__tn_server *srv, int fd)
{
	struct kq__tn_conn *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c) {
		LOG(srv, KQ_LOG_ERROR, "accept: out of memory");
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
		LOG(srv, KQ_LOG_WARN, "accept: %s", uv_strerror(r));
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
	conn_process(c);
}

static void on_listener(uv_poll_t *p, int status, int events);

static void spare_take(struct kq__tn_server *srv)
{
	if (srv->spare_fd < 0)
		srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_pause_end(uv_timer_t *t)
{
	struct kq__tn_server *srv = t->data;

	spare_take(srv);
	if (srv->lpoll && !srv->stopping)
		uv_poll_start(srv->lpoll, UV_READABLE, on_listener);
}

/* Stops accepting for a moment: the error would repeat at once, and the
 * loop would spin on it. */
static void accept_pause(struct kq__tn_server *srv)
{
	uv_poll_stop(srv->lpoll);
	uv_timer_start(srv->pause, on_pause_end, ACCEPT_PAUSE_MS, 0);
}

/* Logs running out of descriptors at most every BUSY_LOG_MS. */
static void busy_log(struct kq__tn_server *srv)
{
	uint64_t now = uv_now(srv->host->loop);

	if (!srv->busy_count ||
	    (srv->busy_logged && now - srv->busy_logged < BUSY_LOG_MS))
		return;
	LOG(srv, KQ_LOG_WARN,
	    "out of file descriptors: %u connection(s) refused (answered ERR "
	    "BUSY when a spare descriptor allowed)",
	    srv->busy_count);
	srv->busy_logged = now;
	srv->busy_count = 0;
}

/* Out of descriptors: the spare one makes room to take the connection,
 * say why it is refused and close it.  Returns 0 when it did, 1 when no
 * connection was waiting after all, -1 when it could not. */
static int accept_busy(struct kq__tn_server *srv, int lfd)
{
	static const char text[] =
		"ERR BUSY out of file descriptors; try again later\r\n";
	int fd, err;

	if (srv->spare_fd < 0)
		return -1;
	close(srv->spare_fd);
	srv->spare_fd = -1;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	err = errno;
	if (fd >= 0) {
		char drain[4096];

		/* Best effort: a fresh socket's buffer takes one line.  What
		 * the client already sent is read first, or closing would
		 * reset the connection and the line could be lost. */
		if (send(fd, text, sizeof(text) - 1, MSG_NOSIGNAL) < 0)
			err = errno;
		shutdown(fd, SHUT_WR);
		while (recv(fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
			;
		close(fd);
		srv->busy_count++;
	}
	spare_take(srv);
	busy_log(srv);
	if (fd >= 0)
		return 0;
	return err == EAGAIN || err == EWOULDBLOCK ? 1 : -1;
}

static void on_listener(uv_poll_t *p, int status, int events)
{
	struct kq__tn_server *srv = p->data;
	int lfd, fd, r;

	if (srv->stopping ||
	    uv_fileno((uv_handle_t *)srv->listener, (uv_os_fd_t *)&lfd) != 0)
		return;
	if (status < 0) {
		LOG(srv, KQ_LOG_WARN, "accept on %s:%d: %s", srv->bind_host,
		    srv->port, uv_strerror(status));
		accept_pause(srv);
		return;
	}
	for (int i = 0; i < ACCEPT_BURST && !srv->stopping; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			on_connection(srv, fd);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED: continue;
		case EMFILE:
		case ENFILE:
			r = accept_busy(srv, lfd);
			if (r == 0)
				continue;
			if (r > 0)
				return;
			/* No spare to answer with: wait for descriptors. */
			srv->busy_count++;
			busy_log(srv);
			accept_pause(srv);
			return;
		default:
			LOG(srv, KQ_LOG_WARN, "accept on %s:%d: %s",
			    srv->bind_host, srv->port, strerror(errno));
			accept_pause(srv);
			return;
		}
	}
}

/* ------------------------------------------------------------- server */

int kq__tn_server_init(const struct kq_host *host, void **state)
{
	struct kq__tn_server *srv;
	int r;

	if (!host->api || !host->loop)
		return KQ_ECONFIG;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->host = host;
	srv->api = host->api;
	srv->spare_fd = -1;
	r = read_config(srv);
	if (r < 0) {
		free(srv->bind_host);
		free(srv);
		return r;
	}
	*state = srv;
	return 0;
}

/* Whether the listener is bound to a loopback address only. */
static int loopback(const uv_tcp_t *t)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >>
			24) == 127;
	if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a =
			&((struct sockaddr_in6 *)&ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return 0;
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

int kq__tn_server_start(void *state)
{
	struct kq__tn_server *srv = state;
	struct addrinfo hints;
	uv_getaddrinfo_t gai;
	int lfd, one = 1;
	char port[16];
	int r;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(port, sizeof(port), "%d", srv->port);
	/* Without a callback the lookup runs synchronously. */
	r = uv_getaddrinfo(srv->host->loop, &gai, NULL, srv->bind_host, port,
			   &hints);
	if (r < 0) {
		/* Resolver codes are no errno values: say it here, and hand
		 * the core a code it can name. */
		LOG(srv, KQ_LOG_ERROR,
		    "telnet.host: cannot listen on \"%s\": %s (expected an "
		    "address or a host name of this machine)",
		    srv->bind_host, uv_strerror(r));
		return KQ_ECONFIG;
	}
	srv->listener = malloc(sizeof(*srv->listener));
	if (!srv->listener) {
		uv_freeaddrinfo(gai.addrinfo);
		return -ENOMEM;
	}
	r = uv_tcp_init(srv->host->loop, srv->listener);
	if (r < 0) {
		free(srv->listener);
		srv->listener = NULL;
		uv_freeaddrinfo(gai.addrinfo);
		return r;
	}
	srv->listener->data = srv;
	/* The socket is ours, not uv_listen()'s: libuv's accept drops
	 * connections silently when descriptors run out, ours answers them
	 * (on_listener). */
	lfd = socket(gai.addrinfo->ai_family,
		     SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen) != 0 ||
	    listen(lfd, 511) != 0) {
		r = -errno;
		if (lfd >= 0)
			close(lfd);
	} else {
		r = uv_tcp_open(srv->listener, lfd);
		if (r < 0)
			close(lfd);
	}
	uv_freeaddrinfo(gai.addrinfo);
	if (r == 0) {
		srv->lpoll = malloc(sizeof(*srv->lpoll));
		srv->pause = malloc(sizeof(*srv->pause));
		r = srv->lpoll && srv->pause ? 0 : -ENOMEM;
	}
	if (r == 0)
		r = uv_poll_init_socket(srv->host->loop, srv->lpoll, lfd);
	if (r < 0) {
		LOG(srv, KQ_LOG_ERROR, "cannot listen on %s:%d: %s",
		    srv->bind_host, srv->port, uv_strerror(r));
		free(srv->lpoll);
		free(srv->pause);
		srv->lpoll = NULL;
		srv->pause = NULL;
		uv_close((uv_handle_t *)srv->listener, free_handle);
		srv->listener = NULL;
		return r;
	}
	srv->lpoll->data = srv;
	uv_timer_init(srv->host->loop, srv->pause);
	srv->pause->data = srv;
	spare_take(srv);
	uv_poll_start(srv->lpoll, UV_READABLE, on_listener);
	srv->starve = malloc(sizeof(*srv->starve));
	if (srv->starve) {
		uv_timer_init(srv->host->loop, srv->starve);
		srv->starve->data = srv;
		/* It runs only while connections are stalled, and never
		 * keeps the loop alive by itself. */
		uv_unref((uv_handle_t *)srv->starve);
	}
	LOG(srv, KQ_LOG_INFO, "listening on %s:%d", srv->bind_host, srv->port);
	if (!srv->password_len && !loopback(srv->listener))
		LOG(srv, KQ_LOG_WARN,
		    "%s:%d can be reached from other machines and no "
		    "telnet.password_file is set: anyone who can connect can "
		    "read and write every topic",
		    srv->bind_host, srv->port);
	return 0;
}

static void on_server_handle_closed(uv_handle_t *h);

/* Stop ends when the listener and every connection are closed; the two
 * timers close last, one after the other, then done() runs once. */
static void srv_check_done(struct kq__tn_server *srv)
{
	uv_handle_t *timer = srv->grace ? (uv_handle_t *)srv->grace
					: (uv_handle_t *)srv->starve;

	if (!srv->stopping || srv->done_called || srv->listener ||
	    srv->nhandles > 0)
		return;
	if (timer) {
		if (!uv_is_closing(timer))
			uv_close(timer, on_server_handle_closed);
		return;
	}
	srv->done_called = 1;
	if (srv->done)
		srv->done(srv->done_ctx);
}

/* The listener's or a timer's close: forget it, then see if stop is done. */
static void on_server_handle_closed(uv_handle_t *h)
{
	struct kq__tn_server *srv = h->data;

	if (h == (uv_handle_t *)srv->listener)
		srv->listener = NULL;
	else if (h == (uv_handle_t *)srv->grace)
		srv->grace = NULL;
	else if (h == (uv_handle_t *)srv->starve)
		srv->starve = NULL;
	free(h);
	srv_check_done(srv);
}

static void on_grace(uv_timer_t *t)
{
	struct kq__tn_server *srv = t->data;
	struct kq__tn_conn *c;

	LOG(srv, KQ_LOG_WARN, "stop: closing connections with unsent answers");
	for (c = srv->conns; c; c = c->next)
		kq__tn_close(c);
}

void kq__tn_server_stop(void *state, void (*done)(void *ctx), void *ctx)
{
	struct kq__tn_server *srv = state;
	struct kq__tn_conn *c;

	srv->stopping = 1;
	srv->done = done;
	srv->done_ctx = ctx;
	/* Closed in this order, the listener's callback comes last. */
	if (srv->lpoll) {
		uv_close((uv_handle_t *)srv->lpoll, free_handle);
		uv_close((uv_handle_t *)srv->pause, free_handle);
		srv->lpoll = NULL;
		srv->pause = NULL;
	}
	if (srv->listener && !uv_is_closing((uv_handle_t *)srv->listener))
		uv_close((uv_handle_t *)srv->listener, on_server_handle_closed);
	srv->grace = malloc(sizeof(*srv->grace));
	if (srv->grace) {
		uv_timer_init(srv->host->loop, srv->grace);
		srv->grace->data = srv;
		uv_timer_start(srv->grace, on_grace, STOP_GRACE_MS, 0);
	}
	for (c = srv->conns; c; c = c->next) {
		if (c->closing)
			continue;
		if (c->cons_slot)
			c->srv->cmd.cons_abort(c);
		c->held = NULL;
		conn_process(c);
	}
	srv_check_done(srv);
}

void kq__tn_server_fini(void *state)
{
	struct kq__tn_server *srv = state;
	struct kq__tn_slot *s;

	if (!srv)
		return;
	while (srv->conns) {
		struct kq__tn_conn *c = srv->conns;

		LOG(srv, KQ_LOG_WARN,
		    "fini: a connection still awaits %u broker callbacks",
		    c->inflight);
		c->closed = 1;
		c->inflight = 0;
		conn_maybe_free(c);
	}
	while ((s = srv->free_slots)) {
		srv->free_slots = s->next;
		kq__tn_buf_free(&s->out);
		free(s);
	}
	if (srv->spare_fd >= 0)
		close(srv->spare_fd);
	free(srv->bind_host);
	free(srv);
}
