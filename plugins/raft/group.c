/* The group adapter: one Raft core per replicated log, driven through the
 * ready loop in the order raft.h prescribes (hard state, snapshot,
 * entries written and synced through the broker's store, messages out
 * through the cluster port, then what committed applied), proposals
 * settled, peers' messages and close.  Opening is in open.c, ticks and
 * hand-overs in tick.c, snapshots in snapshot.c, the entry codec, term
 * index and the core's storage hooks in entry.c, terms.c and hooks.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/clock.h>
#include <kafkaesque/list.h>

#include "module.h"

/* A sync requested for one ready's entries, for a staged hard state
 * (has_hs), or to make the log durable before one can be staged
 * (settle). */
struct kq__raft_sync {
	struct kq_sync_req req;
	struct kq_group *g; /* NULL once the group closed */
	uint64_t persist_id;
	bool has_hs, settle;
	struct kq__raft_hard_state hs;
	struct kq__raft_sync *prev, *next;
};

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

	/* Like every message, it carries only a durable term (a leader's
	 * is: its votes were asked for after it was saved). */
	if (kq__raft_role(g->r) != KQ__RAFT_LEADER || !mod->cluster ||
	    m.term != g->hs_durable.term)
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

void kq__raft_group_fail(struct kq_group *g, int rv, const char *what)
{
	if (g->failed)
		return;
	g->failed = rv;
	resign(g);
	/* Reopened by the core, as a log that failed is: a cause of the
	 * group's own (memory, a check) may be gone by then. */
	kq__raft_store(g)->group_stopped(g->store, rv);
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
		if (s->has_hs || s->settle)
			g->hs_saving = false;
		if (status != 0)
			kq__raft_group_fail(g, status,
					    s->has_hs || s->settle
						    ? "saving term and vote"
						    : "log sync");
		else if (s->has_hs)
			g->hs_durable = s->hs;
		else if (s->persist_id > g->persist_upto)
			g->persist_upto = s->persist_id;
	}
	free(s);
	if (g)
		kq__raft_group_run(g);
}

/* Asks for a sync of the group's log, s (allocated) to be told of its
 * end; s is freed here when the request fails. */
static int request_sync(struct kq_group *g, struct kq__raft_sync *s)
{
	int rv;

	s->g = g;
	s->req.data = s;
	KQ_LIST_PUSH(g->syncs, s);
	rv = kq__raft_store(g)->sync(g->store, &s->req, on_synced);
	if (rv != 0) {
		KQ_LIST_REMOVE(g->syncs, s);
		free(s);
	}
	return rv;
}

