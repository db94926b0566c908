/* Consensus module `local` over a store held in the test's hands: a
 * proposal is committed only once its sync succeeds, in offset order; a
 * failed log stays refused with its first error; a closed group's
 * proposals are cancelled; offsets start above those lost to damage;
 * open replays the log and restores a snapshot; state-machine groups are
 * snapshotted every snapshot_every records and only then compacted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <kafkaesque/consensus.h>

#include "../fake_host.h"

#define MAX_RECS  64
#define MAX_SYNCS 16

/* The test's own durable log: what local.c is lent as host->store. */
struct kq_store {
	struct kq_record recs[MAX_RECS];
	char values[MAX_RECS][16];
	size_t n;
	uint64_t first, next;
	int append_rv; /* what append answers, when not 0 */
	struct kq_offset_range lost[1];
	int nlost;
	struct {
		struct kq_sync_req *req;
		kq_sync_cb cb;
	} syncs[MAX_SYNCS]; /* waiting for the test to end them */
	int nsyncs;
	void *snap;
	size_t snap_len;
	uint64_t snap_index;
	uint64_t compacted; /* the last compact's `before` */
	int ncompacts;
};

static int st_append(struct kq_store *st, const struct kq_record *recs,
		     size_t n)
{
	if (st->append_rv)
		return st->append_rv;
	for (size_t i = 0; i < n; i++) {
		struct kq_record *r = &st->recs[st->n];

		assert_true(st->n < MAX_RECS);
		assert_true(recs[i].offset >= st->next); /* never again */
		assert_true(recs[i].value_len < sizeof(st->values[0]));
		*r = recs[i];
		memcpy(st->values[st->n], recs[i].value, recs[i].value_len);
		r->value = st->values[st->n];
		r->key = NULL;
		r->key_len = 0;
		st->n++;
		st->next = recs[i].offset + 1;
	}
	return 0;
}

static int st_sync(struct kq_store *st, struct kq_sync_req *req, kq_sync_cb cb)
{
	assert_true(st->nsyncs < MAX_SYNCS);
	st->syncs[st->nsyncs].req = req;
	st->syncs[st->nsyncs].cb = cb;
	st->nsyncs++;
	return 0;
}

/* Ends the oldest sync waiting, as the worker's answer would. */
static void end_sync(struct kq_store *st, int status)
{
	struct kq_sync_req *req = st->syncs[0].req;
	kq_sync_cb cb = st->syncs[0].cb;

	assert_true(st->nsyncs > 0);
	memmove(&st->syncs[0], &st->syncs[1],
		(size_t)(st->nsyncs - 1) * sizeof(st->syncs[0]));
	st->nsyncs--;
	cb(req, status);
}

static int st_read(struct kq_store *st, uint64_t from, uint64_t end,
		   size_t max_bytes, kq_record_cb cb, void *ctx, uint64_t *next)
{
	int passed = 0;

	(void)max_bytes;
	*next = from;
	for (size_t i = 0; i < st->n; i++) {
		const struct kq_record *r = &st->recs[i];

		if (r->offset < from || r->offset < st->first)
			continue;
		if (r->offset >= end)
			break;
		passed++;
		*next = r->offset + 1;
		if (cb(ctx, r) != 0)
			break;
	}
	return passed;
}

static uint64_t st_first(struct kq_store *st)
{
	return st->first;
}

static uint64_t st_next(struct kq_store *st)
{
	return st->next;
}

/* Raft's ops: `local` never calls them. */
static int st_term_at(struct kq_store *st, uint64_t offset, uint64_t *term)
{
	(void)st, (void)offset, (void)term;
	fail();
	return -EINVAL;
}

static int st_truncate(struct kq_store *st, uint64_t from)
{
	(void)st, (void)from;
	fail();
	return -EINVAL;
}

static int st_reset(struct kq_store *st, uint64_t next)
{
	(void)st, (void)next;
	fail();
	return -EINVAL;
}

static int st_stage_hs(struct kq_store *st, const struct kq_hard_state *hs)
{
	(void)st, (void)hs;
	fail();
	return -EINVAL;
}

static int st_load_hs(struct kq_store *st, struct kq_hard_state *hs)
{
	(void)st, (void)hs;
	fail();
	return -EINVAL;
}

static int st_save_snapshot(struct kq_store *st, uint64_t index, uint64_t term,
			    const void *data, size_t len)
{
	assert_int_equal(term, 0);
	free(st->snap);
	st->snap = malloc(len + 1);
	memcpy(st->snap, data, len);
	st->snap_len = len;
	st->snap_index = index;
	return 0;
}

