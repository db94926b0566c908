/* Recovering a log's newest segment at open: a torn tail is truncated,
 * damage with valid records after it is kept and scanned past, so that no
 * offset is ever handed out twice. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "format.h"
#include "io.h"
#include "module.h"

/* Past a bad record, how far recovery looks for a valid one.  A torn
 * tail is what one unsynced write left, far less than this; a longer
 * stretch with nothing valid is not a tail, and is refused. */
#define DAMAGE_SCAN_MAX ((uint64_t)64 << 20)

/* Counts the records of a bad tail: the length fields that can be
 * followed from `pos`, the last partial record included.  *whole gets
 * how many fail their checksum though complete: those may have been
 * written whole and damaged since, so their offsets are never reused
 * (when a torn write left them, that costs a gap, nothing more); 0 when
 * only a partial record is there (a torn write, never acknowledged). */
static uint64_t count_torn(struct kq_log *log, int fd, uint64_t pos,
			   uint64_t end, uint64_t *whole)
{
	uint64_t n = 0, bad = 0, len = end - pos, at = 0;
	uint8_t *buf;

	*whole = 0;
	if (len > DAMAGE_SCAN_MAX || !(buf = log->host->malloc(len ? len : 1)))
		return 1;
	if (kq__seg_pread_full(fd, buf, len, pos) != (ssize_t)len) {
		log->host->free(buf);
		return 1;
	}
	while (at < len) {
		struct kq_record rec;
		uint64_t rlen, size;

		n++;
		if (len - at < 4)
			break;
		rlen = (uint64_t)kq_get32le(buf + at) + 4;
		if (rlen < KQ__SEG_REC_FIXED || rlen > len - at)
			break;
		if (kq__seg_record_decode(buf + at, (size_t)rlen, &rec,
					  &size) != KQ__SEG_REC_OK)
			bad++;
		at += rlen;
	}
	*whole = bad;
	log->host->free(buf);
	return n;
}

/* Looks past the bad record at `at` for a valid record with an offset
 * above `prev` (the last good one; base - 1 when none): one found means
 * the bad record is damage, not a torn tail.  Returns 1 with its
 * position in *found, 0 when nothing valid follows, or an error. */
static int find_valid_after(struct kq_log *log, int fd, uint64_t at,
			    uint64_t end, uint64_t first, uint64_t *found)
{
	uint64_t len = end - at, size;
	struct kq_record rec;
	uint8_t *buf;
	ssize_t r;
	int found_one = 0;

	if (len > DAMAGE_SCAN_MAX)
		return KQ_ECORRUPT;
	buf = log->host->malloc(len ? len : 1);
	if (buf == NULL)
		return -ENOMEM;
	r = kq__seg_pread_full(fd, buf, len, at);
	if (r < 0) {
		log->host->free(buf);
		return (int)r;
	}
	/* Every byte may start a record: the bad one's length field may be
	 * what was damaged.  Most bytes cannot (their length field does not
	 * fit what is left), which one subtraction and one comparison tell
	 * without a decode. */
	for (uint64_t q = 1; q + KQ__SEG_REC_FIXED <= (uint64_t)r; q++) {
		uint64_t span =
			(uint64_t)kq_get32le(buf + q) + 4 - KQ__SEG_REC_FIXED;

		if (span > (uint64_t)r - q - KQ__SEG_REC_FIXED)
			continue; /* also when below KQ__SEG_REC_FIXED: wraps */
		if (kq__seg_record_decode(buf + q, (size_t)r - q, &rec,
					  &size) == KQ__SEG_REC_OK &&
		    rec.offset >= first) {
			*found = at + q;
			found_one = 1;
			break;
		}
	}
	log->host->free(buf);
	return found_one;
}

/* Recovers the newest segment: checks its header, trusts the index up to
 * its last entry whose record checks out, scans from there to the end of
 * the file.  A bad record with valid ones after it is damage: reported,
 * kept, and scanned past, so no later offset is ever handed out again;
 * one with nothing valid after it is a torn tail, and truncated. */
