/* Unit tests of the pure Raft core: each rule of figure 2 of the Raft
 * paper, the election, replication and safety scenarios of its sections
 * 5.2 to 5.4, pre-vote and check-quorum (thesis 9.6), durability ordering,
 * batching, the in-flight bound, snapshots, and the storage hooks with a
 * bounded log cache. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/error.h>

#include "../../plugins/raft/core/raft.h"

#define MAXN	 5
#define ELECTION 10

/* ------------------------------------------------------------ harness */

/* A small cluster on an in-memory, FIFO network that the tests drive by
 * hand.  Node ids are 1..n. */
struct cl {
	int n;
	struct kq__raft *r[MAXN + 1];
	struct kq__raft_msg q[4096];
	size_t nq;
	bool cut[MAXN + 1][MAXN + 1]; /* cut[a][b]: a's messages to b lost */
	bool manual_persist[MAXN + 1];
	uint64_t unpersisted[MAXN + 1]; /* newest persist id not reported */
	struct kq__raft_hard_state hs[MAXN + 1];
	/* Messages sent while the hard state on "disk" was older. */
	int hs_violations;
	uint64_t applied[MAXN + 1];
	uint64_t applied_term[MAXN + 1][256];
	int snapshots[MAXN + 1];
	int writes[MAXN + 1];  /* readies that carried entries */
	int rejects[MAXN + 1]; /* APPEND rejections delivered, by sender */
	uint64_t first_written[MAXN + 1];
	bool pre_vote;
	bool check_quorum;
	bool quiesce;
	size_t max_msg_bytes;
	unsigned max_inflight_msgs;
	/* What each node wrote (indexes 1..disk_last), for the hooks. */
	struct {
		uint64_t term;
		uint32_t flags, len;
		char data[16];
	} disk[MAXN + 1][256];
	uint64_t disk_last[MAXN + 1];
	struct hook_ctx {
		struct cl *c;
		int id;
	} hc[MAXN + 1];
	int hook_reads[MAXN + 1]; /* entries read back */
	int hook_terms[MAXN + 1]; /* terms asked for */
};

static struct kq__raft_msg copy_msg(const struct kq__raft_msg *m)
{
	struct kq__raft_msg c = *m;

	if (m->n_entries) {
		c.entries = malloc(m->n_entries * sizeof(*c.entries));
		assert_non_null(c.entries);
		memcpy(c.entries, m->entries,
		       m->n_entries * sizeof(*c.entries));
		for (size_t i = 0; i < m->n_entries; i++)
			kq__raft_buf_ref(c.entries[i].data);
	}
	kq__raft_buf_ref(c.snap.data);
	return c;
}

static void free_msg(struct kq__raft_msg *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		kq__raft_buf_unref(m->entries[i].data);
	free(m->entries);
	kq__raft_buf_unref(m->snap.data);
}

/* Hands everything node id wants done to the harness. */
static void drain(struct cl *c, int id)
{
	struct kq__raft *r = c->r[id];
	struct kq__raft_ready rd;

	while (kq__raft_has_ready(r)) {
		uint64_t pid = 0;

		kq__raft_ready(r, &rd);
		if (rd.hs_changed)
			c->hs[id] = rd.hs;
		if (rd.snapshot) {
			c->snapshots[id]++;
			c->applied[id] = rd.snapshot->index;
		}
		if (rd.n_entries) {
			c->writes[id]++;
			c->first_written[id] = rd.entries[0].index;
			pid = rd.persist_id;
			for (size_t i = 0; i < rd.n_entries; i++) {
				const struct kq__raft_entry *e = &rd.entries[i];

				assert_true(e->index < 256 && e->len <= 16);
				c->disk[id][e->index].term = e->term;
				c->disk[id][e->index].flags = e->flags;
				c->disk[id][e->index].len = e->len;
				if (e->len)
					memcpy(c->disk[id][e->index].data,
					       e->data, e->len);
				c->disk_last[id] = e->index;
			}
		}
		for (size_t i = 0; i < rd.n_msgs; i++) {
			const struct kq__raft_msg *m = &rd.msgs[i];

			if (m->type != KQ__RAFT_MSG_PREVOTE &&
			    m->type != KQ__RAFT_MSG_PREVOTE_RESP &&
			    m->term > c->hs[id].term)
				c->hs_violations++;
			if (m->type == KQ__RAFT_MSG_VOTE_RESP && !m->reject &&
			    c->hs[id].vote != m->to)
				c->hs_violations++;
			if (c->cut[m->from][m->to])
				continue;
			assert_true(c->nq < sizeof(c->q) / sizeof(c->q[0]));
			c->q[c->nq++] = copy_msg(m);
		}
		for (size_t i = 0; i < rd.n_committed; i++) {
			const struct kq__raft_entry *e = &rd.committed[i];

			assert_int_equal(e->index, c->applied[id] + 1);
			c->applied[id] = e->index;
			if (e->index < 256)
				c->applied_term[id][e->index] = e->term;
		}
		kq__raft_advance(r, &rd);
		if (pid) {
			if (c->manual_persist[id])
				c->unpersisted[id] = pid;
			else
				kq__raft_persisted(r, pid);
		}
	}
}

/* The cluster's settings for node id with the hard state {term, vote};
 * voters (MAXN long) receives the voter set. */
static struct kq__raft_config config(const struct cl *c, int id, uint64_t term,
				     uint64_t vote, uint64_t *voters)
{
	for (int i = 0; i < c->n; i++)
		voters[i] = (uint64_t)i + 1;
	return (struct kq__raft_config){
		.id = (uint64_t)id,
		.voters = voters,
		.n_voters = (size_t)c->n,
		.election_ticks = ELECTION,
		.heartbeat_ticks = 1,
		.seed = 42,
		.pre_vote = c->pre_vote,
		.check_quorum = c->check_quorum,
		.quiesce = c->quiesce,
		.max_msg_bytes = c->max_msg_bytes,
		.max_inflight_msgs = c->max_inflight_msgs,
		.hs = {term, vote},
	};
}

/* Replaces node id by a new replica of cfg that has applied through
 * `applied`; the hard state it starts from is what its "disk" holds. */
static struct kq__raft *restart(struct cl *c, int id,
				const struct kq__raft_config *cfg,
				uint64_t applied)
{
	kq__raft_free(c->r[id]);
	c->r[id] = kq__raft_new(cfg);
	assert_non_null(c->r[id]);
	c->hs[id] = cfg->hs;
	c->applied[id] = applied;
	return c->r[id];
}

static struct kq__raft *start(struct cl *c, int id, uint64_t term,
			      uint64_t vote, const uint64_t *terms, size_t n)
{
	uint64_t voters[MAXN];
	struct kq__raft_entry e[64];
	struct kq__raft_config cfg = config(c, id, term, vote, voters);

	for (size_t i = 0; i < n; i++)
		e[i] = (struct kq__raft_entry){.index = i + 1,
					       .term = terms[i]};
	cfg.entries = e;
	cfg.n_entries = n;
	return restart(c, id, &cfg, 0);
}

/* The storage hooks over the harness's disk. */
static int disk_read(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		     struct kq__raft_entry *out, size_t *n)
{
	struct hook_ctx *h = ctx;
	size_t bytes = 0;

	*n = 0;
	for (uint64_t i = from; i <= to; i++) {
		assert_true(i >= 1 && i <= h->c->disk_last[h->id]);
		out[*n] = (struct kq__raft_entry){
			.index = i,
			.term = h->c->disk[h->id][i].term,
			.flags = h->c->disk[h->id][i].flags,
			.len = h->c->disk[h->id][i].len,
		};
		if (out[*n].len) {
			out[*n].data = kq__raft_buf_alloc(out[*n].len);
			memcpy(out[*n].data, h->c->disk[h->id][i].data,
			       out[*n].len);
		}
		bytes += out[(*n)++].len;
		h->c->hook_reads[h->id]++;
		if (max_bytes && bytes >= max_bytes)
			break;
	}
	return 0;
}

static int disk_term_at(void *ctx, uint64_t index, uint64_t *term)
{
	struct hook_ctx *h = ctx;

	if (index < 1 || index > h->c->disk_last[h->id])
		return -5;
	h->c->hook_terms[h->id]++;
	*term = h->c->disk[h->id][index].term;
	return 0;
}

/* Restarts node id over what its disk holds (from snap + 1), handing
 * nothing in: everything is read back through the hooks, and at most
 * cache_bytes of durable entries stay in memory. */
static void start_hooked(struct cl *c, int id, uint64_t term, uint64_t vote,
			 struct kq__raft_snapshot snap, size_t cache_bytes,
			 size_t max_msg_bytes)
{
	uint64_t voters[MAXN];
	uint64_t last = c->disk_last[id];
	struct kq__raft_config cfg = config(c, id, term, vote, voters);

	cfg.max_msg_bytes = max_msg_bytes;
	cfg.snap = snap;
	cfg.last_index = last > snap.index ? last : snap.index;
	cfg.last_term = last > snap.index ? c->disk[id][last].term : snap.term;
	cfg.read = disk_read;
	cfg.term_at = disk_term_at;
	cfg.hook_ctx = &c->hc[id];
	cfg.cache_bytes = cache_bytes;
	c->hc[id] = (struct hook_ctx){c, id};
	restart(c, id, &cfg, snap.index);
}

