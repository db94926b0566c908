/* The core through the broker API a transport uses, over fake modules
 * linked into the test: a storage that keeps logs in memory (and can
 * fail a sync), the real `local` consensus with its commits held,
 * released or refused by the test, a transport that only lends the test its
 * host table, and a partitioner that places by the key's first byte.  So the
 * core's request pipeline, metadata state machine, store and lifecycle run with
 * every step in the test's hands, without processes or disks.  Requests
 * other brokers send (serve.c) come in through host->serve as a
 * consensus module hands them over, and their answers are caught at
 * reply(); when the test names another broker as the partitions'
 * leader, the calls forward.c makes are caught at call() and answered
 * by the test; so are fetch.c's reads, of a partition the test gives
 * replicas on brokers 2 and 3.  With two peers configured, broker 2's
 * registration and member come in as its metadata records would, and
 * the test takes it out of reach to see the member expire.
 *
 * Each test opens a broker of its own on a folder of its own. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/kafkaesque.h>

#include "broker.h"
#include "cgroup.h"
#include "conf.h"
#include "consume.h"
#include "fetch.h"
#include "forward.h"
#include "log.h"
#include "meta.h"
#include "plugin.h"
#include "publish.h"
#include "retention.h"
#include "topic.h"
#include "wire.h"

/* A module linked into the test (kq__module_link): its descriptor, and
 * an entry that returns it. */
#define TEST_DESC(kind_, name_, ops_)                                          \
	{                                                                      \
		.abi = KQ_PLUGIN_ABI, .size = sizeof(struct kq_plugin_desc),   \
		.kind = (kind_), .name = (name_), .version = "test",           \
		.ops = (ops_),                                                 \
	}
#define TEST_MODULE(entry, desc, kind_, name_, ops_)                           \
	static const struct kq_plugin_desc desc =                              \
		TEST_DESC(kind_, name_, ops_);                                 \
	static const struct kq_plugin_desc *entry(void)                        \
	{                                                                      \
		return &desc;                                                  \
	}

/* ------------------------------------------------------------ memlog */

/* A log kept in memory, found again by folder when reopened, so that a
 * broker restarted in the same test recovers what it wrote. */
struct kq_log {
	char *dir;
	struct kq_record *recs; /* owned copies, in offset order */
	size_t n, cap;
	uint64_t first, next;
	struct kq_hard_state hs;
	void *snap; /* the latest snapshot, or NULL */
	size_t snap_len;
	uint64_t snap_index, snap_term;
	int failed; /* a write or sync error: appends refused until reopened */
	int open;
	int unsynced; /* opened with kq_log_options.unsynced */
};

static struct kq_log *logs[512];
static size_t nlogs;
static const struct kq_host *mem_host;
/* The error every sync() returns while set (a failing disk). */
static int mem_sync_error;
/* The error the truncate op returns while set, and its calls. */
static int mem_truncate_error;
static unsigned mem_truncates;
/* The fsync policy the module answers, and the syncs it ran. */
static int mem_policy = KQ_SYNC_ALWAYS;
static uint32_t mem_interval_ms = 1000;
static unsigned mem_syncs;
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
/* While set, every sync() waits on the worker thread (a slow disk), so
 * the test can act while it runs; mem_unstall() lets them go. */
static int mem_stall;
static pthread_cond_t mem_stall_cond = PTHREAD_COND_INITIALIZER;

static int mem_init(const struct kq_host *host, void **state)
{
	mem_host = host;
	*state = NULL;
	return 0;
}

static void mem_fini(void *state)
{
	(void)state;
}

static int mem_open(void *state, const char *dir,
		    const struct kq_log_options *opts, struct kq_log **out)
{
	struct kq_log *log = NULL;

	(void)state;
	for (size_t i = 0; i < nlogs && !log; i++)
		if (strcmp(logs[i]->dir, dir) == 0)
			log = logs[i];
	if (!log) {
		assert_true(nlogs < sizeof(logs) / sizeof(logs[0]));
		log = calloc(1, sizeof(*log));
		log->dir = strdup(dir);
		logs[nlogs++] = log;
	}
	assert_false(log->open);
	log->open = 1;
	log->failed = 0;
	log->unsynced = opts->unsynced;
	*out = log;
	return 0;
}

static void mem_close(struct kq_log *log)
{
	log->open = 0;
}

static void free_rec(struct kq_record *r)
{
	free((void *)r->key);
	free((void *)r->value);
}

static int mem_append(struct kq_log *log, const struct kq_record *recs,
		      size_t n)
{
	if (log->failed)
		return KQ_EUNAVAILABLE;
	for (size_t i = 0; i < n; i++) {
		struct kq_record *r;

		assert_true(recs[i].offset >= log->next);
		if (log->n == log->cap) {
			log->cap = log->cap ? 2 * log->cap : 16;
			log->recs = realloc(log->recs,
					    log->cap * sizeof(*log->recs));
		}
		r = &log->recs[log->n++];
		*r = recs[i];
		r->key = recs[i].key_len ? malloc(recs[i].key_len) : NULL;
		if (r->key)
			memcpy((void *)r->key, recs[i].key, recs[i].key_len);
		r->value = malloc(recs[i].value_len ? recs[i].value_len : 1);
		memcpy((void *)r->value, recs[i].value, recs[i].value_len);
		pthread_mutex_lock(&mem_lock);
		log->next = recs[i].offset + 1;
		pthread_mutex_unlock(&mem_lock);
	}
	return 0;
}

/* On a worker thread. */
static int mem_sync(struct kq_log *log)
{
	int rv;

	pthread_mutex_lock(&mem_lock);
	while (mem_stall)
		pthread_cond_wait(&mem_stall_cond, &mem_lock);
	mem_syncs++;
	rv = mem_sync_error;
	if (rv)
		log->failed = rv;
	pthread_mutex_unlock(&mem_lock);
	return rv;
}

static void mem_unstall(void)
{
	pthread_mutex_lock(&mem_lock);
	mem_stall = 0;
	pthread_cond_broadcast(&mem_stall_cond);
	pthread_mutex_unlock(&mem_lock);
}

/* Calls of sync_many and the logs they covered, for the test that a
 * loop turn's syncs go to the module together. */
static unsigned mem_many_calls, mem_many_logs;

static int mem_sync_many(void *state, struct kq_log *const *ls, size_t n,
			 int *results)
{
	(void)state;
	pthread_mutex_lock(&mem_lock);
	mem_many_calls++;
	mem_many_logs += (unsigned)n;
	pthread_mutex_unlock(&mem_lock);
	for (size_t i = 0; i < n; i++)
		results[i] = mem_sync(ls[i]);
	return 0;
}

static int mem_read(struct kq_log *log, uint64_t from, uint64_t end,
		    size_t max_bytes, kq_record_cb cb, void *ctx,
		    uint64_t *next)
{
	size_t bytes = 0;
	int passed = 0;

	*next = from;
	for (size_t i = 0; i < log->n; i++) {
		const struct kq_record *r = &log->recs[i];

		if (r->offset < from || r->offset < log->first)
			continue;
		if (r->offset >= end || (passed && bytes > max_bytes))
			break;
		passed++;
		bytes += r->value_len;
		*next = r->offset + 1;
		if (cb(ctx, r) != 0)
			break;
	}
	if (!passed && *next < log->next && end >= log->next)
		*next = log->next;
	return passed;
}

static uint64_t mem_first(struct kq_log *log)
{
	return log->first;
}

static uint64_t mem_next(struct kq_log *log)
{
	return log->next;
}

static int mem_term_at(struct kq_log *log, uint64_t offset, uint64_t *term)
{
	for (size_t i = 0; i < log->n; i++)
		if (log->recs[i].offset == offset && offset >= log->first) {
			*term = log->recs[i].term;
			return 0;
		}
	return -ENOENT;
}

static int mem_truncate(struct kq_log *log, uint64_t from)
{
	while (log->n && log->recs[log->n - 1].offset >= from)
		free_rec(&log->recs[--log->n]);
	if (from < log->next)
		log->next = from;
	return 0;
}

static int mem_truncate_op(struct kq_log *log, uint64_t from)
{
	mem_truncates++;
	return mem_truncate_error ? mem_truncate_error
				  : mem_truncate(log, from);
}

static int mem_reset(struct kq_log *log, uint64_t next)
{
	mem_truncate(log, 0);
	log->first = log->next = next;
	return 0;
}

static int mem_compact(struct kq_log *log, uint64_t before)
{
	if (before > log->next)
		before = log->next;
	if (before <= log->first)
		return 0;
	log->first = before;
	return 1;
}

/* When set, retention lets every record go. */
static int mem_retain_all;

static int mem_retention_point(struct kq_log *log, int64_t now_ms,
			       uint64_t *before)
{
	(void)now_ms;
	*before = mem_retain_all ? log->next : log->first;
	return 0;
}

static int mem_save_hs(struct kq_log *log, const struct kq_hard_state *hs)
{
	log->hs = *hs;
	return 0;
}

/* While set, a stage asks for a sync first (a log not settled). */
static int mem_stage_busy;

/* Durable by the next sync: this log is durable at once. */
static int mem_stage_hs(struct kq_log *log, const struct kq_hard_state *hs)
{
	if (mem_stage_busy)
		return KQ_EBUSY;
	log->hs = *hs;
	return 0;
}

static int mem_load_hs(struct kq_log *log, struct kq_hard_state *hs)
{
	*hs = log->hs;
	return 0;
}

static int mem_save_snapshot(struct kq_log *log, uint64_t index, uint64_t term,
			     const void *data, size_t len)
{
	free(log->snap);
	log->snap = malloc(len ? len : 1);
	memcpy(log->snap, data, len);
	log->snap_len = len;
	log->snap_index = index;
	log->snap_term = term;
	return 0;
}

static int mem_load_snapshot(struct kq_log *log, uint64_t *index,
			     uint64_t *term, void **data, size_t *len)
{
	if (!log->snap)
		return -ENOENT;
	*data = mem_host->malloc(log->snap_len ? log->snap_len : 1);
	memcpy(*data, log->snap, log->snap_len);
	*len = log->snap_len;
	*index = log->snap_index;
	*term = log->snap_term;
	return 0;
}

static int mem_sync_policy(void *state, uint32_t *interval_ms)
{
	(void)state;
	*interval_ms = mem_interval_ms;
	return mem_policy;
}

static int mem_lost(struct kq_log *log, const struct kq_offset_range **out)
{
	(void)log;
	*out = NULL;
	return 0;
}

static const struct kq_storage_ops mem_ops = {
	.size = sizeof(struct kq_storage_ops),
	.init = mem_init,
	.fini = mem_fini,
	.open = mem_open,
	.close = mem_close,
	.append = mem_append,
	.sync = mem_sync,
	.sync_many = mem_sync_many,
	.read = mem_read,
	.first_offset = mem_first,
	.next_offset = mem_next,
	.term_at = mem_term_at,
	.truncate = mem_truncate_op,
	.reset = mem_reset,
	.compact = mem_compact,
	.retention_point = mem_retention_point,
	.save_hard_state = mem_save_hs,
	.stage_hard_state = mem_stage_hs,
	.load_hard_state = mem_load_hs,
	.save_snapshot = mem_save_snapshot,
	.load_snapshot = mem_load_snapshot,
	.sync_policy = mem_sync_policy,
	.lost = mem_lost,
};

TEST_MODULE(mem_entry, mem_desc, KQ_PLUGIN_STORAGE, "memlog", &mem_ops)

/* The same storage without snapshots: a module the core must refuse, as
 * it would call the missing op. */
static struct kq_storage_ops nosnap_ops;
static struct kq_plugin_desc nosnap_desc;

static const struct kq_plugin_desc *nosnap_entry(void)
{
	nosnap_ops = mem_ops;
	nosnap_ops.save_snapshot = NULL;
	nosnap_desc = mem_desc;
	nosnap_desc.name = "nosnap";
	nosnap_desc.ops = &nosnap_ops;
	return &nosnap_desc;
}

static void mem_free_all(void)
{
	for (size_t i = 0; i < nlogs; i++) {
		mem_truncate(logs[i], 0);
		free(logs[i]->recs);
		free(logs[i]->snap);
		free(logs[i]->dir);
		free(logs[i]);
	}
	nlogs = 0;
	mem_sync_error = 0;
	mem_truncate_error = 0;
	mem_truncates = 0;
	mem_policy = KQ_SYNC_ALWAYS;
	mem_interval_ms = 1000;
}

/* ------------------------------------------------------------ gate */

/* The real `local` consensus (linked into the test), with its commits in
 * the test's hands: while `gate.hold` is set, a proposal is appended to
 * the log as usual but its sync waits, so nothing commits; release()
 * starts the syncs held, in order.  While `gate.refuse` is set, propose
 * refuses as a follower would.  `local` is lent a host whose store is the
 * core's but for sync. */
const struct kq_plugin_desc *kq_plugin_entry(void); /* local.c's */

struct held {
	struct kq_store *st;
	struct kq_sync_req *req;
	kq_sync_cb cb;
	struct held *next;
};

/* Groups the gate keeps track of: a topic of a few hundred partitions. */
#define GATE_GROUPS 512

static struct {
	const struct kq_consensus_ops *local;
	const struct kq_store_api *store; /* the core's */
	struct kq_store_api gated;	  /* the same but for sync */
	struct kq_host host;		  /* what `local` is lent */
	int hold, refuse;
	/* Proposals are taken, then reported lost (KQ_EUNAVAILABLE), as by
	 * a leader deposed before they committed: here they commit. */
	int lose;
	kq_propose_cb lost_cb;
	struct held *held, **held_tail;
	struct {
		struct kq_group *g;
		struct kq_store *st;
		struct kq_group_config cfg;
	} groups[GATE_GROUPS];
	const struct kq_host *core_host; /* the core's, with serve() */
	/* When set, the leader every partition's group names (0: none
	 * known), as if another broker led them. */
	int leader_set, leader;
	int opens;     /* groups opened */
	int proposals; /* batches proposed */
} gate;

/* Calls the core made to other brokers (forward.c), in order; the test
 * answers each through its callback, as a cluster port would. */
struct sent {
	struct kq_call *call;
	int to;
	uint8_t *buf;
	size_t len;
	kq_call_cb cb;
	int answered;
};
static struct sent sent[512];
static int nsent;

/* The last answer the core gave, through reply(), to a request another
 * broker sent (host->serve), and how many it gave. */
