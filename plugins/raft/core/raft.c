/* The Raft core: roles, elections, the step function and the ready. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/error.h>

#include "raft_int.h"

/* splitmix64: small, seedable, good enough for election jitter. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* The error that stopped the core, a failed storage hook included. */
static int status(struct kq__raft *r)
{
	if (!r->fatal && r->log.error)
		r->fatal = r->log.error;
	return r->fatal;
}

static void reset_timeout(struct kq__raft *r)
{
	r->rand_timeout =
		r->election_ticks + rng_next(&r->rng) % r->election_ticks;
}

/* What every role change does, a pre-candidacy's included: no leader is
 * known, the election timer starts afresh and no vote is counted. */
static void restart_election(struct kq__raft *r)
{
	r->lead = KQ__RAFT_NONE;
	r->quiet = false;
	r->election_elapsed = 0;
	reset_timeout(r);
	for (size_t i = 0; i < r->n_prs; i++)
		r->prs[i].vote = 0;
}

/* Common part of every role change but a pre-candidacy.  A new term
 * forgets the vote. */
static void reset(struct kq__raft *r, uint64_t term)
{
	uint64_t next = kq__raft_log_last(&r->log) + 1;

	if (term != r->term) {
		r->term = term;
		r->vote = KQ__RAFT_NONE;
	}
	restart_election(r);
	r->transferee = KQ__RAFT_NONE;
	r->heartbeat_elapsed = 0;
	r->verified = 0;
	r->acked = 0;
	for (size_t i = 0; i < r->n_prs; i++)
		kq__raft_pr_reset(&r->prs[i], next);
}

void kq__raft_become_follower(struct kq__raft *r, uint64_t term, uint64_t lead)
{
	reset(r, term);
	r->role = KQ__RAFT_FOLLOWER;
	r->lead = lead;
}

static void become_pre_candidate(struct kq__raft *r)
{
	/* Neither the term nor the vote change: a node that cannot win
	 * never disturbs the others. */
	r->role = KQ__RAFT_PRE_CANDIDATE;
	restart_election(r);
}

static void become_candidate(struct kq__raft *r)
{
	reset(r, r->term + 1);
	r->role = KQ__RAFT_CANDIDATE;
	r->vote = r->id;
}

static void become_leader(struct kq__raft *r)
{
	struct kq__raft_entry noop = {.flags = KQ__RAFT_ENTRY_CONTROL};
	uint64_t first;

	reset(r, r->term);
	r->role = KQ__RAFT_LEADER;
	r->lead = r->id;
	r->vote = r->id;
	for (size_t i = 0; i < r->n_prs; i++)
		r->prs[i].recent_active = true;
	/* An entry of the new term lets earlier ones commit. */
	kq__raft_propose(r, &noop, 1, &first);
}

/* Records a vote and tells whether the election is won (1), lost (-1) or
 * still open (0). */
static int poll(struct kq__raft *r, uint64_t id, bool granted)
{
	struct kq__raft_progress *p = kq__raft_pr(r, id);
	size_t yes = 0, no = 0;

	if (p && p->vote == 0)
		p->vote = granted ? 1 : -1;
	for (size_t i = 0; i < r->n_prs; i++) {
		yes += r->prs[i].vote > 0;
		no += r->prs[i].vote < 0;
	}
	if (yes >= kq__raft_quorum(r))
		return 1;
	if (no >= kq__raft_quorum(r))
		return -1;
	return 0;
}

