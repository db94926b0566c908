/* telnet transport: state shared by the connection layer (server.c,
 * conn.c, auth.c) and the command layer (commands.c), which plugin.c
 * joins.  Calls run one way: commands.c uses the connection layer, which
 * reaches the commands only through the server's hooks (srv->cmd); the
 * server opens connections, which tell it they closed through
 * srv->conn_closed.  Internal to the module. */
#ifndef KQ_TELNET_TELNET_H
#define KQ_TELNET_TELNET_H

#include <stddef.h>
#include <stdint.h>

#include <kafkaesque/ratelimit.h>
#include <kafkaesque/transport.h>

#include "buf.h"
#include "parse.h"

/* Longest topic or group name the protocol allows. */
#define KQ__TN_NAME_MAX 249

/* Pending output (gathered plus being written) above which a connection
 * stops reading commands and a CONS pauses; reading resumes below the low
 * mark. */
#define KQ__TN_OUT_HIGH ((size_t)1 << 20)
#define KQ__TN_OUT_LOW	((size_t)256 << 10)
/* A connection stops parsing while this many message bytes of its PUBS
 * are in flight (held by the broker until stored), and goes on below the
 * low mark: 4,096 PUBS of up to max_line each would be gigabytes. */
#define KQ__TN_PUBS_HIGH ((size_t)16 << 20)
#define KQ__TN_PUBS_LOW	 ((size_t)8 << 20)

/* Longest password telnet.password_file may hold. */
#define KQ__TN_PASSWORD_MAX 1024

/* AUTH failures a connection may make; the last one closes it. */
#define KQ__TN_AUTH_TRIES 5

/* Bytes a CONS asks the broker for per consume_next() call. */
#define KQ__TN_CONS_BUDGET ((size_t)256 << 10)

struct kq__tn_conn;
struct kq__tn_server;

/* One command's place in a connection's answer order.  Allocated by
 * kq__tn_slot_new() and owned by the connection's queue; when the
 * connection closes while a broker request is in flight, the request owns
 * it (`orphan`) until the callback releases it. */
struct kq__tn_slot {
	struct kq__tn_slot *next;
	struct kq__tn_conn *conn;
	int pubs;	  /* a PUBS, which may run beside other PUBS */
	size_t pub_bytes; /* its message's, counted in conn->pub_bytes */
	int done;	  /* the answer in `out` is complete */
	int inflight;	  /* a broker callback is still to come */
	int orphan;	  /* the connection closed; only the callback remains */
	struct kq__tn_buf out;		/* the answer so far */
	char name[KQ__TN_NAME_MAX + 1]; /* the topic CRTP echoes */
	struct kq_req req;
};

/* One client connection; owned by its server, freed once its handle is
 * closed and no broker callback is outstanding. */
struct kq__tn_conn {
	uv_tcp_t tcp;
	struct kq__tn_server *srv;
	struct kq__tn_conn *prev, *next; /* the server's list */
	struct kq_session *session;	 /* NULL for a refused connection */
	struct kq__tn_framer fr;

	/* Input not yet parsed: `in` points into the server's read buffer
	 * during a read callback, else into `pend`. */
	const char *in;
	size_t inlen, inoff;
	struct kq__tn_buf pend;
	/* A parsed line that must wait for earlier commands; it lives in
	 * the framer's buffer. */
	char *held;
	size_t heldlen;

	/* The answer queue, oldest first. */
	struct kq__tn_slot *head, *tail;
	unsigned nslots;     /* queued slots */
	unsigned nbusy;	     /* queued slots not done */
	unsigned nbusy_pubs; /* of which PUBS */
	/* Bytes of the answers done in slots and not yet moved to `out`
	 * (behind one not done): they count toward the output bound. */
	size_t done_bytes;
	size_t pub_bytes;  /* message bytes of PUBS in flight */
	unsigned inflight; /* broker callbacks still to come */

	struct kq__tn_buf out;	/* gathered, not yet handed to uv_write */
	struct kq__tn_buf wbuf; /* being written */
	uv_write_t wreq;

	/* The CONS in progress; always the head slot. */
	struct kq_consume cons;
	struct kq__tn_slot *cons_slot;
	char errmsg[256];
	unsigned auth_failures;

	size_t charged;	     /* input buffers counted in srv->in_used */
	uint64_t line_since; /* loop time the partial line began */

	unsigned writing : 1;
	unsigned reading : 1;
	unsigned stalled : 1; /* not read while the input budget is used up */
	unsigned in_line : 1; /* a partial line is buffered since line_since */
	unsigned throttled : 1;
	unsigned processing : 1;
	unsigned again : 1;
	unsigned eof : 1;     /* the client sent all it will send */
	unsigned quit : 1;    /* QUIT answered: close once written */
	unsigned refused : 1; /* over the limit: one ERR, then close */
	unsigned counted : 1; /* counted against max_connections */
	unsigned authed : 1;  /* AUTH succeeded (or no password is set) */
	unsigned closing : 1; /* uv_close() called */
	unsigned closed : 1;  /* the handle's close callback ran */
};

/* What the connection layer asks of the command layer; see commands.c
 * below for each. */
struct kq__tn_commands {
	void (*exec)(struct kq__tn_conn *c, char *line, size_t len);
	int (*can_start)(const struct kq__tn_conn *c, const char *line,
			 size_t len);
	void (*cons_pump)(struct kq__tn_conn *c);
	void (*cons_abort)(struct kq__tn_conn *c);
};

