/* Deterministic simulation of Raft clusters.
 *
 * One seed drives everything: a cluster of 3 or 5 replicas of the pure
 * Raft core on a fake network (loss, duplication, delay, reordering,
 * symmetric and one-way partitions), fake disks (writes become durable
 * only at a later sync; a crash loses whatever was not) and a fake clock.
 * After every step the safety properties are checked; then the faults
 * stop and the cluster must elect a leader and converge within a bounded
 * number of ticks.
 *
 *   raft-sim --seeds N --first-seed S [--nodes 3|5] [--ticks T] [--trace]
 *            [--cache-bytes B] [--soak]
 *
 * ends with the line "N seeds, V violations" (plus the first failing seed
 * when V > 0).  A failing seed replays exactly with --seeds 1
 * --first-seed <seed> --trace. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/error.h>

#include "../../plugins/raft/core/raft.h"
#include "common.h"

const struct sim_prog sim_program = {
	.name = "raft-sim",
	.usage = "usage: raft-sim [--seeds N] [--first-seed S] [--nodes 3|5]\n"
		 "                [--ticks T] [--converge-ticks T] [--trace]\n"
		 "                [--cache-bytes B] [--soak]\n",
	.nodes = 1u << 3 | 1u << 5,
};

#define MAX_NODES SIM_MAX_NODES
#define TICK	  SIM_TICK

/* ------------------------------------------------------------ helpers */

/* Grows a uint64_t array so that index i is valid (new slots zero). */
static void grow64(uint64_t **a, size_t *cap, size_t i)
{
	size_t n = *cap ? *cap : 256;

	if (i < *cap)
		return;
	while (n <= i)
		n *= 2;
	*a = xrealloc(*a, n * sizeof(**a));
	memset(*a + *cap, 0, (n - *cap) * sizeof(**a));
	*cap = n;
}

/* ------------------------------------------------------------ model */

/* What the sim remembers of an entry.  fp chains the whole prefix, so two
 * equal fingerprints mean two identical logs up to there. */
struct sentry {
	uint64_t term;
	uint64_t id; /* proposal id; 0 for a no-op */
	uint32_t flags;
	uint64_t fp;
};

struct disk {
	struct kq__raft_hard_state hs;
	uint64_t base; /* snapshot point */
	uint64_t base_term;
	uint64_t base_fp;
	/* The written log (base + 1 ..); its prefix up to durable_last
	 * survives a crash. */
	struct sentry *e;
	size_t n;
	size_t cap;
	uint64_t durable_last;
	uint64_t written_id; /* persist id of the newest write */
	int sync_pending;
};

struct sim;

struct node {
	struct sim *sim;
	uint64_t id;
	struct kq__raft *r;
	int up;
	unsigned incarnation;
	struct disk d;
	uint64_t applied;
	uint64_t restart_tick;
	uint64_t leader_checked_term;
	unsigned tick_offset;
};

struct fpslot {
	uint64_t index;
	uint64_t term;
	uint64_t fp;
};

struct opts {
	struct sim_opts sim;
	long cache_bytes; /* -1: drawn per seed */
};

struct sim {
	struct sim_world w;
	struct node nodes[MAX_NODES];
	int log_mode; /* log groups: compaction without snapshot data */
	int hooks;    /* the core reads the disk through its hooks */
	size_t cache_bytes;

	/* Fault settings, beside the network's and crashes' in w. */
	unsigned sync_max; /* time units a write waits for its sync */
	size_t max_msg_bytes;
	size_t max_inflight_bytes;
	unsigned max_inflight_msgs;
	bool pre_vote;
	bool check_quorum;

	/* Checker state, beside the leaders and acknowledgements in w. */
	uint64_t *commit_fp;   /* index -> fingerprint, 0 = unknown */
	uint64_t *commit_term; /* index -> a term at which it was known */
	size_t cap_commit;
	uint64_t max_commit;
	struct fpslot *fps; /* (index, term) -> fp, open addressing */
	size_t cap_fps;
	size_t n_fps;
	uint64_t *prop_node; /* proposal id -> proposer id, incarnation */
	uint64_t reads;	     /* entries read back through the hook */
	size_t cap_prop;
	uint64_t next_id;

	uint64_t final_id;
	uint64_t proposals;
	uint64_t committed_props;
};