/* transfer: asked by the leader (TIMEOUT_NOW); its VOTEs say so. */
static void campaign(struct kq__raft *r, bool pre, bool transfer)
{
	enum kq__raft_msg_type type;
	uint64_t term;

	if (r->term >= KQ__RAFT_MAX_TERM)
		return; /* no later term to take */

	if (pre) {
		become_pre_candidate(r);
		type = KQ__RAFT_MSG_PREVOTE;
		term = r->term + 1;
	} else {
		become_candidate(r);
		type = KQ__RAFT_MSG_VOTE;
		term = r->term;
	}
	if (poll(r, r->id, true) == 1) {
		if (pre)
			campaign(r, false, false);
		else
			become_leader(r);
		return;
	}
	for (size_t i = 0; i < r->n_prs; i++) {
		struct kq__raft_msg m = {
			.type = type,
			.to = r->prs[i].id,
			.term = term,
			.index = kq__raft_log_last(&r->log),
			.log_term = kq__raft_log_last_term(&r->log),
			.hint = transfer && !pre,
		};

		if (m.to != r->id)
			kq__raft_send(r, &m);
	}
}

static bool quorum_active(struct kq__raft *r)
{
	size_t active = 0;

	for (size_t i = 0; i < r->n_prs; i++) {
		if (r->prs[i].id == r->id || r->prs[i].recent_active)
			active++;
		r->prs[i].recent_active = false;
	}
	return active >= kq__raft_quorum(r);
}

/* A leader may sleep once nothing is left to send: every entry is
 * committed and durable here, every follower holds them all, and the
 * heartbeat about to go tells them the commit. */
static bool may_sleep(struct kq__raft *r)
{
	uint64_t last = kq__raft_log_last(&r->log);

	if (!r->quiesce || r->transferee != KQ__RAFT_NONE ||
	    r->commit != last || r->persisted < last || r->n_writes ||
	    r->snap_pending)
		return false;
	for (size_t i = 0; i < r->n_prs; i++) {
		const struct kq__raft_progress *p = &r->prs[i];

		if (p->id != r->id &&
		    (p->match != last || p->state != KQ__RAFT_PR_REPLICATE ||
		     !p->recent_active))
			return false;
	}
	return true;
}

bool kq__raft_quiet(const struct kq__raft *r)
{
	return r->quiet;
}

bool kq__raft_campaign_due(const struct kq__raft *r)
{
	return !r->quiet && r->role == KQ__RAFT_FOLLOWER &&
	       kq__raft_pr((struct kq__raft *)r, r->id) &&
	       r->election_elapsed + 1 >= r->rand_timeout;
}

void kq__raft_wake(struct kq__raft *r)
{
	if (!r->quiet)
		return;
	r->quiet = false;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	/* A woken leader's check-quorum counts only answers from now on. */
	for (size_t i = 0; r->role == KQ__RAFT_LEADER && i < r->n_prs; i++)
		r->prs[i].recent_active = false;
}

int kq__raft_tick(struct kq__raft *r)
{
	if (r->in_ready)
		return KQ_EINTERNAL;
	if (r->quiet)
		return status(r);
	if (r->role != KQ__RAFT_LEADER) {
		r->election_elapsed++;
		if (kq__raft_pr(r, r->id) &&
		    r->election_elapsed >= r->rand_timeout) {
			r->election_elapsed = 0;
			campaign(r, r->pre_vote, false);
		}
		return status(r);
	}
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	/* A hand-over that did not happen within an election timeout is
	 * given up: proposals are taken again. */
	if (r->transferee != KQ__RAFT_NONE &&
	    ++r->transfer_elapsed >= r->election_ticks)
		r->transferee = KQ__RAFT_NONE;
	if (r->election_elapsed >= r->election_ticks) {
		r->election_elapsed = 0;
		/* A leader that cannot hear a majority steps down so that
		 * clients look for the real one. */
		if (r->check_quorum && !quorum_active(r)) {
			kq__raft_become_follower(r, r->term, KQ__RAFT_NONE);
			return status(r);
		}
	}
	for (size_t i = 0; i < r->n_prs; i++) {
		struct kq__raft_progress *p = &r->prs[i];

		/* A lost snapshot is sent again after a while. */
		if (p->state == KQ__RAFT_PR_SNAPSHOT &&
		    ++p->state_ticks >= r->election_ticks) {
			kq__raft_pr_become_probe(p);
			kq__raft_send_append(r, p, true);
		}
	}
	if (r->heartbeat_elapsed >= r->heartbeat_ticks) {
		bool quiet = may_sleep(r);

		r->heartbeat_elapsed = 0;
		kq__raft_bcast_heartbeat(r, quiet);
		r->quiet = quiet;
	}
	return status(r);
}

