/* Consumer group membership across the cluster.  A SUBS joins through a
 * metadata record, applied in log order on every broker, so every broker
 * holds every member in the same join order and computes the same
 * balanced, sticky assignment (assign.c): ASGN and GRPS answer the same
 * everywhere, and within a group a partition has one member cluster-wide.
 *
 * Records (JSON, in the metadata log):
 *   register {broker, boot}  a run of a broker; members of its other runs
 *                            end (a restart leaves no stale member)
 *   join {topic, group, sub, cap, broker, boot}
 *                            kept only while that run is the broker's
 *                            registered one
 *   leave {sub}              UNSB, or the connection that joined closed
 *   expire {broker, boot}    the metadata leader has not reached that
 *                            broker for cluster.session_timeout_ms: its
 *                            members end and the others rebalance
 *
 * A member's connection lives on its home broker only; elsewhere the
 * member is known by id (CONS, CMIT and UNSB by id work on any broker). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"

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

/* Runs the membership timer now (then every TICK_MS). */
static void soon(struct kq_broker *b)
{
	if (!b->stopping)
		uv_timer_start(&b->members_timer, on_tick, 0, TICK_MS);
}

static struct kq__reg *reg_find(struct kq_broker *b, int id)
{
	for (size_t i = 0; b->regs && i < b->nbroker_ids; i++)
		if (b->regs[i].id == id)
			return &b->regs[i];
	return NULL;
}

static int home(const struct kq_broker *b, const struct kq__member *m)
{
	return m->broker == b->cfg->broker_id && m->boot == b->boot_id;
}

static struct kq__joining *joining_find(struct kq_broker *b, uint64_t id)
{
	return kq__map_get(&b->joining, &id, sizeof(id));
}

/* Takes m out of its group and frees it; rebalance is the caller's. */
static void member_drop(struct kq_broker *b, struct kq__member *m)
{
	struct kq__group *g = m->group;
	size_t i;

	for (i = 0; i < g->nmembers; i++)
		if (g->members[i] == m)
			break;
	if (i < g->nmembers) {
		memmove(&g->members[i], &g->members[i + 1],
			(g->nmembers - i - 1) * sizeof(*g->members));
		g->nmembers--;
	}
	kq__member_free(b, m);
}

/* Drops every member `match` picks, rebalancing each group touched. */
static void drop_where(struct kq_broker *b,
		       int (*match)(const struct kq__member *m, int broker,
				    uint64_t boot),
		       int broker, uint64_t boot)
{
	struct kq__map_entry *te = NULL, *ge, *gnext;

	while ((te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->groups, NULL); ge; ge = gnext) {
			struct kq__group *g = ge->value;
			size_t before = g->nmembers;

			gnext = kq__map_next(&t->groups, ge);
			for (size_t i = g->nmembers; i-- > 0;)
				if (match(g->members[i], broker, boot))
					member_drop(b, g->members[i]);
			if (g->nmembers != before) {
				kq__group_rebalance(g);
				kq__group_release(g);
			}
		}
	}
}

static int other_run(const struct kq__member *m, int broker, uint64_t boot)
{
	return m->broker == broker && m->boot != boot;
}

static int that_run(const struct kq__member *m, int broker, uint64_t boot)
{
	return m->broker == broker && m->boot == boot;
}

static uint64_t get_u64(json_t *rec, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(rec, key));

	return v > 0 ? (uint64_t)v : 0;
}

static void apply_register(struct kq_broker *b, json_t *rec)
{
	int id = (int)json_integer_value(json_object_get(rec, "broker"));
	uint64_t boot = get_u64(rec, "boot");
	struct kq__reg *r = reg_find(b, id);

	if (!r || !boot)
		return;
	drop_where(b, other_run, id, boot);
	r->boot = boot;
	if (id == b->cfg->broker_id)
		b->registered = boot == b->boot_id;
}

static void apply_expire(struct kq_broker *b, json_t *rec)
{
	int id = (int)json_integer_value(json_object_get(rec, "broker"));
	uint64_t boot = get_u64(rec, "boot");
	struct kq__reg *r = reg_find(b, id);

	if (!r || !boot || r->boot != boot)
		return; /* that run's members are gone already */
	kq__info("broker %d was not reached for %u ms: its consumer group "
		 "members end",
		 id, b->cfg->session_timeout_ms);
	drop_where(b, that_run, id, boot);
	r->boot = 0;
	if (id == b->cfg->broker_id && boot == b->boot_id) {
		/* Cut off from the others meanwhile: this run registers
		 * again; its clients' subscriptions have ended. */
		b->registered = 0;
		soon(b);
	}
}

/* A member applied on its home broker that no SUBS waits for (the SUBS
 * failed, or its connection closed first) owes a leave. */
static void orphaned(struct kq_broker *b)
{
	b->orphans++;
	soon(b);
}

