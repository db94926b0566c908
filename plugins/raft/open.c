/* Opening a group: its hard state and snapshot point checked against
 * the stored log, an interrupted install repaired, the term index built,
 * a lone replica's records replayed, then the core started. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* Whether a range of offsets lost to damage ends right after `point`:
 * the point a lone replica recorded above them (see restart_after_lost),
 * which the log continues though it holds no entry there. */
static int lost_ends_at(struct kq_group *g, uint64_t point)
{
	const struct kq_offset_range *lost;
	int n = kq__raft_store(g)->lost(g->store, &lost);

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
	const struct kq_store_api *la = kq__raft_store(g);
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
	const struct kq_store_api *la = kq__raft_store(g);
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
	const struct kq_store_api *la = kq__raft_store(g);
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
		rv = kq__raft_store(g)->read(g->store, rp.expect, end, 1u << 20,
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

/* Ticks before a new partition's first replica campaigns. */
#define FIRST_CAMPAIGN_TICKS 2

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
		rv = kq__raft_terms_push(g, snap.index, snap.term);
	last_term = snap.term;
	if (rv == 0 && end > snap.index + 1) {
		uint64_t t0;

		rv = host->store->term_at(cfg->store, snap.index + 1, &t0);
		if (rv == 0)
			rv = host->store->term_at(cfg->store, end - 1,
						  &last_term);
		if (rv == 0)
			rv = kq__raft_terms_push(g, snap.index + 1, t0);
		if (rv == 0)
			rv = kq__raft_terms_scan(g, snap.index + 1, t0, end - 1,
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
	/* A new partition's first replica campaigns after two ticks, the
	 * others after ten to twenty: it is elected once, instead of
	 * someone else first and then it by a hand-over (two elections,
	 * each a durable save on every replica, and a leader change for
	 * the first publishers to meet).  Only timing: any may still win. */
	if (g->preferred == host->broker_id && hs.term == 0 &&
	    snap.index == 0 && end <= 1)
		rc.first_election_ticks = FIRST_CAMPAIGN_TICKS;
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
	g->hs_durable = rc.hs;
	/* The core keeps a copy of the state, for followers that need
	 * what it covers. */
	rc.snap = snap;
	rc.snap.data = data;
	rc.snap.len = (uint32_t)len;
	rc.last_index = end > snap.index + 1 ? end - 1 : snap.index;
	rc.last_term = last_term;
	rc.read = kq__raft_hook_read;
	rc.term_at = kq__raft_hook_term_at;
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
	kq__raft_group_run(g);
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
