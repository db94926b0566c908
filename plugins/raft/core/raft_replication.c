/* Log replication: APPEND, HEARTBEAT and SNAPSHOT on both ends, and the
 * leader's commit rule. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/error.h>

#include "raft_int.h"

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static void send_snapshot(struct kq__raft *r, struct kq__raft_progress *p)
{
	struct kq__raft_msg m = {
		.type = KQ__RAFT_MSG_SNAPSHOT,
		.to = p->id,
		.term = r->term,
		.commit = r->commit,
		.snap = r->log.snap,
	};

	kq__raft_buf_ref(m.snap.data);
	kq__raft_pr_become_snapshot(p, m.snap.index);
	kq__raft_send(r, &m);
}

bool kq__raft_send_append(struct kq__raft *r, struct kq__raft_progress *p,
			  bool send_empty)
{
	struct kq__raft_msg m = {
		.type = KQ__RAFT_MSG_APPEND,
		.to = p->id,
		.term = r->term,
		.commit = r->commit,
	};
	uint64_t last = kq__raft_log_last(&r->log);
	size_t n = 0, bytes = 0;

	if (kq__raft_pr_paused(p, r->max_inflight_bytes, r->max_inflight_msgs))
		return false;
	m.index = p->next - 1;
	if (m.index < r->log.snap.index) {
		/* The entries it needs are compacted (or retained away). */
		send_snapshot(r, p);
		return true;
	}
	if (p->next > last && !send_empty)
		return false;
	if (kq__raft_log_term(&r->log, m.index, &m.log_term))
		return false;
	if (p->next <= last) {
		/* A lagging follower's entries may come from storage. */
		if (kq__raft_log_entries(&r->log, p->next, last,
					 r->max_msg_bytes, &m.entries, &n)) {
			if (!r->log.error)
				r->fatal = -ENOMEM;
			return false;
		}
		m.n_entries = n;
		for (size_t i = 0; i < n; i++)
			bytes += m.entries[i].len + KQ__RAFT_ENTRY_OVERHEAD;
	}
	if (n && p->state == KQ__RAFT_PR_REPLICATE) {
		/* Optimistic: the next APPEND goes out without waiting. */
		p->next += n;
		if (kq__raft_pr_infl_add(p, p->next - 1, bytes,
					 r->max_inflight_msgs))
			r->fatal = -ENOMEM;
	} else if (p->state == KQ__RAFT_PR_PROBE) {
		p->probe_sent = true;
	}
	kq__raft_send(r, &m);
	return true;
}

void kq__raft_bcast_append(struct kq__raft *r, bool send_empty)
{
	for (size_t i = 0; i < r->n_prs; i++) {
		struct kq__raft_progress *p = &r->prs[i];
		bool sent = false;

		if (p->id == r->id)
			continue;
		if (p->state == KQ__RAFT_PR_REPLICATE) {
			while (kq__raft_send_append(r, p, false))
				sent = true;
		}
		if (!sent)
			kq__raft_send_append(r, p, send_empty);
	}
}

void kq__raft_bcast_heartbeat(struct kq__raft *r, bool quiet)
{
	for (size_t i = 0; i < r->n_prs; i++) {
		struct kq__raft_progress *p = &r->prs[i];
		/* Never more than the follower is known to hold. */
		struct kq__raft_msg m = {
			.type = KQ__RAFT_MSG_HEARTBEAT,
			.to = p->id,
			.term = r->term,
			.commit = min64(p->match, r->commit),
			.quiet = quiet,
		};

		if (p->id != r->id)
			kq__raft_send(r, &m);
	}
}

static int cmp_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

bool kq__raft_maybe_commit(struct kq__raft *r)
{
	uint64_t match[r->n_prs];
	uint64_t idx, t;

	for (size_t i = 0; i < r->n_prs; i++) {
		/* The leader's own entries count only once durable. */
		if (r->prs[i].id == r->id)
			r->prs[i].match = r->persisted;
		match[i] = r->prs[i].match;
	}
	qsort(match, r->n_prs, sizeof(match[0]), cmp_desc);
	idx = match[kq__raft_quorum(r) - 1];
	if (idx <= r->commit)
		return false;
	/* Only an entry of the current term is committed by counting;
	 * earlier ones follow from the log matching property. */
	if (kq__raft_log_term(&r->log, idx, &t) || t != r->term)
		return false;
	kq__raft_commit_to(r, idx);
	return true;
}

