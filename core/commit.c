/* Committed offsets of consumer groups: what CONS handed out,
 * acknowledged (by the next CONS, or CMIT), and CMIT with an offset;
 * stored in the metadata log.  A CMIT is answered once its record is
 * applied here; the end that bounds a CMIT with an offset is asked of a
 * broker holding the partition when this one holds none (fetch.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "commit.h"
#include "defer.h"
#include "fetch.h"
#include "log.h"
#include "meta.h"
#include "names.h"
#include "partition.h"
#include "req.h"
#include "topic.h"
#include "types.h"

/* The subscription sub_id on `topic`, or an error with errmsg filled. */
int kq__member_find(struct kq_broker *b, const char *topic, uint64_t sub_id,
		    struct kq__member **out, char *errmsg, size_t errlen)
{
	struct kq__topic *t = kq__topic_get(b, topic);
	struct kq__member *m;

	if (!t) {
		snprintf(errmsg, errlen, "no topic named %s", topic);
		return KQ_ENOTOPIC;
	}
	m = kq__map_get(&b->subs, &sub_id, sizeof(sub_id));
	if (!m || m->cgroup->topic != t) {
		snprintf(errmsg, errlen,
			 "no subscription %" PRIu64 " on topic %s", sub_id,
			 topic);
		return KQ_ENOSUB;
	}
	*out = m;
	return 0;
}

uint64_t kq__commit_position(const struct kq__member *m, uint32_t p)
{
	uint64_t c = m->cgroup->committed[p];

	return m->acking && m->acking[p] > c ? m->acking[p] : c;
}

void kq__commit_seeked(struct kq__cgroup *g, uint32_t p)
{
	for (size_t i = 0; i < g->nmembers; i++) {
		struct kq__member *m = g->members[i];

		if (m->handed)
			m->handed[p] = 0;
		if (m->acking)
			m->acking[p] = 0;
	}
}

/* An offsets record proposed: a CMIT (req) is answered once it is applied
 * here, so that OK means stored; an acknowledgement's offsets stop
 * counting in m->acking once the record is applied or lost.  Listed in
 * b->storings meanwhile, so that the apply can say it left partitions
 * out (kq__commit_refused). */
struct kq__storing {
	struct kq_broker *b;
	struct kq_req *req;
	uint64_t sub_id;
	uint64_t ask;
	int refused;
	struct kq__storing *prev, *next;
	size_t n;
	uint64_t acked[]; /* [3 * n] partition, offset, m->acking before */
};

void kq__commit_refused(struct kq_broker *b, const struct kq__ask *a)
{
	if (a->broker != b->cfg->broker_id || a->boot != b->boot_id) {
		b->refused[b->nrefused++ % KQ__REFUSED_MAX] = *a;
		return;
	}
	for (struct kq__storing *st = b->storings; st; st = st->next)
		if (st->ask == a->ask)
			st->refused = 1;
}

int kq__commit_was_refused(const struct kq_broker *b, const struct kq__ask *a)
{
	unsigned n =
		b->nrefused < KQ__REFUSED_MAX ? b->nrefused : KQ__REFUSED_MAX;

	for (unsigned i = 0; i < n; i++) {
		const struct kq__ask *r = &b->refused[i];

		if (r->broker == a->broker && r->boot == a->boot &&
		    r->ask == a->ask)
			return 1;
	}
	return 0;
}

static void stored(void *ctx, int status)
{
	struct kq__storing *st = ctx;
	struct kq__member *m =
		kq__map_get(&st->b->subs, &st->sub_id, sizeof(st->sub_id));

	KQ_LIST_REMOVE(st->b->storings, st);
	for (size_t i = 0; m && m->acking && i < st->n; i++)
		if (m->acking[st->acked[3 * i]] == st->acked[3 * i + 1])
			m->acking[st->acked[3 * i]] = 0;
	/* Refused by the apply here, or by the metadata leader's (which
	 * answered a forwarded record so: this broker may get it inside a
	 * snapshot). */
	if (st->req && (status == KQ_EBADARG || (!status && st->refused)))
		status = kq__req_fail(
			st->req, KQ_EBADARG,
			"subscription %" PRIu64
			" no longer held all its partitions when the commit "
			"was applied (the member ended, or the group was "
			"rebalanced); nothing of it was committed",
			st->sub_id);
	else if (st->req && status)
		status = kq__meta_refused(st->b, st->req, status);
	if (st->req)
		kq__defer_complete(st->b, st->req, status);
	free(st);
}

