/* Consumer group membership proposed: joins (SUBS), leaves (UNSB, closed
 * connections), this run's registration, the end of its members at a
 * graceful stop or after its metadata log failed, and on the metadata
 * leader the expiry of brokers out of reach for
 * cluster.session_timeout_ms.  Each
 * goes into the metadata log as a record that roster.c applies on every
 * broker; a single broker applies it at once and writes nothing. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/clock.h>
#include <kafkaesque/list.h>

#include "cgroup.h"
#include "defer.h"
#include "log.h"
#include "members.h"
#include "meta.h"
#include "partition.h"
#include "roster.h"
#include "types.h"

/* How often registration, owed leaves and expiry are looked at. */
#define TICK_MS 200

struct kq__joining {
	struct kq_broker *b;
	struct kq_req *req;
	uint64_t sub_id;
};

struct leaving {
	struct kq_broker *b;
	struct kq_req *req; /* NULL: owed by a closed connection */
	uint64_t sub_id;
};

static void on_tick(uv_timer_t *tm);

void kq__members_wake(struct kq_broker *b)
{
	if (!b->stopping)
		uv_timer_start(&b->members_timer, on_tick, 0, TICK_MS);
}

static struct kq__joining *joining_find(struct kq_broker *b, uint64_t id)
{
	return kq__map_get(&b->joining, &id, sizeof(id));
}

/* A member applied here that nobody holds owes a leave. */
static void orphaned(struct kq_broker *b)
{
	b->orphans++;
	kq__members_wake(b);
}

/* Membership is replicated only when other brokers are there to see it: a
 * single broker applies a record at once and writes nothing (its members
 * end with its run anyway), so SUBS costs no disk write there.  cb runs
 * before this returns 0 in that case. */
static int submit(struct kq_broker *b, json_t *rec,
		  void (*cb)(void *ctx, int status), void *ctx)
{
	const int *ids;

	if (kq__partition_brokers(b, &ids) > 1)
		return kq__meta_propose(b, rec, cb, ctx);
	/* Its clock is the leader's: the time a record would carry. */
	kq__roster_apply(b, json_string_value(json_object_get(rec, "type")),
			 rec, kq_wall_ms(), 0);
	cb(ctx, 0);
	return 0;
}

static void registered(void *ctx, int status)
{
	struct kq_broker *b = ctx;

	b->registering = 0;
	if (status != 0)
		kq__debug("consumer group registration: %s; tried again",
			  kq_strerror(status));
	/* SUBS waiting for it join now, or fail with why. */
	b->registered_cb(b, b->registered ? 0 : status);
}

void kq__members_register(struct kq_broker *b)
{
	json_t *rec;
	int rv;

	if (b->registered || b->registering || b->stopping)
		return;
	rec = json_pack("{s:s, s:i, s:I}", "type", "register", "broker",
			b->cfg->broker_id, "boot", (json_int_t)b->boot_id);
	b->registering = 1;
	rv = rec ? submit(b, rec, registered, b) : -ENOMEM;
	json_decref(rec);
	if (rv == 0)
		return;
	b->registering = 0;
	kq__log(rv == KQ_EUNAVAILABLE ? KQ_LOG_DEBUG : KQ_LOG_ERROR, "core",
		"cannot register for consumer groups: %s", kq_strerror(rv));
	if (b->sub_waiting)
		b->registered_cb(b, rv);
}

