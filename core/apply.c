/* The metadata state machine: topics, committed group offsets, reserved
 * subscription ids and group members (members.c), applied from the
 * metadata log (meta.c) in offset order on every broker, snapshotted and
 * restored.  A group with no member is forgotten (its offsets dropped,
 * the group freed) by a forget record the metadata leader proposes once
 * groups.offsets_retention_ms passed since the last record that touched
 * it (retire.c). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kafkaesque/clock.h>

#include "apply.h"
#include "cgroup.h"
#include "commit.h"
#include "create.h"
#include "idfloor.h"
#include "log.h"
#include "members.h"
#include "meta.h"
#include "partition.h"
#include "roster.h"
#include "subscribe.h"
#include "topic.h"
#include "types.h"

static size_t partitioner_index(struct kq_broker *b, const char *name)
{
	for (size_t i = 0; i < b->npartitioners; i++)
		if (strcmp(b->partitioners[i].mod.name, name) == 0)
			return i;
	return (size_t)-1;
}

/* Partition groups are numbered after the offset of the record that
 * created their topic, the same on every broker; group 0 is metadata. */
#define GROUP_BASE(offset) (((offset) + 1) << 17)

static void apply_topic(struct kq_broker *b, json_t *rec, uint64_t base)
{
	const char *name = json_string_value(json_object_get(rec, "name"));
	const char *part =
		json_string_value(json_object_get(rec, "partitioner"));
	json_int_t n = json_integer_value(json_object_get(rec, "partitions"));
	json_int_t replicas =
		json_integer_value(json_object_get(rec, "replicas"));
	json_t *rms = json_object_get(rec, "retention_ms");
	json_t *rbytes = json_object_get(rec, "retention_bytes");
	size_t pi = 0;
	unsigned failed = 0;
	int rv, first_error = 0;

	if (!name || n < 1 || n > 100000) {
		kq__error("metadata: malformed topic record");
		return;
	}
	if (kq__topic_get(b, name))
		return;
	if (part) {
		pi = partitioner_index(b, part);
		if (pi == (size_t)-1) {
			kq__warn("topic %s: partitioner %s is not loaded; "
				 "using %s",
				 name, part, b->partitioners[0].mod.name);
			pi = 0;
		}
	}
	rv = kq__topic_create(b, name, (uint32_t)n,
			      replicas > 0 ? (uint32_t)replicas : 1, pi,
			      rms ? json_integer_value(rms) : -1,
			      rbytes ? json_integer_value(rbytes) : -1, base,
			      &failed, &first_error);
	if (rv == 0 && part && pi == 0 &&
	    strcmp(part, b->partitioners[0].mod.name) != 0) {
		struct kq__topic *t = kq__topic_get(b, name);

		/* Out of memory, the snapshot names the one used here. */
		if (t)
			t->recorded_partitioner = strdup(part);
	}
	if (rv == 0 && failed)
		kq__create_failed(b, name, first_error);
	if (rv != 0) {
		kq__error("topic %s: cannot open its partitions: %s", name,
			  kq_strerror(rv));
		kq__create_failed(b, name, rv);
		if (!kq__map_get(&b->unopened, name, strlen(name)))
			kq__map_put(&b->unopened, name, strlen(name), b);
	}
}

/* An offsets record was refused (its member no longer held all its
 * partitions): its proposer, when this broker's run, answers its CMIT
 * with an error. */
static void offsets_refused(struct kq_broker *b, json_t *rec)
{
	json_t *ask = json_object_get(rec, "ask");
	struct kq__ask a;

	if (!json_is_integer(ask))
		return;
	a.broker = (int)json_integer_value(json_object_get(rec, "broker"));
	a.boot = (uint64_t)json_integer_value(json_object_get(rec, "boot"));
	a.ask = (uint64_t)json_integer_value(ask);
	kq__commit_refused(b, &a);
}

/* An offsets record, applied here as on every broker, the one that
 * proposed it included: committed offsets change only in log order. */
