/* CONS: reading the partitions assigned to a subscription, streamed in
 * budget-sized steps so the broker never holds a partition in memory,
 * and yielding the loop every KQ__CONS_READS_PER_STEP partitions read.  A
 * partition this broker holds no replica of is read from one that does
 * (fetch.c), a chunk at a time, the next one asked for while one is
 * delivered: at most two chunks per read are held. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "bounds.h"
#include "commit.h"
#include "consume.h"
#include "defer.h"
#include "fetch.h"
#include "log.h"
#include "partition.h"
#include "types.h"

struct part_cursor {
	uint32_t partition;
	int remote;	/* read from another broker's replica */
	uint64_t pos;	/* next offset to read */
	uint64_t end;	/* committed end when the read began (remote:
			 * UINT64_MAX until the first chunk tells) */
	uint64_t start; /* pos at the start */
	uint64_t seeks; /* the group's CMITs with an offset of it at open */
};

struct kq__cons_cursor {
	struct kq_broker *b;
	struct kq__topic *t;
	uint64_t sub_id; /* the member may leave while the read runs */
	int from_committed;
	uint64_t max; /* 0: no limit */
	uint64_t delivered;
	uint32_t idx, nparts;
	/* state of one consume_next step */
	kq_message_cb cb;
	void *ctx;
	size_t used;
	int stop;
	/* A partition that cannot be read does not hold back the others:
	 * the first such error is answered after their messages. */
	int later;
	char later_msg[256];
	/* The remote partition being read: the chunk being delivered, the
	 * next one when it came early, and the read in flight. */
	struct kq_consume *c;
	struct kq__chunk *chunk, *ready;
	struct kq__fetch *fetch;
	int waiting; /* consume_next answered KQ_CONSUME_WAIT */
	/* Yielded after KQ__CONS_READS_PER_STEP reads: on b->cons_parked,
	 * woken from the check handle of a later turn. */
	int parked;
	uint64_t parked_turn;
	struct kq__cons_cursor *prev, *next;
	struct part_cursor parts[];
};

/* Remembers the first partition error of the read, to answer at its
 * end. */
static void defer_error(struct kq__cons_cursor *cur, int rv, const char *msg)
{
	if (cur->later)
		return;
	cur->later = rv;
	snprintf(cur->later_msg, sizeof(cur->later_msg), "%s", msg);
}

/* The read is over: OK, or the error deferred. */
static int read_end(struct kq__cons_cursor *cur, char *errmsg, size_t errlen)
{
	if (!cur->later)
		return 0;
	snprintf(errmsg, errlen, "%s", cur->later_msg);
	return cur->later;
}

/* Whether p, unreadable here, is read from another broker's replica. */
static int read_remote(struct kq_broker *b, const struct kq_consume *c,
		       const struct kq__partition *p)
{
	return c->wake && kq__partition_held_elsewhere(b, p);
}

