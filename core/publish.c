/* PUBS: messages are batched per partition until the end of the loop
 * turn, then proposed to the partition's group together, or forwarded to
 * the broker that leads it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "defer.h"
#include "forward.h"
#include "jsonkey.h"
#include "log.h"
#include "partition.h"
#include "publish.h"
#include "req.h"
#include "topic.h"
#include "types.h"
#include "why.h"

/* Batches are proposed at the end of the loop turn, or sooner once this
 * large, which bounds the memory a flood of pipelined PUBS can hold. */
#define BATCH_MAX_MSGS	8192
#define BATCH_MAX_BYTES (8u << 20)

/* The message key: the non-empty string "Key" of a JSON object message
 * (see jsonkey.h).  Returns the buffer holding a key that had escapes
 * (caller frees), else NULL with *key into msg or NULL. */
static char *message_key(const char *msg, size_t len, const char **key,
			 size_t *klen)
{
	char *buf;

	if (kq__json_key(msg, len, key, klen) != KQ__JSONKEY_ESCAPED)
		return NULL;
	buf = malloc(*klen);
	if (!buf) {
		/* Keyless rather than failed: the message is still stored. */
		*key = NULL;
		*klen = 0;
		return NULL;
	}
	*klen = kq__json_unescape(*key, *klen, buf);
	*key = buf;
	return buf;
}

static struct kq__batch *batch_for(struct kq_broker *b, struct kq__partition *p)
{
	struct kq__batch *bt = p->batch;

	if (bt)
		return bt;
	bt = calloc(1, sizeof(*bt));
	if (!bt)
		return NULL;
	bt->part = p;
	bt->preq.data = bt;
	p->batch = bt;
	if (!p->dirty) {
		p->dirty = 1;
		p->next_dirty = NULL;
		if (b->dirty_last)
			b->dirty_last->next_dirty = p;
		else
			b->dirty = p;
		b->dirty_last = p;
		b->ndirty++;
	}
	kq__defer_wake(b);
	return bt;
}

/* Copies the message and its key (stored right after it). */
static int batch_add(struct kq__batch *bt, struct kq_req *req, const void *msg,
		     size_t len, const void *key, size_t klen)
{
	if (bt->n == bt->cap) {
		size_t cap = bt->cap ? bt->cap * 2 : 64;
		struct kq_req **reqs = realloc(bt->reqs, cap * sizeof(*reqs));
		uint32_t *lens;

		if (!reqs)
			return -ENOMEM;
		bt->reqs = reqs;
		lens = realloc(bt->lens, cap * sizeof(*lens));
		if (!lens)
			return -ENOMEM;
		bt->lens = lens;
		lens = realloc(bt->klens, cap * sizeof(*lens));
		if (!lens)
			return -ENOMEM;
		bt->klens = lens;
		bt->cap = cap;
	}
	if (bt->used + len + klen > bt->bufcap) {
		size_t cap = bt->bufcap ? bt->bufcap : 4096;
		char *buf;

		while (cap < bt->used + len + klen)
			cap *= 2;
		buf = realloc(bt->buf, cap);
		if (!buf)
			return -ENOMEM;
		bt->buf = buf;
		bt->bufcap = cap;
	}
	memcpy(bt->buf + bt->used, msg, len);
	if (klen)
		memcpy(bt->buf + bt->used + len, key, klen);
	bt->used += len + klen;
	bt->reqs[bt->n] = req;
	bt->lens[bt->n] = (uint32_t)len;
	bt->klens[bt->n] = (uint32_t)klen;
	bt->n++;
	return 0;
}

/* Why a partition refused a write, for the client: a storage error, or
 * which broker leads it (commands are not forwarded yet). */
static void not_accepted(struct kq_req *req, struct kq__partition *p,
			 int status)
{
	struct kq_broker *b = p->topic->b;
	int leader = p->group ? b->cops->leader(p->group) : 0;

	if (status != KQ_EUNAVAILABLE)
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "partition %s-%u is not accepting writes: %s",
			 p->topic->name, p->id, kq__why(status));
	else if (leader && leader != b->cfg->broker_id)
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "partition %s-%u is led by broker %d; publish there",
			 p->topic->name, p->id, leader);
	else
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "partition %s-%u has no leader yet", p->topic->name,
			 p->id);
}