static void apply_offsets(struct kq_broker *b, json_t *rec, int64_t ts,
			  uint64_t end)
{
	const char *topic = json_string_value(json_object_get(rec, "topic"));
	const char *group = json_string_value(json_object_get(rec, "group"));
	json_t *offsets = json_object_get(rec, "offsets"), *pair;
	struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;
	int set = json_is_true(json_object_get(rec, "set"));
	json_t *sub = json_object_get(rec, "sub");
	uint64_t sub_id = (uint64_t)json_integer_value(sub);
	struct kq__member *m = NULL;
	struct kq__cgroup *g;
	size_t i;

	if (!t || !group || !json_is_array(offsets))
		return;
	/* A record naming its member counts only if that member holds
	 * every partition in it now, the same on every broker: one proposed
	 * by a broker with a stale view (cut off, stopped) must not move the
	 * offsets of partitions given to another member since, nor bring
	 * back a group forgotten since.  All or nothing, so that its CMIT's
	 * error is true: an acknowledgement refused is delivered again. */
	if (sub) {
		m = kq__map_get(&b->subs, &sub_id, sizeof(sub_id));
		if (!m || m->cgroup->topic != t ||
		    strcmp(m->cgroup->name, group) != 0) {
			offsets_refused(b, rec);
			return;
		}
		json_array_foreach(offsets, i, pair)
		{
			json_int_t p =
				json_integer_value(json_array_get(pair, 0));

			if (p >= 0 && p < (json_int_t)t->nparts &&
			    m->cgroup->owner[p] != sub_id) {
				offsets_refused(b, rec);
				return;
			}
		}
	}
	g = m ? m->cgroup : kq__cgroup_get(t, group, KQ__CGROUP_RECORDED);
	if (!g)
		return;
	kq__cgroup_touch(g, ts, end);
	json_array_foreach(offsets, i, pair)
	{
		json_int_t p = json_integer_value(json_array_get(pair, 0));
		json_int_t off = json_integer_value(json_array_get(pair, 1));
		json_t *seeks = json_array_get(pair, 2);

		if (p < 0 || p >= (json_int_t)t->nparts || off < 0)
			continue;
		if (set) {
			/* CMIT with an offset: forward or back, and what
			 * was handed out before it is not acknowledged. */
			g->committed[p] = (uint64_t)off;
			g->seeks[p]++;
			kq__commit_seeked(g, (uint32_t)p);
			continue;
		}
		/* An acknowledgement only moves forward, and only when no
		 * CMIT with an offset came between its batch and it. */
		if ((!seeks ||
		     (uint64_t)json_integer_value(seeks) == g->seeks[p]) &&
		    (uint64_t)off > g->committed[p])
			g->committed[p] = (uint64_t)off;
	}
	/* A record that left nothing committed keeps no group alive. */
	kq__cgroup_release(g);
}

/* A forget record: the group's offsets are past retention.  A record
 * that touched the group since its proposal (a join, a late
 * acknowledgement) keeps them; otherwise the group goes, here as on
 * every broker, and a later SUBS starts it anew.  "at", the leader's
 * applied end when it proposed, tells which records came since by their
 * offsets, the same on every broker (times are not: an untimed group's
 * stamp is each broker's own, and two records share a millisecond). */
static void apply_forget(struct kq_broker *b, json_t *rec)
{
	const char *topic = json_string_value(json_object_get(rec, "topic"));
	const char *group = json_string_value(json_object_get(rec, "group"));
	struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;
	struct kq__cgroup *g =
		t && group ? kq__cgroup_get(t, group, KQ__CGROUP_FIND) : NULL;
	json_t *at = json_object_get(rec, "at");
	json_t *touched = json_object_get(rec, "touched");

	if (!g || g->nmembers)
		return;
	if (json_is_integer(at)) {
		if (json_integer_value(at) < 0 ||
		    g->touched_end > (uint64_t)json_integer_value(at))
			return;
	} else if (touched && json_integer_value(touched) != g->touched_ms) {
		return; /* a record of an older leader */
	}
	kq__info("group %s of %s: no member for "
		 "groups.offsets_retention_ms; its committed offsets are "
		 "forgotten",
		 g->name, t->name);
	memset(g->committed, 0, t->nparts * sizeof(*g->committed));
	memset(g->seeks, 0, t->nparts * sizeof(*g->seeks));
	kq__cgroup_release(g);
}

