/* telnet transport: the server's life.  Its configuration, the listener
 * (accepting on our own socket, so that running out of descriptors is
 * answered rather than dropped), start, and a stop that lets clients take
 * their answers.  Each accepted socket becomes a connection (conn.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <kafkaesque/config.h>
#include <kafkaesque/kafkaesque.h>

#include "telnet.h"

/* How long stop() waits for clients to take their answers. */
#define STOP_GRACE_MS 5000

/* Connections taken per readiness of the listener, so that a flood does
 * not starve the connections already open. */
#define ACCEPT_BURST 64

/* How long accepting pauses when no descriptor can be had even to answer
 * (no spare left), and how often running out is logged. */
#define ACCEPT_PAUSE_MS 100
#define BUSY_LOG_MS	10000

/* ---------------------------------------------------------------- config */

const char *const kq__tn_config_keys[] = {"host",
					  "port",
					  "max_line",
					  "max_connections",
					  "max_input_bytes",
					  "stall_timeout_ms",
					  "password_file",
					  NULL};

static int read_config(struct kq__tn_server *srv)
{
	const struct kq_host *host = srv->host;
	const char *bind = "127.0.0.1", *password = NULL;
	int64_t port = 8080, max_line = KQ__TN_MAX_LINE_DEFAULT;
	int64_t max_conns = 1024, max_input = 128 << 20, stall = 30000;
	int rv;

	rv = kq_config_keys(host, kq__tn_config_keys);
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
	if (rv == 0 && password && kq__tn_password_read(srv, password))
		rv = KQ_ECONFIG;
	if (rv != 0)
		return rv;
	if (host->port)
		port = host->port; /* the broker's -port */
	srv->port = (int)port;
	srv->max_line = (size_t)max_line;
	srv->max_conns = (unsigned)max_conns;
	srv->stall_timeout_ms = (uint32_t)stall;
	srv->max_input = (size_t)max_input;
	srv->bind_host = strdup(bind);
	return srv->bind_host ? 0 : -ENOMEM;
}

static void srv_check_done(struct kq__tn_server *srv);

/* ---------------------------------------------------------------- accept */

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
	if (!srv->busy_count ||
	    !kq_ratelimit_allow(&srv->busy_log, uv_now(srv->host->loop),
				BUSY_LOG_MS, 1, NULL))
		return;
	KQ__TN_LOG(srv, KQ_LOG_WARN,
		   "out of file descriptors: %u connection(s) refused "
		   "(answered ERR "
		   "BUSY when a spare descriptor allowed)",
		   srv->busy_count);
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
		KQ__TN_LOG(srv, KQ_LOG_WARN, "accept on %s:%d: %s",
			   srv->bind_host, srv->port, uv_strerror(status));
		accept_pause(srv);
		return;
	}
	for (int i = 0; i < ACCEPT_BURST && !srv->stopping; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			kq__tn_conn_open(srv, fd);
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
			KQ__TN_LOG(srv, KQ_LOG_WARN, "accept on %s:%d: %s",
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
	srv->conn_closed = srv_check_done;
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

/* Clients that may hold half the descriptors or more leave too few for
 * the partitions' files and the cluster port: said once, at start. */
static void warn_descriptors(struct kq__tn_server *srv)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)srv->max_conns * 2 > rl.rlim_cur)
		KQ__TN_LOG(srv, KQ_LOG_WARN,
			   "telnet.max_connections (%u) is more than half the "
			   "open files limit (%llu): clients may take the "
			   "descriptors partitions need; lower it or raise "
			   "the limit",
			   srv->max_conns, (unsigned long long)rl.rlim_cur);
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
		KQ__TN_LOG(
			srv, KQ_LOG_ERROR,
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
		KQ__TN_LOG(srv, KQ_LOG_ERROR, "cannot listen on %s:%d: %s",
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
	KQ__TN_LOG(srv, KQ_LOG_INFO, "listening on %s:%d", srv->bind_host,
		   srv->port);
	if (!srv->password_len && !loopback(srv->listener))
		KQ__TN_LOG(srv, KQ_LOG_WARN,
			   "%s:%d can be reached from other machines and no "
			   "telnet.password_file is set: anyone who can "
			   "connect can "
			   "read and write every topic",
			   srv->bind_host, srv->port);
	warn_descriptors(srv);
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

	KQ__TN_LOG(srv, KQ_LOG_WARN,
		   "stop: closing connections with unsent answers");
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
		kq__tn_conn_process(c);
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

		KQ__TN_LOG(
			srv, KQ_LOG_WARN,
			"fini: a connection still awaits %u broker callbacks",
			c->inflight);
		c->closed = 1;
		c->inflight = 0;
		kq__tn_conn_free(c);
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