static void joined(void *ctx, int status)
{
	struct kq__joining *j = ctx;
	struct kq_broker *b = j->b;
	struct kq_req *req = j->req;
	struct kq__member *m =
		kq__map_get(&b->subs, &j->sub_id, sizeof(j->sub_id));
	struct kq_session *s = req->session;
	int rv = status;

	kq__map_del(&b->joining, &j->sub_id, sizeof(j->sub_id));
	if (s)
		s->njoining--;
	if (m && !kq__member_home(b, m))
		m = NULL; /* not ours: cannot be */
	if (status != 0) {
		rv = kq__meta_refused(b, req, status);
	} else if (!m) {
		rv = KQ_EUNAVAILABLE;
		snprintf(req->errmsg, sizeof(req->errmsg),
			 "the join was not kept: this broker's registration "
			 "ended (out of reach of the metadata leader for "
			 "cluster.session_timeout_ms) or memory ran out; try "
			 "again");
	} else if (!s) {
		rv = KQ_ECANCELED;
	} else {
		m->session = s;
		KQ_LIST_PUSH_BY(s->members, m, prev_in_session,
				next_in_session);
		s->nmembers++;
		req->result.subscribe.sub_id = m->sub_id;
		rv = kq__roster_assigned(m->cgroup, m->sub_id,
					 &req->result.subscribe.parts,
					 &req->result.subscribe.nparts);
		if (rv != 0) {
			/* Failed: the client does not know the member. */
			kq__cgroup_member_unlink(m);
			snprintf(req->errmsg, sizeof(req->errmsg),
				 "out of memory");
		}
	}
	/* Applied, but nobody holds it: it owes a leave. */
	if (m && !m->session)
		orphaned(b);
	free(j);
	kq__defer_complete(b, req, rv);
}

int kq__members_join(struct kq_broker *b, struct kq_req *req, const char *topic,
		     const char *group, uint64_t sub_id, uint32_t cap)
{
	struct kq__joining *j = calloc(1, sizeof(*j));
	json_t *rec;
	int rv;

	rec = j ? json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:I}", "type",
			    "join", "topic", topic, "group", group, "sub",
			    (json_int_t)sub_id, "cap", (json_int_t)cap,
			    "broker", b->cfg->broker_id, "boot",
			    (json_int_t)b->boot_id)
		: NULL;
	if (!rec) {
		free(j);
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		return -ENOMEM;
	}
	j->b = b;
	j->req = req;
	j->sub_id = sub_id;
	/* Listed first: the record may be applied before the proposal
	 * returns (a single broker commits at once). */
	if (kq__map_put(&b->joining, &sub_id, sizeof(sub_id), j) != 0) {
		json_decref(rec);
		free(j);
		snprintf(req->errmsg, sizeof(req->errmsg), "out of memory");
		return -ENOMEM;
	}
	req->session->njoining++;
	rv = submit(b, rec, joined, j);
	json_decref(rec);
	if (rv != 0) {
		kq__map_del(&b->joining, &sub_id, sizeof(sub_id));
		req->session->njoining--;
		free(j);
		return kq__meta_refused(b, req, rv);
	}
	return 0;
}

static void left(void *ctx, int status)
{
	struct leaving *l = ctx;
	struct kq_broker *b = l->b;
	struct kq__member *m =
		kq__map_get(&b->subs, &l->sub_id, sizeof(l->sub_id));

	if (m)
		m->leaving = 0;
	if (status != 0)
		kq__debug("member %" PRIu64 ": leave not committed: %s",
			  l->sub_id, kq_strerror(status));
	if (l->req)
		kq__defer_complete(b, l->req,
				   status ? kq__meta_refused(b, l->req, status)
					  : 0);
	/* Still a member and owed a leave: tried again. */
	if (m && !m->session && kq__member_home(b, m))
		orphaned(b);
	free(l);
}

int kq__members_leave(struct kq_broker *b, struct kq__member *m,
		      struct kq_req *req)
{
	struct leaving *l = calloc(1, sizeof(*l));
	json_t *rec = l ? json_pack("{s:s, s:I}", "type", "leave", "sub",
				    (json_int_t)m->sub_id)
			: NULL;
	int rv;

	if (!rec) {
		free(l);
		if (req)
			snprintf(req->errmsg, sizeof(req->errmsg),
				 "out of memory");
		return -ENOMEM;
	}
	l->b = b;
	l->req = req;
	l->sub_id = m->sub_id;
	m->leaving = 1;
	rv = submit(b, rec, left, l);
	json_decref(rec);
	if (rv != 0) {
		free(l);
		m->leaving = 0;
		return req ? kq__meta_refused(b, req, rv) : rv;
	}
	return 0;
}

