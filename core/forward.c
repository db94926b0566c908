/* Commands whose leader is another broker, so that any broker serves any
 * command (PROTOCOL.md): a CRTP goes to the metadata leader and a
 * partition's batch of PUBS to the partition's leader, through the
 * consensus module's call().  A broker that leads nothing, or does not
 * know the leader yet, waits for one up to topics.request_timeout_ms.
 * Requests of other brokers are served in serve.c.
 *
 * A request is sent again only when its answer says it was not run (the
 * broker asked does not lead, or was too busy to look): one whose answer
 * is lost may have been stored, so it is answered ERR UNAVAILABLE saying
 * so, never sent twice.  Nothing is answered OK that was not committed.
 * The wire format is in wire.h. */
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>
#include <kafkaesque/list.h>

#include "defer.h"
#include "forward.h"
#include "log.h"
#include "req.h"
#include "topic.h"
#include "types.h"
#include "wire.h"

/* How often requests waiting for a leader look again. */
#define FWD_RETRY_MS 20

struct kq__fwd {
	struct kq_call call;
	struct kq_broker *b;
	int kind;
	uint8_t *buf; /* the encoded request, kept to send it again */
	size_t len, cap;
	size_t count_at;     /* PUBLISH: where its message count is */
	uint64_t deadline;   /* loop time (ms) */
	int target;	     /* broker asked last; 0 while waiting */
	int refused_by;	     /* broker that answered "not me" last */
	int busy_by;	     /* broker the last try found too busy (0: none) */
	int busy_here;	     /* and the queue to it was full here */
	int in_flight;	     /* a call is out */
	int abandoned;	     /* PUBLISH answered while its call is out */
	int hops;	     /* sent straight on to a named leader in a row */
	int seen_leader;     /* the leader this broker's replica knew when the
			      * batch went out (0: none or no replica) */
	uint64_t not_before; /* loop time: tried again from then */
	unsigned pass;	     /* the timer's walk that saw it last */
	int ready;	     /* on b->fwd_ready */
	int walked;	     /* on b->fwd_walk */
	int applying;	     /* CREATE: OK, waiting for the local apply */
	int at_stop;	     /* META: sent also while the broker stops */
	uint64_t meta_end;
	uint32_t nparts;
	/* CREATE */
	struct kq_req *req;
	char *name;
	/* PUBLISH */
	struct kq__batch *bt;
	uint32_t part;
	/* META */
	void (*meta_cb)(void *ctx, int status);
	void *meta_ctx;
	struct kq__partition *p;		     /* PUBLISH: its queue */
	struct kq__fwd *prev_in_part, *next_in_part; /* in p->fwd_head */
	struct kq__fwd *prev, *next;		     /* in b->fwds */
	struct kq__fwd *prev_ready, *next_ready;     /* in b->fwd_ready */
	struct kq__fwd *prev_walk, *next_walk;	     /* in b->fwd_walk */
};

/* ------------------------------------------------------------ forwarding */

/* Whether the stop has ended f's chances: all but the record that ends
 * this run's consumer group members (KQ__META_AT_STOP), which is
 * sent and waited for until its deadline. */
static int stopped(const struct kq__fwd *f)
{
	return f->b->stopping && !f->at_stop;
}

/* Steps f on the next loop turn (the timer's walk of every request
 * comes every 20 ms while some wait). */
static void kick(struct kq__fwd *f)
{
	struct kq_broker *b = f->b;

	if (!f->ready) {
		f->ready = 1;
		KQ_LIST_APPEND_BY(b->fwd_ready, b->fwd_ready_tail, f,
				  prev_ready, next_ready);
	}
	if (!uv_is_active((uv_handle_t *)&b->fwd_timer) ||
	    uv_timer_get_due_in(&b->fwd_timer) > 0)
		uv_timer_start(&b->fwd_timer, kq__fwd_on_timer, 0,
			       FWD_RETRY_MS);
}

/* The timer's walk every 20 ms looks at the requests on b->fwd_walk
 * only: CRTPs, metadata records and the first batch of each partition's
 * queue.  A batch behind another can neither go nor go stale, and with
 * thousands queued behind a stopped leader, stepping each cost a fifth of
 * the broker's CPU. */
