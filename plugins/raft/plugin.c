/* Consensus module `raft`: every replicated log (the metadata group and
 * one group per partition) is a Raft group; messages travel over the
 * cluster port.
 *
 * Handles: the tick timer, the `later` timer and the cluster port's
 * handles start in init.  They close when the last group closes (the core
 * closes the metadata group last, after every partition), so the broker's
 * loop can run out of handles and end; fini then only frees memory.  When
 * the broker never got as far as closing its groups (a start-up failure),
 * fini closes what is left and runs the loop until those handles are
 * closed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kafkaesque/config.h>

#include "keys.h"
#include "module.h"

static void on_timer_closed(uv_handle_t *h)
{
	struct kq__raft_module *mod = h->data;

	mod->handles--;
}

static void close_handles(struct kq__raft_module *mod)
{
	if (mod->closed)
		return;
	mod->closed = true;
	kq__raft_calls_cancel(mod);
	uv_close((uv_handle_t *)&mod->tick, on_timer_closed);
	if (mod->cluster)
		kq__cluster_close(mod->cluster);
	/* `later` stays until it has run the last completions. */
	if (!mod->canceled && !mod->calls_failed)
		uv_close((uv_handle_t *)&mod->later, on_timer_closed);
}

static void on_later(uv_timer_t *t)
{
	struct kq__raft_module *mod = t->data;

	kq__raft_run_canceled(mod);
	kq__raft_calls_run_failed(mod);
	if (mod->closed && !uv_is_closing((uv_handle_t *)&mod->later))
		uv_close((uv_handle_t *)&mod->later, on_timer_closed);
}

static void start_later(struct kq__raft_module *mod)
{
	if (!uv_is_closing((uv_handle_t *)&mod->later))
		uv_timer_start(&mod->later, on_later, 0, 0);
}

static void on_tick(uv_timer_t *t)
{
	struct kq__raft_module *mod = t->data;
	struct kq_group *g, *next;

	uint64_t up = mod->cluster
			      ? kq__cluster_heard_mask(mod->cluster,
						       kq__raft_silence_ms(mod))
			      : 0;
	unsigned slept;

	mod->handovers = 0;
	mod->ticks++;
	for (g = mod->awake; g; g = next) {
		next = g->next_awake;
		kq__raft_group_tick(g, 1);
	}
	/* Sleeping groups cost nothing per tick: they are looked at at once
	 * when a broker falls silent or is heard again (its followers must
	 * wake, its preferred leaderships go back), and otherwise every few
	 * election timeouts, for hand-overs that waited; and every tick
	 * while hand-overs wait for the per-tick cap. */
	slept = (unsigned)(mod->ticks - mod->swept);
	if (slept >= KQ__RAFT_SWEEP_TIMEOUTS * mod->election_ticks ||
	    up != mod->up_seen || mod->resweep) {
		mod->resweep = false;
		mod->swept = mod->ticks;
		for (g = mod->all; g; g = next) {
			next = g->next_all;
			if (g->asleep)
				kq__raft_group_tick(g, slept);
		}
	}
	mod->up_seen = up;
	kq__raft_calls_tick(mod);
	if (mod->cluster)
		kq__cluster_tick(mod->cluster);
}

static void deliver(void *ctx, uint64_t id, const struct kq__raft_msg *m)
{
	struct kq__raft_module *mod = ctx;
	struct kq_group *g = kq__raft_module_find(mod, id);

	if (!g) {
		/* A topic this broker has not applied yet, most likely. */
		if (mod->unknown++ % 1000 == 0)
			mod->host->log(mod->host, KQ_LOG_DEBUG,
				       "cluster: %s for unknown group %llu "
				       "dropped (%llu so far)",
				       kq__raft_msg_name(m->type),
				       (unsigned long long)id,
				       (unsigned long long)mod->unknown);
		return;
	}
	kq__raft_group_step(g, m);
}

/* ------------------------------------------------------------ config */

/* An unsigned option in [min, max] over *out. */
static int get_uint(const struct kq_host *host, const char *key, unsigned min,
		    unsigned max, unsigned *out)
{
	int64_t v = *out;
	int rv = kq_config_int(host, key, min, max, &v);

	*out = (unsigned)v;
	return rv;
}

