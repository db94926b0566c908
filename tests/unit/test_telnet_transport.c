/* Behaviour tests of the telnet transport: the module's sources run on a
 * real libuv loop against a fake broker, and a client thread talks to it
 * over loopback TCP. */
#include <stddef.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/kafkaesque.h>

#include "../../plugins/telnet/telnet.h"
#include "../fake_host.h"

const struct kq_plugin_desc *kq_plugin_entry(void);

/* ---------------------------------------------------------------- fake */

#define MAX_TOPICS 16
#define MAX_SUBS   64

struct fake_topic {
	char name[256];
	uint32_t parts;
	uint64_t next_offset;
};

struct fake_sub {
	uint64_t id;
	char topic[256];
	char group[256];
	int live;
};

/* The fake broker.  Touched by the loop thread only, except the counters
 * the client thread polls (atomics). */
static struct {
	int reverse; /* complete requests newest first */
	int hold;    /* keep requests until their session closes */
	struct kq_req **pending;
	size_t npending, cappending;
	size_t max_npending;
	uv_timer_t timer;
	int sessions_open, sessions_closed;
	struct fake_topic topics[MAX_TOPICS];
	int ntopics;
	struct fake_sub subs[MAX_SUBS];
	int nsubs;
	uint64_t cons_total; /* messages a CONS finds */
	size_t body_len;     /* pad message bodies to this length */
	int consume_calls;
	size_t max_pending_out;
} fake;

/* What the last CRTP and PUBS passed; kept across module runs. */
static char last_msg[4096];
static size_t last_len;
static char last_options[256];

struct kq_session {
	int id;
};

static int count_pending(void)
{
	return __atomic_load_n(&fake.npending, __ATOMIC_SEQ_CST);
}

static struct fake_topic *find_topic(const char *name)
{
	int i;

	for (i = 0; i < fake.ntopics; i++)
		if (strcmp(fake.topics[i].name, name) == 0)
			return &fake.topics[i];
	return NULL;
}

static struct fake_sub *find_sub(const char *topic, uint64_t id)
{
	int i;

	for (i = 0; i < fake.nsubs; i++)
		if (fake.subs[i].id == id && fake.subs[i].live &&
		    strcmp(fake.subs[i].topic, topic) == 0)
			return &fake.subs[i];
	return NULL;
}

static void add_topic(const char *name, uint32_t parts)
{
	struct fake_topic *t = &fake.topics[fake.ntopics++];

	snprintf(t->name, sizeof(t->name), "%s", name);
	t->parts = parts;
	t->next_offset = 0;
}

/* Runs the callbacks of every pending request.  priv.done_status holds
 * the status the request completes with. */
static void complete_pending(void)
{
	while (fake.npending > 0) {
		struct kq_req *r;

		if (fake.reverse) {
			r = fake.pending[fake.npending - 1];
		} else {
			r = fake.pending[0];
			memmove(fake.pending, fake.pending + 1,
				(fake.npending - 1) * sizeof(*fake.pending));
		}
		__atomic_sub_fetch(&fake.npending, 1, __ATOMIC_SEQ_CST);
		r->cb(r, r->priv.done_status);
	}
}

static void on_fake_timer(uv_timer_t *t)
{
	if (!fake.hold)
		complete_pending();
}

static void queue_req(struct kq_session *s, struct kq_req *r, int type,
		      int status, kq_req_cb cb)
{
	if (fake.npending == fake.cappending) {
		fake.cappending = fake.cappending ? 2 * fake.cappending : 64;
		fake.pending = realloc(fake.pending,
				       fake.cappending * sizeof(*fake.pending));
		assert_non_null(fake.pending);
	}
	r->type = type;
	r->cb = cb;
	r->session = s;
	r->priv.done_status = status;
	fake.pending[fake.npending] = r;
	__atomic_add_fetch(&fake.npending, 1, __ATOMIC_SEQ_CST);
	if (fake.npending > fake.max_npending)
		fake.max_npending = fake.npending;
	uv_timer_start(&fake.timer, on_fake_timer, 0, 0);
}