/* Restarts every node empty, after a change to the cluster's settings. */
static void start_all(struct cl *c)
{
	for (int i = 1; i <= c->n; i++)
		start(c, i, 0, 0, NULL, 0);
}

static struct cl *cl_new(int n, bool pre_vote, bool check_quorum)
{
	struct cl *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->n = n;
	c->pre_vote = pre_vote;
	c->check_quorum = check_quorum;
	start_all(c);
	return c;
}

static void cl_free(struct cl *c)
{
	for (size_t i = 0; i < c->nq; i++)
		free_msg(&c->q[i]);
	for (int i = 1; i <= c->n; i++)
		kq__raft_free(c->r[i]);
	free(c);
}

/* Removes and returns queued message k. */
static struct kq__raft_msg take(struct cl *c, size_t k)
{
	struct kq__raft_msg m = c->q[k];

	memmove(c->q + k, c->q + k + 1, (c->nq - k - 1) * sizeof(c->q[0]));
	c->nq--;
	return m;
}

static void drop_all(struct cl *c)
{
	while (c->nq) {
		struct kq__raft_msg m = take(c, 0);

		free_msg(&m);
	}
}

/* Takes queued message m off the network and hands it to its addressee
 * (unless the link is cut), which then does what it asks. */
static void pass(struct cl *c, const struct kq__raft_msg *m)
{
	struct kq__raft_msg x = take(c, (size_t)(m - c->q));
	int to = (int)x.to;

	if (c->r[to] && !c->cut[x.from][x.to]) {
		if (x.type == KQ__RAFT_MSG_APPEND_RESP && x.reject)
			c->rejects[x.from]++;
		assert_int_equal(kq__raft_step(c->r[to], &x), 0);
		drain(c, to);
	}
	free_msg(&x);
}

/* Delivers queued messages (and those they cause) until none is left. */
static void deliver(struct cl *c)
{
	for (int guard = 0; c->nq && guard < 100000; guard++)
		pass(c, &c->q[0]);
	assert_int_equal(c->nq, 0);
}

static void tick(struct cl *c, int id, int n)
{
	for (int i = 0; i < n; i++) {
		assert_int_equal(kq__raft_tick(c->r[id]), 0);
		drain(c, id);
	}
}

/* n rounds in which nodes first..last tick once each, then everything
 * is delivered. */
static void rounds(struct cl *c, int n, int first, int last)
{
	for (int k = 0; k < n; k++) {
		for (int i = first; i <= last; i++)
			tick(c, i, 1);
		deliver(c);
	}
}

static void tick_all(struct cl *c, int n)
{
	rounds(c, n, 1, c->n);
}

/* Leader lead ticks, each tick's messages delivered, until node id
 * commits through `commit` (at most max ticks). */
static void catch_up(struct cl *c, int lead, int id, uint64_t commit, int max)
{
	for (int k = 0; k < max && kq__raft_commit(c->r[id]) < commit; k++)
		rounds(c, 1, lead, lead);
}

/* Cuts (or mends) the link between a and b, both ways. */
static void cut_link(struct cl *c, int a, int b, bool cut)
{
	c->cut[a][b] = c->cut[b][a] = cut;
}

/* Cuts node id off from every other node. */
static void isolate(struct cl *c, int id)
{
	for (int i = 1; i <= c->n; i++)
		if (i != id)
			cut_link(c, id, i, true);
}

/* Ticks node id alone until it starts campaigning. */
static void campaign(struct cl *c, int id)
{
	enum kq__raft_role want =
		c->pre_vote ? KQ__RAFT_PRE_CANDIDATE : KQ__RAFT_CANDIDATE;

	for (int i = 0; i < 2 * ELECTION; i++) {
		tick(c, id, 1);
		if (kq__raft_role(c->r[id]) == want ||
		    kq__raft_role(c->r[id]) == KQ__RAFT_LEADER)
			return;
	}
	fail_msg("node %d never campaigned", id);
}

/* Node id campaigns and wins; all that follows is delivered, the new
 * leader's no-op included. */
static void elect(struct cl *c, int id)
{
	campaign(c, id);
	deliver(c);
	assert_int_equal(kq__raft_role(c->r[id]), KQ__RAFT_LEADER);
}

/* n nodes, node 1 campaigning (pre-voting with pre_vote); its requests
 * are still queued. */
static struct cl *campaigning(int n, bool pre_vote)
{
	struct cl *c = cl_new(n, pre_vote, false);

	campaign(c, 1);
	return c;
}

/* n nodes, node 1 elected. */
static struct cl *led(int n, bool pre_vote, bool check_quorum)
{
	struct cl *c = cl_new(n, pre_vote, check_quorum);

	elect(c, 1);
	return c;
}

static size_t count(const struct cl *c, enum kq__raft_msg_type t, int from,
		    int to)
{
	size_t k = 0;

	for (size_t i = 0; i < c->nq; i++)
		if (c->q[i].type == t &&
		    (!from || c->q[i].from == (uint64_t)from) &&
		    (!to || c->q[i].to == (uint64_t)to))
			k++;
	return k;
}

static const struct kq__raft_msg *
find(const struct cl *c, enum kq__raft_msg_type t, int from, int to)
{
	for (size_t i = 0; i < c->nq; i++)
		if (c->q[i].type == t &&
		    (!from || c->q[i].from == (uint64_t)from) &&
		    (!to || c->q[i].to == (uint64_t)to))
			return &c->q[i];
	return NULL;
}

/* find() for a message that must be queued. */
static const struct kq__raft_msg *
expect(const struct cl *c, enum kq__raft_msg_type t, int from, int to)
{
	const struct kq__raft_msg *m = find(c, t, from, to);

	assert_non_null(m);
	return m;
}

static void step(struct cl *c, int id, struct kq__raft_msg m)
{
	assert_int_equal(kq__raft_step(c->r[id], &m), 0);
	drain(c, id);
}

/* Three nodes, node 1 restarted as a follower in `term` with a log of
 * n entries of the terms t (index 1 first). */
static struct cl *follower(uint64_t term, const uint64_t *t, size_t n)
{
	struct cl *c = cl_new(3, false, false);

	start(c, 1, term, 0, t, n);
	return c;
}

/* A message of type t from `from` to `to` in `term`, about `index`; the
 * caller fills in the rest. */
static struct kq__raft_msg msg(enum kq__raft_msg_type t, int from, int to,
			       uint64_t term, uint64_t index)
{
	return (struct kq__raft_msg){.type = t,
				     .from = (uint64_t)from,
				     .to = (uint64_t)to,
				     .term = term,
				     .index = index};
}

/* Steps into node `id` an APPEND from `from` in `term`: the n entries e
 * after (index, log_term), with the leader's commit index. */
static void step_append(struct cl *c, int id, int from, uint64_t term,
			uint64_t index, uint64_t log_term,
			struct kq__raft_entry *e, size_t n, uint64_t commit)
{
	struct kq__raft_msg m = msg(KQ__RAFT_MSG_APPEND, from, id, term, index);

	m.log_term = log_term;
	m.entries = e;
	m.n_entries = n;
	m.commit = commit;
	step(c, id, m);
}

/* Steps into node `id` an APPEND_RESP from `from` in `term` that
 * acknowledges the entries through `index`. */
static void step_ack(struct cl *c, int id, int from, uint64_t term,
		     uint64_t index)
{
	step(c, id, msg(KQ__RAFT_MSG_APPEND_RESP, from, id, term, index));
}

/* Steps into node `id` a VOTE from candidate `from` in `term` whose log
 * ends at (last, last_term). */
static void step_vote(struct cl *c, int id, int from, uint64_t term,
		      uint64_t last, uint64_t last_term)
{
	struct kq__raft_msg m = msg(KQ__RAFT_MSG_VOTE, from, id, term, last);

	m.log_term = last_term;
	step(c, id, m);
}

static void propose(struct cl *c, int id, int n)
{
	struct kq__raft_entry e[16];
	char payload[16] = "payload";
	uint64_t first;

	for (int i = 0; i < n; i++)
		e[i] = (struct kq__raft_entry){.len = 8, .data = payload};
	assert_int_equal(kq__raft_propose(c->r[id], e, (size_t)n, &first), 0);
	drain(c, id);
}

/* Node id's disk catches up: its newest write is reported durable. */
static void persist(struct cl *c, int id)
{
	kq__raft_persisted(c->r[id], c->unpersisted[id]);
	drain(c, id);
}

static uint64_t term_at(struct cl *c, int id, uint64_t index)
{
	uint64_t t = 0;

	assert_int_equal(kq__raft_term_at(c->r[id], index, &t), 0);
	return t;
}

/* ------------------------------------------------ figure 2: all servers */

/* "If RPC request or response contains term T > currentTerm: set
 * currentTerm = T, convert to follower." */
