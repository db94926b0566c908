/* CRTP: a topic is created by committing its record to the metadata log
 * (forwarded to the metadata leader when that is another broker); the
 * answer waits until this broker opened its partitions. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "create.h"
#include "forward.h"
#include "meta.h"
#include "names.h"
#include "req.h"
#include "topic.h"
#include "types.h"
#include "why.h"

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
			 cc->name, kq__why(cc->error));
		status = KQ_EUNAVAILABLE;
	} else if (t) {
		req->result.create_topic.partitions = t->nparts;
	} else if (status == KQ_EUNAVAILABLE || status == KQ_ECANCELED) {
		/* Taken, then lost (its leader deposed): it may commit. */
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "topic %s may or may not be created: the metadata "
			 "write was lost before it was known committed; DESC "
			 "%s tells",
			 cc->name, cc->name);
		status = KQ_EUNAVAILABLE;
	} else {
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "topic %s could not be created: %s", cc->name,
			 kq__why(status	     ? status
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
	/* A proposal reported lost may have committed all the same: applied
	 * here, it did. */
	struct kq__topic *t = status == 0 || status == KQ_EUNAVAILABLE ||
					      status == KQ_ECANCELED
				      ? kq__topic_get(cc->b, cc->name)
				      : NULL;

	if (t)
		status = 0;

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
	kq__req_init(req, s, KQ_REQ_CREATE_TOPIC, cb);
	if (!kq__name_valid(spec->name))
		return kq__req_fail(
			req, KQ_EBADARG,
			"bad topic name: 1 to 249 of [A-Za-z0-9._-], "
			"not . or ..");
	if (nparts < 1 || nparts > cfg->max_partitions)
		return kq__req_fail(req, KQ_EBADARG,
				    "partitions must be 1 to %u",
				    cfg->max_partitions);
	for (i = 0; i < spec->noptions; i++) {
		const char *opt = spec->options[i];
		const char *eq = strchr(opt, '=');
		size_t klen = eq ? (size_t)(eq - opt) : 0;
		const char *val = eq ? eq + 1 : "";

		if (!eq)
			return kq__req_fail(
				req, KQ_EBADARG,
				"option %s: expected <option>=<value>", opt);
		if (klen == 8 && strncmp(opt, "replicas", 8) == 0) {
			if (parse_i64(val, 1, &replicas) ||
			    replicas > (int64_t)nbrokers)
				return kq__req_fail(req, KQ_EBADARG,
						    "replicas must be 1 to %zu",
						    nbrokers);
		} else if (klen == 11 && strncmp(opt, "partitioner", 11) == 0) {
			for (pi = 0; pi < b->npartitioners; pi++)
				if (strcmp(b->partitioners[pi].mod.name, val) ==
				    0)
					break;
			if (pi == b->npartitioners)
				return kq__req_fail(
					req, KQ_EBADARG,
					"partitioner %s is not loaded", val);
		} else if (klen == 12 &&
			   strncmp(opt, "retention.ms", 12) == 0) {
			if (parse_i64(val, -1, &rms))
				return kq__req_fail(
					req, KQ_EBADARG,
					"retention.ms must be -1 or a "
					"number of milliseconds");
		} else if (klen == 15 &&
			   strncmp(opt, "retention.bytes", 15) == 0) {
			if (parse_i64(val, -1, &rbytes))
				return kq__req_fail(
					req, KQ_EBADARG,
					"retention.bytes must be -1 or a "
					"number of bytes");
		} else {
			return kq__req_fail(
				req, KQ_EBADARG, "unknown option %.*s",
				(int)(klen ? klen : strlen(opt)), opt);
		}
	}
	if (b->stopping)
		return kq__req_fail(req, KQ_EUNAVAILABLE, "broker is stopping");
	if (kq__topic_get(b, spec->name) ||
	    kq__map_get(&b->creating, spec->name, strlen(spec->name)))
		return kq__req_fail(req, KQ_EEXISTS, "topic %s already exists",
				    spec->name);
	if (b->topics.count + b->creating.count >= cfg->max_topics)
		return kq__req_fail(req, KQ_EBUSY,
				    "no more topics: limits.max_topics is %u",
				    cfg->max_topics);
	if (b->npartitions + b->npartitions_creating + nparts >
	    cfg->max_partitions_total)
		return kq__req_fail(req, KQ_EBUSY,
				    "%u more partitions would pass "
				    "limits.max_partitions_total (%u; %" PRIu64
				    " in use)",
				    nparts, cfg->max_partitions_total,
				    b->npartitions + b->npartitions_creating);
	for (i = 0; may_forward && i < spec->noptions; i++)
		if (strlen(spec->options[i]) > 255)
			return kq__req_fail(
				req, KQ_EBADARG,
				"option %.40s...: longer than 255 bytes",
				spec->options[i]);
	if (may_forward && kq__meta_led_elsewhere(b)) {
		rv = kq__fwd_create(b, req, spec, nparts);
		return rv == 0 ? 0
		       : rv == -E2BIG
			       ? kq__req_fail(req, KQ_EBADARG,
					      "too many options (at most 16)")
			       : kq__req_fail(req, rv, "out of memory");
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
		return kq__req_fail(req, -ENOMEM, "out of memory");
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

int kq__create_topic(struct kq_session *s, struct kq_req *req,
		     const struct kq_topic_spec *spec, kq_req_cb cb)
{
	return create_topic_at(s, req, spec, cb, 1);
}

int kq__create_topic_here(struct kq_session *s, struct kq_req *req,
			  const struct kq_topic_spec *spec, kq_req_cb cb)
{
	return create_topic_at(s, req, spec, cb, 0);
}
