/* Sequential, checked reading of one segment's records. */
#include <errno.h>
#include <string.h>

#include "format.h"
#include "io.h"
#include "module.h"

int kq__seg_cursor_init(struct kq__seg_cursor *c, struct kq_log *log,
			struct kq__seg *seg, uint64_t pos, uint64_t limit,
			size_t chunk, bool shared)
{
	memset(c, 0, sizeof(*c));
	c->log = log;
	c->seg = seg;
	/* Its own reference: the segment may let its descriptor go (to
	 * stay within the module's bound) while the cursor reads. */
	c->err = kq__seg_open_file(log, seg);
	if (c->err == 0) {
		c->file = seg->file;
		kq__seg_sfile_ref(log, c->file);
	}
	c->pos = pos;
	c->bpos = pos;
	c->limit = limit;
	c->chunk = chunk;
	c->own = !shared;
	if (shared) {
		c->buf = log->rbuf;
		c->cap = log->rcap;
	}
	return 0;
}

void kq__seg_cursor_fini(struct kq__seg_cursor *c)
{
	if (c->file != NULL)
		kq__seg_sfile_unref(c->log, c->file);
	c->file = NULL;
	if (c->own) {
		c->log->host->free(c->buf);
	} else {
		c->log->rbuf = c->buf;
		c->log->rcap = c->cap;
	}
	c->buf = NULL;
	c->cap = 0;
}

/* Buffers at least `need` bytes from c->pos, reading a chunk at once.
 * Returns 0, 1 when the file ends before, or -errno. */
static int fill(struct kq__seg_cursor *c, uint64_t need)
{
	uint64_t want = need > c->chunk ? need : c->chunk;
	ssize_t r;

	if (want > c->limit - c->pos)
		want = c->limit - c->pos;
	if (want > c->cap) {
		uint8_t *b = c->log->host->realloc(c->buf, want);

		if (b == NULL)
			return -ENOMEM;
		c->buf = b;
		c->cap = want;
	}
	if (c->file == NULL)
		return c->err;
	r = kq__seg_pread_full(c->file->fd, c->buf, want, c->pos);
	if (r < 0)
		return (int)r;
	c->bpos = c->pos;
	c->blen = (size_t)r;
	return (uint64_t)r < need ? 1 : 0;
}

int kq__seg_cursor_next(struct kq__seg_cursor *c, struct kq_record *rec,
			uint64_t *size)
{
	int r = KQ__SEG_REC_SHORT;

	if (c->pos >= c->limit)
		return 0;
	/* At most: what is buffered, then the fixed part, then the rest. */
	for (int attempt = 0; attempt < 3; attempt++) {
		size_t avail = 0;
		const uint8_t *p = c->buf;

		if (c->pos >= c->bpos && c->pos - c->bpos < c->blen) {
			p = c->buf + (c->pos - c->bpos);
			avail = c->blen - (size_t)(c->pos - c->bpos);
		}
		if (avail > c->limit - c->pos)
			avail = (size_t)(c->limit - c->pos);
		r = kq__seg_record_decode(p, avail, rec, size);
		if (r != KQ__SEG_REC_SHORT)
			break;
		if (*size > c->limit - c->pos) {
			c->why = "truncated record";
			return KQ_ECORRUPT;
		}
		if (attempt == 2)
			break;
		int rv = fill(c, *size);

		if (rv < 0)
			return rv;
	}
	switch (r) {
	case KQ__SEG_REC_OK: break;
	case KQ__SEG_REC_SHORT: c->why = "file shorter than expected"; break;
	case KQ__SEG_REC_BAD: c->why = "impossible record length"; break;
	default: c->why = "checksum mismatch"; break;
	}
	if (r != KQ__SEG_REC_OK)
		return KQ_ECORRUPT;
	if (rec->offset < c->seg->base ||
	    (c->has_prev && rec->offset <= c->prev)) {
		c->why = "offset out of order";
		return KQ_ECORRUPT;
	}
	c->has_prev = true;
	c->prev = rec->offset;
	c->pos += *size;
	return 1;
}

uint64_t kq__seg_cursor_bad_offset(const struct kq__seg_cursor *c)
{
	uint64_t lo = c->has_prev ? c->prev + 1 : c->seg->base;

	if (c->pos >= c->bpos && c->pos - c->bpos + 16 <= c->blen) {
		uint64_t off = kq_get64le(c->buf + (c->pos - c->bpos) + 8);

		if (off >= lo && off < c->log->next)
			return off;
	}
	return lo;
}