static void send_msg(struct sim *s, const struct kq__raft_msg *m)
{
	if (!net_send(&s->w, m))
		sim_trace(&s->w.clock, "  drop %s %" PRIu64 "->%" PRIu64,
			  kq__raft_msg_name(m->type), m->from, m->to);
}

/* ------------------------------------------------------------ checker */

static uint64_t fp_of(uint64_t prev, uint64_t index, uint64_t term, uint64_t id,
		      uint32_t flags)
{
	return mix(prev ^ mix(index ^ mix(term ^ mix(id ^ flags))));
}

/* Log matching: one (index, term) always comes with one fingerprint. */
static void fp_record(struct sim *s, uint64_t index, uint64_t term, uint64_t fp)
{
	size_t mask, i;

	if (2 * (s->n_fps + 1) > s->cap_fps) {
		struct fpslot *old = s->fps;
		size_t oc = s->cap_fps;

		s->cap_fps = oc ? oc * 2 : 1024;
		s->fps = xrealloc(NULL, s->cap_fps * sizeof(*s->fps));
		memset(s->fps, 0, s->cap_fps * sizeof(*s->fps));
		s->n_fps = 0;
		for (size_t k = 0; k < oc; k++)
			if (old[k].index)
				fp_record(s, old[k].index, old[k].term,
					  old[k].fp);
		free(old);
	}
	mask = s->cap_fps - 1;
	for (i = mix(index * 31 + term) & mask; s->fps[i].index;
	     i = (i + 1) & mask) {
		if (s->fps[i].index == index && s->fps[i].term == term) {
			if (s->fps[i].fp != fp)
				sim_violate(&s->w.clock,
					    "log matching: two logs hold index "
					    "%" PRIu64 " term %" PRIu64
					    " with different prefixes",
					    index, term);
			return;
		}
	}
	s->fps[i] = (struct fpslot){index, term, fp};
	s->n_fps++;
}

static void grow_commit(struct sim *s, uint64_t index)
{
	size_t cap = s->cap_commit;

	grow64(&s->commit_fp, &cap, index);
	grow64(&s->commit_term, &s->cap_commit, index);
}

static void note_committed(struct sim *s, struct node *nd, uint64_t index,
			   uint64_t fp)
{
	uint64_t t = kq__raft_term(nd->r);

	grow_commit(s, index);
	if (s->commit_fp[index] == 0) {
		s->commit_fp[index] = fp;
		s->commit_term[index] = t;
	} else if (s->commit_fp[index] != fp) {
		sim_violate(&s->w.clock,
			    "node %" PRIu64 " committed a different entry at "
			    "index %" PRIu64,
			    nd->id, index);
	} else if (t < s->commit_term[index]) {
		s->commit_term[index] = t;
	}
	if (index > s->max_commit)
		s->max_commit = index;
}

static struct sentry *dentry(struct disk *d, uint64_t index)
{
	if (index <= d->base || index > d->base + d->n)
		return NULL;
	return &d->e[index - d->base - 1];
}

static uint64_t dfp(struct disk *d, uint64_t index)
{
	struct sentry *e = dentry(d, index);

	if (index == d->base)
		return d->base_fp;
	return e ? e->fp : 0;
}

/* Whether node i's log (or its snapshot, at its point) holds the entry
 * with fingerprint fp at index. */
static bool holds_fp(struct sim *s, int i, uint64_t index, uint64_t fp)
{
	return dfp(&s->nodes[i].d, index) == fp;
}

static void check_leader(struct sim *s, struct node *nd)
{
	uint64_t t = kq__raft_term(nd->r);
	struct disk *d = &nd->d;

	if (kq__raft_role(nd->r) != KQ__RAFT_LEADER ||
	    !sim_leader(&s->w, t, (int)nd->id - 1, nd->incarnation,
			&nd->leader_checked_term))
		return;
	/* Leader completeness: everything committed in an earlier term. */
	for (uint64_t i = 1; i <= s->max_commit; i++) {
		if (!s->commit_fp[i] || s->commit_term[i] >= t)
			continue;
		if (i < d->base)
			continue; /* covered by the snapshot's fingerprint */
		if (dfp(d, i) != s->commit_fp[i]) {
			sim_violate(&s->w.clock,
				    "leader completeness: leader %" PRIu64
				    " of term %" PRIu64
				    " lacks committed index %" PRIu64,
				    nd->id, t, i);
			return;
		}
	}
	sim_check_acks(&s->w, t, (int)nd->id - 1, d->base, "index", holds_fp);
}