int kq__seg_recover_newest(struct kq_log *log, struct kq__seg *seg)
{
	const struct kq_host *host = log->host;
	uint8_t hdr[KQ__SEG_HDR_SIZE];
	struct kq__seg_cursor c;
	struct kq_record rec;
	char name[32];
	uint64_t fsize, size, at, min_next = seg->base;
	bool rewrite = false, past_damage = false;
	int fd, rv;

	kq__seg_name(name, seg->base, "log");
	rv = kq__seg_open_sized(log, name, O_RDWR, &fd, &fsize);
	if (rv != 0)
		return rv;
	rv = kq__seg_check_header(fd, seg->base);
	if (rv < 0) {
		kq__seg_io.close(fd);
		return rv;
	}
	if (rv != 0) {
		if (fsize > KQ__SEG_HDR_SIZE) {
			kq__seg_io.close(fd);
			kq__seg_report(log, seg, 0, "bad segment header");
			return KQ_ECORRUPT;
		}
		/* Torn at creation: no record was ever in it. */
		kq__seg_header_encode(hdr, KQ__SEG_FILE_LOG, seg->base);
		rv = kq__seg_pwrite_all(fd, hdr, sizeof(hdr), 0);
		if (rv == 0 && kq__seg_io.fdatasync(fd) != 0)
			rv = -errno;
		if (rv != 0) {
			kq__seg_io.close(fd);
			return rv;
		}
		host->log(host, KQ_LOG_WARN, "%s/%s: rewrote a torn header",
			  log->dir, name);
		fsize = KQ__SEG_HDR_SIZE;
	}
	rv = kq__seg_adopt_file(log, seg, fd);
	if (rv != 0)
		return rv;
	seg->size = fsize;

	rv = kq__seg_read_index(log, seg, fsize);
	if (rv == -ENOMEM)
		return rv;
	rewrite = rv != 0;
	/* Walk back to the last entry whose record is really there. */
	while (seg->idx.n > 0) {
		struct kq__seg_ientry *e = &seg->idx.e[seg->idx.n - 1];

		kq__seg_cursor_init(&c, log, seg, e->pos, fsize, 4096, false);
		rv = kq__seg_cursor_next(&c, &rec, &size);
		kq__seg_cursor_fini(&c);
		if (rv == 1 && rec.offset == e->offset)
			break;
		if (rv < 0 && rv != KQ_ECORRUPT)
			return rv;
		seg->idx.n--;
		rewrite = true;
	}
	if (seg->idx.flushed > seg->idx.n)
		seg->idx.flushed = seg->idx.n;

	kq__seg_cursor_init(&c, log, seg,
			    seg->idx.n ? seg->idx.e[seg->idx.n - 1].pos
				       : KQ__SEG_HDR_SIZE,
			    fsize, 4 * KQ__SEG_CHUNK, false);
	for (;;) {
		uint64_t after = 0;
		int found;

		at = c.pos;
		rv = kq__seg_cursor_next(&c, &rec, &size);
		if (rv == KQ_ECORRUPT) {
			found = find_valid_after(log, fd, at, fsize, min_next,
						 &after);
			if (found < 0) {
				kq__seg_cursor_fini(&c);
				kq__seg_report(log, seg, at, c.why);
				if (found == KQ_ECORRUPT)
					host->log(host, KQ_LOG_ERROR,
						  "%s/%s: %" PRIu64
						  " bytes after a damaged "
						  "record at byte %" PRIu64
						  " are not a torn tail; "
						  "refusing to truncate them",
						  log->dir, name, fsize - at,
						  at);
				return found;
			}
			if (found == 1) {
				/* Index the first record after the damage,
				 * so reads of later offsets start past it. */
				past_damage = true;
				kq__seg_report(log, seg, at, c.why);
				kq__seg_cursor_fini(&c);
				kq__seg_cursor_init(&c, log, seg, after, fsize,
						    4 * KQ__SEG_CHUNK, false);
				continue;
			}
		}
		if (rv != 1)
			break;
		if (seg->idx.n == 0 || past_damage ||
		    at - seg->idx.e[seg->idx.n - 1].pos >=
			    log->conf.index_interval) {
			past_damage = false;
			rv = kq__seg_index_push(host, &seg->idx, rec.offset,
						at);
			if (rv != 0)
				break;
			rewrite = true;
		}
		seg->last = rec.offset;
		seg->last_term = rec.term;
		min_next = rec.offset + 1;
		if (rec.timestamp_ms > seg->max_ts)
			seg->max_ts = rec.timestamp_ms;
	}
	at = c.pos;
	kq__seg_cursor_fini(&c);
	if (rv < 0 && rv != KQ_ECORRUPT)
		return rv;
	if (at < fsize) {
		uint64_t whole, n = count_torn(log, fd, at, fsize, &whole);
		uint64_t from = min_next;

		if (whole == 0)
			host->log(host, KQ_LOG_WARN,
				  "%s/%s: truncated a torn tail of %" PRIu64
				  " bytes (%" PRIu64
				  " records) at byte %" PRIu64 " (%s)",
				  log->dir, name, fsize - at, n, at, c.why);
		if (whole > 0) {
			/* Their offsets follow the last record kept, where
			 * the range starts; records after a range lost
			 * before start at its end, so the count goes from
			 * there (the two ranges then merge). */
			uint64_t base = from, end, most, count;

			if (log->nlost && log->lost[log->nlost - 1].end > base)
				base = log->lost[log->nlost - 1].end;
			/* A damaged length field sends the count astray: the
			 * bytes left bound how many records they held, and
			 * that many offsets go (a gap, never a reuse). */
			most = (fsize - at) / KQ__SEG_REC_FIXED;
			count = most > whole ? most : whole;
			/* With no record kept in the segment, the first may
			 * sit above its base (a Raft log starts at 1 in
			 * segment 0): one offset more is never reused. */
			if (min_next == seg->base)
				count++;
			/* No offset reaches UINT64_MAX (appends refuse it). */
			end = base > UINT64_MAX - count ? UINT64_MAX
							: base + count;
			host->log(host, KQ_LOG_ERROR,
				  "%s/%s: %" PRIu64
				  " whole records at byte %" PRIu64
				  " fail their checksum with nothing valid "
				  "after them (%s): dropped; offsets "
				  "%" PRIu64 "..%" PRIu64
				  " (as many as their bytes could hold) are "
				  "lost and never handed out again",
				  log->dir, name, whole, at, c.why, from,
				  end - 1);
			/* Kept before the records go: a crash between the
			 * two finds them again and loses a few more
			 * offsets, never hands one out twice. */
			rv = end > from ? kq__seg_lost_add(log, from, end) : 0;
			if (rv != 0)
				return rv;
		}
		if (kq__seg_io.ftruncate(fd, (off_t)at) != 0)
			return -errno;
	}
	seg->size = at;
	seg->idx_loaded = true;
	seg->tail_known = true;
	if (rewrite) {
		rv = kq__seg_write_index(log, seg);
		if (rv != 0)
			return rv;
	}
	rv = kq__seg_open_ifd(log, seg);
	if (rv != 0)
		return rv;
	/* What recovery kept is durable before anything is built on it. */
	if (kq__seg_io.fdatasync(fd) != 0)
		return -errno;
	/* Counted only now: until here nothing may close it. */
	kq__seg_hold(log, seg, 1);
	return 0;
}