static int f_session_open(struct kq_broker *b, struct kq_session **out)
{
	*out = calloc(1, sizeof(**out));
	__atomic_add_fetch(&fake.sessions_open, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static void f_session_close(struct kq_session *s)
{
	__atomic_add_fetch(&fake.sessions_closed, 1, __ATOMIC_SEQ_CST);
	free(s);
	/* The broker still answers what was asked: cancel held requests. */
	if (fake.hold) {
		size_t i;

		for (i = 0; i < fake.npending; i++)
			fake.pending[i]->priv.done_status = KQ_ECANCELED;
		fake.hold = 0;
		uv_timer_start(&fake.timer, on_fake_timer, 0, 0);
	}
}

static int f_create_topic(struct kq_session *s, struct kq_req *r,
			  const struct kq_topic_spec *spec, kq_req_cb cb)
{
	size_t i, off = 0;

	last_options[0] = '\0';
	for (i = 0; i < spec->noptions; i++)
		off += (size_t)snprintf(last_options + off,
					sizeof(last_options) - off, "%s;",
					spec->options[i]);
	if (find_topic(spec->name)) {
		queue_req(s, r, KQ_REQ_CREATE_TOPIC, KQ_EEXISTS, cb);
		return 0;
	}
	add_topic(spec->name, spec->partitions ? spec->partitions : 1);
	r->result.create_topic.partitions = find_topic(spec->name)->parts;
	queue_req(s, r, KQ_REQ_CREATE_TOPIC, 0, cb);
	return 0;
}

static int f_publish(struct kq_session *s, struct kq_req *r, const char *topic,
		     const void *msg, size_t len, kq_req_cb cb)
{
	struct fake_topic *t = find_topic(topic);

	if (strcmp(topic, "refused") == 0) {
		snprintf(r->errmsg, sizeof(r->errmsg), "refused right away");
		return KQ_EUNAVAILABLE;
	}
	if (!t) {
		snprintf(r->errmsg, sizeof(r->errmsg), "no topic %s", topic);
		queue_req(s, r, KQ_REQ_PUBLISH, KQ_ENOTOPIC, cb);
		return 0;
	}
	assert_true(len < sizeof(last_msg));
	memcpy(last_msg, msg, len);
	last_len = len;
	r->result.publish.partition = 0;
	r->result.publish.offset = t->next_offset++;
	queue_req(s, r, KQ_REQ_PUBLISH, 0, cb);
	return 0;
}

static int f_subscribe(struct kq_session *s, struct kq_req *r,
		       const char *topic, const char *group, uint32_t cap,
		       kq_req_cb cb)
{
	struct fake_topic *t = find_topic(topic);
	struct fake_sub *sub;
	uint32_t i, n;

	if (!t) {
		queue_req(s, r, KQ_REQ_SUBSCRIBE, KQ_ENOTOPIC, cb);
		return 0;
	}
	sub = &fake.subs[fake.nsubs++];
	sub->id = (uint64_t)fake.nsubs;
	sub->live = 1;
	snprintf(sub->topic, sizeof(sub->topic), "%s", topic);
	snprintf(sub->group, sizeof(sub->group), "%s", group);
	n = cap && cap < t->parts ? cap : t->parts;
	r->result.subscribe.sub_id = sub->id;
	r->result.subscribe.nparts = n;
	r->result.subscribe.parts = malloc(n * sizeof(uint32_t) + 1);
	for (i = 0; i < n; i++)
		r->result.subscribe.parts[i] = i;
	queue_req(s, r, KQ_REQ_SUBSCRIBE, 0, cb);
	return 0;
}

static int f_unsubscribe(struct kq_session *s, struct kq_req *r,
			 const char *topic, uint64_t id, kq_req_cb cb)
{
	struct fake_sub *sub = find_sub(topic, id);

	if (sub)
		sub->live = 0;
	queue_req(s, r, KQ_REQ_UNSUBSCRIBE, sub ? 0 : KQ_ENOSUB, cb);
	return 0;
}

static void f_req_cleanup(struct kq_req *r)
{
	if (r->type == KQ_REQ_SUBSCRIBE) {
		free(r->result.subscribe.parts);
		r->result.subscribe.parts = NULL;
	}
}

/* A CONS yields messages m<offset> at offsets [0, cons_total) from
 * `from` on, `max` at most; with max 8 it fails at offset 7. */
struct fake_cursor {
	uint64_t off, end, delivered;
	int fails;
};

static int f_consume_open(struct kq_session *s, struct kq_consume *c,
			  const char *topic, uint64_t id, int64_t from,
			  uint64_t max, char *errmsg, size_t errlen)
{
	uint64_t start = from < 0 ? 0 : (uint64_t)from;
	uint64_t end = fake.cons_total > start ? fake.cons_total : start;
	struct fake_cursor *cur;

	if (!find_sub(topic, id)) {
		snprintf(errmsg, errlen, "no subscription %llu on %s",
			 (unsigned long long)id, topic);
		return KQ_ENOSUB;
	}
	if (max && max < end - start)
		end = start + max;
	cur = calloc(1, sizeof(*cur));
	assert_non_null(cur);
	cur->off = start;
	cur->end = end;
	cur->fails = max == 8;
	c->priv.cursor = cur;
	return 0;
}

static int f_consume_next(struct kq_consume *c, size_t budget, kq_message_cb cb,
			  void *ctx, char *errmsg, size_t errlen)
{
	struct fake_cursor *cur = c->priv.cursor;
	uint64_t off = cur->off, end = cur->end;
	size_t used = 0;
	size_t pending = kq__tn_pending(ctx);

	fake.consume_calls++;
	if (pending > fake.max_pending_out)
		fake.max_pending_out = pending;
	while (off < end && used < budget && !(cur->fails && off == 7)) {
		char body[256];
		struct kq_message m;

		m.partition = 0;
		m.offset = off;
		m.len = (size_t)snprintf(body, sizeof(body), "m%lu",
					 (unsigned long)off);
		if (m.len < fake.body_len) {
			memset(body + m.len, 'x', fake.body_len - m.len);
			m.len = fake.body_len;
		}
		m.data = body;
		if (cb(ctx, &m))
			break;
		used += m.len;
		off++;
		cur->delivered++;
	}
	cur->off = off;
	if (cur->fails && off == 7) {
		/* A read that fails part way. */
		snprintf(errmsg, errlen, "disk on fire");
		return KQ_EUNAVAILABLE;
	}
	return off < end;
}

static uint64_t f_consume_close(struct kq_consume *c)
{
	struct fake_cursor *cur = c->priv.cursor;
	uint64_t n = cur->delivered;

	free(cur);
	c->priv.cursor = NULL;
	return n;
}

static int f_list_topics(struct kq_broker *b,
			 void (*cb)(void *ctx, const char *name,
				    uint32_t partitions),
			 void *ctx)
{
	int i;

	for (i = 0; i < fake.ntopics; i++)
		cb(ctx, fake.topics[i].name, fake.topics[i].parts);
	return fake.ntopics;
}

static int f_describe(struct kq_broker *b, const char *topic,
		      void (*cb)(void *ctx, const struct kq_partition_info *p),
		      void *ctx, char *errmsg, size_t errlen)
{
	static const int replicas[] = {1, 2, 3};
	struct fake_topic *t = find_topic(topic);
	uint32_t i;

	if (!t)
		return KQ_ENOTOPIC;
	for (i = 0; i < t->parts; i++) {
		struct kq_partition_info p = {
			i, i == 0 ? 2 : 0, replicas, i == 0 ? 3 : 0,
			0, i * 10,	   0};

		cb(ctx, &p);
	}
	return (int)t->parts;
}

static int f_assignment(struct kq_broker *b, const char *topic, uint64_t id,
			void (*cb)(void *ctx, uint32_t partition), void *ctx,
			char *errmsg, size_t errlen)
{
	struct fake_topic *t = find_topic(topic);
	uint32_t i;

	if (!t || !find_sub(topic, id)) {
		snprintf(errmsg, errlen, "nope");
		return KQ_ENOSUB;
	}
	for (i = 0; i < t->parts && id == 1; i++)
		cb(ctx, i);
	return id == 1 ? (int)t->parts : 0;
}

/* The last commit the transport asked for. */
static int64_t commit_part;
static uint64_t commit_off;

static int f_commit(struct kq_session *s, struct kq_req *r, const char *topic,
		    uint64_t id, int64_t partition, uint64_t offset,
		    kq_req_cb cb)
{
	if (!find_sub(topic, id)) {
		snprintf(r->errmsg, sizeof(r->errmsg), "no such subscription");
		return KQ_ENOSUB;
	}
	commit_part = partition;
	commit_off = offset;
	r->result.commit.changed = partition < 0 ? 2 : 1;
	queue_req(s, r, KQ_REQ_COMMIT, 0, cb);
	return 0;
}

static int f_groups(struct kq_broker *b, const char *topic,
		    void (*cb)(void *ctx, const char *group, uint64_t sub_id,
			       const uint32_t *parts, uint32_t nparts),
		    void *ctx, char *errmsg, size_t errlen)
{
	static const uint32_t parts[] = {0, 1};
	int i, n = 0;

	for (i = 0; i < fake.nsubs; i++) {
		if (!fake.subs[i].live || strcmp(fake.subs[i].topic, topic))
			continue;
		cb(ctx, fake.subs[i].group, fake.subs[i].id, parts,
		   n == 0 ? 2 : 0);
		n++;
	}
	return n;
}

static int f_brokers(struct kq_broker *b,
		     void (*cb)(void *ctx, const struct kq_broker_info *bi),
		     void *ctx)
{
	struct kq_broker_info a = {1, "10.0.0.1", 8080, 1, 0, 4};
	struct kq_broker_info c = {2, "::1", 8081, 0, 1, 0};

	cb(ctx, &a);
	cb(ctx, &c);
	return 1;
}

static const struct kq_broker_api fake_api = {
	.session_open = f_session_open,
	.session_close = f_session_close,
	.create_topic = f_create_topic,
	.publish = f_publish,
	.subscribe = f_subscribe,
	.unsubscribe = f_unsubscribe,
	.req_cleanup = f_req_cleanup,
	.consume_open = f_consume_open,
	.consume_next = f_consume_next,
	.consume_close = f_consume_close,
	.commit = f_commit,
	.list_topics = f_list_topics,
	.describe = f_describe,
	.assignment = f_assignment,
	.groups = f_groups,
	.brokers = f_brokers,
};

/* ---------------------------------------------------------------- harness */

static uv_loop_t loop;
static struct kq_host host;
static const struct kq_transport_ops *ops;
static void *tstate;
static uv_async_t stop_async;
static int port;
static int stopped;

/* A free port: bind port 0, read it, let it go. */
static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int p;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	p = ntohs(a.sin_port);
	close(fd);
	return p;
}

static void reset_fake(void)
{
	free(fake.pending);
	memset(&fake, 0, sizeof(fake));
}

/* Sets up the loop, the fake and the module with `config` (JSON text or
 * NULL), returning init's status. */
static int setup_module(const char *config)
{
	const struct kq_plugin_desc *d = kq_plugin_entry();
	json_t *cfg = NULL;
	int r;

	assert_int_equal(d->abi, KQ_PLUGIN_ABI);
	assert_int_equal(d->kind, KQ_PLUGIN_TRANSPORT);
	assert_string_equal(d->name, "telnet");
	ops = d->ops;
	reset_fake();
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &fake.timer);
	if (config) {
		cfg = json_loads(config, 0, NULL);
		assert_non_null(cfg);
	}
	host = kq__test_host("telnet", cfg);
	host.loop = &loop;
	host.api = &fake_api;
	host.broker = (struct kq_broker *)&fake;
	tstate = NULL;
	stopped = 0;
	fake.cons_total = 10;
	r = ops->init(&host, &tstate);
	return r;
}