/* ------------------------------------------------------------ nodes */

static void disk_truncate(struct disk *d, uint64_t from)
{
	if (from <= d->base)
		from = d->base + 1;
	if (from > d->base + d->n)
		return;
	d->n = from - d->base - 1;
	/* A truncation is durable when it returns. */
	if (d->durable_last >= from)
		d->durable_last = from - 1;
}

static void disk_append(struct disk *d, const struct sentry *e)
{
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 256;
		d->e = xrealloc(d->e, d->cap * sizeof(*d->e));
	}
	d->e[d->n++] = *e;
}

static uint64_t payload_id(const struct kq__raft_entry *e)
{
	uint64_t id = 0;

	if (e->data && e->len == sizeof(id))
		memcpy(&id, e->data, sizeof(id));
	return id;
}

static void install_snapshot(struct sim *s, struct node *nd,
			     const struct kq__raft_snapshot *snap)
{
	struct disk *d = &nd->d;
	uint64_t fp;

	if (kq__raft_role(nd->r) == KQ__RAFT_LEADER)
		sim_violate(&s->w.clock,
			    "leader %" PRIu64 " replaced its log by a snapshot",
			    nd->id);
	if (snap->data) {
		memcpy(&fp, snap->data, sizeof(fp));
	} else {
		/* A log group's reset: the state is whatever was committed
		 * there, so take the fingerprint from the record. */
		grow_commit(s, snap->index);
		fp = s->commit_fp[snap->index];
		if (!fp)
			sim_violate(&s->w.clock,
				    "node %" PRIu64
				    " reset to an uncommitted index %" PRIu64,
				    nd->id, snap->index);
	}
	sim_trace(&s->w.clock,
		  "  node %" PRIu64 " installs snapshot %" PRIu64 "/%" PRIu64,
		  nd->id, snap->index, snap->term);
	note_committed(s, nd, snap->index, fp);
	fp_record(s, snap->index, snap->term, fp);
	d->n = 0;
	d->base = snap->index;
	d->base_term = snap->term;
	d->base_fp = fp;
	d->durable_last = snap->index;
	nd->applied = snap->index;
}

static void write_entries(struct sim *s, struct node *nd,
			  const struct kq__raft_ready *rd)
{
	struct disk *d = &nd->d;
	uint64_t first = rd->entries[0].index;

	if (first <= d->base) {
		sim_violate(&s->w.clock,
			    "node %" PRIu64 " writes below its snapshot",
			    nd->id);
		return;
	}
	if (first <= d->base + d->n) {
		if (kq__raft_role(nd->r) == KQ__RAFT_LEADER)
			sim_violate(&s->w.clock,
				    "leader %" PRIu64 " of term %" PRIu64
				    " overwrites its entries from %" PRIu64,
				    nd->id, kq__raft_term(nd->r), first);
		sim_trace(&s->w.clock,
			  "  node %" PRIu64 " truncates from %" PRIu64, nd->id,
			  first);
		disk_truncate(d, first);
	}
	if (first != d->base + d->n + 1) {
		sim_violate(&s->w.clock,
			    "node %" PRIu64 " writes a gap at %" PRIu64, nd->id,
			    first);
		return;
	}
	for (size_t i = 0; i < rd->n_entries; i++) {
		const struct kq__raft_entry *e = &rd->entries[i];
		struct sentry se = {
			.term = e->term,
			.id = payload_id(e),
			.flags = e->flags,
		};

		se.fp = fp_of(dfp(d, e->index - 1), e->index, e->term, se.id,
			      se.flags);
		disk_append(d, &se);
		fp_record(s, e->index, e->term, se.fp);
	}
	d->written_id = rd->persist_id;
	if (!d->sync_pending) {
		d->sync_pending = 1;
		evq_push(&s->w.events,
			 (struct ev){.time = s->w.clock.now + 1 +
					     below(&s->w.rng, s->sync_max),
				     .type = EV_SYNC,
				     .node = (int)nd->id - 1,
				     .incarnation = nd->incarnation});
	}
}

