/* libFuzzer target for the whole command path: bytes a client sends go
 * through the telnet transport into the real core (topics, groups,
 * publishing, consuming, the metadata state machine) over the `local`
 * consensus module and the `segment` storage module on an in-memory file
 * system, and the answers come back out.  No socket is opened: the few
 * libuv calls that touch the network are replaced at link time
 * (-Wl,--wrap), and the loop only runs idle, check, timer and close
 * callbacks.
 *
 * Input: text sent by up to four clients.  A byte 0x01 starts a control
 * pair; the byte after it says
 *   '0'..'3'  send what follows on that connection (opened on first use)
 *   'e'       the client half-closes (EOF) the current connection
 *   'r'       the connection fails (a read error)
 *   'h'       toggles holding the current connection's answers (a slow
 *             client, so the transport's backpressure kicks in)
 *   'p'       let everything queued so far run
 *   'c' N     deliver input in reads of N bytes (0: all at once)
 *   'f' N     after N more file changes, every change the storage makes
 *             fails (EIO when N is odd, else ENOSPC), as on a bad disk
 *   's'       stop the broker with commands in flight
 *   'F' L0 L1 the next L0 + 256 * L1 bytes are a request another broker
 *             forwarded (core/wire.h: CRTP, a batch of PUBS, a metadata
 *             record, a read), served by core/serve.c as
 *             the cluster port would
 *
 * Invariants checked for every input: no crash, leak or use after free
 * (ASan); every command read from a connection that closes by itself is
 * answered by exactly one status line, in order (PING's answer is where
 * PING's is due); every forwarded request gets exactly one well-formed
 * answer; memory stays bounded; the broker stops and every file, handle
 * and connection is released. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sanitizer/allocator_interface.h>

#include <kafkaesque/kafkaesque.h>

#include "api.h"
#include "apply.h"
#include "broker.h"
#include "defer.h"
#include "forward.h"
#include "instance.h"
#include "log.h"
#include "memfs.h"
#include "serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The modules, built into this program under their own entry names. */
const struct kq_plugin_desc *kq__fuzz_telnet_entry(void);
const struct kq_plugin_desc *kq__fuzz_local_entry(void);
const struct kq_plugin_desc *kq__fuzz_segment_entry(void);
const struct kq_plugin_desc *kq__fuzz_keyhash_entry(void);
const struct kq_plugin_desc *kq__fuzz_roundrobin_entry(void);

/* Small limits, so that the fuzzer reaches them. */
static const char config_text[] =
	"{\"broker\": {\"id\": 1, \"data_dir\": \"/kq-fuzz\"},"
	" \"plugins\": {\"transport\": \"telnet\","
	"   \"partitioner\": [\"keyhash\", \"roundrobin\"],"
	"   \"storage\": \"segment\", \"consensus\": \"local\"},"
	" \"telnet\": {\"max_line\": 512, \"max_connections\": 3},"
	" \"segment\": {\"segment_bytes\": 4096, \"fsync\": \"never\","
	"   \"index_interval_bytes\": 256},"
	" \"local\": {\"snapshot_every\": 0},"
	" \"topics\": {\"max_partitions\": 8}}";

#define NCONN	     4
#define MEMORY_BOUND ((size_t)128 << 20)
#define MAX_PENDING  (1u << 16)
#define STATUS_MAX   4096 /* longest output line looked at */
#define PUMP_ROUNDS  100000

static uv_loop_t loop;
static struct kq__config cfg;
static struct kq_broker *b;

/* ------------------------------------------------------------ clients */

/* What a client sees of its connection, and the answers it checks. */
struct client {
	uv_stream_t *stream; /* the transport's handle; NULL: none */
	uv_alloc_cb alloc;
	uv_read_cb read;
	int reading;
	int closed;   /* the transport closed the handle */
	int reset;    /* we failed it: answers may be missing */
	int want_eof; /* half-close once the input is delivered */
	int eof_sent;
	int want_fail; /* fail its next read */
	int accepting; /* inside the transport's accept */
	int hold;      /* answers are not taken */
	uint8_t *in;   /* input not yet delivered */
	size_t nin, capin;
	/* Output parsing: lines, or the bytes of a MSG body to skip. */
	char line[STATUS_MAX];
	size_t linelen;
	uint64_t skip;
	int iac; /* bytes of a telnet option reply still to skip */
	/* Commands started (in exec order) and status lines seen. */
	uint8_t *is_ping;
	size_t nexec, capexec;
	size_t nstatus;
};