/* The module instance. */
struct kq__tn_server {
	const struct kq_host *host;
	struct kq__tn_commands cmd; /* set by plugin.c after init */
	/* Set by server.c: a connection's handle closed, so a stop may be
	 * done (conn.c does not call up into the server). */
	void (*conn_closed)(struct kq__tn_server *srv);
	const struct kq_broker_api *api;
	char *bind_host;
	int port;
	size_t max_line;
	unsigned max_conns;
	size_t max_input;	   /* input buffered over every connection */
	size_t in_used;		   /* what connections hold now (charged) */
	unsigned stalled;	   /* connections not read for the budget */
	uint32_t stall_timeout_ms; /* then a stalled connection is closed */
	uv_timer_t *starve;	   /* checks stalled connections; own
				    * allocation, NULL once closed */
	/* The password, zero-padded so that every comparison reads the
	 * whole buffer; password_len 0 when none is configured. */
	unsigned char password[KQ__TN_PASSWORD_MAX];
	size_t password_len;
	struct kq_ratelimit auth_log; /* failed AUTH lines */

	uv_tcp_t *listener; /* own allocation; NULL once closed */
	uv_poll_t *lpoll;   /* readiness of the listener's socket; we accept
			     * ourselves to answer even without
			     * descriptors; own allocation */
	uv_timer_t *pause;  /* resumes accepting after a pause; own
			     * allocation */
	int spare_fd;	    /* held open, given up to accept-answer-close a
			     * connection when descriptors run out; -1 */
	struct kq_ratelimit busy_log; /* out-of-descriptor lines */
	unsigned busy_count; /* connections refused since the last one */
	uv_timer_t *grace;   /* bounds stop(); own allocation */
	struct kq__tn_conn *conns;
	unsigned nlive;	   /* connections counted against max_conns */
	unsigned nhandles; /* connection handles not yet closed */
	struct kq__tn_slot *free_slots;
	unsigned nfree;

	uint64_t nwrites; /* uv_write calls, for tests and statistics */

	int stopping;
	int done_called;
	void (*done)(void *ctx);
	void *done_ctx;

	char rbuf[64 * 1024]; /* shared read buffer, see kq__tn_conn.in */
};

#define KQ__TN_LOG(srv, lvl, ...)                                              \
	(srv)->host->log((srv)->host, (lvl), __VA_ARGS__)

/* The keys of the telnet section, NULL-terminated (server.c). */
extern const char *const kq__tn_config_keys[];

/* server.c: the server behind the module's ops (plugin.c); see struct
 * kq_transport_ops.  init leaves srv->cmd to the caller. */
int kq__tn_server_init(const struct kq_host *host, void **state);
int kq__tn_server_start(void *state);
void kq__tn_server_stop(void *state, void (*done)(void *ctx), void *ctx);
void kq__tn_server_fini(void *state);

/* conn.c */

/* Takes an accepted socket `fd` (owned from here on) as a connection,
 * or answers it ERR BUSY and closes it when over max_connections. */
void kq__tn_conn_open(struct kq__tn_server *srv, int fd);

/* Parses what c has buffered, starts what may start, writes what is
 * answered, and reads again or closes as its state says. */
void kq__tn_conn_process(struct kq__tn_conn *c);

/* Frees c once it is closed and no broker callback is outstanding. */
void kq__tn_conn_free(struct kq__tn_conn *c);

/* Queues a new slot at the tail of c's answer order; NULL when out of
 * memory.  The slot belongs to the queue. */
struct kq__tn_slot *kq__tn_slot_new(struct kq__tn_conn *c, int pubs);

/* Marks s's answer complete so it can be written in turn. */
void kq__tn_slot_finish(struct kq__tn_conn *c, struct kq__tn_slot *s);

/* Called from a request callback for a slot whose connection closed:
 * returns the slot to the server and frees the connection when this was
 * its last outstanding callback. */
void kq__tn_slot_orphan_done(struct kq__tn_slot *s);

/* Moves the complete answers at the head of the queue to c->out. */
void kq__tn_flush_slots(struct kq__tn_conn *c);

/* Hands c->out to uv_write unless a write is in flight. */
void kq__tn_flush(struct kq__tn_conn *c);

/* Output bytes gathered or being written. */
size_t kq__tn_pending(const struct kq__tn_conn *c);

/* Closes the connection (idempotent); memory goes once callbacks are in. */
void kq__tn_close(struct kq__tn_conn *c);

/* auth.c */

/* Reads the password: the file's bytes up to an optional final line end.
 * Returns 0, or nonzero with the reason logged. */
int kq__tn_password_read(struct kq__tn_server *srv, const char *path);

/* 1 when `word` (len bytes) is the configured password.  Takes the same
 * time whatever the bytes and however much of them match. */
int kq__tn_password_ok(const struct kq__tn_server *srv, const char *word,
		       size_t len);

/* Logs a failed AUTH of c, naming the peer; at most a few lines every
 * few seconds for the whole server, then a count of those left out. */
void kq__tn_auth_log(struct kq__tn_conn *c);

/* commands.c */

/* Runs one non-blank command line; the line's bytes may be modified. */
void kq__tn_exec(struct kq__tn_conn *c, char *line, size_t len);

/* Whether `line` may start now, given the commands still running: PUBS
 * may run beside PUBS; anything else waits for every earlier command. */
int kq__tn_can_start(const struct kq__tn_conn *c, const char *line, size_t len);

/* Streams more of the CONS in progress while output is below the bound. */
void kq__tn_cons_pump(struct kq__tn_conn *c);

/* Ends the CONS in progress with `ERR UNAVAILABLE` (broker stopping). */
void kq__tn_cons_abort(struct kq__tn_conn *c);

#endif /* KQ_TELNET_TELNET_H */