static void apply_entries(struct sim *s, struct node *nd,
			  const struct kq__raft_ready *rd)
{
	for (size_t i = 0; i < rd->n_committed; i++) {
		const struct kq__raft_entry *e = &rd->committed[i];
		struct sentry *se = dentry(&nd->d, e->index);
		uint64_t id = payload_id(e);

		if (e->index != nd->applied + 1 || !se || se->term != e->term ||
		    se->id != id) {
			sim_violate(&s->w.clock,
				    "node %" PRIu64 " applies index %" PRIu64
				    " out of order or unknown",
				    nd->id, e->index);
			return;
		}
		nd->applied = e->index;
		note_committed(s, nd, e->index, se->fp);
		/* A leader dying right after a commit, before the followers
		 * learn of it, tests what the next leader must hold. */
		if (kq__raft_role(nd->r) == KQ__RAFT_LEADER)
			sim_crash_soon(&s->w, s->w.leader_crash / 4, TICK / 2,
				       (int)nd->id - 1, nd->incarnation);
		if (id && id < s->cap_prop &&
		    s->prop_node[id] ==
			    ((nd->id << 32) | (uint64_t)nd->incarnation)) {
			/* The proposer learns the commit: the client is
			 * answered now. */
			sim_ack(&s->w, e->index, se->fp, kq__raft_term(nd->r));
			s->committed_props++;
		}
	}
}

static void process(struct sim *s, struct node *nd)
{
	struct kq__raft_ready rd;

	while (!s->w.clock.violation[0] && kq__raft_has_ready(nd->r)) {
		kq__raft_ready(nd->r, &rd);
		if (rd.hs_changed) {
			if (rd.hs.term < nd->d.hs.term)
				sim_violate(&s->w.clock,
					    "node %" PRIu64 " term went back",
					    nd->id);
			nd->d.hs = rd.hs;
		}
		if (rd.snapshot)
			install_snapshot(s, nd, rd.snapshot);
		if (rd.n_entries)
			write_entries(s, nd, &rd);
		for (size_t i = 0; i < rd.n_msgs; i++) {
			const struct kq__raft_msg *m = &rd.msgs[i];

			if (m->term > nd->d.hs.term &&
			    m->type != KQ__RAFT_MSG_PREVOTE &&
			    m->type != KQ__RAFT_MSG_PREVOTE_RESP)
				sim_violate(&s->w.clock,
					    "node %" PRIu64
					    " sends term %" PRIu64
					    " before saving it",
					    nd->id, m->term);
			if (m->type == KQ__RAFT_MSG_VOTE_RESP && !m->reject &&
			    nd->d.hs.vote != m->to)
				sim_violate(&s->w.clock,
					    "node %" PRIu64
					    " grants a vote it did not save",
					    nd->id);
			sim_trace(&s->w.clock,
				  "  %" PRIu64 "->%" PRIu64 " %s t%" PRIu64
				  " i%" PRIu64 " lt%" PRIu64 " c%" PRIu64
				  " h%" PRIu64 " n%zu%s",
				  m->from, m->to, kq__raft_msg_name(m->type),
				  m->term, m->index, m->log_term, m->commit,
				  m->hint, m->n_entries,
				  m->reject ? " reject" : "");
			send_msg(s, m);
		}
		apply_entries(s, nd, &rd);
		kq__raft_advance(nd->r, &rd);
	}
	if (s->w.clock.violation[0])
		return;
	if (kq__raft_last_index(nd->r) != nd->d.base + nd->d.n)
		sim_violate(&s->w.clock,
			    "node %" PRIu64 " core and disk logs disagree",
			    nd->id);
	check_leader(s, nd);
}

/* The core's storage hooks over the fake disk: only durable entries
 * between the snapshot point and the cache may be asked for. */
static int disk_read(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		     struct kq__raft_entry *out, size_t *n)
{
	struct node *nd = ctx;
	size_t bytes = 0;

	*n = 0;
	for (uint64_t i = from; i <= to; i++) {
		struct sentry *se = dentry(&nd->d, i);
		void *buf = NULL;

		if (!se || i > nd->d.durable_last) {
			sim_violate(&nd->sim->w.clock,
				    "node %" PRIu64 " reads index %" PRIu64
				    " it does not hold durably",
				    nd->id, i);
			for (size_t k = 0; k < *n; k++)
				kq__raft_buf_unref(out[k].data);
			*n = 0;
			return -5;
		}
		if (se->id) {
			buf = kq__raft_buf_alloc(sizeof(se->id));
			memcpy(buf, &se->id, sizeof(se->id));
		}
		out[(*n)++] = (struct kq__raft_entry){
			.index = i,
			.term = se->term,
			.flags = se->flags,
			.len = se->id ? sizeof(se->id) : 0,
			.data = buf,
		};
		bytes += se->id ? sizeof(se->id) : 0;
		if (max_bytes && bytes >= max_bytes)
			break;
	}
	nd->sim->reads += *n;
	return 0;
}

