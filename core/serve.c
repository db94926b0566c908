/* Runs requests other brokers forwarded here (forward.c sends them) as
 * a local client's are, and a forward whose leader turned out to be this
 * broker, and answers reads of replicas held here (fetch.c asks them).
 * Every request gets exactly one answer (wire.h), with "moved" set when
 * it was not run here, so that the sender may ask elsewhere. */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>

#include "bounds.h"
#include "commit.h"
#include "create.h"
#include "forward.h"
#include "meta.h"
#include "names.h"
#include "partition.h"
#include "publish.h"
#include "serve.h"
#include "topic.h"
#include "types.h"
#include "why.h"
#include "wire.h"

/* Answers a request: from another broker (through the consensus
 * module) or from this one (a forward whose leader turned out to be us). */
typedef kq__serve_done_fn serve_done_fn;

struct served {
	struct kq_broker *b;
	serve_done_fn done;
	void *ctx;
	struct kq_req req;
	struct kq_propose_req preq;
	struct kq__ask ask; /* an offsets record's (ask 0: none) */
};

static void answer(serve_done_fn done, void *ctx, int status, int moved,
		   const char *errmsg, uint32_t nparts, uint64_t meta_end,
		   uint64_t first)
{
	uint8_t buf[KQ__WIRE_ANSWER_MAX];

	done(ctx, buf,
	     kq__wire_encode_answer(buf, status, moved, errmsg, nparts,
				    meta_end, first));
}

/* NULL, with the request answered, when out of memory. */
static struct served *served_new(struct kq_broker *b, serve_done_fn done,
				 void *ctx)
{
	struct served *sv = calloc(1, sizeof(*sv));

	if (!sv) { /* not run: the sender may ask again */
		answer(done, ctx, KQ_EUNAVAILABLE, -1, "", 0, 0, 0);
		return NULL;
	}
	sv->b = b;
	sv->done = done;
	sv->ctx = ctx;
	sv->req.data = sv;
	sv->preq.data = sv;
	return sv;
}

/* Answers "not run here" when this broker does not lead the metadata
 * (or stops): the sender asks the leader named, or waits for one. */
static int moved_meta(struct kq_broker *b, serve_done_fn done, void *ctx)
{
	int leader = b->meta_group ? b->cops->leader(b->meta_group) : 0;

	if (!b->stopping && b->serve_session && leader == b->cfg->broker_id)
		return 0;
	answer(done, ctx, KQ_EUNAVAILABLE,
	       leader && leader != b->cfg->broker_id ? leader : -1, "", 0, 0,
	       0);
	return 1;
}

static void served_create(struct kq_req *req, int status)
{
	struct served *sv = req->data;

	answer(sv->done, sv->ctx, status, 0, req->errmsg,
	       req->result.create_topic.partitions, sv->b->meta_applied_end, 0);
	free(sv);
}

static void serve_create(struct kq_broker *b, struct kq_reader *r,
			 serve_done_fn done, void *ctx)
{
	char name[KQ__NAME_MAX + 1], optbuf[KQ__FWD_MAX_OPTIONS][256];
	const char *opts[KQ__FWD_MAX_OPTIONS];
	struct kq_topic_spec spec;
	struct served *sv;
	uint16_t nopt;
	int rv;

	kq__wire_rd_str(r, name, sizeof(name) - 1);
	spec.partitions = kq_take32le(r);
	nopt = kq_take16le(r);
	if (nopt > KQ__FWD_MAX_OPTIONS)
		r->bad = 1;
	for (uint16_t i = 0; i < nopt && !r->bad; i++) {
		kq__wire_rd_str(r, optbuf[i], sizeof(optbuf[i]) - 1);
		opts[i] = optbuf[i];
	}
	if (r->bad || r->left) {
		answer(done, ctx, KQ_EINTERNAL, 0, "malformed forwarded CRTP",
		       0, 0, 0);
		return;
	}
	if (moved_meta(b, done, ctx))
		return;
	spec.name = name;
	spec.options = opts;
	spec.noptions = nopt;
	sv = served_new(b, done, ctx);
	if (!sv)
		return;
	rv = kq__create_topic_here(b->serve_session, &sv->req, &spec,
				   served_create);
	if (rv != 0) {
		answer(done, ctx, rv, 0, sv->req.errmsg, 0, 0, 0);
		free(sv);
	}
}

