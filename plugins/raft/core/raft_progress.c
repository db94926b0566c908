/* The leader's per-replica progress and in-flight window. */
#include <errno.h>
#include <stdlib.h>

#include "raft_int.h"

struct kq__raft_progress *kq__raft_pr(struct kq__raft *r, uint64_t id)
{
	for (size_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

size_t kq__raft_quorum(const struct kq__raft *r)
{
	return r->n_prs / 2 + 1;
}

/* Enters state s with nothing in flight, no probe out and no snapshot
 * pending. */
static void become(struct kq__raft_progress *p, enum kq__raft_pr_state s)
{
	p->state = s;
	p->probe_sent = false;
	p->pending_snap = 0;
	p->infl_start = 0;
	p->infl_count = 0;
	p->infl_bytes = 0;
}

void kq__raft_pr_reset(struct kq__raft_progress *p, uint64_t next)
{
	p->match = 0;
	p->next = next;
	p->recent_active = false;
	p->state_ticks = 0;
	become(p, KQ__RAFT_PR_PROBE);
}

void kq__raft_pr_become_probe(struct kq__raft_progress *p)
{
	/* After a snapshot, resume right after it (or after the match). */
	if (p->state == KQ__RAFT_PR_SNAPSHOT) {
		uint64_t s = p->pending_snap;

		p->next = (p->match > s ? p->match : s) + 1;
	} else {
		p->next = p->match + 1;
	}
	become(p, KQ__RAFT_PR_PROBE);
}

void kq__raft_pr_become_replicate(struct kq__raft_progress *p)
{
	become(p, KQ__RAFT_PR_REPLICATE);
	p->next = p->match + 1;
}

void kq__raft_pr_become_snapshot(struct kq__raft_progress *p, uint64_t index)
{
	become(p, KQ__RAFT_PR_SNAPSHOT);
	p->pending_snap = index;
	p->state_ticks = 0;
}

bool kq__raft_pr_update(struct kq__raft_progress *p, uint64_t index)
{
	bool updated = false;

	if (p->match < index) {
		p->match = index;
		updated = true;
		p->probe_sent = false;
	}
	if (p->next < index + 1)
		p->next = index + 1;
	return updated;
}

bool kq__raft_pr_decr(struct kq__raft_progress *p, uint64_t rejected,
		      uint64_t probe)
{
	uint64_t n;

	if (p->state == KQ__RAFT_PR_REPLICATE) {
		/* A rejection of something already matched is stale. */
		if (rejected <= p->match)
			return false;
		p->next = p->match + 1;
		return true;
	}
	/* PROBE: only the answer to the probe in flight counts. */
	if (p->next - 1 != rejected)
		return false;
	n = rejected < probe + 1 ? rejected : probe + 1;
	if (n < p->match + 1)
		n = p->match + 1;
	p->next = n;
	p->probe_sent = false;
	return true;
}

bool kq__raft_pr_paused(const struct kq__raft_progress *p, size_t max_bytes,
			unsigned max_msgs)
{
	switch (p->state) {
	case KQ__RAFT_PR_PROBE: return p->probe_sent;
	case KQ__RAFT_PR_REPLICATE:
		return p->infl_count >= max_msgs ||
		       (max_bytes && p->infl_bytes >= max_bytes);
	case KQ__RAFT_PR_SNAPSHOT: return true;
	}
	return true;
}

int kq__raft_pr_infl_add(struct kq__raft_progress *p, uint64_t last,
			 size_t bytes, unsigned max_msgs)
{
	if (!p->infl) {
		p->infl = calloc(max_msgs, sizeof(*p->infl));
		if (!p->infl)
			return -ENOMEM;
		p->infl_cap = max_msgs;
	}
	if (p->infl_count >= p->infl_cap)
		return 0; /* paused() keeps this from happening */
	p->infl[(p->infl_start + p->infl_count) % p->infl_cap] =
		(struct kq__raft_inflight){last, bytes};
	p->infl_count++;
	p->infl_bytes += bytes;
	return 0;
}

void kq__raft_pr_infl_free_first(struct kq__raft_progress *p)
{
	if (!p->infl_count)
		return;
	p->infl_bytes -= p->infl[p->infl_start].bytes;
	p->infl_start = (p->infl_start + 1) % p->infl_cap;
	p->infl_count--;
}

void kq__raft_pr_infl_free_to(struct kq__raft_progress *p, uint64_t index)
{
	while (p->infl_count && p->infl[p->infl_start].last <= index)
		kq__raft_pr_infl_free_first(p);
}

void kq__raft_pr_fini(struct kq__raft_progress *p)
{
	free(p->infl);
	p->infl = NULL;
}