static struct client clients[NCONN];
static size_t chunk; /* bytes per read; 0: all */
static int stopped;

/* The transport accepts on a socket of its own: its readiness callback
 * is captured by the wrapped uv_poll_start, accept4 hands it one end of a
 * socketpair that never carries data (reads and writes are wrapped), and
 * the wrapped uv_tcp_open ties the transport's handle to the client. */
static uv_poll_t *listen_poll;
static uv_poll_cb on_listener;
static struct client *accepting;
static int accept_fd = -1;

struct write {
	uv_write_t *req;
	uv_write_cb cb;
	struct client *cl;
};
static struct write *writes;
static size_t nwrites, capwrites;

static struct client *client_of(const void *stream)
{
	for (int i = 0; i < NCONN; i++)
		if (clients[i].stream == stream && stream)
			return &clients[i];
	return NULL;
}

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	*p = realloc(*p, n * elem);
	if (!*p)
		abort();
	*cap = n;
}

static void queue_write(uv_write_t *req, uv_write_cb cb, struct client *cl)
{
	grow((void **)&writes, &capwrites, nwrites + 1, sizeof(*writes));
	writes[nwrites++] = (struct write){req, cb, cl};
}

/* One complete output line: a status line, or a data line. */
static void on_line(struct client *cl)
{
	const char *l = cl->line;
	size_t n = cl->linelen;
	int ping;

	if (n >= 4 && memcmp(l, "MSG ", 4) == 0) {
		unsigned long long len = 0;
		const char *sp = memrchr(l, ' ', n);

		if (!sp)
			abort();
		for (sp++; sp < l + n; sp++) {
			if (*sp < '0' || *sp > '9')
				abort(); /* a malformed MSG header */
			len = len * 10 + (unsigned)(*sp - '0');
		}
		cl->skip = len + 2; /* the body and its CRLF */
		return;
	}
	if (!(n >= 2 && memcmp(l, "OK", 2) == 0 && (n == 2 || l[2] == ' ')) &&
	    !(n >= 4 && memcmp(l, "ERR ", 4) == 0))
		return;
	if (n >= 11 && memcmp(l, "ERR TOOLONG", 11) == 0)
		return; /* a line the transport never ran as a command */
	if (cl->accepting) {
		cl->reset = 1; /* refused (too many connections) */
		return;
	}
	/* The n-th status line answers the n-th command. */
	if (cl->nstatus >= cl->nexec)
		abort(); /* an answer nobody asked for */
	ping = n == 7 && memcmp(l, "OK PONG", 7) == 0;
	if (ping != cl->is_ping[cl->nstatus])
		abort(); /* answers out of order */
	cl->nstatus++;
}

static void parse_output(struct client *cl, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (cl->skip) {
			size_t k = cl->skip < n ? (size_t)cl->skip : n;

			cl->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		if (cl->iac) {
			cl->iac--;
			p++;
			n--;
			continue;
		}
		if (cl->linelen == 0 && *p == 0xff) {
			cl->iac = 3; /* IAC WONT/DONT <option> */
			continue;
		}
		if (*p == '\n') {
			if (cl->linelen && cl->line[cl->linelen - 1] == '\r')
				cl->linelen--;
			on_line(cl);
			cl->linelen = 0;
		} else if (cl->linelen < sizeof(cl->line)) {
			cl->line[cl->linelen++] = (char)*p;
		}
		p++;
		n--;
	}
}

/* ------------------------------------------------------------ libuv */

/* The wrapped calls; everything else of libuv is the real thing. */
int __wrap_uv_getaddrinfo(uv_loop_t *l, uv_getaddrinfo_t *req,
			  uv_getaddrinfo_cb cb, const char *node,
			  const char *service, const struct addrinfo *hints);
int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len);
int __wrap_listen(int fd, int backlog);
int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int __wrap_uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb);
int __wrap_uv_tcp_open(uv_tcp_t *h, uv_os_sock_t fd);
int __real_uv_tcp_open(uv_tcp_t *h, uv_os_sock_t fd);
int __wrap_uv_read_start(uv_stream_t *s, uv_alloc_cb alloc, uv_read_cb cb);
int __wrap_uv_read_stop(uv_stream_t *s);
int __wrap_uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[],
		    unsigned nbufs, uv_write_cb cb);