static void served_publish(struct kq_propose_req *preq, int status)
{
	struct served *sv = preq->data;

	kq__proposal_done(sv->b);
	answer(sv->done, sv->ctx, status, 0,
	       status ? "the partition's leader could not commit it; it may "
			"or may not be stored"
		      : "",
	       0, 0, preq->first_offset);
	free(sv);
}

static void serve_publish(struct kq_broker *b, struct kq_reader *r,
			  serve_done_fn done, void *ctx)
{
	char topic[KQ__NAME_MAX + 1], err[384];
	struct kq_record *recs = NULL;
	struct kq__partition *p = NULL;
	struct kq__topic *t;
	struct served *sv;
	uint32_t part, n;
	int leader = 0, rv;

	kq__wire_rd_str(r, topic, sizeof(topic) - 1);
	part = kq_take32le(r);
	n = kq_take32le(r);
	/* As many as a batch holds (KQ__FWD_MERGE_MSGS): a peer's request
	 * costs what a local one would. */
	if (!r->bad && n > 0 && n <= KQ__FWD_MERGE_MSGS && n <= r->left / 8)
		recs = calloc(n, sizeof(*recs));
	else
		r->bad = 1;
	for (uint32_t i = 0; recs && i < n && !r->bad; i++) {
		recs[i].value_len = kq_take32le(r);
		recs[i].value = kq_take(r, recs[i].value_len);
		recs[i].key_len = kq_take32le(r);
		recs[i].key =
			recs[i].key_len ? kq_take(r, recs[i].key_len) : NULL;
		if (!r->bad && recs[i].value_len == 0)
			r->bad = 1;
	}
	if (!recs || r->bad || r->left) {
		int oom = !r->bad && !recs;

		free(recs);
		/* Out of memory: not run, the sender may ask again. */
		answer(done, ctx, oom ? KQ_EUNAVAILABLE : KQ_EINTERNAL,
		       oom ? -1 : 0, oom ? "" : "malformed forwarded PUBS", 0,
		       0, 0);
		return;
	}
	t = kq__topic_get(b, topic);
	if (t && part < t->nparts)
		p = &t->parts[part];
	if (p && p->group)
		leader = b->cops->leader(p->group);
	if (b->stopping || !p || p->open_error || !p->group ||
	    leader != b->cfg->broker_id) {
		free(recs);
		/* Not run: the sender may ask another broker. */
		answer(done, ctx, KQ_EUNAVAILABLE,
		       leader && leader != b->cfg->broker_id ? leader : -1, "",
		       0, 0, 0);
		return;
	}
	sv = served_new(b, done, ctx);
	if (!sv) {
		free(recs);
		return;
	}
	rv = b->cops->propose(p->group, &sv->preq, recs, n, served_publish);
	free(recs);
	if (rv == 0) {
		b->proposals++;
	} else if (rv == KQ_EUNAVAILABLE) {
		free(sv);
		answer(done, ctx, rv, -1, "", 0, 0, 0);
	} else if (rv != 0) {
		free(sv);
		snprintf(err, sizeof(err),
			 "partition %.200s-%u is not accepting writes: %s",
			 topic, part, kq__why(rv));
		answer(done, ctx, KQ_EUNAVAILABLE, 0, err, 0, 0, 0);
	}
}

static void served_meta(void *ctx, int status)
{
	struct served *sv = ctx;
	const char *why =
		status ? "the metadata leader could not commit it" : "";

	/* Applied here just now, without partitions its member no longer
	 * held: said so, since the proposer may get the record only inside
	 * a snapshot, and not see that itself. */
	if (!status && sv->ask.ask && kq__commit_was_refused(sv->b, &sv->ask)) {
		status = KQ_EBADARG;
		why = "refused: its member no longer held all its partitions";
	}
	answer(sv->done, sv->ctx, status, 0, why, 0, sv->b->meta_applied_end,
	       0);
	free(sv);
}

/* ------------------------------------------------------------ reads */

/* An answer being encoded: the records read so far, and the budget. */
struct answer {
	struct kq__wire w;
	size_t used, budget;
	uint32_t count, max;
};

static int take_record(void *ctx, const struct kq_record *rec)
{
	struct answer *a = ctx;
	uint8_t h[12];

	if (rec->flags & KQ_RECORD_CONTROL)
		return 0;
	kq_put64le(h, rec->offset);
	kq_put32le(h + 8, rec->value_len);
	kq__wire_put(&a->w, h, sizeof(h));
	kq__wire_put(&a->w, rec->value, rec->value_len);
	a->count++;
	a->used += rec->value_len + 32;
	return a->w.oom || a->used >= a->budget ||
	       (a->max && a->count >= a->max);
}