static void test_all_higher_term_converts(void **state)
{
	struct cl *c = led(3, false, false);

	step_ack(c, 1, 2, 7, 0);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_FOLLOWER);
	assert_int_equal(kq__raft_term(c->r[1]), 7);
	assert_int_equal(c->hs[1].term, 7);
	assert_int_equal(c->hs[1].vote, 0);
	cl_free(c);
}

/* "If commitIndex > lastApplied: increment lastApplied, apply
 * log[lastApplied] to state machine", each entry once, in order. */
static void test_all_apply_committed_once(void **state)
{
	struct cl *c = led(3, false, false);

	propose(c, 1, 3);
	deliver(c);
	tick(c, 1, 1); /* heartbeat carries the commit index */
	deliver(c);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(kq__raft_commit(c->r[i]), 4);
		assert_int_equal(c->applied[i], 4);
	}
	cl_free(c);
}

/* ---------------------------------------------- figure 2: followers */

/* "If election timeout elapses without receiving AppendEntries from
 * current leader or granting vote to candidate: convert to candidate."
 * The timeout is randomized in [election, 2 * election). */
static void test_follower_times_out(void **state)
{
	struct cl *c = cl_new(3, false, false);
	int t;

	for (t = 1; t <= 2 * ELECTION; t++) {
		tick(c, 1, 1);
		if (kq__raft_role(c->r[1]) == KQ__RAFT_CANDIDATE)
			break;
	}
	assert_true(t >= ELECTION && t < 2 * ELECTION);
	cl_free(c);
}

/* first_election_ticks sets the first timeout only: the node campaigns
 * at that tick, and a lost election waits the usual random timeout. */
static void test_first_election_ticks(void **state)
{
	struct cl *c = cl_new(3, false, false);
	uint64_t voters[MAXN];
	struct kq__raft_config cfg = config(c, 1, 0, 0, voters);
	int t;

	cfg.first_election_ticks = 2;
	restart(c, 1, &cfg, 0);
	tick(c, 1, 1);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_FOLLOWER);
	tick(c, 1, 1);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_CANDIDATE);
	assert_int_equal(kq__raft_term(c->r[1]), 1);
	/* Nobody answers: the next campaign comes after a whole timeout. */
	for (t = 1; t <= 2 * ELECTION; t++) {
		tick(c, 1, 1);
		if (kq__raft_term(c->r[1]) == 2)
			break;
	}
	assert_true(t >= ELECTION && t < 2 * ELECTION);
	cl_free(c);
	(void)state;
}

static void test_follower_timer_reset_by_leader(void **state)
{
	struct cl *c = led(3, false, false);

	rounds(c, 5 * ELECTION, 1, 2);
	assert_int_equal(kq__raft_role(c->r[2]), KQ__RAFT_FOLLOWER);
	assert_int_equal(kq__raft_term(c->r[2]), 1);
	cl_free(c);
}

static void test_follower_timer_reset_by_vote(void **state)
{
	struct cl *c = cl_new(3, false, false);

	tick(c, 2, ELECTION - 1);
	step_vote(c, 2, 3, 1, 0, 0);
	expect(c, KQ__RAFT_MSG_VOTE_RESP, 2, 3);
	tick(c, 2, ELECTION - 1);
	assert_int_equal(kq__raft_role(c->r[2]), KQ__RAFT_FOLLOWER);
	cl_free(c);
}

/* --------------------------------------------- figure 2: candidates */

/* "On conversion to candidate: increment currentTerm, vote for self,
 * reset election timer, send RequestVote RPCs to all other servers." */
static void test_candidate_starts_election(void **state)
{
	struct cl *c = campaigning(5, false);
	const struct kq__raft_msg *m;

	assert_int_equal(kq__raft_term(c->r[1]), 1);
	assert_int_equal(c->hs[1].term, 1);
	assert_int_equal(c->hs[1].vote, 1);
	assert_int_equal(count(c, KQ__RAFT_MSG_VOTE, 1, 0), 4);
	m = expect(c, KQ__RAFT_MSG_VOTE, 1, 3);
	assert_int_equal(m->term, 1);
	assert_int_equal(c->hs_violations, 0);
	cl_free(c);
}

/* The role node 1 of five ends in when its campaign hears back from
 * nodes 2 .. answers + 1 only. */
static enum kq__raft_role campaign_heard(int answers)
{
	struct cl *c = campaigning(5, false);
	enum kq__raft_role role;

	for (int i = answers + 2; i <= 5; i++)
		c->cut[i][1] = true;
	deliver(c);
	role = kq__raft_role(c->r[1]);
	cl_free(c);
	return role;
}

/* "If votes received from majority of servers: become leader." */
static void test_candidate_wins_majority(void **state)
{
	/* Two of four answers plus its own vote make three of five. */
	assert_int_equal(campaign_heard(2), KQ__RAFT_LEADER);
}

static void test_candidate_loses_without_majority(void **state)
{
	assert_int_equal(campaign_heard(1), KQ__RAFT_CANDIDATE);
}

/* "If AppendEntries RPC received from new leader: convert to follower." */
static void test_candidate_yields_to_leader(void **state)
{
	struct cl *c = campaigning(3, false);

	drop_all(c);
	step_append(c, 1, 2, 1, 0, 0, NULL, 0, 0);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_FOLLOWER);
	assert_int_equal(kq__raft_leader(c->r[1]), 2);
	cl_free(c);
}

/* "If election timeout elapses: start new election." */
static void test_candidate_restarts_election(void **state)
{
	struct cl *c = campaigning(3, false);

	drop_all(c);
	tick(c, 1, 2 * ELECTION);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_CANDIDATE);
	assert_true(kq__raft_term(c->r[1]) >= 2);
	cl_free(c);
}

/* ------------------------------------------------- figure 2: leaders */

/* "Upon election: send initial empty AppendEntries RPCs (heartbeat) to
 * each server": here the no-op entry that opens the term. */
static void test_leader_announces_with_noop(void **state)
{
	struct cl *c = campaigning(3, false);
	const struct kq__raft_msg *m;

	/* Deliver the votes but keep the leader's first APPENDs. */
	for (int k = 0; k < 10 && kq__raft_role(c->r[1]) != KQ__RAFT_LEADER;
	     k++)
		pass(c, &c->q[0]);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	m = expect(c, KQ__RAFT_MSG_APPEND, 1, 2);
	assert_int_equal(m->n_entries, 1);
	assert_true(m->entries[0].flags & KQ__RAFT_ENTRY_CONTROL);
	assert_int_equal(m->entries[0].term, kq__raft_term(c->r[1]));
	cl_free(c);
}

/* Heartbeats during idle periods prevent election timeouts. */
static void test_leader_heartbeats(void **state)
{
	struct cl *c = led(3, false, false);

	tick(c, 1, 1);
	assert_int_equal(count(c, KQ__RAFT_MSG_HEARTBEAT, 1, 0), 2);
	cl_free(c);
}

/* "If there exists an N such that N > commitIndex, a majority of
 * matchIndex[i] >= N, and log[N].term == currentTerm: set commitIndex =
 * N." - counting only durable copies, the leader's own included. */
static void test_leader_commits_on_durable_majority(void **state)
{
	struct cl *c = led(3, false, false);

	c->manual_persist[1] = c->manual_persist[2] = true;
	c->manual_persist[3] = true;
	propose(c, 1, 1);
	deliver(c);
	/* Nobody's copy is durable: nothing commits. */
	assert_int_equal(kq__raft_commit(c->r[1]), 1);
	persist(c, 2);
	deliver(c);
	/* Follower 2 durable, leader not: one of three. */
	assert_int_equal(kq__raft_commit(c->r[1]), 1);
	persist(c, 1);
	assert_int_equal(kq__raft_commit(c->r[1]), 2);
	cl_free(c);
}

static void test_leader_commit_without_own_copy(void **state)
{
	struct cl *c = led(3, false, false);

	c->manual_persist[1] = true;
	propose(c, 1, 1);
	deliver(c);
	/* Two durable followers are a majority even if the leader's disk is
	 * slow. */
	assert_int_equal(kq__raft_commit(c->r[1]), 2);
	cl_free(c);
}

/* "If AppendEntries fails because of log inconsistency: decrement
 * nextIndex and retry", with the conflict hint skipping whole terms. */
