/* The group adapter: one Raft core per replicated log, driven through the
 * ready loop in the order raft.h prescribes, persisting through the
 * broker's logs and talking through the cluster port. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>
#include <kafkaesque/clock.h>
#include <kafkaesque/list.h>

#include "module.h"

/* An entry's payload carries what a record holds besides offset, term and
 * flags: [timestamp_ms i64][key_len u32][key][value], big-endian.  Control
 * entries carry none. */
#define PAYLOAD_HEAD 12

/* A sync requested for one ready's entries. */
struct kq__raft_sync {
	struct kq_sync_req req;
	struct kq_group *g; /* NULL once the group closed */
	uint64_t persist_id;
	struct kq__raft_sync *prev, *next;
};

/* Encodes a record's payload into a new buffer (NULL for a control
 * record, which has none): malloc'd, or a kq__raft_buf when `rbuf`;
 * *len receives its size. */
static int encode(const struct kq_record *rec, bool rbuf, void **out,
		  uint32_t *len)
{
	uint8_t *p;
	uint64_t n;

	*out = NULL;
	*len = 0;
	if (rec->flags & KQ_RECORD_CONTROL)
		return 0;
	n = PAYLOAD_HEAD + (uint64_t)rec->key_len + rec->value_len;
	if (n > UINT32_MAX)
		return KQ_EBADARG;
	p = rbuf ? kq__raft_buf_alloc(n) : malloc(n);
	if (!p)
		return -ENOMEM;
	kq_put64be(p, (uint64_t)rec->timestamp_ms);
	kq_put32be(p + 8, rec->key ? rec->key_len : 0);
	if (rec->key && rec->key_len)
		memcpy(p + PAYLOAD_HEAD, rec->key, rec->key_len);
	if (rec->value_len)
		memcpy(p + PAYLOAD_HEAD + (rec->key ? rec->key_len : 0),
		       rec->value, rec->value_len);
	*out = p;
	*len = (uint32_t)n;
	return 0;
}

/* The record view of an entry; pointers borrow the entry's payload. */
static void decode(const struct kq__raft_entry *e, struct kq_record *rec)
{
	const uint8_t *p = e->data;
	uint32_t klen;

	memset(rec, 0, sizeof(*rec));
	rec->offset = e->index;
	rec->term = e->term;
	rec->flags = e->flags;
	if (!p || e->len < PAYLOAD_HEAD) {
		/* Not written by this module's propose: all of it is the
		 * value. */
		rec->value = p;
		rec->value_len = p ? e->len : 0;
		return;
	}
	klen = kq_get32be(p + 8);
	if (klen > e->len - PAYLOAD_HEAD) {
		rec->value = p;
		rec->value_len = e->len;
		return;
	}
	rec->timestamp_ms = (int64_t)kq_get64be(p);
	rec->key = klen ? p + PAYLOAD_HEAD : NULL;
	rec->key_len = klen;
	rec->value = p + PAYLOAD_HEAD + klen;
	rec->value_len = e->len - PAYLOAD_HEAD - klen;
}

static const struct kq_store_api *store_api(struct kq_group *g)
{
	return g->mod->host->store;
}

static void run(struct kq_group *g);

/* ------------------------------------------------------------ terms */

/* Records that `index` has `term`; indexes come in increasing order. */
static int terms_push(struct kq_group *g, uint64_t index, uint64_t term)
{
	struct kq__raft_term_start *t;

	if (g->n_terms && g->terms[g->n_terms - 1].term == term)
		return 0;
	if (g->n_terms == g->cap_terms) {
		size_t cap = g->cap_terms ? g->cap_terms * 2 : 8;

		t = realloc(g->terms, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		g->terms = t;
		g->cap_terms = cap;
	}
	g->terms[g->n_terms++] = (struct kq__raft_term_start){index, term};
	return 0;
}

/* Forgets the terms of entries from `from` on (the point stays). */
static void terms_truncate(struct kq_group *g, uint64_t from)
{
	while (g->n_terms > 1 && g->terms[g->n_terms - 1].index >= from)
		g->n_terms--;
}

/* The log restarts after `point`, of term `term`. */
static void terms_reset(struct kq_group *g, uint64_t point, uint64_t term)
{
	g->n_terms = 0;
	terms_push(g, point, term); /* cannot fail: room was made at open */
}

/* Forgets what lies before `point`, which becomes the first index. */
static void terms_prune(struct kq_group *g, uint64_t point)
{
	size_t k = 0;

	while (k + 1 < g->n_terms && g->terms[k + 1].index <= point)
		k++;
	if (k) {
		memmove(g->terms, g->terms + k,
			(g->n_terms - k) * sizeof(*g->terms));
		g->n_terms -= k;
	}
	if (g->n_terms && g->terms[0].index < point)
		g->terms[0].index = point;
}

static int terms_lookup(const struct kq_group *g, uint64_t index,
			uint64_t *term)
{
	size_t lo = 0, hi = g->n_terms;

	if (!g->n_terms || index < g->terms[0].index)
		return -ENOENT;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (g->terms[mid].index <= index)
			lo = mid;
		else
			hi = mid;
	}
	*term = g->terms[lo].term;
	return 0;
}

/* Finds the term starts strictly inside (lo, hi] of the stored log,
 * knowing the terms at both ends: terms never decrease along a log, so
 * a stretch whose ends agree holds one term. */
static int terms_scan(struct kq_group *g, uint64_t lo, uint64_t tlo,
		      uint64_t hi, uint64_t thi)
{
	uint64_t mid, tmid;
	int rv;

	if (tlo == thi)
		return 0;
	if (hi == lo + 1)
		return terms_push(g, hi, thi);
	mid = lo + (hi - lo) / 2;
	rv = store_api(g)->term_at(g->store, mid, &tmid);
	if (rv == 0)
		rv = terms_scan(g, lo, tlo, mid, tmid);
	if (rv == 0)
		rv = terms_scan(g, mid, tmid, hi, thi);
	return rv;
}