/* Groups restored without a time take that of the first record applied
 * after, for the leader's choice of what to forget only (apply_forget
 * does not look at it): their retention starts then. */
static void stamp_untimed(struct kq_broker *b, int64_t ts)
{
	struct kq__map_entry *te = NULL, *ge;

	while ((te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->cgroups, NULL); ge;
		     ge = kq__map_next(&t->cgroups, ge)) {
			struct kq__cgroup *g = ge->value;

			if (!g->touched_ms)
				g->touched_ms = ts;
		}
	}
	b->cgroups_untimed = 0;
}

/* The [partition, value] pairs of `pairs` into out[nparts] (0 elsewhere). */
static void snapshot_pairs(json_t *pairs, uint64_t *out, uint32_t nparts)
{
	json_t *pair;
	size_t i;

	memset(out, 0, nparts * sizeof(*out));
	json_array_foreach(pairs, i, pair)
	{
		json_int_t p = json_integer_value(json_array_get(pair, 0));
		json_int_t v = json_integer_value(json_array_get(pair, 1));

		if (p >= 0 && p < (json_int_t)nparts && v > 0)
			out[p] = (uint64_t)v;
	}
}

/* Sets g's offsets to the snapshot item's (none when NULL). */
static int replace_offsets(struct kq__cgroup *g, json_t *item)
{
	uint32_t n = g->topic->nparts;
	uint64_t *c = malloc(2 * (size_t)n * sizeof(*c)), *s = c + n;

	if (!c)
		return -ENOMEM;
	snapshot_pairs(json_object_get(item, "offsets"), c, n);
	snapshot_pairs(json_object_get(item, "seeks"), s, n);
	for (uint32_t p = 0; p < n; p++) {
		if (s[p] != g->seeks[p])
			kq__commit_seeked(g, p);
		g->committed[p] = c[p];
		g->seeks[p] = s[p];
	}
	free(c);
	return 0;
}

/* A snapshot's offsets replace those held: lower ones too, and a group
 * it does not list has none (its members are the roster's). */
static int restore_offsets(struct kq_broker *b, json_t *doc)
{
	struct kq__map_entry *te = NULL, *ge;
	json_t *item;
	json_int_t v;
	size_t i;
	int rv;

	while ((te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->cgroups, NULL); ge;
		     ge = kq__map_next(&t->cgroups, ge))
			((struct kq__cgroup *)ge->value)->listed = 0;
	}
	json_array_foreach(json_object_get(doc, "offsets"), i, item)
	{
		const char *topic =
			json_string_value(json_object_get(item, "topic"));
		const char *group =
			json_string_value(json_object_get(item, "group"));
		struct kq__topic *t = topic ? kq__topic_get(b, topic) : NULL;
		struct kq__cgroup *g =
			t && group
				? kq__cgroup_get(t, group, KQ__CGROUP_RECORDED)
				: NULL;

		if (!g)
			continue;
		g->listed = 1;
		g->touched_ms =
			json_integer_value(json_object_get(item, "touched"));
		v = json_integer_value(json_object_get(item, "touched_end"));
		g->touched_end = v > 0 ? (uint64_t)v : 0;
		if (g->touched_ms <= 0) {
			g->touched_ms = 0;
			b->cgroups_untimed = 1;
		}
		if ((rv = replace_offsets(g, item)) != 0)
			return rv;
	}
	te = NULL;
	while ((te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->cgroups, NULL); ge;
		     ge = kq__map_next(&t->cgroups, ge)) {
			struct kq__cgroup *g = ge->value;

			if (!g->listed && (rv = replace_offsets(g, NULL)) != 0)
				return rv;
		}
	}
	return 0;
}

/* Frees the groups a restore left with no member and no offset. */
static void release_groups(struct kq_broker *b)
{
	struct kq__map_entry *te = NULL, *ge, *next;

	while ((te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->cgroups, NULL); ge; ge = next) {
			next = kq__map_next(&t->cgroups, ge);
			kq__cgroup_release(ge->value);
		}
	}
}