static void test_leader_backtracks_with_hint(void **state)
{
	static const uint64_t lead[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const uint64_t foll[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	struct cl *c = follower(6, lead, 10);

	start(c, 2, 3, 0, foll, 11);
	start(c, 3, 6, 0, lead, 10);
	elect(c, 1);
	/* The divergent suffix (terms 2 and 3) is skipped in one round
	 * trip, not one per entry. */
	assert_int_equal(c->rejects[2], 1);
	assert_int_equal(kq__raft_last_index(c->r[2]), 11);
	assert_int_equal(term_at(c, 2, 4), 4);
	assert_int_equal(term_at(c, 2, 11), kq__raft_term(c->r[1]));
	cl_free(c);
}

/* ---------------------------------------- figure 2: AppendEntries RPC */

/* "1. Reply false if term < currentTerm." */
static void test_append_rejects_stale_term(void **state)
{
	struct cl *c = follower(5, NULL, 0);
	const struct kq__raft_msg *m;

	step_append(c, 1, 2, 3, 0, 0, NULL, 0, 0);
	assert_int_equal(kq__raft_term(c->r[1]), 5);
	assert_int_equal(kq__raft_leader(c->r[1]), 0);
	/* With pre-vote or check-quorum the stale leader is told. */
	c->pre_vote = true;
	start(c, 1, 5, 0, NULL, 0);
	step_append(c, 1, 2, 3, 0, 0, NULL, 0, 0);
	m = expect(c, KQ__RAFT_MSG_APPEND_RESP, 1, 2);
	assert_int_equal(m->term, 5);
	cl_free(c);
}

/* "2. Reply false if log doesn't contain an entry at prevLogIndex whose
 * term matches prevLogTerm." */
static void test_append_rejects_missing_prev(void **state)
{
	static const uint64_t t[] = {1, 1, 2};
	struct cl *c = follower(2, t, 3);
	const struct kq__raft_msg *m;

	step_append(c, 1, 2, 3, 5, 3, NULL, 0, 0);
	m = expect(c, KQ__RAFT_MSG_APPEND_RESP, 1, 2);
	assert_true(m->reject);
	assert_int_equal(m->index, 5);
	assert_int_equal(m->hint, 3); /* its last index */
	assert_int_equal(m->log_term, 2);
	drop_all(c);
	/* Same index, other term. */
	step_append(c, 1, 2, 3, 3, 3, NULL, 0, 0);
	m = expect(c, KQ__RAFT_MSG_APPEND_RESP, 1, 2);
	assert_true(m->reject);
	assert_int_equal(kq__raft_last_index(c->r[1]), 3);
	cl_free(c);
}

/* "3. If an existing entry conflicts with a new one (same index but
 * different terms), delete the existing entry and all that follow it."
 * "4. Append any new entries not already in the log." */
static void test_append_truncates_conflict(void **state)
{
	static const uint64_t t[] = {1, 1, 2, 2};
	struct kq__raft_entry e[2] = {{.index = 3, .term = 3},
				      {.index = 4, .term = 3}};
	struct cl *c = follower(2, t, 4);

	step_append(c, 1, 2, 3, 2, 1, e, 1, 0);
	assert_int_equal(kq__raft_last_index(c->r[1]), 3);
	assert_int_equal(term_at(c, 1, 3), 3);
	assert_int_equal(c->first_written[1], 3);
	/* A repeated, partly known batch appends only what is new. */
	e[0].term = 3;
	step_append(c, 1, 2, 3, 2, 1, e, 2, 0);
	assert_int_equal(kq__raft_last_index(c->r[1]), 4);
	assert_int_equal(c->first_written[1], 4);
	cl_free(c);
}

/* A message that would replace a committed entry is refused: neither
 * the log nor the node's health change (a stopped group would be a
 * denial of service by one bad message). */
static void test_append_refuses_rewriting_committed(void **state)
{
	static const uint64_t t[] = {1, 1, 2, 2};
	struct kq__raft_entry e[1] = {{.index = 3, .term = 3}};
	struct cl *c = follower(2, t, 4);
	struct kq__raft_msg hb = msg(KQ__RAFT_MSG_HEARTBEAT, 3, 1, 3, 0);

	/* The leader of term 2 commits through 4. */
	step_append(c, 1, 2, 2, 4, 2, NULL, 0, 4);
	assert_int_equal(kq__raft_commit(c->r[1]), 4);
	step_append(c, 1, 3, 3, 2, 1, e, 1, 0);
	assert_int_equal(kq__raft_refused(c->r[1]), 1);
	assert_int_equal(kq__raft_last_index(c->r[1]), 4);
	assert_int_equal(term_at(c, 1, 3), 2);
	assert_int_equal(kq__raft_commit(c->r[1]), 4);
	/* Still a working follower. */
	hb.commit = 4;
	step(c, 1, hb);
	expect(c, KQ__RAFT_MSG_HEARTBEAT_RESP, 1, 3);
	cl_free(c);
}

/* An acknowledgement past the leader's last entry cannot be true, and
 * an APPEND whose entries do not follow its index one by one did not
 * come from a leader's log: both are refused and change nothing. */
static void test_malformed_replication_refused(void **state)
{
	struct kq__raft_entry gap[2] = {{.index = 2, .term = 1},
					{.index = 4, .term = 1}};
	struct cl *c = led(3, false, false);
	uint64_t commit, last;

	c->manual_persist[2] = c->manual_persist[3] = true;
	propose(c, 1, 2);
	commit = kq__raft_commit(c->r[1]);
	last = kq__raft_last_index(c->r[1]);
	drop_all(c);
	step_ack(c, 1, 2, kq__raft_term(c->r[1]), last + 5);
	assert_int_equal(kq__raft_refused(c->r[1]), 1);
	assert_int_equal(kq__raft_commit(c->r[1]), commit);
	cl_free(c);

	c = follower(1, NULL, 0);
	step_append(c, 1, 2, 1, 1, 0, gap, 2, 0);
	assert_int_equal(kq__raft_refused(c->r[1]), 1);
	assert_int_equal(kq__raft_last_index(c->r[1]), 0);
	cl_free(c);
}

/* A term past KQ__RAFT_MAX_TERM is refused, so a bad message can never
 * make the term wrap; at the limit a node does not campaign. */
static void test_term_out_of_range_refused(void **state)
{
	struct cl *c = follower(5, NULL, 0);

	step_append(c, 1, 2, UINT64_MAX, 0, 0, NULL, 0, 0);
	step_vote(c, 1, 2, KQ__RAFT_MAX_TERM + 1, 0, 0);
	assert_int_equal(kq__raft_term(c->r[1]), 5);
	assert_int_equal(kq__raft_refused(c->r[1]), 2);
	assert_int_equal(c->hs[1].term, 5); /* nothing new was saved */
	drop_all(c);
	start(c, 1, KQ__RAFT_MAX_TERM, 0, NULL, 0);
	tick(c, 1, 4 * ELECTION);
	assert_int_equal(kq__raft_term(c->r[1]), KQ__RAFT_MAX_TERM);
	cl_free(c);
}

static void test_append_keeps_entries_on_stale_message(void **state)
{
	static const uint64_t t[] = {1, 1, 1, 1};
	struct kq__raft_entry e[1] = {{.index = 2, .term = 1}};
	struct cl *c = follower(1, t, 4);

	/* An old, shorter APPEND of the same term must not cut the log. */
	step_append(c, 1, 2, 1, 1, 1, e, 1, 0);
	assert_int_equal(kq__raft_last_index(c->r[1]), 4);
	cl_free(c);
}

/* "5. If leaderCommit > commitIndex, set commitIndex = min(leaderCommit,
 * index of last new entry)." */
static void test_append_commit_bounded_by_last_new(void **state)
{
	static const uint64_t t[] = {1, 1, 1, 1, 1};
	struct kq__raft_entry e[1] = {{.index = 2, .term = 1}};
	struct cl *c = follower(1, t, 5);

	step_append(c, 1, 2, 1, 1, 1, e, 1, 5);
	assert_int_equal(kq__raft_commit(c->r[1]), 2);
	assert_int_equal(c->applied[1], 2);
	cl_free(c);
}

/* ----------------------------------------- figure 2: RequestVote RPC */

/* Node 1, asked by `from` for its vote in term 1 (both logs empty),
 * grants it or not, and says so. */
static void assert_vote(struct cl *c, int from, bool granted)
{
	const struct kq__raft_msg *m;

	step_vote(c, 1, from, 1, 0, 0);
	m = expect(c, KQ__RAFT_MSG_VOTE_RESP, 1, from);
	assert_int_equal(m->reject, !granted);
}

/* "1. Reply false if term < currentTerm." */
static void test_vote_rejects_stale_term(void **state)
{
	struct cl *c = follower(5, NULL, 0);

	step_vote(c, 1, 2, 4, 0, 0);
	/* A stale request is not even worth an answer. */
	assert_int_equal(count(c, KQ__RAFT_MSG_VOTE_RESP, 1, 2), 0);
	assert_int_equal(c->hs[1].vote, 0);
	cl_free(c);
}

/* "2. If votedFor is null or candidateId ... grant vote": once per term,
 * durably before the answer leaves. */
static void test_vote_once_per_term(void **state)
{
	struct cl *c = cl_new(3, false, false);

	assert_vote(c, 2, true);
	assert_int_equal(c->hs[1].term, 1);
	assert_int_equal(c->hs[1].vote, 2);
	assert_vote(c, 3, false);
	/* The same candidate asking again gets the same answer. */
	drop_all(c);
	assert_vote(c, 2, true);
	assert_int_equal(c->hs_violations, 0);
	/* And after a restart the vote is remembered. */
	start(c, 1, c->hs[1].term, c->hs[1].vote, NULL, 0);
	drop_all(c);
	assert_vote(c, 3, false);
	cl_free(c);
}

/* "... and candidate's log is at least as up-to-date as receiver's log"
 * (5.4.1): compare last terms, then lengths. */
static void test_vote_requires_up_to_date_log(void **state)
{
	static const uint64_t t[] = {1, 2, 2};
	/* Node 2's last entry, and whether node 1 (last entry 3 of term 2)
	 * refuses its vote. */
	static const struct {
		uint64_t last, last_term;
		bool reject;
	} asks[] = {
		{5, 1, true},  /* longer but older last term */
		{2, 2, true},  /* same last term, shorter */
		{3, 2, false}, /* as up to date */
		{1, 3, false}, /* shorter but newer last term */
	};
	struct cl *c = cl_new(3, false, false);
	const struct kq__raft_msg *m;

	for (size_t i = 0; i < sizeof(asks) / sizeof(asks[0]); i++) {
		start(c, 1, 2, 0, t, 3);
		drop_all(c);
		step_vote(c, 1, 2, 3, asks[i].last, asks[i].last_term);
		m = find(c, KQ__RAFT_MSG_VOTE_RESP, 1, 2);
		assert_true(m && m->reject == asks[i].reject);
	}
	cl_free(c);
}

/* ------------------------------------------------ 5.2 leader election */

static int leaders(struct cl *c, uint64_t *term)
{
	int k = 0;

	for (int i = 1; i <= c->n; i++) {
		if (kq__raft_role(c->r[i]) == KQ__RAFT_LEADER) {
			k++;
			*term = kq__raft_term(c->r[i]);
		}
	}
	return k;
}

/* All nodes ticking together: randomized timeouts settle on one leader
 * even when candidates split the vote. */
static void test_election_converges(void **state)
{
	for (int n = 3; n <= 5; n += 2) {
		struct cl *c = cl_new(n, false, false);
		uint64_t term = 0;
		int t;

		for (t = 0; t < 20 * ELECTION; t++) {
			for (int i = 1; i <= n; i++)
				tick(c, i, 1);
			deliver(c);
			if (leaders(c, &term) == 1)
				break;
		}
		assert_int_equal(leaders(c, &term), 1);
		for (int i = 1; i <= n; i++)
			assert_int_equal(kq__raft_term(c->r[i]), term);
		cl_free(c);
	}
}

/* Leadership transfer: the leader asks a caught-up voter to campaign at
 * once; its VOTE passes the others' lease (pre-vote and check-quorum on),
 * so it leads in the next term.  Not to itself, not to one that lags, and
 * a TIMEOUT_NOW from anyone but the leader of the term is ignored. */
static void test_transfer_hands_over(void **state)
{
	struct cl *c = led(3, true, true);
	uint64_t term;

	(void)state;
	propose(c, 1, 2);
	deliver(c);
	term = kq__raft_term(c->r[1]);
	assert_int_equal(kq__raft_transfer(c->r[1], 1), KQ_EBADARG);
	assert_int_equal(kq__raft_transfer(c->r[2], 3), KQ_EUNAVAILABLE);

	/* Node 3 misses an entry: not caught up. */
	c->cut[1][3] = true;
	propose(c, 1, 1);
	deliver(c);
	assert_int_equal(kq__raft_transfer(c->r[1], 3), KQ_EBUSY);
	c->cut[1][3] = false;

	/* A TIMEOUT_NOW that does not come from the leader is ignored. */
	step(c, 2, msg(KQ__RAFT_MSG_TIMEOUT_NOW, 3, 2, term, 0));
	assert_int_equal(kq__raft_role(c->r[2]), KQ__RAFT_FOLLOWER);
	assert_int_equal(c->nq, 0);

	assert_int_equal(kq__raft_transfer(c->r[1], 2), 0);
	drain(c, 1);
	expect(c, KQ__RAFT_MSG_TIMEOUT_NOW, 1, 2);
	/* Handing over, the leader takes no proposal: one taken now would
	 * leave node 2's log behind node 3's, and node 2 could not win. */
	{
		struct kq__raft_entry e = {.len = 1, .data = "x"};
		uint64_t first;

		assert_int_equal(kq__raft_propose(c->r[1], &e, 1, &first),
				 KQ_EUNAVAILABLE);
		assert_int_equal(kq__raft_transfer(c->r[1], 3),
				 KQ_EUNAVAILABLE);
	}
	deliver(c);
	assert_int_equal(kq__raft_role(c->r[2]), KQ__RAFT_LEADER);
	assert_true(kq__raft_term(c->r[2]) == term + 1);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_FOLLOWER);
	assert_true(kq__raft_leader(c->r[3]) == 2);
	/* The entries survive the hand-over and commit in the new term. */
	propose(c, 2, 1);
	deliver(c);
	for (int i = 1; i <= 3; i++)
		assert_true(kq__raft_commit(c->r[i]) ==
			    kq__raft_last_index(c->r[2]));

	/* A hand-over whose TIMEOUT_NOW is lost is given up after an
	 * election timeout: the leader takes proposals again. */
	assert_int_equal(kq__raft_transfer(c->r[2], 3), 0);
	drain(c, 2);
	drop_all(c);
	rounds(c, ELECTION, 2, 2);
	assert_int_equal(kq__raft_role(c->r[2]), KQ__RAFT_LEADER);
	propose(c, 2, 1);
	cl_free(c);
}

/* A new leader is elected when the old one fails, in a higher term. */
static void test_election_after_leader_failure(void **state)
{
	struct cl *c = led(5, false, false);
	uint64_t term = 0;

	isolate(c, 1);
	rounds(c, 10 * ELECTION, 2, 5);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	term = 0;
	for (int i = 2; i <= 5; i++)
		if (kq__raft_role(c->r[i]) == KQ__RAFT_LEADER)
			term = kq__raft_term(c->r[i]);
	assert_true(term > 1);
	cl_free(c);
}

/* ---------------------------------------------- 5.3 log replication */

/* Figure 7: followers with missing, extra and conflicting entries all
 * end with the leader's log. */
static void test_replication_repairs_followers(void **state)
{
	static const uint64_t lead[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const uint64_t a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
	static const uint64_t b[] = {1, 1, 1, 4};
	static const uint64_t cc[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
	static const uint64_t d[] = {1, 1, 1, 4, 4, 4, 4};
	static const uint64_t f[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	const uint64_t *logs[] = {lead, a, b, cc, f};
	const size_t lens[] = {10, 9, 4, 11, 11};
	struct cl *c = cl_new(5, false, false);

	(void)d;
	for (int i = 1; i <= 5; i++)
		start(c, i, 6, 0, logs[i - 1], lens[i - 1]);
	elect(c, 1);
	propose(c, 1, 2);
	rounds(c, 10, 1, 1);
	for (int i = 1; i <= 5; i++) {
		assert_int_equal(kq__raft_last_index(c->r[i]), 13);
		for (uint64_t x = 1; x <= 13; x++)
			assert_int_equal(term_at(c, i, x), term_at(c, 1, x));
		assert_int_equal(kq__raft_commit(c->r[i]), 13);
	}
	cl_free(c);
}

/* Proposals made together travel as one batch: one write on the leader
 * and one APPEND per follower. */
static void test_replication_batches(void **state)
{
	struct cl *c = led(3, false, false);
	const struct kq__raft_msg *m;
	int writes;

	writes = c->writes[1];
	propose(c, 1, 10);
	assert_int_equal(c->writes[1], writes + 1);
	assert_int_equal(count(c, KQ__RAFT_MSG_APPEND, 1, 2), 1);
	m = find(c, KQ__RAFT_MSG_APPEND, 1, 2);
	assert_int_equal(m->n_entries, 10);
	deliver(c);
	/* Each follower also wrote the batch once. */
	assert_int_equal(kq__raft_commit(c->r[1]), 11);
	cl_free(c);
}

/* Replication is pipelined, but never more than the window in flight. */
static void test_replication_inflight_bound(void **state)
{
	struct cl *c = cl_new(3, false, false);

	c->max_msg_bytes = 40; /* one 8-byte entry per APPEND */
	c->max_inflight_msgs = 3;
	start_all(c);
	elect(c, 1);
	for (int k = 0; k < 10; k++)
		propose(c, 1, 1);
	assert_int_equal(count(c, KQ__RAFT_MSG_APPEND, 1, 2), 3);
	assert_int_equal(count(c, KQ__RAFT_MSG_APPEND, 1, 3), 3);
	deliver(c);
	assert_int_equal(kq__raft_commit(c->r[1]), 11);
	assert_int_equal(kq__raft_last_index(c->r[2]), 11);
	cl_free(c);
}

/* A follower answers only for entries it holds durably. */
static void test_replication_ack_after_persist(void **state)
{
	struct cl *c = led(3, false, false);
	const struct kq__raft_msg *m;

	c->manual_persist[2] = true;
	propose(c, 1, 1);
	pass(c, find(c, KQ__RAFT_MSG_APPEND, 1, 2));
	assert_null(find(c, KQ__RAFT_MSG_APPEND_RESP, 2, 1));
	persist(c, 2);
	m = expect(c, KQ__RAFT_MSG_APPEND_RESP, 2, 1);
	assert_false(m->reject);
	assert_int_equal(m->index, 2);
	cl_free(c);
}

/* A durability notice for a write made before a truncation never vouches
 * for the entries written after it. */
static void test_persist_notice_survives_truncation(void **state)
{
	static const uint64_t t[] = {1};
	struct kq__raft_entry e1[2] = {{.index = 2, .term = 2},
				       {.index = 3, .term = 2}};
	struct kq__raft_entry e2[2] = {{.index = 2, .term = 3},
				       {.index = 3, .term = 3}};
	struct cl *c = follower(1, t, 1);
	uint64_t old;

	c->manual_persist[1] = true;
	step_append(c, 1, 2, 2, 1, 1, e1, 2, 0);
	old = c->unpersisted[1];
	step_append(c, 1, 3, 3, 1, 1, e2, 2, 0);
	assert_int_equal(term_at(c, 1, 3), 3);
	kq__raft_persisted(c->r[1], old);
	assert_int_equal(kq__raft_persisted_index(c->r[1]), 1);
	kq__raft_persisted(c->r[1], c->unpersisted[1]);
	assert_int_equal(kq__raft_persisted_index(c->r[1]), 3);
	cl_free(c);
}

/* ------------------------------------------------------- 5.4 safety */

/* 5.4.1: a node missing committed entries cannot be elected. */
static void test_safety_election_restriction(void **state)
{
	struct cl *c = led(3, false, false);

	c->cut[1][3] = true;
	propose(c, 1, 2);
	deliver(c);
	assert_int_equal(kq__raft_commit(c->r[1]), 3);
	/* Node 3 missed them; node 1 dies; node 3 campaigns. */
	isolate(c, 1);
	campaign(c, 3);
	deliver(c);
	assert_int_not_equal(kq__raft_role(c->r[3]), KQ__RAFT_LEADER);
	/* Node 2, which holds them, can. */
	for (int k = 0; k < 4 * ELECTION; k++) {
		tick(c, 2, 1);
		tick(c, 3, 1);
		deliver(c);
		if (kq__raft_role(c->r[2]) == KQ__RAFT_LEADER)
			break;
	}
	assert_int_equal(kq__raft_role(c->r[2]), KQ__RAFT_LEADER);
	assert_int_not_equal(kq__raft_role(c->r[3]), KQ__RAFT_LEADER);
	cl_free(c);
}

/* 5.4.2, figure 8: an entry of an earlier term is not committed by
 * counting replicas; only the current term's no-op commits it. */
static void test_safety_figure8(void **state)
{
	static const uint64_t s1[] = {1, 2};
	static const uint64_t s5[] = {1, 3};
	static const uint64_t s1only[] = {1};
	struct cl *c;

	/* Figure 8 (c): S1 leads term 4; its entry of term 2 at index 2
	 * reached S2 and S3, its no-op (index 3, term 4) nobody yet; S5
	 * holds index 2 from term 3 and could still win without it. */
	c = cl_new(5, false, false);
	start(c, 1, 3, 0, s1, 2);
	start(c, 2, 3, 0, s1, 2);
	start(c, 3, 3, 0, s1, 2);
	start(c, 4, 3, 0, s1only, 1);
	start(c, 5, 3, 0, s5, 2);
	campaign(c, 1);
	/* Let the votes in, keep every APPEND away. */
	for (size_t k = 0; k < c->nq;) {
		if (c->q[k].type == KQ__RAFT_MSG_APPEND ||
		    c->q[k].type == KQ__RAFT_MSG_HEARTBEAT)
			k++;
		else
			pass(c, &c->q[k]);
	}
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	drop_all(c);
	/* Followers 2 and 3 report index 2 as matched (they hold it). */
	for (int f = 2; f <= 3; f++)
		step_ack(c, 1, f, 4, 2);
	/* Three of five hold index 2, but it is from term 2. */
	assert_int_equal(kq__raft_commit(c->r[1]), 0);
	/* Once a majority also holds the term-4 no-op, both commit. */
	for (int f = 2; f <= 3; f++)
		step_ack(c, 1, f, 4, 3);
	assert_int_equal(kq__raft_commit(c->r[1]), 3);
	cl_free(c);
}

/* A leader never deletes or overwrites its own entries, even when told
 * of a conflicting log by a stale message of its own term. */
static void test_safety_leader_append_only(void **state)
{
	struct kq__raft_entry e[1] = {{.index = 2, .term = 1}};
	struct cl *c = led(3, false, false);

	propose(c, 1, 3);
	deliver(c);
	step_append(c, 1, 2, 1, 1, 1, e, 1, 0);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	assert_int_equal(kq__raft_last_index(c->r[1]), 4);
	cl_free(c);
}

/* ------------------------------------- pre-vote and check-quorum (9.6) */

/* A partitioned node keeps its term while it cannot win, so on rejoining
 * it does not depose the healthy leader. */
static void test_prevote_rejoin_does_not_disrupt(void **state)
{
	struct cl *c = led(3, true, true);
	uint64_t term;

	term = kq__raft_term(c->r[1]);
	isolate(c, 3);
	tick_all(c, 10 * ELECTION);
	assert_int_equal(kq__raft_term(c->r[3]), term);
	memset(c->cut, 0, sizeof(c->cut));
	tick_all(c, 5 * ELECTION);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	assert_int_equal(kq__raft_term(c->r[1]), term);
	assert_int_equal(kq__raft_leader(c->r[3]), 1);
	cl_free(c);
}

/* ------------------------------------------------------- quiet groups */

static bool all_quiet(const struct cl *c)
{
	for (int i = 1; i <= c->n; i++)
		if (!kq__raft_quiet(c->r[i]))
			return false;
	return true;
}

/* Three replicas that sleep when idle, node 1 elected. */
static struct cl *quiet_cluster(void)
{
	struct cl *c = cl_new(3, true, true);

	c->quiesce = true;
	start_all(c);
	elect(c, 1);
	return c;
}

/* An idle group sleeps: once every follower holds the committed log, the
 * leader's last heartbeat is marked quiet, and after it ticks send
 * nothing and start no election; a proposal wakes everyone, and the
 * group sleeps again once it is idle. */
static void test_idle_group_sleeps(void **state)
{
	struct cl *c = quiet_cluster();
	uint64_t term;

	propose(c, 1, 2);
	deliver(c);
	term = kq__raft_term(c->r[1]);
	tick_all(c, 3 * ELECTION);
	assert_true(all_quiet(c));
	tick_all(c, 1);
	for (int k = 0; k < 10 * ELECTION; k++) {
		for (int i = 1; i <= 3; i++)
			tick(c, i, 1);
		assert_int_equal(c->nq, 0);
	}
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	assert_int_equal(kq__raft_term(c->r[1]), term);

	propose(c, 1, 1);
	assert_false(kq__raft_quiet(c->r[1]));
	deliver(c);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(kq__raft_commit(c->r[i]) >= 4, 1);
	tick_all(c, 3 * ELECTION);
	assert_true(all_quiet(c));
	for (int i = 1; i <= 3; i++)
		assert_int_equal(kq__raft_commit(c->r[i]), 4);
	assert_int_equal(kq__raft_term(c->r[1]), term);
	cl_free(c);
}

/* Sleeping followers whose leader is gone are woken by the caller (its
 * broker is down) and elect another; a replica that restarts wakes the
 * sleeping leader with its pre-vote and learns the leader, without a
 * new term. */
static void test_quiet_group_wakes(void **state)
{
	struct cl *c = quiet_cluster();
	uint64_t term;

	tick_all(c, 3 * ELECTION);
	assert_true(all_quiet(c));
	term = kq__raft_term(c->r[1]);

	/* Node 3 restarts, knowing nothing but what it stored. */
	start(c, 3, c->hs[3].term, c->hs[3].vote, NULL, 0);
	tick_all(c, 5 * ELECTION);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	assert_int_equal(kq__raft_term(c->r[1]), term);
	assert_int_equal(kq__raft_leader(c->r[3]), 1);
	assert_true(all_quiet(c));

	/* Node 1 goes: ticks alone would never notice. */
	isolate(c, 1);
	tick_all(c, 5 * ELECTION);
	assert_int_equal(kq__raft_leader(c->r[2]), 1);
	kq__raft_wake(c->r[2]);
	kq__raft_wake(c->r[3]);
	tick_all(c, 5 * ELECTION);
	assert_true(kq__raft_role(c->r[2]) == KQ__RAFT_LEADER ||
		    kq__raft_role(c->r[3]) == KQ__RAFT_LEADER);
	assert_true(kq__raft_term(c->r[2]) > term);
	cl_free(c);
}

/* campaign_due() says exactly when the next tick starts an election, so
 * that a caller holding ticks back delays elections and nothing else. */
static void test_campaign_due(void **state)
{
	struct cl *c = cl_new(3, true, true);
	int ticks = 0;

	(void)state;
	while (!kq__raft_campaign_due(c->r[1])) {
		assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_FOLLOWER);
		tick(c, 1, 1);
		assert_true(++ticks < 2 * ELECTION);
	}
	assert_true(ticks >= ELECTION - 1);
	/* Due means exactly this: the next tick campaigns. */
	tick(c, 1, 1);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_PRE_CANDIDATE);
	/* Campaigning: a new round is not a new election in flight. */
	assert_false(kq__raft_campaign_due(c->r[1]));
	drop_all(c);
	/* Elected leaders, and sleeping groups, are never due. */
	c = (cl_free(c), quiet_cluster());
	for (int i = 1; i <= 3; i++)
		assert_false(kq__raft_campaign_due(c->r[i]));
	tick_all(c, 3 * ELECTION);
	for (int i = 1; i <= 3; i++)
		assert_false(kq__raft_campaign_due(c->r[i]));
	cl_free(c);
}

/* Pre-votes never change a term or a vote, on either side. */
static void test_prevote_changes_nothing(void **state)
{
	struct cl *c = campaigning(3, true);
	const struct kq__raft_msg *m;

	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_PRE_CANDIDATE);
	assert_int_equal(kq__raft_term(c->r[1]), 0);
	m = expect(c, KQ__RAFT_MSG_PREVOTE, 1, 2);
	assert_int_equal(m->term, 1);
	pass(c, m);
	assert_int_equal(kq__raft_term(c->r[2]), 0);
	assert_int_equal(c->hs[2].vote, 0);
	m = expect(c, KQ__RAFT_MSG_PREVOTE_RESP, 2, 1);
	assert_false(m->reject);
	/* The grant makes a majority: now the real election starts. */
	pass(c, m);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_CANDIDATE);
	assert_int_equal(kq__raft_term(c->r[1]), 1);
	cl_free(c);
}