static bool log_up_to_date(struct kq__raft *r, uint64_t index, uint64_t term)
{
	uint64_t lt = kq__raft_log_last_term(&r->log);

	return term > lt || (term == lt && index >= kq__raft_log_last(&r->log));
}

static void handle_vote(struct kq__raft *r, const struct kq__raft_msg *m)
{
	bool pre = m->type == KQ__RAFT_MSG_PREVOTE;
	bool can = r->vote == m->from ||
		   (r->vote == KQ__RAFT_NONE && r->lead == KQ__RAFT_NONE) ||
		   (pre && m->term > r->term);
	struct kq__raft_msg resp = {
		.type = pre ? KQ__RAFT_MSG_PREVOTE_RESP
			    : KQ__RAFT_MSG_VOTE_RESP,
		.to = m->from,
	};

	if (can && log_up_to_date(r, m->index, m->log_term)) {
		resp.term = m->term;
		if (!pre) {
			r->election_elapsed = 0;
			r->vote = m->from;
		}
	} else {
		resp.term = r->term;
		resp.reject = true;
	}
	kq__raft_send(r, &resp);
}

static void step_leader(struct kq__raft *r, const struct kq__raft_msg *m)
{
	switch (m->type) {
	case KQ__RAFT_MSG_APPEND_RESP: kq__raft_handle_append_resp(r, m); break;
	case KQ__RAFT_MSG_HEARTBEAT_RESP:
		kq__raft_handle_heartbeat_resp(r, m);
		break;
	default: break;
	}
}

/* APPEND, HEARTBEAT or SNAPSHOT, from the leader this replica follows. */
static void handle_from_leader(struct kq__raft *r, const struct kq__raft_msg *m)
{
	if (m->type == KQ__RAFT_MSG_APPEND)
		kq__raft_handle_append(r, m);
	else if (m->type == KQ__RAFT_MSG_HEARTBEAT)
		kq__raft_handle_heartbeat(r, m);
	else
		kq__raft_handle_snapshot(r, m);
}

static void step_candidate(struct kq__raft *r, const struct kq__raft_msg *m)
{
	bool pre = r->role == KQ__RAFT_PRE_CANDIDATE;
	int res;

	switch (m->type) {
	case KQ__RAFT_MSG_APPEND:
	case KQ__RAFT_MSG_HEARTBEAT:
	case KQ__RAFT_MSG_SNAPSHOT:
		/* Someone won this term. */
		kq__raft_become_follower(r, m->term, m->from);
		handle_from_leader(r, m);
		return;
	case KQ__RAFT_MSG_VOTE_RESP:
		if (pre)
			return;
		break;
	case KQ__RAFT_MSG_PREVOTE_RESP:
		/* A grant carries the term asked for. */
		if (!pre || (!m->reject && m->term != r->term + 1))
			return;
		break;
	default: return;
	}
	res = poll(r, m->from, !m->reject);
	if (res == 1) {
		if (pre)
			campaign(r, false, false);
		else
			become_leader(r);
	} else if (res == -1) {
		kq__raft_become_follower(r, r->term, KQ__RAFT_NONE);
	}
}

static void step_follower(struct kq__raft *r, const struct kq__raft_msg *m)
{
	switch (m->type) {
	case KQ__RAFT_MSG_APPEND:
	case KQ__RAFT_MSG_HEARTBEAT:
	case KQ__RAFT_MSG_SNAPSHOT:
		r->election_elapsed = 0;
		r->lead = m->from;
		handle_from_leader(r, m);
		break;
	case KQ__RAFT_MSG_TIMEOUT_NOW:
		/* Only from the leader of this term, to a voter. */
		if (m->from == r->lead && kq__raft_pr(r, r->id) &&
		    m->term == r->term)
			campaign(r, false, true);
		break;
	default: break;
	}
}

