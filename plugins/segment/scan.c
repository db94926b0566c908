/* What a scan of a segment's records gives: its index, loaded from the
 * .index file or rebuilt by reading the records, and its tail (the last
 * record's offset and term, the newest timestamp). */
#include <inttypes.h>
#include <stdint.h>

#include "format.h"
#include "io.h"
#include "module.h"

int kq__seg_load_index(struct kq_log *log, struct kq__seg *seg)
{
	uint64_t end;
	int rv;

	if (seg->idx_loaded)
		return 0;
	rv = kq__seg_read_index(log, seg, seg->size);
	if (rv == 0) {
		seg->idx_loaded = true;
		return 0;
	}
	kq__seg_index_free(log->host, &seg->idx);
	if (rv == -ENOMEM)
		return rv;
	log->host->log(log->host, KQ_LOG_INFO,
		       "%s: rebuilding the index of segment %" PRIu64 " (%s)",
		       log->dir, seg->base,
		       rv == -ENOENT ? "missing" : "inconsistent");
	rv = kq__seg_open_file(log, seg);
	if (rv != 0)
		return rv;
	return kq__seg_rebuild_index(log, seg, &end);
}

int kq__seg_open_indexed(struct kq_log *log, struct kq__seg *seg)
{
	int rv = kq__seg_open_file(log, seg);

	return rv != 0 ? rv : kq__seg_load_index(log, seg);
}

int kq__seg_rebuild_index(struct kq_log *log, struct kq__seg *seg,
			  uint64_t *end)
{
	struct kq__seg_cursor c;
	struct kq_record rec;
	uint64_t size, at, last = 0, term = 0;
	int64_t max_ts = INT64_MIN;
	int rv;

	kq__seg_index_free(log->host, &seg->idx);
	kq__seg_cursor_init(&c, log, seg, KQ__SEG_HDR_SIZE, seg->size,
			    4 * KQ__SEG_CHUNK, false);
	for (;;) {
		at = c.pos;
		rv = kq__seg_cursor_next(&c, &rec, &size);
		if (rv <= 0)
			break;
		if (seg->idx.n == 0 || at - seg->idx.e[seg->idx.n - 1].pos >=
					       log->conf.index_interval) {
			rv = kq__seg_index_push(log->host, &seg->idx,
						rec.offset, at);
			if (rv != 0)
				break;
		}
		if (rec.timestamp_ms > max_ts)
			max_ts = rec.timestamp_ms;
		last = rec.offset;
		term = rec.term;
	}
	*end = c.pos;
	if (rv == KQ_ECORRUPT)
		kq__seg_report(log, seg, c.pos, c.why);
	kq__seg_cursor_fini(&c);
	if (rv < 0 && rv != KQ_ECORRUPT) {
		kq__seg_index_free(log->host, &seg->idx);
		return rv;
	}
	/* Only a scan to the end knows the tail; damage stops it short. */
	if (rv == 0 && !seg->tail_known) {
		seg->last = last;
		seg->last_term = term;
		seg->max_ts = max_ts;
		seg->tail_known = true;
	}
	seg->idx_loaded = true;
	seg->idx_trusted = true;
	rv = kq__seg_write_index(log, seg);
	if (rv != 0)
		log->host->log(log->host, KQ_LOG_WARN,
			       "%s: cannot write the index of segment %" PRIu64
			       ": %s",
			       log->dir, seg->base, kq_strerror(rv));
	return 0;
}

int kq__seg_tail(struct kq_log *log, struct kq__seg *seg)
{
	struct kq__seg_cursor c;
	struct kq_record rec;
	uint64_t size;
	int64_t max_ts = INT64_MIN;
	bool any = false;
	int rv;

	if (seg->tail_known)
		return 0;
	rv = kq__seg_open_indexed(log, seg);
	if (rv != 0)
		return rv;
	if (seg->tail_known)
		return 0; /* the index was just rebuilt by a full scan */
	kq__seg_cursor_init(&c, log, seg,
			    seg->idx.n ? seg->idx.e[seg->idx.n - 1].pos
				       : KQ__SEG_HDR_SIZE,
			    seg->size, KQ__SEG_CHUNK, false);
	while ((rv = kq__seg_cursor_next(&c, &rec, &size)) == 1) {
		any = true;
		seg->last = rec.offset;
		seg->last_term = rec.term;
		if (rec.timestamp_ms > max_ts)
			max_ts = rec.timestamp_ms;
	}
	if (rv == KQ_ECORRUPT)
		kq__seg_report(log, seg, c.pos, c.why);
	kq__seg_cursor_fini(&c);
	if (rv != 0)
		return rv;
	if (any || seg->size <= KQ__SEG_HDR_SIZE) {
		seg->max_ts = max_ts;
		seg->tail_known = true;
	}
	return 0;
}