/* Proposes the offsets of member m's group for the partitions in `parts`
 * (n of them): with `set` (CMIT with an offset) `offs` replaces them,
 * forward or back; otherwise (an acknowledgement, of what m was handed)
 * `offs` moves them forward, unless a CMIT with an offset was applied
 * first.  Nothing changes before the record is applied, here as on every
 * broker.  With a request, it completes once the record is applied here;
 * otherwise a failure is only logged (the batch is delivered again).
 * Returns 0, or an error with the request's errmsg filled (it does not
 * complete). */
static int store_offsets(struct kq_broker *b, struct kq__member *m,
			 const uint32_t *parts, const uint64_t *offs, size_t n,
			 int set, struct kq_req *req)
{
	struct kq__cgroup *g = m->cgroup;
	json_t *offsets = json_array(), *rec = NULL;
	struct kq__storing *st = malloc(sizeof(*st) + 3 * n * sizeof(uint64_t));
	uint64_t ask = ++b->asked;
	int rv = -ENOMEM;

	for (size_t i = 0; offsets && i < n; i++)
		json_array_append_new(
			offsets,
			set ? json_pack("[I,I]", (json_int_t)parts[i],
					(json_int_t)offs[i])
			    : json_pack("[I,I,I]", (json_int_t)parts[i],
					(json_int_t)offs[i],
					(json_int_t)g->seeks[parts[i]]));
	if (offsets)
		/* It names its sender, as forwarded records must
		 * (serve.c). */
		rec = json_pack("{s:s, s:s, s:s, s:o, s:b, s:i, s:I}", "type",
				"offsets", "topic", g->topic->name, "group",
				g->name, "offsets", offsets, "set", set,
				"broker", b->cfg->broker_id, "boot",
				(json_int_t)b->boot_id);
	/* In a cluster, where members are logged, it names its member too:
	 * every broker applies it only if that member holds all its
	 * partitions then.  A member ended or moved on meanwhile (its broker
	 * was cut off, or stopped) would otherwise move the new owner's
	 * offset past what nobody received.  A CMIT's record is numbered
	 * ("ask"), so that its refusal can be told (kq__commit_refused). */
	if (rec && b->cfg->npeers &&
	    (json_object_set_new(rec, "sub",
				 json_integer((json_int_t)m->sub_id)) ||
	     (req && json_object_set_new(rec, "ask",
					 json_integer((json_int_t)ask))))) {
		json_decref(rec);
		rec = NULL;
	}
	if (rec && st) {
		*st = (struct kq__storing){.b = b,
					   .req = req,
					   .sub_id = m->sub_id,
					   .ask = ask,
					   .n = set ? 0 : n};
		/* Counted before the proposal, in case its callback comes
		 * at once. */
		for (size_t i = 0; !set && i < n; i++) {
			st->acked[3 * i] = parts[i];
			st->acked[3 * i + 1] = offs[i];
			st->acked[3 * i + 2] = m->acking[parts[i]];
			m->acking[parts[i]] = offs[i];
		}
		KQ_LIST_PUSH(b->storings, st);
		rv = kq__meta_propose(b, rec, stored, st);
		for (size_t i = 0; rv != 0 && i < st->n; i++)
			m->acking[parts[i]] = st->acked[3 * i + 2];
		if (rv != 0)
			KQ_LIST_REMOVE(b->storings, st);
	}
	json_decref(rec);
	if (rv == 0)
		return 0;
	free(st);
	if (!req) {
		kq__error("group %s: offsets of %s not stored", g->name,
			  g->topic->name);
		return rv;
	}
	return rv == -ENOMEM ? kq__req_fail(req, rv, "out of memory")
			     : kq__meta_refused(b, req, rv);
}