/* Why a call only a leader makes cannot run now; 0 when it can. */
static int leader_only(struct kq__raft *r)
{
	if (status(r))
		return r->fatal;
	if (r->in_ready)
		return KQ_EINTERNAL;
	if (r->role != KQ__RAFT_LEADER || r->transferee != KQ__RAFT_NONE)
		return KQ_EUNAVAILABLE;
	return 0;
}

int kq__raft_transfer(struct kq__raft *r, uint64_t to)
{
	struct kq__raft_progress *pr = kq__raft_pr(r, to);
	struct kq__raft_msg m = {
		.type = KQ__RAFT_MSG_TIMEOUT_NOW,
		.to = to,
	};

	int rv = leader_only(r);

	if (rv)
		return rv;
	if (!pr || to == r->id)
		return KQ_EBADARG;
	if (pr->match < kq__raft_log_last(&r->log))
		return KQ_EBUSY;
	kq__raft_wake(r);
	m.term = r->term;
	kq__raft_send(r, &m);
	r->transferee = to;
	r->transfer_elapsed = 0;
	return status(r);
}

int kq__raft_step(struct kq__raft *r, const struct kq__raft_msg *m)
{
	bool is_vote =
		m->type == KQ__RAFT_MSG_VOTE || m->type == KQ__RAFT_MSG_PREVOTE;
	bool from_leader = m->type == KQ__RAFT_MSG_APPEND ||
			   m->type == KQ__RAFT_MSG_HEARTBEAT ||
			   m->type == KQ__RAFT_MSG_SNAPSHOT;

	if (status(r))
		return r->fatal;
	if (r->in_ready)
		return KQ_EINTERNAL;
	if (!kq__raft_pr(r, m->from) || m->from == r->id)
		return 0;
	if (m->term > KQ__RAFT_MAX_TERM) {
		r->refused++;
		return 0;
	}
	/* Heartbeats and their answers keep a sleeping replica asleep (a
	 * follower's sleep follows its leader's); anything else is news. */
	if (m->type != KQ__RAFT_MSG_HEARTBEAT &&
	    m->type != KQ__RAFT_MSG_HEARTBEAT_RESP)
		kq__raft_wake(r);
	if (m->term > r->term) {
		/* Within the lease of a live leader, a campaign is ignored:
		 * a rejoining node cannot depose a healthy leader.  One the
		 * leader asked for (a transfer) goes through. */
		if (is_vote && r->check_quorum && r->lead != KQ__RAFT_NONE &&
		    r->election_elapsed < r->election_ticks &&
		    !(m->type == KQ__RAFT_MSG_VOTE && m->hint == 1))
			return 0;
		if (m->type == KQ__RAFT_MSG_PREVOTE ||
		    (m->type == KQ__RAFT_MSG_PREVOTE_RESP && !m->reject)) {
			/* Pre-votes never move terms. */
		} else {
			kq__raft_become_follower(r, m->term,
						 from_leader ? m->from
							     : KQ__RAFT_NONE);
		}
	} else if (m->term < r->term) {
		if ((r->check_quorum || r->pre_vote) && from_leader) {
			/* Tell a stale leader about the newer term. */
			struct kq__raft_msg resp = {
				.type = KQ__RAFT_MSG_APPEND_RESP,
				.to = m->from,
				.term = r->term,
			};

			kq__raft_send(r, &resp);
		} else if (m->type == KQ__RAFT_MSG_PREVOTE) {
			struct kq__raft_msg resp = {
				.type = KQ__RAFT_MSG_PREVOTE_RESP,
				.to = m->from,
				.term = r->term,
				.reject = true,
			};

			kq__raft_send(r, &resp);
		}
		return status(r);
	}
	if (is_vote) {
		handle_vote(r, m);
		return status(r);
	}
	switch (r->role) {
	case KQ__RAFT_LEADER: step_leader(r, m); break;
	case KQ__RAFT_CANDIDATE:
	case KQ__RAFT_PRE_CANDIDATE: step_candidate(r, m); break;
	case KQ__RAFT_FOLLOWER: step_follower(r, m); break;
	}
	return status(r);
}