void __wrap_uv_close(uv_handle_t *h, uv_close_cb cb);
void __real_uv_close(uv_handle_t *h, uv_close_cb cb);
void __wrap_kq__tn_exec(void *c, char *line, size_t len);
void __real_kq__tn_exec(void *c, char *line, size_t len);

/* An address without a lookup; freeaddrinfo() releases it. */
int __wrap_uv_getaddrinfo(uv_loop_t *l, uv_getaddrinfo_t *req,
			  uv_getaddrinfo_cb cb, const char *node,
			  const char *service, const struct addrinfo *hints)
{
	struct addrinfo *ai;
	struct sockaddr_in *sin;

	(void)l, (void)cb, (void)node, (void)service, (void)hints;
	ai = calloc(1, sizeof(*ai) + sizeof(*sin));
	if (!ai)
		return UV_ENOMEM;
	sin = (struct sockaddr_in *)(ai + 1);
	sin->sin_family = AF_INET;
	ai->ai_family = AF_INET;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_addr = (struct sockaddr *)sin;
	ai->ai_addrlen = sizeof(*sin);
	req->addrinfo = ai;
	return 0;
}

/* The listening socket is never bound: nothing outside can reach it. */
int __wrap_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	(void)fd, (void)addr, (void)len;
	return 0;
}

int __wrap_listen(int fd, int backlog)
{
	(void)fd, (void)backlog;
	return 0;
}

int __wrap_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int s = accept_fd;

	(void)fd, (void)addr, (void)len, (void)flags;
	accept_fd = -1;
	if (s < 0) {
		errno = EAGAIN;
		return -1;
	}
	return s;
}

int __wrap_uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
	(void)events;
	listen_poll = h;
	on_listener = cb;
	return 0;
}

int __wrap_uv_tcp_open(uv_tcp_t *h, uv_os_sock_t fd)
{
	if (accepting && !accepting->stream)
		accepting->stream = (uv_stream_t *)h;
	return __real_uv_tcp_open(h, fd);
}

int __wrap_uv_read_start(uv_stream_t *s, uv_alloc_cb alloc, uv_read_cb cb)
{
	struct client *cl = client_of(s);

	if (!cl || cl->closed)
		abort();
	cl->alloc = alloc;
	cl->read = cb;
	cl->reading = 1;
	return 0;
}

int __wrap_uv_read_stop(uv_stream_t *s)
{
	struct client *cl = client_of(s);

	if (cl)
		cl->reading = 0;
	return 0;
}

int __wrap_uv_write(uv_write_t *req, uv_stream_t *s, const uv_buf_t bufs[],
		    unsigned nbufs, uv_write_cb cb)
{
	struct client *cl = client_of(s);

	if (!cl || cl->closed)
		abort(); /* a write on a closed connection */
	for (unsigned i = 0; i < nbufs; i++)
		parse_output(cl, (const uint8_t *)bufs[i].base, bufs[i].len);
	req->handle = s;
	queue_write(req, cb, cl);
	return 0;
}

/* The transport ran out of things to say: check what it said. */
static void client_closed(struct client *cl)
{
	cl->closed = 1;
	cl->reading = 0;
	if (getenv("KQ_FUZZ_DEBUG"))
		fprintf(stderr, "closed: %zu commands, %zu answers\n",
			cl->nexec, cl->nstatus);
	if (!cl->reset && cl->nstatus != cl->nexec)
		abort(); /* a command left unanswered */
}

/* libuv cancels a closing stream's writes before its close callback
 * runs; here that happens right away, which the transport allows (its
 * write callback only notes that the write ended). */
static void cancel_writes(struct client *cl)
{
	size_t k = 0;

	for (size_t i = 0; i < nwrites; i++) {
		if (writes[i].cl != cl) {
			writes[k++] = writes[i];
			continue;
		}
		writes[i].cb(writes[i].req, UV_ECANCELED);
	}
	nwrites = k;
}

void __wrap_uv_close(uv_handle_t *h, uv_close_cb cb)
{
	struct client *cl = client_of(h);

	if (cl) {
		client_closed(cl);
		cancel_writes(cl);
	}
	__real_uv_close(h, cb);
}