/* ------------------------------------------------------------ hooks */

struct hook_read {
	struct kq__raft_entry *out;
	size_t n, room;
	uint64_t expect;
	size_t bytes;
	int error;
};

static int hook_read_one(void *ctx, const struct kq_record *rec)
{
	struct hook_read *hr = ctx;
	struct kq__raft_entry *e = &hr->out[hr->n];

	if (rec->offset != hr->expect) {
		hr->error = KQ_ECORRUPT;
		return 1;
	}
	memset(e, 0, sizeof(*e));
	e->index = rec->offset;
	e->term = rec->term;
	e->flags = rec->flags & KQ__RAFT_ENTRY_CONTROL;
	hr->error = encode(rec, true, &e->data, &e->len);
	if (hr->error)
		return 1;
	hr->n++;
	hr->expect++;
	hr->bytes += e->len;
	return hr->n >= hr->room;
}

/* The core's read hook: stored records become entries. */
static int hook_read(void *ctx, uint64_t from, uint64_t to, size_t max_bytes,
		     struct kq__raft_entry *out, size_t *n)
{
	struct kq_group *g = ctx;
	struct hook_read hr = {out, 0, to - from + 1, from, 0, 0};
	uint64_t next;
	int rv;

	while (hr.n < hr.room && (!max_bytes || hr.bytes < max_bytes)) {
		rv = store_api(g)->read(g->store, hr.expect, to + 1,
					max_bytes ? max_bytes - hr.bytes
						  : 1u << 20,
					hook_read_one, &hr, &next);
		if (rv < 0 && !hr.error)
			hr.error = rv;
		if (hr.error || rv == 0)
			break;
	}
	if (!hr.error && hr.n == 0)
		hr.error = KQ_ECORRUPT;
	if (hr.error) {
		g->mod->host->log(g->mod->host, KQ_LOG_ERROR,
				  "group %s: cannot read offset %" PRIu64
				  " back from the log: %s",
				  g->name, hr.expect, kq_strerror(hr.error));
		for (size_t i = 0; i < hr.n; i++)
			kq__raft_buf_unref(out[i].data);
		hr.n = 0;
	}
	*n = hr.n;
	return hr.error;
}

/* The core's term_at hook: from the terms kept in memory. */
static int hook_term_at(void *ctx, uint64_t index, uint64_t *term)
{
	struct kq_group *g = ctx;

	if (terms_lookup(g, index, term) == 0)
		return 0;
	return store_api(g)->term_at(g->store, index, term);
}

static void count_campaign(struct kq_group *g);

/* A leader that stops hands a follower an election (TIMEOUT_NOW, as a
 * hand-over does): its broker still answers keepalives, so followers that
 * sleep would otherwise never notice, and the partition would have no
 * leader until that broker restarts.  Every follower that is up gets
 * one, so that one lost message (a full queue, a stalled broker) leaves
 * none asleep; a split vote costs one more election timeout.  It vouches
 * for nothing: an election is safe whoever starts it, and a follower
 * that is behind simply loses it. */
static void resign(struct kq_group *g)
{
	struct kq__raft_module *mod = g->mod;
	struct kq__raft_msg m = {
		.type = KQ__RAFT_MSG_TIMEOUT_NOW,
		.from = (uint64_t)mod->host->broker_id,
		.term = kq__raft_term(g->r),
	};

	if (kq__raft_role(g->r) != KQ__RAFT_LEADER || !mod->cluster)
		return;
	for (size_t i = 0; i < g->n_voters; i++) {
		m.to = g->voters[i];
		if (m.to == m.from ||
		    !kq__cluster_peer_up(mod->cluster, (int)m.to))
			continue;
		kq__cluster_send(mod->cluster, g->id, &m);
		mod->host->log(mod->host, KQ_LOG_INFO,
			       "group %s: stopped while leading term %" PRIu64
			       "; broker %" PRIu64 " is asked to take over",
			       g->name, m.term, m.to);
	}
}

/* Stops the group for good after a storage or core error: it neither
 * sends nor acknowledges anything any more, but for a resignation. */
static void fail_group(struct kq_group *g, int rv, const char *what)
{
	if (g->failed)
		return;
	g->failed = rv;
	resign(g);
	/* A stopped group is never ticked again: its election slot goes
	 * now, or it would be held until the group is closed. */
	count_campaign(g);
	g->mod->host->log(g->mod->host, KQ_LOG_ERROR,
			  "group %s: %s failed: %s; the group stops", g->name,
			  what, kq_strerror(rv));
}

static void on_synced(struct kq_sync_req *req, int status)
{
	struct kq__raft_sync *s = req->data;
	struct kq_group *g = s->g;

	if (g) {
		KQ_LIST_REMOVE(g->syncs, s);
		if (status != 0)
			fail_group(g, status, "log sync");
		else if (s->persist_id > g->persist_upto)
			g->persist_upto = s->persist_id;
	}
	free(s);
	if (g)
		run(g);
}

static int write_entries(struct kq_group *g, const struct kq__raft_ready *rd)
{
	const struct kq_store_api *la = store_api(g);
	struct kq_record *recs;
	struct kq__raft_sync *s;
	int rv;

	if (la->next_offset(g->store) > rd->entries[0].index) {
		rv = la->truncate(g->store, rd->entries[0].index);
		if (rv != 0)
			return rv;
	}
	terms_truncate(g, rd->entries[0].index);
	for (size_t i = 0; i < rd->n_entries; i++) {
		rv = terms_push(g, rd->entries[i].index, rd->entries[i].term);
		if (rv != 0)
			return rv;
	}
	recs = malloc(rd->n_entries * sizeof(*recs));
	s = calloc(1, sizeof(*s));
	if (!recs || !s) {
		free(recs);
		free(s);
		return -ENOMEM;
	}
	for (size_t i = 0; i < rd->n_entries; i++)
		decode(&rd->entries[i], &recs[i]);
	rv = la->append(g->store, recs, rd->n_entries);
	free(recs);
	if (rv != 0) {
		free(s);
		return rv;
	}
	g->written_end = rd->entries[rd->n_entries - 1].index + 1;
	s->g = g;
	s->persist_id = rd->persist_id;
	s->req.data = s;
	KQ_LIST_PUSH(g->syncs, s);
	rv = la->sync(g->store, &s->req, on_synced);
	if (rv != 0) {
		KQ_LIST_REMOVE(g->syncs, s);
		free(s);
	}
	return rv;
}