static int disk_term_at(void *ctx, uint64_t index, uint64_t *term)
{
	struct node *nd = ctx;
	struct sentry *se = dentry(&nd->d, index);

	if (index == nd->d.base) {
		*term = nd->d.base_term;
		return 0;
	}
	if (!se || index > nd->d.durable_last) {
		sim_violate(&nd->sim->w.clock,
			    "node %" PRIu64 " asks the term of index %" PRIu64
			    " it does not hold durably",
			    nd->id, index);
		return -5;
	}
	*term = se->term;
	return 0;
}

static void start_node(struct sim *s, struct node *nd)
{
	uint64_t voters[MAX_NODES];
	struct kq__raft_entry *ents;
	uint64_t *ids;
	struct kq__raft_config c = {
		.id = nd->id,
		.voters = voters,
		.n_voters = (size_t)s->w.n,
		.election_ticks = 10,
		.heartbeat_ticks = 2,
		.seed = s->w.seed * 7919 + nd->incarnation,
		.pre_vote = s->pre_vote,
		.check_quorum = s->check_quorum,
		.max_msg_bytes = s->max_msg_bytes,
		.max_inflight_bytes = s->max_inflight_bytes,
		.max_inflight_msgs = s->max_inflight_msgs,
	};
	struct disk *d = &nd->d;

	for (int i = 0; i < s->w.n; i++)
		voters[i] = (uint64_t)i + 1;
	/* What was not durable is gone. */
	d->n = d->durable_last - d->base;
	ents = xrealloc(NULL, d->n * sizeof(*ents));
	ids = xrealloc(NULL, d->n * sizeof(*ids));
	for (size_t i = 0; i < d->n; i++) {
		ids[i] = d->e[i].id;
		ents[i] = (struct kq__raft_entry){
			.index = d->base + 1 + i,
			.term = d->e[i].term,
			.flags = d->e[i].flags,
			.len = d->e[i].id ? sizeof(uint64_t) : 0,
			.data = d->e[i].id ? &ids[i] : NULL,
		};
	}
	c.hs = d->hs;
	/* As the raft module's open does for a new partition's first
	 * replica: it campaigns first. */
	if (nd->id == 1 && d->hs.term == 0 && d->n == 0 && d->base == 0)
		c.first_election_ticks = 2;
	c.snap = (struct kq__raft_snapshot){
		.index = d->base,
		.term = d->base_term,
		.data = (d->base && !s->log_mode) ? &d->base_fp : NULL,
		.len = sizeof(d->base_fp),
	};
	c.entries = ents;
	c.n_entries = d->n;
	if (s->hooks) {
		/* Only a random tail is handed in; the rest stays on disk. */
		size_t k = (size_t)below(&s->w.rng, d->n + 1);

		c.read = disk_read;
		c.term_at = disk_term_at;
		c.hook_ctx = nd;
		c.cache_bytes = s->cache_bytes;
		c.entries = ents + (d->n - k);
		c.n_entries = k;
		c.last_index = d->base + d->n;
		c.last_term = d->n ? d->e[d->n - 1].term : d->base_term;
	}
	nd->sim = s;
	nd->r = kq__raft_new(&c);
	free(ents);
	free(ids);
	if (!nd->r) {
		fprintf(stderr, "raft-sim: kq__raft_new failed\n");
		exit(2);
	}
	nd->up = 1;
	nd->applied = d->base;
	nd->leader_checked_term = 0;
	d->sync_pending = 0;
}

static void crash_node(struct sim *s, struct node *nd)
{
	sim_trace(&s->w.clock,
		  "  CRASH node %" PRIu64 " (durable through %" PRIu64 ")",
		  nd->id, nd->d.durable_last);
	kq__raft_free(nd->r);
	nd->r = NULL;
	nd->up = 0;
	nd->incarnation++;
	nd->d.n = nd->d.durable_last - nd->d.base;
	nd->restart_tick = s->w.tick + 5 + below(&s->w.rng, 60);
}