static void walk_add(struct kq__fwd *f)
{
	if (f->walked)
		return;
	f->walked = 1;
	KQ_LIST_APPEND_BY(f->b->fwd_walk, f->b->fwd_walk_tail, f, prev_walk,
			  next_walk);
}

static void walk_remove(struct kq__fwd *f)
{
	if (!f->walked)
		return;
	f->walked = 0;
	KQ_LIST_REMOVE_TAIL_BY(f->b->fwd_walk, f->b->fwd_walk_tail, f,
			       prev_walk, next_walk);
}

/* Takes a batch out of its partition's queue; the next one may go. */
static void queue_remove(struct kq__fwd *f)
{
	int first = f->p->fwd_head == f;

	KQ_LIST_REMOVE_TAIL_BY(f->p->fwd_head, f->p->fwd_tail, f, prev_in_part,
			       next_in_part);
	if (first) {
		walk_remove(f);
		if (f->p->fwd_head) {
			walk_add(f->p->fwd_head);
			kick(f->p->fwd_head);
		}
	}
	f->p = NULL;
}

static void fwd_free(struct kq__fwd *f)
{
	struct kq_broker *b = f->b;

	if (f->p)
		queue_remove(f);
	if (f->ready)
		KQ_LIST_REMOVE_TAIL_BY(b->fwd_ready, b->fwd_ready_tail, f,
				       prev_ready, next_ready);
	walk_remove(f);
	KQ_LIST_REMOVE_TAIL(b->fwds, b->fwds_tail, f);
	b->fwd_at_stop -= f->at_stop;
	free(f->buf);
	free(f->name);
	free(f);
}

/* Answers a forwarded CRTP's client. */
static void create_finish(struct kq__fwd *f, int status)
{
	struct kq_req *req = f->req;

	if (status == 0)
		req->result.create_topic.partitions = f->nparts;
	fwd_free(f);
	req->cb(req, status);
}

/* Answers every PUBS of a forwarded batch. */
/* Answers every PUBS of a batch, once it is out of every list: the
 * callbacks may publish again, into the same partition. */
static void batch_answer(struct kq__batch *bt, uint32_t part, int status,
			 uint64_t first, const char *errmsg)
{
	for (size_t i = 0; i < bt->n; i++) {
		struct kq_req *req = bt->reqs[i];

		if (status == 0) {
			req->result.publish.partition = part;
			req->result.publish.offset = first + i;
		} else {
			snprintf(req->errmsg, sizeof(req->errmsg), "%s",
				 errmsg);
		}
		req->cb(req, status ? KQ_EUNAVAILABLE : 0);
	}
	kq__req_batch_free(bt);
}

static void publish_finish(struct kq__fwd *f, int status, uint64_t first,
			   const char *errmsg)
{
	struct kq__batch *bt = f->bt;
	uint32_t part = f->part;

	fwd_free(f);
	batch_answer(bt, part, status, first, errmsg);
}

/* Tells a forwarded metadata record's proposer how it went. */
static void meta_finish(struct kq__fwd *f, int status)
{
	void (*cb)(void *ctx, int status) = f->meta_cb;
	void *ctx = f->meta_ctx;

	fwd_free(f);
	if (cb)
		cb(ctx, status);
}

static void fwd_fail(struct kq__fwd *f, int status, const char *errmsg)
{
	if (f->kind == KQ__FWD_META) {
		kq__debug("forwarded metadata record: %s", errmsg);
		meta_finish(f, status);
	} else if (f->kind == KQ__FWD_CREATE) {
		snprintf(f->req->errmsg, sizeof(f->req->errmsg), "%s", errmsg);
		create_finish(f, status);
	} else {
		publish_finish(f, status, 0, errmsg);
	}
}

/* What this request is about, for messages. */
static void what(const struct kq__fwd *f, char *out, size_t len)
{
	if (f->kind != KQ__FWD_PUBLISH)
		snprintf(out, len, "the metadata");
	else
		snprintf(out, len, "partition %s-%u", f->name, f->part);
}

int kq__fwd_pick(const int *replicas, size_t n, uint32_t part, int self,
		 int refused_by, int (*up)(void *ctx, int id), void *ctx)
{
	int refused_up = 0;

	for (size_t k = 0; k < n; k++) {
		int id = replicas[(part + k) % n];

		if (id == self || !up(ctx, id))
			continue;
		if (id != refused_by)
			return id;
		refused_up = id;
	}
	/* Skipped for good, a partition of one replica that was asked
	 * before it elected itself would never be asked again. */
	return refused_up;
}