static void read_refused(serve_done_fn done, void *ctx, int status,
			 const char *errmsg)
{
	uint8_t buf[KQ__WIRE_READ_HEAD_MAX];

	done(ctx, buf, kq__wire_encode_read_head(buf, status, errmsg, 0, 0, 0));
}

/* A read another broker's fetch.c asks for: committed records of a
 * replica held here, within the budget it gives. */
static void serve_read(struct kq_broker *b, struct kq_reader *r,
		       serve_done_fn done, void *ctx)
{
	char name[KQ__NAME_MAX + 1], errmsg[640] = "";
	uint16_t n = kq_take16le(r);
	const uint8_t *s = kq_take(r, n);
	uint32_t part = kq_take32le(r);
	uint64_t pos = kq_take64le(r), end = kq_take64le(r), next;
	struct answer a = {0};
	struct kq__topic *t;
	struct kq__partition *p;
	/* The head's place in the answer, written once the rest is known. */
	uint8_t head[KQ__WIRE_READ_HEAD_MAX] = {0};
	size_t hlen;
	int rv;

	a.budget = kq_take32le(r);
	a.max = kq_take32le(r);
	if (r->bad || !s || n > KQ__NAME_MAX || r->left != 0) {
		read_refused(done, ctx, KQ_EINTERNAL, "malformed read request");
		return;
	}
	memcpy(name, s, n);
	name[n] = '\0';
	if (a.budget == 0 || a.budget > KQ__WIRE_READ_MAX)
		a.budget = KQ__WIRE_READ_MAX;
	t = kq__topic_get(b, name);
	if (!t || part >= t->nparts) {
		snprintf(errmsg, sizeof(errmsg),
			 "partition %s-%" PRIu32 " is not known on broker %d",
			 name, part, b->cfg->broker_id);
		read_refused(done, ctx, KQ_EUNAVAILABLE, errmsg);
		return;
	}
	p = &t->parts[part];
	rv = kq__partition_usable(p, errmsg, sizeof(errmsg));
	if (rv == 0)
		rv = kq__read_bounds(b, p, &pos, &end, errmsg, sizeof(errmsg));
	if (rv != 0) {
		read_refused(done, ctx, rv, errmsg);
		return;
	}
	kq__wire_put(&a.w, head, KQ__WIRE_READ_HEAD_MAX);
	next = pos;
	if (pos < end) {
		rv = b->sops->read(p->store.log, pos, end, a.budget,
				   take_record, &a, &next);
		if (next < pos)
			next = pos;
		if (rv < 0) {
			if (rv == KQ_ECORRUPT)
				snprintf(errmsg, sizeof(errmsg),
					 "partition %s-%u is damaged at offset "
					 "%" PRIu64
					 "; it is readable only up to there",
					 name, part, next);
			else
				snprintf(errmsg, sizeof(errmsg),
					 "partition %s-%u cannot be read at "
					 "offset %" PRIu64 " on broker %d: %s",
					 name, part, next, b->cfg->broker_id,
					 kq_strerror(rv));
			if (rv != KQ_EUNAVAILABLE)
				rv = KQ_EINTERNAL;
		} else if (rv == 0 && next == pos) {
			next = end; /* offsets have a gap up to the end */
		}
	}
	if (a.w.oom) {
		free(a.w.p);
		read_refused(done, ctx, KQ_EUNAVAILABLE,
			     "out of memory on the broker read from");
		return;
	}
	/* The header goes right before the records. */
	hlen = kq__wire_encode_read_head(head, rv < 0 ? rv : 0, errmsg, next,
					 end, a.count);
	memcpy(a.w.p + KQ__WIRE_READ_HEAD_MAX - hlen, head, hlen);
	done(ctx, a.w.p + KQ__WIRE_READ_HEAD_MAX - hlen,
	     a.w.len - (KQ__WIRE_READ_HEAD_MAX - hlen));
	free(a.w.p);
}

/* Records other brokers may write: their own acknowledged offsets,
 * subscription id reservations, registration and members' joins, the end
 * of their own run's members (as they stop, or their metadata log
 * failed), and leaves (UNSB works by id on any broker).  Topics come only
 * through CRTP, which the leader checks itself; other expiries only from
 * the leader. */