static struct {
	int n;
	struct kq_incoming *in;
	uint8_t buf[2 << 20];
	size_t len;
} got;

/* The last chunk a read of another broker's replica handed over
 * (fetch.c), and how many it handed. */
static struct {
	int n;
	struct kq__chunk *ch;
} fetched_chunk;

static int gate_sync(struct kq_store *st, struct kq_sync_req *req,
		     kq_sync_cb cb)
{
	struct held *h;

	if (!gate.hold)
		return gate.store->sync(st, req, cb);
	h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->st = st;
	h->req = req;
	h->cb = cb;
	*gate.held_tail = h;
	gate.held_tail = &h->next;
	return 0;
}

/* Starts the syncs held, in order; one of a store closed meanwhile
 * (st NULL) ends as cancelled, as its group is gone. */
static void gate_release(void)
{
	struct held *h = gate.held;

	gate.held = NULL;
	gate.held_tail = &gate.held;
	while (h) {
		struct held *next = h->next;
		int rv = h->st ? gate.store->sync(h->st, h->req, h->cb)
			       : KQ_ECANCELED;

		if (rv != 0)
			h->cb(h->req, rv);
		free(h);
		h = next;
	}
}

static int gate_init(const struct kq_host *host, void **state)
{
	gate.local = kq_plugin_entry()->ops;
	gate.store = host->store;
	gate.gated = *host->store;
	gate.gated.sync = gate_sync;
	gate.host = *host;
	gate.host.store = &gate.gated;
	gate.core_host = host;
	gate.held_tail = &gate.held;
	return gate.local->init(&gate.host, state);
}

static void gate_fini(void *state)
{
	assert_null(gate.held);
	gate.local->fini(state);
}

static int gate_group_open(void *state, const struct kq_group_config *cfg,
			   struct kq_group **out)
{
	int rv = gate.local->group_open(state, cfg, out);
	size_t i = 0;

	while (rv == 0 && gate.groups[i].g)
		assert_true(++i < GATE_GROUPS);
	if (rv == 0) {
		gate.groups[i].g = *out;
		gate.groups[i].st = cfg->store;
		gate.groups[i].cfg = *cfg;
		gate.opens++;
	}
	return rv;
}

static void gate_group_close(struct kq_group *g)
{
	struct kq_store *st = NULL;

	for (size_t i = 0; i < GATE_GROUPS; i++)
		if (gate.groups[i].g == g) {
			st = gate.groups[i].st;
			gate.groups[i].g = NULL;
		}
	gate.local->group_close(g);
	/* The core closes the store next: its held syncs never start. */
	for (struct held *h = gate.held; st && h; h = h->next)
		if (h->st == st)
			h->st = NULL;
}

static void gate_lost(struct kq_propose_req *req, int status)
{
	(void)status;
	gate.lost_cb(req, KQ_EUNAVAILABLE);
}

static int gate_propose(struct kq_group *g, struct kq_propose_req *req,
			const struct kq_record *recs, size_t n,
			kq_propose_cb cb)
{
	gate.proposals++;
	if (gate.refuse)
		return KQ_EUNAVAILABLE;
	if (gate.lose) {
		gate.lost_cb = cb;
		cb = gate_lost;
	}
	return gate.local->propose(g, req, recs, n, cb);
}

static struct kq_broker *b;

static int gate_leader(struct kq_group *g)
{
	if (gate.leader_set && g != b->meta_group)
		return gate.leader;
	return gate.local->leader(g);
}

static int gate_peer_up(void *state, int id)
{
	return gate.leader_set ? 1 : gate.local->peer_up(state, id);
}

static int gate_call(void *state, struct kq_call *call, int to, const void *buf,
		     size_t len, unsigned timeout_ms, kq_call_cb cb)
{
	struct sent *sn = &sent[nsent];

	(void)state;
	assert_true(timeout_ms > 0);
	assert_true(nsent < (int)(sizeof(sent) / sizeof(sent[0])));
	sn->call = call;
	sn->to = to;
	sn->buf = malloc(len);
	assert_non_null(sn->buf);
	memcpy(sn->buf, buf, len);
	sn->len = len;
	sn->cb = cb;
	sn->answered = 0;
	nsent++;
	return 0;
}

static void gate_reply(void *state, struct kq_incoming *in, const void *buf,
		       size_t len)
{
	(void)state;
	assert_true(len <= sizeof(got.buf));
	memcpy(got.buf, buf, len);
	got.len = len;
	got.in = in;
	got.n++;
}

static struct kq_consensus_ops gate_ops;

static const struct kq_plugin_desc gate_desc =
	TEST_DESC(KQ_PLUGIN_CONSENSUS, "gate", &gate_ops);

static const struct kq_plugin_desc *gate_entry(void)
{
	gate_ops = *(const struct kq_consensus_ops *)kq_plugin_entry()->ops;
	gate_ops.init = gate_init;
	gate_ops.fini = gate_fini;
	gate_ops.propose = gate_propose;
	gate_ops.group_open = gate_group_open;
	gate_ops.group_close = gate_group_close;
	gate_ops.reply = gate_reply;
	gate_ops.leader = gate_leader;
	gate_ops.peer_up = gate_peer_up;
	gate_ops.call = gate_call;
	return &gate_desc;
}

/* ------------------------------------------------------------ probe */

/* A transport that listens nowhere: the test calls the broker API it is
 * lent. */
static struct {
	const struct kq_host *host;
	uv_timer_t timer; /* stop's done, on a later loop turn */
	void (*done)(void *ctx);
	void *done_ctx;
} probe;

static int probe_init(const struct kq_host *host, void **state)
{
	probe.host = host;
	*state = &probe;
	return 0;
}

static void probe_fini(void *state)
{
	(void)state;
}

static int probe_start(void *state)
{
	(void)state;
	return 0;
}

static void probe_closed(uv_handle_t *h)
{
	(void)h;
	probe.done(probe.done_ctx);
}

static void probe_stopped(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, probe_closed);
}

static void probe_stop(void *state, void (*done)(void *ctx), void *ctx)
{
	(void)state;
	probe.done = done;
	probe.done_ctx = ctx;
	uv_timer_init(probe.host->loop, &probe.timer);
	uv_timer_start(&probe.timer, probe_stopped, 0, 0);
}

static const struct kq_transport_ops probe_ops = {
	.size = sizeof(struct kq_transport_ops),
	.init = probe_init,
	.fini = probe_fini,
	.start = probe_start,
	.stop = probe_stop,
};

TEST_MODULE(probe_entry, probe_desc, KQ_PLUGIN_TRANSPORT, "probe", &probe_ops)

/* ------------------------------------------------------------ firstbyte */

static int fb_init(const struct kq_host *host, void **state)
{
	(void)host;
	*state = NULL;
	return 0;
}

static void fb_fini(void *state)
{
	(void)state;
}

/* The key's first byte, or round robin without a key. */
static uint32_t fb_partition(void *state, const struct kq_partition_req *r)
{
	(void)state;
	if (r->key && r->key_len)
		return *(const unsigned char *)r->key % r->partitions;
	return (uint32_t)(r->keyless_seq % r->partitions);
}

static const struct kq_partitioner_ops fb_ops = {
	.size = sizeof(struct kq_partitioner_ops),
	.init = fb_init,
	.fini = fb_fini,
	.partition = fb_partition,
};

TEST_MODULE(fb_entry, fb_desc, KQ_PLUGIN_PARTITIONER, "firstbyte", &fb_ops)

/* ------------------------------------------------------------ harness */

static uv_loop_t loop;
static struct kq__config cfg;
static struct kq_session *sess;
static char dir[] = "/tmp/kq-core-api-XXXXXX";

static const struct kq_broker_api *api(void)
{
	return probe.host->api;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

/* Runs the loop until *flag is set (flag NULL: never) or secs passed,
 * sleeping in it between events; a 10 ms tick bounds each sleep. */
static void run_while(const int *flag, double secs)
{
	double end = now_s() + secs;
	uv_timer_t tick;

	uv_timer_init(&loop, &tick);
	uv_timer_start(&tick, on_tick, 10, 10);
	while ((flag == NULL || !*flag) && now_s() < end)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(&loop, UV_RUN_NOWAIT); /* its close, before it goes */
}

/* Runs the loop until *flag is set, for 10 s at most. */
static void run_until(const int *flag)
{
	run_while(flag, 10);
	assert_true(*flag);
}

/* Runs the loop for a while, for what should not happen. */
static void run_for(double secs)
{
	run_while(NULL, secs);
}

/* More top-level sections for the next broker_open() (teardown empties
 * it). */
static const char *open_extra = "";

static void broker_open(void)
{
	char text[1024], err[512];

	snprintf(text, sizeof(text),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"},"
		 " \"plugins\": {\"transport\": \"probe\","
		 " \"partitioner\": [\"firstbyte\"], \"storage\": \"memlog\","
		 " \"consensus\": \"gate\"},%s"
		 " \"topics\": {\"default_partitions\": 2}}",
		 dir, open_extra);
	assert_int_equal(kq__config_parse(text, NULL, &cfg, err, sizeof(err)),
			 0);
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(kq__broker_open(&loop, &cfg, &b), 0);
	assert_int_equal(api()->session_open(b, &sess), 0);
}

static void broker_close(void)
{
	api()->session_close(sess);
	kq__broker_stop(b);
	/* A test that failed midway may leave requests that never end: a
	 * broker that does not stop in 10 s fails the run, not hangs it. */
	for (int i = 0; uv_run(&loop, UV_RUN_NOWAIT) != 0; i++) {
		if (i == 10000) {
			fprintf(stderr, "the broker did not stop\n");
			abort();
		}
		usleep(1000);
	}
	kq__broker_close(b);
	assert_int_equal(uv_loop_close(&loop), 0);
	kq__config_free(&cfg);
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/kq-core-api-XXXXXX");
	assert_non_null(mkdtemp(dir));
	memset(&gate, 0, sizeof(gate));
	memset(&got, 0, sizeof(got));
	memset(&fetched_chunk, 0, sizeof(fetched_chunk));
	nsent = 0;
	broker_open();
	return 0;
}

static void held_here(void);

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	held_here();
	mem_unstall(); /* a test that failed midway may leave syncs waiting */
	gate.hold = 0;
	gate.lose = 0;
	mem_stage_busy = 0;
	gate_release();
	/* A consensus module ends the calls it still has at its stop. */
	for (int i = 0; i < nsent; i++)
		if (!sent[i].answered)
			sent[i].cb(sent[i].call, KQ_ECANCELED, NULL, 0);
	for (int i = 0; i < nsent; i++)
		free(sent[i].buf);
	nsent = 0;
	broker_close();
	mem_free_all();
	open_extra = "";
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* A request and its answer. */
struct call {
	struct kq_req req;
	int done, status;
};

static void on_done(struct kq_req *req, int status)
{
	struct call *c = req->data;

	c->done++; /* a second answer shows as 2 */
	c->status = status;
}

static void create(const char *topic, uint32_t partitions)
{
	static struct call c; /* answered even after a failure */
	struct kq_topic_spec spec = {topic, partitions, NULL, 0};

	c = (struct call){.req.data = &c};
	assert_int_equal(api()->create_topic(sess, &c.req, &spec, on_done), 0);
	run_until(&c.done);
	if (c.status != 0)
		fail_msg("CRTP %s: %s", topic, c.req.errmsg);
	api()->req_cleanup(&c.req);
}

/* Starts a PUBS of `msg` on topic "t"; answered in c. */
static void publish_to(struct call *c, const char *topic, const char *msg)
{
	memset(c, 0, sizeof(*c));
	c->req.data = c;
	assert_int_equal(
		api()->publish(sess, &c->req, topic, msg, strlen(msg), on_done),
		0);
}

static void publish(struct call *c, const char *msg)
{
	publish_to(c, "t", msg);
}

/* Publishes `msg` on topic "t" and waits until it is stored. */
static void publish_stored(const char *msg)
{
	static struct call c; /* answered even after a failure */

	publish(&c, msg);
	run_until(&c.done);
	if (c.status != 0)
		fail_msg("PUBS %s: %s", msg, c.req.errmsg);
}

/* What a CONS of "t" from `from` hands out, as "p:offset:body " words. */
struct seen {
	char text[1024];
	int n;
};

static int on_message(void *ctx, const struct kq_message *m)
{
	struct seen *s = ctx;
	size_t used = strlen(s->text);

	snprintf(s->text + used, sizeof(s->text) - used, "%u:%llu:%.*s ",
		 m->partition, (unsigned long long)m->offset, (int)m->len,
		 (const char *)m->data);
	s->n++;
	return 0;
}

static uint64_t subscribe(const char *group)
{
	static struct call c; /* answered even after a failure */
	uint64_t id;

	c = (struct call){.req.data = &c};
	assert_int_equal(api()->subscribe(sess, &c.req, "t", group, 0, on_done),
			 0);
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	id = c.req.result.subscribe.sub_id;
	api()->req_cleanup(&c.req);
	return id;
}

static void consume(uint64_t sub, int64_t from, struct seen *s)
{
	struct kq_consume cons = {0};
	char err[256];
	int rv;

	memset(s, 0, sizeof(*s));
	assert_int_equal(api()->consume_open(sess, &cons, "t", sub, from, 0,
					     err, sizeof(err)),
			 0);
	do
		rv = api()->consume_next(&cons, 1 << 20, on_message, s, err,
					 sizeof(err));
	while (rv == 1);
	assert_int_equal(rv, 0);
	api()->consume_close(&cons);
}

/* Topic "t" of one partition holding m0 and m1, both handed out to the
 * one member of group g, whose id it returns. */
static uint64_t two_handed(void)
{
	struct seen s;
	uint64_t sub;

	create("t", 1);
	sub = subscribe("g");
	publish_stored("m0");
	publish_stored("m1");
	consume(sub, -1, &s);
	assert_string_equal(s.text, "0:0:m0 0:1:m1 ");
	return sub;
}

/* Topic "t" of two partitions, subscribed by group g (whose member's id
 * it returns), with the commits held. */
static uint64_t held_topic(void)
{
	uint64_t sub;

	create("t", 2);
	sub = subscribe("g");
	gate.hold = 1;
	return sub;
}

/* ------------------------------------------------------------ tests */

/* A PUBS is answered only once consensus commits it, with the offset it
 * was stored at; until then no reader sees it. */
static void test_publish_waits_for_commit(void **state)
{
	static struct call c[3]; /* answered even after a failure */
	struct seen s;
	uint64_t sub;

	(void)state;
	sub = held_topic();
	publish(&c[0], "{\"Key\":\"a\",\"Body\":\"x\"}"); /* 'a' = 97: 1 */
	publish(&c[1], "{\"Key\":\"b\",\"Body\":\"y\"}"); /* 0 */
	publish(&c[2], "{\"Key\":\"a\",\"Body\":\"z\"}"); /* 1 */
	run_for(0.2);
	for (int i = 0; i < 3; i++)
		assert_false(c[i].done);
	consume(sub, 0, &s);
	assert_int_equal(s.n, 0);
	gate.hold = 0;
	gate_release();
	for (int i = 0; i < 3; i++) {
		run_until(&c[i].done);
		assert_int_equal(c[i].status, 0);
	}
	assert_int_equal(c[0].req.result.publish.partition, 1);
	assert_int_equal(c[0].req.result.publish.offset, 0);
	assert_int_equal(c[1].req.result.publish.partition, 0);
	assert_int_equal(c[1].req.result.publish.offset, 0);
	assert_int_equal(c[2].req.result.publish.partition, 1);
	assert_int_equal(c[2].req.result.publish.offset, 1);
	consume(sub, 0, &s);
	assert_int_equal(s.n, 3);
	assert_non_null(strstr(s.text, "1:0:{\"Key\":\"a\",\"Body\":\"x\"}"));
	assert_non_null(strstr(s.text, "1:1:{\"Key\":\"a\",\"Body\":\"z\"}"));
	assert_non_null(strstr(s.text, "0:0:{\"Key\":\"b\",\"Body\":\"y\"}"));
}

/* Starts a PUBS on "t" of a message whose key is the one byte k (the
 * partition firstbyte picks), written to buf. */
static void publish_key(struct call *c, char *buf, size_t size, int k,
			const char *body)
{
	const char *esc = k == '"' || k == '\\' ? "\\" : "";

	snprintf(buf, size, "{\"Key\":\"%s%c\",\"Body\":\"%s\"}", esc, k, body);
	publish(c, buf);
}

/* How many sync_many() calls, and logs they covered, so far. */
static void many_synced(unsigned *calls, unsigned *covered)
{
	pthread_mutex_lock(&mem_lock);
	*calls = mem_many_calls;
	*covered = mem_many_logs;
	pthread_mutex_unlock(&mem_lock);
}

/* A publish spread over more partitions than one flush takes
 * (KQ__FLUSH_PARTS) is proposed that many at a time, oldest first, the
 * rest on the next turns, rather than all on the loop at once (each a
 * write, past segment.open_files a reopen of its file).  Counted, not
 * timed.  The syncs of the partitions written over those turns start
 * together once the last is written, as one sync_many(); a partition's
 * messages keep their order, and each is answered once with an offset
 * of its own. */
static void test_flush_is_bounded(void **state)
{
	enum { N = KQ__FLUSH_PARTS + 26 };
	/* Static: answered even after a failure, borrowed until then. */
	static struct call c[2][N];
	static char msg[2][N][64];
	unsigned calls0, covered0, calls, covered;
	int props;

	(void)state;
	create("t", N);
	/* Keys ' ' (32) .. 32 + N - 1: partitions 32 .. N-1, then 0 .. 31. */
	for (int i = 0; i < N; i++)
		publish_key(&c[0][i], msg[0][i], sizeof(msg[0][i]), 32 + i,
			    "first");
	many_synced(&calls0, &covered0);
	props = gate.proposals;
	kq__broker_flush(b); /* the end of this turn */
	assert_int_equal(gate.proposals - props, KQ__FLUSH_PARTS);
	many_synced(&calls, &covered);
	assert_int_equal(calls, calls0); /* not before the rest */
	/* A second message to each: those proposed start a new batch, at
	 * the back; the others join the batch still waiting. */
	for (int i = 0; i < N; i++)
		publish_key(&c[1][i], msg[1][i], sizeof(msg[1][i]), 32 + i,
			    "second");
	props = gate.proposals;
	kq__broker_flush(b); /* the next turn: the first round's rest */
	assert_int_equal(gate.proposals - props, N - KQ__FLUSH_PARTS);
	kq__broker_flush(b);
	assert_int_equal(gate.proposals - props, N);
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) {
			struct call *ci = &c[k][i];

			run_until(&ci->done);
			assert_int_equal(ci->done, 1);
			assert_int_equal(ci->status, 0);
			assert_int_equal(ci->req.result.publish.partition,
					 (uint32_t)(32 + i) % N);
			assert_int_equal(ci->req.result.publish.offset, k);
		}
	/* The first round's N logs in one call, the second's in another. */
	many_synced(&calls, &covered);
	assert_int_equal(calls - calls0, 2);
	assert_int_equal(covered - covered0, N + KQ__FLUSH_PARTS);
}