static void batch_done(struct kq_propose_req *preq, int status)
{
	struct kq__batch *bt = preq->data;
	struct kq__partition *p = bt->part;
	size_t i;

	kq__proposal_done(p->topic->b);
	for (i = 0; i < bt->n; i++) {
		struct kq_req *req = bt->reqs[i];

		if (status == 0) {
			req->result.publish.partition = p->id;
			req->result.publish.offset = preq->first_offset + i;
			req->cb(req, 0);
		} else if (status == KQ_EUNAVAILABLE ||
			   status == KQ_ECANCELED) {
			/* Taken, then the leader changed or its group closed
			 * (a stop, a reopen): a later leader may still
			 * commit it. */
			snprintf(req->errmsg, sizeof(req->errmsg),
				 "partition %s-%u %s before this message was "
				 "committed; it may or may not be stored",
				 p->topic->name, p->id,
				 status == KQ_ECANCELED ? "was closed here"
							: "changed leader");
			req->cb(req, KQ_EUNAVAILABLE);
		} else {
			not_accepted(req, p, status);
			req->cb(req, KQ_EUNAVAILABLE);
		}
	}
	kq__req_batch_free(bt);
}

/* A batch the consensus module refused outright.  Its requests complete
 * at the end of the loop turn: a full batch is proposed from inside
 * publish(), whose caller must not see callbacks before it returns. */
static void batch_refused(struct kq_broker *b, struct kq__batch *bt, int rv)
{
	for (size_t i = 0; i < bt->n; i++) {
		not_accepted(bt->reqs[i], bt->part, rv);
		kq__defer_complete(b, bt->reqs[i], KQ_EUNAVAILABLE);
	}
	kq__req_batch_free(bt);
}

/* Proposes one partition's batch: one append, one sync, one commit. */
static void batch_propose(struct kq_broker *b, struct kq__partition *p)
{
	struct kq__batch *bt = p->batch;
	struct kq_record *recs;
	size_t i, off = 0;
	int rv;

	p->batch = NULL;
	if (!bt)
		return;
	/* Behind batches forwarded earlier, even once led here: they are
	 * stored first. */
	if (p->fwd_head || !kq__partition_led_here(b, p)) {
		kq__fwd_publish(b, p, bt);
		return;
	}
	recs = calloc(bt->n, sizeof(*recs));
	if (!recs) {
		batch_refused(b, bt, -ENOMEM);
		return;
	}
	for (i = 0; i < bt->n; i++) {
		recs[i].value = bt->buf + off;
		recs[i].value_len = bt->lens[i];
		if (bt->klens[i]) {
			recs[i].key = bt->buf + off + bt->lens[i];
			recs[i].key_len = bt->klens[i];
		}
		off += bt->lens[i] + bt->klens[i];
	}
	rv = b->cops->propose(p->group, &bt->preq, recs, bt->n, batch_done);
	free(recs);
	if (rv == 0)
		b->proposals++;
	else if (rv == KQ_EUNAVAILABLE && b->cfg->npeers)
		kq__fwd_publish(b, p, bt); /* not leader any more */
	else
		batch_refused(b, bt, rv);
}

void kq__proposal_done(struct kq_broker *b)
{
	/* The stop waits for the last one (broker.c). */
	if (--b->proposals == 0 && b->stopping)
		kq__defer_wake(b);
}

/* Each batch proposed is a write to its partition's log (past
 * segment.open_files, a reopen of its file, evicting another) and a
 * message to each follower, on the loop thread: a publish spread over
 * thousands of partitions must not hold every other client for all of
 * them at once.  So one flush takes the oldest batches only, within
 * KQ__FLUSH_PARTS and KQ__FLUSH_BYTES, and the idle handle brings the
 * rest on the next turns.  A partition's batch is proposed whole, and
 * messages arriving meanwhile join it, so its order holds. */
