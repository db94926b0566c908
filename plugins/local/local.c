/* Consensus module `local`: a lone broker.  A proposal is committed once
 * the storage holds it durably (by the configured sync policy); records
 * are then applied in offset order.  It stays as the single-node mode of
 * the broker next to the replicated `raft` module. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/clock.h>
#include <kafkaesque/config.h>
#include <kafkaesque/consensus.h>
#include <kafkaesque/list.h>

/* Snapshot a state-machine group after this many applied records. */
#define SNAPSHOT_EVERY_DEFAULT 4096

struct local {
	const struct kq_host *host;
	uint64_t snapshot_every; /* 0: never */
};

struct proposal {
	struct kq_sync_req sreq;
	const struct kq_host *host;
	struct kq_group *g; /* NULL once the group closed */
	struct kq_propose_req *req;
	uint64_t first, end;
	struct proposal *prev, *next;
};

struct kq_group {
	struct local *l;
	struct kq_group_config cfg;
	const struct kq_store_api *store;
	uint64_t commit_end;	  /* after the last committed record */
	uint64_t applied_end;	  /* after the last applied record */
	uint64_t snapshot_end;	  /* applied_end of the last snapshot */
	struct proposal *pending; /* proposals waiting for their sync */
	int failed;		  /* first write or sync error, or 0 */
};

/* The keys of the local section, NULL-terminated (the configuration
 * fuzzer builds sections from them). */
const char *const kq__local_conf_keys[] = {"snapshot_every", NULL};