/* A PUBS consensus refuses is answered with the reason and takes no
 * offset: the next one gets the offset it would have had. */
static void test_refused_publish_takes_no_offset(void **state)
{
	static struct call c; /* answered even after a failure */

	(void)state;
	create("t", 1);
	gate.refuse = 1;
	publish(&c, "first");
	run_until(&c.done);
	assert_int_equal(c.status, KQ_EUNAVAILABLE);
	assert_true(c.req.errmsg[0] != '\0');
	gate.refuse = 0;
	publish(&c, "second");
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.req.result.publish.offset, 0);
}

static void count_topic(void *ctx, const char *name, uint32_t partitions)
{
	(void)name, (void)partitions;
	++*(int *)ctx;
}

/* A CRTP whose metadata record is refused leaves no topic behind, and
 * the same name can be created afterwards. */
static void test_refused_create_leaves_nothing(void **state)
{
	static struct call c; /* answered even after a failure */
	struct kq_topic_spec spec = {"t", 3, NULL, 0};
	int n = 0;

	c = (struct call){.req.data = &c};
	(void)state;
	gate.refuse = 1;
	/* Refused at once, or in the callback: either way no topic. */
	c.status = api()->create_topic(sess, &c.req, &spec, on_done);
	if (c.status == 0)
		run_until(&c.done);
	assert_int_equal(c.status, KQ_EUNAVAILABLE);
	assert_true(c.req.errmsg[0] != '\0');
	api()->req_cleanup(&c.req);
	assert_int_equal(api()->list_topics(b, count_topic, &n), 0);
	assert_int_equal(n, 0);
	gate.refuse = 0;
	create("t", 3);
	assert_int_equal(api()->list_topics(b, count_topic, &n), 1);
	assert_int_equal(n, 1);
}

/* A CRTP whose proposal is reported lost may still have committed (a
 * leader deposed after proposing): it is never answered "could not be
 * created" then.  Here the record commits: the answer is OK. */
static void test_lost_create_is_not_denied(void **state)
{
	static struct call c; /* answered even after a failure */
	struct kq_topic_spec spec = {"lost", 2, NULL, 0};
	int n = 0;

	c = (struct call){.req.data = &c};
	(void)state;
	gate.lose = 1;
	assert_int_equal(api()->create_topic(sess, &c.req, &spec, on_done), 0);
	run_until(&c.done);
	gate.lose = 0;
	if (c.status != 0)
		fail_msg("CRTP lost, yet committed: %s", c.req.errmsg);
	api()->req_cleanup(&c.req);
	assert_int_equal(api()->list_topics(b, count_topic, &n), 1);
	assert_int_equal(n, 1);
}

/* Publishes one message to each of the n partitions of a new topic in
 * one loop turn (keys 'a', 'b', ...: partition (97 + i) % n); the
 * sync_many() calls made meanwhile, and the logs they covered. */
static void one_turn(const char *topic, int n, unsigned *calls,
		     unsigned *covered)
{
	/* Static: answered even after a failure. */
	static struct call c[KQ_SYNC_MANY_MIN];
	static char msg[KQ_SYNC_MANY_MIN][64]; /* borrowed until answered */
	unsigned calls0, logs0;

	assert_true(n <= KQ_SYNC_MANY_MIN);
	create(topic, (uint32_t)n);
	pthread_mutex_lock(&mem_lock);
	calls0 = mem_many_calls;
	logs0 = mem_many_logs;
	pthread_mutex_unlock(&mem_lock);
	for (int i = 0; i < n; i++) {
		snprintf(msg[i], sizeof(msg[i]),
			 "{\"Key\":\"%c\",\"Body\":\"%d\"}", 'a' + i, i);
		publish_to(&c[i], topic, msg[i]);
	}
	for (int i = 0; i < n; i++) {
		run_until(&c[i].done);
		assert_int_equal(c[i].status, 0);
		assert_int_equal(c[i].req.result.publish.partition,
				 (uint32_t)(97 + i) % (uint32_t)n);
	}
	pthread_mutex_lock(&mem_lock);
	*calls = mem_many_calls - calls0;
	*covered = mem_many_logs - logs0;
	pthread_mutex_unlock(&mem_lock);
}

/* The syncs of one loop turn go to the storage module together: eight
 * partitions (KQ_SYNC_MANY_MIN) written at once are synced by one
 * sync_many() call (which the segment module makes one syncfs()), not
 * one sync each.  Four are synced one by one, in parallel: one syncfs()
 * would not pay for them. */
static void test_syncs_of_a_turn_go_together(void **state)
{
	unsigned calls, covered;

	(void)state;
	one_turn("t", KQ_SYNC_MANY_MIN, &calls, &covered);
	assert_int_equal(calls, 1);
	assert_int_equal(covered, KQ_SYNC_MANY_MIN);
	one_turn("u", 4, &calls, &covered);
	assert_int_equal(calls, 0);
	assert_int_equal(covered, 0);
}

/* Publishes "kept", stored, then "lost", whose sync fails (the log is
 * then reopened); returns the offset "kept" was acknowledged at. */
static uint64_t kept_then_lost(struct call *c)
{
	uint64_t acked;

	publish(c, "kept");
	run_until(&c->done);
	assert_int_equal(c->status, 0);
	acked = c->req.result.publish.offset;
	mem_sync_error = -EIO;
	publish(c, "lost");
	run_until(&c->done);
	assert_true(c->status < 0);
	mem_sync_error = 0;
	return acked;
}

/* A sync that fails answers the PUBS with the error, never OK; once the
 * disk heals, the log is reopened and a later PUBS is stored at an
 * offset no acknowledged message had. */
static void test_failed_sync_is_not_acknowledged(void **state)
{
	static struct call c; /* answered even after a failure */
	uint64_t acked;

	(void)state;
	create("t", 1);
	acked = kept_then_lost(&c);
	for (double end = now_s() + 10;;) {
		publish(&c, "after");
		run_until(&c.done);
		if (c.status == 0)
			break;
		assert_true(now_s() < end);
		run_for(0.1);
	}
	assert_true(c.req.result.publish.offset > acked);
}

/* A group that stops for a cause of its own (out of memory, a check) and
 * says so through its store's group_stopped() is closed and opened again with
 * its log, as after a write error: the partition serves again, from where it
 * was. */
static void test_group_stopped_is_reopened(void **state)
{
	static struct call c;
	struct kq_store *st = NULL;
	int opens;

	(void)state;
	create("t", 1);
	publish_stored("before");
	/* The partition's group is the newest: the metadata's came first. */
	for (size_t i = 0; i < GATE_GROUPS; i++)
		if (gate.groups[i].g)
			st = gate.groups[i].st;
	assert_non_null(st);
	opens = gate.opens;
	gate.store->group_stopped(st, -ENOMEM);
	for (double end = now_s() + 10; gate.opens == opens;) {
		assert_true(now_s() < end);
		run_for(0.1);
	}
	publish(&c, "after");
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.req.result.publish.offset, 1);
}

/* The metadata's state as its snapshot (a JSON object, the caller's). */
static json_t *meta_state(void)
{
	const struct kq_group_config *mcfg = &gate.groups[0].cfg;
	json_t *doc;
	void *data;
	size_t len;

	assert_int_equal(mcfg->id, 0); /* the metadata's, opened first */
	assert_int_equal(mcfg->snapshot(mcfg->apply_ctx, &data, &len), 0);
	doc = json_loadb(data, len, 0, NULL);
	free(data);
	assert_non_null(doc);
	return doc;
}

/* Makes the broker reopen its metadata log over a snapshot of what it
 * holds and a topic "u" (partitioner `part`) after, as a leader's
 * install would have left it had it failed before the restore. */
static void reopen_behind_install(const char *part)
{
	struct kq_store *st = gate.groups[0].st;
	json_t *doc = meta_state(), *topic;
	char *text;
	int opens;

	topic = json_deep_copy(
		json_array_get(json_object_get(doc, "topics"), 0));
	json_object_set_new(topic, "name", json_string("u"));
	json_object_set_new(topic, "partitioner", json_string(part));
	json_object_set_new(topic, "group_base",
			    json_integer(json_integer_value(json_object_get(
						 topic, "group_base")) +
					 (1 << 17)));
	json_array_append_new(json_object_get(doc, "topics"), topic);
	json_object_set_new(doc, "applied_end",
			    json_integer(json_integer_value(json_object_get(
						 doc, "applied_end")) +
					 10));
	text = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	assert_int_equal(
		gate.store->save_snapshot(st, gate.store->next_offset(st) + 9,
					  1, text, strlen(text)),
		0);
	free(text);
	opens = gate.opens;
	gate.store->group_stopped(st, -EIO);
	for (double end = now_s() + 10; gate.opens == opens;) {
		assert_true(now_s() < end);
		run_for(0.1);
	}
}

/* A metadata snapshot ahead of what this run applied (a leader's, saved
 * by an install that failed before its state was restored) is restored
 * when the failed log is reopened, not taken for the state this run
 * holds: the records it covers would never be applied here. */
static void test_meta_reopen_restores_a_newer_snapshot(void **state)
{
	static struct call c;

	(void)state;
	create("t", 1);
	reopen_behind_install("keyhash");
	publish_to(&c, "u", "x");
	run_until(&c.done);
	if (c.status != 0)
		fail_msg("PUBS u after the reopen: %s", c.req.errmsg);
}

/* A topic whose partitioner is not loaded here publishes with another,
 * but its record's partitioner is what the snapshot keeps: a broker
 * restored from it, or this one restarted with it loaded, uses the same
 * as every broker that replayed the record. */