static int propose(struct kq__raft *r, const struct kq__raft_entry *e, size_t n,
		   uint64_t *first, bool copy)
{
	uint64_t index = kq__raft_log_last(&r->log) + 1;
	int rv = leader_only(r);

	if (rv)
		return rv;
	kq__raft_wake(r);
	*first = index;
	for (size_t i = 0; i < n; i++) {
		struct kq__raft_entry c = {
			.index = index + i,
			.term = r->term,
			.flags = e[i].flags,
			.len = e[i].len,
			.data = e[i].data,
		};
		int rc;

		if (copy && e[i].data) {
			c.data = kq__raft_buf_copy(e[i].data, e[i].len);
			if (!c.data)
				return -ENOMEM;
		} else if (c.data) {
			kq__raft_buf_ref(c.data);
		}
		rc = kq__raft_log_append(&r->log, &c, 1);
		kq__raft_buf_unref(c.data);
		if (rc)
			return rc;
	}
	/* The whole batch goes out at once; it counts toward the commit only
	 * once the caller reports it durable here too. */
	kq__raft_bcast_append(r, false);
	return status(r);
}

int kq__raft_propose(struct kq__raft *r, const struct kq__raft_entry *e,
		     size_t n, uint64_t *first)
{
	return propose(r, e, n, first, true);
}

int kq__raft_propose_bufs(struct kq__raft *r, const struct kq__raft_entry *e,
			  size_t n, uint64_t *first)
{
	return propose(r, e, n, first, false);
}

void kq__raft_persisted(struct kq__raft *r, uint64_t id)
{
	uint64_t last = 0;
	size_t k = 0;

	while (k < r->n_writes && r->writes[k].id <= id) {
		if (r->writes[k].last > last)
			last = r->writes[k].last;
		k++;
	}
	if (!k)
		return;
	memmove(r->writes, r->writes + k,
		(r->n_writes - k) * sizeof(*r->writes));
	r->n_writes -= k;
	if (last <= r->persisted)
		return;
	r->persisted = last;
	/* Durable entries may now leave the cache. */
	kq__raft_log_evict(&r->log, r->persisted, r->cache_bytes);
	if (r->role == KQ__RAFT_LEADER) {
		if (kq__raft_maybe_commit(r))
			kq__raft_bcast_append(r, true);
	} else {
		kq__raft_follower_ack(r, false);
	}
}

int kq__raft_compact(struct kq__raft *r, uint64_t index, const void *data,
		     uint32_t len)
{
	void *copy;

	if (index <= r->log.snap.index)
		return 0;
	if (index > r->applied || index > r->persisted)
		return KQ_EBADARG;
	copy = kq__raft_buf_copy(data, len);
	if (data && !copy)
		return -ENOMEM;
	kq__raft_log_compact(&r->log, index, copy, len);
	kq__raft_buf_unref(copy);
	return status(r);
}

static void free_outbox(struct kq__raft *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kq__raft_msg_release(&r->out[i]);
	if (n < r->n_out)
		memmove(r->out, r->out + n, (r->n_out - n) * sizeof(*r->out));
	r->n_out -= n;
}

struct kq__raft *kq__raft_new(const struct kq__raft_config *c)
{
	struct kq__raft *r;
	bool self = false;
	uint64_t last =
		c->last_index ? c->last_index : c->snap.index + c->n_entries;

