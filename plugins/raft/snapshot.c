/* Snapshots of a group: the leader's installed here, a state machine's
 * own taken every snapshot_every entries, and retention points of a
 * message log; each durable before anything it covers is dropped. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* Installs the leader's snapshot, or a log group's restart point
 * (data NULL), durably: the snapshot file, then the log restarts after
 * it.  A crash in between leaves a log the next open resets (see
 * open_point).  The state itself is restored by the caller once the
 * ready is done, so that restore may call back into the module. */
int kq__raft_snap_install(struct kq_group *g, const struct kq__raft_snapshot *s,
			  const char **what)
{
	const struct kq_host *host = g->mod->host;
	int rv;

	if (s->data && !g->restore) {
		*what = "installing a state snapshot in a message log";
		return KQ_EINTERNAL;
	}
	if (!s->data && g->restore) {
		*what = "installing a log restart point in a state machine";
		return KQ_EINTERNAL;
	}
	rv = kq__raft_store(g)->save_snapshot(g->store, s->index, s->term,
					      s->data, s->len);
	if (rv != 0) {
		*what = "saving the leader's snapshot";
		return rv;
	}
	rv = kq__raft_store(g)->reset(g->store, s->index + 1);
	if (rv != 0) {
		*what = "log reset";
		return rv;
	}
	kq__raft_terms_reset(g, s->index, s->term);
	g->written_end = s->index + 1;
	g->applied = g->snap_index = s->index;
	host->log(host, g->id == 0 ? KQ_LOG_INFO : KQ_LOG_DEBUG,
		  "group %s: %s at %" PRIu64 " (term %" PRIu64
		  ") from the leader",
		  g->name, s->data ? "installed a snapshot" : "log restarts",
		  s->index, s->term);
	return 0;
}

/* Takes a snapshot of a state-machine group once snapshot_every entries
 * were applied since the last one, then compacts the core and the log:
 * the file is durable before anything it covers is dropped. */
void kq__raft_snap_maybe(struct kq_group *g)
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
		rv = kq__raft_store(g)->save_snapshot(g->store, index, term,
						      data, len);
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
	kq__raft_terms_prune(g, index);
	rv = kq__raft_store(g)->compact(g->store, index + 1);
	if (rv < 0)
		host->log(host, KQ_LOG_WARN, "group %s: compaction failed: %s",
			  g->name, kq_strerror(rv));
	host->log(host, KQ_LOG_DEBUG,
		  "group %s: snapshot at %" PRIu64 " (term %" PRIu64 ")",
		  g->name, index, term);
}

int kq__raft_snap_retain(struct kq_group *g, uint64_t before,
			 const char **failed)
{
	const struct kq_host *host = g->mod->host;
	uint64_t limit, point, term;
	int rv;

	*failed = NULL;
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
		rv = kq__raft_terms_lookup(g, point, &term);
		if (rv == 0)
			rv = kq__raft_store(g)->save_snapshot(g->store, point,
							      term, NULL, 0);
		if (rv == 0)
			rv = kq__raft_compact(g->r, point, NULL, 0);
		if (rv != 0) {
			*failed = "recording the retention point";
			return rv;
		}
		kq__raft_terms_prune(g, point);
		g->snap_index = point;
		host->log(host, KQ_LOG_DEBUG,
			  "group %s: retention point %" PRIu64 " (term %" PRIu64
			  ")",
			  g->name, point, term);
	}
	point = kq__raft_first_index(g->r) - 1;
	return kq__raft_store(g)->compact(
		g->store, point + 1 < before ? point + 1 : before);
}