static void test_snapshot_keeps_a_partitioner_not_loaded(void **state)
{
	static struct call c;
	json_t *doc, *topics;
	const char *part = NULL;
	size_t i;

	(void)state;
	create("t", 1);
	reopen_behind_install("nosuch");
	publish_to(&c, "u", "x");
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	doc = meta_state();
	topics = json_object_get(doc, "topics");
	for (i = 0; i < json_array_size(topics); i++)
		if (strcmp(json_string_value(json_object_get(
				   json_array_get(topics, i), "name")),
			   "u") == 0)
			part = json_string_value(json_object_get(
				json_array_get(topics, i), "partitioner"));
	assert_non_null(part);
	assert_string_equal(part, "nosuch");
	json_decref(doc);
}

/* A group's reads from its committed offsets: what one read handed out
 * is committed by the next, which goes on after it. */
static void test_group_reads_advance(void **state)
{
	struct seen s;
	uint64_t sub;

	(void)state;
	sub = two_handed();
	consume(sub, -1, &s);
	assert_int_equal(s.n, 0);
	publish_stored("m2");
	consume(sub, -1, &s);
	assert_string_equal(s.text, "0:2:m2 ");
}

/* Starts a CMIT on topic "t"; answered in c, or refused at once (c->done
 * set, the callback never runs). */
static void cmit(struct call *c, uint64_t sub, int64_t part, uint64_t off)
{
	memset(c, 0, sizeof(*c));
	c->req.data = c;
	c->status = api()->commit(sess, &c->req, "t", sub, part, off, on_done);
	if (c->status != 0)
		c->done = 1;
}

/* A CMIT whose metadata record the gate holds: not answered until it is
 * released; returns the partitions it changed. */
static uint32_t cmit_held(uint64_t sub, int64_t part, uint64_t off)
{
	static struct call c; /* answered even after a failure */

	gate.hold = 1;
	cmit(&c, sub, part, off);
	assert_int_equal(c.status, 0);
	run_for(0.2);
	assert_false(c.done);
	gate.hold = 0;
	gate_release();
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	return c.req.result.commit.changed;
}

/* CMIT is answered only once the offsets it changed are stored: held
 * while the metadata record waits for its commit, refused when it cannot
 * be proposed, at once when nothing changed.  An offset past the end is
 * refused and changes nothing. */
static void test_cmit_answered_once_stored(void **state)
{
	static struct call c; /* answered even after a failure */
	struct seen s;
	uint64_t sub;

	(void)state;
	sub = two_handed();

	assert_int_equal(cmit_held(sub, -1, 0), 1);
	cmit(&c, sub, -1, 0); /* nothing new */
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.req.result.commit.changed, 0);

	cmit(&c, sub, 0, 3);
	assert_int_equal(c.status, KQ_EBADARG);
	assert_non_null(strstr(c.req.errmsg, "past the end of t-0 (2)"));
	assert_int_equal(cmit_held(sub, 0, 1), 1);
	cmit(&c, sub, 0, 1);
	run_until(&c.done);
	assert_int_equal(c.req.result.commit.changed, 0);
	gate.refuse = 1;
	cmit(&c, sub, 0, 0);
	run_until(&c.done);
	assert_int_equal(c.status, KQ_EUNAVAILABLE);
	assert_true(c.req.errmsg[0] != '\0');
	gate.refuse = 0;
	consume(sub, -1, &s); /* from 1: the refused CMIT changed nothing */
	assert_string_equal(s.text, "0:1:m1 ");
	cmit(&c, sub, 1, 0);
	assert_int_equal(c.status, KQ_EBADARG);
	cmit(&c, sub + 1000, -1, 0);
	assert_int_equal(c.status, KQ_ENOSUB);
}

static unsigned syncs_so_far(void)
{
	unsigned n;

	pthread_mutex_lock(&mem_lock);
	n = mem_syncs;
	pthread_mutex_unlock(&mem_lock);
	return n;
}

/* The storage module's fsync policy is applied by the core in one
 * place: under `never` every log opens unsynced and nothing is synced;
 * under `interval` a PUBS is answered once written and the timer syncs
 * it later (an hour later: not yet; 20 ms later: soon); under `always`
 * it is answered once synced. */
static void test_fsync_policy(void **state)
{
	static const struct {
		int policy;
		uint32_t interval_ms;
	} runs[] = {{KQ_SYNC_NEVER, 1000},
		    {KQ_SYNC_INTERVAL, 3600000},
		    {KQ_SYNC_INTERVAL, 20},
		    {KQ_SYNC_ALWAYS, 1000}};
	static struct call c; /* answered even after a failure */

	(void)state;
	for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
		unsigned before;
		double end;

		broker_close();
		mem_free_all(); /* closed: a new broker on empty logs */
		mem_policy = runs[i].policy;
		mem_interval_ms = runs[i].interval_ms;
		broker_open();
		create("t", 1);
		for (size_t k = 0; k < nlogs; k++)
			if (logs[k]->open)
				assert_int_equal(logs[k]->unsynced,
						 mem_policy == KQ_SYNC_NEVER);
		before = syncs_so_far();
		publish(&c, "m");
		run_until(&c.done);
		assert_int_equal(c.status, 0);
		if (mem_policy == KQ_SYNC_ALWAYS) {
			assert_true(syncs_so_far() > before);
		} else if (mem_interval_ms == 20) {
			end = now_s() + 10;
			while (syncs_so_far() == before && now_s() < end)
				run_for(0.01);
			assert_true(syncs_so_far() > before);
		} else {
			run_for(0.1);
			assert_int_equal(syncs_so_far(), before);
		}
	}
}

/* A module whose ops table lacks an op is refused at load, with one line
 * naming the op, before anything could call it. */
static void test_module_without_an_op_is_refused(void **state)
{
	struct kq__module m;
	char err[512] = "";

	(void)state;
	assert_int_equal(kq__module_load("nosnap", KQ_PLUGIN_STORAGE, NULL, &m,
					 err, sizeof(err)),
			 KQ_EABI);
	assert_non_null(strstr(err, "its ops table has no save_snapshot"));
	assert_int_equal(kq__module_load("memlog", KQ_PLUGIN_STORAGE, NULL, &m,
					 err, sizeof(err)),
			 0);
	kq__module_unload(&m);
}

/* A broker reopened on the same logs recovers its topics from the
 * metadata log and serves what was stored. */
static void test_restart_recovers(void **state)
{
	static struct call c; /* answered even after a failure */
	struct seen s;
	int n = 0;

	(void)state;
	create("t", 1);
	publish(&c, "durable");
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	broker_close();
	broker_open();
	assert_int_equal(api()->list_topics(b, count_topic, &n), 1);
	consume(subscribe("g"), 0, &s);
	assert_string_equal(s.text, "0:0:durable ");
	publish(&c, "next");
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.req.result.publish.offset, 1);
}

/* A connection's members are taken out of its list from the middle and
 * the ends; what is left reads the same both ways. */
static void test_session_members_unlink(void **state)
{
	static const int left[] = {3, 1}; /* newest first */
	uint64_t id[4];
	const struct kq__member *m, *last = NULL;
	size_t k = 0;

	(void)state;
	create("t", 1);
	for (int i = 0; i < 4; i++) {
		char group[8];

		snprintf(group, sizeof(group), "g%d", i);
		id[i] = subscribe(group);
	}
	assert_int_equal(sess->nmembers, 4);
	for (int i = 2; i >= 0; i -= 2) { /* the middle, then the oldest */
		static struct call c;	  /* answered even after a failure */

		c = (struct call){.req.data = &c};
		assert_int_equal(
			api()->unsubscribe(sess, &c.req, "t", id[i], on_done),
			0);
		run_until(&c.done);
		assert_int_equal(c.status, 0);
		api()->req_cleanup(&c.req);
	}
	assert_int_equal(sess->nmembers, 2);
	for (m = sess->members; m; last = m, m = m->next_in_session) {
		assert_true(k < 2);
		assert_int_equal(m->sub_id, id[left[k++]]);
		assert_ptr_equal(m->prev_in_session, last);
	}
	assert_int_equal(k, 2);
	for (m = last; m; m = m->prev_in_session)
		assert_int_equal(m->sub_id, id[left[--k]]);
	assert_int_equal(k, 0);
}

/* ------------------------------------------------------------ served */

/* What the consensus module lends with a request: only handed back. */
static int incoming_tag;

/* Hands `w` to the core as broker `from`'s request (host->serve), as a
 * consensus module does, and frees it. */
static void serve_from(int from, struct kq__wire *w)
{
	assert_false(w->oom);
	gate.core_host->serve(gate.core_host,
			      (struct kq_incoming *)&incoming_tag, from, w->p,
			      w->len);
	free(w->p);
	memset(w, 0, sizeof(*w));
}

/* Runs the loop until the core has answered `n` served requests. */
static void answers(int n)
{
	double end = now_s() + 10;

	while (got.n < n && now_s() < end)
		run_for(0.01);
	assert_int_equal(got.n, n);
	assert_ptr_equal(got.in, &incoming_tag);
}

/* An answer to CREATE, PUBLISH or META (wire.h). */
struct served_answer {
	int status, moved;
	char errmsg[256];
	uint32_t nparts;
	uint64_t meta_end, first;
};

static void answer_of(struct served_answer *a)
{
	struct kq_reader r = {got.buf, got.len, 0};

	a->status = (int)kq_take32le(&r);
	a->moved = (int)kq_take32le(&r);
	kq__wire_rd_string(&r, a->errmsg, sizeof(a->errmsg) - 1, 1);
	a->nparts = kq_take32le(&r);
	a->meta_end = kq_take64le(&r);
	a->first = kq_take64le(&r);
	assert_false(r.bad);
	assert_int_equal(r.left, 0);
}

/* A forwarded PUBS of `n` values (keys "k<i>") to t-`part`. */
static void served_publish(struct kq__wire *w, const char *topic, uint32_t part,
			   const char *const *values, uint32_t n)
{
	kq__wire_put8(w, KQ__FWD_PUBLISH);
	kq__wire_put_str(w, topic);
	kq__wire_put32(w, part);
	kq__wire_put32(w, n);
	for (uint32_t i = 0; i < n; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%u", i);
		kq__wire_put32(w, (uint32_t)strlen(values[i]));
		kq__wire_put(w, values[i], strlen(values[i]));
		kq__wire_put32(w, (uint32_t)strlen(key));
		kq__wire_put(w, key, strlen(key));
	}
}

/* A publish another broker forwards is answered once committed, with
 * the first offset of its batch, and stored in order. */
static void test_served_publish_waits_for_commit(void **state)
{
	static const char *const two[] = {"x", "y"}, *const one[] = {"z"};
	struct kq__wire w = {0};
	struct served_answer a;
	struct seen s;
	uint64_t sub;

	(void)state;
	sub = held_topic();
	served_publish(&w, "t", 1, two, 2);
	serve_from(2, &w);
	run_for(0.2);
	assert_int_equal(got.n, 0); /* not before its commit */
	gate.hold = 0;
	gate_release();
	answers(1);
	answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.moved, 0);
	assert_int_equal(a.first, 0);
	served_publish(&w, "t", 1, one, 1);
	serve_from(3, &w);
	answers(2);
	answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.first, 2);
	consume(sub, 0, &s);
	assert_string_equal(s.text, "1:0:x 1:1:y 1:2:z ");
}

/* A malformed publish is refused and takes no offset; one for a
 * partition this broker does not have says it was not run here. */
static void test_served_publish_refused(void **state)
{
	static const char *const one[] = {"v"}, *const empty[] = {""};
	struct kq__wire w = {0};
	struct served_answer a;
	int n = 0;

	(void)state;
	create("t", 1);
	/* No message, an empty one, a batch cut short, a partition that
	 * does not exist, a topic that does not exist. */
	served_publish(&w, "t", 0, one, 0);
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	assert_string_equal(a.errmsg, "malformed forwarded PUBS");
	served_publish(&w, "t", 0, empty, 1);
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_string_equal(a.errmsg, "malformed forwarded PUBS");
	served_publish(&w, "t", 0, one, 1);
	w.len -= 1;
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_string_equal(a.errmsg, "malformed forwarded PUBS");
	served_publish(&w, "t", 1, one, 1);
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EUNAVAILABLE);
	assert_int_equal(a.moved, -1); /* not run: ask elsewhere */
	served_publish(&w, "none", 0, one, 1);
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EUNAVAILABLE);
	assert_int_equal(a.moved, -1);
	/* None took an offset. */
	served_publish(&w, "t", 0, one, 1);
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.first, 0);
}

/* A read's answer (wire.h): its head, and its records as
 * "offset:value " words. */
struct read_answer {
	int status;
	char errmsg[256];
	uint64_t next, end;
	uint32_t count;
	char text[256];
};

static void read_answer_of(struct read_answer *a)
{
	struct kq_reader r = {got.buf, got.len, 0};

	memset(a, 0, sizeof(*a));
	a->status = (int)kq_take32le(&r);
	kq__wire_rd_string(&r, a->errmsg, sizeof(a->errmsg) - 1, 1);
	a->next = kq_take64le(&r);
	a->end = kq_take64le(&r);
	a->count = kq_take32le(&r);
	for (uint32_t i = 0; i < a->count && !r.bad; i++) {
		uint64_t off = kq_take64le(&r);
		uint32_t len = kq_take32le(&r);
		const uint8_t *v = kq_take(&r, len);
		size_t used = strlen(a->text);

		assert_non_null(v);
		snprintf(a->text + used, sizeof(a->text) - used, "%llu:%.*s ",
			 (unsigned long long)off, (int)len, (const char *)v);
	}
	assert_false(r.bad);
	assert_int_equal(r.left, 0);
}

static void put64(struct kq__wire *w, uint64_t v)
{
	uint8_t b8[8];

	kq_put64le(b8, v);
	kq__wire_put(w, b8, 8);
}

static void served_read(uint32_t part, uint64_t from, uint32_t max)
{
	struct kq__wire w = {0};

	kq__wire_put8(&w, KQ__FWD_FETCH);
	kq__wire_put_str(&w, "t");
	kq__wire_put32(&w, part);
	put64(&w, from);
	put64(&w, UINT64_MAX);
	kq__wire_put32(&w, 0); /* the largest budget */
	kq__wire_put32(&w, max);
	serve_from(2, &w);
}

/* Another broker reads committed records only, within the count it
 * asks, and learns where to go on; a partition not here or a request
 * cut short is refused with the reason. */