void kq__raft_commit_to(struct kq__raft *r, uint64_t index)
{
	index = min64(index, kq__raft_log_last(&r->log));
	if (index > r->commit)
		r->commit = index;
}

void kq__raft_truncate(struct kq__raft *r, uint64_t from)
{
	if (kq__raft_log_truncate(&r->log, from))
		return;
	if (r->unstable > from)
		r->unstable = from;
	if (r->persisted >= from)
		r->persisted = from - 1;
	if (r->verified >= from)
		r->verified = from - 1;
	if (r->acked >= from)
		r->acked = from - 1;
	for (size_t i = 0; i < r->n_writes; i++)
		if (r->writes[i].last >= from)
			r->writes[i].last = from - 1;
}

void kq__raft_follower_ack(struct kq__raft *r, bool force)
{
	uint64_t ack = min64(r->verified, r->persisted);
	struct kq__raft_msg m = {
		.type = KQ__RAFT_MSG_APPEND_RESP,
		.to = r->lead,
		.term = r->term,
		.index = ack,
	};

	if (r->lead == KQ__RAFT_NONE || r->role != KQ__RAFT_FOLLOWER)
		return;
	if (ack <= r->acked && !force)
		return;
	r->acked = max64(r->acked, ack);
	kq__raft_send(r, &m);
}

static void reject_append(struct kq__raft *r, const struct kq__raft_msg *m)
{
	uint64_t last = kq__raft_log_last(&r->log);
	struct kq__raft_msg resp = {
		.type = KQ__RAFT_MSG_APPEND_RESP,
		.to = m->from,
		.term = r->term,
		.index = m->index,
		.reject = true,
	};

	/* Hint: the last index whose term could still match the leader's,
	 * so the leader skips a whole term per round trip. */
	resp.hint = kq__raft_log_find_conflict(&r->log, min64(m->index, last),
					       m->log_term);
	if (kq__raft_log_term(&r->log, resp.hint, &resp.log_term))
		resp.log_term = 0;
	kq__raft_send(r, &resp);
}

void kq__raft_handle_append(struct kq__raft *r, const struct kq__raft_msg *m)
{
	uint64_t base = r->log.snap.index;
	uint64_t prev = m->index, prev_term = m->log_term;
	const struct kq__raft_entry *e = m->entries;
	size_t n = m->n_entries, i;
	uint64_t lastnew;

	/* Entries must follow `index` one by one, with terms that never
	 * decrease and never pass the message's: anything else did not
	 * come from a leader's log. */
	for (i = 0; i < n; i++)
		if (e[i].index != m->index + 1 + i || e[i].term > m->term ||
		    e[i].term < (i ? e[i - 1].term : m->log_term)) {
			r->refused++;
			return;
		}

	if (prev < base) {
		/* Entries up to the snapshot are committed, so they match. */
		size_t skip = base - prev;

		if (skip >= n) {
			r->verified = max64(r->verified, min64(prev + n, base));
			kq__raft_follower_ack(r, true);
			return;
		}
		prev = base;
		prev_term = e[skip - 1].term;
		e += skip;
		n -= skip;
		if (prev_term != r->log.snap.term) {
			/* Contradicts a committed entry: refused, and the
			 * log stays as it is. */
			r->refused++;
			return;
		}
	}
	if (!kq__raft_log_match(&r->log, prev, prev_term)) {
		reject_append(r, m);
		return;
	}
	lastnew = prev + n;
	/* By log matching, the entries held form a prefix of e: find its
	 * end with few term lookups (they may reach storage). */
	{
		size_t lo = 0, hi = n;

		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;

			if (kq__raft_log_match(&r->log, e[mid].index,
					       e[mid].term))
				lo = mid + 1;
			else
				hi = mid;
		}
		i = lo;
	}
	if (r->log.error)
		return;
	if (i < n) {
		uint64_t from = e[i].index;

		if (from <= r->commit) {
			/* A leader asks to replace a committed entry:
			 * refused, and the log stays as it is. */
			r->refused++;
			return;
		}
		kq__raft_truncate(r, from);
		if (r->log.error)
			return;
		for (; i < n; i++) {
			struct kq__raft_entry c = e[i];

			c.data = kq__raft_buf_copy(e[i].data, e[i].len);
			if (e[i].data && !c.data) {
				r->fatal = -ENOMEM;
				return;
			}
			if (kq__raft_log_append(&r->log, &c, 1))
				r->fatal = -ENOMEM;
			kq__raft_buf_unref(c.data);
			if (r->fatal)
				return;
		}
	}
	r->verified = max64(r->verified, lastnew);
	kq__raft_commit_to(r, min64(m->commit, lastnew));
	kq__raft_follower_ack(r, min64(r->verified, r->persisted) >= lastnew);
}