/* A standalone broker also keeps its subscription id limit in a file of
 * its own (idfloor.c).  (In a cluster the metadata comes back from the
 * other brokers.) */
static int sub_floor_used(struct kq_broker *b)
{
	const int *ids;

	return kq__partition_brokers(b, &ids) == 1;
}

static void sub_floor_save(struct kq_broker *b, uint64_t limit)
{
	int rv;

	if (!sub_floor_used(b) || limit <= b->sub_id_floor)
		return;
	rv = kq__idfloor_save(b->dir, limit);
	if (rv != 0) {
		kq__warn("%s/sub_ids: %s", b->dir, strerror(-rv));
		return;
	}
	b->sub_id_floor = limit;
}

/* A block [from, to) of subscription ids reserved by one run of one
 * broker.  Blocks are applied in log order on every broker; a block that
 * overlaps an earlier one lost a race and is void, so no id is ever handed
 * out twice, whichever broker leads. */
static void apply_sub_ids(struct kq_broker *b, json_t *rec)
{
	json_int_t from = json_integer_value(json_object_get(rec, "from"));
	json_int_t to = json_integer_value(json_object_get(rec, "to"));
	json_int_t owner = json_integer_value(json_object_get(rec, "owner"));
	json_int_t boot = json_integer_value(json_object_get(rec, "boot"));
	int mine = owner == b->cfg->broker_id && (uint64_t)boot == b->boot_id;

	if (from < 1 || to <= from || (uint64_t)from < b->sub_id_limit) {
		if (mine)
			kq__debug("subscription ids %lld..%lld were taken "
				  "meanwhile",
				  (long long)from, (long long)to - 1);
		return;
	}
	b->sub_id_limit = (uint64_t)to;
	sub_floor_save(b, b->sub_id_limit);
	if (mine) {
		b->next_sub_id = (uint64_t)from;
		b->my_sub_id_limit = (uint64_t)to;
	}
}

static void apply(void *ctx, const struct kq_record *r)
{
	struct kq_broker *b = ctx;
	json_error_t jerr;
	json_t *rec;
	const char *type;

	/* Reopened after a failure, the group replays what this run
	 * applied already: the state in memory holds it (and more). */
	if (r->offset < b->meta_applied_end)
		return;
	b->meta_applied_end = r->offset + 1;
	if (b->cgroups_untimed && r->timestamp_ms > 0)
		stamp_untimed(b, r->timestamp_ms);
	if (r->flags & KQ_RECORD_CONTROL)
		return;
	rec = json_loadb(r->value, r->value_len, 0, &jerr);
	if (!rec) {
		kq__error("metadata record %" PRIu64 ": %s", r->offset,
			  jerr.text);
		return;
	}
	type = json_string_value(json_object_get(rec, "type"));
	if (!type) {
		kq__error("metadata record %" PRIu64 ": no type", r->offset);
	} else if (strcmp(type, "topic") == 0) {
		apply_topic(b, rec, GROUP_BASE(r->offset));
	} else if (strcmp(type, "offsets") == 0) {
		apply_offsets(b, rec, r->timestamp_ms, r->offset + 1);
	} else if (strcmp(type, "forget") == 0) {
		apply_forget(b, rec);
	} else if (strcmp(type, "sub_ids") == 0) {
		apply_sub_ids(b, rec);
	} else if (kq__roster_apply(b, type, rec, r->timestamp_ms,
				    r->offset + 1) == 0) {
		/* consumer group membership (members.c) */
	} else {
		kq__warn("metadata record %" PRIu64 ": unknown type %s",
			 r->offset, type);
	}
	json_decref(rec);
}

/* Writes "[p,v]" for each partition p where v[p] is not 0. */
static void snapshot_nonzero(struct kq__jsonw *w, const uint64_t *v,
			     uint32_t nparts)
{
	int first = 1;

	for (uint32_t p = 0; p < nparts; p++) {
		if (!v[p])
			continue;
		kq__jsonw_raw(w, first ? "[" : ",[");
		kq__jsonw_u64(w, p);
		kq__jsonw_raw(w, ",");
		kq__jsonw_u64(w, v[p]);
		kq__jsonw_raw(w, "]");
		first = 0;
	}
}