static void test_served_read(void **state)
{
	struct kq__wire w = {0};
	struct read_answer a;
	static struct call c; /* answered even after a failure */
	int n = 0;

	(void)state;
	create("t", 1);
	publish_stored("m0");
	publish_stored("m1");
	publish_stored("m2");
	served_read(0, 0, 2);
	answers(++n);
	read_answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.count, 2);
	assert_string_equal(a.text, "0:m0 1:m1 ");
	assert_int_equal(a.next, 2);
	assert_int_equal(a.end, 3);
	/* A record stored but not committed is not read. */
	gate.hold = 1;
	publish(&c, "m3");
	run_for(0.1);
	served_read(0, a.next, 0);
	answers(++n);
	read_answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_string_equal(a.text, "2:m2 ");
	assert_int_equal(a.next, 3);
	assert_int_equal(a.end, 3);
	gate.hold = 0;
	gate_release();
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	served_read(0, 3, 0);
	answers(++n);
	read_answer_of(&a);
	assert_string_equal(a.text, "3:m3 ");
	assert_int_equal(a.end, 4);
	/* From UINT64_MAX: only the commit end. */
	served_read(0, UINT64_MAX, 0);
	answers(++n);
	read_answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.count, 0);
	assert_int_equal(a.end, 4);
	served_read(5, 0, 0);
	answers(++n);
	read_answer_of(&a);
	assert_int_equal(a.status, KQ_EUNAVAILABLE);
	assert_string_equal(a.errmsg, "partition t-5 is not known on broker 1");
	assert_int_equal(a.count, 0);
	kq__wire_put8(&w, KQ__FWD_FETCH);
	kq__wire_put_str(&w, "t");
	kq__wire_put32(&w, 0);
	serve_from(2, &w);
	answers(++n);
	read_answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	assert_string_equal(a.errmsg, "malformed read request");
}

static void served_meta(int from, const char *text)
{
	struct kq__wire w = {0};

	kq__wire_put8(&w, KQ__FWD_META);
	kq__wire_put(&w, text, strlen(text));
	serve_from(from, &w);
}

/* A peer may write only the metadata records it owns: a topic, or a
 * record naming another broker, is refused and changes nothing; so is
 * a request of an unknown kind. */
static void test_served_meta_refuses_forgery(void **state)
{
	struct kq__wire w = {0};
	struct served_answer a;
	int n = 0, topics = 0;

	(void)state;
	served_meta(2, "{\"type\": \"topic\", \"name\": \"forged\", "
		       "\"partitions\": 1, \"replicas\": 1}");
	answers(++n);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	assert_string_equal(a.errmsg, "malformed forwarded metadata record");
	served_meta(2, "{\"type\": \"register\", \"broker\": 3}");
	answers(++n);
	answer_of(&a);
	assert_string_equal(a.errmsg, "malformed forwarded metadata record");
	served_meta(2, "not json");
	answers(++n);
	answer_of(&a);
	assert_string_equal(a.errmsg, "malformed forwarded metadata record");
	kq__wire_put8(&w, 99);
	serve_from(2, &w);
	answers(++n);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	assert_string_equal(a.errmsg, "unknown forwarded request");
	assert_int_equal(api()->list_topics(b, count_topic, &topics), 0);
	assert_int_equal(topics, 0);
}

/* A CRTP forwarded to the metadata leader creates the topic and says
 * how many partitions it has and where the metadata ends; one cut
 * short is refused. */
static void test_served_create(void **state)
{
	struct kq__wire w = {0};
	struct served_answer a;
	int topics = 0;

	(void)state;
	kq__wire_put8(&w, KQ__FWD_CREATE);
	kq__wire_put_str(&w, "c");
	kq__wire_put32(&w, 3);
	kq__wire_put16(&w, 0);
	serve_from(2, &w);
	answers(1);
	answer_of(&a);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.moved, 0);
	assert_int_equal(a.nparts, 3);
	assert_true(a.meta_end > 0);
	assert_int_equal(api()->list_topics(b, count_topic, &topics), 1);
	assert_int_equal(topics, 1);
	kq__wire_put8(&w, KQ__FWD_CREATE);
	kq__wire_put_str(&w, "d");
	kq__wire_put32(&w, 3);
	kq__wire_put16(&w, KQ__FWD_MAX_OPTIONS + 1);
	serve_from(2, &w);
	answers(2);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	assert_string_equal(a.errmsg, "malformed forwarded CRTP");
}

/* ------------------------------------------------------------ forwarded */

/* A forwarded publish as the core encoded it: "topic-part:value/key ..."
 * words (wire.h's PUBLISH). */
static void sent_publish(int i, char *out, size_t len)
{
	struct kq_reader r = {sent[i].buf, sent[i].len, 0};
	char topic[64];
	uint32_t part, n;
	size_t used;

	assert_true(i < nsent);
	assert_int_equal(kq_take8(&r), KQ__FWD_PUBLISH);
	kq__wire_rd_str(&r, topic, sizeof(topic) - 1);
	part = kq_take32le(&r);
	n = kq_take32le(&r);
	snprintf(out, len, "%s-%u:", topic, part);
	for (uint32_t k = 0; k < n && !r.bad; k++) {
		uint32_t vl = kq_take32le(&r);
		const uint8_t *v = kq_take(&r, vl);
		uint32_t kl = kq_take32le(&r);
		const uint8_t *key = kq_take(&r, kl);

		used = strlen(out);
		snprintf(out + used, len - used, " %.*s/%.*s", (int)vl,
			 (const char *)v, (int)kl,
			 key ? (const char *)key : "");
	}
	assert_false(r.bad);
	assert_int_equal(r.left, 0);
}

/* Answers call i as the broker asked would (wire.h's answer). */
static void answer_sent(int i, int status, int moved, uint64_t first)
{
	uint8_t buf[KQ__WIRE_ANSWER_MAX];

	assert_true(i < nsent);
	assert_false(sent[i].answered);
	sent[i].answered = 1;
	sent[i].cb(sent[i].call, 0, buf,
		   kq__wire_encode_answer(buf, status, moved,
					  status ? "refused there" : "", 0, 0,
					  first));
}

/* Ends call i without an answer (a timeout, a closed connection). */
static void lose_sent(int i)
{
	assert_false(sent[i].answered);
	sent[i].answered = 1;
	sent[i].cb(sent[i].call, KQ_EUNAVAILABLE, NULL, 0);
}

/* Topic "t" of one partition, which the test says `leader` leads. */
static void led_by(int leader)
{
	create("t", 1);
	gate.leader_set = 1;
	gate.leader = leader;
}

static void cleanup(struct call *c, int n)
{
	for (int i = 0; i < n; i++)
		api()->req_cleanup(&c[i].req);
}

/* PUBS of a partition another broker leads go there as one batch, in
 * order, and each is answered with the offset the leader gave; the
 * batch behind waits until the first is answered, gathering what comes
 * meanwhile. */
static void test_forwarded_publish(void **state)
{
	static struct call c[5]; /* answered even after a failure */
	char text[256];

	(void)state;
	led_by(2);
	publish(&c[0], "a");
	publish(&c[1], "{\"Key\":\"k\",\"Body\":\"b\"}");
	publish(&c[2], "c");
	run_for(0.1);
	assert_int_equal(nsent, 1);
	assert_int_equal(sent[0].to, 2);
	sent_publish(0, text, sizeof(text));
	assert_string_equal(text,
			    "t-0: a/ {\"Key\":\"k\",\"Body\":\"b\"}/k c/");
	/* Two more while it is out: they wait, together. */
	publish(&c[3], "d");
	run_for(0.05);
	publish(&c[4], "e");
	run_for(0.1);
	assert_int_equal(nsent, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(c[i].done, 0);
	answer_sent(0, 0, 0, 40);
	run_for(0.1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(c[i].done, 1);
		assert_int_equal(c[i].status, 0);
		assert_int_equal(c[i].req.result.publish.offset, 40 + i);
	}
	assert_int_equal(nsent, 2);
	sent_publish(1, text, sizeof(text));
	assert_string_equal(text, "t-0: d/ e/");
	assert_int_equal(c[3].done, 0);
	answer_sent(1, 0, 0, 43);
	run_until(&c[4].done);
	assert_int_equal(c[3].req.result.publish.offset, 43);
	assert_int_equal(c[4].req.result.publish.offset, 44);
	cleanup(c, 5);
}

/* "Not run here, broker 3 leads" sends the same request straight to 3;
 * an answer that never comes is never sent again, and the client hears
 * that the messages may or may not be stored. */
static void test_forwarded_publish_moved_and_lost(void **state)
{
	static struct call c[2]; /* answered even after a failure */
	char first[256], again[256];

	(void)state;
	led_by(2);
	publish(&c[0], "a");
	run_for(0.1);
	assert_int_equal(nsent, 1);
	answer_sent(0, KQ_EUNAVAILABLE, 3, 0);
	run_for(0.05);
	assert_int_equal(nsent, 2);
	assert_int_equal(sent[1].to, 3);
	sent_publish(0, first, sizeof(first));
	sent_publish(1, again, sizeof(again));
	assert_string_equal(first, again);
	assert_int_equal(c[0].done, 0);
	answer_sent(1, 0, 0, 9);
	run_until(&c[0].done);
	assert_int_equal(c[0].status, 0);
	assert_int_equal(c[0].req.result.publish.offset, 9);
	/* Lost on the way back: maybe stored, so not sent twice. */
	publish(&c[1], "b");
	run_for(0.1);
	assert_int_equal(nsent, 3);
	lose_sent(2);
	run_until(&c[1].done);
	assert_int_equal(c[1].status, KQ_EUNAVAILABLE);
	assert_non_null(strstr(c[1].req.errmsg, "may or may not be stored"));
	run_for(0.1);
	assert_int_equal(nsent, 3);
	assert_int_equal(c[1].done, 1);
	cleanup(c, 2);
}

/* Without a leader a PUBS waits; one that finds none within
 * topics.request_timeout_ms is refused, having stored nothing; one
 * whose partition comes to be led here meanwhile is stored here. */
static void test_forwarded_publish_waits_for_a_leader(void **state)
{
	static struct call c[2]; /* answered even after a failure */

	(void)state;
	led_by(0);
	cfg.request_timeout_ms = 300;
	publish(&c[0], "a");
	run_until(&c[0].done);
	assert_int_equal(c[0].status, KQ_EUNAVAILABLE);
	assert_string_equal(c[0].req.errmsg,
			    "partition t-0 has no leader this broker can "
			    "reach within topics.request_timeout_ms (300 ms); "
			    "nothing was stored");
	assert_int_equal(nsent, 0);
	publish(&c[1], "b");
	run_for(0.1);
	assert_int_equal(c[1].done, 0);
	gate.leader = 1; /* this broker */
	run_until(&c[1].done);
	assert_int_equal(c[1].status, 0);
	assert_int_equal(c[1].req.result.publish.offset, 0);
	assert_int_equal(nsent, 0);
	cleanup(c, 2);
}

/* Starts n PUBS of `topic` without a key: one a partition, round robin,
 * when it has n. */
static void publish_n(struct call *c, const char *topic, int n)
{
	char msg[64];

	for (int i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "m%d", i);
		publish_to(&c[i], topic, msg);
	}
}

/* Runs the loop for `secs`: the forwarded requests the timer looked at
 * meanwhile, and its walks of every one in *walks. */
static uint64_t forward_looks(double secs, uint64_t *walks)
{
	uint64_t looked = b->fwd_looked;

	*walks = b->fwd_walks;
	run_for(secs);
	*walks = b->fwd_walks - *walks;
	return b->fwd_looked - looked;
}

/* Batches waiting for leaders cost the forward timer's walk one look
 * each.  A walk that started over after each batch it sent looked at
 * n * n / 2 of them: with thousands waiting (a failover under many
 * partitions) it held the loop for tens of ms every 20 ms. */
static void test_forward_walk_is_linear(void **state)
{
	enum { N = 300 };
	static struct call c[N]; /* answered even after a failure */
	uint64_t looked, walks;

	(void)state;
	create("w", N);
	gate.leader_set = 1;
	gate.leader = 0;
	publish_n(c, "w", N);
	run_for(0.05);
	looked = forward_looks(0.2, &walks);
	assert_true(walks >= 3);
	/* At most one look per batch, and a batch per partition at most. */
	assert_true(looked <= (uint64_t)walks * N);
	for (int i = 0; i < N; i++)
		assert_int_equal(c[i].done, 0);
	gate.leader = 1; /* this broker: each is stored here */
	for (int i = 0; i < N; i++) {
		run_until(&c[i].done);
		assert_int_equal(c[i].status, 0);
	}
	cleanup(c, N);
}

/* A new batch costs the forward timer a look at it, not at every batch
 * out: a timer that walked them all at each loop turn with a new one
 * spent n looks a turn with n batches in flight. */
static void test_forward_kick_looks_at_the_new(void **state)
{
	enum { N = 300, M = 40 };
	static struct call c[N + M]; /* answered even after a failure */
	char msg[64];
	uint64_t looked, start, ms;

	(void)state;
	create("w", N);
	create("v", M);
	gate.leader_set = 1;
	gate.leader = 2;
	publish_n(c, "w", N);
	run_for(0.1);
	assert_int_equal(nsent, N);
	looked = b->fwd_looked;
	start = uv_now(&loop);
	for (int i = 0; i < M; i++) {
		snprintf(msg, sizeof(msg), "n%d", i);
		publish_to(&c[N + i], "v", msg);
		run_for(0.002);
	}
	run_for(0.01);
	assert_int_equal(nsent, N + M);
	ms = uv_now(&loop) - start;
	looked = b->fwd_looked - looked;
	/* The new ones, and a walk of every one each 20 ms. */
	assert_true(looked <= M + (ms / 20 + 2) * (N + M));
}

/* Batches queued behind their partition's first, which is out, can
 * neither go nor go stale: the timer's walk every 20 ms does not look
 * at them.  (With thousands queued behind a stopped leader, stepping
 * each took a fifth of the broker's CPU.) */
static void test_forward_walk_skips_the_queued(void **state)
{
	enum { M = 20, SIZE = 1 << 20 };
	static struct call c[M]; /* answered even after a failure */
	char *big = malloc(SIZE + 1);
	uint64_t looked, walks;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', SIZE);
	big[SIZE] = 0;
	led_by(2);
	/* One a turn: the first goes out, the others gather behind it in
	 * batches of 8 MiB at most. */
	for (int i = 0; i < M; i++) {
		publish(&c[i], big);
		run_for(0.002);
	}
	free(big);
	assert_int_equal(nsent, 1);
	looked = forward_looks(0.2, &walks);
	assert_true(walks >= 3);
	assert_true(looked <= walks);
	for (int i = 0; i < M; i++)
		assert_int_equal(c[i].done, 0);
	/* Each batch goes once the one before is answered. */
	for (int k = 0; k < nsent && !c[M - 1].done; k++) {
		answer_sent(k, 0, 0, 0);
		run_for(0.05);
	}
	for (int i = 0; i < M; i++)
		assert_int_equal(c[i].status, 0);
	cleanup(c, M);
}