static int st_load_snapshot(struct kq_store *st, uint64_t *index,
			    uint64_t *term, void **data, size_t *len)
{
	if (!st->snap)
		return -ENOENT;
	*data = malloc(st->snap_len + 1); /* host->free is free */
	memcpy(*data, st->snap, st->snap_len);
	*len = st->snap_len;
	*index = st->snap_index;
	*term = 0;
	return 0;
}

static int st_compact(struct kq_store *st, uint64_t before)
{
	st->compacted = before;
	st->ncompacts++;
	if (before <= st->first)
		return 0;
	st->first = before;
	return 1;
}

static int st_lost(struct kq_store *st, const struct kq_offset_range **out)
{
	*out = st->lost;
	return st->nlost;
}

static void st_group_stopped(struct kq_store *st, int err)
{
	(void)st;
	(void)err;
	fail_msg("local stopped a group for a cause of its own");
}

static const struct kq_store_api store_api = {
	.append = st_append,
	.sync = st_sync,
	.read = st_read,
	.first_offset = st_first,
	.next_offset = st_next,
	.term_at = st_term_at,
	.truncate = st_truncate,
	.reset = st_reset,
	.stage_hard_state = st_stage_hs,
	.load_hard_state = st_load_hs,
	.save_snapshot = st_save_snapshot,
	.load_snapshot = st_load_snapshot,
	.compact = st_compact,
	.lost = st_lost,
	.group_stopped = st_group_stopped,
};

/* ------------------------------------------------------------ fixture */

/* What the group applied, and the state machine it stands for: the sum
 * of the applied values' first bytes. */
struct machine {
	uint64_t applied[MAX_RECS];
	size_t napplied;
	uint64_t sum;
	int snapshots, restores;
};

static void apply(void *ctx, const struct kq_record *rec)
{
	struct machine *m = ctx;

	assert_true(m->napplied < MAX_RECS);
	m->applied[m->napplied++] = rec->offset;
	m->sum += rec->value_len ? ((const uint8_t *)rec->value)[0] : 0;
}

static int snapshot(void *ctx, void **data, size_t *len)
{
	struct machine *m = ctx;

	m->snapshots++;
	*data = malloc(sizeof(m->sum));
	memcpy(*data, &m->sum, sizeof(m->sum));
	*len = sizeof(m->sum);
	return 0;
}

static int restore(void *ctx, const void *data, size_t len)
{
	struct machine *m = ctx;

	assert_int_equal(len, sizeof(m->sum));
	memcpy(&m->sum, data, len);
	m->restores++;
	return 0;
}

struct call {
	struct kq_propose_req req;
	int done, status;
};

static void on_done(struct kq_propose_req *req, int status)
{
	struct call *c = req->data;

	c->done++;
	c->status = status;
}

static const struct kq_consensus_ops *ops;
static struct kq_host host;
static struct kq_store st;
static struct machine m;
static void *state;

/* Opens the module with `config` (NULL: none). */
static int module_init(const char *config)
{
	json_t *conf = config ? json_loads(config, 0, NULL) : NULL;
	int rv;

	host = kq__test_host("local", conf);
	host.broker_id = 3;
	host.store = &store_api;
	rv = ops->init(&host, &state);
	json_decref(conf); /* the module copies what it keeps */
	return rv;
}

static int setup(void **unused)
{
	(void)unused;
	ops = kq__test_module_ops(KQ_PLUGIN_CONSENSUS, "local",
				  sizeof(struct kq_consensus_ops));
	assert_non_null(ops);
	memset(&st, 0, sizeof(st));
	memset(&m, 0, sizeof(m));
	return module_init(NULL);
}

static int teardown(void **unused)
{
	(void)unused;
	ops->fini(state);
	free(st.snap);
	return 0;
}

/* A group over the store: a message log, or a state machine. */
static struct kq_group *open_group(int machine)
{
	struct kq_group_config cfg = {
		.id = machine ? 0 : 7,
		.name = machine ? "meta" : "t-0",
		.dir = "/nowhere",
		.store = &st,
		.apply = machine ? apply : NULL,
		.apply_ctx = &m,
		.snapshot = machine ? snapshot : NULL,
		.restore = machine ? restore : NULL,
	};
	struct kq_group *g = NULL;

	assert_int_equal(ops->group_open(state, &cfg, &g), 0);
	assert_non_null(g);
	return g;
}