void kq__members_session_closed(struct kq_broker *b, struct kq_session *s)
{
	struct kq__map_entry *e = NULL;

	while (s->njoining && (e = kq__map_next(&b->joining, e))) {
		struct kq__joining *j = e->value;

		if (j->req->session == s) {
			j->req->session = NULL;
			s->njoining--;
		}
	}
	while (s->members) {
		struct kq__member *m = s->members;

		kq__debug("member %" PRIu64 ": its connection closed",
			  m->sub_id);
		kq__cgroup_member_unlink(m);
		/* At a stop in a cluster one record ends them all
		 * (kq__members_stop); a leave each would be refused. */
		if (b->stopping && b->cfg->npeers)
			continue;
		if (!m->leaving && kq__members_leave(b, m, NULL) != 0)
			orphaned(b);
	}
}

/* ------------------------------------------------------------ the stop */

static void run_ended(void *ctx, int status)
{
	struct kq_broker *b = ctx;

	if (!b->ending_run)
		return; /* given up on at its deadline: said so then */
	b->ending_run = 0;
	uv_timer_stop(&b->members_timer);
	if (status == 0)
		kq__info("consumer group members of this run ended: their "
			 "groups rebalance now");
	else
		kq__warn("the end of this run's consumer group members was not "
			 "seen committed (%s); if it was not, the metadata "
			 "leader ends them after cluster.session_timeout_ms",
			 kq_strerror(status));
	kq__defer_wake(b); /* the stop goes on */
}

static void run_end_late(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;

	run_ended(b, -ETIMEDOUT);
}

/* Proposes the end of this run's members, with `why` ("stop" or
 * "failed"; roster.c) and KQ__META_* flags. */
static int end_own_run(struct kq_broker *b, const char *why, int flags,
		       void (*cb)(void *ctx, int status))
{
	json_t *rec = json_pack("{s:s, s:i, s:I, s:s}", "type", "expire",
				"broker", b->cfg->broker_id, "boot",
				(json_int_t)b->boot_id, "why", why);
	int rv = rec ? kq__meta_propose_flags(b, rec, flags, cb, b) : -ENOMEM;

	json_decref(rec);
	return rv;
}

void kq__members_stop(struct kq_broker *b)
{
	int rv;

	uv_timer_stop(&b->members_timer);
	if (!b->cfg->npeers || !b->registered || !b->meta_group ||
	    b->meta_store.failed)
		return;
	b->ending_run = 1;
	rv = end_own_run(b, "stop", KQ__META_AT_STOP, run_ended);
	if (rv != 0) {
		b->ending_run = 0;
		kq__warn("consumer group members of this run not ended (%s): "
			 "the metadata leader ends them after "
			 "cluster.session_timeout_ms",
			 kq_strerror(rv));
		return;
	}
	uv_timer_start(&b->members_timer, run_end_late,
		       b->cfg->request_timeout_ms, 0);
}

/* ------------------------------------------------------------ the timer */

/* Leaves owed by closed connections whose first try failed. */
static void send_owed(struct kq_broker *b)
{
	struct kq__map_entry *e = NULL;
	uint64_t *ids = NULL;
	size_t owed = 0, n = 0, cap = 0;

	/* Ids first: a single broker applies a leave at once, which takes
	 * the member out of the map being walked. */
	while ((e = kq__map_next(&b->subs, e))) {
		struct kq__member *m = e->value;
		uint64_t *more;

		if (!kq__member_home(b, m) || m->session || m->leaving ||
		    joining_find(b, m->sub_id))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			more = realloc(ids, cap * sizeof(*ids));
			if (!more) {
				owed++; /* the rest next time */
				break;
			}
			ids = more;
		}
		ids[n++] = m->sub_id;
	}
	for (size_t i = 0; i < n; i++) {
		struct kq__member *m =
			kq__map_get(&b->subs, &ids[i], sizeof(ids[i]));

		if (m && kq__members_leave(b, m, NULL) != 0)
			owed++;
	}
	free(ids);
	b->orphans = owed;
}

