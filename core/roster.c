/* The roster: consumer group membership as the metadata records made it.
 * A SUBS joins through a metadata record, applied in log order on every
 * broker, so every broker holds every member in the same join order and
 * computes the same balanced, sticky assignment (assign.c): ASGN and GRPS
 * answer the same everywhere, and within a group a partition has one
 * member cluster-wide.  Proposing the records is members.c's.
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
 *                            members end and the others rebalance; with
 *                            why "stop", that run stops gracefully; with
 *                            "failed", its metadata log failed as long
 *
 * A member's connection lives on its home broker only; elsewhere the
 * member is known by id (CONS, CMIT and UNSB by id work on any broker). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "log.h"
#include "roster.h"
#include "topic.h"
#include "types.h"

static struct kq__reg *reg_find(struct kq_broker *b, int id)
{
	for (size_t i = 0; b->regs && i < b->nbroker_ids; i++)
		if (b->regs[i].id == id)
			return &b->regs[i];
	return NULL;
}

static struct kq__joining *joining_find(struct kq_broker *b, uint64_t id)
{
	return kq__map_get(&b->joining, &id, sizeof(id));
}

/* Takes m out of its group and frees it; rebalance is the caller's. */
static void member_drop(struct kq_broker *b, struct kq__member *m)
{
	struct kq__cgroup *g = m->cgroup;
	size_t i;

	for (i = 0; i < g->nmembers; i++)
		if (g->members[i] == m)
			break;
	if (i < g->nmembers) {
		memmove(&g->members[i], &g->members[i + 1],
			(g->nmembers - i - 1) * sizeof(*g->members));
		g->nmembers--;
	}
	kq__cgroup_member_free(b, m);
}

/* Drops every member `match` picks, rebalancing each group touched and
 * stamping it with ts and end (ts 0: a restore, whose groups keep the
 * snapshot's). */