/* A leader cut off from the majority steps down after an election
 * timeout. */
static void test_check_quorum_steps_down(void **state)
{
	struct cl *c = led(3, true, true);

	c->cut[2][1] = c->cut[3][1] = true;
	rounds(c, 2 * ELECTION + 1, 1, 1);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_FOLLOWER);
	cl_free(c);
}

static void test_check_quorum_keeps_connected_leader(void **state)
{
	struct cl *c = led(3, true, true);

	c->cut[3][1] = true; /* one follower of two is enough */
	rounds(c, 5 * ELECTION, 1, 2);
	assert_int_equal(kq__raft_role(c->r[1]), KQ__RAFT_LEADER);
	cl_free(c);
}

/* Within the leader's lease a follower ignores campaigns, even with a
 * higher term. */
static void test_check_quorum_lease(void **state)
{
	struct cl *c = led(3, false, true);

	step_vote(c, 2, 3, 5, 100, 100);
	assert_int_equal(kq__raft_term(c->r[2]), 1);
	assert_int_equal(count(c, KQ__RAFT_MSG_VOTE_RESP, 2, 3), 0);
	/* Once the lease ran out, it votes. */
	tick(c, 2, ELECTION);
	drop_all(c);
	step_vote(c, 2, 3, 5, 100, 100);
	assert_int_equal(kq__raft_term(c->r[2]), 5);
	expect(c, KQ__RAFT_MSG_VOTE_RESP, 2, 3);
	cl_free(c);
}