bool kq__batch_flush(struct kq_broker *b)
{
	struct kq__partition *p;
	unsigned n = 0;
	size_t bytes = 0;

	if (b->round_left == 0)
		b->round_left = b->ndirty;
	while (b->round_left > 0 && n < KQ__FLUSH_PARTS &&
	       bytes < KQ__FLUSH_BYTES) {
		p = b->dirty;
		b->dirty = p->next_dirty;
		if (b->dirty == NULL)
			b->dirty_last = NULL;
		b->ndirty--;
		b->round_left--;
		p->dirty = 0;
		if (p->batch == NULL)
			continue; /* proposed when it filled up */
		bytes += p->batch->used;
		n++;
		batch_propose(b, p);
	}
	if (b->dirty)
		kq__defer_wake(b);
	if (b->round_left > 0 && ++b->round_flushes < KQ__FLUSH_SYNC_AFTER)
		return false;
	b->round_flushes = 0;
	return true;
}

int kq__publish(struct kq_session *s, struct kq_req *req, const char *topic,
		const void *msg, size_t len, kq_req_cb cb)
{
	struct kq_broker *b = s->b;
	struct kq__topic *t;
	struct kq__instance *pi;
	struct kq_partition_req pr;
	struct kq__batch *bt;
	uint32_t part;
	char *keybuf;
	int rv;

	kq__req_init(req, s, KQ_REQ_PUBLISH, cb);
	if (b->stopping)
		return kq__req_fail(req, KQ_EUNAVAILABLE, "broker is stopping");
	t = kq__topic_get(b, topic);
	if (!t)
		return kq__req_fail(req, KQ_ENOTOPIC, "no topic named %s",
				    topic);
	if (len == 0)
		return kq__req_fail(req, KQ_EBADARG, "empty message");
	if (len > UINT32_MAX / 2)
		return kq__req_fail(req, KQ_EBADARG, "message too large");

	memset(&pr, 0, sizeof(pr));
	pr.topic = t->name;
	pr.partitions = t->nparts;
	pr.value = msg;
	pr.value_len = len;
	keybuf = message_key(msg, len, (const char **)&pr.key, &pr.key_len);
	pr.seq = t->seq++;
	pr.keyless_seq = pr.key ? t->keyless_seq : t->keyless_seq++;
	pi = &b->partitioners[t->partitioner];
	part = ((const struct kq_partitioner_ops *)pi->mod.desc->ops)
		       ->partition(pi->state, &pr);
	if (part >= t->nparts) {
		free(keybuf);
		kq__error("partitioner %s returned partition %u of %u",
			  pi->mod.name, part, t->nparts);
		return kq__req_fail(
			req, KQ_EINTERNAL,
			"partitioner %s chose a partition out of range",
			pi->mod.name);
	}
	/* A message without a key goes to the next partition that is
	 * open; one with a key must go where it belongs. */
	for (uint32_t k = 1;
	     !pr.key && t->parts[part].open_error && k < t->nparts; k++)
		if (!t->parts[(part + k) % t->nparts].open_error)
			part = (part + k) % t->nparts;
	rv = kq__partition_usable(&t->parts[part], req->errmsg,
				  sizeof(req->errmsg));
	/* In a cluster, another replica may take it. */
	if (rv != 0 && b->cfg->npeers &&
	    t->parts[part].open_error != KQ_ECANCELED &&
	    kq__partition_held_elsewhere(b, &t->parts[part]))
		rv = 0;
	if (rv != 0) {
		free(keybuf);
		return rv;
	}
	bt = batch_for(b, &t->parts[part]);
	rv = bt ? batch_add(bt, req, msg, len, pr.key, pr.key_len) : -ENOMEM;
	free(keybuf);
	if (rv != 0)
		return kq__req_fail(req, rv, "out of memory");
	if (bt->n >= BATCH_MAX_MSGS || bt->used >= BATCH_MAX_BYTES)
		batch_propose(b, &t->parts[part]);
	return 0;
}