static void compact_node(struct sim *s, struct node *nd)
{
	struct disk *d = &nd->d;
	uint64_t upto = nd->applied;
	uint64_t p = kq__raft_persisted_index(nd->r);
	uint64_t fp;
	struct sentry *e;
	size_t drop;

	if (p < upto)
		upto = p;
	if (upto < d->base + 32)
		return;
	upto -= below(&s->w.rng, 8);
	e = dentry(d, upto);
	fp = e->fp;
	if (kq__raft_compact(nd->r, upto, s->log_mode ? NULL : &fp,
			     sizeof(fp))) {
		sim_violate(&s->w.clock,
			    "node %" PRIu64 " cannot compact at %" PRIu64,
			    nd->id, upto);
		return;
	}
	sim_trace(&s->w.clock, "  node %" PRIu64 " compacts through %" PRIu64,
		  nd->id, upto);
	drop = upto - d->base;
	d->base_term = e->term;
	d->base_fp = fp;
	memmove(d->e, d->e + drop, (d->n - drop) * sizeof(*d->e));
	d->n -= drop;
	d->base = upto;
}

/* ------------------------------------------------------------ faults */

struct kq__raft *sim_core(struct sim *s, int i)
{
	return s->nodes[i].up ? s->nodes[i].r : NULL;
}

static struct node *find_leader(struct sim *s)
{
	int i = sim_find_leader(&s->w);

	return i < 0 ? NULL : &s->nodes[i];
}

static void propose(struct sim *s, struct node *nd, size_t n)
{
	struct kq__raft_entry e[8] = {{0}};
	uint64_t ids[8], first;
	int rc;

	for (size_t i = 0; i < n; i++) {
		ids[i] = ++s->next_id;
		e[i] = (struct kq__raft_entry){.len = sizeof(uint64_t),
					       .data = &ids[i]};
	}
	rc = kq__raft_propose(nd->r, e, n, &first);
	if (rc)
		return;
	sim_trace(&s->w.clock, "  node %" PRIu64 " proposes %zu at %" PRIu64,
		  nd->id, n, first);
	for (size_t i = 0; i < n; i++) {
		grow64(&s->prop_node, &s->cap_prop, ids[i]);
		s->prop_node[ids[i]] =
			(nd->id << 32) | (uint64_t)nd->incarnation;
	}
	s->proposals += n;
	if (s->w.healed)
		s->final_id = ids[n - 1];
	process(s, nd);
}

static int has_final(struct sim *s, struct node *l)
{
	if (!s->final_id)
		return 0;
	for (uint64_t i = l->d.base + l->d.n; i > l->d.base; i--)
		if (dentry(&l->d, i)->id == s->final_id)
			return 1;
	return 0;
}

/* After the faults: one leader, everyone holding and applying the same
 * log, including an entry proposed after the healing. */
int sim_converged(struct sim *s, int leader)
{
	struct node *l = &s->nodes[leader];
	uint64_t last = kq__raft_last_index(l->r);

	if (!s->final_id)
		return 0;
	for (int i = 0; i < s->w.n; i++) {
		struct node *nd = &s->nodes[i];

		if (!nd->up || nd->applied != last ||
		    kq__raft_last_index(nd->r) != last ||
		    dfp(&nd->d, last) != dfp(&l->d, last) ||
		    nd->d.durable_last != last)
			return 0;
	}
	return has_final(s, l);
}

void sim_crash(struct sim *s, int i)
{
	if (s->nodes[i].up)
		crash_node(s, &s->nodes[i]);
}

/* A tick's faults besides the network's and a crash: restarts,
 * compactions, proposals and leadership transfers. */
void sim_faults(struct sim *s)
{
	struct node *l;

	for (int i = 0; i < s->w.n; i++) {
		struct node *nd = &s->nodes[i];

		if (!nd->up && s->w.tick >= nd->restart_tick) {
			sim_trace(&s->w.clock, "  RESTART node %" PRIu64,
				  nd->id);
			start_node(s, nd);
			process(s, nd);
		} else if (nd->up && chance(&s->w.rng, 40)) {
			compact_node(s, nd);
		}
	}
	if (chance(&s->w.rng, 500)) {
		struct node *nd = &s->nodes[below(&s->w.rng, s->w.n)];

		if (nd->up)
			propose(s, nd, 1 + below(&s->w.rng, 4));
	}
	/* Leadership transfers, to caught-up voters or not. */
	l = find_leader(s);
	if (l && chance(&s->w.rng, 20)) {
		uint64_t to = 1 + below(&s->w.rng, (uint64_t)s->w.n);
		int rv = kq__raft_transfer(l->r, to);

		sim_trace(&s->w.clock,
			  "  TRANSFER %" PRIu64 " -> %" PRIu64 ": %d", l->id,
			  to, rv);
		if (rv != 0 && rv != KQ_EBUSY && rv != KQ_EBADARG &&
		    rv != KQ_EUNAVAILABLE)
			sim_violate(&s->w.clock,
				    "transfer from leader %" PRIu64
				    " failed: %d",
				    l->id, rv);
		process(s, l);
	}
}