/* ------------------------------------------------------- snapshots */

/* Three nodes, node 1 leading; node 3, cut off, misses five entries. */
static struct cl *lagging(void)
{
	struct cl *c = led(3, false, false);

	cut_link(c, 1, 3, true);
	propose(c, 1, 5);
	deliver(c);
	return c;
}

/* Node id was sent a snapshot, once, and now holds first..last with
 * everything committed through `commit`. */
static void assert_restored(struct cl *c, int id, uint64_t first, uint64_t last,
			    uint64_t commit)
{
	assert_int_equal(c->snapshots[id], 1);
	assert_int_equal(kq__raft_first_index(c->r[id]), first);
	assert_int_equal(kq__raft_last_index(c->r[id]), last);
	assert_int_equal(kq__raft_commit(c->r[id]), commit);
}

static void test_snapshot_for_lagging_follower(void **state)
{
	struct cl *c = lagging();
	const char data[] = "state";

	tick(c, 1, 1);
	deliver(c);
	assert_int_equal(kq__raft_commit(c->r[1]), 6);
	assert_int_equal(kq__raft_compact(c->r[1], 5, data, sizeof(data)), 0);
	assert_int_equal(kq__raft_first_index(c->r[1]), 6);
	cut_link(c, 1, 3, false);
	rounds(c, 5, 1, 1);
	assert_restored(c, 3, 6, 6, 6);
	assert_int_equal(c->applied[3], 6);
	cl_free(c);
}