void __wrap_kq__tn_exec(void *c, char *line, size_t len)
{
	struct client *cl = NULL;
	size_t i = 0, j = len;

	/* The transport's connection starts with its handle. */
	cl = client_of(c);
	if (!cl)
		abort();
	while (i < j && (line[i] == ' ' || line[i] == '\t'))
		i++;
	while (j > i && (line[j - 1] == ' ' || line[j - 1] == '\t'))
		j--;
	grow((void **)&cl->is_ping, &cl->capexec, cl->nexec + 1, 1);
	cl->is_ping[cl->nexec++] =
		j - i == 4 && strncasecmp(line + i, "PING", 4) == 0;
	__real_kq__tn_exec(c, line, len);
}

/* ------------------------------------------------------------ driving */

/* Completes queued writes in order, except those of held clients. */
static int deliver_writes(void)
{
	struct write *list = writes;
	size_t n = nwrites;
	int done = 0;

	if (!n)
		return 0;
	/* Callbacks may queue more writes, after the held ones. */
	writes = NULL;
	nwrites = capwrites = 0;
	for (size_t i = 0; i < n; i++) {
		if (list[i].cl->hold) {
			queue_write(list[i].req, list[i].cb, list[i].cl);
			continue;
		}
		done = 1;
		list[i].cb(list[i].req, 0);
	}
	free(list);
	return done;
}

static int deliver_input(struct client *cl)
{
	int done = 0;

	while (cl->stream && !cl->closed && cl->reading) {
		uv_buf_t buf = uv_buf_init(NULL, 0);
		size_t n = cl->nin;

		if (cl->want_fail) {
			cl->want_fail = 0;
			cl->reset = 1;
			cl->read(cl->stream, UV_ECONNRESET, &buf);
			return 1;
		}
		if (n == 0) {
			if (!cl->want_eof || cl->eof_sent)
				break;
			cl->eof_sent = 1;
			cl->read(cl->stream, UV_EOF, &buf);
			return 1;
		}
		cl->alloc((uv_handle_t *)cl->stream, 65536, &buf);
		if (chunk && n > chunk)
			n = chunk;
		if (n > buf.len)
			n = buf.len;
		memcpy(buf.base, cl->in, n);
		memmove(cl->in, cl->in + n, cl->nin - n);
		cl->nin -= n;
		cl->read(cl->stream, (ssize_t)n, &buf);
		done = 1;
	}
	return done;
}

static size_t baseline; /* bytes allocated when the input started */

static void check_memory(void)
{
	if (__sanitizer_get_current_allocated_bytes() > baseline + MEMORY_BOUND)
		abort(); /* unbounded growth */
}

/* Runs everything that can run until nothing moves. */
static void pump(void)
{
	for (int round = 0; round < PUMP_ROUNDS; round++) {
		int moved = deliver_writes();

		for (int i = 0; i < NCONN; i++)
			moved |= deliver_input(&clients[i]);
		if (b)
			kq__broker_flush(b); /* as the check handle does */
		uv_run(&loop, UV_RUN_NOWAIT);
		check_memory();
		/* Settled: nothing delivered, no flush wanted, no handle
		 * waiting for its close callback.  Timers (the transport's
		 * stop grace period) are left alone. */
		if (!moved && !(b && uv_is_active((uv_handle_t *)&b->idle)) &&
		    !loop.closing_handles)
			return;
	}
	abort(); /* never settles */
}

static struct client *client_get(int i)
{
	struct client *cl = &clients[i];

	if (cl->stream && !cl->closed)
		return cl;
	if (stopped)
		return NULL;
	free(cl->in);
	free(cl->is_ping);
	memset(cl, 0, sizeof(*cl));
	{
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			abort();
		close(sv[1]);
		accept_fd = sv[0];
	}
	accepting = cl;
	cl->accepting = 1;
	on_listener(listen_poll, 0, UV_READABLE);
	cl->accepting = 0;
	accepting = NULL;
	if (accept_fd >= 0) {
		close(accept_fd); /* the transport did not take it */
		accept_fd = -1;
	}
	return cl->stream && !cl->closed ? cl : NULL;
}

static void send_bytes(struct client *cl, const uint8_t *p, size_t n)
{
	if (!cl || cl->want_eof || cl->nin + n > MAX_PENDING)
		return; /* a client that said it was done says no more */
	grow((void **)&cl->in, &cl->capin, cl->nin + n, 1);
	memcpy(cl->in + cl->nin, p, n);
	cl->nin += n;
}

