/* The broker API for transports: sessions, topic creation, publishing,
 * subscriptions.  Reads (CONS) live in consume.c, queries in query.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "broker.h"
#include "jsonkey.h"
#include "log.h"
#include "names.h"

/* Batches are proposed at the end of the loop turn, or sooner once this
 * large, which bounds the memory a flood of pipelined PUBS can hold. */
#define BATCH_MAX_MSGS	8192
#define BATCH_MAX_BYTES (8u << 20)

static int fail(struct kq_req *req, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct kq_req *req, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(req->errmsg, sizeof(req->errmsg), fmt, ap);
	va_end(ap);
	return err;
}

static void req_init(struct kq_req *req, struct kq_session *s,
		     enum kq_req_type type, kq_req_cb cb)
{
	req->type = type;
	req->errmsg[0] = '\0';
	req->cb = cb;
	req->session = s;
	memset(&req->result, 0, sizeof(req->result));
	memset(req->impl, 0, sizeof(req->impl));
}

/* ------------------------------------------------------------ sessions */

static int session_open(struct kq_broker *b, struct kq_session **out)
{
	struct kq_session *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->b = b;
	KQ_LIST_PUSH(b->sessions, s);
	*out = s;
	return 0;
}

static void session_close(struct kq_session *s)
{
	struct kq_broker *b = s->b;
	struct kq_req *r;

	kq__members_session_closed(b, s);
	/* SUBS still waiting for ids must not join for a gone session. */
	for (r = b->sub_waiting; r; r = r->impl[KQ__REQ_WAIT_NEXT])
		if (r->session == s)
			r->session = NULL;
	KQ_LIST_REMOVE(b->sessions, s);
	free(s);
}

void kq__sessions_close_all(struct kq_broker *b)
{
	while (b->sessions)
		session_close(b->sessions);
}

/* ------------------------------------------------------------ CRTP */

struct create_ctx {
	struct kq_broker *b;
	struct kq_req *req;
	char *name;
	uint32_t nparts; /* counted in b->npartitions_creating */
	int error;	 /* why applying the record failed, when it did */
	int counted;	 /* in b->creating and b->npartitions_creating */
};

/* The topic is made or refused: it no longer counts as being created
 * (once made, its partitions count in b->npartitions). */
static void create_uncount(struct create_ctx *cc)
{
	if (!cc->counted)
		return;
	cc->counted = 0;
	kq__map_del(&cc->b->creating, cc->name, strlen(cc->name));
	cc->b->npartitions_creating -= cc->nparts;
}

void kq__create_failed(struct kq_broker *b, const char *name, int err)
{
	struct create_ctx *cc = kq__map_get(&b->creating, name, strlen(name));

	if (cc)
		cc->error = err;
}

static void create_answer(struct create_ctx *cc, int status)
{
	struct kq_req *req = cc->req;
	struct kq__topic *t;

	create_uncount(cc);
	t = status == 0 ? kq__topic_get(cc->b, cc->name) : NULL;
	if (t && cc->error == KQ_ECANCELED) {
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "topic %s was created, but the broker is stopping: "
			 "its partitions are opened at the next start",
			 cc->name);
		status = KQ_EUNAVAILABLE;
	} else if (t && cc->error) {
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "topic %s was created, but partitions of it cannot "
			 "be opened here yet: %s; they are retried",
			 cc->name, kq_strerror(cc->error));
		status = KQ_EUNAVAILABLE;
	} else if (t) {
		req->result.create_topic.partitions = t->nparts;
	} else {
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "topic %s could not be created: %s", cc->name,
			 kq_strerror(status	 ? status
				     : cc->error ? cc->error
						 : KQ_EINTERNAL));
		status = KQ_EUNAVAILABLE;
	}
	free(cc->name);
	free(cc);
	req->cb(req, status);
}

static void create_opened(void *ctx, unsigned failed, int first_error)
{
	struct create_ctx *cc = ctx;

	if (failed && !cc->error)
		cc->error = first_error;
	create_answer(cc, 0);
}

