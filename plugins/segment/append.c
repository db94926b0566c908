/* Appending records (sync.c makes them durable). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "format.h"
#include "io.h"
#include "module.h"

/* Pending index entries are written once this many have accumulated. */
#define INDEX_FLUSH 256

/* Seals the newest segment and starts a new one at `base`.  The sealed
 * segment is made durable first, so that a later segment never exists on
 * disk after a crash while an earlier one lost its tail: only the newest
 * segment can ever be torn. */
static int roll(struct kq_log *log, uint64_t base)
{
	struct kq__seg *old = log->segs[log->nsegs - 1], *seg;
	int rv;

	rv = kq__seg_flush_index(log, old);
	if (rv != 0) {
		kq__seg_log_fail(log, rv, "writing an index: %s",
				 strerror(-rv));
		return rv;
	}
	/* Off the list of files to sync too: under fsync "never" nothing
	 * else would let its descriptor go before the stop. */
	rv = kq__seg_open_file(log, old);
	if (rv == 0)
		rv = kq__seg_sfile_sync(log, old->file, true);
	if (rv != 0) {
		kq__seg_log_fail(log, rv,
				 "fdatasync of segment %" PRIu64 ": %s",
				 old->base, strerror(-rv));
		return rv;
	}
	rv = kq__seg_create(log, base, false, &seg);
	if (rv == 0) {
		rv = kq__seg_log_push_seg(log, seg);
		if (rv != 0)
			kq__seg_free(log, seg);
	}
	if (rv != 0) {
		kq__seg_log_fail(log, rv, "creating segment %" PRIu64 ": %s",
				 base, strerror(-rv));
		return rv;
	}
	/* Sealed: its files reopen when read. */
	kq__seg_close_fds(log, old);
	old->sealed = true;
	pthread_mutex_lock(&log->mu);
	log->dir_dirty = true;
	kq__seg_sfile_mark(log, seg->file);
	pthread_mutex_unlock(&log->mu);
	return 0;
}

static int check(struct kq_log *log, const struct kq_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t min = i == 0 ? log->next : recs[i - 1].offset + 1;

		if (recs[i].offset < min || recs[i].offset == UINT64_MAX ||
		    (i > 0 && recs[i].offset <= recs[i - 1].offset) ||
		    kq__seg_record_size(&recs[i]) > KQ__SEG_REC_MAX)
			return KQ_EBADARG;
	}
	return 0;
}

static int grow_wbuf(struct kq_log *log, size_t need)
{
	size_t cap = log->wcap ? log->wcap : 64 * 1024;
	uint8_t *b;

	if (need <= log->wcap)
		return 0;
	while (cap < need)
		cap *= 2;
	b = log->host->realloc(log->wbuf, cap);
	if (b == NULL)
		return -ENOMEM;
	log->wbuf = b;
	log->wcap = cap;
	return 0;
}

/* Writes recs[i..j) into the newest segment with one pwrite. */
static int write_batch(struct kq_log *log, const struct kq_record *recs,
		       size_t i, size_t j, size_t len)
{
	struct kq__seg *seg = log->segs[log->nsegs - 1];
	uint64_t pos = seg->size;
	size_t at = 0;
	int rv;

	for (size_t k = i; k < j; k++) {
		kq__seg_record_encode(log->wbuf + at, &recs[k]);
		at += (size_t)kq__seg_record_size(&recs[k]);
	}
	/* Room for the entries now, so that none is lost after the write. */
	rv = kq__seg_index_reserve(log->host, &seg->idx,
				   len / log->conf.index_interval + 2);
	if (rv != 0)
		return rv;
	rv = kq__seg_open_file(log, seg);
	if (rv == 0)
		rv = kq__seg_pwrite_all(seg->file->fd, log->wbuf, len, pos);
	if (rv != 0) {
		/* Best effort: leave no partial record behind. */
		if (seg->file != NULL)
			(void)kq__seg_io.ftruncate(seg->file->fd, (off_t)pos);
		kq__seg_log_fail(log, rv,
				 "writing segment %" PRIu64 " at byte %" PRIu64
				 ": %s",
				 seg->base, pos, strerror(-rv));
		return rv;
	}
	for (size_t k = i; k < j; k++) {
		struct kq__seg_index *ix = &seg->idx;

		if (ix->n == 0 ||
		    pos - ix->e[ix->n - 1].pos >= log->conf.index_interval)
			kq__seg_index_push(log->host, ix, recs[k].offset, pos);
		if (recs[k].timestamp_ms > seg->max_ts)
			seg->max_ts = recs[k].timestamp_ms;
		pos += kq__seg_record_size(&recs[k]);
	}
	seg->size = pos;
	seg->last = recs[j - 1].offset;
	seg->last_term = recs[j - 1].term;
	pthread_mutex_lock(&log->mu);
	log->next = seg->last + 1;
	kq__seg_sfile_mark(log, seg->file);
	pthread_mutex_unlock(&log->mu);
	if (seg->idx.n - seg->idx.flushed >= INDEX_FLUSH) {
		rv = kq__seg_flush_index(log, seg);
		if (rv != 0) {
			kq__seg_log_fail(log, rv, "writing an index: %s",
					 strerror(-rv));
			return rv;
		}
	}
	return 0;
}

int kq__seg_log_append(struct kq_log *log, const struct kq_record *recs,
		       size_t n)
{
	uint64_t was_next = log->next;
	size_t i = 0;
	int rv;

	kq__seg_log_report(log);
	if (kq__seg_log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	if (n == 0)
		return 0;
	rv = check(log, recs, n);
	if (rv != 0)
		return rv;
	rv = kq__seg_lost_refill(log, recs[0].offset);
	if (rv != 0)
		return rv;
	while (i < n) {
		struct kq__seg *seg = log->segs[log->nsegs - 1];
		uint64_t limit = log->conf.segment_bytes, len = 0;
		size_t j;

		if (seg->size > KQ__SEG_HDR_SIZE &&
		    seg->size + kq__seg_record_size(&recs[i]) > limit) {
			rv = roll(log, recs[i].offset);
			if (rv != 0)
				goto out;
			seg = log->segs[log->nsegs - 1];
		}
		/* Everything that fits this segment goes in one write. */
		for (j = i; j < n; j++) {
			uint64_t sz = kq__seg_record_size(&recs[j]);

			if (j > i && seg->size + len + sz > limit)
				break;
			len += sz;
		}
		rv = grow_wbuf(log, (size_t)len);
		if (rv == 0)
			rv = write_batch(log, recs, i, j, (size_t)len);
		if (rv != 0)
			goto out;
		i = j;
	}
out:
	if (log->first == was_next && log->next != was_next)
		log->first = recs[0].offset; /* the log was empty */
	kq__seg_log_report(log);
	return rv;
}