/* ------------------------------------------------------------ broker */

/* A module linked in, with the host table the broker lends a loaded one
 * (its log lines are dropped: see the log level set at start). */
static void instance(struct kq__instance *in, const char *name,
		     const struct kq_plugin_desc *desc)
{
	memset(in, 0, sizeof(*in));
	in->mod.name = strdup(name);
	in->mod.desc = desc;
	kq__instance_host(b, in, desc->kind);
}

/* Forwarded requests served and not yet answered. */
static long served_open;

/* A read's answer (core/wire.h): status, a message of at most 255
 * bytes, next, end, then `count` records that fill the rest exactly. */
static void check_read_answer(const uint8_t *a, size_t len)
{
	struct kq_reader r = {a, len, 0};
	int32_t status = (int32_t)kq_take32le(&r);
	uint16_t n = kq_take16le(&r);
	uint32_t count;

	kq_take(&r, n);
	kq_take64le(&r);
	kq_take64le(&r);
	count = kq_take32le(&r);
	for (uint32_t i = 0; i < count; i++) {
		kq_take64le(&r);
		kq_take(&r, kq_take32le(&r));
	}
	if (r.bad || r.left || n > 255 || status > 0)
		abort();
}

/* The consensus module's reply, checking the answer's shape: status,
 * moved, a message of at most 255 bytes, three numbers; a read's as
 * above. */
static void fuzz_reply(void *state, struct kq_incoming *in, const void *buf,
		       size_t len)
{
	const uint8_t *a = buf;
	int32_t status, moved;

	(void)state;
	if (*(uint8_t *)in == KQ__FWD_FETCH) {
		check_read_answer(a, len);
	} else {
		if (len < 30 || len > 30 + 255 || (size_t)a[8] + 30 != len ||
		    a[9])
			abort();
		memcpy(&status, a, 4);
		memcpy(&moved, a + 4, 4);
		if (status > 0 || moved < -1)
			abort();
	}
	if (--served_open < 0)
		abort(); /* answered twice */
	free(in);
}

static struct kq_consensus_ops fuzz_cops;

static void serve_forwarded(const uint8_t *req, size_t len)
{
	/* Its own allocation, so that ASan sees a second answer. */
	struct kq_incoming *in = malloc(1);

	if (!in)
		abort();
	*(uint8_t *)in = len ? req[0] : 0; /* the answer's shape */
	served_open++;
	kq__serve(&b->consensus.host, in, 2, req, len);
}

/* What kq__broker_open() does, with the modules linked in instead of
 * loaded, and the data folder in memory.  The order is the same:
 * storage, consensus, partitioners, metadata, then the transport. */
static void broker_open(void)
{
	static const int ids[1] = {1};
	const struct kq_transport_ops *tops;

	b = calloc(1, sizeof(*b));
	if (!b)
		abort();
	b->loop = &loop;
	b->cfg = &cfg;
	b->lock_fd = -1; /* the folder is in memory: no lock */
	b->done_tail = &b->done;
	b->sub_waiting_tail = &b->sub_waiting;
	b->dir = strdup("/kq-fuzz/kafkaesque-1");
	b->nbroker_ids = 1;
	b->broker_ids = malloc(sizeof(ids));
	memcpy(b->broker_ids, ids, sizeof(ids));
	kq__broker_init_handles(b, &loop);
	kq__memfs_mkdir(b->dir);
	if (kq__broker_api.session_open(b, &b->serve_session) != 0)
		abort();

	b->transports = calloc(1, sizeof(*b->transports));
	b->partitioners = calloc(2, sizeof(*b->partitioners));
	instance(&b->storage, "segment", kq__fuzz_segment_entry());
	instance(&b->consensus, "local", kq__fuzz_local_entry());
	instance(&b->partitioners[0], "keyhash", kq__fuzz_keyhash_entry());
	instance(&b->partitioners[1], "roundrobin",
		 kq__fuzz_roundrobin_entry());
	instance(&b->transports[0], "telnet", kq__fuzz_telnet_entry());
	b->npartitioners = 2;
	b->ntransports = 1;
	b->sops = b->storage.mod.desc->ops;
	fuzz_cops =
		*(const struct kq_consensus_ops *)b->consensus.mod.desc->ops;
	fuzz_cops.reply = fuzz_reply;
	b->cops = &fuzz_cops;
	if (b->sops->init(&b->storage.host, &b->storage.state) != 0 ||
	    b->cops->init(&b->consensus.host, &b->consensus.state) != 0)
		abort();
	b->storage.started = b->consensus.started = 1;
	for (int i = 0; i < 2; i++) {
		const struct kq_partitioner_ops *pops =
			b->partitioners[i].mod.desc->ops;

		if (pops->init(&b->partitioners[i].host,
			       &b->partitioners[i].state) != 0)
			abort();
		b->partitioners[i].started = 1;
	}
	b->sync_interval_ms = 1000;
	b->sync_policy =
		b->sops->sync_policy(b->storage.state, &b->sync_interval_ms);
	if (kq__apply_open(b) != 0)
		abort();
	tops = b->transports[0].mod.desc->ops;
	if (tops->init(&b->transports[0].host, &b->transports[0].state) != 0)
		abort();
	b->transports[0].started = 1;
	if (tops->start(b->transports[0].state) != 0 || !on_listener)
		abort();
	b->serving = 1; /* new topics open a slice at a time, as served */
	kq__defer_wake(b);
}