static int peer_up(void *ctx, int id)
{
	struct kq_broker *b = ctx;

	return b->cops->peer_up(b->consensus.state, id);
}

/* The broker that should run it, as this broker sees it: 0 when not
 * known, this broker's id when it is us. */
static int route(struct kq__fwd *f)
{
	struct kq_broker *b = f->b;
	struct kq__topic *t;
	struct kq__partition *p;

	if (f->kind != KQ__FWD_PUBLISH) {
		int leader = b->meta_group ? b->cops->leader(b->meta_group) : 0;

		/* This broker's metadata log failed, and its group stopped
		 * or is closed: any broker up knows the leader and says
		 * which. */
		if (f->kind == KQ__FWD_META &&
		    (!b->meta_group || b->meta_store.failed) &&
		    (leader == 0 || leader == b->cfg->broker_id))
			leader = kq__fwd_pick(b->broker_ids, b->nbroker_ids, 0,
					      b->cfg->broker_id, f->refused_by,
					      peer_up, b);
		return leader;
	}
	t = kq__topic_get(b, f->name);
	if (!t || f->part >= t->nparts)
		return 0;
	p = &t->parts[f->part];
	if (p->group && !p->open_error)
		return b->cops->leader(p->group);
	/* No replica here: any replica knows its leader and says which. */
	return kq__fwd_pick(p->replicas, p->nreplicas, f->part,
			    b->cfg->broker_id, f->refused_by, peer_up, b);
}

/* Tried again from the timer; at a stop nothing is tried again. */
static void wait_more(struct kq__fwd *f)
{
	struct kq_broker *b = f->b;

	f->target = 0;
	f->hops = 0;
	f->not_before = uv_now(b->loop) + FWD_RETRY_MS;
	if (stopped(f)) {
		fwd_fail(f, KQ_EUNAVAILABLE, "broker is stopping");
		return;
	}
	if (!uv_is_active((uv_handle_t *)&b->fwd_timer))
		uv_timer_start(&b->fwd_timer, kq__fwd_on_timer, FWD_RETRY_MS,
			       FWD_RETRY_MS);
}

static void on_answer(struct kq__fwd *f, const uint8_t *ans, size_t len);
static void fwd_send(struct kq__fwd *f);

static void local_done(void *ctx, const uint8_t *ans, size_t len)
{
	struct kq__fwd *f = ctx;

	f->in_flight = 0;
	on_answer(f, ans, len);
}

static void on_call(struct kq_call *call, int status, const void *reply,
		    size_t len)
{
	struct kq__fwd *f = call->data;
	char err[256], about[96];

	f->in_flight = 0;
	if (f->abandoned) { /* its clients were answered already */
		fwd_free(f);
		return;
	}
	if (status == 0) {
		on_answer(f, reply, len);
		return;
	}
	if (status == KQ_EBUSY) { /* not looked at: ask again */
		f->busy_by = f->target;
		f->busy_here = 0;
		wait_more(f);
		return;
	}
	what(f, about, sizeof(about));
	if (status == KQ_ECANCELED || stopped(f))
		snprintf(err, sizeof(err),
			 "the broker is stopping; %s forwarded to broker %d "
			 "may or may not be stored",
			 f->kind == KQ__FWD_CREATE ? "the CRTP" : "what was",
			 f->target);
	else
		snprintf(err, sizeof(err),
			 "%s: no answer from broker %d within "
			 "topics.request_timeout_ms (%u ms) or its connection "
			 "closed; %s",
			 about, f->target, f->b->cfg->request_timeout_ms,
			 f->kind == KQ__FWD_CREATE
				 ? "the topic may or may not be created"
				 : "the messages may or may not be stored");
	fwd_fail(f, KQ_EUNAVAILABLE, err);
}

/* What this broker's replica of f's partition says leads it now. */
static int local_view(const struct kq__fwd *f)
{
	const struct kq__partition *p = f->p;

	return p && p->group && !p->open_error ? f->b->cops->leader(p->group)
					       : 0;
}

