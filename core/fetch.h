#ifndef KQ_CORE_FETCH_H
#define KQ_CORE_FETCH_H

#include "types.h"

/* fetch.c: reads of partitions this broker holds no replica of, from a
 * broker that holds one. */
struct kq__fetch;
/* Committed records of a read, as one broker answered it: taken with
 * kq__chunk_take(), then `status` (0, or the error that ends the read,
 * with errmsg) holds. */
struct kq__chunk {
	int status;
	char errmsg[256];
	uint64_t from; /* the offset the read asked from */
	uint64_t next; /* where the next read starts */
	uint64_t end;  /* the bound of the read */
	uint32_t left; /* records not yet taken */
	struct kq_reader r;
	uint8_t data[];
};
/* Takes the chunk (the reader frees it with kq__chunk_free); a failure
 * comes as a chunk whose status is negative. */
typedef void (*kq__fetch_cb)(void *ctx, struct kq__chunk *ch);
/* Reads t's partition `part` from `from` up to `end` (cut to what is
 * committed where it is read), about `budget` bytes and at most `max`
 * messages (0: no bound), from a broker holding a replica.  cb runs once,
 * from a later loop turn, unless the read is canceled first; the fetch
 * is freed before cb runs.  Returns 0 or -ENOMEM (cb never runs). */
int kq__fetch_start(struct kq_broker *b, struct kq__topic *t, uint32_t part,
		    uint64_t from, uint64_t end, size_t budget, uint32_t max,
		    kq__fetch_cb cb, void *ctx, struct kq__fetch **out);
/* cb will not run; f is freed now or when its call ends. */
void kq__fetch_cancel(struct kq__fetch *f);
/* b->fetch_timer: asks again what waits, fails what timed out. */
void kq__fetch_on_timer(uv_timer_t *tm);
/* At a stop: fails the reads that wait. */
void kq__fetch_stop(struct kq_broker *b);

/* The next record of the chunk into rec (borrowed from the chunk): 1, or
 * 0 when none is left. */
int kq__chunk_take(struct kq__chunk *ch, struct kq_record *rec);
void kq__chunk_free(struct kq__chunk *ch);

#endif /* KQ_CORE_FETCH_H */