static int propose(struct kq_group *g, struct call *c, const char *value,
		   int64_t timestamp_ms)
{
	struct kq_record rec = {.value = value,
				.value_len = strlen(value),
				.timestamp_ms = timestamp_ms};

	memset(c, 0, sizeof(*c));
	c->req.data = c;
	return ops->propose(g, &c->req, &rec, 1, on_done);
}

/* ------------------------------------------------------------ tests */

/* Nothing is committed, applied or answered before its sync ends; then
 * each proposal is answered with its first offset, in order. */
static void test_committed_once_durable(void **unused)
{
	struct kq_group *g = open_group(1);
	struct call a, b;

	(void)unused;
	assert_int_equal(propose(g, &a, "a", 0), 0);
	assert_int_equal(propose(g, &b, "b", 1234), 0);
	assert_int_equal(st.n, 2);
	assert_int_equal(st.recs[0].offset, 0);
	assert_int_equal(st.recs[0].term, 0);
	assert_true(st.recs[0].timestamp_ms > 0);	 /* stamped */
	assert_int_equal(st.recs[1].timestamp_ms, 1234); /* kept */
	assert_int_equal(ops->commit_end(g), 0);
	assert_int_equal(m.napplied, 0);
	assert_false(a.done);

	end_sync(&st, 0);
	assert_int_equal(a.done, 1);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.req.first_offset, 0);
	assert_int_equal(ops->commit_end(g), 1);
	assert_int_equal(m.napplied, 1);
	assert_false(b.done);
	end_sync(&st, 0);
	assert_int_equal(b.status, 0);
	assert_int_equal(b.req.first_offset, 1);
	assert_int_equal(ops->commit_end(g), 2);
	assert_int_equal(m.napplied, 2);
	assert_int_equal(m.applied[1], 1);
	assert_int_equal(ops->leader(g), 3);
	ops->group_close(g);
}

/* A failed sync fails its proposal, and the log stays refused with that
 * first error, whatever comes after, until a restart recovers it. */
static void test_failed_log_stays_refused(void **unused)
{
	struct kq_group *g = open_group(0);
	struct call a, b, c;

	(void)unused;
	assert_int_equal(propose(g, &a, "a", 0), 0);
	assert_int_equal(propose(g, &b, "b", 0), 0);
	end_sync(&st, -EIO);
	assert_int_equal(a.status, -EIO);
	end_sync(&st, -ENOSPC);
	assert_int_equal(b.status, -ENOSPC);
	assert_int_equal(ops->commit_end(g), 0);
	assert_int_equal(propose(g, &c, "c", 0), -EIO);
	assert_false(c.done);
	assert_int_equal(st.n, 2); /* nothing more written */
	ops->group_close(g);
}

/* A store that cannot take writes for now (out of descriptors, say)
 * refuses one proposal, not the log; a store that broke stops it. */
static void test_unavailable_is_not_failure(void **unused)
{
	struct kq_group *g = open_group(0);
	struct call a;

	(void)unused;
	st.append_rv = KQ_EUNAVAILABLE;
	assert_int_equal(propose(g, &a, "a", 0), KQ_EUNAVAILABLE);
	st.append_rv = 0;
	assert_int_equal(propose(g, &a, "a", 0), 0);
	end_sync(&st, 0);
	assert_int_equal(a.status, 0);
	st.append_rv = -EIO;
	assert_int_equal(propose(g, &a, "b", 0), -EIO);
	st.append_rv = 0;
	assert_int_equal(propose(g, &a, "b", 0), -EIO);
	ops->group_close(g);
}

/* A proposal whose group closed before its sync ended is cancelled, not
 * committed into a group that is gone; none is of zero records. */
static void test_close_cancels(void **unused)
{
	struct kq_group *g = open_group(0);
	struct kq_record none = {0};
	struct call a, b;

	(void)unused;
	assert_int_equal(propose(g, &a, "a", 0), 0);
	assert_int_equal(propose(g, &b, "b", 0), 0);
	assert_int_equal(ops->propose(g, &b.req, &none, 0, on_done),
			 KQ_EBADARG);
	ops->group_close(g);
	end_sync(&st, 0);
	end_sync(&st, 0);
	assert_int_equal(a.status, KQ_ECANCELED);
	assert_int_equal(b.status, KQ_ECANCELED);
	assert_int_equal(a.req.first_offset, 0);
	assert_int_equal(b.req.first_offset, 1);
}

/* Offsets lost to damage may have been acknowledged: none is handed out
 * again, and they count as committed so that a reader can pass them. */