/* Sends the request where it belongs, runs it here, or waits. */
static void fwd_send(struct kq__fwd *f)
{
	struct kq_broker *b = f->b;
	uint64_t now = uv_now(b->loop);
	int to = route(f), rv;
	char err[256], about[96];

	if (now >= f->deadline) {
		what(f, about, sizeof(about));
		if (f->busy_by) /* reached, but never taken: say so */
			snprintf(err, sizeof(err),
				 "%s: broker %d was too busy to take the "
				 "request within topics.request_timeout_ms "
				 "(%u ms) (%s); nothing was stored",
				 about, f->busy_by, b->cfg->request_timeout_ms,
				 f->busy_here ? "the connection to it was full"
					      : "it served too many requests "
						"of other brokers");
		else
			snprintf(err, sizeof(err),
				 "%s has no leader this broker can reach "
				 "within topics.request_timeout_ms (%u ms); "
				 "nothing was stored",
				 about, b->cfg->request_timeout_ms);
		fwd_fail(f, KQ_EUNAVAILABLE, err);
		return;
	}
	if (stopped(f)) {
		fwd_fail(f, KQ_EUNAVAILABLE, "broker is stopping");
		return;
	}
	f->busy_by = 0; /* this try tells */
	if (to == b->cfg->broker_id) {
		f->target = to;
		f->in_flight = 1;
		b->serve_local_cb(b, f->buf, f->len, local_done, f);
		return;
	}
	if (to <= 0) {
		wait_more(f);
		return;
	}
	f->target = to;
	f->call.data = f;
	rv = b->cops->call(b->consensus.state, &f->call, to, f->buf, f->len,
			   (unsigned)(f->deadline - now), on_call);
	if (rv == -E2BIG) {
		snprintf(err, sizeof(err),
			 "%zu bytes are too many to forward to broker %d; "
			 "nothing was stored",
			 f->len, to);
		fwd_fail(f, KQ_EUNAVAILABLE, err);
		return;
	}
	if (rv != 0) { /* not sent: ask again soon */
		if (rv == KQ_EBUSY) {
			f->busy_by = to;
			f->busy_here = 1;
		}
		wait_more(f);
		return;
	}
	f->in_flight = 1;
	f->seen_leader = local_view(f);
	b->nforwarded++;
	if (f->kind == KQ__FWD_PUBLISH &&
	    !uv_is_active((uv_handle_t *)&b->fwd_timer))
		uv_timer_start(&b->fwd_timer, kq__fwd_on_timer, FWD_RETRY_MS,
			       FWD_RETRY_MS);
}

/* A CRTP or metadata record the leader committed: done. */
static void applied_finish(struct kq__fwd *f)
{
	if (f->kind == KQ__FWD_META)
		meta_finish(f, 0);
	else
		create_finish(f, 0);
}

/* Whether a created topic is applied and opened here. */
static int applied_here(struct kq__fwd *f)
{
	struct kq__topic *t;

	if (f->b->meta_applied_end < f->meta_end)
		return 0;
	t = kq__topic_get(f->b, f->name);
	return !t || t->open_next >= t->nparts;
}