static int parse_config(struct kq__raft_module *mod)
{
	const struct kq_host *host = mod->host;
	int rv;

	mod->tick_ms = 50;
	mod->election_ticks = 10;
	mod->heartbeat_ticks = 2;
	mod->pre_vote = true;
	mod->check_quorum = true;
	mod->snapshot_every = 4096;
	mod->cache_bytes = 8u << 20;
	mod->balance_leaders = true;
	mod->max_campaigns = 64;
	mod->seed = uv_hrtime() ^ ((uint64_t)getpid() << 20);
	rv = kq_config_keys(host, kq__raft_conf_keys);
	if (rv == 0)
		rv = get_uint(host, "tick_ms", 1, 10000, &mod->tick_ms);
	if (rv == 0)
		rv = get_uint(host, "election_ticks", 2, 1000,
			      &mod->election_ticks);
	if (rv == 0)
		rv = get_uint(host, "heartbeat_ticks", 1, 1000,
			      &mod->heartbeat_ticks);
	if (rv == 0)
		rv = kq_config_bool(host, "pre_vote", &mod->pre_vote);
	if (rv == 0)
		rv = kq_config_bool(host, "check_quorum", &mod->check_quorum);
	if (rv == 0)
		rv = get_uint(host, "snapshot_every", 0, 1000000000,
			      &mod->snapshot_every);
	if (rv == 0)
		rv = get_uint(host, "cache_bytes", 0, 1u << 30,
			      &mod->cache_bytes);
	if (rv == 0)
		rv = get_uint(host, "max_campaigns", 1, 1000000,
			      &mod->max_campaigns);
	if (rv == 0)
		rv = kq_config_bool(host, "balance_leaders",
				    &mod->balance_leaders);
	if (rv != 0)
		return rv;
	if (mod->heartbeat_ticks >= mod->election_ticks) {
		host->log(host, KQ_LOG_ERROR,
			  "raft.heartbeat_ticks: expected fewer than "
			  "election_ticks (%u)",
			  mod->election_ticks);
		return KQ_ECONFIG;
	}
	return 0;
}

/* ------------------------------------------------------------ ops */

/* Runs the loop until the module's handles are closed; only used when
 * the broker's own loop is not running any more (or not yet). */
static void drain(struct kq__raft_module *mod)
{
	for (int i = 0; i < 10000; i++) {
		if (mod->handles == 0 &&
		    (!mod->cluster || kq__cluster_handles(mod->cluster) == 0))
			return;
		uv_run(mod->host->loop, UV_RUN_NOWAIT);
	}
}

static void raft_fini(void *state)
{
	struct kq__raft_module *mod = state;

	close_handles(mod);
	if (!uv_is_closing((uv_handle_t *)&mod->later))
		uv_close((uv_handle_t *)&mod->later, on_timer_closed);
	drain(mod);
	kq__raft_run_canceled(mod);
	kq__raft_calls_run_failed(mod);
	kq__raft_calls_free(mod);
	kq__cluster_free(mod->cluster);
	free(mod->buckets);
	free(mod);
}

static int raft_init(const struct kq_host *host, void **state)
{
	struct kq__raft_module *mod = calloc(1, sizeof(*mod));
	struct kq__cluster_setup cc;
	int rv;

	if (!mod)
		return -ENOMEM;
	mod->host = host;
	rv = parse_config(mod);
	if (rv != 0) {
		free(mod);
		return rv;
	}
	uv_timer_init(host->loop, &mod->tick);
	uv_timer_init(host->loop, &mod->later);
	mod->tick.data = mod->later.data = mod;
	mod->start_later = start_later;
	mod->emptied = close_handles;
	mod->handles = 2;
	memset(&cc, 0, sizeof(cc));
	cc.tick_ms = mod->tick_ms;
	cc.election_ticks = mod->election_ticks;
	cc.heartbeat_ticks = mod->heartbeat_ticks;
	cc.deliver = deliver;
	cc.on_call = kq__raft_calls_serve;
	cc.on_reply = kq__raft_calls_reply;
	cc.on_down = kq__raft_calls_down;
	cc.ctx = mod;
	rv = kq__cluster_new(host, &cc, &mod->cluster);
	if (rv != 0) {
		/* fini is not called after a failed init. */
		raft_fini(mod);
		return rv;
	}
	uv_timer_start(&mod->tick, on_tick, mod->tick_ms, mod->tick_ms);
	*state = mod;
	return 0;
}

static int raft_peer_up(void *state, int id)
{
	struct kq__raft_module *mod = state;

	if (id == mod->host->broker_id)
		return 1;
	return mod->cluster ? kq__cluster_peer_up(mod->cluster, id) : 0;
}

static const struct kq_consensus_ops ops = {
	.size = sizeof(struct kq_consensus_ops),
	.init = raft_init,
	.fini = raft_fini,
	.group_open = kq__raft_group_open,
	.group_close = kq__raft_group_close,
	.propose = kq__raft_group_propose,
	.commit_end = kq__raft_group_commit_end,
	.group_retain = kq__raft_group_retain,
	.leader = kq__raft_group_leader,
	.peer_up = raft_peer_up,
	.call = kq__raft_call,
	.reply = kq__raft_reply,
};

static const struct kq_plugin_desc desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_CONSENSUS,
	.name = "raft",
	.version = "1.0.0",
	.ops = &ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &desc;
}