static void apply_join(struct kq_broker *b, json_t *rec)
{
	const char *topic = json_string_value(json_object_get(rec, "topic"));
	const char *group = json_string_value(json_object_get(rec, "group"));
	uint64_t id = get_u64(rec, "sub"), boot = get_u64(rec, "boot");
	json_int_t cap = json_integer_value(json_object_get(rec, "cap"));
	int broker = (int)json_integer_value(json_object_get(rec, "broker"));
	struct kq__reg *r = reg_find(b, broker);
	struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;
	struct kq__member *m, **members;
	struct kq__group *g;

	/* A join of a run that is not registered (gone, or expired) is
	 * void: its connection is gone or was told so. */
	if (!t || !group || !id || !r || !boot || r->boot != boot || cap < 0 ||
	    cap > UINT32_MAX || kq__map_get(&b->subs, &id, sizeof(id)))
		return;
	g = kq__group_get(t, group, KQ__GROUP_RECORDED);
	if (!g)
		return;
	m = calloc(1, sizeof(*m));
	members = m ? realloc(g->members, (g->nmembers + 1) * sizeof(*members))
		    : NULL;
	if (!members || kq__map_put(&b->subs, &id, sizeof(id), m) != 0) {
		kq__error("group %s of %s: out of memory for member %" PRIu64,
			  group, topic, id);
		free(m);
		if (members)
			g->members = members;
		kq__group_release(g);
		return;
	}
	g->members = members;
	m->sub_id = id;
	m->cap = (uint32_t)cap;
	m->broker = broker;
	m->boot = boot;
	m->group = g;
	g->members[g->nmembers++] = m;
	kq__group_rebalance(g);
	kq__debug("group %s of %s: member %" PRIu64 " of broker %d joins",
		  group, topic, id, broker);
	if (home(b, m) && !joining_find(b, id))
		orphaned(b);
}

static void apply_leave(struct kq_broker *b, json_t *rec)
{
	uint64_t id = get_u64(rec, "sub");
	struct kq__member *m = kq__map_get(&b->subs, &id, sizeof(id));
	struct kq__group *g;

	if (!m)
		return;
	g = m->group;
	kq__debug("group %s of %s: member %" PRIu64 " leaves", g->name,
		  g->topic->name, id);
	member_drop(b, m);
	kq__group_rebalance(g);
	kq__group_release(g);
}

int kq__members_apply(struct kq_broker *b, const char *type, json_t *rec)
{
	if (strcmp(type, "join") == 0)
		apply_join(b, rec);
	else if (strcmp(type, "leave") == 0)
		apply_leave(b, rec);
	else if (strcmp(type, "register") == 0)
		apply_register(b, rec);
	else if (strcmp(type, "expire") == 0)
		apply_expire(b, rec);
	else
		return -ENOENT;
	return 0;
}

/* ------------------------------------------------------------ snapshot */

void kq__members_snapshot_group(struct kq__group *g, json_t *item)
{
	json_t *members = json_array(), *owner = json_array();

	for (size_t i = 0; i < g->nmembers; i++) {
		const struct kq__member *m = g->members[i];

		json_array_append_new(
			members, json_pack("[I,I,i,I]", (json_int_t)m->sub_id,
					   (json_int_t)m->cap, m->broker,
					   (json_int_t)m->boot));
	}
	for (uint32_t p = 0; g->nmembers && p < g->topic->nparts; p++)
		json_array_append_new(owner,
				      json_integer((json_int_t)g->owner[p]));
	json_object_set_new(item, "members", members);
	json_object_set_new(item, "owner", owner);
}

json_t *kq__members_snapshot(struct kq_broker *b)
{
	json_t *regs = json_array();

	for (size_t i = 0; b->regs && i < b->nbroker_ids; i++)
		if (b->regs[i].boot)
			json_array_append_new(
				regs, json_pack("[i,I]", b->regs[i].id,
						(json_int_t)b->regs[i].boot));
	return regs;
}

static struct kq__group *item_group(struct kq_broker *b, json_t *item,
				    int create)
{
	const char *topic = json_string_value(json_object_get(item, "topic"));
	const char *group = json_string_value(json_object_get(item, "group"));
	struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;

	if (!t || !group || !json_array_size(json_object_get(item, "members")))
		return NULL;
	return kq__group_get(t, group,
			     create ? KQ__GROUP_RECORDED : KQ__GROUP_FIND);
}

static uint64_t entry_id(json_t *e)
{
	json_int_t v = json_integer_value(json_array_get(e, 0));

	return v > 0 ? (uint64_t)v : 0;
}

/* Marks the members this run has and the snapshot keeps (same id, same
 * group): they stay, with their connection and what they were handed. */
static void restore_mark(struct kq_broker *b, json_t *item)
{
	struct kq__group *g = item_group(b, item, 0);
	json_t *e;
	size_t i;

	if (!g)
		return;
	json_array_foreach(json_object_get(item, "members"), i, e)
	{
		uint64_t id = entry_id(e);
		struct kq__member *m = kq__map_get(&b->subs, &id, sizeof(id));

		if (m && m->group == g)
			m->gen = b->members_gen;
	}
}