static void on_answer(struct kq__fwd *f, const uint8_t *ans, size_t len)
{
	struct kq_reader r = {ans, len, 0};
	int status = (int)kq_take32le(&r), moved = (int)kq_take32le(&r);
	char err[256];
	uint64_t meta_end, first;

	kq__wire_rd_string(&r, err, sizeof(err) - 1, 1);
	f->nparts = kq_take32le(&r);
	meta_end = kq_take64le(&r);
	first = kq_take64le(&r);
	/* A status is 0 or an error code (a negative errno or KQ_E*): a
	 * positive one would read as success. */
	if (r.bad || status > 0 || status < -20000) {
		fwd_fail(f, KQ_EUNAVAILABLE,
			 "malformed answer of a forwarded "
			 "request; it may or may not have run");
		return;
	}
	if (moved) { /* not run there */
		f->refused_by = f->target;
		/* Two brokers with stale views may name each other: a few
		 * hops, then the 20 ms wait. */
		if (moved > 0 && moved != f->target &&
		    moved != f->b->cfg->broker_id && ++f->hops <= 3) {
			/* Straight to the leader it named. */
			int to = moved;

			f->target = to;
			f->call.data = f;
			if (uv_now(f->b->loop) < f->deadline &&
			    f->b->cops->call(f->b->consensus.state, &f->call,
					     to, f->buf, f->len,
					     (unsigned)(f->deadline -
							uv_now(f->b->loop)),
					     on_call) == 0) {
				f->in_flight = 1;
				f->seen_leader = local_view(f);
				return;
			}
		}
		wait_more(f);
		return;
	}
	if (f->kind == KQ__FWD_PUBLISH) {
		publish_finish(f, status, first, err);
		return;
	}
	if (f->kind == KQ__FWD_META && status != 0) {
		fwd_fail(f, status, err);
		return;
	}
	if (status != 0) {
		snprintf(f->req->errmsg, sizeof(f->req->errmsg), "%s", err);
		create_finish(f, status);
		return;
	}
	/* Created: answered once this broker applied it too, so that the
	 * client's next command here finds the topic. */
	f->applying = 1;
	f->meta_end = meta_end;
	if (applied_here(f)) {
		applied_finish(f);
		return;
	}
	if (!uv_is_active((uv_handle_t *)&f->b->fwd_timer))
		uv_timer_start(&f->b->fwd_timer, kq__fwd_on_timer, FWD_RETRY_MS,
			       FWD_RETRY_MS);
}

/* A batch out to a broker that this broker's replica now knows does not
 * lead the partition any more: it waits for an answer that may take until
 * the deadline (the broker asked may be stopped, or cut off). */
static int stale(const struct kq__fwd *f)
{
	struct kq_broker *b = f->b;
	int leader;

	if (f->kind != KQ__FWD_PUBLISH || !f->in_flight || f->abandoned ||
	    f->target <= 0 || f->target == b->cfg->broker_id || !f->p ||
	    !f->p->group || f->p->open_error)
		return 0;
	leader = b->cops->leader(f->p->group);
	/* Only news counts: a view older than the broker that named the
	 * target is not. */
	return leader > 0 && leader != f->target && leader != f->seen_leader;
}

/* Answers a stale batch's clients now, saying that it may or may not be
 * stored (it was never refused), and lets the batches behind it go to the
 * new leader; the call's own answer is dropped when it comes. */
static void abandon(struct kq__fwd *f)
{
	struct kq__batch *bt = f->bt;
	char err[256];

	snprintf(err, sizeof(err),
		 "partition %.80s-%u: broker %d, asked to store these "
		 "messages, does not lead it any more (broker %d does); they "
		 "may or may not be stored",
		 f->name, f->part, f->target, f->b->cops->leader(f->p->group));
	f->abandoned = 1;
	f->bt = NULL;
	queue_remove(f);
	batch_answer(bt, f->part, KQ_EUNAVAILABLE, 0, err);
}

/* Not out, and not queued behind another batch of its partition. */
static int may_send(const struct kq__fwd *f)
{
	return !f->in_flight && (!f->p || f->p->fwd_head == f);
}

/* One step of the timer's walk for f (which may run callbacks). */
static void step(struct kq__fwd *f)
{
	struct kq_broker *b = f->b;

	if (stale(f)) {
		abandon(f);
		return;
	}
	if (!may_send(f))
		return;
	if (f->applying) {
		if (!applied_here(f) && uv_now(b->loop) < f->deadline &&
		    !b->stopping)
			return;
		applied_finish(f);
		return;
	}
	if (f->target != 0 || uv_now(b->loop) < f->not_before)
		return;
	fwd_send(f);
}

/* Whether f needs the timer: to be sent, to see its topic applied, or
 * (a batch out) to be watched for a leader change. */
static int needs_timer(const struct kq__fwd *f)
{
	return may_send(f) ||
	       (f->in_flight && f->kind == KQ__FWD_PUBLISH && !f->abandoned);
}