/* A batch out to a broker this one learns no longer leads is answered
 * at once, saying it may or may not be stored, so that what follows
 * goes to the new leader; the late answer is dropped. */
static void test_forwarded_publish_leader_changes(void **state)
{
	static struct call c[2]; /* answered even after a failure */

	(void)state;
	led_by(2);
	publish(&c[0], "a");
	run_for(0.1);
	assert_int_equal(nsent, 1);
	gate.leader = 3;
	run_until(&c[0].done);
	assert_int_equal(c[0].status, KQ_EUNAVAILABLE);
	assert_non_null(strstr(c[0].req.errmsg,
			       "broker 2, asked to store these messages, does "
			       "not lead it any more (broker 3 does)"));
	publish(&c[1], "b");
	run_for(0.1);
	assert_int_equal(nsent, 2);
	assert_int_equal(sent[1].to, 3);
	answer_sent(0, 0, 0, 5); /* dropped */
	answer_sent(1, 0, 0, 6);
	run_until(&c[1].done);
	assert_int_equal(c[1].req.result.publish.offset, 6);
	run_for(0.05);
	assert_int_equal(c[0].done, 1);
	cleanup(c, 2);
}

/* ------------------------------------------------------------ fetched */

/* Reads of a partition held elsewhere (fetch.c): the test gives topic
 * "t"'s partition 0 the replicas 2 and 3, which the gate counts up, and
 * answers the calls as they would. */
static int elsewhere[2] = {2, 3};
static struct kq__partition *lent; /* the partition given them */
static int *own_replicas;
static size_t own_nreplicas;

static struct kq__partition *held_elsewhere(void)
{
	struct kq__partition *p;

	create("t", 1);
	p = &kq__topic_get(b, "t")->parts[0];
	lent = p;
	own_replicas = p->replicas;
	own_nreplicas = p->nreplicas;
	p->replicas = elsewhere;
	p->nreplicas = 2;
	gate.leader_set = 1;
	gate.leader = 1;
	return p;
}

/* Puts the partition's own replicas back, for its close (teardown's,
 * should the test fail first). */
static void held_here(void)
{
	if (!lent)
		return;
	lent->replicas = own_replicas;
	lent->nreplicas = own_nreplicas;
	lent = NULL;
}

static void on_fetched(void *ctx, struct kq__chunk *ch)
{
	(void)ctx;
	fetched_chunk.n++;
	fetched_chunk.ch = ch;
}

/* Answers call i with a read's answer of `count` records from `first`
 * ("v<offset>" each). */
static void answer_read(int i, int status, uint64_t first, uint32_t count,
			uint64_t next, uint64_t end)
{
	struct kq__wire w = {0};
	uint8_t head[KQ__WIRE_READ_HEAD_MAX];

	kq__wire_put(&w, head,
		     kq__wire_encode_read_head(head, status,
					       status ? "not yet" : "", next,
					       end, count));
	for (uint32_t k = 0; k < count; k++) {
		char v[32];
		uint8_t h[12];

		snprintf(v, sizeof(v), "v%llu",
			 (unsigned long long)(first + k));
		kq_put64le(h, first + k);
		kq_put32le(h + 8, (uint32_t)strlen(v));
		kq__wire_put(&w, h, sizeof(h));
		kq__wire_put(&w, v, strlen(v));
	}
	assert_false(w.oom);
	assert_false(sent[i].answered);
	sent[i].answered = 1;
	sent[i].cb(sent[i].call, 0, w.p, w.len);
	free(w.p);
}

/* Runs the loop until call i is out. */
static void sent_out(int i)
{
	double end = now_s() + 10;

	while (nsent <= i && now_s() < end)
		run_for(0.01);
	assert_true(nsent > i);
}

/* Starts a read of p from its start to its end. */
static struct kq__fetch *fetch_all(struct kq__partition *p)
{
	struct kq__fetch *f;

	assert_int_equal(kq__fetch_start(b, p->topic, 0, 0, UINT64_MAX, 4096, 0,
					 on_fetched, NULL, &f),
			 0);
	return f;
}

/* A read asks a replica for the range, and hands over what it answers,
 * record by record. */
static void test_fetch_reads_a_replica(void **state)
{
	struct kq__partition *p;
	struct kq__fetch *f;
	struct kq_reader r;
	struct kq_record rec;
	char topic[8];

	(void)state;
	p = held_elsewhere();
	assert_int_equal(kq__fetch_start(b, p->topic, 0, 5, 100, 4096, 7,
					 on_fetched, NULL, &f),
			 0);
	sent_out(0);
	assert_int_equal(sent[0].to, 2);
	r = (struct kq_reader){sent[0].buf, sent[0].len, 0};
	assert_int_equal(kq_take8(&r), KQ__FWD_FETCH);
	kq__wire_rd_str(&r, topic, sizeof(topic) - 1);
	assert_string_equal(topic, "t");
	assert_int_equal(kq_take32le(&r), 0);
	assert_int_equal(kq_take64le(&r), 5);
	assert_int_equal(kq_take64le(&r), 100);
	assert_int_equal(kq_take32le(&r), 4096);
	assert_int_equal(kq_take32le(&r), 7);
	assert_int_equal(r.left, 0);
	assert_int_equal(fetched_chunk.n, 0);
	answer_read(0, 0, 5, 2, 7, 9);
	assert_int_equal(fetched_chunk.n, 1);
	assert_int_equal(fetched_chunk.ch->status, 0);
	assert_int_equal(fetched_chunk.ch->from, 5);
	assert_int_equal(fetched_chunk.ch->next, 7);
	assert_int_equal(fetched_chunk.ch->end, 9);
	for (uint64_t off = 5; off < 7; off++) {
		char v[32];

		snprintf(v, sizeof(v), "v%llu", (unsigned long long)off);
		assert_true(kq__chunk_take(fetched_chunk.ch, &rec));
		assert_int_equal(rec.offset, off);
		assert_int_equal(rec.value_len, strlen(v));
		assert_memory_equal(rec.value, v, rec.value_len);
	}
	assert_false(kq__chunk_take(fetched_chunk.ch, &rec));
	kq__chunk_free(fetched_chunk.ch);
	held_here();
}

/* A replica that does not answer, or cannot read yet, is followed by the
 * next; after every one was asked, the round starts again; at
 * topics.request_timeout_ms the read fails, saying so. */
static void test_fetch_asks_the_next_replica(void **state)
{
	struct kq__partition *p;
	int i;

	(void)state;
	p = held_elsewhere();
	fetch_all(p);
	sent_out(0);
	lose_sent(0);
	sent_out(1);
	assert_int_equal(sent[1].to, 3);
	answer_read(1, KQ_EUNAVAILABLE, 0, 0, 0, 0);
	sent_out(2);
	assert_int_equal(sent[2].to, 2);
	assert_int_equal(fetched_chunk.n, 0);
	answer_read(2, 0, 0, 1, 1, 1);
	assert_int_equal(fetched_chunk.n, 1);
	assert_int_equal(fetched_chunk.ch->left, 1);
	kq__chunk_free(fetched_chunk.ch);
	/* Never able to read: given up at the deadline. */
	cfg.request_timeout_ms = 200;
	fetch_all(p);
	for (i = 3; fetched_chunk.n == 1; i++) {
		double end = now_s() + 10;

		/* The next call, or the end: the deadline may pass while
		 * the read waits for its next round. */
		while (nsent <= i && fetched_chunk.n == 1 && now_s() < end)
			run_for(0.01);
		if (fetched_chunk.n == 1) {
			assert_true(nsent > i);
			answer_read(i, KQ_EUNAVAILABLE, 0, 0, 0, 0);
		}
		assert_true(i < 30);
	}
	assert_int_equal(fetched_chunk.ch->status, KQ_EUNAVAILABLE);
	assert_string_equal(fetched_chunk.ch->errmsg,
			    "partition t-0: no broker holding a replica of it "
			    "answered within topics.request_timeout_ms "
			    "(200 ms)");
	kq__chunk_free(fetched_chunk.ch);
	held_here();
}

/* An answer that cannot be decoded fails the read with the reason; a
 * read cancelled while its call is out is never handed over. */
static void test_fetch_refuses_and_cancels(void **state)
{
	static const uint8_t junk[3] = {1, 2, 3};
	struct kq__partition *p;
	struct kq__fetch *f;

	(void)state;
	p = held_elsewhere();
	f = fetch_all(p);
	sent_out(0);
	sent[0].answered = 1;
	sent[0].cb(sent[0].call, 0, junk, sizeof(junk));
	assert_int_equal(fetched_chunk.n, 1);
	assert_int_equal(fetched_chunk.ch->status, KQ_EINTERNAL);
	assert_string_equal(fetched_chunk.ch->errmsg,
			    "partition t-0: broker 2 answered a read this "
			    "broker cannot decode");
	kq__chunk_free(fetched_chunk.ch);
	f = fetch_all(p);
	sent_out(1);
	kq__fetch_cancel(f);
	answer_read(1, 0, 0, 1, 1, 1);
	run_for(0.05);
	assert_int_equal(fetched_chunk.n, 1);
	held_here();
}

/* ------------------------------------------------------------ members */

/* Serves broker `from`'s metadata record and waits for its answer. */
static void served_record(int from, const char *text)
{
	struct served_answer a;
	int n = got.n;

	served_meta(from, text);
	answers(n + 1);
	answer_of(&a);
	if (a.status != 0)
		fail_msg("%s: %s", text, a.errmsg);
}

/* Reopens the broker as broker 1 of two (session timeout 600 ms, or
 * 60 s with `long_sessions`), with broker 2 up and partitions led here. */
static void two_brokers_with(int long_sessions)
{
	broker_close();
	mem_free_all();
	open_extra = long_sessions
			     ? " \"cluster\": {\"session_timeout_ms\": 60000, "
			       "\"peers\": "
			       "[{\"id\": 1, \"port\": 1, \"raft_port\": 2},"
			       " {\"id\": 2, \"port\": 3, \"raft_port\": 4}]},"
			     : " \"cluster\": {\"session_timeout_ms\": 600, "
			       "\"peers\": "
			       "[{\"id\": 1, \"port\": 1, \"raft_port\": 2},"
			       " {\"id\": 2, \"port\": 3, \"raft_port\": 4}]},";
	broker_open();
	gate.leader_set = 1;
	gate.leader = 1;
}

static void two_brokers(void)
{
	two_brokers_with(0);
}

/* ------------------------------------------------------------ yielding */

#define MANY_PARTS 200

static int cons_woken;

static void on_cons_wake(struct kq_consume *c)
{
	(void)c;
	cons_woken = 1;
}

/* Counts the messages of each partition (ctx: MANY_PARTS counts). */
static int count_message(void *ctx, const struct kq_message *m)
{
	int *per = ctx;

	assert_true(m->partition < MANY_PARTS);
	per[m->partition]++;
	return 0;
}

/* Topic "t" of MANY_PARTS partitions, a message stored in each (c: one
 * call each). */
static void one_message_each(struct call *c)
{
	create("t", MANY_PARTS);
	publish_n(c, "t", MANY_PARTS);
	for (int i = 0; i < MANY_PARTS; i++) {
		run_until(&c[i].done);
		assert_int_equal(c[i].status, 0);
	}
}

/* A member holding 200 partitions, a message in each: one CONS reads at
 * most KQ__CONS_READS_PER_STEP of them per step, then lets the loop serve
 * others (KQ_CONSUME_WAIT, and c->wake() from a later turn, never from
 * within the call), and hands out every message once.  It had read all
 * 200 in one go: thousands held the loop for tens of ms. */
static void test_consume_yields_between_partitions(void **state)
{
	static struct call c[MANY_PARTS];
	static int per[MANY_PARTS];
	struct kq_consume cons = {.wake = on_cons_wake};
	char err[256];
	uint64_t sub;
	int rv, waits = 0;

	(void)state;
	create("t", MANY_PARTS);
	sub = subscribe("g");
	publish_n(c, "t", MANY_PARTS);
	for (int i = 0; i < MANY_PARTS; i++) {
		run_until(&c[i].done);
		assert_int_equal(c[i].status, 0);
	}
	memset(per, 0, sizeof(per));
	assert_int_equal(api()->consume_open(sess, &cons, "t", sub, -1, 0, err,
					     sizeof(err)),
			 0);
	for (;;) {
		cons_woken = 0;
		rv = api()->consume_next(&cons, 1 << 20, count_message, per,
					 err, sizeof(err));
		if (rv != KQ_CONSUME_WAIT && rv != 1)
			break;
		if (rv == KQ_CONSUME_WAIT) {
			assert_false(cons_woken);
			waits++;
			run_until(&cons_woken);
		}
	}
	assert_int_equal(rv, 0);
	api()->consume_close(&cons);
	for (int i = 0; i < MANY_PARTS; i++)
		if (per[i] != 1)
			fail_msg("partition %d: %d messages", i, per[i]);
	assert_int_equal(waits, (MANY_PARTS - 1) / KQ__CONS_READS_PER_STEP);
	assert_int_equal(b->cons_parks, (uint64_t)waits);
}

/* A retention sweep looks at KQ__RETENTION_SLICE partitions per loop
 * turn and goes on in the next: deleting segments blocks on a busy disk,
 * and 10,000 partitions' deletions in one sweep held the loop for
 * seconds.  Every partition is swept once. */
static void test_retention_sweeps_in_slices(void **state)
{
	static struct call c[MANY_PARTS];
	struct kq__topic *t;
	uint64_t looked;

	(void)state;
	one_message_each(c);
	t = kq__topic_get(b, "t");
	t->retention_ms = 1;
	mem_retain_all = 1;
	looked = b->retention_looked;
	kq__retention_on_timer(&b->retention_timer);
	assert_true(b->retention_looked - looked <= KQ__RETENTION_SLICE);
	assert_non_null(b->sweep);
	for (double end = now_s() + 10; b->sweep;) {
		assert_true(now_s() < end);
		run_for(0.01);
	}
	mem_retain_all = 0;
	assert_int_equal(b->retention_looked - looked, MANY_PARTS);
	for (uint32_t i = 0; i < MANY_PARTS; i++)
		assert_int_equal(b->sops->first_offset(t->parts[i].store.log),
				 b->sops->next_offset(t->parts[i].store.log));
}

