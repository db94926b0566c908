/* Dropping records: truncate(), reset(), compact(), and the point
 * retention would drop records before. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "format.h"
#include "io.h"
#include "module.h"

/* The offset of a segment's first record, or UINT64_MAX when empty. */
static uint64_t seg_first(struct kq_log *log, struct kq__seg *seg)
{
	if (seg->size <= KQ__SEG_HDR_SIZE)
		return UINT64_MAX;
	if (kq__seg_load_index(log, seg) != 0 || seg->idx.n == 0)
		return seg->base;
	return seg->idx.e[0].offset;
}

static int fail_io(struct kq_log *log, int rv, const char *what, uint64_t base)
{
	kq__seg_log_fail(log, rv, "%s segment %" PRIu64 ": %s", what, base,
			 strerror(-rv));
	kq__seg_log_report(log);
	return rv;
}

/* Cuts the newest segment before its first record >= from, which lies
 * after at least one record below it. */
static int cut_newest(struct kq_log *log, uint64_t from)
{
	struct kq__seg *seg = log->segs[log->nsegs - 1];
	bool sealed = seg->sealed;
	struct kq__seg_cursor c;
	struct kq_record rec;
	uint64_t size, cut, last = 0, term = 0;
	int64_t max_ts = INT64_MIN;
	ssize_t k;
	int rv;

	rv = kq__seg_open_indexed(log, seg);
	if (rv != 0)
		return rv;
	k = kq__seg_index_find(&seg->idx, from - 1);
	kq__seg_cursor_init(&c, log, seg,
			    k >= 0 ? seg->idx.e[k].pos : KQ__SEG_HDR_SIZE,
			    seg->size, KQ__SEG_CHUNK, false);
	for (;;) {
		cut = c.pos;
		rv = kq__seg_cursor_next(&c, &rec, &size);
		if (rv != 1 || rec.offset >= from)
			break;
		last = rec.offset;
		term = rec.term;
		if (rec.timestamp_ms > max_ts)
			max_ts = rec.timestamp_ms;
	}
	if (rv == KQ_ECORRUPT)
		kq__seg_report(log, seg, c.pos, c.why);
	kq__seg_cursor_fini(&c);
	if (rv < 0)
		return rv;
	while (seg->idx.n > 0 && seg->idx.e[seg->idx.n - 1].pos >= cut)
		seg->idx.n--;
	if (seg->idx.flushed > seg->idx.n) {
		seg->idx.flushed = seg->idx.n;
		if (!sealed &&
		    (kq__seg_open_ifd(log, seg) != 0 ||
		     kq__seg_io.ftruncate(
			     seg->ifd,
			     (off_t)(KQ__SEG_HDR_SIZE +
				     seg->idx.n * KQ__SEG_IENTRY_SIZE)) != 0))
			return fail_io(log, -errno, "truncating the index of",
				       seg->base);
	}
	if (sealed) {
		/* It becomes the newest again: its index file must match. */
		seg->sealed = false;
		rv = kq__seg_write_index(log, seg);
		if (rv == 0)
			rv = kq__seg_open_ifd(log, seg);
		if (rv != 0)
			return fail_io(log, rv, "rewriting the index of",
				       seg->base);
	}
	if (cut < seg->size) {
		rv = kq__seg_open_file(log, seg);
		if (rv != 0)
			return fail_io(log, rv, "opening", seg->base);
		if (kq__seg_io.ftruncate(seg->file->fd, (off_t)cut) != 0 ||
		    kq__seg_io.fdatasync(seg->file->fd) != 0)
			return fail_io(log, -errno, "truncating", seg->base);
		seg->size = cut;
	}
	seg->last = last;
	seg->last_term = term;
	if (!seg->tail_known || max_ts > seg->max_ts)
		seg->max_ts = max_ts;
	seg->tail_known = true;
	return 0;
}

static int reset_to(struct kq_log *log, uint64_t next);

/* truncate() without its check that the log has not failed. */
static int cut(struct kq_log *log, uint64_t from)
{
	bool dropped = false;
	int rv;

	if (from >= log->next)
		return 0;
	if (from <= log->first)
		return reset_to(log, from);
	/* Newest first, so that a crash leaves a prefix of the log. */
	while (log->nsegs > 1 &&
	       seg_first(log, log->segs[log->nsegs - 1]) >= from) {
		rv = kq__seg_log_drop_seg(log, log->nsegs - 1);
		if (rv != 0)
			return rv;
		dropped = true;
	}
	if (dropped) {
		rv = kq__seg_log_sync_dir(log);
		if (rv != 0)
			return rv;
	}
	rv = cut_newest(log, from);
	if (rv != 0) {
		/* Where the log ends is unknown (a damaged record, a failed
		 * truncate): appending now could place records below a
		 * segment's base.  Refuse writes until recovery runs. */
		kq__seg_log_fail(log, rv, "truncating to %" PRIu64 ": %s", from,
				 kq_strerror(rv));
		kq__seg_log_report(log);
		return rv;
	}
	/* Lost offsets stay: a cut of records never made durable (a reopen
	 * after a failed sync) must not free offsets acknowledged before
	 * the damage.  Only records appended into a range drop it. */
	kq__seg_log_set_next(log, true);
	return 0;
}