void kq__fwd_on_timer(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;
	struct kq__fwd *f;
	uint64_t now = uv_now(b->loop);
	unsigned pass = ++b->fwd_pass;
	int waiting = 0;

	/* A step may answer clients, whose callbacks may free any other
	 * request, so no pointer is kept across one.  First those kicked:
	 * a new request, or the next of a partition's queue.  One kicked
	 * again meanwhile waits for the next turn. */
	while ((f = b->fwd_ready) != NULL && f->pass != pass) {
		KQ_LIST_REMOVE_TAIL_BY(b->fwd_ready, b->fwd_ready_tail, f,
				       prev_ready, next_ready);
		f->ready = 0;
		f->pass = pass;
		b->fwd_looked++;
		step(f);
	}
	/* Then those walked (walk_add), every 20 ms at most, not every loop
	 * turn: for those waiting for a leader or their time, and batches
	 * out to a broker that no longer leads.  Each is taken from the
	 * head and moved to the tail before its step, and the walk ends at
	 * one it has seen: once round, in order.  (Starting over after each
	 * step made the walk quadratic: thousands of batches waiting for
	 * leaders held the loop for tens of ms every 20 ms.) */
	if (now >= b->fwd_walk_at) {
		b->fwd_walk_at = now + FWD_RETRY_MS;
		b->fwd_walks++;
		pass = ++b->fwd_pass;
		while ((f = b->fwd_walk) != NULL && f->pass != pass) {
			b->fwd_looked++;
			f->pass = pass;
			KQ_LIST_REMOVE_TAIL_BY(b->fwd_walk, b->fwd_walk_tail, f,
					       prev_walk, next_walk);
			KQ_LIST_APPEND_BY(b->fwd_walk, b->fwd_walk_tail, f,
					  prev_walk, next_walk);
			step(f);
		}
	}
	waiting = b->fwd_ready != NULL; /* kicked again: the next turn */
	for (f = b->fwd_walk; f && !waiting; f = f->next_walk)
		waiting = needs_timer(f);
	if (!waiting || (b->stopping && !b->fwd_at_stop))
		uv_timer_stop(tm);
	else if (!uv_is_active((uv_handle_t *)tm))
		uv_timer_start(tm, kq__fwd_on_timer, FWD_RETRY_MS,
			       FWD_RETRY_MS);
}

static struct kq__fwd *fwd_new(struct kq_broker *b, int kind, const char *name)
{
	struct kq__fwd *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->name = strdup(name);
	if (!f->name) {
		free(f);
		return NULL;
	}
	f->b = b;
	f->kind = kind;
	f->deadline = uv_now(b->loop) + b->cfg->request_timeout_ms;
	KQ_LIST_APPEND(b->fwds, b->fwds_tail, f);
	if (kind != KQ__FWD_PUBLISH) /* a batch, once first of its queue */
		walk_add(f);
	/* Sent from the timer, at once: the caller must not see its
	 * callbacks before it returns. */
	kick(f);
	return f;
}

int kq__fwd_create(struct kq_broker *b, struct kq_req *req,
		   const struct kq_topic_spec *spec, uint32_t nparts)
{
	struct kq__fwd *f;
	struct kq__wire w = {0};

	if (spec->noptions > KQ__FWD_MAX_OPTIONS)
		return -E2BIG;
	kq__wire_put8(&w, KQ__FWD_CREATE);
	kq__wire_put_str(&w, spec->name);
	kq__wire_put32(&w, nparts);
	kq__wire_put16(&w, (uint16_t)spec->noptions);
	for (size_t i = 0; i < spec->noptions; i++)
		kq__wire_put_str(&w, spec->options[i]);
	f = w.oom ? NULL : fwd_new(b, KQ__FWD_CREATE, spec->name);
	if (!f) {
		free(w.p);
		return -ENOMEM;
	}
	f->buf = w.p;
	f->len = w.len;
	f->req = req;
	return 0;
}

static void put_records(struct kq__wire *w, const struct kq__batch *bt)
{
	size_t off = 0;

	for (size_t i = 0; i < bt->n; i++) {
		kq__wire_put32(w, bt->lens[i]);
		kq__wire_put(w, bt->buf + off, bt->lens[i]);
		kq__wire_put32(w, bt->klens[i]);
		kq__wire_put(w, bt->buf + off + bt->lens[i], bt->klens[i]);
		off += bt->lens[i] + bt->klens[i];
	}
}

/* Adds bt to the batch waiting at the end of p's queue, when there is one
 * not yet out with room left: while one batch is out, the next gathers
 * everything that comes meanwhile.  Returns 1 when done (bt taken). */