	for (size_t i = 0; i < c->n_voters; i++)
		self |= c->voters[i] == c->id;
	if (!self || c->id == KQ__RAFT_NONE || !c->election_ticks ||
	    !c->heartbeat_ticks || last < c->snap.index + c->n_entries)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->prs = calloc(c->n_voters, sizeof(*r->prs));
	if (!r->prs) {
		free(r);
		return NULL;
	}
	r->n_prs = c->n_voters;
	for (size_t i = 0; i < c->n_voters; i++)
		r->prs[i].id = c->voters[i];
	r->id = c->id;
	r->election_ticks = c->election_ticks;
	r->heartbeat_ticks = c->heartbeat_ticks;
	r->pre_vote = c->pre_vote;
	r->check_quorum = c->check_quorum;
	r->quiesce = c->quiesce;
	r->max_msg_bytes = c->max_msg_bytes;
	r->max_inflight_bytes = c->max_inflight_bytes;
	r->max_inflight_msgs = c->max_inflight_msgs ? c->max_inflight_msgs : 64;
	r->rng = c->seed ^ (c->id * 0x2545f4914f6cdd1dull);

	r->cache_bytes = c->cache_bytes;
	r->skip_apply = c->skip_apply;
	r->log.read = c->read;
	r->log.term_at = c->term_at;
	r->log.ctx = c->hook_ctx;
	r->log.snap = c->snap;
	r->log.snap.data = kq__raft_buf_copy(c->snap.data, c->snap.len);
	r->log.first = last - c->n_entries + 1;
	r->log.prev_term = c->snap.term;
	if (r->log.first - 1 > c->snap.index) {
		/* The stretch before the given entries stays in storage. */
		if (!c->read || !c->term_at)
			goto fail;
		if (!c->n_entries)
			r->log.prev_term = c->last_term;
		else if (c->term_at(c->hook_ctx, r->log.first - 1,
				    &r->log.prev_term))
			goto fail;
	}
	for (size_t i = 0; i < c->n_entries; i++) {
		struct kq__raft_entry e = c->entries[i];

		e.index = r->log.first + i;
		e.data = kq__raft_buf_copy(c->entries[i].data, e.len);
		if (kq__raft_log_append(&r->log, &e, 1)) {
			kq__raft_buf_unref(e.data);
			goto fail;
		}
		kq__raft_buf_unref(e.data);
	}
	r->term = c->hs.term;
	r->vote = c->hs.vote;
	r->hs_saved = c->hs;
	r->commit = r->applied = c->snap.index;
	r->persisted = kq__raft_log_last(&r->log);
	r->unstable = r->persisted + 1;
	r->next_write_id = 1;
	kq__raft_log_evict(&r->log, r->persisted, r->cache_bytes);
	/* Same term: the recovered vote is kept. */
	kq__raft_become_follower(r, r->term, KQ__RAFT_NONE);
	if (c->first_election_ticks)
		r->rand_timeout = c->first_election_ticks;
	return r;
fail:
	kq__raft_free(r);
	return NULL;
}

void kq__raft_free(struct kq__raft *r)
{
	if (!r)
		return;
	free_outbox(r, r->n_out);
	free(r->out);
	for (size_t i = 0; i < r->n_prs; i++)
		kq__raft_pr_fini(&r->prs[i]);
	free(r->prs);
	kq__raft_log_fini(&r->log);
	free(r->writes);
	free(r->rd_committed);
	free(r);
}

bool kq__raft_has_ready(const struct kq__raft *r)
{
	if (r->fatal || r->log.error)
		return false;
	return r->n_out || r->snap_pending || r->term != r->hs_saved.term ||
	       r->vote != r->hs_saved.vote ||
	       r->unstable <= kq__raft_log_last(&r->log) ||
	       r->applied < r->commit;
}

