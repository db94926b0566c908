/* Reading records back: read(), term_at() and the offset queries. */
#include <errno.h>

#include "format.h"
#include "module.h"

/* The segment that holds `offset` if any record does: the last one with
 * base <= offset, or the first. */
static size_t find_seg(const struct kq_log *log, uint64_t offset)
{
	size_t lo = 0, hi = log->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (log->segs[mid]->base <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 ? lo - 1 : 0;
}

struct reader {
	struct kq_log *log;
	uint64_t from, end;
	size_t max_bytes;
	kq_record_cb cb;
	void *ctx;
	uint64_t *next;
	size_t chunk; /* bytes fetched per pread */
	int passed;
	uint64_t bytes;
	bool shared; /* uses log->rbuf */
};

/* Passes the records of one segment.  Returns 1 to go on with the next
 * segment, 0 when done, or an error. */
static int read_seg(struct reader *r, struct kq__seg *seg)
{
	struct kq_log *log = r->log;
	struct kq__seg_cursor c;
	struct kq_record rec;
	uint64_t size, start, expect = 0;
	bool check_first = false, retried = false;
	ssize_t k;
	int rv;

	rv = kq__seg_open_indexed(log, seg);
	if (rv != 0)
		goto damaged_seg;
again:
	k = kq__seg_index_find(&seg->idx, r->from);
	start = KQ__SEG_HDR_SIZE;
	if (k >= 0) {
		start = seg->idx.e[k].pos;
		expect = seg->idx.e[k].offset;
		check_first = !seg->idx_trusted;
	}
	kq__seg_cursor_init(&c, log, seg, start, seg->size, r->chunk,
			    r->shared);
	for (;;) {
		rv = kq__seg_cursor_next(&c, &rec, &size);
		if (rv == 1 && check_first && rec.offset != expect)
			rv = KQ_ECORRUPT;
		if (rv != 1 && check_first && !retried) {
			/* An index from disk pointing at the wrong place:
			 * rebuild it from the log and start over. */
			uint64_t end;

			kq__seg_cursor_fini(&c);
			if (rv < 0 && rv != KQ_ECORRUPT)
				return rv;
			retried = true;
			rv = kq__seg_rebuild_index(log, seg, &end);
			if (rv != 0)
				return rv;
			check_first = false;
			goto again;
		}
		check_first = false;
		if (rv <= 0)
			break;
		if (rec.offset >= r->end) {
			*r->next = r->end;
			kq__seg_cursor_fini(&c);
			return 0;
		}
		if (rec.offset < r->from)
			continue;
		if (r->passed > 0 && r->bytes + size > r->max_bytes) {
			*r->next = rec.offset;
			kq__seg_cursor_fini(&c);
			return 0;
		}
		r->passed++;
		r->bytes += size;
		*r->next = rec.offset + 1;
		if (r->cb(r->ctx, &rec) != 0) {
			kq__seg_cursor_fini(&c);
			return 0;
		}
	}
	if (rv == KQ_ECORRUPT) {
		kq__seg_report(log, seg, c.pos, c.why);
		*r->next = kq__seg_cursor_bad_offset(&c);
	}
	kq__seg_cursor_fini(&c);
	return rv == 0 ? 1 : rv;
damaged_seg:
	if (rv == KQ_ECORRUPT)
		*r->next = seg->base > r->from ? seg->base : r->from;
	return rv;
}

int kq__seg_log_read(struct kq_log *log, uint64_t from, uint64_t end,
		     size_t max_bytes, kq_record_cb cb, void *ctx,
		     uint64_t *next)
{
	struct reader r = {
		.log = log,
		.from = from,
		.max_bytes = max_bytes,
		.cb = cb,
		.ctx = ctx,
		.next = next,
	};
	uint64_t lim, written;
	bool cut = false;
	int rv = 1;

	kq__seg_log_report(log);
	pthread_mutex_lock(&log->mu);
	lim = written = log->next;
	/* A failed log serves only what a sync confirmed. */
	if (log->failed != 0 && log->durable_next < lim) {
		lim = log->durable_next;
		cut = true;
	}
	pthread_mutex_unlock(&log->mu);
	r.end = end < lim ? end : lim;
	/* Small reads (term_at(), a consumer's short fetch) fetch what they
	 * can use: the scan from an index entry plus max_bytes. */
	r.chunk = KQ__SEG_CHUNK;
	if (max_bytes < KQ__SEG_CHUNK &&
	    log->conf.index_interval < KQ__SEG_CHUNK &&
	    max_bytes + log->conf.index_interval + 4096 < KQ__SEG_CHUNK)
		r.chunk = max_bytes + (size_t)log->conf.index_interval + 4096;
	*next = from;
	/* Records are there that it may not serve: not a gap to skip. */
	if (from >= r.end)
		return cut && from < end && from < written ? KQ_EUNAVAILABLE
							   : 0;
	r.shared = !log->reading;
	log->reading = true;
	for (size_t i = find_seg(log, from); i < log->nsegs && rv == 1; i++) {
		struct kq__seg *seg = log->segs[i];

		if (seg->base >= r.end)
			break;
		if (seg->size > KQ__SEG_HDR_SIZE)
			rv = read_seg(&r, seg);
	}
	if (rv == 1)
		*next = r.end;
	if (r.shared)
		log->reading = false;
	return rv < 0 ? rv : r.passed;
}

struct term_ctx {
	uint64_t offset;
	uint64_t term;
	bool found;
};

static int term_cb(void *ctx, const struct kq_record *rec)
{
	struct term_ctx *t = ctx;

	if (rec->offset == t->offset) {
		t->term = rec->term;
		t->found = true;
	}
	return 1;
}

int kq__seg_log_term_at(struct kq_log *log, uint64_t offset, uint64_t *term)
{
	struct kq__seg *seg = log->segs[log->nsegs - 1];
	struct term_ctx t = {.offset = offset};
	uint64_t next;
	int rv;

	if (offset < log->first || offset >= log->next)
		return -ENOENT;
	if (seg->size > KQ__SEG_HDR_SIZE && offset == seg->last &&
	    kq__seg_log_failed(log) == 0) {
		*term = seg->last_term;
		return 0;
	}
	rv = kq__seg_log_read(log, offset, offset + 1, 1, term_cb, &t, &next);
	if (rv < 0)
		return rv;
	if (!t.found)
		return -ENOENT;
	*term = t.term;
	return 0;
}

uint64_t kq__seg_log_first_offset(struct kq_log *log)
{
	return log->first;
}

uint64_t kq__seg_log_next_offset(struct kq_log *log)
{
	return log->next;
}