/* A log group (no state): the follower restarts at the leader's first
 * offset. */
static void test_log_group_reset(void **state)
{
	struct cl *c = lagging();

	assert_int_equal(kq__raft_compact(c->r[1], 4, NULL, 0), 0);
	cut_link(c, 1, 3, false);
	rounds(c, 5, 1, 1);
	assert_restored(c, 3, 5, 6, 6);
	cl_free(c);
}

static void test_compact_bounds(void **state)
{
	struct cl *c = led(3, false, false);

	propose(c, 1, 2);
	/* Nothing is applied yet. */
	assert_int_equal(kq__raft_compact(c->r[1], 2, NULL, 0), KQ_EBADARG);
	cl_free(c);
}

/* ------------------------------------------------ storage hooks */

static const struct kq__raft_snapshot no_snap = {0, 0, NULL, 0};

/* Node id's disk holds entries 1..last of term 1 through `split` and of
 * term 2 after it, each with len (<= 8) bytes of its index as payload. */
static void write_disk(struct cl *c, int id, uint64_t last, uint64_t split,
		       uint32_t len)
{
	for (uint64_t i = 1; i <= last; i++) {
		c->disk[id][i].term = i <= split ? 1 : 2;
		c->disk[id][i].len = len;
		memcpy(c->disk[id][i].data, &i, len);
	}
	c->disk_last[id] = last;
}

/* Three nodes, node 1 restarted over its empty disk with a cache bound
 * and elected; node 3 is cut off. */
static struct cl *hooked_leader(size_t cache_bytes)
{
	struct cl *c = cl_new(3, false, false);

	start_hooked(c, 1, 0, 0, no_snap, cache_bytes, 0);
	elect(c, 1);
	cut_link(c, 1, 3, true);
	return c;
}

/* A replica restarted over a stored log reads none of it at start; the
 * term of its last entry comes with the config.  Elected, it serves an
 * empty follower from storage, and applies the stored entries read back
 * a message's worth at a time. */
static void test_hook_open_reads_on_demand(void **state)
{
	struct cl *c = cl_new(2, false, false);

	write_disk(c, 1, 20, 10, 8);
	start_hooked(c, 1, 2, 0, no_snap, 64, 40);
	assert_int_equal(c->hook_reads[1], 0);
	assert_int_equal(c->hook_terms[1], 0);
	assert_int_equal(kq__raft_last_index(c->r[1]), 20);
	assert_int_equal(kq__raft_cached_bytes(c->r[1]), 0);
	elect(c, 1);
	catch_up(c, 1, 2, 21, 20);
	assert_int_equal(kq__raft_last_index(c->r[2]), 21);
	assert_int_equal(kq__raft_commit(c->r[2]), 21);
	assert_int_equal(term_at(c, 2, 10), 1);
	assert_int_equal(term_at(c, 2, 11), 2);
	assert_int_equal(term_at(c, 2, 21), 3);
	/* Read back for the follower and for applying (twice, at least). */
	assert_true(c->hook_reads[1] >= 40);
	assert_int_equal(c->applied[1], 21);
	assert_int_equal(c->applied[2], 21);
	assert_int_equal(c->applied_term[1][15], 2);
	assert_true(kq__raft_cached_bytes(c->r[1]) <= 64);
	cl_free(c);
}

/* A leader keeps at most cache_bytes of durable entries in memory and
 * serves a follower that was cut off through the read hook; unwritten
 * entries are never evicted. */
static void test_hook_cache_bound(void **state)
{
	struct cl *c = hooked_leader(100);

	c->manual_persist[1] = true;
	for (int k = 0; k < 6; k++)
		propose(c, 1, 5);
	/* Nothing durable yet: everything stays, whatever the bound. */
	assert_true(kq__raft_cached_bytes(c->r[1]) > 100);
	c->manual_persist[1] = false;
	persist(c, 1);
	deliver(c);
	assert_true(kq__raft_cached_bytes(c->r[1]) <= 100);
	assert_int_equal(kq__raft_commit(c->r[1]), 31);
	assert_null(kq__raft_entry_at(c->r[1], 2));
	assert_int_equal(term_at(c, 1, 2), 1);
	cut_link(c, 1, 3, false);
	catch_up(c, 1, 3, 31, 30);
	assert_int_equal(kq__raft_last_index(c->r[3]), 31);
	assert_int_equal(kq__raft_commit(c->r[3]), 31);
	assert_true(c->hook_reads[1] > 0);
	cl_free(c);
}

/* Compaction inside the stretch only storage holds: a log group's
 * retention point.  A follower that was cut off gets the point and then
 * the entries after it, read back from the leader's storage. */