int kq__consume_open(struct kq_session *s, struct kq_consume *c,
		     const char *topic, uint64_t sub_id, int64_t from,
		     uint64_t max, char *errmsg, size_t errlen)
{
	struct kq_broker *b = s->b;
	struct kq__topic *t;
	struct kq__member *m;
	struct kq__cgroup *g;
	struct kq__cons_cursor *cur;
	uint32_t i, n = 0;
	int rv = kq__member_find(b, topic, sub_id, &m, errmsg, errlen);

	if (rv != 0)
		return rv;
	/* Ended while its metadata log had failed (members.c
	 * end_if_failed), not yet applied here: the others may hold these
	 * partitions already. */
	if (b->cfg->npeers && (b->failed_ended || b->ending_failed)) {
		snprintf(errmsg, errlen,
			 "this broker's consumer group members were ended "
			 "while its metadata log had failed; once it has "
			 "caught up, CONS answers ERR NOSUB and the consumer "
			 "subscribes again");
		return KQ_EUNAVAILABLE;
	}
	/* In a cluster, a broker whose metadata log failed knows neither
	 * the group's owners nor its offsets as they are now: another
	 * member may hold these partitions already, and nothing handed out
	 * here could be acknowledged, so the same batch would come again
	 * and again.  Refused, saying so, until the log is reopened. */
	if (b->cfg->npeers && (b->meta_store.failed || !b->meta_group)) {
		snprintf(errmsg, errlen,
			 "metadata log: %s; consumer group reads on this "
			 "broker wait until it is reopened (tried every 5 s)",
			 kq_strerror(b->meta_store.failed ? b->meta_store.failed
							  : KQ_EUNAVAILABLE));
		return KQ_EUNAVAILABLE;
	}
	g = m->cgroup;
	t = g->topic;
	if (from < 0 && !m->handed) {
		m->handed = calloc(t->nparts, sizeof(*m->handed));
		m->acking = calloc(t->nparts, sizeof(*m->acking));
		if (!m->handed || !m->acking) {
			free(m->handed);
			free(m->acking);
			m->handed = m->acking = NULL;
			snprintf(errmsg, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	cur = calloc(1, sizeof(*cur) + t->nparts * sizeof(cur->parts[0]));
	if (!cur) {
		snprintf(errmsg, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Asking for more acknowledges the batch before. */
	if (from < 0)
		kq__commit_acknowledge(b, m);
	cur->b = b;
	cur->t = t;
	cur->sub_id = sub_id;
	cur->from_committed = from < 0;
	cur->max = max;
	cur->c = c;
	for (i = 0; i < t->nparts; i++) {
		struct kq__partition *p = &t->parts[i];
		struct part_cursor *pc;
		int remote = 0;

		if (g->owner[i] != sub_id)
			continue;
		rv = kq__partition_usable(p, errmsg, errlen);
		if (rv != 0 && !(remote = read_remote(b, c, p))) {
			defer_error(cur, rv, errmsg);
			continue;
		}
		pc = &cur->parts[n++];
		pc->partition = i;
		pc->remote = remote;
		pc->pos = from < 0 ? kq__commit_position(m, i) : (uint64_t)from;
		pc->seeks = g->seeks[i];
		pc->end = UINT64_MAX;
		if (!remote && (rv = kq__read_bounds(b, p, &pc->pos, &pc->end,
						     errmsg, errlen)) != 0) {
			defer_error(cur, rv, errmsg);
			pc->end = pc->pos; /* nothing is read from it */
		}
		pc->start = pc->pos;
	}
	errmsg[0] = '\0';
	cur->nparts = n;
	c->priv.cursor = cur;
	return 0;
}

static int deliver(void *ctx, const struct kq_record *rec)
{
	struct kq__cons_cursor *cur = ctx;
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

static void fetched(void *ctx, struct kq__chunk *ch)
{
	struct kq__cons_cursor *cur = ctx;

	cur->fetch = NULL;
	cur->ready = ch;
	if (cur->waiting) {
		cur->waiting = 0;
		cur->c->wake(cur->c);
	}
}

/* Asks for the records of pc from `from` on; a failure is deferred. */
static int fetch(struct kq__cons_cursor *cur, struct part_cursor *pc,
		 uint64_t from, size_t budget)
{
	uint64_t left = cur->max ? cur->max - cur->delivered : 0;
	int rv;

	if (left > UINT32_MAX)
		left = UINT32_MAX;
	rv = kq__fetch_start(cur->b, cur->t, pc->partition, from, pc->end,
			     budget, (uint32_t)left, fetched, cur, &cur->fetch);
	if (rv != 0) {
		char msg[128];

		snprintf(msg, sizeof(msg),
			 "partition %s-%u: out of memory to read it",
			 cur->t->name, pc->partition);
		defer_error(cur, rv, msg);
	}
	return rv;
}

/* Drops the chunks and the read in flight of a remote partition. */
static void remote_drop(struct kq__cons_cursor *cur)
{
	kq__chunk_free(cur->chunk);
	kq__chunk_free(cur->ready);
	cur->chunk = cur->ready = NULL;
	if (cur->fetch)
		kq__fetch_cancel(cur->fetch);
	cur->fetch = NULL;
}

/* Done with the remote partition being read. */
static void remote_done(struct kq__cons_cursor *cur)
{
	remote_drop(cur);
	cur->idx++;
}

/* One step of a remote partition: delivers from the chunk at hand, or
 * asks for one (KQ_CONSUME_WAIT). */
static int remote_step(struct kq__cons_cursor *cur, struct part_cursor *pc,
		       size_t budget)
{
	struct kq__chunk *ch = cur->chunk;
	struct kq_record rec;

	if (!ch) {
		if (!cur->ready) {
			if (!cur->fetch && fetch(cur, pc, pc->pos, budget)) {
				remote_done(cur);
				return 0;
			}
			cur->waiting = 1;
			return KQ_CONSUME_WAIT;
		}
		ch = cur->chunk = cur->ready;
		cur->ready = NULL;
		/* The first answer bounds the read, as the commit end does
		 * for a local one. */
		if (pc->end == UINT64_MAX && ch->status == 0)
			pc->end = ch->end;
		/* The next chunk is asked for while this one is delivered. */
		if (ch->status == 0 && ch->next > ch->from &&
		    ch->next < pc->end &&
		    (!cur->max || cur->delivered + ch->left < cur->max))
			fetch(cur, pc, ch->next, budget);
	}
	while (!cur->stop && cur->used < budget &&
	       !(cur->max && cur->delivered >= cur->max) &&
	       kq__chunk_take(ch, &rec)) {
		pc->pos = rec.offset + 1;
		deliver(cur, &rec);
	}
	if (ch->left)
		return 0;
	if (ch->status != 0) {
		defer_error(cur, ch->status, ch->errmsg);
		remote_done(cur);
		return 0;
	}
	/* A replica behind the one asked before has nothing from here on
	 * yet: the read ends, nothing skipped. */
	if (ch->next <= ch->from) {
		remote_done(cur);
		return 0;
	}
	if (ch->next > pc->pos)
		pc->pos = ch->next;
	kq__chunk_free(ch);
	cur->chunk = NULL;
	if (pc->pos >= pc->end)
		remote_done(cur);
	return 0;
}

/* Lets the loop serve others before the read goes on: c->wake() comes
 * from the check handle of a later turn (kq__consume_wake_parked). */
static int park(struct kq__cons_cursor *cur)
{
	struct kq_broker *b = cur->b;

	cur->parked = 1;
	cur->parked_turn = b->cons_turn;
	KQ_LIST_APPEND(b->cons_parked, b->cons_parked_tail, cur);
	b->cons_parks++;
	kq__defer_wake(b);
	return KQ_CONSUME_WAIT;
}

static void unpark(struct kq__cons_cursor *cur)
{
	struct kq_broker *b = cur->b;

	if (!cur->parked)
		return;
	cur->parked = 0;
	KQ_LIST_REMOVE_TAIL(b->cons_parked, b->cons_parked_tail, cur);
}

void kq__consume_wake_parked(struct kq_broker *b)
{
	uint64_t turn = b->cons_turn++;
	struct kq__cons_cursor *cur;

	/* Those parked in an earlier turn only: one parked during this
	 * turn's I/O waits for the next poll.  Each wake may close any read
	 * (a connection closing), so the head is taken afresh each time;
	 * one parked again meanwhile waits for the next turn. */
	while ((cur = b->cons_parked) != NULL && cur->parked_turn < turn) {
		unpark(cur);
		cur->c->wake(cur->c);
	}
}

int kq__consume_next(struct kq_consume *c, size_t budget, kq_message_cb cb,
		     void *ctx, char *errmsg, size_t errlen)
{
	struct kq__cons_cursor *cur = c->priv.cursor;
	struct kq_broker *b = cur->b;
	unsigned reads = 0;

	if (cur->parked)
		return KQ_CONSUME_WAIT;
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
			return read_end(cur, errmsg, errlen);
		/* A member holding thousands of partitions would hold the
		 * loop for all of their reads (each may open a file). */
		if (reads >= KQ__CONS_READS_PER_STEP && c->wake &&
		    pc->pos < pc->end)
			return park(cur);
		if (pc->remote) {
			if (cur->waiting)
				return KQ_CONSUME_WAIT;
			rv = remote_step(cur, pc, budget);
			if (rv == KQ_CONSUME_WAIT)
				return rv;
			if (cur->stop || cur->used >= budget)
				return cur->max && cur->delivered >= cur->max
					       ? read_end(cur, errmsg, errlen)
					       : 1;
			continue;
		}
		if (pc->pos >= pc->end) {
			cur->idx++;
			continue;
		}
		/* Its log may have been closed to be reopened meanwhile. */
		if (!p->group) {
			snprintf(errmsg, errlen,
				 "partition %s-%u is being reopened; read it "
				 "again",
				 cur->t->name, pc->partition);
			defer_error(cur, KQ_EUNAVAILABLE, errmsg);
			cur->idx++;
			continue;
		}
		reads++;
		rv = b->sops->read(p->store.log, pc->pos, pc->end,
				   budget > cur->used ? budget - cur->used : 1,
				   deliver, cur, &next);
		if (next > pc->pos)
			pc->pos = next;
		if (rv < 0) {
			if (rv == KQ_ECORRUPT)
				snprintf(errmsg, errlen,
					 "partition %s-%u is damaged at offset "
					 "%" PRIu64
					 "; it is readable only up to there",
					 cur->t->name, pc->partition, next);
			else
				snprintf(errmsg, errlen,
					 "partition %s-%u cannot be read at "
					 "offset %" PRIu64 ": %s",
					 cur->t->name, pc->partition, pc->pos,
					 kq_strerror(rv));
			defer_error(cur,
				    rv == KQ_EUNAVAILABLE ? rv : KQ_EINTERNAL,
				    errmsg);
			cur->idx++;
			continue;
		}
		if (rv == 0 && next <= pc->pos && pc->pos < pc->end) {
			/* Nothing more below the end: offsets have a gap up
			 * to it. */
			pc->pos = pc->end;
		}
		if (cur->stop || cur->used >= budget)
			return cur->max && cur->delivered >= cur->max
				       ? read_end(cur, errmsg, errlen)
				       : 1;
	}
	return read_end(cur, errmsg, errlen);
}

uint64_t kq__consume_close(struct kq_consume *c)
{
	struct kq__cons_cursor *cur = c->priv.cursor;
	uint64_t delivered = cur->delivered;
	struct kq__member *m;

	/* Handed out, not yet committed: the member may have gone with its
	 * connection meanwhile, and then nothing is kept. */
	m = kq__map_get(&cur->b->subs, &cur->sub_id, sizeof(cur->sub_id));
	if (cur->from_committed && m && m->handed)
		for (uint32_t i = 0; i < cur->nparts; i++) {
			struct part_cursor *pc = &cur->parts[i];

			/* A CMIT with an offset applied meanwhile wins. */
			if (m->cgroup->seeks[pc->partition] == pc->seeks &&
			    pc->pos > kq__commit_position(m, pc->partition))
				m->handed[pc->partition] = pc->pos;
		}
	remote_drop(cur);
	unpark(cur);
	free(cur);
	c->priv.cursor = NULL;
	return delivered;
}