/* Installs the leader's snapshot, or a log group's restart point
 * (data NULL), durably: the snapshot file, then the log restarts after
 * it.  A crash in between leaves a log the next open resets (see
 * open_point).  The state itself is restored by the caller once the
 * ready is done, so that restore may call back into the module. */
static void install(struct kq_group *g, const struct kq__raft_snapshot *s)
{
	const struct kq_host *host = g->mod->host;
	int rv;

	if (s->data && !g->restore) {
		fail_group(g, KQ_EINTERNAL,
			   "installing a state snapshot in a message log");
		return;
	}
	if (!s->data && g->restore) {
		fail_group(g, KQ_EINTERNAL,
			   "installing a log restart point in a state machine");
		return;
	}
	rv = store_api(g)->save_snapshot(g->store, s->index, s->term, s->data,
					 s->len);
	if (rv != 0) {
		fail_group(g, rv, "saving the leader's snapshot");
		return;
	}
	rv = store_api(g)->reset(g->store, s->index + 1);
	if (rv != 0) {
		fail_group(g, rv, "log reset");
		return;
	}
	terms_reset(g, s->index, s->term);
	g->written_end = s->index + 1;
	g->applied = g->snap_index = s->index;
	host->log(host, g->id == 0 ? KQ_LOG_INFO : KQ_LOG_DEBUG,
		  "group %s: %s at %" PRIu64 " (term %" PRIu64
		  ") from the leader",
		  g->name, s->data ? "installed a snapshot" : "log restarts",
		  s->index, s->term);
}

/* Takes a snapshot of a state-machine group once snapshot_every entries
 * were applied since the last one, then compacts the core and the log:
 * the file is durable before anything it covers is dropped. */
static void maybe_snapshot(struct kq_group *g)
{
	const struct kq_host *host = g->mod->host;
	uint64_t every = g->mod->snapshot_every, index = g->applied, term;
	void *data = NULL;
	size_t len = 0;
	int rv;

	if (!g->snapshot || !every || g->failed || g->closed ||
	    index - g->snap_index < every || index > kq__raft_commit(g->r) ||
	    index > kq__raft_persisted_index(g->r) ||
	    kq__raft_term_at(g->r, index, &term) != 0)
		return;
	rv = g->snapshot(g->apply_ctx, &data, &len);
	if (rv == 0 && len > UINT32_MAX)
		rv = KQ_EBADARG;
	if (rv == 0)
		rv = store_api(g)->save_snapshot(g->store, index, term, data,
						 len);
	if (rv == 0)
		rv = kq__raft_compact(g->r, index, data, (uint32_t)len);
	host->free(data);
	if (rv != 0) {
		host->log(host, KQ_LOG_WARN,
			  "group %s: snapshot at %" PRIu64 " failed: %s",
			  g->name, index, kq_strerror(rv));
		/* Not again before as many entries were applied. */
		g->snap_index = index;
		return;
	}
	g->snap_index = index;
	terms_prune(g, index);
	rv = store_api(g)->compact(g->store, index + 1);
	if (rv < 0)
		host->log(host, KQ_LOG_WARN, "group %s: compaction failed: %s",
			  g->name, kq_strerror(rv));
	host->log(host, KQ_LOG_DEBUG,
		  "group %s: snapshot at %" PRIu64 " (term %" PRIu64 ")",
		  g->name, index, term);
}

int kq__raft_group_retain(struct kq_group *g, uint64_t before)
{
	const struct kq_host *host = g->mod->host;
	uint64_t limit, point, term;
	int rv;

	if (g->failed)
		return g->failed;
	if (g->snapshot || g->running || g->closed || before <= 1)
		return 0;
	/* Only what is committed, durable and handed out here may go: an
	 * old leader's uncommitted tail can still be overwritten, and a
	 * restart point below it would vouch for it. */
	limit = kq__raft_commit(g->r);
	if (kq__raft_persisted_index(g->r) < limit)
		limit = kq__raft_persisted_index(g->r);
	if (kq__raft_applied(g->r) < limit)
		limit = kq__raft_applied(g->r);
	point = before - 1 < limit ? before - 1 : limit;
	if (point >= kq__raft_first_index(g->r)) {
		/* The point and its exact term are durable before anything
		 * below it is deleted, so a restart never has to guess. */
		rv = terms_lookup(g, point, &term);
		if (rv == 0)
			rv = store_api(g)->save_snapshot(g->store, point, term,
							 NULL, 0);
		if (rv == 0)
			rv = kq__raft_compact(g->r, point, NULL, 0);
		if (rv != 0) {
			fail_group(g, rv, "recording the retention point");
			return rv;
		}
		terms_prune(g, point);
		g->snap_index = point;
		host->log(host, KQ_LOG_DEBUG,
			  "group %s: retention point %" PRIu64 " (term %" PRIu64
			  ")",
			  g->name, point, term);
	}
	point = kq__raft_first_index(g->r) - 1;
	return store_api(g)->compact(g->store,
				     point + 1 < before ? point + 1 : before);
}