static void drop_where(struct kq_broker *b,
		       int (*match)(const struct kq__member *m, int broker,
				    uint64_t boot),
		       int broker, uint64_t boot, int64_t ts, uint64_t end)
{
	struct kq__map_entry *te = NULL, *ge, *gnext;

	while ((te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->cgroups, NULL); ge; ge = gnext) {
			struct kq__cgroup *g = ge->value;
			size_t before = g->nmembers;

			gnext = kq__map_next(&t->cgroups, ge);
			for (size_t i = g->nmembers; i-- > 0;)
				if (match(g->members[i], broker, boot))
					member_drop(b, g->members[i]);
			if (g->nmembers != before) {
				if (ts)
					kq__cgroup_touch(g, ts, end);
				kq__cgroup_rebalance(g);
				kq__cgroup_release(g);
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

static void apply_register(struct kq_broker *b, json_t *rec, int64_t ts,
			   uint64_t end)
{
	int id = (int)json_integer_value(json_object_get(rec, "broker"));
	uint64_t boot = get_u64(rec, "boot");
	struct kq__reg *r = reg_find(b, id);

	if (!r || !boot)
		return;
	drop_where(b, other_run, id, boot, ts, end);
	r->boot = boot;
	if (id == b->cfg->broker_id)
		b->registered = boot == b->boot_id;
}

static void apply_expire(struct kq_broker *b, json_t *rec, int64_t ts,
			 uint64_t end)
{
	int id = (int)json_integer_value(json_object_get(rec, "broker"));
	uint64_t boot = get_u64(rec, "boot");
	struct kq__reg *r = reg_find(b, id);
	const char *why = json_string_value(json_object_get(rec, "why"));

	if (!r || !boot || r->boot != boot)
		return; /* that run's members are gone already */
	if (why && strcmp(why, "stop") == 0)
		kq__info("broker %d stops: its consumer group members end", id);
	else if (why && strcmp(why, "failed") == 0)
		kq__info("broker %d: its metadata log failed for %u ms: its "
			 "consumer group members end",
			 id, b->cfg->session_timeout_ms);
	else
		kq__info("broker %d was not reached for %u ms: its consumer "
			 "group members end",
			 id, b->cfg->session_timeout_ms);
	drop_where(b, that_run, id, boot, ts, end);
	r->boot = 0;
	if (id == b->cfg->broker_id && boot == b->boot_id) {
		/* Cut off from the others meanwhile: this run registers
		 * again; its clients' subscriptions have ended. */
		b->registered = 0;
		b->members_wake_cb(b);
	}
}

/* A member applied on its home broker that no SUBS waits for (the SUBS
 * failed, or its connection closed first) owes a leave: members.c's
 * timer sends it. */
static void orphaned(struct kq_broker *b)
{
	b->orphans++;
	b->members_wake_cb(b);
}

static void apply_join(struct kq_broker *b, json_t *rec, int64_t ts,
		       uint64_t end)
{
	const char *topic = json_string_value(json_object_get(rec, "topic"));
	const char *group = json_string_value(json_object_get(rec, "group"));
	uint64_t id = get_u64(rec, "sub"), boot = get_u64(rec, "boot");
	json_int_t cap = json_integer_value(json_object_get(rec, "cap"));
	int broker = (int)json_integer_value(json_object_get(rec, "broker"));
	struct kq__reg *r = reg_find(b, broker);
	struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;
	struct kq__member *m, **members;
	struct kq__cgroup *g;

	/* A join of a run that is not registered (gone, or expired) is
	 * void: its connection is gone or was told so. */
	if (!t || !group || !id || !r || !boot || r->boot != boot || cap < 0 ||
	    cap > UINT32_MAX || kq__map_get(&b->subs, &id, sizeof(id)))
		return;
	g = kq__cgroup_get(t, group, KQ__CGROUP_RECORDED);
	if (!g)
		return;
	kq__cgroup_touch(g, ts, end);
	m = calloc(1, sizeof(*m));
	members = m ? realloc(g->members, (g->nmembers + 1) * sizeof(*members))
		    : NULL;
	if (!members || kq__map_put(&b->subs, &id, sizeof(id), m) != 0) {
		kq__error("group %s of %s: out of memory for member %" PRIu64,
			  group, topic, id);
		free(m);
		if (members)
			g->members = members;
		kq__cgroup_release(g);
		return;
	}
	g->members = members;
	m->sub_id = id;
	m->cap = (uint32_t)cap;
	m->broker = broker;
	m->boot = boot;
	m->cgroup = g;
	g->members[g->nmembers++] = m;
	kq__cgroup_rebalance(g);
	kq__debug("group %s of %s: member %" PRIu64 " of broker %d joins",
		  group, topic, id, broker);
	if (kq__member_home(b, m) && !joining_find(b, id))
		orphaned(b);
}

static void apply_leave(struct kq_broker *b, json_t *rec, int64_t ts,
			uint64_t end)
{
	uint64_t id = get_u64(rec, "sub");
	struct kq__member *m = kq__map_get(&b->subs, &id, sizeof(id));
	struct kq__cgroup *g;

	if (!m)
		return;
	g = m->cgroup;
	kq__debug("group %s of %s: member %" PRIu64 " leaves", g->name,
		  g->topic->name, id);
	member_drop(b, m);
	kq__cgroup_touch(g, ts, end);
	kq__cgroup_rebalance(g);
	kq__cgroup_release(g);
}

int kq__roster_apply(struct kq_broker *b, const char *type, json_t *rec,
		     int64_t ts, uint64_t end)
{
	if (strcmp(type, "join") == 0)
		apply_join(b, rec, ts, end);
	else if (strcmp(type, "leave") == 0)
		apply_leave(b, rec, ts, end);
	else if (strcmp(type, "register") == 0)
		apply_register(b, rec, ts, end);
	else if (strcmp(type, "expire") == 0)
		apply_expire(b, rec, ts, end);
	else
		return -ENOENT;
	return 0;
}

/* ------------------------------------------------------------ snapshot */

void kq__roster_snapshot_group(struct kq__cgroup *g, struct kq__jsonw *w)
{
	kq__jsonw_raw(w, ",\"members\":[");
	for (size_t i = 0; i < g->nmembers; i++) {
		const struct kq__member *m = g->members[i];

		kq__jsonw_raw(w, i ? ",[" : "[");
		kq__jsonw_u64(w, m->sub_id);
		kq__jsonw_raw(w, ",");
		kq__jsonw_u64(w, m->cap);
		kq__jsonw_raw(w, ",");
		kq__jsonw_i64(w, m->broker);
		kq__jsonw_raw(w, ",");
		kq__jsonw_u64(w, m->boot);
		kq__jsonw_raw(w, "]");
	}
	kq__jsonw_raw(w, "],\"owner\":[");
	for (uint32_t p = 0; g->nmembers && p < g->topic->nparts; p++) {
		if (p)
			kq__jsonw_raw(w, ",");
		kq__jsonw_u64(w, g->owner[p]);
	}
	kq__jsonw_raw(w, "]");
}

json_t *kq__roster_snapshot(struct kq_broker *b)
{
	json_t *regs = json_array();

	for (size_t i = 0; b->regs && i < b->nbroker_ids; i++)
		if (b->regs[i].boot)
			json_array_append_new(
				regs, json_pack("[i,I]", b->regs[i].id,
						(json_int_t)b->regs[i].boot));
	return regs;
}

static struct kq__cgroup *item_group(struct kq_broker *b, json_t *item,
				     int create)
{
	const char *topic = json_string_value(json_object_get(item, "topic"));
	const char *group = json_string_value(json_object_get(item, "group"));
	struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;

	if (!t || !group || !json_array_size(json_object_get(item, "members")))
		return NULL;
	return kq__cgroup_get(t, group,
			      create ? KQ__CGROUP_RECORDED : KQ__CGROUP_FIND);
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
	struct kq__cgroup *g = item_group(b, item, 0);
	json_t *e;
	size_t i;

	if (!g)
		return;
	json_array_foreach(json_object_get(item, "members"), i, e)
	{
		uint64_t id = entry_id(e);
		struct kq__member *m = kq__map_get(&b->subs, &id, sizeof(id));

		if (m && m->cgroup == g)
			m->gen = b->members_gen;
	}
}

/* Sets one group's members, in join order, and its owners. */
static void restore_group(struct kq_broker *b, json_t *item, unsigned mark)
{
	json_t *members = json_object_get(item, "members"), *e;
	json_t *owner = json_object_get(item, "owner");
	struct kq__cgroup *g = item_group(b, item, 1);
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

		if (!id || (m && (m->cgroup != g || m->gen == mark)))
			continue; /* malformed: a repeated id */
		if (!m) {
			m = calloc(1, sizeof(*m));
			if (!m || kq__map_put(&b->subs, &id, sizeof(id), m)) {
				free(m);
				continue;
			}
			m->sub_id = id;
			m->cgroup = g;
			made = 1;
		}
		m->cap = (uint32_t)json_integer_value(json_array_get(e, 1));
		m->broker = (int)json_integer_value(json_array_get(e, 2));
		m->boot = (uint64_t)json_integer_value(json_array_get(e, 3));
		m->gen = mark;
		list[n++] = m;
		if (made && kq__member_home(b, m) && !joining_find(b, id))
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
	kq__cgroup_rebalance(g); /* keeps a valid assignment as it is */
}

static int not_marked(const struct kq__member *m, int gen, uint64_t unused)
{
	(void)unused;
	return m->gen != (unsigned)gen;
}

void kq__roster_restore(struct kq_broker *b, json_t *doc)
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
	drop_where(b, not_marked, (int)b->members_gen, 0, 0, 0);
	b->members_gen++;
	json_array_foreach(groups, i, item)
		restore_group(b, item, b->members_gen);
	b->registered = me && me->boot == b->boot_id;
}

int kq__roster_assigned(struct kq__cgroup *g, uint64_t id, uint32_t **out,
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
