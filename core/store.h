#ifndef KQ_CORE_STORE_H
#define KQ_CORE_STORE_H

#include "types.h"

/* store.c: the store API the consensus module is lent (host->store), and
 * the one place the storage module's fsync policy is read and applied. */
extern const struct kq_store_api kq__store_api;
/* Reads the policy into b->sync_policy (at init), warning when a cluster
 * does not sync always. */
void kq__store_policy(struct kq_broker *b);
/* Starts the interval policy's timer (b->sync_timer), if that is it. */
void kq__store_start(struct kq_broker *b);
/* Where records of pl may have been acknowledged up to: a reopen drops
 * what lies past it (written, never acknowledged). */
uint64_t kq__store_acked_end(const struct kq_store *pl);
/* Opens the log at `dir` with `opts` (its `unsynced` is the policy's),
 * dropping the records at or above `keep_below` first (UINT64_MAX: none):
 * a reopen keeps only what may have been acknowledged. */
int kq__store_open(struct kq_broker *b, struct kq_store *pl, const char *dir,
		   const struct kq_log_options *opts, uint64_t keep_below);
void kq__store_close(struct kq_store *pl);
void kq__store_flush(struct kq_broker *b);
void kq__store_sync_all(struct kq_broker *b);
/* Whether pl has a sync running, or requests waiting for one: it must
 * not be closed or reopened yet. */
bool kq__store_busy(const struct kq_store *pl);
/* At the stop, with nothing in flight: syncs every log now, on this
 * thread (together where the storage module can), logging each failure
 * and setting the exit code. */
void kq__store_final_sync(struct kq_broker *b);

#endif /* KQ_CORE_STORE_H */