/* The record is applied: the answer waits until the partitions opened
 * (a slice at a time, see open_step() in topic.c). */
static void created(void *ctx, int status)
{
	struct create_ctx *cc = ctx;
	struct kq__topic *t =
		status == 0 ? kq__topic_get(cc->b, cc->name) : NULL;

	if (t && t->open_next < t->nparts && !t->opened_cb) {
		create_uncount(cc); /* its partitions count as the topic's */
		t->opened_cb = create_opened;
		t->opened_ctx = cc;
		return;
	}
	/* Opening may have ended before this answer (a slice ran between
	 * the apply and now): what failed is said, not OK. */
	if (t && t->open_next >= t->nparts && t->open_failed && !cc->error)
		cc->error = t->open_first_error;
	create_answer(cc, status);
}

static int parse_i64(const char *s, int64_t min, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	if (*s < '0' || *s > '9') {
		if (!(*s == '-' && min < 0))
			return -1;
	}
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min)
		return -1;
	*out = v;
	return 0;
}

static int create_topic_at(struct kq_session *s, struct kq_req *req,
			   const struct kq_topic_spec *spec, kq_req_cb cb,
			   int may_forward)
{
	struct kq_broker *b = s->b;
	const struct kq__config *cfg = b->cfg;
	uint32_t nparts =
		spec->partitions ? spec->partitions : cfg->default_partitions;
	int64_t replicas, rms = cfg->retention_ms,
			  rbytes = cfg->retention_bytes;
	size_t pi = 0, i, nbrokers = cfg->npeers ? cfg->npeers : 1;
	struct create_ctx *cc;
	json_t *rec;
	int rv;

	/* Three copies, as Kafka's usual replication factor, when the
	 * cluster has that many brokers. */
	replicas = nbrokers < 3 ? (int64_t)nbrokers : 3;
	req_init(req, s, KQ_REQ_CREATE_TOPIC, cb);
	if (!kq__name_valid(spec->name))
		return fail(req, KQ_EBADARG,
			    "bad topic name: 1 to 249 of [A-Za-z0-9._-], "
			    "not . or ..");
	if (nparts < 1 || nparts > cfg->max_partitions)
		return fail(req, KQ_EBADARG, "partitions must be 1 to %u",
			    cfg->max_partitions);
	for (i = 0; i < spec->noptions; i++) {
		const char *opt = spec->options[i];
		const char *eq = strchr(opt, '=');
		size_t klen = eq ? (size_t)(eq - opt) : 0;
		const char *val = eq ? eq + 1 : "";

		if (!eq)
			return fail(req, KQ_EBADARG,
				    "option %s: expected <option>=<value>",
				    opt);
		if (klen == 8 && strncmp(opt, "replicas", 8) == 0) {
			if (parse_i64(val, 1, &replicas) ||
			    replicas > (int64_t)nbrokers)
				return fail(req, KQ_EBADARG,
					    "replicas must be 1 to %zu",
					    nbrokers);
		} else if (klen == 11 && strncmp(opt, "partitioner", 11) == 0) {
			for (pi = 0; pi < b->npartitioners; pi++)
				if (strcmp(b->partitioners[pi].mod.name, val) ==
				    0)
					break;
			if (pi == b->npartitioners)
				return fail(req, KQ_EBADARG,
					    "partitioner %s is not loaded",
					    val);
		} else if (klen == 12 &&
			   strncmp(opt, "retention.ms", 12) == 0) {
			if (parse_i64(val, -1, &rms))
				return fail(req, KQ_EBADARG,
					    "retention.ms must be -1 or a "
					    "number of milliseconds");
		} else if (klen == 15 &&
			   strncmp(opt, "retention.bytes", 15) == 0) {
			if (parse_i64(val, -1, &rbytes))
				return fail(req, KQ_EBADARG,
					    "retention.bytes must be -1 or a "
					    "number of bytes");
		} else {
			return fail(req, KQ_EBADARG, "unknown option %.*s",
				    (int)(klen ? klen : strlen(opt)), opt);
		}
	}
	if (b->stopping)
		return fail(req, KQ_EUNAVAILABLE, "broker is stopping");
	if (kq__topic_get(b, spec->name) ||
	    kq__map_get(&b->creating, spec->name, strlen(spec->name)))
		return fail(req, KQ_EEXISTS, "topic %s already exists",
			    spec->name);
	if (b->topics.count + b->creating.count >= cfg->max_topics)
		return fail(req, KQ_EBUSY,
			    "no more topics: limits.max_topics is %u",
			    cfg->max_topics);
	if (b->npartitions + b->npartitions_creating + nparts >
	    cfg->max_partitions_total)
		return fail(req, KQ_EBUSY,
			    "%u more partitions would pass "
			    "limits.max_partitions_total (%u; %" PRIu64
			    " in use)",
			    nparts, cfg->max_partitions_total,
			    b->npartitions + b->npartitions_creating);
	for (i = 0; may_forward && i < spec->noptions; i++)
		if (strlen(spec->options[i]) > 255)
			return fail(req, KQ_EBADARG,
				    "option %.40s...: longer than 255 bytes",
				    spec->options[i]);
	if (may_forward && kq__meta_led_elsewhere(b)) {
		rv = kq__fwd_create(b, req, spec, nparts);
		return rv == 0	      ? 0
		       : rv == -E2BIG ? fail(req, KQ_EBADARG,
					     "too many options (at most 16)")
				      : fail(req, rv, "out of memory");
	}
	cc = calloc(1, sizeof(*cc));
	rec = json_pack("{s:s, s:s, s:I, s:I, s:s, s:I, s:I}", "type", "topic",
			"name", spec->name, "partitions", (json_int_t)nparts,
			"replicas", (json_int_t)replicas, "partitioner",
			b->partitioners[pi].mod.name, "retention_ms",
			(json_int_t)rms, "retention_bytes", (json_int_t)rbytes);
	if (!cc || !rec || !(cc->name = strdup(spec->name))) {
		free(cc);
		json_decref(rec);
		return fail(req, -ENOMEM, "out of memory");
	}
	cc->b = b;
	cc->req = req;
	cc->nparts = nparts;
	rv = kq__meta_propose(b, rec, created, cc);
	json_decref(rec);
	if (rv != 0) {
		free(cc->name);
		free(cc);
		return kq__meta_refused(b, req, rv);
	}
	kq__map_put(&b->creating, spec->name, strlen(spec->name), cc);
	b->npartitions_creating += nparts;
	cc->counted = 1;
	return 0;
}