/* Completes a CMIT that changed nothing (after this turn). */
static int unchanged(struct kq_broker *b, struct kq_req *req)
{
	req->result.commit.changed = 0;
	kq__defer_complete(b, req, 0);
	return 0;
}

/* Commits what member m was handed and has not acknowledged, on the
 * partitions it still holds (a partition that moved on goes to its new
 * owner from the committed offset).  req: the CMIT to complete once
 * stored, or NULL (CONS acknowledging the batch before). */
static int acknowledge(struct kq_broker *b, struct kq__member *m,
		       struct kq_req *req)
{
	struct kq__cgroup *g = m->cgroup;
	uint32_t nparts = g->topic->nparts, *parts;
	uint64_t *offs;
	size_t n = 0;
	int rv = 0;

	if (!m->handed)
		return req ? unchanged(b, req) : 0;
	offs = malloc(nparts * (sizeof(*offs) + sizeof(*parts)));
	parts = offs ? (uint32_t *)(offs + nparts) : NULL;
	if (!offs && req)
		return kq__req_fail(req, -ENOMEM, "out of memory");
	for (uint32_t i = 0; parts && i < nparts; i++) {
		if (g->owner[i] == m->sub_id &&
		    m->handed[i] > kq__commit_position(m, i)) {
			offs[n] = m->handed[i];
			parts[n++] = i;
		}
	}
	if (n) {
		if (req)
			req->result.commit.changed = (uint32_t)n;
		rv = store_offsets(b, m, parts, offs, n, 0, req);
	} else if (req) {
		rv = unchanged(b, req);
	}
	/* A CMIT refused at once changes nothing: the batch is still
	 * handed out, and acknowledged by the next try. */
	if (rv == 0 || !req)
		for (uint32_t i = 0; i < nparts; i++)
			m->handed[i] = 0;
	free(offs);
	return rv;
}

/* Sets the group's committed offset of partition p to `offset`, given
 * the partition's end.  It changes when the record is applied, which
 * also drops the batches handed out before on every broker
 * (kq__commit_seeked). */
static int seek(struct kq_broker *b, struct kq_req *req, struct kq__member *m,
		uint32_t p, uint64_t offset, uint64_t end)
{
	struct kq__cgroup *g = m->cgroup;
	const int *ids;
	int moved;

	if (offset > end)
		return kq__req_fail(req, KQ_EBADARG,
				    "offset %" PRIu64
				    " is past the end of %s-%u (%" PRIu64 ")",
				    offset, g->topic->name, p, end);
	moved = g->committed[p] != offset ||
		kq__commit_position(m, p) != offset;
	/* In a cluster the record goes out even when nothing moves: its
	 * seek count is what cancels a batch another broker handed out. */
	if (moved || kq__partition_brokers(b, &ids) > 1) {
		req->result.commit.changed = (uint32_t)moved;
		return store_offsets(b, m, &p, &offset, 1, 1, req);
	}
	/* Already there on a single broker: nothing to store, only the
	 * batch handed out here is not acknowledged. */
	if (m->handed)
		m->handed[p] = 0;
	return unchanged(b, req);
}

/* The member sub_id of `topic`, holding partition `part`. */
static int holder(struct kq_broker *b, const char *topic, uint64_t sub_id,
		  uint32_t part, struct kq__member **out, struct kq_req *req)
{
	int rv = kq__member_find(b, topic, sub_id, out, req->errmsg,
				 sizeof(req->errmsg));

	if (rv != 0)
		return rv;
	if (part >= (*out)->cgroup->topic->nparts ||
	    (*out)->cgroup->owner[part] != sub_id)
		return kq__req_fail(req, KQ_EBADARG,
				    "subscription %" PRIu64
				    " does not hold partition %" PRIu32
				    " of %s",
				    sub_id, part, topic);
	return 0;
}