static void test_hook_compact_uncached(void **state)
{
	struct cl *c = hooked_leader(40);

	propose(c, 1, 12);
	deliver(c);
	assert_null(kq__raft_entry_at(c->r[1], 10));
	assert_int_equal(kq__raft_compact(c->r[1], 10, NULL, 0), 0);
	assert_int_equal(kq__raft_first_index(c->r[1]), 11);
	assert_int_equal(term_at(c, 1, 10), 1);
	/* Above what is applied: refused. */
	assert_int_equal(kq__raft_compact(c->r[1], 14, NULL, 0), KQ_EBADARG);
	cut_link(c, 1, 3, false);
	catch_up(c, 1, 3, 13, 30);
	assert_restored(c, 3, 11, 13, 13);
	cl_free(c);
}

/* A follower truncating into the stretch only storage holds takes the
 * term before the cut from the term_at hook. */
static void test_hook_truncate_uncached(void **state)
{
	struct cl *c = cl_new(2, false, false);
	struct kq__raft_entry e = {.index = 4, .term = 3};

	write_disk(c, 2, 6, 3, 0);
	start_hooked(c, 2, 2, 0, no_snap, 1, 0);
	step_append(c, 2, 1, 3, 3, 1, &e, 1, 3);
	assert_int_equal(kq__raft_last_index(c->r[2]), 4);
	assert_int_equal(term_at(c, 2, 4), 3);
	assert_int_equal(term_at(c, 2, 3), 1);
	assert_int_equal(c->first_written[2], 4);
	assert_true(c->hook_terms[2] > 0);
	drop_all(c);
	cl_free(c);
}

/* A replica alone in its group, without the harness, ticked until it
 * leads. */
static struct kq__raft *solo(bool skip_apply)
{
	uint64_t voters[] = {1};
	struct kq__raft_config cfg = {.id = 1,
				      .voters = voters,
				      .n_voters = 1,
				      .election_ticks = 10,
				      .heartbeat_ticks = 1,
				      .skip_apply = skip_apply};
	struct kq__raft *r = kq__raft_new(&cfg);

	assert_non_null(r);
	for (int i = 0; i < 30 && kq__raft_role(r) != KQ__RAFT_LEADER; i++)
		assert_int_equal(kq__raft_tick(r), 0);
	return r;
}

/* A log nobody applies: committed entries are never handed out, yet they
 * count as applied, so the log can be compacted. */
static void test_skip_apply(void **state)
{
	struct kq__raft *r = solo(true);
	struct kq__raft_entry e = {.len = 3, .data = "abc"};
	struct kq__raft_ready rd;
	uint64_t first;
	size_t handed = 0;

	assert_int_equal(kq__raft_propose(r, &e, 1, &first), 0);
	for (int i = 0; i < 10 && kq__raft_has_ready(r); i++) {
		uint64_t pid;

		kq__raft_ready(r, &rd);
		handed += rd.n_committed;
		pid = rd.persist_id;
		kq__raft_advance(r, &rd);
		if (pid)
			kq__raft_persisted(r, pid);
	}
	assert_int_equal(kq__raft_commit(r), 2);
	assert_int_equal(handed, 0);
	assert_int_equal(kq__raft_compact(r, 2, NULL, 0), 0);
	assert_int_equal(kq__raft_first_index(r), 3);
	kq__raft_free(r);
}

/* kq__raft_propose_bufs hands the caller's buffers on without a copy:
 * the entries the ready asks to write carry the very buffers proposed,
 * which live as long as the core holds a reference. */
static void test_propose_bufs(void **state)
{
	struct kq__raft *r = solo(false);
	struct kq__raft_entry e[2] = {{.len = 3}, {.len = 0, .data = NULL}};
	struct kq__raft_ready rd;
	uint64_t first;
	bool seen = false;

	e[0].data = kq__raft_buf_alloc(3);
	assert_non_null(e[0].data);
	memcpy(e[0].data, "abc", 3);
	while (kq__raft_has_ready(r)) { /* the leader's no-op */
		uint64_t id;

		kq__raft_ready(r, &rd);
		id = rd.persist_id; /* advance() takes the ready back */
		kq__raft_advance(r, &rd);
		if (id)
			kq__raft_persisted(r, id);
	}
	/* The no-op is durable: alone, the leader committed it. */
	assert_true(kq__raft_commit(r) >= 1);
	assert_int_equal(kq__raft_propose_bufs(r, e, 2, &first), 0);
	kq__raft_buf_unref(e[0].data); /* the core keeps its own */
	kq__raft_ready(r, &rd);
	for (size_t i = 0; i < rd.n_entries; i++)
		if (rd.entries[i].index == first) {
			assert_ptr_equal(rd.entries[i].data, e[0].data);
			assert_memory_equal(rd.entries[i].data, "abc", 3);
			seen = true;
		}
	assert_true(seen);
	kq__raft_advance(r, &rd);
	kq__raft_free(r);
}

static void test_propose_needs_leader(void **state)
{
	struct cl *c = cl_new(3, false, false);
	struct kq__raft_entry e = {.len = 0};
	uint64_t first;

	assert_int_equal(kq__raft_propose(c->r[1], &e, 1, &first),
			 KQ_EUNAVAILABLE);
	cl_free(c);
}

static void test_config_rejects_non_voter(void **state)
{
	uint64_t voters[] = {1, 2, 3};
	struct kq__raft_config cfg = {.id = 4,
				      .voters = voters,
				      .n_voters = 3,
				      .election_ticks = 10,
				      .heartbeat_ticks = 1};

	assert_null(kq__raft_new(&cfg));
	cfg.id = 2;
	kq__raft_free(kq__raft_new(&cfg));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_all_higher_term_converts),
		cmocka_unit_test(test_all_apply_committed_once),
		cmocka_unit_test(test_follower_times_out),
		cmocka_unit_test(test_first_election_ticks),
		cmocka_unit_test(test_follower_timer_reset_by_leader),
		cmocka_unit_test(test_follower_timer_reset_by_vote),
		cmocka_unit_test(test_candidate_starts_election),
		cmocka_unit_test(test_candidate_wins_majority),
		cmocka_unit_test(test_candidate_loses_without_majority),
		cmocka_unit_test(test_candidate_yields_to_leader),
		cmocka_unit_test(test_candidate_restarts_election),
		cmocka_unit_test(test_leader_announces_with_noop),
		cmocka_unit_test(test_leader_heartbeats),
		cmocka_unit_test(test_leader_commits_on_durable_majority),
		cmocka_unit_test(test_leader_commit_without_own_copy),
		cmocka_unit_test(test_leader_backtracks_with_hint),
		cmocka_unit_test(test_append_rejects_stale_term),
		cmocka_unit_test(test_append_rejects_missing_prev),
		cmocka_unit_test(test_append_truncates_conflict),
		cmocka_unit_test(test_append_refuses_rewriting_committed),
		cmocka_unit_test(test_term_out_of_range_refused),
		cmocka_unit_test(test_malformed_replication_refused),
		cmocka_unit_test(test_append_keeps_entries_on_stale_message),
		cmocka_unit_test(test_append_commit_bounded_by_last_new),
		cmocka_unit_test(test_vote_rejects_stale_term),
		cmocka_unit_test(test_vote_once_per_term),
		cmocka_unit_test(test_vote_requires_up_to_date_log),
		cmocka_unit_test(test_election_converges),
		cmocka_unit_test(test_transfer_hands_over),
		cmocka_unit_test(test_election_after_leader_failure),
		cmocka_unit_test(test_replication_repairs_followers),
		cmocka_unit_test(test_replication_batches),
		cmocka_unit_test(test_replication_inflight_bound),
		cmocka_unit_test(test_replication_ack_after_persist),
		cmocka_unit_test(test_persist_notice_survives_truncation),
		cmocka_unit_test(test_safety_election_restriction),
		cmocka_unit_test(test_safety_figure8),
		cmocka_unit_test(test_safety_leader_append_only),
		cmocka_unit_test(test_prevote_rejoin_does_not_disrupt),
		cmocka_unit_test(test_prevote_changes_nothing),
		cmocka_unit_test(test_idle_group_sleeps),
		cmocka_unit_test(test_quiet_group_wakes),
		cmocka_unit_test(test_campaign_due),
		cmocka_unit_test(test_check_quorum_steps_down),
		cmocka_unit_test(test_check_quorum_keeps_connected_leader),
		cmocka_unit_test(test_check_quorum_lease),
		cmocka_unit_test(test_snapshot_for_lagging_follower),
		cmocka_unit_test(test_log_group_reset),
		cmocka_unit_test(test_compact_bounds),
		cmocka_unit_test(test_hook_open_reads_on_demand),
		cmocka_unit_test(test_hook_cache_bound),
		cmocka_unit_test(test_hook_compact_uncached),
		cmocka_unit_test(test_hook_truncate_uncached),
		cmocka_unit_test(test_skip_apply),
		cmocka_unit_test(test_propose_bufs),
		cmocka_unit_test(test_propose_needs_leader),
		cmocka_unit_test(test_config_rejects_non_voter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