/* One ready: persist, send, then apply what committed. */
static void handle_ready(struct kq_group *g)
{
	struct kq__raft_ready rd;
	struct kq__raft_entry *apply = NULL;
	struct kq__raft_snapshot restore = {0, 0, NULL, 0};
	size_t n_apply = 0;
	int rv;

	kq__raft_ready(g->r, &rd);
	if (rd.hs_changed) {
		struct kq_hard_state hs = {rd.hs.term, rd.hs.vote};

		rv = store_api(g)->save_hard_state(g->store, &hs);
		if (rv != 0)
			fail_group(g, rv, "saving term and vote");
	}
	if (!g->failed && rd.snapshot) {
		install(g, rd.snapshot);
		if (!g->failed && rd.snapshot->data) {
			restore = *rd.snapshot;
			kq__raft_buf_ref(restore.data);
		}
	}
	if (!g->failed && rd.n_entries) {
		rv = write_entries(g, &rd);
		if (rv != 0)
			fail_group(g, rv, "log write");
	}
	if (!g->failed)
		for (size_t i = 0; i < rd.n_msgs; i++)
			kq__cluster_send(g->mod->cluster, g->id, &rd.msgs[i]);
	if (!g->failed && rd.n_committed && g->apply) {
		/* Applied after advance, so that an apply callback may call
		 * back into this module; the payloads are kept alive by a
		 * reference of our own. */
		apply = malloc(rd.n_committed * sizeof(*apply));
		if (apply) {
			memcpy(apply, rd.committed,
			       rd.n_committed * sizeof(*apply));
			n_apply = rd.n_committed;
			for (size_t i = 0; i < n_apply; i++)
				kq__raft_buf_ref(apply[i].data);
		} else {
			fail_group(g, -ENOMEM, "apply");
		}
	}
	kq__raft_advance(g->r, &rd);
	if (restore.data) {
		/* Replaces the state; nothing committed after it was handed
		 * out in this ready. */
		if (!g->closed) {
			rv = g->restore(g->apply_ctx, restore.data,
					restore.len);
			if (rv != 0)
				fail_group(g, rv,
					   "restoring the leader's snapshot");
		}
		kq__raft_buf_unref(restore.data);
	}
	for (size_t i = 0; i < n_apply; i++) {
		struct kq_record rec;

		if (!(apply[i].flags & KQ__RAFT_ENTRY_CONTROL) &&
		    apply[i].index > g->replayed && !g->closed) {
			decode(&apply[i], &rec);
			g->apply(g->apply_ctx, &rec);
		}
		if (apply[i].index > g->applied)
			g->applied = apply[i].index;
		kq__raft_buf_unref(apply[i].data);
	}
	free(apply);
	if (n_apply)
		maybe_snapshot(g);
}

static void complete(struct kq__raft_pending *p, int status)
{
	p->req->first_offset = p->first;
	p->req->cb(p->req, status);
	free(p);
}

/* Completes the proposals the commit index passed, and fails them all
 * once this replica is no longer the leader of the term they were made
 * in. */
static void settle(struct kq_group *g)
{
	struct kq__raft_pending *p;
	bool leader = kq__raft_role(g->r) == KQ__RAFT_LEADER;
	uint64_t term = kq__raft_term(g->r);
	uint64_t commit = kq__raft_commit(g->r);
	uint64_t lead = kq__raft_leader(g->r);

	if (lead != g->leader_seen) {
		/* Partition leaders change too often to log at info. */
		enum kq_log_level lvl = g->id == 0 ? KQ_LOG_INFO : KQ_LOG_DEBUG;

		g->leader_seen = lead;
		if (lead)
			g->mod->host->log(g->mod->host, lvl,
					  "group %s: leader broker %" PRIu64
					  " in term %" PRIu64,
					  g->name, lead, term);
		else
			g->mod->host->log(
				g->mod->host, lvl,
				"group %s: no leader in term %" PRIu64, g->name,
				term);
	}
	while ((p = g->pend) && !g->closed) {
		int status;

		if (g->failed)
			status = g->failed;
		else if (!leader || term != p->term)
			status = KQ_EUNAVAILABLE;
		else if (p->last <= commit)
			status = 0;
		else
			break;
		g->pend = p->next;
		if (!g->pend)
			g->pend_tail = &g->pend;
		complete(p, status);
	}
}

static void group_free(struct kq_group *g)
{
	kq__raft_free(g->r);
	free(g->terms);
	free(g->voters);
	free(g->name);
	free(g);
}

/* Keeps the module's count of elections in flight: a group counts while
 * it campaigns, for two election timeouts at most, so that replicas that
 * cannot win (cut off from a majority) do not hold every slot. */
static void count_campaign(struct kq_group *g)
{
	enum kq__raft_role role = kq__raft_role(g->r);
	bool campaigning =
		role == KQ__RAFT_PRE_CANDIDATE || role == KQ__RAFT_CANDIDATE;
	bool count;

	if (!campaigning)
		g->campaign_ticks = 0;
	count = campaigning && !g->closed && !g->failed &&
		g->campaign_ticks < 2 * g->mod->election_ticks;
	if (count != g->counted) {
		g->counted = count;
		if (count)
			g->mod->campaigns++;
		else
			g->mod->campaigns--;
	}
}

/* Drains the core: readies until none is left, then settles proposals.
 * Callbacks it runs may ask for it again; that loops here instead of
 * nesting. */
static void run(struct kq_group *g)
{
	if (g->running) {
		g->again = true;
		return;
	}
	g->running = true;
	do {
		g->again = false;
		if (!g->failed && g->persist_upto > g->persist_told) {
			g->persist_told = g->persist_upto;
			kq__raft_persisted(g->r, g->persist_told);
		}
		while (!g->failed && !g->closed && kq__raft_has_ready(g->r))
			handle_ready(g);
		settle(g);
	} while (g->again && !g->closed);
	g->running = false;
	count_campaign(g);
	if (g->closed) {
		group_free(g);
		return;
	}
	kq__raft_module_sleep(g->mod, g, !g->failed && kq__raft_quiet(g->r));
}