static void test_offsets_start_above_lost(void **unused)
{
	struct kq_group *g;
	struct call a;

	(void)unused;
	st.first = st.next = 5;
	st.lost[0] = (struct kq_offset_range){5, 9};
	st.nlost = 1;
	g = open_group(0);
	assert_int_equal(ops->commit_end(g), 9);
	assert_int_equal(propose(g, &a, "a", 0), 0);
	end_sync(&st, 0);
	assert_int_equal(a.req.first_offset, 9);
	assert_int_equal(ops->commit_end(g), 10);
	ops->group_close(g);
}

/* Open replays what the log holds, all of it committed when alone, after
 * the snapshot when there is one. */
static void test_open_restores_and_replays(void **unused)
{
	struct kq_group *g = open_group(1);
	struct call c;

	(void)unused;
	for (int i = 0; i < 4; i++) {
		assert_int_equal(propose(g, &c, "\x01", 0), 0);
		end_sync(&st, 0);
	}
	ops->group_close(g);
	assert_int_equal(m.sum, 4);

	memset(&m, 0, sizeof(m));
	g = open_group(1);
	assert_int_equal(m.restores, 0);
	assert_int_equal(m.napplied, 4);
	assert_int_equal(m.sum, 4);
	assert_int_equal(ops->commit_end(g), 4);
	ops->group_close(g);

	/* A snapshot of offsets 0..2 (a sum of 10): only 3 is replayed. */
	st_save_snapshot(&st, 2, 0, &(uint64_t){10}, sizeof(uint64_t));
	memset(&m, 0, sizeof(m));
	g = open_group(1);
	assert_int_equal(m.restores, 1);
	assert_int_equal(m.napplied, 1);
	assert_int_equal(m.applied[0], 3);
	assert_int_equal(m.sum, 11);
	ops->group_close(g);
}

/* A state machine is snapshotted every snapshot_every applied records,
 * and only then is its log compacted, up to the snapshot. */
static void test_snapshot_every(void **unused)
{
	struct kq_group *g;
	struct call c;

	(void)unused;
	ops->fini(state);
	assert_int_equal(module_init("{\"snapshot_every\": 3}"), 0);
	g = open_group(1);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(propose(g, &c, "\x02", 0), 0);
		end_sync(&st, 0);
	}
	assert_int_equal(m.snapshots, 0);
	assert_int_equal(st.ncompacts, 0);
	assert_int_equal(propose(g, &c, "\x02", 0), 0);
	end_sync(&st, 0);
	assert_int_equal(m.snapshots, 1);
	assert_int_equal(st.snap_index, 2);
	assert_int_equal(st.compacted, 3);
	assert_int_equal(st.first, 3);
	/* Retention never drops a state machine's records: its snapshot
	 * does, once it covers them. */
	assert_int_equal(ops->group_retain(g, 3), 0);
	assert_int_equal(st.ncompacts, 1);
	ops->group_close(g);
}

/* A message log's retention stops at what is committed. */
static void test_retain_stops_at_commit(void **unused)
{
	struct kq_group *g = open_group(0);
	struct call a, b;

	(void)unused;
	assert_int_equal(propose(g, &a, "a", 0), 0);
	assert_int_equal(propose(g, &b, "b", 0), 0);
	end_sync(&st, 0);
	assert_int_equal(ops->group_retain(g, 100), 1);
	assert_int_equal(st.compacted, 1); /* offset 1 waits for its sync */
	end_sync(&st, 0);
	assert_int_equal(ops->group_retain(g, 100), 1);
	assert_int_equal(st.compacted, 2);
	ops->group_close(g);
}

/* Alone there is nobody to call, and only this broker is up. */
static void test_alone(void **unused)
{
	struct kq_call call;

	(void)unused;
	assert_true(ops->peer_up(state, 3));
	assert_false(ops->peer_up(state, 1));
	assert_int_equal(ops->call(state, &call, 1, "x", 1, 100, NULL),
			 KQ_EUNAVAILABLE);
}

/* Bad options are refused with their JSON path. */
static void test_config(void **unused)
{
	(void)unused;
	ops->fini(state);
	assert_int_equal(module_init("{\"snapshot_every\": -1}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_lastlog, "local.snapshot_every"));
	assert_int_equal(module_init("{\"snapshot\": 5}"), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_lastlog, "local.snapshot"));
	assert_int_equal(module_init("{\"snapshot_every\": 0}"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_committed_once_durable,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_log_stays_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_unavailable_is_not_failure,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_cancels, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_offsets_start_above_lost,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_restores_and_replays,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_every, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retain_stops_at_commit,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
