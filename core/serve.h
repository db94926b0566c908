#ifndef KQ_CORE_SERVE_H
#define KQ_CORE_SERVE_H

#include "types.h"

/* serve.c: requests other brokers forwarded here. */
/* Answers a request of another broker (serve.c): `answer` is
 * borrowed for the call. */
typedef void (*kq__serve_done_fn)(void *ctx, const uint8_t *answer, size_t len);
/* The consensus host's serve(): runs a request another broker's core
 * sent; answers once, now or later, with the module's reply(). */
void kq__serve(const struct kq_host *host, struct kq_incoming *in, int from,
	       const void *req, size_t len);
/* Runs a forwarded request this broker turned out to lead; done runs
 * once, now or later, with the answer. */
void kq__serve_local(struct kq_broker *b, const uint8_t *req, size_t len,
		     kq__serve_done_fn done, void *ctx);

#endif /* KQ_CORE_SERVE_H */