/* A partition led elsewhere than its first replica hands over to it once
 * that one is up and has every entry: leaders stay spread as placement
 * spread them, also after a broker comes back.  Tried after an election
 * timeout of leading; when the lead comes back here, or goes to another
 * broker, the wait doubles (up to 64 election timeouts), so a preferred
 * broker that cannot keep the lead does not cost an election every
 * second.  It starts over once the preferred broker is seen leading. */
static void maybe_hand_over(struct kq_group *g, unsigned ticks)
{
	struct kq__raft_module *mod = g->mod;
	uint64_t leader = kq__raft_leader(g->r);
	int rv;

	if (!mod->balance_leaders || !g->preferred ||
	    g->preferred == mod->host->broker_id)
		return;
	if (leader == (uint64_t)g->preferred)
		g->handover_tries = 0;
	if (kq__raft_role(g->r) != KQ__RAFT_LEADER) {
		g->led_ticks = 0;
		return;
	}
	g->led_ticks += ticks;
	if (g->led_ticks < mod->election_ticks << g->handover_tries ||
	    !mod->cluster || !kq__cluster_peer_up(mod->cluster, g->preferred))
		return;
	if (mod->handovers >= KQ__RAFT_HANDOVERS_PER_TICK) {
		/* Next tick; a sleeping group is only looked at in a sweep,
		 * so ask for one then, or its turn would wait for the next
		 * sweep, 16 hand-overs every few seconds. */
		if (kq__raft_quiet(g->r))
			mod->resweep = true;
		return;
	}
	rv = kq__raft_transfer(g->r, (uint64_t)g->preferred);
	if (rv == KQ_EBUSY) { /* not caught up yet: next tick */
		if (kq__raft_quiet(g->r))
			mod->resweep = true;
		return;
	}
	g->led_ticks = 0;
	if (rv == 0) {
		mod->handovers++;
		if (g->handover_tries < 6)
			g->handover_tries++;
		mod->host->log(mod->host, KQ_LOG_DEBUG,
			       "group %s: handing the lead over to broker %d",
			       g->name, g->preferred);
	}
}

/* Whether a sleeping group must wake: a follower whose leader's broker
 * was not heard for an election timeout, or a leader that has not heard
 * a majority of its voters' brokers for that long.  Liveness is the
 * port's, per broker: a sleeping group has no timers of its own. */
static bool must_wake(struct kq_group *g)
{
	struct kq__raft_module *mod = g->mod;
	uint64_t lead = kq__raft_leader(g->r),
		 window = kq__raft_silence_ms(mod);
	size_t up = 0;

	if (!mod->cluster)
		return kq__raft_role(g->r) != KQ__RAFT_LEADER;
	if (kq__raft_role(g->r) != KQ__RAFT_LEADER)
		return lead == KQ__RAFT_NONE ||
		       !kq__cluster_peer_heard(mod->cluster, (int)lead, window);
	for (size_t i = 0; i < g->n_voters; i++)
		up += kq__cluster_peer_heard(mod->cluster, (int)g->voters[i],
					     window) != 0;
	return up < g->n_voters / 2 + 1;
}

void kq__raft_group_tick(struct kq_group *g, unsigned ticks)
{
	int rv;

	if (g->failed)
		return;
	if (kq__raft_quiet(g->r)) {
		if (must_wake(g))
			kq__raft_wake(g->r);
		else
			maybe_hand_over(g, ticks); /* wakes it if it does */
		if (kq__raft_quiet(g->r))
			return;
		ticks = 1;
	}
	/* A burst of elections (a broker died, its groups woke) goes a few
	 * at a time: each costs a durable save of term and vote on every
	 * replica, on the loop, and thousands at once would stall it past
	 * the election timeout and set off more.  The metadata group, and a
	 * lone replica (it elects itself, saving on its own broker only),
	 * never wait. */
	if (g->id != 0 && g->n_voters > 1 && kq__raft_campaign_due(g->r) &&
	    g->mod->campaigns >= g->mod->max_campaigns)
		return;
	if (kq__raft_role(g->r) == KQ__RAFT_PRE_CANDIDATE ||
	    kq__raft_role(g->r) == KQ__RAFT_CANDIDATE)
		g->campaign_ticks += ticks;
	rv = kq__raft_tick(g->r);
	if (rv != 0)
		fail_group(g, rv, "raft tick");
	if (!g->failed)
		maybe_hand_over(g, ticks);
	if (!g->failed && !g->running)
		maybe_snapshot(g);
	run(g);
}

/* Logs refused messages at the first and then at every power of two, so
 * a peer that keeps sending them cannot flood the log. */
static void note_refused(struct kq_group *g, uint64_t n,
			 const struct kq__raft_msg *m)
{
	if (n & (n - 1))
		return;
	g->mod->host->log(
		g->mod->host, KQ_LOG_WARN,
		"group %s: refused %s from broker %" PRIu64 " in term %" PRIu64
		" (%" PRIu64 " refused so far): it contradicts "
		"committed entries or its term is out of range",
		g->name, kq__raft_msg_name(m->type), m->from, m->term, n);
}

void kq__raft_group_step(struct kq_group *g, const struct kq__raft_msg *m)
{
	uint64_t refused;
	int rv;

	if (g->failed)
		return;
	/* A snapshot of the wrong kind (state into a message log, or a
	 * bare restart point into a state machine) is refused before it
	 * reaches the core, which would act on it. */
	if (m->type == KQ__RAFT_MSG_SNAPSHOT &&
	    (m->snap.data != NULL) != (g->restore != NULL)) {
		note_refused(g, ++g->refused, m);
		return;
	}
	refused = kq__raft_refused(g->r);
	rv = kq__raft_step(g->r, m);
	if (rv != 0)
		fail_group(g, rv, "raft step");
	else if (kq__raft_refused(g->r) != refused)
		note_refused(g, ++g->refused, m);
	run(g);
}