static void expire_done(void *ctx, int status)
{
	struct kq__reg *r = ctx;

	(void)status;
	r->expiring = 0;
}

/* On the metadata leader: a broker it has not reached for the session
 * timeout loses its members (which rebalances the survivors). */
static void expire_gone(struct kq_broker *b)
{
	uint64_t now = uv_now(b->loop);

	for (size_t i = 0; i < b->nbroker_ids; i++) {
		struct kq__reg *r = &b->regs[i];
		json_t *rec;

		if (r->id == b->cfg->broker_id || !r->boot ||
		    b->cops->peer_up(b->consensus.state, r->id) > 0) {
			r->down_since = 0;
			continue;
		}
		if (!r->down_since) {
			r->down_since = now;
			continue;
		}
		if (r->expiring ||
		    now - r->down_since < b->cfg->session_timeout_ms)
			continue;
		rec = json_pack("{s:s, s:i, s:I}", "type", "expire", "broker",
				r->id, "boot", (json_int_t)r->boot);
		if (rec && kq__meta_propose(b, rec, expire_done, r) == 0)
			r->expiring = 1;
		json_decref(rec);
	}
}

static void failed_run_ended(void *ctx, int status)
{
	struct kq_broker *b = ctx;

	b->ending_failed = 0;
	if (status != 0) {
		kq__debug("end of this run's members not committed: %s; tried "
			  "again",
			  kq_strerror(status));
		return;
	}
	b->failed_ended = 1;
	kq__warn("metadata log failed for cluster.session_timeout_ms (%u ms): "
		 "the metadata leader took the end of this run's consumer "
		 "group members; their partitions go to members on other "
		 "brokers",
		 b->cfg->session_timeout_ms);
}

/* A broker whose metadata log has failed cannot serve its members
 * (CONS waits for the log) nor store their leaves, yet stays connected,
 * so the metadata leader would never expire them: their partitions
 * would wait for the log.  After cluster.session_timeout_ms it ends them
 * itself, through the metadata leader; it applies that once its log is
 * reopened and caught up, and registers again.  Until then its members'
 * reads wait (consume.c): the others may hold their partitions
 * already. */
static void end_if_failed(struct kq_broker *b)
{
	uint64_t now = uv_now(b->loop);

	if (b->failed_ended && !b->registered)
		b->failed_ended = 0; /* applied here: a new run registers */
	if (b->meta_group && !b->meta_store.failed) {
		b->meta_failed_at = 0;
		return;
	}
	if (!b->meta_failed_at) {
		b->meta_failed_at = now;
		return;
	}
	if (b->failed_ended || b->ending_failed || !b->registered ||
	    now - b->meta_failed_at < b->cfg->session_timeout_ms)
		return;
	if (end_own_run(b, "failed", KQ__META_IF_FAILED, failed_run_ended) == 0)
		b->ending_failed = 1;
}

static void on_tick(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;

	if (b->stopping) {
		uv_timer_stop(tm);
		return;
	}
	if (!b->registered)
		kq__members_register(b);
	if (b->orphans)
		send_owed(b);
	if (b->cfg->npeers)
		end_if_failed(b);
	if (b->cfg->npeers && b->meta_group &&
	    b->cops->leader(b->meta_group) == b->cfg->broker_id)
		expire_gone(b);
	else
		for (size_t i = 0; b->regs && i < b->nbroker_ids; i++)
			b->regs[i].down_since = 0;
	/* A single broker has nobody to expire: idle, it sleeps. */
	if (!b->cfg->npeers && b->registered && !b->orphans)
		uv_timer_stop(tm);
}

void kq__members_start(struct kq_broker *b)
{
	kq__members_wake(b);
}

int kq__members_init(struct kq_broker *b)
{
	const int *ids;
	size_t n = kq__partition_brokers(b, &ids);

	free(b->regs);
	b->regs = calloc(n ? n : 1, sizeof(*b->regs));
	if (!b->regs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		b->regs[i].id = ids[i];
	b->registered = b->registering = 0;
	return 0;
}