int kq__seg_log_truncate(struct kq_log *log, uint64_t from)
{
	kq__seg_log_report(log);
	if (kq__seg_log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	return cut(log, from);
}

int kq__seg_log_drop_unsynced(struct kq_log *log)
{
	uint64_t from;

	pthread_mutex_lock(&log->mu);
	from = log->durable_next;
	pthread_mutex_unlock(&log->mu);
	/* A reset that failed may have left no segment to cut. */
	if (log->nsegs == 0)
		return 0;
	return cut(log, from);
}

int kq__seg_log_reset(struct kq_log *log, uint64_t next)
{
	kq__seg_log_report(log);
	if (kq__seg_log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	return reset_to(log, next);
}

/* reset() without its check that the log has not failed. */
static int reset_to(struct kq_log *log, uint64_t next)
{
	struct kq__seg *seg = NULL;
	int rv;

	if (next == UINT64_MAX)
		return KQ_EBADARG;
	/* The new segment waits under a temporary name, durable, until
	 * every segment at or above its name is gone. */
	rv = kq__seg_create(log, next, true, &seg);
	if (rv == 0 && kq__seg_io.fdatasync(seg->file->fd) != 0)
		rv = -errno;
	if (rv != 0) {
		kq__seg_free(log, seg);
		return fail_io(log, rv, "creating", next);
	}
	while (log->nsegs > 0 && log->segs[log->nsegs - 1]->base >= next) {
		rv = kq__seg_log_drop_seg(log, log->nsegs - 1);
		if (rv != 0)
			break;
	}
	if (rv == 0) {
		rv = kq__seg_publish(log, seg);
		if (rv != 0)
			fail_io(log, rv, "publishing", next);
	}
	if (kq__seg_log_push_seg(log, seg) != 0) {
		kq__seg_free(log, seg);
		return fail_io(log, -ENOMEM, "adding", next);
	}
	if (rv != 0)
		return rv;
	rv = kq__seg_log_sync_dir(log);
	if (rv != 0)
		return rv;
	/* Then the older ones, oldest first. */
	while (log->nsegs > 1) {
		rv = kq__seg_log_drop_seg(log, 0);
		if (rv != 0)
			return rv;
	}
	rv = kq__seg_log_sync_dir(log);
	if (rv != 0)
		return rv;
	pthread_mutex_lock(&log->mu);
	log->next = next;
	log->gen++;
	log->durable_next = next;
	pthread_mutex_unlock(&log->mu);
	log->first = next;
	return 0;
}

int kq__seg_log_compact(struct kq_log *log, uint64_t before)
{
	int n = 0, rv;

	kq__seg_log_report(log);
	if (kq__seg_log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	while (log->nsegs > 1) {
		struct kq__seg *seg = log->segs[0];

		/* Every record of a segment is below the next one's base. */
		if (log->segs[1]->base > before &&
		    (kq__seg_tail(log, seg) != 0 ||
		     seg->size <= KQ__SEG_HDR_SIZE || seg->last >= before))
			break;
		rv = kq__seg_log_drop_seg(log, 0);
		if (rv != 0)
			return rv;
		n++;
	}
	if (n > 0)
		kq__seg_log_refresh_first(log);
	return n;
}

int kq__seg_log_retention_point(struct kq_log *log, int64_t now_ms,
				uint64_t *before)
{
	int64_t rbytes = log->conf.retention_bytes;
	int64_t rms = log->conf.retention_ms;
	uint64_t total = 0;
	size_t k = 0;

	*before = log->first;
	kq__seg_log_report(log);
	if (kq__seg_log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	for (size_t i = 0; i < log->nsegs; i++)
		total += log->segs[i]->size;
	/* Oldest first, never the newest: the first segment that stays
	 * bounds what may go. */
	for (; k + 1 < log->nsegs; k++) {
		struct kq__seg *seg = log->segs[k];
		bool del = seg->size <= KQ__SEG_HDR_SIZE;

		/* By size: drop the oldest while the rest still holds at
		 * least retention_bytes. */
		if (!del && rbytes >= 0 &&
		    total - seg->size >= (uint64_t)rbytes)
			del = true;
		/* By time: drop it when its newest record is too old. */
		if (!del && rms >= 0 && kq__seg_tail(log, seg) == 0 &&
		    seg->tail_known && seg->max_ts != INT64_MIN &&
		    now_ms - seg->max_ts > rms)
			del = true;
		if (!del)
			break;
		total -= seg->size;
	}
	if (k > 0)
		*before = log->segs[k]->base;
	return 0;
}