static int create_topic(struct kq_session *s, struct kq_req *req,
			const struct kq_topic_spec *spec, kq_req_cb cb)
{
	return create_topic_at(s, req, spec, cb, 1);
}

int kq__create_topic_here(struct kq_session *s, struct kq_req *req,
			  const struct kq_topic_spec *spec, kq_req_cb cb)
{
	return create_topic_at(s, req, spec, cb, 0);
}

/* ------------------------------------------------------------ PUBS */

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
		p->next_dirty = b->dirty;
		b->dirty = p;
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

void kq__batch_free(struct kq__batch *bt)
{
	free(bt->reqs);
	free(bt->lens);
	free(bt->klens);
	free(bt->buf);
	free(bt);
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
			 p->topic->name, p->id, kq_strerror(status));
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

	for (i = 0; i < bt->n; i++) {
		struct kq_req *req = bt->reqs[i];

		if (status == 0) {
			req->result.publish.partition = p->id;
			req->result.publish.offset = preq->first_offset + i;
			req->cb(req, 0);
		} else if (status == KQ_EUNAVAILABLE) {
			/* Taken, then the leader changed: a later leader may
			 * still commit it. */
			snprintf(req->errmsg, sizeof(req->errmsg),
				 "partition %s-%u changed leader before this "
				 "message was committed; it may or may not be "
				 "stored",
				 p->topic->name, p->id);
			req->cb(req, KQ_EUNAVAILABLE);
		} else {
			not_accepted(req, p, status);
			req->cb(req, KQ_EUNAVAILABLE);
		}
	}
	kq__batch_free(bt);
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
	kq__batch_free(bt);
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
	if (rv == KQ_EUNAVAILABLE && b->cfg->npeers)
		kq__fwd_publish(b, p, bt); /* not leader any more */
	else if (rv != 0)
		batch_refused(b, bt, rv);
}