void sim_heal(struct sim *s)
{
	for (int i = 0; i < s->w.n; i++) {
		if (!s->nodes[i].up) {
			start_node(s, &s->nodes[i]);
			process(s, &s->nodes[i]);
		}
	}
}

/* A final proposal lost with a deposed leader is made again. */
void sim_settle(struct sim *s)
{
	struct node *l = find_leader(s);

	if (l && !has_final(s, l))
		propose(s, l, 1);
}

void sim_tick(struct sim *s, int i)
{
	struct node *nd = &s->nodes[i];

	if (!nd->up)
		return;
	if (kq__raft_tick(nd->r))
		sim_violate(&s->w.clock, "node %" PRIu64 " failed a tick",
			    nd->id);
	process(s, nd);
}

void sim_handle(struct sim *s, struct ev *e)
{
	struct node *nd = &s->nodes[e->node];

	switch (e->type) {
	case EV_DELIVER: {
		struct kq__raft_msg *m = &e->msg->m;

		if (!nd->up || s->w.net.blocked[m->from - 1][m->to - 1]) {
			msg_free(e->msg);
			break;
		}
		sim_trace(&s->w.clock,
			  "%" PRIu64 "->%" PRIu64 " %s t%" PRIu64 " i%" PRIu64
			  " lt%" PRIu64 " c%" PRIu64 " h%" PRIu64 " n%zu%s",
			  m->from, m->to, kq__raft_msg_name(m->type), m->term,
			  m->index, m->log_term, m->commit, m->hint,
			  m->n_entries, m->reject ? " reject" : "");
		if (kq__raft_step(nd->r, m))
			sim_violate(&s->w.clock,
				    "node %" PRIu64 " refused %s from %" PRIu64
				    " as contradicting Raft",
				    nd->id, kq__raft_msg_name(m->type),
				    m->from);
		msg_free(e->msg);
		process(s, nd);
		break;
	}
	case EV_CRASH:
		if (nd->up && e->incarnation == nd->incarnation && !s->w.healed)
			crash_node(s, nd);
		break;
	case EV_SYNC:
		if (!nd->up || e->incarnation != nd->incarnation)
			break;
		nd->d.sync_pending = 0;
		nd->d.durable_last = nd->d.base + nd->d.n;
		sim_trace(&s->w.clock,
			  "  node %" PRIu64 " synced through %" PRIu64, nd->id,
			  nd->d.durable_last);
		kq__raft_persisted(nd->r, nd->d.written_id);
		process(s, nd);
		break;
	default: break; /* control events and ticks: sim_run() */
	}
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < s->w.n; i++) {
		kq__raft_free(s->nodes[i].r);
		free(s->nodes[i].d.e);
	}
	sim_end(&s->w);
	free(s->commit_fp);
	free(s->commit_term);
	free(s->fps);
	free(s->prop_node);
}

/* Entries read back through the hooks over all seeds. */
static uint64_t o_reads;

/* Nothing is left to do after an event. */
void sim_after(struct sim *s, const struct ev *e)
{
	(void)s;
	(void)e;
}

