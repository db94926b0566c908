/* Offsets retention: on the metadata leader, every so often, a forget
 * record for each group that has had no member and no metadata record
 * for groups.offsets_retention_ms by the leader's clock (as Kafka expires
 * an empty group's offsets).  apply.c applies it on every broker: the
 * group and its offsets go, and it no longer counts against
 * limits.max_groups.  Without it a group that ever committed an offset
 * would be kept for ever. */
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/clock.h>

#include "log.h"
#include "meta.h"
#include "retire.h"
#include "topic.h"
#include "types.h"

/* Forget records in flight at once: a backlog (after an upgrade, or a
 * long outage) goes out over a few ticks, not as one burst. */
#define MAX_FORGETS 64

struct forget {
	struct kq_broker *b;
	char *topic, *group;
};

static void forgot(void *ctx, int status)
{
	struct forget *f = ctx;
	struct kq_broker *b = f->b;
	struct kq__topic *t = kq__topic_get(b, f->topic);
	struct kq__cgroup *g =
		t ? kq__map_get(&t->cgroups, f->group, strlen(f->group)) : NULL;

	/* Applied, the group is gone; refused (leadership moved, a
	 * stop), it is looked at again next time. */
	if (g)
		g->forgetting = 0;
	if (status != 0)
		kq__debug("group %s of %s: forget not committed: %s", f->group,
			  f->topic, kq_strerror(status));
	b->forgets--;
	free(f->topic);
	free(f->group);
	free(f);
}

static void propose_forget(struct kq_broker *b, struct kq__cgroup *g)
{
	struct forget *f = calloc(1, sizeof(*f));
	/* With where applying stands: a record applied after (a late
	 * acknowledgement, a join) keeps the group.  "touched" is for
	 * brokers that predate "at". */
	json_t *rec = json_pack("{s:s, s:s, s:s, s:I, s:I}", "type", "forget",
				"topic", g->topic->name, "group", g->name, "at",
				(json_int_t)b->meta_applied_end, "touched",
				(json_int_t)g->touched_ms);

	if (f) {
		f->b = b;
		f->topic = strdup(g->topic->name);
		f->group = strdup(g->name);
	}
	if (f && f->topic && f->group && rec) {
		/* Marked first: once proposed, g may be gone. */
		g->forgetting = 1;
		g->forget_at = b->meta_applied_end;
		b->forgets++;
		if (kq__meta_propose(b, rec, forgot, f) == 0) {
			json_decref(rec);
			return;
		}
		g->forgetting = 0;
		b->forgets--;
	}
	if (f) {
		free(f->topic);
		free(f->group);
	}
	free(f);
	json_decref(rec);
}

/* Only the metadata leader proposes, so that groups are not forgotten
 * once per broker; a standalone broker leads its own. */
static int leads_metadata(struct kq_broker *b)
{
	return b->meta_group && !b->meta_store.failed &&
	       (!b->cfg->npeers ||
		b->cops->leader(b->meta_group) == b->cfg->broker_id);
}

void kq__retire_on_timer(uv_timer_t *tm)
{
	struct kq_broker *b = tm->data;
	int64_t now = kq_wall_ms(), keep = b->cfg->offsets_retention_ms;
	struct kq__map_entry *te = NULL, *ge;

	if (b->stopping || !leads_metadata(b))
		return;
	while (b->forgets < MAX_FORGETS &&
	       (te = kq__map_next(&b->topics, te))) {
		struct kq__topic *t = te->value;

		for (ge = kq__map_next(&t->cgroups, NULL);
		     ge && b->forgets < MAX_FORGETS;
		     ge = kq__map_next(&t->cgroups, ge)) {
			struct kq__cgroup *g = ge->value;

			/* touched_ms 0: not known yet (apply.c). */
			if (g->nmembers || g->forgetting || !g->touched_ms ||
			    now - g->touched_ms < keep)
				continue;
			propose_forget(b, g);
		}
	}
}

uint64_t kq__retire_period(const struct kq_broker *b)
{
	/* A quarter of the retention, so that a group goes at most a
	 * quarter late; at least once a minute past that. */
	int64_t period = b->cfg->offsets_retention_ms / 4;

	return (uint64_t)(period < 60000 ? period : 60000);
}
