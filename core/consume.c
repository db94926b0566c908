/* CONS: reading the partitions assigned to a subscription, streamed in
 * budget-sized steps so the broker never holds a partition in memory. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "log.h"

struct part_cursor {
	uint32_t partition;
	uint64_t pos;	/* next offset to read */
	uint64_t end;	/* committed end when the read began */
	uint64_t start; /* pos at the start */
};

struct cursor {
	struct kq_broker *b;
	struct kq__topic *t;
	struct kq__group *g;
	int from_committed;
	uint64_t max; /* 0: no limit */
	uint64_t delivered;
	uint32_t idx, nparts;
	/* state of one consume_next step */
	kq_message_cb cb;
	void *ctx;
	size_t used;
	int stop;
	struct part_cursor parts[];
};

int kq__consume_open(struct kq_session *s, struct kq_consume *c,
		     const char *topic, uint64_t sub_id, int64_t from,
		     uint64_t max, char *errmsg, size_t errlen)
{
	struct kq_broker *b = s->b;
	struct kq__topic *t = kq__topic_get(b, topic);
	struct kq__member *m;
	struct kq__group *g;
	struct cursor *cur;
	uint32_t i, n = 0;

	if (!t) {
		snprintf(errmsg, errlen, "no topic named %s", topic);
		return KQ_ENOTOPIC;
	}
	m = kq__map_get(&b->subs, &sub_id, sizeof(sub_id));
	if (!m || m->group->topic != t) {
		snprintf(errmsg, errlen,
			 "no subscription %" PRIu64 " on topic %s", sub_id,
			 topic);
		return KQ_ENOSUB;
	}
	g = m->group;
	cur = calloc(1, sizeof(*cur) + t->nparts * sizeof(cur->parts[0]));
	if (!cur) {
		snprintf(errmsg, errlen, "out of memory");
		return -ENOMEM;
	}
	cur->b = b;
	cur->t = t;
	cur->g = g;
	cur->from_committed = from < 0;
	cur->max = max;
	for (i = 0; i < t->nparts; i++) {
		struct kq__partition *p = &t->parts[i];
		struct part_cursor *pc;
		uint64_t first;

		if (g->owner[i] != sub_id)
			continue;
		if (!p->group) {
			snprintf(errmsg, errlen,
				 "partition %s-%u has no replica on this "
				 "broker",
				 t->name, i);
			free(cur);
			return KQ_EUNAVAILABLE;
		}
		pc = &cur->parts[n++];
		first = b->sops->first_offset(p->plog.log);
		pc->partition = i;
		pc->pos = from < 0 ? g->committed[i] : (uint64_t)from;
		/* Retention may have deleted what was asked for. */
		if (pc->pos < first)
			pc->pos = first;
		pc->start = pc->pos;
		pc->end = b->cops->commit_end(p->group);
	}
	cur->nparts = n;
	c->impl[0] = cur;
	return 0;
}

static int deliver(void *ctx, const struct kq_record *rec)
{
	struct cursor *cur = ctx;
	struct kq_message msg;

	if (rec->flags & KQ_RECORD_CONTROL)
		return 0;
	msg.partition = cur->parts[cur->idx].partition;
	msg.offset = rec->offset;
	msg.data = rec->value;
	msg.len = rec->value_len;
	cur->delivered++;
	cur->used += rec->value_len + 32;
	if (cur->cb(cur->ctx, &msg) != 0)
		cur->stop = 1;
	return cur->stop || (cur->max && cur->delivered >= cur->max);
}

int kq__consume_next(struct kq_consume *c, size_t budget, kq_message_cb cb,
		     void *ctx, char *errmsg, size_t errlen)
{
	struct cursor *cur = c->impl[0];
	struct kq_broker *b = cur->b;

	cur->cb = cb;
	cur->ctx = ctx;
	cur->used = 0;
	cur->stop = 0;
	while (cur->idx < cur->nparts) {
		struct part_cursor *pc = &cur->parts[cur->idx];
		struct kq__partition *p = &cur->t->parts[pc->partition];
		uint64_t next = pc->pos;
		int rv;

		if (cur->max && cur->delivered >= cur->max)
			return 0;
		if (pc->pos >= pc->end) {
			cur->idx++;
			continue;
		}
		rv = b->sops->read(p->plog.log, pc->pos, pc->end,
				   budget > cur->used ? budget - cur->used : 1,
				   deliver, cur, &next);
		if (next > pc->pos)
			pc->pos = next;
		if (rv == KQ_ECORRUPT) {
			snprintf(errmsg, errlen,
				 "partition %s-%u is damaged at offset %" PRIu64
				 "; it is readable only up to there",
				 cur->t->name, pc->partition, next);
			return KQ_EINTERNAL;
		}
		if (rv < 0) {
			snprintf(errmsg, errlen,
				 "partition %s-%u cannot be read at offset "
				 "%" PRIu64 ": %s",
				 cur->t->name, pc->partition, pc->pos,
				 kq_strerror(rv));
			return KQ_EINTERNAL;
		}
		if (rv == 0 && next <= pc->pos && pc->pos < pc->end) {
			/* Nothing more below the end: offsets have a gap up
			 * to it. */
			pc->pos = pc->end;
		}
		if (cur->stop || cur->used >= budget)
			return cur->max && cur->delivered >= cur->max ? 0 : 1;
	}
	return 0;
}

uint64_t kq__consume_close(struct kq_consume *c)
{
	struct cursor *cur = c->impl[0];
	struct kq_broker *b = cur->b;
	uint64_t delivered = cur->delivered;
	json_t *offsets = NULL, *rec;
	uint32_t i;

	if (cur->from_committed) {
		for (i = 0; i < cur->nparts; i++) {
			struct part_cursor *pc = &cur->parts[i];

			if (pc->pos <= cur->g->committed[pc->partition])
				continue;
			/* The next CONS of the group goes on from here at
			 * once; the record makes it survive a restart. */
			cur->g->committed[pc->partition] = pc->pos;
			if (!offsets)
				offsets = json_array();
			json_array_append_new(
				offsets,
				json_pack("[I,I]", (json_int_t)pc->partition,
					  (json_int_t)pc->pos));
		}
	}
	if (offsets) {
		rec = json_pack("{s:s, s:s, s:s, s:o}", "type", "offsets",
				"topic", cur->t->name, "group", cur->g->name,
				"offsets", offsets);
		if (!rec || kq__meta_propose(b, rec, NULL, NULL) != 0)
			kq__error("group %s: offsets of %s not stored",
				  cur->g->name, cur->t->name);
		json_decref(rec);
	}
	free(cur);
	c->impl[0] = NULL;
	return delivered;
}