/* Sets one group's members, in join order, and its owners. */
static void restore_group(struct kq_broker *b, json_t *item, unsigned mark)
{
	json_t *members = json_object_get(item, "members"), *e;
	json_t *owner = json_object_get(item, "owner");
	struct kq__group *g = item_group(b, item, 1);
	struct kq__member **list;
	size_t i, n = 0;

	list = g ? calloc(json_array_size(members), sizeof(*list)) : NULL;
	if (!list)
		return;
	json_array_foreach(members, i, e)
	{
		uint64_t id = entry_id(e);
		struct kq__member *m = kq__map_get(&b->subs, &id, sizeof(id));
		int made = 0;

		if (!id || (m && (m->group != g || m->gen == mark)))
			continue; /* malformed: a repeated id */
		if (!m) {
			m = calloc(1, sizeof(*m));
			if (!m || kq__map_put(&b->subs, &id, sizeof(id), m)) {
				free(m);
				continue;
			}
			m->sub_id = id;
			m->group = g;
			made = 1;
		}
		m->cap = (uint32_t)json_integer_value(json_array_get(e, 1));
		m->broker = (int)json_integer_value(json_array_get(e, 2));
		m->boot = (uint64_t)json_integer_value(json_array_get(e, 3));
		m->gen = mark;
		list[n++] = m;
		if (made && home(b, m) && !joining_find(b, id))
			orphaned(b);
	}
	/* Every member the group had is in the list: the others were
	 * dropped before. */
	free(g->members);
	g->members = list;
	g->nmembers = n;
	if (json_array_size(owner) == g->topic->nparts)
		for (uint32_t p = 0; p < g->topic->nparts; p++) {
			json_int_t v =
				json_integer_value(json_array_get(owner, p));

			g->owner[p] = v > 0 ? (uint64_t)v : 0;
		}
	kq__group_rebalance(g); /* keeps a valid assignment as it is */
}

static int not_marked(const struct kq__member *m, int gen, uint64_t unused)
{
	(void)unused;
	return m->gen != (unsigned)gen;
}

void kq__members_restore(struct kq_broker *b, json_t *doc)
{
	json_t *item, *groups = json_object_get(doc, "offsets");
	struct kq__reg *me = reg_find(b, b->cfg->broker_id);
	size_t i;

	/* A run the snapshot does not list has ended (expired). */
	for (i = 0; b->regs && i < b->nbroker_ids; i++)
		b->regs[i].boot = 0;
	json_array_foreach(json_object_get(doc, "brokers"), i, item)
	{
		struct kq__reg *r = reg_find(
			b, (int)json_integer_value(json_array_get(item, 0)));
		json_int_t boot = json_integer_value(json_array_get(item, 1));

		if (r)
			r->boot = boot > 0 ? (uint64_t)boot : 0;
	}
	b->members_gen++;
	json_array_foreach(groups, i, item) restore_mark(b, item);
	/* Members the snapshot does not hold ended meanwhile. */
	drop_where(b, not_marked, (int)b->members_gen, 0);
	b->members_gen++;
	json_array_foreach(groups, i, item)
		restore_group(b, item, b->members_gen);
	b->registered = me && me->boot == b->boot_id;
}

/* ------------------------------------------------------------ proposals */

/* Membership is replicated only when other brokers are there to see it: a
 * single broker applies a record at once and writes nothing (its members
 * end with its run anyway), so SUBS costs no disk write there.  cb runs
 * before this returns 0 in that case. */
static int submit(struct kq_broker *b, json_t *rec,
		  void (*cb)(void *ctx, int status), void *ctx)
{
	const int *ids;

	if (kq__brokers_list(b, &ids) > 1)
		return kq__meta_propose(b, rec, cb, ctx);
	kq__members_apply(b, json_string_value(json_object_get(rec, "type")),
			  rec);
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

int kq__members_assigned(struct kq__group *g, uint64_t id, uint32_t **out,
			 uint32_t *n)
{
	uint32_t i, k = 0;

	*out = malloc((g->topic->nparts ? g->topic->nparts : 1) *
		      sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0; i < g->topic->nparts; i++)
		if (g->owner[i] == id)
			(*out)[k++] = i;
	*n = k;
	return 0;
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
	if (m && !home(b, m))
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
		m->next_in_session = s->members;
		s->members = m;
		s->nmembers++;
		req->result.subscribe.sub_id = m->sub_id;
		rv = kq__members_assigned(m->group, m->sub_id,
					  &req->result.subscribe.parts,
					  &req->result.subscribe.nparts);
		if (rv != 0) {
			/* Failed: the client does not know the member. */
			kq__member_unlink(m);
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
	if (m && !m->session && home(b, m))
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
		kq__member_unlink(m);
		if (!m->leaving && kq__members_leave(b, m, NULL) != 0)
			orphaned(b);
	}
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

		if (!home(b, m) || m->session || m->leaving ||
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
	soon(b);
}

int kq__members_init(struct kq_broker *b)
{
	const int *ids;
	size_t n = kq__brokers_list(b, &ids);

	free(b->regs);
	b->regs = calloc(n ? n : 1, sizeof(*b->regs));
	if (!b->regs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		b->regs[i].id = ids[i];
	b->registered = b->registering = 0;
	return 0;
}
