/* The group adapter: one Raft core per replicated log, driven through the
 * ready loop in the order raft.h prescribes, persisting through the
 * broker's logs and talking through the cluster port. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Encodes a record's payload into a new malloc'd buffer (NULL for a
 * control record, which has none); *len receives its size. */
static int encode(const struct kq_record *rec, void **out, uint32_t *len)
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
	p = malloc(n);
	if (!p)
		return -ENOMEM;
	put64(p, (uint64_t)rec->timestamp_ms);
	put32(p + 8, rec->key ? rec->key_len : 0);
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
	klen = get32(p + 8);
	if (klen > e->len - PAYLOAD_HEAD) {
		rec->value = p;
		rec->value_len = e->len;
		return;
	}
	rec->timestamp_ms = (int64_t)get64(p);
	rec->key = klen ? p + PAYLOAD_HEAD : NULL;
	rec->key_len = klen;
	rec->value = p + PAYLOAD_HEAD + klen;
	rec->value_len = e->len - PAYLOAD_HEAD - klen;
}

static const struct kq_log_api *logs(struct kq_group *g)
{
	return g->mod->host->logs;
}

static void run(struct kq_group *g);

/* Stops the group for good after a storage or core error: it neither
 * sends nor acknowledges anything any more. */
static void fail_group(struct kq_group *g, int rv, const char *what)
{
	if (g->failed)
		return;
	g->failed = rv;
	g->mod->host->log(g->mod->host, KQ_LOG_ERROR,
			  "group %s: %s failed: %s; the group stops", g->name,
			  what, kq_strerror(rv));
}