/* One group's item of the snapshot's "offsets".  0, or -1 (nothing
 * written) when a name cannot be written. */
static int snapshot_group(struct kq__jsonw *w, struct kq__cgroup *g, int first)
{
	size_t mark = w->len;

	kq__jsonw_raw(w, first ? "{\"topic\":" : ",{\"topic\":");
	if (kq__jsonw_str(w, g->topic->name) != 0)
		goto bad;
	kq__jsonw_raw(w, ",\"group\":");
	if (kq__jsonw_str(w, g->name) != 0)
		goto bad;
	kq__jsonw_raw(w, ",\"offsets\":[");
	snapshot_nonzero(w, g->committed, g->topic->nparts);
	kq__jsonw_raw(w, "],\"seeks\":[");
	snapshot_nonzero(w, g->seeks, g->topic->nparts);
	kq__jsonw_raw(w, "],\"touched\":");
	kq__jsonw_i64(w, g->touched_ms);
	kq__jsonw_raw(w, ",\"touched_end\":");
	kq__jsonw_u64(w, g->touched_end);
	kq__roster_snapshot_group(g, w);
	kq__jsonw_raw(w, "}");
	return 0;
bad:
	w->len = mark;
	return -1;
}

/* The whole metadata state as one JSON document (storage-format.md):
 * {"sub_id_limit", "applied_end", "topics" (as their creation records,
 * with their group ids), "offsets" (committed offsets and members, as
 * many as groups times partitions, written as text straight away:
 * jsonw.h), "brokers"}.  Applied state only: what this broker proposed
 * and is not applied yet is not in it. */
static int snapshot(void *ctx, void **data, size_t *len)
{
	struct kq_broker *b = ctx;
	json_t *topics = json_array();
	struct kq__map_entry *e = NULL;
	struct kq__jsonw w = {0};
	int first = 1;

	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *t = e->value;

		json_array_append_new(
			topics,
			json_pack("{s:s, s:I, s:I, s:s, s:I, s:I, s:I}", "name",
				  t->name, "partitions", (json_int_t)t->nparts,
				  "replicas", (json_int_t)t->replicas,
				  "partitioner",
				  t->recorded_partitioner
					  ? t->recorded_partitioner
					  : b->partitioners[t->partitioner]
						    .mod.name,
				  "retention_ms", (json_int_t)t->retention_ms,
				  "retention_bytes",
				  (json_int_t)t->retention_bytes, "group_base",
				  (json_int_t)t->group_base));
	}
	kq__jsonw_raw(&w, "{\"sub_id_limit\":");
	kq__jsonw_u64(&w, b->sub_id_limit);
	/* Where applying stands, so that a broker restoring it knows (a
	 * forwarded CRTP waits for it). */
	kq__jsonw_raw(&w, ",\"applied_end\":");
	kq__jsonw_u64(&w, b->meta_applied_end);
	kq__jsonw_raw(&w, ",\"topics\":");
	kq__jsonw_value(&w, topics);
	kq__jsonw_raw(&w, ",\"offsets\":[");
	while ((e = kq__map_next(&b->topics, e))) {
		struct kq__topic *t = e->value;

		for (struct kq__map_entry *ge = kq__map_next(&t->cgroups, NULL);
		     ge; ge = kq__map_next(&t->cgroups, ge))
			if (snapshot_group(&w, ge->value, first) == 0)
				first = 0;
	}
	kq__jsonw_raw(&w, "],\"brokers\":");
	kq__jsonw_value(&w, kq__roster_snapshot(b));
	kq__jsonw_raw(&w, "}");
	if (w.oom) {
		free(w.p);
		return -ENOMEM;
	}
	*data = w.p;
	*len = w.len;
	return 0;
}