static int merge(struct kq__partition *p, struct kq__batch *bt)
{
	struct kq__fwd *f = p->fwd_tail;
	struct kq__batch *into = f ? f->bt : NULL;
	struct kq__wire w;
	struct kq_req **reqs;

	if (!f || f->in_flight || into->n + bt->n > KQ__FWD_MERGE_MSGS ||
	    f->len + bt->used > KQ__FWD_MERGE_BYTES)
		return 0;
	reqs = realloc(into->reqs, (into->n + bt->n) * sizeof(*reqs));
	if (!reqs)
		return 0;
	into->reqs = reqs;
	w = (struct kq__wire){f->buf, f->len, f->cap, 0};
	put_records(&w, bt);
	f->buf = w.p;
	f->cap = w.cap;
	if (w.oom)
		return 0; /* f->len unchanged: the request stays whole */
	f->len = w.len;
	memcpy(reqs + into->n, bt->reqs, bt->n * sizeof(*reqs));
	into->n += bt->n;
	into->cap = into->n;
	kq_put32le(f->buf + f->count_at, (uint32_t)into->n);
	kq__req_batch_free(bt);
	return 1;
}

void kq__fwd_publish(struct kq_broker *b, struct kq__partition *p,
		     struct kq__batch *bt)
{
	struct kq__fwd *f;
	struct kq__wire w = {0};
	size_t count_at;

	if (merge(p, bt))
		return;
	kq__wire_put8(&w, KQ__FWD_PUBLISH);
	kq__wire_put_str(&w, p->topic->name);
	kq__wire_put32(&w, p->id);
	count_at = w.len;
	kq__wire_put32(&w, (uint32_t)bt->n);
	put_records(&w, bt);
	f = w.oom ? NULL : fwd_new(b, KQ__FWD_PUBLISH, p->topic->name);
	if (!f) {
		free(w.p);
		/* Its answers wait for the end of the loop turn. */
		for (size_t i = 0; i < bt->n; i++) {
			snprintf(bt->reqs[i]->errmsg,
				 sizeof(bt->reqs[i]->errmsg), "out of memory");
			kq__defer_complete(b, bt->reqs[i], KQ_EUNAVAILABLE);
		}
		kq__req_batch_free(bt);
		return;
	}
	f->buf = w.p;
	f->len = w.len;
	f->cap = w.cap;
	f->count_at = count_at;
	f->bt = bt;
	f->part = p->id;
	f->p = p;
	KQ_LIST_APPEND_BY(p->fwd_head, p->fwd_tail, f, prev_in_part,
			  next_in_part);
	if (p->fwd_head == f)
		walk_add(f);
	/* Encoded: the batch keeps only its requests. */
	free(bt->buf);
	bt->buf = NULL;
	bt->used = bt->bufcap = 0;
}

int kq__fwd_meta(struct kq_broker *b, const char *text, size_t len, int at_stop,
		 void (*cb)(void *ctx, int status), void *ctx)
{
	struct kq__fwd *f = fwd_new(b, KQ__FWD_META, "");
	uint8_t *buf = malloc(len + 1);

	if (!f || !buf) {
		if (f)
			fwd_free(f);
		free(buf);
		return -ENOMEM;
	}
	buf[0] = KQ__FWD_META;
	memcpy(buf + 1, text, len);
	f->buf = buf;
	f->len = len + 1;
	f->meta_cb = cb;
	f->meta_ctx = ctx;
	f->at_stop = at_stop != 0;
	b->fwd_at_stop += f->at_stop;
	return 0;
}

int kq__fwd_busy(const struct kq_broker *b)
{
	/* Those served here end with their proposal, counted in
	 * b->proposals: the stop closes the groups to cancel them, and
	 * frees no partition before their callbacks ran. */
	for (const struct kq__fwd *f = b->fwds; f; f = f->next)
		if (f->in_flight && f->target != b->cfg->broker_id)
			return 1;
	return 0;
}

void kq__fwd_stop(struct kq_broker *b)
{
	struct kq__fwd *f, *next;

	for (f = b->fwds; f; f = next) {
		next = f->next;
		if (f->applying) /* committed; only not applied here yet */
			applied_finish(f);
		else if (!f->in_flight && (!f->at_stop || b->stopping > 1))
			fwd_fail(f, KQ_EUNAVAILABLE, "broker is stopping");
	}
}