static void on_stopped(void *ctx)
{
	stopped = 1;
	/* Like a broker shutting down: whatever is left is answered. */
	fake.hold = 0;
	complete_pending();
	uv_close((uv_handle_t *)&fake.timer, NULL);
}

static void on_stop_async(uv_async_t *a)
{
	uv_close((uv_handle_t *)a, NULL);
	ops->stop(tstate, on_stopped, NULL);
}

static void teardown_module(void)
{
	ops->fini(tstate);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);
	reset_fake();
}

/* Runs `client` in a thread against a started module until it returns,
 * then stops the module and drains the loop. */
static void run_with_client(const char *config, void *(*client)(void *),
			    void *arg)
{
	char cfg[256];
	pthread_t th;

	port = free_port();
	snprintf(cfg, sizeof(cfg), "{\"port\": %d%s%s}", port,
		 config ? ", " : "", config ? config : "");
	assert_int_equal(setup_module(cfg), 0);
	assert_int_equal(ops->start(tstate), 0);
	uv_async_init(&loop, &stop_async, on_stop_async);
	assert_int_equal(pthread_create(&th, NULL, client, arg), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	assert_true(stopped);
	assert_int_equal(fake.sessions_open, fake.sessions_closed);
	teardown_module();
}

/* ---------------------------------------------------------------- client */

/* What a client thread saw, checked by the main thread. */
struct transcript {
	char *data;
	size_t len, cap;
	const char *send; /* what to send */
	size_t sendlen;
};

static int cl_connect(void)
{
	struct sockaddr_in a;
	struct timeval tv = {60, 0}; /* only so a bug cannot hang the run */
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void cl_send(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t r = send(fd, c, n, MSG_NOSIGNAL);

		if (r <= 0)
			return;
		c += r;
		n -= (size_t)r;
	}
}

static void cl_sends(int fd, const char *s)
{
	cl_send(fd, s, strlen(s));
}

/* Reads until EOF (or an error) into t. */
static void cl_read_all(int fd, struct transcript *t)
{
	for (;;) {
		ssize_t r;

		if (t->cap - t->len < 65536) {
			t->cap = t->cap ? 2 * t->cap : 1 << 20;
			t->data = realloc(t->data, t->cap + 1);
		}
		r = recv(fd, t->data + t->len, t->cap - t->len, 0);
		if (r <= 0)
			break;
		t->len += (size_t)r;
	}
	t->data[t->len] = '\0';
}

/* Reads until the transcript ends with `end`. */
static void cl_read_until(int fd, struct transcript *t, const char *end)
{
	size_t n = strlen(end);

	for (;;) {
		ssize_t r;

		if (t->len >= n && memcmp(t->data + t->len - n, end, n) == 0)
			return;
		if (t->cap - t->len < 4096) {
			t->cap = t->cap ? 2 * t->cap : 1 << 16;
			t->data = realloc(t->data, t->cap + 1);
		}
		r = recv(fd, t->data + t->len, t->cap - t->len, 0);
		if (r <= 0)
			return;
		t->len += (size_t)r;
		t->data[t->len] = '\0';
	}
}

static void stop_module(void)
{
	uv_async_send(&stop_async);
}

/* Sends t->send, half-closes and reads every answer. */
static void *client_script(void *arg)
{
	struct transcript *t = arg;
	int fd = cl_connect();

	if (fd >= 0) {
		cl_send(fd, t->send, t->sendlen);
		shutdown(fd, SHUT_WR);
		cl_read_all(fd, t);
		close(fd);
	}
	stop_module();
	return NULL;
}

static void script(const char *config, const char *send, size_t sendlen,
		   struct transcript *t)
{
	memset(t, 0, sizeof(*t));
	t->send = send;
	t->sendlen = sendlen;
	run_with_client(config, client_script, t);
	assert_non_null(t->data);
}

static void expect_script(const char *config, const char *send,
			  const char *want)
{
	struct transcript t;

	script(config, send, strlen(send), &t);
	assert_string_equal(t.data, want);
	free(t.data);
}

/* ---------------------------------------------------------------- tests */

static void test_config(void **state)
{
	assert_int_equal(setup_module(NULL), 0);
	{
		struct kq__tn_server *srv = tstate;

		assert_string_equal(srv->bind_host, "127.0.0.1");
		assert_int_equal(srv->port, 8080);
		assert_int_equal(srv->max_line, 1048576);
		assert_int_equal(srv->max_conns, 1024);
	}
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	teardown_module();

	assert_int_equal(setup_module("{\"port\": \"80\"}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf,
			       "telnet.port: expected an integer "
			       "1..65535"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);

	assert_int_equal(setup_module("{\"port\": 70000}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "telnet.port"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);

	assert_int_equal(setup_module("{\"prot\": 1}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "telnet.prot: unknown key"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);

	assert_int_equal(setup_module("{\"host\": 5}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "telnet.host"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);

	assert_int_equal(setup_module("{\"max_line\": 1.5}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "telnet.max_line"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);

	assert_int_equal(setup_module("{\"max_connections\": 0}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "telnet.max_connections"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);
	reset_fake();
}

static void test_start_error_names_address(void **state)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	char cfg[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* Hold a port so the module cannot listen on it. */
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	getsockname(fd, (struct sockaddr *)&a, &len);
	snprintf(cfg, sizeof(cfg), "{\"port\": %d}", ntohs(a.sin_port));
	assert_int_equal(setup_module(cfg), 0);
	assert_true(ops->start(tstate) < 0);
	snprintf(cfg, sizeof(cfg), "127.0.0.1:%d", ntohs(a.sin_port));
	assert_non_null(strstr(kq__test_logbuf, cfg));
	ops->stop(tstate, on_stopped, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(stopped);
	teardown_module();
	close(fd);
}

static void test_pipelined_pubs_keep_order(void **state)
{
	const int n = 20000;
	size_t cap = (size_t)n * 32 + 256, off = 0, woff = 0;
	char *send = malloc(cap), *want = malloc(cap);
	struct transcript t;
	int i;

	off += (size_t)sprintf(send + off, "CRTP orders\r\n");
	woff += (size_t)sprintf(want + woff, "OK orders 1\r\n");
	for (i = 0; i < n; i++) {
		off += (size_t)sprintf(send + off, "PUBS orders m%d\r\n", i);
		woff += (size_t)sprintf(want + woff, "OK 0 %d\r\n", i);
	}
	off += (size_t)sprintf(send + off, "PING\n");
	woff += (size_t)sprintf(want + woff, "OK PONG\r\n");

	memset(&t, 0, sizeof(t));
	t.send = send;
	t.sendlen = off;
	port = 0;
	/* The fake answers each batch of publishes newest first. */
	{
		char cfg[256];
		pthread_t th;

		port = free_port();
		snprintf(cfg, sizeof(cfg), "{\"port\": %d}", port);
		assert_int_equal(setup_module(cfg), 0);
		fake.reverse = 1;
		assert_int_equal(ops->start(tstate), 0);
		uv_async_init(&loop, &stop_async, on_stop_async);
		assert_int_equal(pthread_create(&th, NULL, client_script, &t),
				 0);
		uv_run(&loop, UV_RUN_DEFAULT);
		pthread_join(th, NULL);
		assert_int_equal(fake.sessions_open, 1);
		assert_int_equal(fake.sessions_closed, 1);
		assert_int_equal(fake.topics[0].next_offset, n);
		/* Answers really were completed out of order... */
		assert_true(fake.max_npending > 1);
		/* ...and written in batches, not one write per answer. */
		assert_true(((struct kq__tn_server *)tstate)->nwrites <
			    (uint64_t)n / 10);
		fprintf(stderr,
			"pipeline: %zu requests at most in flight, "
			"%llu writes\n",
			fake.max_npending,
			(unsigned long long)((struct kq__tn_server *)tstate)
				->nwrites);
		teardown_module();
	}
	assert_int_equal(t.len, woff);
	assert_memory_equal(t.data, want, woff);
	free(t.data);
	free(send);
	free(want);
}

static void test_pubs_forms_reach_broker(void **state)
{
	static const char want[] =
		"{\"Header\":\"h\",\"Key\":\"124\",\"Body\":\"Hello World!\"}";

	expect_script(NULL,
		      "CRTP orders 2 replicas=1 partitioner=keyhash\r\n"
		      "PUBS orders \"{\"\"Header\"\":\"\"h\"\",\"\"Key\"\":"
		      "\"\"124\"\",\"\"Body\"\":\"\"Hello World!\"\"}\"\r\n",
		      "OK orders 2\r\nOK 0 0\r\n");
	assert_string_equal(last_options, "replicas=1;partitioner=keyhash;");
	assert_int_equal(last_len, strlen(want));
	assert_memory_equal(last_msg, want, last_len);

	expect_script(NULL,
		      "CRTP orders\r\n"
		      "PUBS orders {\"Header\":\"h\",\"Key\":\"124\","
		      "\"Body\":\"Hello World!\"}\r\n",
		      "OK orders 1\r\nOK 0 0\r\n");
	assert_int_equal(last_len, strlen(want));
	assert_memory_equal(last_msg, want, last_len);

	/* Everything after the single separator, as typed. */
	expect_script(NULL,
		      "CRTP t\r\n"
		      "PuBs t  {\"Key\":\"1\"}  tail \r\n",
		      "OK t 1\r\nOK 0 0\r\n");
	assert_int_equal(last_len, 19);
	assert_memory_equal(last_msg, " {\"Key\":\"1\"}  tail ", 19);
}

/* CMIT: acknowledge, or set one partition's position. */
static void test_cmit(void **state)
{
	expect_script(NULL,
		      "CRTP t1 3\r\n"
		      "SUBS t1 g\r\n"
		      "CMIT t1 1\r\n"
		      "CMIT t1 1 2 40\r\n"
		      "CMIT t1 1 2\r\n"
		      "CMIT t1 1 x 4\r\n"
		      "CMIT t1 99\r\n"
		      "cmit t1\r\n",
		      "OK t1 3\r\n"
		      "OK 1 0,1,2\r\n"
		      "OK 2\r\n"
		      "OK 1\r\n"
		      "ERR SYNTAX usage: CMIT <topic> <subscription-id> "
		      "[<partition> <offset>]\r\n"
		      "ERR BADARG partition and offset must be non-negative "
		      "integers\r\n"
		      "ERR NOSUB no such subscription\r\n"
		      "ERR SYNTAX usage: CMIT <topic> <subscription-id> "
		      "[<partition> <offset>]\r\n");
	assert_int_equal(commit_part, 2);
	assert_int_equal(commit_off, 40);
}

static void test_commands(void **state)
{
	expect_script(
		NULL,
		"ping\r\n"
		"\r\n"
		"   \t \r\n"
		"CRTP t1 3 replicas=1 retention.ms=5\r\n"
		"CRTP t1\r\n"
		"CRTP t2 x\r\n"
		"CRTP t2 0\r\n"
		"CRTP t2 3 bad\r\n"
		"CRTP ../x\r\n"
		"CRTP\r\n"
		"PUBS t1\r\n"
		"PUBS t1 \"\"\r\n"
		"PUBS t1 \"a\" b\r\n"
		"PUBS nope hello\r\n"
		"PUBS refused hello\r\n"
		"PuBs t1 {\"Key\":\"1\"}  tail \r\n"
		"SUBS t1 g\r\n"
		"SUBS t1 g 2\r\n"
		"SUBS t1 g 0\r\n"
		"SUBS t1\r\n"
		"ASGN t1 1\r\n"
		"ASGN t1 2\r\n"
		"ASGN t1 99\r\n"
		"ASGN t1 0\r\n"
		"GRPS t1\r\n"
		"UNSB t1 2\r\n"
		"UNSB t1 2\r\n"
		"LIST\r\n"
		"LIST x\r\n"
		"DESC t1\r\n"
		"DESC nope\r\n"
		"STAT\r\n"
		"CONS t1 1 - 3\r\n"
		"CONS t1 1 8\r\n"
		"CONS t1 1 x\r\n"
		"CONS t1 1 0 0\r\n"
		"CONS t1 77\r\n"
		"CONS t1 1 0 8\r\n"
		"FROB x\r\n"
		"\"unterminated\r\n"
		"HELP\r\n",
		"OK PONG\r\n"
		"OK t1 3\r\n"
		"ERR EXISTS already exists\r\n"
		"ERR BADARG partitions must be a positive integer\r\n"
		"ERR BADARG partitions must be a positive integer\r\n"
		"ERR BADARG options are <option>=<value>\r\n"
		"ERR BADARG bad topic name (1 to 249 of A-Z a-z 0-9 . _ -)\r\n"
		"ERR SYNTAX usage: CRTP <topic> [<partitions>] "
		"[<option>=<value> ...]\r\n"
		"ERR SYNTAX usage: PUBS <topic> <message>\r\n"
		"ERR BADARG empty message\r\n"
		"ERR SYNTAX usage: PUBS <topic> <message>\r\n"
		"ERR NOTOPIC no topic nope\r\n"
		"ERR UNAVAILABLE refused right away\r\n"
		"OK 0 0\r\n"
		"OK 1 0,1,2\r\n"
		"OK 2 0,1\r\n"
		"ERR BADARG n must be a positive integer\r\n"
		"ERR SYNTAX usage: SUBS <topic> <group> [<n>]\r\n"
		"OK 1 0,1,2\r\n"
		"OK 2 -\r\n"
		"ERR NOSUB nope\r\n"
		"ERR BADARG subscription id must be a positive integer\r\n"
		"GROUP g 1 0,1\r\n"
		"GROUP g 2 -\r\n"
		"OK 2\r\n"
		"OK\r\n"
		"ERR NOSUB no such subscription\r\n"
		"TOPIC t1 3\r\n"
		"OK 1\r\n"
		"ERR SYNTAX usage: LIST\r\n"
		"PARTITION 0 LEADER 2 REPLICAS 1,2,3 START 0 END 0\r\n"
		"PARTITION 1 LEADER - REPLICAS - START 0 END 10\r\n"
		"PARTITION 2 LEADER - REPLICAS - START 0 END 20\r\n"
		"OK t1 3\r\n"
		"ERR NOTOPIC no such topic\r\n"
		"BROKER 1 10.0.0.1:8080 up LEADS 4\r\n"
		"BROKER 2 [::1]:8081 down LEADS 0 META-LEADER\r\n"
		"OK 1\r\n"
		"MSG 0 0 2\r\nm0\r\n"
		"MSG 0 1 2\r\nm1\r\n"
		"MSG 0 2 2\r\nm2\r\n"
		"OK 3\r\n"
		"MSG 0 8 2\r\nm8\r\n"
		"MSG 0 9 2\r\nm9\r\n"
		"OK 2\r\n"
		"ERR BADARG offset must be a non-negative integer or -\r\n"
		"ERR BADARG max must be a positive integer\r\n"
		"ERR NOSUB no subscription 77 on t1\r\n"
		"MSG 0 0 2\r\nm0\r\n"
		"MSG 0 1 2\r\nm1\r\n"
		"MSG 0 2 2\r\nm2\r\n"
		"MSG 0 3 2\r\nm3\r\n"
		"MSG 0 4 2\r\nm4\r\n"
		"MSG 0 5 2\r\nm5\r\n"
		"MSG 0 6 2\r\nm6\r\n"
		"ERR UNAVAILABLE disk on fire\r\n"
		"ERR UNKNOWN unknown command 'FROB' (try HELP)\r\n"
		"ERR SYNTAX unterminated quote or text right after one\r\n"
		"CRTP <topic> [<partitions>] [<option>=<value> ...]\r\n"
		"PUBS <topic> <message>\r\n"
		"SUBS <topic> <group> [<n>]\r\n"
		"CONS <topic> <subscription-id> [<offset>|-] [<max>]\r\n"
		"CMIT <topic> <subscription-id> [<partition> <offset>]\r\n"
		"UNSB <topic> <subscription-id>\r\n"
		"ASGN <topic> <subscription-id>\r\n"
		"GRPS <topic>\r\n"
		"LIST\r\n"
		"DESC <topic>\r\n"
		"STAT\r\n"
		"HELP\r\n"
		"PING\r\n"
		"QUIT\r\n"
		"AUTH <password>\r\n"
		"OK\r\n");
}

static void test_toolong_then_ping(void **state)
{
	char send[512];
	struct transcript t;

	memset(send, 'a', 200);
	strcpy(send + 200, "\r\nPING\r\n");
	script("\"max_line\": 64", send, strlen(send), &t);
	assert_string_equal(t.data, "ERR TOOLONG line longer than 64 bytes\r\n"
				    "OK PONG\r\n");
	free(t.data);
}

static void test_iac_refused(void **state)
{
	static const char send[] = "\xff\xfd\x01\xff\xfb\x03P\xff\xf1ING\r\n"
				   "\xff\xfc\x05\xff\xfe\x06";
	struct transcript t;

	script(NULL, send, sizeof(send) - 1, &t);
	assert_int_equal(t.len, 15);
	assert_memory_equal(t.data, "\xff\xfc\x01\xff\xfe\x03OK PONG\r\n", 15);
	free(t.data);
}

/* Sends t->send without half-closing and reads until the server closes. */
static void *client_no_shutdown(void *arg)
{
	struct transcript *t = arg;
	int fd = cl_connect();

	if (fd >= 0) {
		cl_send(fd, t->send, t->sendlen);
		cl_read_all(fd, t);
		close(fd);
	}
	stop_module();
	return NULL;
}

static void test_quit_closes(void **state)
{
	struct transcript t;

	memset(&t, 0, sizeof(t));
	t.send = "PING\r\nQUIT\r\nPING\r\n";
	t.sendlen = strlen(t.send);
	run_with_client(NULL, client_no_shutdown, &t);
	assert_string_equal(t.data, "OK PONG\r\nOK BYE\r\n");
	free(t.data);
}

struct cons_result {
	int ok;
	uint64_t count;
	char err[128];
};

/* Reads a CONS of cons_total messages slowly, checking every frame. */
static void *client_cons(void *arg)
{
	struct cons_result *res = arg;
	struct transcript t;
	int fd = cl_connect();
	uint64_t want = 0;
	size_t pos = 0;

	memset(&t, 0, sizeof(t));
	if (fd < 0)
		goto out;
	cl_sends(fd, "SUBS t g\r\nCONS t 1 0\r\nPING\r\n");
	shutdown(fd, SHUT_WR);
	/* Let the server meet a full socket before reading. */
	usleep(200 * 1000);
	cl_read_all(fd, &t);
	close(fd);
	if (t.len < 9 || memcmp(t.data, "OK 1 0\r\n", 8) != 0) {
		snprintf(res->err, sizeof(res->err), "bad SUBS answer");
		goto out;
	}
	pos = 8;
	while (pos < t.len && memcmp(t.data + pos, "MSG ", 4) == 0) {
		unsigned long long p, off, len;
		char body[256], *e;
		size_t blen, hdr;

		/* strtoull, unlike sscanf, does not measure the whole rest
		 * of the transcript on every call. */
		p = strtoull(t.data + pos + 4, &e, 10);
		off = *e == ' ' ? strtoull(e + 1, &e, 10) : ~0ull;
		len = *e == ' ' ? strtoull(e + 1, &e, 10) : 0;
		hdr = (size_t)(e - (t.data + pos)) + 2;
		if (p != 0 || off != want || e[0] != '\r' || e[1] != '\n') {
			snprintf(res->err, sizeof(res->err),
				 "bad frame at %zu (want offset %llu)", pos,
				 (unsigned long long)want);
			goto out;
		}
		pos += (size_t)hdr;
		blen = (size_t)snprintf(body, sizeof(body), "m%llu", off);
		if (blen < 100) {
			memset(body + blen, 'x', 100 - blen);
			blen = 100;
		}
		if (len != blen || pos + len + 2 > t.len ||
		    memcmp(t.data + pos, body, len) != 0 ||
		    memcmp(t.data + pos + len, "\r\n", 2) != 0) {
			snprintf(res->err, sizeof(res->err), "bad body at %zu",
				 pos);
			goto out;
		}
		pos += len + 2;
		want++;
	}
	res->count = want;
	res->ok = pos < t.len &&
		  sscanf(t.data + pos, "OK %llu\r\n",
			 (unsigned long long *)&want) == 1 &&
		  want == res->count &&
		  strcmp(strstr(t.data + pos, "\r\n"), "\r\nOK PONG\r\n") == 0;
	if (!res->ok)
		snprintf(res->err, sizeof(res->err), "bad tail: %.60s",
			 t.data + pos);
out:
	free(t.data);
	stop_module();
	return NULL;
}

static void test_cons_streams_100k(void **state)
{
	struct cons_result res;
	char cfg[64];
	pthread_t th;

	memset(&res, 0, sizeof(res));
	port = free_port();
	snprintf(cfg, sizeof(cfg), "{\"port\": %d}", port);
	assert_int_equal(setup_module(cfg), 0);
	add_topic("t", 1);
	fake.cons_total = 100000;
	fake.body_len = 100;
	assert_int_equal(ops->start(tstate), 0);
	uv_async_init(&loop, &stop_async, on_stop_async);
	assert_int_equal(pthread_create(&th, NULL, client_cons, &res), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	if (!res.ok)
		fail_msg("%s", res.err);
	assert_int_equal(res.count, 100000);
	/* About 12 MB went out in budgeted steps, each started only while
	 * the output waiting for the client was below the bound. */
	assert_true(fake.consume_calls >= 30);
	fprintf(stderr,
		"cons: %d consume_next calls, at most %zu bytes pending\n",
		fake.consume_calls, fake.max_pending_out);
	assert_true(fake.max_pending_out < KQ__TN_OUT_HIGH);
	teardown_module();
}

/* Sends publishes that the fake holds, waits until they are all in
 * flight, then resets the connection. */
static void *client_disconnect(void *arg)
{
	int fd = cl_connect();
	struct linger lg = {1, 0};
	int i;

	if (fd >= 0) {
		for (i = 0; i < 50; i++)
			cl_sends(fd, "PUBS t hello\r\n");
		while (count_pending() < 50)
			usleep(1000);
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
	}
	while (__atomic_load_n(&fake.sessions_closed, __ATOMIC_SEQ_CST) < 1)
		usleep(1000);
	stop_module();
	return NULL;
}

static void test_disconnect_in_flight(void **state)
{
	char cfg[64];
	pthread_t th;

	port = free_port();
	snprintf(cfg, sizeof(cfg), "{\"port\": %d}", port);
	assert_int_equal(setup_module(cfg), 0);
	add_topic("t", 1);
	fake.hold = 1;
	assert_int_equal(ops->start(tstate), 0);
	uv_async_init(&loop, &stop_async, on_stop_async);
	assert_int_equal(pthread_create(&th, NULL, client_disconnect, NULL), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	pthread_join(th, NULL);
	assert_int_equal(fake.sessions_open, 1);
	assert_int_equal(fake.sessions_closed, 1);
	assert_int_equal(fake.npending, 0);
	/* Every connection was freed before fini. */
	assert_null(((struct kq__tn_server *)tstate)->conns);
	teardown_module();
}

struct busy_result {
	char first[64];
	char second[128];
};

static void *client_busy(void *arg)
{
	struct busy_result *res = arg;
	struct transcript a, b;
	int fa = cl_connect(), fb;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	cl_sends(fa, "PING\r\n");
	cl_read_until(fa, &a, "OK PONG\r\n");
	fb = cl_connect();
	cl_read_all(fb, &b);
	close(fb);
	cl_sends(fa, "PING\r\n");
	shutdown(fa, SHUT_WR);
	cl_read_all(fa, &a);
	close(fa);
	snprintf(res->first, sizeof(res->first), "%s", a.data ? a.data : "");
	snprintf(res->second, sizeof(res->second), "%s", b.data ? b.data : "");
	free(a.data);
	free(b.data);
	stop_module();
	return NULL;
}

static void test_max_connections(void **state)
{
	struct busy_result res;

	memset(&res, 0, sizeof(res));
	run_with_client("\"max_connections\": 1", client_busy, &res);
	assert_string_equal(res.second, "ERR BUSY too many connections\r\n");
	assert_string_equal(res.first, "OK PONG\r\nOK PONG\r\n");
}

/* Stays connected while the module stops; the server closes. */
static void *client_stop(void *arg)
{
	struct transcript *t = arg;
	int fd = cl_connect();

	cl_sends(fd, "PING\r\n");
	cl_read_until(fd, t, "OK PONG\r\n");
	stop_module();
	cl_read_all(fd, t);
	close(fd);
	return NULL;
}

static void test_stop_closes_clients(void **state)
{
	struct transcript t;

	memset(&t, 0, sizeof(t));
	run_with_client(NULL, client_stop, &t);
	assert_string_equal(t.data, "OK PONG\r\n");
	free(t.data);
}

/* ---------------------------------------------------------------- AUTH */

static char pwfile[64];

/* Writes `text` to a fresh password file named in pwfile. */
static void write_pwfile(const char *text)
{
	int fd;

	snprintf(pwfile, sizeof(pwfile), "/tmp/kq-pw-XXXXXX");
	fd = mkstemp(pwfile);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_password_compare(void **state)
{
	struct kq__tn_server *srv;
	char cfg[128], big[KQ__TN_PASSWORD_MAX + 8];

	write_pwfile("s3cret word\n");
	snprintf(cfg, sizeof(cfg), "{\"password_file\": \"%s\"}", pwfile);
	assert_int_equal(setup_module(cfg), 0);
	srv = tstate;
	assert_int_equal(srv->password_len, 11);
	assert_true(kq__tn_password_ok(srv, "s3cret word", 11));
	assert_false(kq__tn_password_ok(srv, "s3cret wor", 10));
	assert_false(kq__tn_password_ok(srv, "s3cret word!", 12));
	assert_false(kq__tn_password_ok(srv, "s3cret worX", 11));
	assert_false(kq__tn_password_ok(srv, "S3cret word", 11));
	assert_false(kq__tn_password_ok(srv, "", 0));
	/* A word longer than any password is compared cut, and refused. */
	memset(big, 'x', sizeof(big));
	memcpy(big, "s3cret word", 11);
	assert_false(kq__tn_password_ok(srv, big, sizeof(big)));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	teardown_module();
	unlink(pwfile);

	/* Empty, two lines, missing: refused at start with the key. */
	write_pwfile("\n");
	snprintf(cfg, sizeof(cfg), "{\"password_file\": \"%s\"}", pwfile);
	assert_int_equal(setup_module(cfg), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "telnet.password_file"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);
	unlink(pwfile);
	write_pwfile("a\nb\n");
	snprintf(cfg, sizeof(cfg), "{\"password_file\": \"%s\"}", pwfile);
	assert_int_equal(setup_module(cfg), KQ_ECONFIG);
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);
	unlink(pwfile);
	assert_int_equal(
		setup_module("{\"password_file\": \"/nonexistent/pw\"}"),
		KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "/nonexistent/pw"));
	uv_close((uv_handle_t *)&fake.timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	json_decref((json_t *)host.config);
	reset_fake();
}

/* Before AUTH only HELP, PING, QUIT and AUTH run; pipelined commands
 * after a failed or a pending AUTH are judged in order, after it. */
static void test_auth_gates_commands(void **state)
{
	char cfg[128];

	kq__test_log_clear();
	write_pwfile("pw pw\r\n");
	snprintf(cfg, sizeof(cfg), "\"password_file\": \"%s\"", pwfile);
	expect_script(cfg,
		      "PING\r\n"
		      "LIST\r\n"
		      "FROB x\r\n"
		      "\"unterminated\r\n"
		      "PUBS t1 hello\r\n"
		      "CRTP t1\r\n"
		      "AUTH\r\n"
		      "AUTH pw\r\n"
		      "LIST\r\n"
		      "AUTH \"pw pw\"\r\n"
		      "CRTP t1\r\n"
		      "PUBS t1 hello\r\n"
		      "LIST\r\n"
		      "QUIT\r\n",
		      "OK PONG\r\n"
		      "ERR AUTH authentication required: AUTH <password>\r\n"
		      "ERR AUTH authentication required: AUTH <password>\r\n"
		      "ERR AUTH authentication required: AUTH <password>\r\n"
		      "ERR AUTH authentication required: AUTH <password>\r\n"
		      "ERR AUTH authentication required: AUTH <password>\r\n"
		      "ERR SYNTAX usage: AUTH <password>\r\n"
		      "ERR AUTH wrong password\r\n"
		      "ERR AUTH authentication required: AUTH <password>\r\n"
		      "OK\r\n"
		      "OK t1 1\r\n"
		      "OK 0 0\r\n"
		      "TOPIC t1 1\r\n"
		      "OK 1\r\n"
		      "OK BYE\r\n");
	assert_non_null(strstr(kq__test_logbuf, "failed AUTH from 127.0.0.1:"));
	unlink(pwfile);
	/* Without a password AUTH is an error, and everything runs. */
	expect_script(NULL, "AUTH x\r\nLIST\r\n",
		      "ERR AUTH no password is configured "
		      "(telnet.password_file)\r\nOK 0\r\n");
}

/* Each failure waits longer; the last allowed one closes. */
static void test_auth_rate_limit(void **state)
{
	char cfg[128];
	struct timespec t0, t1;
	double secs;

	write_pwfile("right");
	snprintf(cfg, sizeof(cfg), "\"password_file\": \"%s\"", pwfile);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_script(
		cfg,
		"AUTH a\r\nAUTH b\r\nAUTH c\r\nAUTH d\r\nAUTH e\r\n"
		"AUTH right\r\nPING\r\n",
		"ERR AUTH wrong password\r\n"
		"ERR AUTH wrong password\r\n"
		"ERR AUTH wrong password\r\n"
		"ERR AUTH wrong password\r\n"
		"ERR AUTH wrong password; too many attempts, closing\r\n");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	/* 100 + 200 + 400 + 800 + 1600 ms */
	assert_true(secs >= 3.0);
	unlink(pwfile);
}

/* Listening beyond loopback without a password is worth a warning. */
static void test_open_listener_warns(void **state)
{
	char cfg[96];

	kq__test_log_clear();
	port = free_port();
	snprintf(cfg, sizeof(cfg), "{\"host\": \"0.0.0.0\", \"port\": %d}",
		 port);
	assert_int_equal(setup_module(cfg), 0);
	assert_int_equal(ops->start(tstate), 0);
	assert_non_null(
		strstr(kq__test_logbuf, "no telnet.password_file is set"));
	ops->stop(tstate, on_stopped, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	teardown_module();

	kq__test_log_clear();
	snprintf(cfg, sizeof(cfg), "{\"port\": %d}", port);
	assert_int_equal(setup_module(cfg), 0);
	assert_int_equal(ops->start(tstate), 0);
	assert_null(strstr(kq__test_logbuf, "password"));
	ops->stop(tstate, on_stopped, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	teardown_module();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_start_error_names_address),
		cmocka_unit_test(test_pipelined_pubs_keep_order),
		cmocka_unit_test(test_pubs_forms_reach_broker),
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_cmit),
		cmocka_unit_test(test_toolong_then_ping),
		cmocka_unit_test(test_iac_refused),
		cmocka_unit_test(test_quit_closes),
		cmocka_unit_test(test_cons_streams_100k),
		cmocka_unit_test(test_disconnect_in_flight),
		cmocka_unit_test(test_max_connections),
		cmocka_unit_test(test_stop_closes_clients),
		cmocka_unit_test(test_password_compare),
		cmocka_unit_test(test_auth_gates_commands),
		cmocka_unit_test(test_auth_rate_limit),
		cmocka_unit_test(test_open_listener_warns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