/* ------------------------------------------------------------ opening */

/* Whether a range of offsets lost to damage ends right after `point`:
 * the point a lone replica recorded above them (see restart_after_lost),
 * which the log continues though it holds no entry there. */
static int lost_ends_at(struct kq_group *g, uint64_t point)
{
	const struct kq_offset_range *lost;
	int n = store_api(g)->lost(g->store, &lost);

	for (int i = 0; i < n; i++)
		if (lost[i].end == point + 1)
			return 1;
	return 0;
}

/* A lone replica whose log lost entries to damage at its end (records
 * that fail their checksum, dropped at open) has nobody to fetch them
 * from, and they may have been acknowledged: its log restarts after
 * them, with the point recorded before any entry is written, so their
 * offsets are never given to new records.  Their term is unknown but
 * not above the current one, which the point takes; nor below an
 * earlier point's, so that a raft.state lost with them is still told
 * (check_hard_state; the log's own terms were compared before). */
static int restart_after_lost(struct kq_group *g, uint64_t term)
{
	const struct kq_store_api *la = store_api(g);
	const struct kq_host *host = g->mod->host;
	const struct kq_offset_range *lost;
	int n = la->lost(g->store, &lost), rv;
	uint64_t si, st, point;
	void *data = NULL;
	size_t len;

	if (n <= 0 || lost[n - 1].end <= la->next_offset(g->store))
		return 0;
	point = lost[n - 1].end - 1;
	rv = la->load_snapshot(g->store, &si, &st, &data, &len);
	host->free(data);
	if (rv == 0 && si >= point)
		return 0;
	if (rv != 0 && rv != -ENOENT)
		return rv;
	if (rv == 0 && st > term)
		term = st;
	rv = la->save_snapshot(g->store, point, term, NULL, 0);
	if (rv != 0)
		return rv;
	host->log(host, KQ_LOG_WARN,
		  "group %s: offsets %" PRIu64 "..%" PRIu64
		  " were lost to damage and this is the only replica: the "
		  "log restarts after them (term %" PRIu64 ")",
		  g->name, lost[n - 1].from, point, term);
	return 0;
}

/* The snapshot point a group starts from, fixing the log where an
 * install was interrupted.  With a snapshot file (a state snapshot, or a
 * message log's restart point without data) the point is the file's; a
 * stored log that does not continue it (a crash between saving the file
 * and resetting the log) is reset after it.  Every point is recorded,
 * with its exact term, before the entries below it are deleted: a log
 * that starts later than its point, or past offset 1 with no point at
 * all, lost entries nobody vouched for, and is refused rather than
 * guessed at.  A lone replica's log also continues a point recorded
 * after offsets it lost (restart_after_lost).  *data (host->free) is the
 * state to restore. */
static int open_point(struct kq_group *g, const char *dir, int lone,
		      struct kq__raft_snapshot *snap, void **data, size_t *len)
{
	const struct kq_store_api *la = store_api(g);
	const struct kq_host *host = g->mod->host;
	uint64_t first = la->first_offset(g->store);
	uint64_t end = la->next_offset(g->store), si, st, t;
	int rv;

	memset(snap, 0, sizeof(*snap));
	*data = NULL;
	*len = 0;
	if (first == 0 && end > 0) {
		host->log(host, KQ_LOG_ERROR,
			  "group %s: the log holds offset 0 (a log written "
			  "by another consensus module)",
			  g->name);
		return KQ_ECORRUPT;
	}
	rv = la->load_snapshot(g->store, &si, &st, data, len);
	if (rv == -ENOENT) {
		if (first <= 1)
			return 0;
		host->log(host, KQ_LOG_ERROR,
			  "group %s: %s starts at offset %" PRIu64
			  " but records no restart point (its snapshot file "
			  "is missing); move the folder aside so the replica "
			  "resyncs from its peers",
			  g->name, dir ? dir : "the log", first);
		return KQ_ECORRUPT;
	}
	if (rv != 0)
		return rv;
	if (!g->restore) {
		/* A message log's file holds a point, never state. */
		host->free(*data);
		*data = NULL;
		*len = 0;
	}
	if (si + 1 < first) {
		host->log(host, KQ_LOG_ERROR,
			  "group %s: %s starts at offset %" PRIu64
			  ", after its snapshot at %" PRIu64
			  "; move the folder aside so the replica resyncs "
			  "from its peers",
			  g->name, dir ? dir : "the log", first, si);
		host->free(*data);
		*data = NULL;
		return KQ_ECORRUPT;
	}
	snap->index = si;
	snap->term = st;
	/* Nothing stored at the point, or the entry there is the point's:
	 * the log continues it.  Anything else (a shorter log, another
	 * term at the point) is an install cut short. */
	if (si + 1 == first || (lone && lost_ends_at(g, si)) ||
	    (si < end && la->term_at(g->store, si, &t) == 0 && t == st))
		return 0;
	host->log(host, KQ_LOG_INFO,
		  "group %s: the log does not continue the snapshot at %" PRIu64
		  "; it restarts after it",
		  g->name, si);
	return la->reset(g->store, si + 1);
}

/* The term of the last stored entry (0 for an empty log). */
static uint64_t stored_term(struct kq_group *g)
{
	const struct kq_store_api *la = store_api(g);
	uint64_t end = la->next_offset(g->store), t = 0;

	if (end > la->first_offset(g->store) &&
	    la->term_at(g->store, end - 1, &t) != 0)
		t = 0;
	return t;
}

/* Term and vote are saved before any entry of a term is written or any
 * vote is sent: a log holding a later term than raft.state means the
 * file was lost or replaced, and with it a vote this replica may have
 * given.  Starting at an older term could vote twice in one term. */