static void on_synced(struct kq_sync_req *req, int status)
{
	struct kq__raft_sync *s = req->data;
	struct kq_group *g = s->g;

	if (g) {
		if (s->prev)
			s->prev->next = s->next;
		else
			g->syncs = s->next;
		if (s->next)
			s->next->prev = s->prev;
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
	const struct kq_log_api *la = logs(g);
	struct kq_record *recs;
	struct kq__raft_sync *s;
	int rv;

	if (la->next_offset(g->log) > rd->entries[0].index) {
		rv = la->truncate(g->log, rd->entries[0].index);
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
	rv = la->append(g->log, recs, rd->n_entries);
	free(recs);
	if (rv != 0) {
		free(s);
		return rv;
	}
	g->written_end = rd->entries[rd->n_entries - 1].index + 1;
	s->g = g;
	s->persist_id = rd->persist_id;
	s->req.data = s;
	s->next = g->syncs;
	if (g->syncs)
		g->syncs->prev = s;
	g->syncs = s;
	rv = la->sync(g->log, &s->req, on_synced);
	if (rv != 0) {
		g->syncs = s->next;
		if (s->next)
			s->next->prev = NULL;
		free(s);
	}
	return rv;
}

/* One ready: persist, send, then apply what committed. */
static void handle_ready(struct kq_group *g)
{
	const struct kq_host *host = g->mod->host;
	struct kq__raft_ready rd;
	struct kq__raft_entry *apply = NULL;
	size_t n_apply = 0;
	int rv;

	kq__raft_ready(g->r, &rd);
	if (rd.hs_changed) {
		struct kq_hard_state hs = {rd.hs.term, rd.hs.vote};

		rv = logs(g)->save_hard_state(g->log, &hs);
		if (rv != 0)
			fail_group(g, rv, "saving term and vote");
	}
	if (!g->failed && rd.snapshot) {
		/* A retention point: the log restarts after it.  State
		 * machine snapshots are not produced by this broker yet. */
		if (rd.snapshot->data)
			host->log(host, KQ_LOG_ERROR,
				  "group %s: a state snapshot arrived, "
				  "which this version cannot install",
				  g->name);
		rv = logs(g)->reset(g->log, rd.snapshot->index + 1);
		if (rv != 0)
			fail_group(g, rv, "log reset");
		g->written_end = rd.snapshot->index + 1;
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
	for (size_t i = 0; i < n_apply; i++) {
		struct kq_record rec;

		if (!(apply[i].flags & KQ__RAFT_ENTRY_CONTROL) &&
		    apply[i].index > g->replayed && !g->closed) {
			decode(&apply[i], &rec);
			g->apply(g->apply_ctx, &rec);
		}
		kq__raft_buf_unref(apply[i].data);
	}
	free(apply);
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
	free(g->name);
	free(g);
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
	if (g->closed)
		group_free(g);
}

void kq__raft_group_tick(struct kq_group *g)
{
	int rv;

	if (g->failed)
		return;
	rv = kq__raft_tick(g->r);
	if (rv != 0)
		fail_group(g, rv, "raft tick");
	run(g);
}

void kq__raft_group_step(struct kq_group *g, const struct kq__raft_msg *m)
{
	int rv;

	if (g->failed)
		return;
	rv = kq__raft_step(g->r, m);
	if (rv != 0)
		fail_group(g, rv, "raft step");
	run(g);
}

/* ------------------------------------------------------------ opening */

struct loader {
	struct kq__raft_entry *e;
	size_t n, cap;
	uint64_t expect; /* the offset the next record must have */
	int error;
};

static int load_one(void *ctx, const struct kq_record *rec)
{
	struct loader *ld = ctx;
	struct kq__raft_entry *e;

	if (rec->offset != ld->expect) {
		ld->error = KQ_ECORRUPT;
		return 1;
	}
	if (ld->n == ld->cap) {
		size_t cap = ld->cap ? ld->cap * 2 : 256;

		e = realloc(ld->e, cap * sizeof(*e));
		if (!e) {
			ld->error = -ENOMEM;
			return 1;
		}
		ld->e = e;
		ld->cap = cap;
	}
	e = &ld->e[ld->n];
	memset(e, 0, sizeof(*e));
	e->index = rec->offset;
	e->term = rec->term;
	e->flags = rec->flags & KQ__RAFT_ENTRY_CONTROL;
	ld->error = encode(rec, &e->data, &e->len);
	if (ld->error)
		return 1;
	ld->n++;
	ld->expect++;
	return 0;
}

static void loader_free(struct loader *ld)
{
	for (size_t i = 0; i < ld->n; i++)
		free(ld->e[i].data);
	free(ld->e);
}

/* Reads the stored log into ld: record offset = Raft index. */
static int load_log(struct kq_group *g, struct loader *ld,
		    struct kq__raft_snapshot *snap, uint64_t hs_term)
{
	const struct kq_log_api *la = logs(g);
	uint64_t first = la->first_offset(g->log);
	uint64_t end = la->next_offset(g->log), from, next;
	int rv;

	/* Raft indexes start at 1; what lies before the first stored
	 * record is committed (a retention point or a reset). */
	snap->index = first ? first - 1 : 0;
	snap->term = 0;
	snap->data = NULL;
	snap->len = 0;
	ld->expect = snap->index + 1;
	from = first;
	while (from < end) {
		rv = la->read(g->log, from, end, 4 << 20, load_one, ld, &next);
		if (ld->error) {
			if (ld->error == KQ_ECORRUPT)
				g->mod->host->log(
					g->mod->host, KQ_LOG_ERROR,
					"group %s: the log does not hold "
					"offset %" PRIu64 " (a gap, or a log "
					"written by another consensus module)",
					g->name, ld->expect);
			return ld->error;
		}
		if (rv < 0)
			return rv;
		if (next <= from)
			break;
		from = next;
	}
	/* The term at the snapshot point is not stored: the first entry's
	 * term (or the current term) stands in for it. */
	if (snap->index)
		snap->term = ld->n ? ld->e[0].term : hs_term;
	return 0;
}

static uint64_t seed_for(struct kq_group *g)
{
	return uv_hrtime() ^ ((uint64_t)getpid() << 20) ^
	       (g->id * 0x9e3779b97f4a7c15ull);
}

int kq__raft_group_open(void *state, const struct kq_group_config *cfg,
			struct kq_group **out)
{
	struct kq__raft_module *mod = state;
	const struct kq_host *host = mod->host;
	struct kq__raft_config rc;
	struct kq_hard_state hs = {0, 0};
	struct loader ld;
	struct kq_group *g;
	uint64_t *voters;
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
	memset(&ld, 0, sizeof(ld));
	if (!g || !voters || !(g->name = strdup(cfg->name))) {
		free(g);
		free(voters);
		return -ENOMEM;
	}
	g->mod = mod;
	g->id = cfg->id;
	g->log = cfg->log;
	g->apply = cfg->apply;
	g->apply_ctx = cfg->apply_ctx;
	g->pend_tail = &g->pend;
	memset(&rc, 0, sizeof(rc));
	rv = host->logs->load_hard_state(cfg->log, &hs);
	if (rv == 0)
		rv = load_log(g, &ld, &rc.snap, hs.term);
	if (rv != 0) {
		host->log(host, KQ_LOG_ERROR, "group %s: cannot recover: %s",
			  cfg->name, kq_strerror(rv));
		goto fail;
	}
	for (size_t i = 0; i < cfg->nreplicas; i++)
		voters[i] = (uint64_t)cfg->replicas[i];
	rc.id = (uint64_t)host->broker_id;
	rc.voters = voters;
	rc.n_voters = cfg->nreplicas;
	rc.election_ticks = mod->election_ticks;
	rc.heartbeat_ticks = mod->heartbeat_ticks;
	rc.seed = seed_for(g);
	rc.pre_vote = mod->pre_vote;
	rc.check_quorum = mod->check_quorum;
	rc.max_msg_bytes = 1u << 20;
	rc.max_inflight_bytes = 8u << 20;
	rc.max_inflight_msgs = 64;
	rc.hs.term = hs.term;
	rc.hs.vote = hs.vote;
	rc.entries = ld.e;
	rc.n_entries = ld.n;
	g->r = kq__raft_new(&rc);
	g->written_end = host->logs->next_offset(cfg->log);
	/* A lone replica's stored entries are all committed (or will be by
	 * its next no-op, with nobody to overwrite them): replay them now,
	 * as `local` does, so the state is whole when open returns. */
	if (g->r && cfg->nreplicas == 1 && g->apply) {
		for (size_t i = 0; i < ld.n; i++) {
			struct kq_record rec;

			if (ld.e[i].flags & KQ__RAFT_ENTRY_CONTROL)
				continue;
			decode(&ld.e[i], &rec);
			g->apply(g->apply_ctx, &rec);
		}
		g->replayed = ld.n ? ld.e[ld.n - 1].index : 0;
	}
	loader_free(&ld);
	memset(&ld, 0, sizeof(ld));
	if (!g->r) {
		host->log(host, KQ_LOG_ERROR,
			  "group %s: cannot start Raft (is broker %d one of "
			  "its %zu replicas?)",
			  cfg->name, host->broker_id, cfg->nreplicas);
		rv = KQ_ECONFIG;
		goto fail;
	}
	free(voters);
	voters = NULL;
	rv = kq__raft_module_add(mod, g, g->id);
	if (rv != 0)
		goto fail;
	/* Alone, it need not wait for an election timeout to lead. */
	if (cfg->nreplicas == 1)
		for (unsigned i = 0; i < 2 * mod->election_ticks &&
				     kq__raft_role(g->r) != KQ__RAFT_LEADER;
		     i++)
			kq__raft_group_tick(g);
	run(g);
	*out = g;
	return 0;
fail:
	loader_free(&ld);
	free(voters);
	kq__raft_free(g->r);
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
	struct timespec ts;
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
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	for (size_t i = 0; i < n && rv == 0; i++) {
		struct kq_record rec = recs[i];

		if (!rec.timestamp_ms)
			rec.timestamp_ms = now;
		e[i].flags = rec.flags & KQ__RAFT_ENTRY_CONTROL;
		rv = encode(&rec, &e[i].data, &e[i].len);
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