int sim_seed(const struct opts *o, uint64_t seed, char *why, size_t why_len)
{
	struct sim s;

	memset(&s, 0, sizeof(s));
	sim_begin(&s.w, &o->sim, seed, &s);
	s.log_mode = (int)below(&s.w.rng, 2);
	net_draw(&s.w.net, &s.w.rng, 301, 200);
	s.sync_max = 10 + (unsigned)below(&s.w.rng, 300);
	s.w.crash = 5 + (unsigned)below(&s.w.rng, 40);
	s.w.net.partition = 5 + (unsigned)below(&s.w.rng, 40);
	s.w.leader_crash = (unsigned)below(&s.w.rng, 1000);
	s.max_msg_bytes = (size_t)8 << below(&s.w.rng, 8);
	s.max_inflight_msgs = 1u << below(&s.w.rng, 5);
	s.max_inflight_bytes = s.max_msg_bytes * (1 + below(&s.w.rng, 8));
	/* Mostly the production setting, sometimes the bare algorithm. */
	s.pre_vote = below(&s.w.rng, 4) != 0;
	s.check_quorum = below(&s.w.rng, 4) != 0;
	/* Storage hooks: none (all cached), an unbounded cache, or a tiny
	 * one so that entries are read back from the disk all the time. */
	switch (o->cache_bytes >= 0 ? 2 : below(&s.w.rng, 4)) {
	case 0: break;
	case 1: s.hooks = 1; break;
	default:
		s.hooks = 1;
		s.cache_bytes = o->cache_bytes >= 0 ? (size_t)o->cache_bytes
						    : 1 + below(&s.w.rng, 600);
		break;
	}
	sim_trace(&s.w.clock,
		  "seed %" PRIu64
		  ": %d nodes, %s groups, loss %u%%o, dup %u%%o,"
		  " delay <= %u, reorder %u%%o, sync <= %u, crash %u%%o,"
		  " partition %u%%o, leader crash %u%%o, msg %zu B,"
		  " inflight %u msgs/%zu B, pre-vote %d, check-quorum %d,"
		  " hooks %d, cache %zu B",
		  seed, s.w.n, s.log_mode ? "log" : "state-machine",
		  s.w.net.loss, s.w.net.dup, s.w.net.delay_max, s.w.net.reorder,
		  s.sync_max, s.w.crash, s.w.net.partition, s.w.leader_crash,
		  s.max_msg_bytes, s.max_inflight_msgs, s.max_inflight_bytes,
		  s.pre_vote, s.check_quorum, s.hooks, s.cache_bytes);
	for (int i = 0; i < s.w.n; i++) {
		struct node *nd = &s.nodes[i];

		nd->id = (uint64_t)i + 1;
		nd->tick_offset = 1 + (unsigned)below(&s.w.rng, TICK - 1);
		start_node(&s, nd);
		evq_push(&s.w.events, (struct ev){.time = nd->tick_offset,
						  .type = EV_TICK,
						  .node = i});
	}
	sim_run(&s.w);
	sim_trace(&s.w.clock,
		  "seed %" PRIu64 " done at tick %" PRIu64 ": %" PRIu64
		  " proposed, %" PRIu64 " acknowledged, commit %" PRIu64
		  ", %" PRIu64 " entries read back",
		  seed, s.w.tick, s.proposals, s.committed_props, s.max_commit,
		  s.reads);
	if (s.hooks && s.cache_bytes && !s.w.clock.violation[0]) {
		/* The bound holds once everything is durable. */
		for (int i = 0; i < s.w.n; i++)
			if (s.nodes[i].up &&
			    kq__raft_cached_bytes(s.nodes[i].r) > s.cache_bytes)
				sim_violate(&s.w.clock,
					    "node %d caches %zu bytes, over "
					    "the bound %zu",
					    i + 1,
					    kq__raft_cached_bytes(s.nodes[i].r),
					    s.cache_bytes);
	}
	o_reads += s.reads;
	snprintf(why, why_len, "%s", s.w.clock.violation);
	sim_free(&s);
	return why[0] != 0;
}

int sim_flag(struct opts *o, const char *a)
{
	if (strcmp(a, "--soak"))
		return 0;
	/* Many more seeds, each twice as long. */
	o->sim.seeds = 20000;
	o->sim.ticks *= 2;
	return 1;
}

int sim_option(struct opts *o, const char *a, const char *v)
{
	if (strcmp(a, "--cache-bytes"))
		return 0;
	o->cache_bytes = strtol(v, NULL, 10);
	return 1;
}

void sim_report(const struct opts *o, struct sim_summary *r)
{
	if (o->cache_bytes >= 0)
		snprintf(r->replay, sizeof(r->replay), " --cache-bytes %ld",
			 (long)o->cache_bytes);
	snprintf(r->note, sizeof(r->note),
		 " (%" PRIu64 " entries read back from the disks)", o_reads);
}

int main(int argc, char **argv)
{
	struct opts o = {
		.sim = {.ticks = 2000, .converge_ticks = 400},
		.cache_bytes = -1,
	};

	return sim_main(argc, argv, &o, &o.sim);
}