static int local_init(const struct kq_host *host, void **state)
{
	int64_t every = SNAPSHOT_EVERY_DEFAULT; /* 0: never */
	struct local *l;
	int rv;

	rv = kq_config_keys(host, kq__local_conf_keys);
	if (rv == 0)
		rv = kq_config_int(host, "snapshot_every", 0, INT64_MAX,
				   &every);
	if (rv != 0)
		return rv;
	l = host->malloc(sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->host = host;
	l->snapshot_every = (uint64_t)every;
	*state = l;
	return 0;
}

static void local_fini(void *state)
{
	struct local *l = state;

	l->host->free(l);
}

static int apply_one(void *ctx, const struct kq_record *rec)
{
	struct kq_group *g = ctx;

	g->cfg.apply(g->cfg.apply_ctx, rec);
	return 0;
}

/* The offset the next record takes: after the log's last record, and
 * after any offsets lost to damage, which may have been acknowledged. */
static uint64_t next_offset(struct kq_group *g)
{
	const struct kq_offset_range *lost;
	uint64_t next = g->store->next_offset(g->cfg.store);
	int n = g->store->lost(g->cfg.store, &lost);

	if (n > 0 && lost[n - 1].end > next)
		next = lost[n - 1].end;
	return next;
}

/* Applies committed records not applied yet. */
static int apply_committed(struct kq_group *g)
{
	uint64_t next;
	int rv;

	if (!g->cfg.apply) {
		g->applied_end = g->commit_end;
		return 0;
	}
	while (g->applied_end < g->commit_end) {
		rv = g->store->read(g->cfg.store, g->applied_end, g->commit_end,
				    1 << 20, apply_one, g, &next);
		if (rv < 0)
			return rv;
		if (next <= g->applied_end)
			break;
		g->applied_end = next;
	}
	return 0;
}

/* Writes a snapshot of a state-machine group once enough was applied
 * since the last one, then drops the log segments it covers. */
static void maybe_snapshot(struct kq_group *g)
{
	const struct kq_host *host = g->l->host;
	void *data = NULL;
	size_t len = 0;
	int rv;

	if (!g->cfg.snapshot || !g->l->snapshot_every ||
	    g->applied_end - g->snapshot_end < g->l->snapshot_every)
		return;
	rv = g->cfg.snapshot(g->cfg.apply_ctx, &data, &len);
	if (rv == 0)
		rv = g->store->save_snapshot(g->cfg.store, g->applied_end - 1,
					     0, data, len);
	host->free(data);
	if (rv != 0) {
		host->log(host, KQ_LOG_WARN,
			  "group %s: snapshot at offset %llu failed: %s",
			  g->cfg.name, (unsigned long long)g->applied_end - 1,
			  kq_strerror(rv));
		return;
	}
	g->snapshot_end = g->applied_end;
	rv = g->store->compact(g->cfg.store, g->applied_end);
	if (rv < 0)
		host->log(host, KQ_LOG_WARN, "group %s: compaction failed: %s",
			  g->cfg.name, kq_strerror(rv));
}

/* Loads the group's snapshot, when it has one, and applies it. */
static int restore_snapshot(struct kq_group *g)
{
	const struct kq_host *host = g->l->host;
	uint64_t index, term;
	void *data;
	size_t len;
	int rv;

	if (!g->cfg.restore)
		return 0;
	rv = g->store->load_snapshot(g->cfg.store, &index, &term, &data, &len);
	if (rv == -ENOENT)
		return 0;
	if (rv != 0)
		return rv;
	rv = g->cfg.restore(g->cfg.apply_ctx, data, len);
	host->free(data);
	if (rv != 0)
		return rv;
	if (index + 1 > g->applied_end)
		g->applied_end = index + 1;
	g->snapshot_end = index + 1;
	host->log(host, KQ_LOG_INFO,
		  "group %s: restored the snapshot at offset %llu", g->cfg.name,
		  (unsigned long long)index);
	return 0;
}

static int local_group_open(void *state, const struct kq_group_config *cfg,
			    struct kq_group **out)
{
	struct local *l = state;
	struct kq_group *g = l->host->malloc(sizeof(*g));
	int rv;

	if (!g)
		return -ENOMEM;
	memset(g, 0, sizeof(*g));
	g->l = l;
	g->cfg = *cfg;
	g->store = l->host->store;
	/* Alone, everything the log holds after recovery is committed. */
	g->applied_end = g->store->first_offset(cfg->store);
	/* Lost offsets count as committed: a reader can then CMIT past
	 * them. */
	g->commit_end = next_offset(g);
	rv = restore_snapshot(g);
	if (rv == 0)
		rv = apply_committed(g);
	if (rv != 0) {
		l->host->log(l->host, KQ_LOG_ERROR,
			     "group %s: replay failed at offset %llu: %s",
			     cfg->name, (unsigned long long)g->applied_end,
			     kq_strerror(rv));
		l->host->free(g);
		return rv;
	}
	*out = g;
	return 0;
}

static void unlink_proposal(struct proposal *p)
{
	struct kq_group *g = p->g;

	if (!g)
		return;
	KQ_LIST_REMOVE(g->pending, p);
}

static void synced(struct kq_sync_req *sreq, int status)
{
	struct proposal *p = sreq->data;
	struct kq_group *g = p->g;
	struct kq_propose_req *req = p->req;
	int rv = status;

	unlink_proposal(p);
	if (g) {
		if (status != 0) {
			if (!g->failed)
				g->failed = status;
		} else {
			if (p->end > g->commit_end)
				g->commit_end = p->end;
			rv = apply_committed(g);
			if (rv == 0)
				maybe_snapshot(g);
		}
	} else {
		rv = KQ_ECANCELED;
	}
	req->first_offset = p->first;
	p->host->free(p);
	req->cb(req, rv);
}

static int local_propose(struct kq_group *g, struct kq_propose_req *req,
			 const struct kq_record *recs, size_t n,
			 kq_propose_cb cb)
{
	const struct kq_host *host = g->l->host;
	struct kq_record *copy;
	struct proposal *p;
	uint64_t next;
	int64_t now;
	size_t i;
	int rv;

	/* A log that failed stays refused until the broker restarts and
	 * recovers it; the first error is the reason given each time. */
	if (g->failed)
		return g->failed;
	if (n == 0)
		return KQ_EBADARG;
	copy = host->malloc(n * sizeof(*copy));
	p = host->malloc(sizeof(*p));
	if (!copy || !p) {
		host->free(copy);
		host->free(p);
		return -ENOMEM;
	}
	now = kq_wall_ms();
	next = next_offset(g);
	for (i = 0; i < n; i++) {
		copy[i] = recs[i];
		copy[i].offset = next + i;
		copy[i].term = 0;
		if (!copy[i].timestamp_ms)
			copy[i].timestamp_ms = now;
	}
	rv = g->store->append(g->cfg.store, copy, n);
	host->free(copy);
	if (rv != 0) {
		host->free(p);
		if (!g->failed && rv != KQ_EUNAVAILABLE)
			g->failed = rv;
		return rv;
	}
	memset(p, 0, sizeof(*p));
	p->host = host;
	p->g = g;
	p->req = req;
	p->first = next;
	p->end = next + n;
	p->sreq.data = p;
	req->cb = cb;
	KQ_LIST_PUSH(g->pending, p);
	return g->store->sync(g->cfg.store, &p->sreq, synced);
}

/* Proposals still waiting for their sync keep running after the group is
 * gone: they only forget it, and complete with KQ_ECANCELED. */
static void local_group_close(struct kq_group *g)
{
	struct proposal *p, *next;

	for (p = g->pending; p; p = next) {
		next = p->next;
		p->g = NULL;
		p->prev = p->next = NULL;
	}
	g->l->host->free(g);
}

static uint64_t local_commit_end(struct kq_group *g)
{
	return g->commit_end;
}

/* Alone, what is durable is committed: the log may drop it. */
static int local_group_retain(struct kq_group *g, uint64_t before)
{
	if (g->cfg.snapshot)
		return 0;
	if (before > g->commit_end)
		before = g->commit_end;
	return g->store->compact(g->cfg.store, before);
}

static int local_leader(struct kq_group *g)
{
	return g->l->host->broker_id;
}

static int local_peer_up(void *state, int id)
{
	struct local *l = state;

	return id == l->host->broker_id;
}

/* A lone broker has nobody to ask, and nobody asks it. */
static int local_call(void *state, struct kq_call *call, int to,
		      const void *buf, size_t len, unsigned timeout_ms,
		      kq_call_cb cb)
{
	(void)state;
	(void)call;
	(void)to;
	(void)buf;
	(void)len;
	(void)timeout_ms;
	(void)cb;
	return KQ_EUNAVAILABLE;
}

static void local_reply(void *state, struct kq_incoming *in, const void *buf,
			size_t len)
{
	(void)state;
	(void)in;
	(void)buf;
	(void)len;
}

static const struct kq_consensus_ops ops = {
	.size = sizeof(struct kq_consensus_ops),
	.init = local_init,
	.fini = local_fini,
	.group_open = local_group_open,
	.group_close = local_group_close,
	.propose = local_propose,
	.commit_end = local_commit_end,
	.group_retain = local_group_retain,
	.leader = local_leader,
	.peer_up = local_peer_up,
	.call = local_call,
	.reply = local_reply,
};

static const struct kq_plugin_desc desc = {
	.abi = KQ_PLUGIN_ABI,
	.size = sizeof(struct kq_plugin_desc),
	.kind = KQ_PLUGIN_CONSENSUS,
	.name = "local",
	.version = "1.0.0",
	.ops = &ops,
};

const struct kq_plugin_desc *kq_plugin_entry(void);

const struct kq_plugin_desc *kq_plugin_entry(void)
{
	return &desc;
}