static void broker_close(void)
{
	if (!stopped)
		kq__broker_stop(b);
	stopped = 1;
	pump();
	if (b->stopping != 2)
		abort(); /* the stop never finished */
	kq__broker_close(b);
	b = NULL;
	uv_run(&loop, UV_RUN_NOWAIT);
}

/* ------------------------------------------------------------ entry */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];

	(void)argc, (void)argv;
	/* Below every level: damaged data is expected here, not news. */
	kq__log_set_level((enum kq_log_level) - 1);
	if (uv_loop_init(&loop) != 0 ||
	    kq__config_parse(config_text, NULL, &cfg, err, sizeof(err)) != 0)
		abort();
	kq__memfs_install();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client *cur;
	size_t i = 0;

	chunk = 0;
	stopped = 0;
	baseline = __sanitizer_get_current_allocated_bytes();
	kq__memfs_set_limit((size_t)16 << 20);
	broker_open();
	cur = client_get(0);
	while (i < size) {
		const uint8_t *soh = memchr(data + i, 0x01, size - i);
		size_t n = soh ? (size_t)(soh - (data + i)) : size - i;
		uint8_t op;

		if (n) {
			send_bytes(cur, data + i, n);
			i += n;
			pump();
			continue;
		}
		if (i + 1 >= size)
			break;
		op = data[i + 1];
		i += 2;
		switch (op) {
		case '0':
		case '1':
		case '2':
		case '3': cur = client_get(op - '0'); break;
		case 'e':
			if (cur)
				cur->want_eof = 1;
			break;
		case 'r':
			if (cur)
				cur->want_fail = 1;
			break;
		case 'h':
			if (cur)
				cur->hold = !cur->hold;
			break;
		case 'c':
			if (i < size)
				chunk = data[i++];
			break;
		case 'f':
			if (i < size)
				kq__memfs_fail_after(
					data[i], data[i] & 1 ? EIO : ENOSPC);
			i += i < size;
			break;
		case 's':
			if (!stopped)
				kq__broker_stop(b);
			stopped = 1;
			break;
		case 'F': {
			size_t flen =
				i + 1 < size ? data[i] + 256u * data[i + 1] : 0;

			i += i + 1 < size ? 2 : size - i;
			if (flen > size - i)
				flen = size - i;
			if (!stopped)
				serve_forwarded(data + i, flen);
			i += flen;
			break;
		}
		default: break;
		}
		pump();
	}
	/* Every client takes its answers and says goodbye. */
	for (int k = 0; k < NCONN; k++) {
		clients[k].hold = 0;
		clients[k].want_eof = 1;
	}
	pump();
	broker_close();
	for (int k = 0; k < NCONN; k++) {
		if (clients[k].stream && !clients[k].closed)
			abort(); /* a connection outlived the broker */
		free(clients[k].in);
		free(clients[k].is_ping);
	}
	memset(clients, 0, sizeof(clients));
	if (nwrites)
		abort();
	if (uv_loop_alive(&loop))
		abort(); /* a handle or request left behind */
	if (kq__memfs_reset() != 0)
		abort(); /* a file left open */
	if (served_open)
		abort(); /* a forwarded request never answered */
	return 0;
}
