#ifndef KQ_CORE_PUBLISH_H
#define KQ_CORE_PUBLISH_H

#include <stdbool.h>

#include "types.h"

/* publish.c: PUBS. */
int kq__publish(struct kq_session *s, struct kq_req *req, const char *topic,
		const void *msg, size_t len, kq_req_cb cb);
/* Partitions whose batch one flush proposes (or forwards) at most, and
 * bytes, past the first partition; the rest wait for the next turn. */
#define KQ__FLUSH_PARTS 64
#define KQ__FLUSH_BYTES (1u << 20)
/* Flushes of one round after which the syncs asked for start anyway:
 * two, the idle and the check handle's of one loop turn, so that no
 * sync waits longer than it did when a turn wrote everything (files
 * written and not yet synced stay open, and past segment.open_files
 * the descriptor bound syncs them on the loop). */
#define KQ__FLUSH_SYNC_AFTER 2
/* Proposes (or forwards) the partitions' batches, oldest first, within
 * the bounds above: the end of the turn.  The batches waiting when a
 * round begins are its round, taken over as many turns as it needs.
 * True when the syncs asked for meanwhile should start: the round is
 * over, or KQ__FLUSH_SYNC_AFTER flushes of it went by.  So the logs a
 * round wrote are synced together (one syncfs for many), and a long
 * round's every turn, as when a turn wrote everything. */
bool kq__batch_flush(struct kq_broker *b);
/* A partition proposal's callback ran (b->proposals): this file's and
 * serve.c's forwarded ones. */
void kq__proposal_done(struct kq_broker *b);

#endif /* KQ_CORE_PUBLISH_H */
