/* The metadata log: consensus group 0, whose records (JSON) every broker
 * applies in offset order (apply.c).  Proposals, and why one was
 * refused; a broker that does not lead it forwards them (forward.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "log.h"
#include "meta.h"
#include "partition.h"
#include "req.h"
#include "store.h"
#include "types.h"

struct meta_prop {
	struct kq_propose_req preq;
	void (*cb)(void *ctx, int status);
	void *ctx;
};

static void proposed(struct kq_propose_req *preq, int status)
{
	struct meta_prop *mp = preq->data;

	if (status != 0)
		kq__error("metadata write failed: %s", kq_strerror(status));
	if (mp->cb)
		mp->cb(mp->ctx, status);
	free(mp);
}

/* Why a metadata write was refused: the metadata log failed here, or
 * no leader took it in time (it is forwarded to one; forward.c). */
int kq__meta_refused(struct kq_broker *b, struct kq_req *req, int rv)
{
	int leader = b->meta_group ? b->cops->leader(b->meta_group) : 0;

	if (!b->meta_group || b->meta_store.failed)
		return kq__req_fail(
			req, KQ_EUNAVAILABLE,
			"metadata log: %s; it is reopened once that clears",
			kq_strerror(b->meta_store.failed ? b->meta_store.failed
							 : rv));
	if (rv != KQ_EUNAVAILABLE)
		return kq__req_fail(req, KQ_EUNAVAILABLE, "metadata log: %s",
				    kq_strerror(rv));
	if (leader && leader != b->cfg->broker_id)
		return kq__req_fail(
			req, KQ_EUNAVAILABLE,
			"broker %d leads the metadata and did not commit "
			"this within topics.request_timeout_ms (%u ms)",
			leader, b->cfg->request_timeout_ms);
	return kq__req_fail(
		req, KQ_EUNAVAILABLE,
		"no metadata leader within topics.request_timeout_ms "
		"(%u ms)",
		b->cfg->request_timeout_ms);
}

int kq__meta_led_elsewhere(struct kq_broker *b)
{
	return b->cfg->npeers && b->meta_group && !b->meta_store.failed &&
	       b->cops->leader(b->meta_group) != b->cfg->broker_id;
}

static int propose_text(struct kq_broker *b, const char *text, size_t len,
			int flags, void (*cb)(void *ctx, int status), void *ctx)
{
	struct meta_prop *mp;
	struct kq_record rec;
	int rv;

	if (kq__meta_led_elsewhere(b) ||
	    ((flags & KQ__META_IF_FAILED) && b->cfg->npeers &&
	     (!b->meta_group || b->meta_store.failed)))
		return kq__fwd_meta(b, text, len, flags & KQ__META_AT_STOP, cb,
				    ctx);
	mp = calloc(1, sizeof(*mp));
	if (!mp)
		return -ENOMEM;
	memset(&rec, 0, sizeof(rec));
	rec.value = text;
	rec.value_len = (uint32_t)len;
	mp->cb = cb;
	mp->ctx = ctx;
	mp->preq.data = mp;
	rv = b->meta_group ? b->cops->propose(b->meta_group, &mp->preq, &rec, 1,
					      proposed)
			   : KQ_EUNAVAILABLE;
	if (rv != 0)
		free(mp);
	return rv;
}

int kq__meta_propose_text(struct kq_broker *b, const char *text, size_t len,
			  void (*cb)(void *ctx, int status), void *ctx)
{
	return propose_text(b, text, len, 0, cb, ctx);
}

int kq__meta_propose_flags(struct kq_broker *b, json_t *record, int flags,
			   void (*cb)(void *ctx, int status), void *ctx)
{
	char *text = json_dumps(record, JSON_COMPACT);
	int rv;

	if (!text)
		return -ENOMEM;
	rv = propose_text(b, text, strlen(text), flags, cb, ctx);
	free(text);
	return rv;
}

int kq__meta_propose(struct kq_broker *b, json_t *record,
		     void (*cb)(void *ctx, int status), void *ctx)
{
	return kq__meta_propose_flags(b, record, 0, cb, ctx);
}

/* Opens the metadata log and its group; records at or above `keep`
 * (written, never made durable, never acknowledged) are dropped first. */
static int open_group(struct kq_broker *b, uint64_t keep)
{
	/* Small segments, so that snapshots can drop old ones. */
	struct kq_log_options opts = {
		.segment_bytes = 4u << 20,
		.retention_ms = -1,
		.retention_bytes = -1,
	};
	struct kq_group_config gc;
	char dir[4096];
	int rv;

	snprintf(dir, sizeof(dir), "%s/__meta", b->dir);
	rv = kq__store_open(b, &b->meta_store, dir, &opts, keep);
	if (rv != 0)
		return rv;
	memset(&gc, 0, sizeof(gc));
	gc.id = 0;
	gc.name = "meta";
	gc.dir = b->meta_store.dir;
	gc.store = &b->meta_store;
	gc.nreplicas = kq__partition_brokers(b, &gc.replicas);
	gc.apply = b->meta_sm->apply;
	gc.apply_ctx = b;
	gc.snapshot = b->meta_sm->snapshot;
	gc.restore = b->meta_sm->restore;
	rv = b->cops->group_open(b->consensus.state, &gc, &b->meta_group);
	if (rv != 0) {
		kq__error("metadata group: %s", kq_strerror(rv));
		b->meta_group = NULL;
		kq__store_close(&b->meta_store);
	}
	return rv;
}

int kq__meta_open(struct kq_broker *b, const struct kq__meta_sm *sm)
{
	b->meta_sm = sm;
	b->meta_keep_below = UINT64_MAX;
	return open_group(b, UINT64_MAX);
}

int kq__meta_reopen(struct kq_broker *b)
{
	int rv;

	/* Taken from the log that failed, once: a reopen that failed left
	 * the store empty, and its acknowledged end then reads 0. */
	if (b->meta_store.log)
		b->meta_keep_below = kq__store_acked_end(&b->meta_store);
	kq__meta_close(b);
	/* The state in memory stays: subscription ids, this run's id, what
	 * was applied; the group replays nothing it holds. */
	b->meta_reopening = 1;
	rv = open_group(b, b->meta_keep_below);
	b->meta_reopening = 0;
	if (rv == 0)
		b->meta_keep_below = UINT64_MAX;
	return rv;
}

int kq__meta_idle(struct kq_broker *b)
{
	return !kq__store_busy(&b->meta_store);
}

void kq__meta_close(struct kq_broker *b)
{
	if (b->meta_group)
		b->cops->group_close(b->meta_group);
	b->meta_group = NULL;
	kq__store_close(&b->meta_store);
}