/* A CMIT with an offset of a partition this broker holds no replica of:
 * its end is asked of a broker that holds one.  Listed in b->seekings
 * until the answer comes, so that a stop can answer it at once. */
struct kq__seeking {
	struct kq_broker *b;
	struct kq_req *req;
	struct kq__fetch *fetch;
	char topic[KQ__NAME_MAX + 1];
	uint64_t sub_id, offset;
	uint32_t part;
	struct kq__seeking *prev, *next;
};

static void on_end(void *ctx, struct kq__chunk *ch)
{
	struct kq__seeking *sk = ctx;
	struct kq_broker *b = sk->b;
	struct kq_req *req = sk->req;
	struct kq__member *m;
	int rv = ch->status;

	KQ_LIST_REMOVE(b->seekings, sk);
	if (rv < 0)
		kq__req_fail(req, rv, "%s", ch->errmsg);
	/* The member may have left, or lost the partition, meanwhile. */
	else if ((rv = holder(b, sk->topic, sk->sub_id, sk->part, &m, req)) ==
		 0)
		rv = seek(b, req, m, sk->part, sk->offset, ch->end);
	kq__chunk_free(ch);
	if (rv < 0)
		kq__defer_complete(b, req, rv);
	free(sk);
}

void kq__commit_stop(struct kq_broker *b)
{
	while (b->seekings) {
		struct kq__seeking *sk = b->seekings;

		KQ_LIST_REMOVE(b->seekings, sk);
		kq__fetch_cancel(sk->fetch);
		kq__defer_complete(b, sk->req,
				   kq__req_fail(sk->req, KQ_EUNAVAILABLE,
						"broker is stopping"));
		free(sk);
	}
}

int kq__commit(struct kq_session *s, struct kq_req *req, const char *topic,
	       uint64_t sub_id, int64_t partition, uint64_t offset,
	       kq_req_cb cb)
{
	struct kq_broker *b = s->b;
	struct kq__partition *p;
	struct kq__member *m;
	struct kq__seeking *sk;
	int rv;

	kq__req_init(req, s, KQ_REQ_COMMIT, cb);
	if (b->stopping)
		return kq__req_fail(req, KQ_EUNAVAILABLE, "broker is stopping");
	if (partition < 0) {
		rv = kq__member_find(b, topic, sub_id, &m, req->errmsg,
				     sizeof(req->errmsg));
		return rv != 0 ? rv : acknowledge(b, m, req);
	}
	if (partition > UINT32_MAX)
		return kq__req_fail(req, KQ_EBADARG,
				    "partition %" PRId64
				    " of %s does not exist",
				    partition, topic);
	rv = holder(b, topic, sub_id, (uint32_t)partition, &m, req);
	if (rv != 0)
		return rv;
	p = &m->cgroup->topic->parts[partition];
	rv = kq__partition_usable(p, req->errmsg, sizeof(req->errmsg));
	if (rv == 0)
		return seek(b, req, m, p->id, offset,
			    b->cops->commit_end(p->group));
	if (!kq__partition_held_elsewhere(b, p))
		return rv;
	/* Only the end is asked: a read from the last offset there is. */
	sk = calloc(1, sizeof(*sk));
	if (!sk)
		return kq__req_fail(req, -ENOMEM, "out of memory");
	*sk = (struct kq__seeking){.b = b,
				   .req = req,
				   .sub_id = sub_id,
				   .offset = offset,
				   .part = p->id};
	snprintf(sk->topic, sizeof(sk->topic), "%s", topic);
	rv = kq__fetch_start(b, p->topic, p->id, UINT64_MAX, UINT64_MAX, 1, 1,
			     on_end, sk, &sk->fetch);
	if (rv != 0) {
		free(sk);
		return kq__req_fail(req, rv, "out of memory");
	}
	KQ_LIST_PUSH(b->seekings, sk);
	return 0;
}

void kq__commit_acknowledge(struct kq_broker *b, struct kq__member *m)
{
	acknowledge(b, m, NULL);
}
