/* Reads of a partition this broker holds no replica of: a CONS here asks
 * a broker that holds one for the committed records of a range, one
 * budget at a time, through the consensus module's call().  A read runs
 * nothing on the broker asked but a storage read, so it is safe to ask
 * again: a replica that does not answer, or cannot read yet, is followed
 * by the next, until topics.request_timeout_ms.  The broker asked answers
 * in serve.c; the wire format is wire.h's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>
#include <kafkaesque/list.h>

#include "fetch.h"
#include "forward.h"
#include "names.h"
#include "types.h"
#include "wire.h"

/* How often reads waiting for a reachable replica look again. */
#define FETCH_RETRY_MS 20

struct kq__fetch {
	struct kq_call call;
	struct kq_broker *b;
	struct kq__topic *t;
	uint32_t part;
	uint64_t from;
	uint8_t req[1 + 2 + KQ__NAME_MAX + 4 + 8 + 8 + 4 + 4];
	size_t len;
	uint64_t deadline;   /* loop time (ms) */
	uint64_t not_before; /* loop time: tried again from then */
	unsigned turn;	     /* replicas tried so far */
	int target;	     /* broker asked; 0 while waiting */
	int in_flight;
	int canceled; /* freed when its call ends */
	kq__fetch_cb cb;
	void *ctx;
	struct kq__fetch *prev, *next; /* in b->fetches while waiting */
};

/* ------------------------------------------------------------ reading */

static void fetch_send(struct kq__fetch *f);

static void fetch_free(struct kq__fetch *f)
{
	free(f);
}

/* Hands the reader its chunk (or a failure); f is gone after it. */
static void finish(struct kq__fetch *f, struct kq__chunk *ch)
{
	kq__fetch_cb cb = f->cb;
	void *ctx = f->ctx;

	fetch_free(f);
	cb(ctx, ch);
}

static struct kq__chunk *chunk_error(int status, const char *errmsg)
{
	struct kq__chunk *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	ch->status = status;
	snprintf(ch->errmsg, sizeof(ch->errmsg), "%s", errmsg);
	return ch;
}

/* Out of memory for a failure: the reader still learns the read
 * failed. */
static struct kq__chunk oom_chunk = {.status = -ENOMEM,
				     .errmsg = "out of memory"};

static void fail(struct kq__fetch *f, int status, const char *errmsg)
{
	struct kq__chunk *ch = chunk_error(status, errmsg);

	finish(f, ch ? ch : &oom_chunk);
}

static void wait_more(struct kq__fetch *f)
{
	struct kq_broker *b = f->b;

	f->target = 0;
	f->not_before = uv_now(b->loop) + FETCH_RETRY_MS;
	KQ_LIST_APPEND(b->fetches, b->fetches_tail, f);
	if (!uv_is_active((uv_handle_t *)&b->fetch_timer))
		uv_timer_start(&b->fetch_timer, kq__fetch_on_timer,
			       FETCH_RETRY_MS, FETCH_RETRY_MS);
}

/* Whether any broker holding a replica is counted up by the cluster
 * port. */
static int replica_up(const struct kq__fetch *f)
{
	struct kq_broker *b = f->b;
	const struct kq__partition *p = &f->t->parts[f->part];

	for (size_t k = 0; k < p->nreplicas; k++)
		if (p->replicas[k] != b->cfg->broker_id &&
		    b->cops->peer_up(b->consensus.state, p->replicas[k]))
			return 1;
	return 0;
}

/* The next replica to ask that looks reachable, 0 once each was asked
 * in this round (the next round starts after a wait). */
static int next_replica(struct kq__fetch *f)
{
	struct kq_broker *b = f->b;
	const struct kq__partition *p = &f->t->parts[f->part];

	while (f->turn < p->nreplicas) {
		int id = p->replicas[(f->part + f->turn++) % p->nreplicas];

		if (id != b->cfg->broker_id &&
		    b->cops->peer_up(b->consensus.state, id))
			return id;
	}
	f->turn = 0;
	return 0;
}

static struct kq__chunk *decode(const struct kq__fetch *f, const uint8_t *ans,
				size_t len)
{
	struct kq_reader r = {ans, len, 0};
	int status = (int)kq_take32le(&r);
	uint16_t n = kq_take16le(&r);
	const uint8_t *msg = kq_take(&r, n);
	uint64_t next = kq_take64le(&r), end = kq_take64le(&r);
	uint32_t count = kq_take32le(&r);
	struct kq__chunk *ch;

	if (r.bad || n > 255 || status > 0)
		return NULL;
	ch = malloc(sizeof(*ch) + r.left);
	if (!ch)
		return NULL;
	ch->status = status;
	memcpy(ch->errmsg, msg, n);
	ch->errmsg[n] = '\0';
	ch->from = f->from;
	ch->next = next;
	ch->end = end;
	ch->left = count;
	if (r.left)
		memcpy(ch->data, r.p, r.left);
	ch->r = (struct kq_reader){ch->data, r.left, 0};
	return ch;
}