static int restore(void *ctx, const void *data, size_t len)
{
	struct kq_broker *b = ctx;
	json_error_t jerr;
	json_t *doc, *item;
	json_int_t limit;
	size_t i;
	int rv;

	doc = json_loadb(data, len, 0, &jerr);
	/* Reopened, this run holds the state up to meta_applied_end: a
	 * snapshot of it or of less is not restored.  One ahead of it was
	 * installed (from a leader) and never restored: the records it
	 * covers are never applied here otherwise. */
	limit = json_integer_value(json_object_get(doc, "applied_end"));
	if (b->meta_reopening && json_is_object(doc) &&
	    (limit <= 0 || (uint64_t)limit <= b->meta_applied_end)) {
		json_decref(doc);
		return 0;
	}

	if (!json_is_object(doc)) {
		kq__error("metadata snapshot: %s",
			  doc ? "not an object" : jerr.text);
		json_decref(doc);
		return KQ_ECORRUPT;
	}
	json_array_foreach(json_object_get(doc, "topics"), i, item)
	{
		apply_topic(b, item,
			    (uint64_t)json_integer_value(
				    json_object_get(item, "group_base")));
	}
	/* It replaces the state: a snapshot installed at runtime holds what
	 * the records this broker missed made of it. */
	rv = restore_offsets(b, doc);
	if (rv != 0) {
		json_decref(doc);
		return rv;
	}
	kq__roster_restore(b, doc);
	release_groups(b);
	/* Ids below the limit belong to earlier blocks; this run reserves
	 * its own. */
	limit = json_integer_value(json_object_get(doc, "sub_id_limit"));
	if (limit > 0 && (uint64_t)limit > b->sub_id_limit)
		b->sub_id_limit = (uint64_t)limit;
	sub_floor_save(b, b->sub_id_limit);
	limit = json_integer_value(json_object_get(doc, "applied_end"));
	if (limit > 0 && (uint64_t)limit > b->meta_applied_end)
		b->meta_applied_end = (uint64_t)limit;
	json_decref(doc);
	return 0;
}

/* A standalone broker logs no membership (members.c), so its log cannot
 * tell how long its groups had members before the stop: the start counts
 * as every group's last activity, for retention (retire.c). */
static void stamp_started(struct kq_broker *b)
{
	int64_t now = kq_wall_ms();

	for (struct kq__map_entry *te = kq__map_next(&b->topics, NULL); te;
	     te = kq__map_next(&b->topics, te)) {
		struct kq__topic *t = te->value;

		for (struct kq__map_entry *ge = kq__map_next(&t->cgroups, NULL);
		     ge; ge = kq__map_next(&t->cgroups, ge))
			((struct kq__cgroup *)ge->value)->touched_ms = now;
	}
	b->cgroups_untimed = 0;
}

/* A value that differs between runs, to recognise this run's records. */
static uint64_t boot_id(void)
{
	struct timespec ts;
	uint64_t v;

	clock_gettime(CLOCK_REALTIME, &ts);
	v = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
	    (uint64_t)getpid() << 32;
	/* jansson integers are signed: keep it positive. */
	return v & INT64_MAX;
}

static const struct kq__meta_sm sm = {apply, snapshot, restore};

int kq__apply_open(struct kq_broker *b)
{
	int rv;

	b->sub_id_limit = 1;
	if (sub_floor_used(b)) {
		b->sub_id_floor = kq__idfloor_load(b->dir);
		if (b->sub_id_floor > b->sub_id_limit)
			b->sub_id_limit = b->sub_id_floor;
	}
	/* Ids are handed out only from blocks this run reserved. */
	b->next_sub_id = b->my_sub_id_limit = 0;
	b->boot_id = boot_id();
	b->meta_applied_end = 0;
	rv = kq__members_init(b);
	if (rv == 0)
		rv = kq__meta_open(b, &sm);
	if (rv != 0)
		return rv;
	if (sub_floor_used(b))
		stamp_started(b);
	kq__subscribe_reserve_ids(b);
	kq__members_register(b);
	return 0;
}

int kq__apply_reopen(struct kq_broker *b)
{
	int rv = kq__meta_reopen(b);

	if (rv == 0) {
		kq__subscribe_reserve_ids(b);
		kq__members_register(b);
	}
	return rv;
}
