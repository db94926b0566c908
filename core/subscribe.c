/* SUBS and UNSB: a subscription needs an id from a block this run
 * reserved in the metadata, and this run registered for consumer groups;
 * a SUBS waits for both, then joins its group (members.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "defer.h"
#include "log.h"
#include "members.h"
#include "meta.h"
#include "names.h"
#include "req.h"
#include "subscribe.h"
#include "topic.h"
#include "types.h"

/* Subscription ids are reserved in blocks so that ids stay unique across
 * restarts without a metadata write per SUBS. */
#define SUB_ID_BLOCK 1000

static void reserved(void *ctx, int status)
{
	struct kq_broker *b = ctx;

	b->reserving = 0;
	kq__subscribe_resume(b, status);
}

void kq__subscribe_reserve_ids(struct kq_broker *b)
{
	json_t *rec;
	int rv;

	if (b->reserving ||
	    b->my_sub_id_limit > b->next_sub_id + SUB_ID_BLOCK / 2)
		return;
	rec = json_pack("{s:s, s:I, s:I, s:i, s:I}", "type", "sub_ids", "from",
			(json_int_t)b->sub_id_limit, "to",
			(json_int_t)(b->sub_id_limit + SUB_ID_BLOCK), "owner",
			b->cfg->broker_id, "boot", (json_int_t)b->boot_id);
	rv = rec ? kq__meta_propose(b, rec, reserved, b) : -ENOMEM;
	json_decref(rec);
	if (rv == 0) {
		b->reserving = 1;
		return;
	}
	/* Not even sent (out of memory, the metadata log failed here):
	 * SUBS waiting for ids fail now rather than wait for a
	 * reservation that never comes. */
	kq__log(rv == KQ_EUNAVAILABLE ? KQ_LOG_DEBUG : KQ_LOG_ERROR, "core",
		"cannot reserve subscription ids: %s", kq_strerror(rv));
	if (b->sub_waiting)
		kq__subscribe_resume(b, rv);
}

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
	struct kq__cgroup *g =
		t ? kq__cgroup_get(t, a->group, KQ__CGROUP_FIND) : NULL;
	int rv;

	/* Limits are checked against the members every broker agrees on
	 * (and, per connection, the joins in flight); applying a join never
	 * refuses one, so that all stay alike.  Joins in flight on several
	 * brokers at once may pass a group limit by their number. */
	if (!t) {
		rv = kq__req_fail(req, KQ_ENOTOPIC, "no topic named %s",
				  a->topic);
	} else if (req->session->nmembers + req->session->njoining >=
		   cfg->max_subs_per_connection) {
		rv = kq__req_fail(
			req, KQ_EBUSY,
			"no more subscriptions on this connection: "
			"limits.max_subscriptions_per_connection is %u",
			cfg->max_subs_per_connection);
	} else if (!g && b->ncgroups >= cfg->max_groups) {
		rv = kq__req_fail(req, KQ_EBUSY,
				  "no more groups: limits.max_groups is %u",
				  cfg->max_groups);
	} else if (g && g->nmembers >= cfg->max_members_per_group) {
		rv = kq__req_fail(
			req, KQ_EBUSY,
			"group %s is full: limits.max_members_per_group is "
			"%u",
			g->name, cfg->max_members_per_group);
	} else {
		rv = kq__members_join(b, req, a->topic, a->group,
				      b->next_sub_id++, a->cap);
	}
	if (rv != 0)
		kq__defer_complete(b, req, rv);
	kq__subscribe_reserve_ids(b);
}

void kq__subscribe_resume(struct kq_broker *b, int status)
{
	while (b->sub_waiting && b->next_sub_id < b->my_sub_id_limit &&
	       b->registered) {
		struct kq_req *req = b->sub_waiting;
		struct sub_args *a = req->priv.wait_args;

		b->sub_waiting = req->priv.wait_next;
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

			b->sub_waiting = req->priv.wait_next;
			free(req->priv.wait_args);
			kq__defer_complete(b, req,
					   kq__meta_refused(b, req, status));
		}
		b->sub_waiting_tail = &b->sub_waiting;
	} else if (b->sub_waiting) {
		kq__subscribe_reserve_ids(b);
		kq__members_register(b);
	}
}

int kq__subscribe(struct kq_session *s, struct kq_req *req, const char *topic,
		  const char *group, uint32_t cap, kq_req_cb cb)
{
	struct kq_broker *b = s->b;
	struct sub_args *a;

	kq__req_init(req, s, KQ_REQ_SUBSCRIBE, cb);
	if (!kq__name_valid(topic))
		return kq__req_fail(req, KQ_EBADARG, "bad topic name");
	if (!kq__name_valid(group))
		return kq__req_fail(
			req, KQ_EBADARG,
			"bad group name: 1 to 249 of [A-Za-z0-9._-], "
			"not . or ..");
	if (!kq__topic_get(b, topic))
		return kq__req_fail(req, KQ_ENOTOPIC, "no topic named %s",
				    topic);
	a = calloc(1, sizeof(*a));
	if (!a)
		return kq__req_fail(req, -ENOMEM, "out of memory");
	snprintf(a->topic, sizeof(a->topic), "%s", topic);
	snprintf(a->group, sizeof(a->group), "%s", group);
	a->cap = cap;
	if (b->next_sub_id < b->my_sub_id_limit && b->registered &&
	    !b->sub_waiting) {
		join(b, req, a);
		free(a);
		return 0;
	}
	req->priv.wait_next = NULL;
	req->priv.wait_args = a;
	*b->sub_waiting_tail = req;
	b->sub_waiting_tail = &req->priv.wait_next;
	kq__subscribe_reserve_ids(b);
	kq__members_register(b);
	return 0;
}

int kq__unsubscribe(struct kq_session *s, struct kq_req *req, const char *topic,
		    uint64_t sub_id, kq_req_cb cb)
{
	struct kq_broker *b = s->b;
	struct kq__member *m;

	kq__req_init(req, s, KQ_REQ_UNSUBSCRIBE, cb);
	if (!kq__topic_get(b, topic))
		return kq__req_fail(req, KQ_ENOTOPIC, "no topic named %s",
				    topic);
	m = kq__map_get(&b->subs, &sub_id, sizeof(sub_id));
	if (!m || strcmp(m->cgroup->topic->name, topic) != 0)
		return kq__req_fail(req, KQ_ENOSUB,
				    "no subscription %" PRIu64 " on topic %s",
				    sub_id, topic);
	/* Answered once the leave is applied: the partitions are then
	 * someone else's, on every broker. */
	return kq__members_leave(b, m, req);
}

/* s closes: SUBS of it still waiting for ids must not join. */
void kq__subscribe_session_closed(struct kq_broker *b, struct kq_session *s)
{
	struct kq_req *r;

	for (r = b->sub_waiting; r; r = r->priv.wait_next)
		if (r->session == s)
			r->session = NULL;
}