static int meta_type_ok(const uint8_t *text, size_t len, int from,
			struct kq__ask *ask)
{
	json_t *rec = json_loadb((const char *)text, len, 0, NULL);
	const char *type =
		rec ? json_string_value(json_object_get(rec, "type")) : NULL;
	int own = json_integer_value(json_object_get(rec, "broker")) == from;
	int owner = json_integer_value(json_object_get(rec, "owner")) == from;
	const char *why = json_string_value(json_object_get(rec, "why"));
	/* A record that names its broker names the sender: a record of
	 * this run is skipped by the broker it names (apply.c), so a forged
	 * one would be applied everywhere but there. */
	int ok = type && (strcmp(type, "leave") == 0 ||
			  (owner && strcmp(type, "sub_ids") == 0) ||
			  (own && (strcmp(type, "offsets") == 0 ||
				   strcmp(type, "join") == 0 ||
				   strcmp(type, "register") == 0 ||
				   (strcmp(type, "expire") == 0 && why &&
				    (strcmp(why, "stop") == 0 ||
				     strcmp(why, "failed") == 0)))));

	ask->broker = from;
	ask->boot = (uint64_t)json_integer_value(json_object_get(rec, "boot"));
	ask->ask = (uint64_t)json_integer_value(json_object_get(rec, "ask"));
	json_decref(rec);
	return ok;
}

static void serve_meta(struct kq_broker *b, struct kq_reader *r, int from,
		       serve_done_fn done, void *ctx)
{
	struct served *sv;
	struct kq__ask ask;
	int rv;

	if (!meta_type_ok(r->p, r->left, from, &ask)) {
		answer(done, ctx, KQ_EINTERNAL, 0,
		       "malformed forwarded metadata record", 0, 0, 0);
		return;
	}
	if (moved_meta(b, done, ctx))
		return;
	sv = served_new(b, done, ctx);
	if (!sv)
		return;
	sv->ask = ask;
	rv = kq__meta_propose_text(b, (const char *)r->p, r->left, served_meta,
				   sv);
	if (rv != 0) {
		answer(done, ctx, KQ_EUNAVAILABLE,
		       rv == KQ_EUNAVAILABLE ? -1 : 0, "", 0, 0, 0);
		free(sv);
	}
}

static void serve(struct kq_broker *b, int from, const uint8_t *req, size_t len,
		  serve_done_fn done, void *ctx)
{
	struct kq_reader r = {req, len, 0};
	uint8_t kind = kq_take8(&r);

	if (kind == KQ__FWD_CREATE)
		serve_create(b, &r, done, ctx);
	else if (kind == KQ__FWD_PUBLISH)
		serve_publish(b, &r, done, ctx);
	else if (kind == KQ__FWD_META)
		serve_meta(b, &r, from, done, ctx);
	else if (kind == KQ__FWD_FETCH)
		serve_read(b, &r, done, ctx);
	else
		answer(done, ctx, KQ_EINTERNAL, 0, "unknown forwarded request",
		       0, 0, 0);
}

struct remote {
	struct kq_broker *b;
	struct kq_incoming *in;
};

static void remote_done(void *ctx, const uint8_t *ans, size_t len)
{
	struct remote *rm = ctx;

	rm->b->cops->reply(rm->b->consensus.state, rm->in, ans, len);
	free(rm);
}

void kq__serve(const struct kq_host *host, struct kq_incoming *in, int from,
	       const void *req, size_t len)
{
	struct kq_broker *b =
		(struct kq_broker *)((char *)host -
				     offsetof(struct kq_broker, consensus) -
				     offsetof(struct kq__instance, host));
	struct remote *rm = malloc(sizeof(*rm));

	if (!rm) { /* not run: the sender may ask again */
		uint8_t buf[KQ__WIRE_ANSWER_MAX];

		b->cops->reply(b->consensus.state, in, buf,
			       kq__wire_encode_answer(buf, KQ_EUNAVAILABLE, -1,
						      "", 0, 0, 0));
		return;
	}
	rm->b = b;
	rm->in = in;
	serve(b, from, req, len, remote_done, rm);
}

void kq__serve_local(struct kq_broker *b, const uint8_t *req, size_t len,
		     kq__serve_done_fn done, void *ctx)
{
	serve(b, b->cfg->broker_id, req, len, done, ctx);
}