static int check_hard_state(struct kq_group *g, const char *dir,
			    uint64_t hs_term, uint64_t log_term)
{
	const struct kq_host *host = g->mod->host;

	if (hs_term >= log_term && hs_term <= KQ__RAFT_MAX_TERM)
		return 0;
	host->log(host, KQ_LOG_ERROR,
		  "group %s: %s/raft.state holds term %" PRIu64
		  " but the log holds term %" PRIu64
		  ": the file is missing or stale; restore it, or move the "
		  "folder aside so the replica resyncs from its peers",
		  g->name, dir ? dir : ".", hs_term, log_term);
	return KQ_ECORRUPT;
}

/* Hands a lone replica's stored records to apply, streaming them. */
struct replay {
	struct kq_group *g;
	uint64_t expect;
	int error;
};

static int replay_one(void *ctx, const struct kq_record *rec)
{
	struct replay *rp = ctx;

	if (rec->offset != rp->expect) {
		rp->error = KQ_ECORRUPT;
		return 1;
	}
	rp->expect++;
	if (!(rec->flags & KQ_RECORD_CONTROL))
		rp->g->apply(rp->g->apply_ctx, rec);
	return 0;
}

static int replay(struct kq_group *g, uint64_t from, uint64_t end)
{
	struct replay rp = {g, from, 0};
	uint64_t next;
	int rv;

	while (rp.expect < end) {
		rv = store_api(g)->read(g->store, rp.expect, end, 1u << 20,
					replay_one, &rp, &next);
		if (rp.error)
			return rp.error;
		if (rv < 0)
			return rv;
		if (rv == 0)
			return KQ_ECORRUPT;
	}
	return 0;
}

static uint64_t seed_for(struct kq_group *g)
{
	return g->mod->seed ^ (g->id * 0x9e3779b97f4a7c15ull);
}

int kq__raft_group_open(void *state, const struct kq_group_config *cfg,
			struct kq_group **out)
{
	struct kq__raft_module *mod = state;
	const struct kq_host *host = mod->host;
	struct kq__raft_config rc;
	struct kq_hard_state hs = {0, 0};
	struct kq__raft_snapshot snap = {0, 0, NULL, 0};
	void *data = NULL;
	size_t len = 0;
	struct kq_group *g;
	uint64_t *voters, end, last_term = 0;
	int rv;

	if (mod->closed)
		return KQ_EUNAVAILABLE;
	if (kq__raft_module_find(mod, cfg->id)) {
		host->log(host, KQ_LOG_ERROR,
			  "group %s: id %" PRIu64 " already open", cfg->name,
			  cfg->id);
		return KQ_EINTERNAL;
	}
	g = calloc(1, sizeof(*g));
	voters = calloc(cfg->nreplicas ? cfg->nreplicas : 1, sizeof(*voters));
	if (!g || !voters || !(g->name = strdup(cfg->name))) {
		free(g);
		free(voters);
		return -ENOMEM;
	}
	g->mod = mod;
	g->id = cfg->id;
	g->store = cfg->store;
	g->apply = cfg->apply;
	g->apply_ctx = cfg->apply_ctx;
	if (cfg->snapshot && cfg->restore) {
		g->snapshot = cfg->snapshot;
		g->restore = cfg->restore;
	}
	g->pend_tail = &g->pend;
	memset(&rc, 0, sizeof(rc));
	rv = host->store->load_hard_state(cfg->store, &hs);
	/* Before open_point, which may drop the entries that show it. */
	if (rv == 0)
		rv = check_hard_state(g, cfg->dir, hs.term, stored_term(g));
	if (rv == 0 && cfg->nreplicas == 1 && !g->restore)
		rv = restart_after_lost(g, hs.term);
	if (rv == 0)
		rv = open_point(g, cfg->dir, cfg->nreplicas == 1, &snap, &data,
				&len);
	if (rv == 0 && data && len > UINT32_MAX)
		rv = KQ_ECORRUPT;
	if (rv == 0 && data) {
		rv = g->restore(g->apply_ctx, data, len);
		if (rv == 0)
			host->log(host, KQ_LOG_INFO,
				  "group %s: restored the snapshot at %" PRIu64,
				  cfg->name, snap.index);
	}
	/* Only the terms are read at open: where each starts, by bisection
	 * (terms never decrease along a log).  Entries are read on demand
	 * through the core's hooks. */
	end = host->store->next_offset(cfg->store);
	if (rv == 0)
		rv = terms_push(g, snap.index, snap.term);
	last_term = snap.term;
	if (rv == 0 && end > snap.index + 1) {
		uint64_t t0;

		rv = host->store->term_at(cfg->store, snap.index + 1, &t0);
		if (rv == 0)
			rv = host->store->term_at(cfg->store, end - 1,
						  &last_term);
		if (rv == 0)
			rv = terms_push(g, snap.index + 1, t0);
		if (rv == 0)
			rv = terms_scan(g, snap.index + 1, t0, end - 1,
					last_term);
	}
	if (rv != 0) {
		host->log(host, KQ_LOG_ERROR, "group %s: cannot recover: %s",
			  cfg->name, kq_strerror(rv));
		goto fail;
	}
	rv = check_hard_state(g, cfg->dir, hs.term, last_term);
	if (rv != 0)
		goto fail;
	g->applied = g->snap_index = snap.index;
	for (size_t i = 0; i < cfg->nreplicas; i++)
		voters[i] = (uint64_t)cfg->replicas[i];
	rc.id = (uint64_t)host->broker_id;
	/* The metadata group stays with whoever leads it: moving it
	 * would pause every broker's metadata writes for nothing. */
	if (cfg->id != 0 && cfg->nreplicas > 1)
		g->preferred = cfg->replicas[0];
	rc.voters = voters;
	rc.n_voters = cfg->nreplicas;
	rc.election_ticks = mod->election_ticks;
	rc.heartbeat_ticks = mod->heartbeat_ticks;
	rc.seed = seed_for(g);
	rc.pre_vote = mod->pre_vote;
	rc.check_quorum = mod->check_quorum;
	rc.quiesce = true;
	rc.max_msg_bytes = 1u << 20;
	rc.max_inflight_bytes = 8u << 20;
	rc.max_inflight_msgs = 64;
	rc.hs.term = hs.term;
	rc.hs.vote = hs.vote;
	/* The core keeps a copy of the state, for followers that need
	 * what it covers. */
	rc.snap = snap;
	rc.snap.data = data;
	rc.snap.len = (uint32_t)len;
	rc.last_index = end > snap.index + 1 ? end - 1 : snap.index;
	rc.last_term = last_term;
	rc.read = hook_read;
	rc.term_at = hook_term_at;
	rc.hook_ctx = g;
	rc.cache_bytes = mod->cache_bytes;
	rc.skip_apply = !cfg->apply;
	g->r = kq__raft_new(&rc);
	host->free(data);
	data = NULL;
	g->written_end = rc.last_index + 1;
	if (!g->r) {
		host->log(host, KQ_LOG_ERROR,
			  "group %s: cannot start Raft (is broker %d one of "
			  "its %zu replicas?)",
			  cfg->name, host->broker_id, cfg->nreplicas);
		rv = KQ_ECONFIG;
		goto fail;
	}
	/* A lone replica's stored entries are all committed (or will be by
	 * its next no-op, with nobody to overwrite them): replay them now,
	 * as `local` does, so the state is whole when open returns. */
	if (cfg->nreplicas == 1 && g->apply && rc.last_index > snap.index) {
		rv = replay(g, snap.index + 1, rc.last_index + 1);
		if (rv != 0) {
			host->log(host, KQ_LOG_ERROR,
				  "group %s: replay failed: %s (a gap, or "
				  "a log written by another consensus "
				  "module)",
				  cfg->name, kq_strerror(rv));
			goto fail;
		}
		g->replayed = g->applied = rc.last_index;
	}
	g->voters = voters; /* for must_wake() */
	g->n_voters = cfg->nreplicas;
	voters = NULL;
	rv = kq__raft_module_add(mod, g, g->id);
	if (rv != 0)
		goto fail;
	/* Alone, it need not wait for an election timeout to lead. */
	if (cfg->nreplicas == 1)
		for (unsigned i = 0; i < 2 * mod->election_ticks &&
				     kq__raft_role(g->r) != KQ__RAFT_LEADER;
		     i++)
			kq__raft_group_tick(g, 1);
	run(g);
	*out = g;
	return 0;
fail:
	host->free(data);
	free(voters);
	free(g->voters);
	kq__raft_free(g->r);
	free(g->terms);
	free(g->name);
	free(g);
	return rv;
}