static void on_call(struct kq_call *call, int status, const void *reply,
		    size_t len)
{
	struct kq__fetch *f = call->data;
	struct kq__chunk *ch;
	char err[256];

	f->in_flight = 0;
	if (f->canceled) {
		fetch_free(f);
		return;
	}
	if (status == 0) {
		if (!(ch = decode(f, reply, len))) {
			snprintf(err, sizeof(err),
				 "partition %s-%u: broker %d answered a read "
				 "this broker cannot decode",
				 f->t->name, f->part, f->target);
			fail(f, KQ_EINTERNAL, err);
			return;
		}
		/* A replica that cannot read yet: ask another. */
		if (ch->status != KQ_EUNAVAILABLE || ch->left) {
			finish(f, ch);
			return;
		}
		free(ch);
	}
	if (status == KQ_ECANCELED || f->b->stopping) {
		fail(f, KQ_EUNAVAILABLE, "broker is stopping");
		return;
	}
	fetch_send(f);
}

static void fetch_send(struct kq__fetch *f)
{
	struct kq_broker *b = f->b;
	uint64_t now = uv_now(b->loop), wait;
	int to, rv;
	char err[256];

	if (now >= f->deadline) {
		snprintf(err, sizeof(err),
			 "partition %s-%u: no broker holding a replica of it "
			 "answered within topics.request_timeout_ms (%u ms)",
			 f->t->name, f->part, b->cfg->request_timeout_ms);
		fail(f, KQ_EUNAVAILABLE, err);
		return;
	}
	/* Waiting would hold back the read's other partitions for nothing. */
	if (!replica_up(f)) {
		snprintf(err, sizeof(err),
			 "partition %s-%u has no replica on this broker, and "
			 "every broker holding one is down",
			 f->t->name, f->part);
		fail(f, KQ_EUNAVAILABLE, err);
		return;
	}
	if (b->stopping) {
		fail(f, KQ_EUNAVAILABLE, "broker is stopping");
		return;
	}
	/* A replica that stalls leaves half of what is left to the next. */
	wait = f->deadline - now;
	if (wait > 200)
		wait /= 2;
	while ((to = next_replica(f)) != 0) {
		f->target = to;
		f->call.data = f;
		rv = b->cops->call(b->consensus.state, &f->call, to, f->req,
				   f->len, (unsigned)wait, on_call);
		if (rv == 0) {
			f->in_flight = 1;
			return;
		}
	}
	wait_more(f);
}

void kq__fetch_on_timer(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;
	uint64_t now = uv_now(b->loop);
	struct kq__fetch *f, *next;

	for (f = b->fetches; f; f = next) {
		next = f->next;
		if (f->not_before > now)
			continue;
		KQ_LIST_REMOVE_TAIL(b->fetches, b->fetches_tail, f);
		fetch_send(f);
	}
	if (!b->fetches)
		uv_timer_stop(tm);
}

int kq__fetch_start(struct kq_broker *b, struct kq__topic *t, uint32_t part,
		    uint64_t from, uint64_t end, size_t budget, uint32_t max,
		    kq__fetch_cb cb, void *ctx, struct kq__fetch **out)
{
	struct kq__fetch *f = calloc(1, sizeof(*f));
	size_t n = strlen(t->name);
	uint8_t *w;

	if (!f)
		return -ENOMEM;
	*f = (struct kq__fetch){
		.b = b,
		.t = t,
		.part = part,
		.from = from,
		.cb = cb,
		.ctx = ctx,
		.deadline = uv_now(b->loop) + b->cfg->request_timeout_ms,
	};
	w = f->req;
	*w++ = KQ__FWD_FETCH;
	kq_put16le(w, (uint16_t)n);
	w += 2;
	memcpy(w, t->name, n);
	w += n;
	kq_put32le(w, part);
	kq_put64le(w + 4, from);
	kq_put64le(w + 12, end);
	kq_put32le(w + 20, budget > KQ__WIRE_READ_MAX ? KQ__WIRE_READ_MAX
						      : (uint32_t)budget);
	kq_put32le(w + 24, max);
	f->len = (size_t)(w + 28 - f->req);
	/* Sent from the timer, so cb never runs during this call. */
	KQ_LIST_APPEND(b->fetches, b->fetches_tail, f);
	uv_timer_start(&b->fetch_timer, kq__fetch_on_timer, 0, FETCH_RETRY_MS);
	*out = f;
	return 0;
}

void kq__fetch_cancel(struct kq__fetch *f)
{
	if (f->in_flight) {
		f->canceled = 1;
		return;
	}
	KQ_LIST_REMOVE_TAIL(f->b->fetches, f->b->fetches_tail, f);
	fetch_free(f);
}

void kq__fetch_stop(struct kq_broker *b)
{
	while (b->fetches) {
		struct kq__fetch *f = b->fetches;

		KQ_LIST_REMOVE_TAIL(b->fetches, b->fetches_tail, f);
		fail(f, KQ_EUNAVAILABLE, "broker is stopping");
	}
}

/* ------------------------------------------------------------ chunks */

int kq__chunk_take(struct kq__chunk *ch, struct kq_record *rec)
{
	uint32_t len;

	if (!ch->left)
		return 0;
	memset(rec, 0, sizeof(*rec));
	rec->offset = kq_take64le(&ch->r);
	len = kq_take32le(&ch->r);
	rec->value = kq_take(&ch->r, len);
	rec->value_len = len;
	if (ch->r.bad) {
		ch->left = 0;
		ch->status = KQ_EINTERNAL;
		snprintf(ch->errmsg, sizeof(ch->errmsg),
			 "a read from another broker was cut short");
		return 0;
	}
	ch->left--;
	return 1;
}

void kq__chunk_free(struct kq__chunk *ch)
{
	if (ch != &oom_chunk)
		free(ch);
}