/* A broker stopped in the middle of a retention sweep drops it before
 * the topics it points at (the sanitizer build checks the memory). */
static void test_stop_mid_sweep(void **state)
{
	static struct call c[MANY_PARTS];

	(void)state;
	one_message_each(c);
	kq__topic_get(b, "t")->retention_ms = 1;
	mem_retain_all = 1;
	kq__retention_on_timer(&b->retention_timer);
	assert_non_null(b->sweep);
	broker_close();
	mem_retain_all = 0;
	broker_open();
	assert_null(b->sweep);
}

/* Two brokers, topic "t" of 2 partitions, and group g with a member here
 * (its id in *sub) and one of broker 2 (run 77, id 900000), which
 * registered and joined through the metadata this broker leads. */
static struct kq__cgroup *two_members(uint64_t *sub)
{
	struct kq__cgroup *g;

	two_brokers();
	create("t", 2);
	*sub = subscribe("g");
	served_record(2, "{\"type\": \"register\", \"broker\": 2, "
			 "\"boot\": 77}");
	served_record(2, "{\"type\": \"join\", \"topic\": \"t\", \"group\": "
			 "\"g\", \"sub\": 900000, \"cap\": 0, \"broker\": 2, "
			 "\"boot\": 77}");
	g = kq__cgroup_get(kq__topic_get(b, "t"), "g", KQ__CGROUP_FIND);
	assert_non_null(g);
	assert_int_equal(g->nmembers, 2);
	return g;
}

/* A member of broker 2, which registered and joined group g of "t"
 * through the metadata this broker leads, shares the partitions; once
 * broker 2 is out of reach for cluster.session_timeout_ms, and not
 * before, its member is expired and this broker's owns them all. */
static void test_members_of_a_broker_out_of_reach(void **state)
{
	struct kq__cgroup *g;
	uint64_t sub;
	double t0, took;

	(void)state;
	g = two_members(&sub);
	assert_true(g->owner[0] != g->owner[1]);
	assert_true(g->owner[0] == sub || g->owner[1] == sub);
	/* Broker 2 goes out of reach. */
	gate.leader_set = 0;
	t0 = now_s();
	run_for(0.3);
	assert_int_equal(g->nmembers, 2);
	while (g->nmembers == 2 && now_s() < t0 + 10)
		run_for(0.01);
	took = now_s() - t0;
	assert_int_equal(g->nmembers, 1);
	/* uv_now() counts whole ms, of a coarser clock. */
	assert_true(took >= 0.6 - 0.005);
	assert_int_equal(g->owner[0], sub);
	assert_int_equal(g->owner[1], sub);
	print_message("broker 2's member expired after %.2f s\n", took);
}

/* ------------------------------------------------------------ retention */

/* Applies the metadata record `text` as if the log held it at `offset`,
 * stamped ts by the leader. */
static void meta_record(uint64_t offset, int64_t ts, const char *fmt, ...)
{
	struct kq_record r;
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	memset(&r, 0, sizeof(r));
	r.offset = offset;
	r.timestamp_ms = ts;
	r.value = text;
	r.value_len = (uint32_t)strlen(text);
	b->meta_sm->apply(b, &r);
}

static struct kq__cgroup *group_t(const char *name)
{
	return kq__cgroup_get(kq__topic_get(b, "t"), name, KQ__CGROUP_FIND);
}

#define SET_OFFSET                                                             \
	"{\"type\": \"offsets\", \"topic\": \"t\", \"group\": \"%s\", "        \
	"\"offsets\": [[0, %d]], \"set\": true}"
#define FORGET_AT                                                              \
	"{\"type\": \"forget\", \"topic\": \"t\", \"group\": \"%s\", "         \
	"\"at\": %llu, \"touched\": %lld}"

/* The metadata snapshot, written as text without jansson values for
 * the offsets and owners: every field as restore() reads it. */
static void test_snapshot_text(void **state)
{
	json_t *doc, *item, *members;
	struct kq__cgroup *g;
	uint64_t s1, s2;
	char want[256];

	(void)state;
	create("t", 3);
	s1 = subscribe("g");
	s2 = subscribe("g");
	meta_record(b->meta_applied_end, 1000, SET_OFFSET, "g", 5);
	g = group_t("g");
	doc = meta_state();
	assert_int_equal(
		json_integer_value(json_object_get(doc, "sub_id_limit")),
		b->sub_id_limit);
	assert_int_equal(
		json_integer_value(json_object_get(doc, "applied_end")),
		b->meta_applied_end);
	assert_string_equal(
		json_string_value(json_object_get(
			json_array_get(json_object_get(doc, "topics"), 0),
			"name")),
		"t");
	assert_true(json_is_array(json_object_get(doc, "brokers")));
	assert_int_equal(json_array_size(json_object_get(doc, "offsets")), 1);
	item = json_array_get(json_object_get(doc, "offsets"), 0);
	assert_string_equal(json_string_value(json_object_get(item, "topic")),
			    "t");
	assert_string_equal(json_string_value(json_object_get(item, "group")),
			    "g");
	snprintf(want, sizeof(want),
		 "[[0,5]] [[0,1]] %lld %llu [%llu,%llu,%llu]",
		 (long long)g->touched_ms, (unsigned long long)g->touched_end,
		 (unsigned long long)g->owner[0],
		 (unsigned long long)g->owner[1],
		 (unsigned long long)g->owner[2]);
	{
		char *o = json_dumps(json_object_get(item, "offsets"),
				     JSON_COMPACT),
		     *sk = json_dumps(json_object_get(item, "seeks"),
				      JSON_COMPACT),
		     *ow = json_dumps(json_object_get(item, "owner"),
				      JSON_COMPACT),
		     text[256];

		snprintf(text, sizeof(text), "%s %s %lld %llu %s", o, sk,
			 (long long)json_integer_value(
				 json_object_get(item, "touched")),
			 (unsigned long long)json_integer_value(
				 json_object_get(item, "touched_end")),
			 ow);
		free(o);
		free(sk);
		free(ow);
		assert_string_equal(text, want);
	}
	members = json_object_get(item, "members");
	assert_int_equal(json_array_size(members), 2);
	assert_int_equal(json_integer_value(
				 json_array_get(json_array_get(members, 0), 0)),
			 s1);
	assert_int_equal(json_integer_value(
				 json_array_get(json_array_get(members, 1), 0)),
			 s2);
	assert_int_equal(json_array_size(json_array_get(members, 1)), 4);
	json_decref(doc);
}

#define OFFSETS_OF                                                             \
	"{\"type\": \"offsets\", \"topic\": \"t\", \"group\": \"%s\", "        \
	"\"offsets\": [[0, %d%s]], \"set\": %s, \"sub\": %llu}"

/* A record naming its member counts only for partitions that member
 * holds when it is applied: a broker with a stale view (cut off, or
 * stopped, while its member ended and the partition moved on) must not
 * move the new owner's offset past messages nobody received, nor bring
 * back a group forgotten since. */
static void test_offsets_only_of_the_holder(void **state)
{
	uint64_t e, holder, other;

	(void)state;
	create("t", 1);
	holder = subscribe("g");
	other = subscribe("g"); /* holds nothing: one partition */
	e = b->meta_applied_end;
	meta_record(e, 1000, OFFSETS_OF, "g", 5, "", "true",
		    (unsigned long long)holder);
	assert_int_equal(group_t("g")->committed[0], 5);
	/* A member that ended, one that holds nothing, one of another
	 * group: nothing changes. */
	meta_record(e + 1, 1001, OFFSETS_OF, "g", 20, "", "true",
		    (unsigned long long)holder + 1000000);
	meta_record(e + 2, 1002, OFFSETS_OF, "g", 20, "", "true",
		    (unsigned long long)other);
	meta_record(e + 3, 1003, OFFSETS_OF, "g", 20, ", 0", "false",
		    (unsigned long long)other);
	assert_int_equal(group_t("g")->committed[0], 5);
	/* A late acknowledgement of an ended member of a group with no
	 * offsets left does not make it again. */
	meta_record(e + 4, 1004, OFFSETS_OF, "gone", 20, ", 0", "false",
		    (unsigned long long)holder + 1000000);
	assert_null(group_t("gone"));
	/* The holder's acknowledgement still counts. */
	meta_record(e + 5, 1005, OFFSETS_OF, "g", 9, ", 1", "false",
		    (unsigned long long)holder);
	assert_int_equal(group_t("g")->committed[0], 9);
}

/* All or nothing: an acknowledgement of two partitions by a member that
 * holds one of them now commits neither, so that the CMIT it answers can
 * say "nothing was committed" truly; the batch comes again. */
static void test_offsets_all_or_nothing(void **state)
{
	uint64_t a, e;
	struct kq__cgroup *g;
	char text[256];

	(void)state;
	create("t", 2);
	a = subscribe("g");
	(void)subscribe("g"); /* takes one of the two partitions */
	g = group_t("g");
	assert_true(g->owner[0] == a || g->owner[1] == a);
	assert_true(g->owner[0] != g->owner[1]);
	e = b->meta_applied_end;
	snprintf(text, sizeof(text),
		 "{\"type\": \"offsets\", \"topic\": \"t\", \"group\": "
		 "\"g\", \"offsets\": [[0, 4, 0], [1, 4, 0]], \"set\": "
		 "false, \"sub\": %llu}",
		 (unsigned long long)a);
	meta_record(e, 1000, "%s", text);
	assert_int_equal(g->committed[0], 0);
	assert_int_equal(g->committed[1], 0);
}

/* A forget applies only if no record touched the group after the
 * leader proposed it, told by log offsets: a record in the same
 * millisecond after the proposal keeps the group, as does a member that
 * came and went (applied at once on a single broker). */
static void test_forget_guard_by_offset(void **state)
{
	uint64_t e, at, sub;
	static struct call c; /* answered even after a failure */

	(void)state;
	create("t", 1);
	e = b->meta_applied_end;
	meta_record(e, 1000, SET_OFFSET, "g", 3);
	/* Proposed at e + 1; then a record of the same millisecond. */
	meta_record(e + 1, 1000, SET_OFFSET, "g", 4);
	meta_record(e + 2, 1000, FORGET_AT, "g", (unsigned long long)e + 1,
		    1000LL);
	assert_non_null(group_t("g"));
	assert_int_equal(group_t("g")->committed[0], 4);
	/* Proposed after its last touch: it applies. */
	meta_record(e + 3, 1001, FORGET_AT, "g", (unsigned long long)e + 3,
		    1000LL);
	assert_null(group_t("g"));

	meta_record(e + 4, 2000, SET_OFFSET, "h", 2);
	/* Proposed here (retire.c marks the group), then a member comes
	 * and goes before it is applied. */
	at = b->meta_applied_end;
	group_t("h")->forget_at = at;
	sub = subscribe("h");
	c = (struct call){.req.data = &c};
	assert_int_equal(api()->unsubscribe(sess, &c.req, "t", sub, on_done),
			 0);
	run_until(&c.done);
	assert_int_equal(c.status, 0);
	api()->req_cleanup(&c.req);
	meta_record(b->meta_applied_end, 2001, FORGET_AT, "h",
		    (unsigned long long)at,
		    (long long)group_t("h")->touched_ms);
	assert_non_null(group_t("h"));
	assert_int_equal(group_t("h")->committed[0], 2);
	at = b->meta_applied_end;
	meta_record(at, 2002, FORGET_AT, "h", (unsigned long long)at,
		    (long long)group_t("h")->touched_ms);
	assert_null(group_t("h"));
}

/* A group restored from a snapshot made before groups had a touch time
 * is stamped with the time of the first record applied after it, which
 * differs between brokers (each snapshots at an offset of its own); the
 * leader's forget applies on every broker alike all the same.  An older
 * leader's forget, without "at", still applies by the touch time. */
static void test_forget_after_untimed_snapshot(void **state)
{
	char text[1024];
	uint64_t e;

	(void)state;
	create("t", 1);
	e = b->meta_applied_end;
	snprintf(text, sizeof(text),
		 "{\"sub_id_limit\": %llu, \"applied_end\": %llu, "
		 "\"topics\": [], \"offsets\": [{\"topic\": \"t\", "
		 "\"group\": \"g\", \"offsets\": [[0, 3]], \"seeks\": []}], "
		 "\"brokers\": [[1, %llu]]}",
		 (unsigned long long)b->sub_id_limit, (unsigned long long)e,
		 (unsigned long long)b->boot_id);
	assert_int_equal(b->meta_sm->restore(b, text, strlen(text)), 0);
	assert_non_null(group_t("g"));
	assert_int_equal(group_t("g")->committed[0], 3);
	/* Stamped here with 5000; a broker that replayed the log holds
	 * 1000, g's last record, and so does the leader's forget. */
	meta_record(e, 5000, SET_OFFSET, "other", 7);
	assert_int_equal(group_t("g")->touched_ms, 5000);
	meta_record(e + 1, 5001, FORGET_AT, "g", (unsigned long long)e + 1,
		    1000LL);
	assert_null(group_t("g"));
	meta_record(e + 2, 5002,
		    "{\"type\": \"forget\", \"topic\": \"t\", "
		    "\"group\": \"other\", \"touched\": 4999}");
	assert_non_null(group_t("other"));
	meta_record(e + 3, 5003,
		    "{\"type\": \"forget\", \"topic\": \"t\", "
		    "\"group\": \"other\", \"touched\": 5000}");
	assert_null(group_t("other"));
}

/* A log reopened after a failed sync drops what it wrote and never made
 * durable.  When it cannot (the truncate fails), it stays closed and the
 * reopen is tried again: the record that was never acknowledged is never
 * handed out, and the next publish gets the offset after the last
 * acknowledged one. */
