/* Opening a new topic's partitions: at once before the broker serves,
 * else a slice at a time on an idle handle, so that a CRTP of thousands
 * of partitions does not stall other clients. */
#include <errno.h>

#include "defer.h"
#include "log.h"
#include "opening.h"
#include "partition.h"
#include "types.h"

static void open_done(struct kq_broker *b, struct kq__topic *t)
{
	void (*cb)(void *, unsigned, int) = t->opened_cb;

	/* A partition that cannot be opened does not hide the others: it
	 * answers UNAVAILABLE with its cause and is retried. */
	if (t->open_failed && b->stopping) {
		kq__info("topic %s: %u of %u partitions not opened: the "
			 "broker is stopping",
			 t->name, t->open_failed, t->nparts);
	} else if (t->open_failed) {
		kq__error("topic %s: %u of %u partitions cannot be opened "
			  "here (%s); retrying every %u ms",
			  t->name, t->open_failed, t->nparts,
			  kq_strerror(t->open_first_error), KQ__REOPEN_MS);
		kq__defer_reopen(b);
	}
	t->opened_cb = NULL;
	if (cb)
		cb(t->opened_ctx, t->open_failed, t->open_first_error);
}

/* Opens t's partitions from t->open_next until `deadline` (uv_hrtime())
 * has passed, at least one.  At the end, logs what failed, schedules
 * retries and calls t->opened_cb.  Returns 1 when every partition was
 * tried, else 0. */
int kq__opening_step(struct kq_broker *b, struct kq__topic *t,
		     uint64_t deadline)
{
	while (t->open_next < t->nparts) {
		struct kq__partition *p = &t->parts[t->open_next++];
		int rv = kq__partition_open(b, p);

		p->open_error = rv;
		if (rv != 0 && t->open_failed++ == 0)
			t->open_first_error = rv;
		if (uv_hrtime() >= deadline)
			break;
	}
	if (t->open_next < t->nparts)
		return 0;
	open_done(b, t);
	return 1;
}

/* Ends t's opening now (the broker stops): partitions not yet tried
 * fail with KQ_ECANCELED and are retried at the next start. */
void kq__opening_cancel(struct kq_broker *b, struct kq__topic *t)
{
	while (t->open_next < t->nparts) {
		struct kq__partition *p = &t->parts[t->open_next++];

		if (p->open_error != -EINPROGRESS)
			continue;
		p->open_error = KQ_ECANCELED;
		if (t->open_failed++ == 0)
			t->open_first_error = KQ_ECANCELED;
	}
	open_done(b, t);
}

/* How long one turn of the loop may spend opening new partitions: a
 * few fdatasyncs' worth, so that other clients are served in between. */
#define OPEN_SLICE_NS (5 * 1000 * 1000)

static void on_open_idle(uv_idle_t *h)
{
	struct kq_broker *b = h->data;
	uint64_t deadline = uv_hrtime() + OPEN_SLICE_NS;

	while (b->opening) {
		struct kq__topic *t = b->opening;

		if (!kq__opening_step(b, t, deadline))
			return;
		b->opening = t->opening_next;
		t->opening_next = NULL;
		if (!b->opening)
			b->opening_tail = &b->opening;
		if (uv_hrtime() >= deadline)
			return;
	}
	uv_idle_stop(h);
}

void kq__opening_later(struct kq_broker *b, struct kq__topic *t)
{
	t->opening_next = NULL;
	*b->opening_tail = t;
	b->opening_tail = &t->opening_next;
	uv_idle_start(&b->open_idle, on_open_idle);
}

/* The broker stops: topics still being opened end now. */
void kq__opening_cancel_all(struct kq_broker *b)
{
	while (b->opening) {
		struct kq__topic *t = b->opening;

		b->opening = t->opening_next;
		t->opening_next = NULL;
		kq__opening_cancel(b, t);
	}
	b->opening_tail = &b->opening;
	uv_idle_stop(&b->open_idle);
}
