#ifndef KQ_CORE_BROKER_H
#define KQ_CORE_BROKER_H

#include "types.h"

/* broker.c: the broker's life: its data folder, opening and closing, the
 * end-of-turn flush, signals and the graceful stop. */
/* Creates a broker on `loop` from a validated configuration (borrowed
 * until kq__broker_close).  Loads and initialises every module, recovers
 * the data folder and starts the transports.  Errors are logged as one
 * line each and returned. */
int kq__broker_open(uv_loop_t *loop, struct kq__config *cfg,
		    struct kq_broker **out);

/* Initialises the broker's own libuv handles on `loop` (each closed by
 * the stop); kq__broker_open() does it first. */
void kq__broker_init_handles(struct kq_broker *b, uv_loop_t *loop);

/* Starts a graceful stop: transports stop accepting, work in flight
 * finishes, logs are synced; the loop then runs out of handles. */
void kq__broker_stop(struct kq_broker *b);

/* Frees the broker after the loop has stopped. */
void kq__broker_close(struct kq_broker *b);

/* Runs batched proposals, syncs and queued completions. */
void kq__broker_flush(struct kq_broker *b);

#endif /* KQ_CORE_BROKER_H */