static int write_entries(struct kq_group *g, const struct kq__raft_ready *rd)
{
	const struct kq_store_api *la = kq__raft_store(g);
	struct kq_record *recs;
	struct kq__raft_sync *s;
	int rv;

	if (la->next_offset(g->store) > rd->entries[0].index) {
		rv = la->truncate(g->store, rd->entries[0].index);
		if (rv != 0)
			return rv;
	}
	kq__raft_terms_truncate(g, rd->entries[0].index);
	for (size_t i = 0; i < rd->n_entries; i++) {
		rv = kq__raft_terms_push(g, rd->entries[i].index,
					 rd->entries[i].term);
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
		kq__raft_entry_decode(&rd->entries[i], &recs[i]);
	rv = la->append(g->store, recs, rd->n_entries);
	free(recs);
	if (rv != 0) {
		free(s);
		return rv;
	}
	g->written_end = rd->entries[rd->n_entries - 1].index + 1;
	s->persist_id = rd->persist_id;
	return request_sync(g, s);
}

/* Whether the core's term and vote are durable, so that its next ready
 * may be taken.  If not, they are staged and synced with the log (many
 * groups' in one flush, off the loop: an election of thousands of
 * groups would otherwise wait for thousands of fsyncs on it), and the
 * sync's end runs the group again. */
static bool hs_durable(struct kq_group *g)
{
	struct kq__raft_hard_state hs = {kq__raft_term(g->r),
					 kq__raft_vote(g->r)};
	struct kq_hard_state st = {hs.term, hs.vote};
	struct kq__raft_sync *s;
	int rv;

	if (hs.term == g->hs_durable.term && hs.vote == g->hs_durable.vote)
		return true;
	if (g->hs_saving)
		return false;
	s = calloc(1, sizeof(*s));
	if (!s) {
		kq__raft_group_fail(g, -ENOMEM, "saving term and vote");
		return false;
	}
	rv = kq__raft_store(g)->stage_hard_state(g->store, &st);
	if (rv == KQ_EBUSY) {
		/* A new log, not durable yet: synced first, then staged. */
		s->settle = true;
		rv = request_sync(g, s);
	} else if (rv != 0) {
		free(s);
	} else {
		s->has_hs = true;
		s->hs = hs;
		rv = request_sync(g, s);
	}
	if (rv != 0)
		kq__raft_group_fail(g, rv, "saving term and vote");
	else
		g->hs_saving = true;
	return false;
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
	/* Made durable before the ready was taken (hs_durable). */
	if (rd.hs_changed && (rd.hs.term != g->hs_durable.term ||
			      rd.hs.vote != g->hs_durable.vote))
		kq__raft_group_fail(g, KQ_EINTERNAL, "saving term and vote");
	if (!g->failed && rd.snapshot) {
		const char *what = "";

		rv = kq__raft_snap_install(g, rd.snapshot, &what);
		if (rv != 0)
			kq__raft_group_fail(g, rv, what);
		if (!g->failed && rd.snapshot->data) {
			restore = *rd.snapshot;
			kq__raft_buf_ref(restore.data);
		}
	}
	if (!g->failed && rd.n_entries) {
		rv = write_entries(g, &rd);
		if (rv != 0)
			kq__raft_group_fail(g, rv, "log write");
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
			kq__raft_group_fail(g, -ENOMEM, "apply");
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
				kq__raft_group_fail(
					g, rv,
					"restoring the leader's snapshot");
		}
		kq__raft_buf_unref(restore.data);
	}
	for (size_t i = 0; i < n_apply; i++) {
		struct kq_record rec;

		if (!(apply[i].flags & KQ__RAFT_ENTRY_CONTROL) &&
		    apply[i].index > g->replayed && !g->closed) {
			kq__raft_entry_decode(&apply[i], &rec);
			g->apply(g->apply_ctx, &rec);
		}
		if (apply[i].index > g->applied)
			g->applied = apply[i].index;
		kq__raft_buf_unref(apply[i].data);
	}
	free(apply);
	if (n_apply)
		kq__raft_snap_maybe(g);
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
	bool flushed = false;

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
		if (status == 0 && !flushed && g->mod->cluster) {
			/* The commit goes to the followers before its client
			 * hears of it, so that the client's next command to
			 * one of them finds it applied there. */
			kq__cluster_flush(g->mod->cluster);
			flushed = true;
		}
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
void kq__raft_group_run(struct kq_group *g)
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
		while (!g->failed && !g->closed && kq__raft_has_ready(g->r) &&
		       hs_durable(g))
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
		kq__raft_group_fail(g, rv, "raft step");
	else if (kq__raft_refused(g->r) != refused)
		note_refused(g, ++g->refused, m);
	kq__raft_group_run(g);
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
		rv = kq__raft_entry_encode(&rec, true, &e[i].data, &e[i].len);
	}
	/* The encoded payloads go to the core as they are, not copied. */
	if (rv == 0)
		rv = kq__raft_propose_bufs(g->r, e, n, &first);
	for (size_t i = 0; i < n; i++)
		kq__raft_buf_unref(e[i].data);
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
	kq__raft_group_run(g);
	return 0;
}

int kq__raft_group_retain(struct kq_group *g, uint64_t before)
{
	const char *failed = NULL;
	int rv = kq__raft_snap_retain(g, before, &failed);

	if (failed)
		kq__raft_group_fail(g, rv, failed);
	return rv;
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