void kq__raft_ready(struct kq__raft *r, struct kq__raft_ready *rd)
{
	uint64_t last = kq__raft_log_last(&r->log);

	memset(rd, 0, sizeof(*rd));
	rd->hs = (struct kq__raft_hard_state){r->term, r->vote};
	rd->hs_changed =
		r->term != r->hs_saved.term || r->vote != r->hs_saved.vote;
	if (r->snap_pending)
		rd->snapshot = &r->log.snap;
	if (r->unstable <= last) {
		struct kq__raft_write *w;

		rd->entries = kq__raft_log_get(&r->log, r->unstable);
		rd->n_entries = last - r->unstable + 1;
		if (r->n_writes == r->cap_writes) {
			size_t cap = r->cap_writes ? r->cap_writes * 2 : 8;

			w = realloc(r->writes, cap * sizeof(*w));
			if (!w) {
				r->fatal = -ENOMEM;
				rd->entries = NULL;
				rd->n_entries = 0;
				goto skip;
			}
			r->writes = w;
			r->cap_writes = cap;
		}
		rd->persist_id = r->next_write_id++;
		r->writes[r->n_writes++] =
			(struct kq__raft_write){rd->persist_id, last};
	}
skip:
	r->rd_unstable = rd->n_entries ? last + 1 : r->unstable;
	rd->msgs = r->out;
	rd->n_msgs = r->n_out;
	r->rd_n_out = r->n_out;
	r->rd_applied = r->applied;
	if (r->applied < r->commit && r->skip_apply) {
		r->rd_applied = r->commit;
	} else if (r->applied < r->commit) {
		/* A copy, since appends may move the cache before the caller
		 * finishes with it; older entries come from storage, a
		 * message's worth at a time. */
		struct kq__raft_entry *a;
		size_t n;

		free(r->rd_committed);
		r->rd_committed = NULL;
		if (kq__raft_log_entries(&r->log, r->applied + 1, r->commit,
					 r->max_msg_bytes, &a, &n) == 0) {
			r->rd_committed = a;
			rd->committed = a;
			rd->n_committed = n;
			r->rd_applied = r->applied + n;
		} else {
			status(r);
		}
	}
	r->in_ready = true;
}

void kq__raft_advance(struct kq__raft *r, struct kq__raft_ready *rd)
{
	if (rd->hs_changed)
		r->hs_saved = rd->hs;
	if (rd->snapshot)
		r->snap_pending = false;
	r->unstable = r->rd_unstable;
	r->applied = r->rd_applied;
	for (size_t i = 0; i < rd->n_committed; i++)
		kq__raft_buf_unref(r->rd_committed[i].data);
	free_outbox(r, r->rd_n_out);
	r->in_ready = false;
	memset(rd, 0, sizeof(*rd));
}

/* The read-only views of raft.h: each returns one thing it knows. */
#define VIEW(type, name, value)                                                \
	type name(const struct kq__raft *r)                                    \
	{                                                                      \
		return value;                                                  \
	}

VIEW(enum kq__raft_role, kq__raft_role, r->role)
VIEW(uint64_t, kq__raft_term, r->term)
VIEW(uint64_t, kq__raft_vote, r->vote)
VIEW(uint64_t, kq__raft_leader, r->lead)
VIEW(uint64_t, kq__raft_commit, r->commit)
VIEW(uint64_t, kq__raft_last_index, kq__raft_log_last(&r->log))
VIEW(uint64_t, kq__raft_first_index, r->log.snap.index + 1)
VIEW(size_t, kq__raft_cached_bytes, r->log.bytes)
VIEW(uint64_t, kq__raft_persisted_index, r->persisted)
VIEW(uint64_t, kq__raft_applied, r->applied)
VIEW(uint64_t, kq__raft_refused, r->refused)

#undef VIEW

int kq__raft_term_at(struct kq__raft *r, uint64_t index, uint64_t *term)
{
	return kq__raft_log_term(&r->log, index, term);
}

const struct kq__raft_entry *kq__raft_entry_at(const struct kq__raft *r,
					       uint64_t index)
{
	return kq__raft_log_get(&r->log, index);
}
