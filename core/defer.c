/* Work the loop runs after this turn's callbacks: answers queued so that
 * a request's callback never runs inside the call that made it, the
 * end-of-turn flush, and the retry of logs that could not be opened.
 * The flush and the retry belong to the broker's life (broker.c), which
 * hands them in as callbacks, so that every file below it can ask for
 * them without calling up. */
#include "defer.h"
#include "types.h"

static void on_idle(uv_idle_t *h)
{
	struct kq_broker *b = h->data;

	b->flush_cb(b);
}

void kq__defer_wake(struct kq_broker *b)
{
	if (b->stopping < 2 && !uv_is_active((uv_handle_t *)&b->idle))
		uv_idle_start(&b->idle, on_idle);
}

void kq__defer_complete(struct kq_broker *b, struct kq_req *req, int status)
{
	req->priv.done_next = NULL;
	req->priv.done_status = status;
	*b->done_tail = req;
	b->done_tail = &req->priv.done_next;
	kq__defer_wake(b);
}

void kq__defer_deliver(struct kq_broker *b)
{
	struct kq_req *req = b->done;

	b->done = NULL;
	b->done_tail = &b->done;
	while (req) {
		struct kq_req *next = req->priv.done_next;

		req->cb(req, req->priv.done_status);
		req = next;
	}
}

void kq__defer_reopen(struct kq_broker *b)
{
	if (!b->stopping && !uv_is_active((uv_handle_t *)&b->reopen_timer))
		uv_timer_start(&b->reopen_timer, b->reopen_cb, KQ__REOPEN_MS,
			       KQ__REOPEN_MS);
}
