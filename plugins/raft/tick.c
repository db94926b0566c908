/* A group's ticks: a sleeping group wakes when the brokers it relies on
 * fall silent, elections go a few at a time within the module's slots,
 * and a leader hands the lead back to the partition's first replica. */
#include <stdbool.h>

#include "module.h"

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
	/* While its term and vote are being made durable, a group's clock
	 * waits for its disk (as it did when the save held the loop): a
	 * campaign slower to save than an election timeout would otherwise
	 * start the next before it asked for a vote. */
	if (g->hs_saving)
		return;
	/* A burst of elections (a broker died, its groups woke) goes a few
	 * at a time: each costs a durable save of term and vote on every
	 * replica, and thousands at once would queue their saves past the
	 * election timeout and set off more.  The metadata group, and a
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
		kq__raft_group_fail(g, rv, "raft tick");
	if (!g->failed)
		maybe_hand_over(g, ticks);
	if (!g->failed && !g->running)
		kq__raft_snap_maybe(g);
	kq__raft_group_run(g);
}