static void test_reopen_that_cannot_drop_retries(void **state)
{
	static struct call c; /* answered even after a failure */
	struct seen s;
	uint64_t sub, acked;
	unsigned truncates;

	(void)state;
	create("t", 1);
	sub = subscribe("g");
	acked = kept_then_lost(&c);
	mem_truncate_error = -EIO;
	truncates = mem_truncates;
	for (double end = now_s() + 10; mem_truncates == truncates;) {
		assert_true(now_s() < end);
		run_for(0.1);
	}
	/* Refused at once, saying why. */
	memset(&c, 0, sizeof(c));
	c.req.data = &c;
	assert_int_equal(
		api()->publish(sess, &c.req, "t", "refused", 7, on_done),
		KQ_EUNAVAILABLE);
	assert_non_null(strstr(c.req.errmsg, "cannot be opened here"));
	mem_truncate_error = 0;
	for (double end = now_s() + 10;;) {
		memset(&c, 0, sizeof(c));
		c.req.data = &c;
		if (api()->publish(sess, &c.req, "t", "after", 5, on_done) ==
		    0) {
			run_until(&c.done);
			if (c.status == 0)
				break;
		}
		assert_true(now_s() < end);
		run_for(0.1);
	}
	assert_int_equal(c.req.result.publish.offset, acked + 1);
	consume(sub, 0, &s);
	assert_int_equal(s.n, 2);
	assert_null(strstr(s.text, "lost"));
	assert_null(strstr(s.text, "refused"));
}

/* A CRTP whose metadata write fails (the caller set the fault). */
static void crtp_fails(void)
{
	static struct call c; /* answered even after a failure */
	struct kq_topic_spec spec = {"u", 1, NULL, 0};

	c = (struct call){.req.data = &c};
	assert_int_equal(api()->create_topic(sess, &c.req, &spec, on_done), 0);
	run_until(&c.done);
	assert_true(c.status < 0);
	api()->req_cleanup(&c.req);
}

/* Runs the loop until the metadata log is open again (10 s at most). */
static void wait_metadata_reopened(void)
{
	for (double end = now_s() + 10;
	     b->meta_store.failed || !b->meta_group;) {
		assert_true(now_s() < end);
		run_for(0.1);
	}
}

/* The metadata log fails a sync, and the reopen that follows cannot drop
 * the record it never made durable: the retry drops only that record,
 * not what the log had acknowledged.  A topic created before is there
 * after a restart. */
static void test_meta_reopen_keeps_what_it_acknowledged(void **state)
{
	unsigned truncates;
	int n = 0;

	(void)state;
	create("t", 1);
	mem_sync_error = -EIO;
	crtp_fails();
	mem_sync_error = 0;
	mem_truncate_error = -EIO;
	truncates = mem_truncates;
	for (double end = now_s() + 10; mem_truncates == truncates;) {
		assert_true(now_s() < end);
		run_for(0.1);
	}
	mem_truncate_error = 0;
	wait_metadata_reopened();
	broker_close();
	broker_open();
	assert_int_equal(api()->list_topics(b, count_topic, &n), 1);
	assert_int_equal(n, 1);
}

/* The metadata log fails (a CRTP's write), and cannot be reopened until
 * mem_sync_error and mem_truncate_error are cleared. */
static void fail_metadata_log(void)
{
	mem_sync_error = -EIO;
	mem_truncate_error = -EIO;
	crtp_fails();
	assert_true(b->meta_store.failed || !b->meta_group);
}

/* In a cluster, a broker whose metadata log failed refuses consumer
 * group reads, saying why, until it is reopened: another member may hold
 * the partitions by now, and no acknowledgement could be stored, so the
 * same batch came again and again with no error. */
static void test_group_reads_wait_for_a_failed_metadata_log(void **state)
{
	struct kq_consume cons = {0};
	struct seen s;
	char err[256];
	uint64_t sub;
	int rv;

	(void)state;
	two_brokers_with(1); /* reopened before its members end */
	create("t", 1);
	publish_stored("m0");
	sub = subscribe("g");
	consume(sub, -1, &s);
	assert_int_equal(s.n, 1);
	fail_metadata_log();
	rv = api()->consume_open(sess, &cons, "t", sub, -1, 0, err,
				 sizeof(err));
	assert_int_equal(rv, KQ_EUNAVAILABLE);
	assert_non_null(strstr(err, "metadata log"));
	/* Reopened: reads go on. */
	mem_sync_error = 0;
	mem_truncate_error = 0;
	wait_metadata_reopened();
	consume(sub, 0, &s);
	assert_int_equal(s.n, 1);
}

/* A broker may end its own run's members (as it stops, or after its
 * metadata log failed): the record is taken, and its member ends at
 * once, not after cluster.session_timeout_ms; another broker's run it may
 * not end. */
static void test_own_run_end_served(void **state)
{
	struct kq__cgroup *g;
	struct served_answer a;
	uint64_t sub;
	char rec[160];
	int n;

	(void)state;
	g = two_members(&sub);
	snprintf(rec, sizeof(rec),
		 "{\"type\": \"expire\", \"broker\": 1, \"boot\": %" PRIu64
		 ", \"why\": \"stop\"}",
		 b->boot_id);
	n = got.n;
	served_meta(2, rec);
	answers(n + 1);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	served_meta(2, "{\"type\": \"expire\", \"broker\": 2, \"boot\": 77}");
	answers(n + 2);
	answer_of(&a);
	assert_int_equal(a.status, KQ_EINTERNAL);
	assert_int_equal(g->nmembers, 2);
	served_record(2, "{\"type\": \"expire\", \"broker\": 2, \"boot\": 77, "
			 "\"why\": \"stop\"}");
	assert_int_equal(g->nmembers, 1);
}

/* The metadata records this broker forwarded to broker `to` since
 * sent[from] that hold `what`. */
static int meta_sent(int from, int to, const char *what)
{
	int n = 0;

	for (int i = from; i < nsent; i++)
		if (sent[i].to == to && sent[i].len > 1 &&
		    sent[i].buf[0] == KQ__FWD_META &&
		    memmem(sent[i].buf + 1, sent[i].len - 1, what,
			   strlen(what)))
			n++;
	return n;
}

/* A broker whose metadata log failed stays connected, so the metadata
 * leader never expires its members, and its partitions waited for that
 * log; after cluster.session_timeout_ms (600 ms here), and not before,
 * the broker ends its members itself, through the metadata leader. */
static void test_failed_metadata_log_ends_its_members(void **state)
{
	struct kq_consume cons = {0};
	char want[96], err[256];
	uint64_t sub;
	int from, i;

	(void)state;
	two_brokers();
	create("t", 1);
	sub = subscribe("g");
	snprintf(want, sizeof(want),
		 "\"type\":\"expire\",\"broker\":1,\"boot\":%" PRIu64
		 ",\"why\":\"failed\"",
		 b->boot_id);
	fail_metadata_log();
	/* Its own group still names it leader: another broker is asked. */
	from = nsent;
	run_for(0.3);
	assert_int_equal(meta_sent(from, 2, "\"expire\""), 0);
	run_for(0.6);
	if (meta_sent(from, 2, want) != 1)
		fail_msg("no record %s sent to broker 2", want);
	for (i = from; !meta_sent(i, 2, want) || meta_sent(i + 1, 2, want);)
		i++;
	/* Committed there; the log here is reopened but has not applied
	 * that yet: its member's reads still wait, as the others may hold
	 * its partitions by now. */
	answer_sent(i, 0, 0, 0);
	mem_sync_error = 0;
	mem_truncate_error = 0;
	wait_metadata_reopened();
	run_for(0.3);
	assert_int_equal(api()->consume_open(sess, &cons, "t", sub, -1, 0, err,
					     sizeof(err)),
			 KQ_EUNAVAILABLE);
	assert_non_null(strstr(err, "were ended"));
	/* Applied here: the member is gone, and the run registers again. */
	meta_record(b->meta_applied_end, 1000,
		    "{\"type\": \"expire\", \"broker\": 1, \"boot\": %" PRIu64
		    ", \"why\": \"failed\"}",
		    b->boot_id);
	run_for(0.3);
	assert_int_equal(api()->consume_open(sess, &cons, "t", sub, -1, 0, err,
					     sizeof(err)),
			 KQ_ENOSUB);
}

/* ------------------------------------------------------------ cuts */

/* A sync request made straight on a store, and its answer. */
struct store_sync {
	struct kq_sync_req req;
	int done, status;
};

static void on_store_synced(struct kq_sync_req *req, int status)
{
	struct store_sync *ss = req->data;

	ss->done++;
	ss->status = status;
}

static void store_sync(struct kq_store *st, struct store_sync *ss)
{
	memset(ss, 0, sizeof(*ss));
	ss->req.data = ss;
	assert_int_equal(gate.store->sync(st, &ss->req, on_store_synced), 0);
}

/* Appends n records from offset `from` to st straight, as a consensus
 * module replacing a suffix would. */
static void store_append_at(struct kq_store *st, uint64_t from, size_t n)
{
	struct kq_record recs[4];

	assert_true(n <= 4);
	for (size_t i = 0; i < n; i++)
		recs[i] = (struct kq_record){.offset = from + i,
					     .term = 2,
					     .value = "new",
					     .value_len = 3};
	assert_int_equal(gate.store->append(st, recs, n), 0);
}

/* The store of topic "t"'s one partition, holding m0..m2, all synced. */
static struct kq_store *three_synced(struct kq__partition **out)
{
	struct kq__partition *p;

	create("t", 1);
	publish_stored("m0");
	publish_stored("m1");
	publish_stored("m2");
	p = &kq__topic_get(b, "t")->parts[0];
	assert_int_equal(p->store.durable_end, 3);
	*out = p;
	return &p->store;
}

/* A truncate after a good sync, then records appended where it cut that
 * fail their sync: the reopen keeps nothing from the cut on, though the
 * storage still holds them (a page cache), since none was made durable.
 * A Raft follower replacing a conflicting suffix would otherwise count
 * the new entries persisted and acknowledge them. */
static void test_truncate_then_failed_sync_keeps_nothing_past_it(void **state)
{
	static struct store_sync ss; /* answered even after a failure */
	struct kq__partition *p;
	struct kq_store *st;

	(void)state;
	st = three_synced(&p);
	assert_int_equal(gate.store->truncate(st, 1), 0);
	store_append_at(st, 1, 2);
	mem_sync_error = -EIO;
	store_sync(st, &ss);
	run_until(&ss.done);
	assert_true(ss.status < 0);
	mem_sync_error = 0;
	for (double end = now_s() + 10; st->failed || !p->group;) {
		assert_true(now_s() < end);
		run_for(0.1);
	}
	assert_int_equal(st->durable_end, 1);
	assert_int_equal(gate.store->next_offset(st), 1);
}

/* A stage the storage answers "sync first" (KQ_EBUSY) is no failure of
 * the log, and the sync asked next is a real one under every policy,
 * as for a staged hard state: else the stage would be refused again,
 * for ever. */
static void test_stage_busy_syncs_first(void **state)
{
	static struct store_sync ss; /* answered even after a failure */
	struct kq_hard_state hs = {2, 1};
	struct kq__partition *p;
	struct kq_store *st;
	unsigned before;

	(void)state;
	broker_close();
	mem_free_all();
	mem_policy = KQ_SYNC_NEVER;
	broker_open();
	create("t", 1);
	p = &kq__topic_get(b, "t")->parts[0];
	st = &p->store;
	mem_stage_busy = 1;
	assert_int_equal(gate.store->stage_hard_state(st, &hs), KQ_EBUSY);
	mem_stage_busy = 0;
	assert_int_equal(st->failed, 0);
	before = syncs_so_far();
	store_sync(st, &ss);
	run_until(&ss.done);
	assert_int_equal(ss.status, 0);
	assert_true(syncs_so_far() > before);
	assert_int_equal(gate.store->stage_hard_state(st, &hs), 0);
	assert_int_equal(st->failed, 0);
}

/* A truncate (reset: a reset to 1) lands while a sync runs, begun when
 * the log ended at 5: the sync covers nothing from the cut on, so when
 * it ends, what the store counts durable ends at the cut. */
static void cut_during_sync(int reset)
{
	static struct store_sync ss; /* answered even after a failure */
	struct kq__partition *p;
	struct kq_store *st;

	st = three_synced(&p);
	store_append_at(st, 3, 2);
	mem_stall = 1;
	store_sync(st, &ss);
	run_until(&st->sync_running);
	if (reset)
		assert_int_equal(gate.store->reset(st, 1), 0);
	else
		assert_int_equal(gate.store->truncate(st, 1), 0);
	mem_unstall();
	run_until(&ss.done);
	assert_int_equal(ss.status, 0);
	assert_int_equal(st->durable_end, 1);
}

static void test_truncate_during_sync_is_not_durable(void **state)
{
	(void)state;
	cut_during_sync(0);
}

static void test_reset_during_sync_is_not_durable(void **state)
{
	(void)state;
	cut_during_sync(1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_publish_waits_for_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_flush_is_bounded, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_refused_publish_takes_no_offset, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_refused_create_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_create_is_not_denied,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_sync_is_not_acknowledged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_stopped_is_reopened,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_meta_reopen_restores_a_newer_snapshot, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_snapshot_keeps_a_partitioner_not_loaded, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_reopen_that_cannot_drop_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_meta_reopen_keeps_what_it_acknowledged, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_truncate_then_failed_sync_keeps_nothing_past_it,
			setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_truncate_during_sync_is_not_durable, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_reset_during_sync_is_not_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stage_busy_syncs_first,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_syncs_of_a_turn_go_together, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_reads_advance, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cmit_answered_once_stored,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_recovers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fsync_policy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_session_members_unlink,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_served_publish_waits_for_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_served_publish_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_served_read, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_served_meta_refuses_forgery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_served_create, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_forwarded_publish, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_forwarded_publish_moved_and_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_forwarded_publish_waits_for_a_leader, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_forward_walk_is_linear,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_forward_kick_looks_at_the_new, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_forward_walk_skips_the_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_forwarded_publish_leader_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_reads_a_replica,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_fetch_asks_the_next_replica, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fetch_refuses_and_cancels,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_members_of_a_broker_out_of_reach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_text, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_group_reads_wait_for_a_failed_metadata_log, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_failed_metadata_log_ends_its_members, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_own_run_end_served, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_consume_yields_between_partitions, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_retention_sweeps_in_slices,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_mid_sweep, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_offsets_all_or_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_offsets_only_of_the_holder,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_forget_guard_by_offset,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_forget_after_untimed_snapshot, setup, teardown),
		cmocka_unit_test(test_module_without_an_op_is_refused),
	};

	kq__log_set_level(KQ_LOG_WARN);
	kq__module_link("memlog", mem_entry);
	kq__module_link("nosnap", nosnap_entry);
	kq__module_link("gate", gate_entry);
	kq__module_link("probe", probe_entry);
	kq__module_link("firstbyte", fb_entry);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