void kq__batch_flush(struct kq_broker *b)
{
	struct kq__partition *p = b->dirty, *next;

	b->dirty = NULL;
	for (; p; p = next) {
		next = p->next_dirty;
		p->dirty = 0;
		batch_propose(b, p);
	}
}

static int publish(struct kq_session *s, struct kq_req *req, const char *topic,
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

	req_init(req, s, KQ_REQ_PUBLISH, cb);
	if (b->stopping)
		return fail(req, KQ_EUNAVAILABLE, "broker is stopping");
	t = kq__topic_get(b, topic);
	if (!t)
		return fail(req, KQ_ENOTOPIC, "no topic named %s", topic);
	if (len == 0)
		return fail(req, KQ_EBADARG, "empty message");
	if (len > UINT32_MAX / 2)
		return fail(req, KQ_EBADARG, "message too large");

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
		return fail(req, KQ_EINTERNAL,
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
		return fail(req, rv, "out of memory");
	if (bt->n >= BATCH_MAX_MSGS || bt->used >= BATCH_MAX_BYTES)
		batch_propose(b, &t->parts[part]);
	return 0;
}

/* ------------------------------------------------------------ SUBS */

struct sub_args {
	char topic[KQ__NAME_MAX + 1];
	char group[KQ__NAME_MAX + 1];
	uint32_t cap;
};

/* Joins; the ids are available and this run is registered.  The request
 * completes once the join record is applied (members.c). */
static void join(struct kq_broker *b, struct kq_req *req,
		 const struct sub_args *a)
{
	const struct kq__config *cfg = b->cfg;
	struct kq__topic *t = kq__topic_get(b, a->topic);
	struct kq__group *g =
		t ? kq__group_get(t, a->group, KQ__GROUP_FIND) : NULL;
	int rv;

	/* Limits are checked against the members every broker agrees on
	 * (and, per connection, the joins in flight); applying a join never
	 * refuses one, so that all stay alike.  Joins in flight on several
	 * brokers at once may pass a group limit by their number. */
	if (!t) {
		rv = fail(req, KQ_ENOTOPIC, "no topic named %s", a->topic);
	} else if (req->session->nmembers + req->session->njoining >=
		   cfg->max_subs_per_connection) {
		rv = fail(req, KQ_EBUSY,
			  "no more subscriptions on this connection: "
			  "limits.max_subscriptions_per_connection is %u",
			  cfg->max_subs_per_connection);
	} else if (!g && b->ngroups >= cfg->max_groups) {
		rv = fail(req, KQ_EBUSY,
			  "no more groups: limits.max_groups is %u",
			  cfg->max_groups);
	} else if (g && g->nmembers >= cfg->max_members_per_group) {
		rv = fail(req, KQ_EBUSY,
			  "group %s is full: limits.max_members_per_group is "
			  "%u",
			  g->name, cfg->max_members_per_group);
	} else {
		rv = kq__members_join(b, req, a->topic, a->group,
				      b->next_sub_id++, a->cap);
	}
	if (rv != 0)
		kq__defer_complete(b, req, rv);
	kq__meta_reserve_ids(b);
}

void kq__subscribe_resume(struct kq_broker *b, int status)
{
	while (b->sub_waiting && b->next_sub_id < b->my_sub_id_limit &&
	       b->registered) {
		struct kq_req *req = b->sub_waiting;
		struct sub_args *a = req->impl[KQ__REQ_WAIT_ARGS];

		b->sub_waiting = req->impl[KQ__REQ_WAIT_NEXT];
		if (!b->sub_waiting)
			b->sub_waiting_tail = &b->sub_waiting;
		if (req->session)
			join(b, req, a);
		else
			kq__defer_complete(b, req, KQ_ECANCELED);
		free(a);
	}
	if (b->sub_waiting && status != 0) {
		/* The reservation failed: the waiting SUBS fail with it. */
		while (b->sub_waiting) {
			struct kq_req *req = b->sub_waiting;

			b->sub_waiting = req->impl[KQ__REQ_WAIT_NEXT];
			free(req->impl[KQ__REQ_WAIT_ARGS]);
			kq__defer_complete(b, req,
					   kq__meta_refused(b, req, status));
		}
		b->sub_waiting_tail = &b->sub_waiting;
	} else if (b->sub_waiting) {
		kq__meta_reserve_ids(b);
		kq__members_register(b);
	}
}

static int subscribe(struct kq_session *s, struct kq_req *req,
		     const char *topic, const char *group, uint32_t cap,
		     kq_req_cb cb)
{
	struct kq_broker *b = s->b;
	struct sub_args *a;

	req_init(req, s, KQ_REQ_SUBSCRIBE, cb);
	if (!kq__name_valid(topic))
		return fail(req, KQ_EBADARG, "bad topic name");
	if (!kq__name_valid(group))
		return fail(req, KQ_EBADARG,
			    "bad group name: 1 to 249 of [A-Za-z0-9._-], "
			    "not . or ..");
	if (!kq__topic_get(b, topic))
		return fail(req, KQ_ENOTOPIC, "no topic named %s", topic);
	a = calloc(1, sizeof(*a));
	if (!a)
		return fail(req, -ENOMEM, "out of memory");
	snprintf(a->topic, sizeof(a->topic), "%s", topic);
	snprintf(a->group, sizeof(a->group), "%s", group);
	a->cap = cap;
	if (b->next_sub_id < b->my_sub_id_limit && b->registered &&
	    !b->sub_waiting) {
		join(b, req, a);
		free(a);
		return 0;
	}
	req->impl[KQ__REQ_WAIT_NEXT] = NULL;
	req->impl[KQ__REQ_WAIT_ARGS] = a;
	*b->sub_waiting_tail = req;
	b->sub_waiting_tail = (struct kq_req **)&req->impl[KQ__REQ_WAIT_NEXT];
	kq__meta_reserve_ids(b);
	kq__members_register(b);
	return 0;
}

static int unsubscribe(struct kq_session *s, struct kq_req *req,
		       const char *topic, uint64_t sub_id, kq_req_cb cb)
{
	struct kq_broker *b = s->b;
	struct kq__member *m;

	req_init(req, s, KQ_REQ_UNSUBSCRIBE, cb);
	if (!kq__topic_get(b, topic))
		return fail(req, KQ_ENOTOPIC, "no topic named %s", topic);
	m = kq__map_get(&b->subs, &sub_id, sizeof(sub_id));
	if (!m || strcmp(m->group->topic->name, topic) != 0)
		return fail(req, KQ_ENOSUB,
			    "no subscription %" PRIu64 " on topic %s", sub_id,
			    topic);
	/* Answered once the leave is applied: the partitions are then
	 * someone else's, on every broker. */
	return kq__members_leave(b, m, req);
}

static void req_cleanup(struct kq_req *req)
{
	if (req->type == KQ_REQ_SUBSCRIBE) {
		free(req->result.subscribe.parts);
		req->result.subscribe.parts = NULL;
		req->result.subscribe.nparts = 0;
	}
}

const struct kq_broker_api kq__broker_api = {
	.session_open = session_open,
	.session_close = session_close,
	.create_topic = create_topic,
	.publish = publish,
	.subscribe = subscribe,
	.unsubscribe = unsubscribe,
	.req_cleanup = req_cleanup,
	.consume_open = kq__consume_open,
	.consume_next = kq__consume_next,
	.consume_close = kq__consume_close,
	.commit = kq__commit,
	.list_topics = kq__list_topics,
	.describe = kq__describe,
	.assignment = kq__assignment,
	.groups = kq__groups,
	.brokers = kq__brokers,
};