void kq__raft_handle_heartbeat(struct kq__raft *r, const struct kq__raft_msg *m)
{
	struct kq__raft_msg resp = {
		.type = KQ__RAFT_MSG_HEARTBEAT_RESP,
		.to = m->from,
		.term = r->term,
	};

	kq__raft_commit_to(r, m->commit);
	kq__raft_send(r, &resp);
	r->quiet = r->quiesce && m->quiet;
}

void kq__raft_handle_snapshot(struct kq__raft *r, const struct kq__raft_msg *m)
{
	struct kq__raft_snapshot s = m->snap;

	if (s.index <= r->commit) {
		r->verified = max64(r->verified, r->commit);
		kq__raft_follower_ack(r, true);
		return;
	}
	if (kq__raft_log_match(&r->log, s.index, s.term)) {
		/* Already holds it: just learn that it is committed. */
		kq__raft_commit_to(r, s.index);
		r->verified = max64(r->verified, s.index);
		kq__raft_follower_ack(r, true);
		return;
	}
	s.data = kq__raft_buf_copy(m->snap.data, m->snap.len);
	if (m->snap.data && !s.data) {
		r->fatal = -ENOMEM;
		return;
	}
	kq__raft_log_restore(&r->log, &s);
	kq__raft_buf_unref(s.data);
	r->commit = s.index;
	r->applied = s.index;
	r->unstable = s.index + 1;
	/* The caller installs it durably before sending any message. */
	r->persisted = s.index;
	r->n_writes = 0;
	r->verified = s.index;
	r->snap_pending = true;
	kq__raft_follower_ack(r, true);
}

void kq__raft_handle_append_resp(struct kq__raft *r,
				 const struct kq__raft_msg *m)
{
	struct kq__raft_progress *p = kq__raft_pr(r, m->from);

	if (!p || p->id == r->id)
		return;
	/* An acknowledgement of entries this leader never had cannot be
	 * true: counting it could commit without a quorum. */
	if (!m->reject && m->index > kq__raft_log_last(&r->log)) {
		r->refused++;
		return;
	}
	p->recent_active = true;
	if (m->reject) {
		uint64_t probe = m->hint;

		if (m->log_term)
			probe = kq__raft_log_find_conflict(&r->log, m->hint,
							   m->log_term);
		if (kq__raft_pr_decr(p, m->index, probe)) {
			if (p->state == KQ__RAFT_PR_REPLICATE)
				kq__raft_pr_become_probe(p);
			kq__raft_send_append(r, p, true);
		}
		return;
	}
	if (!kq__raft_pr_update(p, m->index))
		return;
	switch (p->state) {
	case KQ__RAFT_PR_PROBE: kq__raft_pr_become_replicate(p); break;
	case KQ__RAFT_PR_SNAPSHOT:
		if (p->match >= p->pending_snap) {
			kq__raft_pr_become_probe(p);
			kq__raft_pr_become_replicate(p);
		}
		break;
	case KQ__RAFT_PR_REPLICATE:
		kq__raft_pr_infl_free_to(p, m->index);
		break;
	}
	if (kq__raft_maybe_commit(r)) {
		kq__raft_bcast_append(r, true);
	} else {
		while (kq__raft_send_append(r, p, false))
			;
	}
}

void kq__raft_handle_heartbeat_resp(struct kq__raft *r,
				    const struct kq__raft_msg *m)
{
	struct kq__raft_progress *p = kq__raft_pr(r, m->from);

	if (!p || p->id == r->id)
		return;
	p->recent_active = true;
	if (p->state == KQ__RAFT_PR_PROBE)
		p->probe_sent = false;
	/* The link works: release one slot so a window filled by lost
	 * APPENDs cannot stall the follower forever. */
	if (p->state == KQ__RAFT_PR_REPLICATE &&
	    kq__raft_pr_paused(p, r->max_inflight_bytes, r->max_inflight_msgs))
		kq__raft_pr_infl_free_first(p);
	if (p->match < kq__raft_log_last(&r->log) ||
	    p->state == KQ__RAFT_PR_PROBE)
		kq__raft_send_append(r, p, true);
}