void kq__raft_group_close(struct kq_group *g)
{
	struct kq__raft_module *mod = g->mod;
	struct kq__raft_pending *p;
	struct kq__raft_sync *s;

	for (s = g->syncs; s; s = s->next)
		s->g = NULL;
	g->syncs = NULL;
	/* Pending proposals complete later, from the loop. */
	while ((p = g->pend)) {
		g->pend = p->next;
		p->status = KQ_ECANCELED;
		p->next = mod->canceled;
		mod->canceled = p;
	}
	g->pend_tail = &g->pend;
	if (mod->canceled)
		kq__raft_module_later(mod);
	/* The last group closing also closes the module's handles. */
	kq__raft_module_remove(mod, g, g->id);
	g->closed = true;
	count_campaign(g); /* gives its election slot back */
	if (!g->running)
		group_free(g);
}

void kq__raft_run_canceled(struct kq__raft_module *mod)
{
	struct kq__raft_pending *p;

	while ((p = mod->canceled)) {
		mod->canceled = p->next;
		complete(p, p->status);
	}
}

int kq__raft_group_propose(struct kq_group *g, struct kq_propose_req *req,
			   const struct kq_record *recs, size_t n,
			   kq_propose_cb cb)
{
	struct kq__raft_entry *e;
	struct kq__raft_pending *p;
	int64_t now;
	uint64_t first = 0;
	int rv = 0;

	if (g->failed)
		return g->failed;
	if (n == 0)
		return KQ_EBADARG;
	if (kq__raft_role(g->r) != KQ__RAFT_LEADER)
		return KQ_EUNAVAILABLE;
	e = calloc(n, sizeof(*e));
	p = calloc(1, sizeof(*p));
	if (!e || !p) {
		free(e);
		free(p);
		return -ENOMEM;
	}
	now = kq_wall_ms();
	for (size_t i = 0; i < n && rv == 0; i++) {
		struct kq_record rec = recs[i];

		if (!rec.timestamp_ms)
			rec.timestamp_ms = now;
		e[i].flags = rec.flags & KQ__RAFT_ENTRY_CONTROL;
		rv = encode(&rec, false, &e[i].data, &e[i].len);
	}
	if (rv == 0)
		rv = kq__raft_propose(g->r, e, n, &first);
	for (size_t i = 0; i < n; i++)
		free(e[i].data);
	free(e);
	if (rv != 0) {
		free(p);
		return rv;
	}
	p->req = req;
	p->cb = cb;
	p->first = first;
	p->last = first + n - 1;
	p->term = kq__raft_term(g->r);
	req->cb = cb;
	*g->pend_tail = p;
	g->pend_tail = &p->next;
	run(g);
	return 0;
}

uint64_t kq__raft_group_commit_end(struct kq_group *g)
{
	uint64_t end = kq__raft_commit(g->r) + 1;

	/* Never past what this broker's log holds. */
	return end < g->written_end ? end : g->written_end;
}

int kq__raft_group_leader(struct kq_group *g)
{
	return (int)kq__raft_leader(g->r);
}
