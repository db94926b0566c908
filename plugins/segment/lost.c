/* Offsets lost to damage, in lost_offsets.
 *
 * Complete records at the end of the newest segment that fail their
 * checksum, with nothing valid after them, are dropped like a torn tail
 * (a torn tail is what a crash leaves: an incomplete record).  Unlike a
 * torn tail they may have been acknowledged, so their offsets are kept
 * here: a consensus module that hands out offsets itself starts above
 * them, and readers tell the gap from one the protocol allows.  A range
 * goes when records are appended into it again (a replica that fetched
 * them from its peers). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "io.h"
#include "module.h"

#define LOST_FILE    "lost_offsets"
#define LOST_TMP     "lost_offsets.tmp"
#define LOST_HEAD    12 /* "KQLO", version, count */
#define LOST_SIZE(n) (LOST_HEAD + 16 * (size_t)(n) + 4)

static int save(struct kq_log *log)
{
	uint8_t buf[LOST_SIZE(KQ__SEG_LOST_MAX)];
	size_t len = LOST_SIZE(log->nlost), p = LOST_HEAD;

	if (log->nlost == 0) {
		if (kq__seg_log_unlinkat(log, LOST_FILE, 0) != 0 &&
		    errno != ENOENT)
			return -errno;
		return kq__seg_log_sync_dir(log);
	}
	memcpy(buf, "KQLO", 4);
	kq_put32le(buf + 4, KQ__SEG_FORMAT_VERSION);
	kq_put32le(buf + 8, (uint32_t)log->nlost);
	for (size_t i = 0; i < log->nlost; i++, p += 16) {
		kq_put64le(buf + p, log->lost[i].from);
		kq_put64le(buf + p + 8, log->lost[i].end);
	}
	kq_put32le(buf + p, kq__seg_crc32c(0, buf, p));
	return kq__seg_log_replace_file(log, LOST_FILE, LOST_TMP, buf, len,
					NULL, 0);
}

int kq__seg_lost_load(struct kq_log *log)
{
	uint8_t buf[LOST_SIZE(KQ__SEG_LOST_MAX) + 1];
	ssize_t r;
	uint32_t n;
	int fd;

	log->nlost = 0;
	fd = kq__seg_log_openat(log, LOST_FILE, O_RDONLY, 0);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = kq__seg_pread_full(fd, buf, sizeof(buf), 0);
	kq__seg_io.close(fd);
	if (r < 0)
		return (int)r;
	n = r >= LOST_HEAD ? kq_get32le(buf + 8) : 0;
	if (r < LOST_HEAD || memcmp(buf, "KQLO", 4) != 0 ||
	    kq_get32le(buf + 4) != KQ__SEG_FORMAT_VERSION || n == 0 ||
	    n > KQ__SEG_LOST_MAX || (size_t)r != LOST_SIZE(n) ||
	    kq_get32le(buf + r - 4) != kq__seg_crc32c(0, buf, (size_t)r - 4)) {
		log->host->log(log->host, KQ_LOG_ERROR,
			       "%s/" LOST_FILE ": damaged; move it aside to "
			       "open the log (the offsets it kept may then "
			       "be handed out again)",
			       log->dir);
		return KQ_ECORRUPT;
	}
	for (uint32_t i = 0; i < n; i++) {
		log->lost[i].from = kq_get64le(buf + LOST_HEAD + 16 * i);
		log->lost[i].end = kq_get64le(buf + LOST_HEAD + 16 * i + 8);
	}
	log->nlost = n;
	return 0;
}

int kq__seg_lost_add(struct kq_log *log, uint64_t from, uint64_t end)
{
	size_t i = log->nlost;

	/* Ranges are found above everything kept, so they come in order;
	 * one that reaches into the ranges before takes them in. */
	while (i > 0 && log->lost[i - 1].end >= from) {
		if (log->lost[i - 1].from < from)
			from = log->lost[i - 1].from;
		if (log->lost[i - 1].end > end)
			end = log->lost[i - 1].end;
		i--;
	}
	/* At the bound, ranges retention has passed (below the oldest
	 * segment; the log's first offset is not known yet while it is
	 * recovered) go first; then the two closest merge (reads refuse
	 * the records between them: safe, if over-cautious). */
	if (i == KQ__SEG_LOST_MAX) {
		uint64_t floor = log->nsegs ? log->segs[0]->base : 0;
		size_t k = 0, best = 0;

		for (size_t j = 0; j < i; j++)
			if (log->lost[j].end > floor)
				log->lost[k++] = log->lost[j];
		i = k;
		for (size_t j = 1; i == KQ__SEG_LOST_MAX && j + 1 < i; j++)
			if (log->lost[j + 1].from - log->lost[j].end <
			    log->lost[best + 1].from - log->lost[best].end)
				best = j;
		if (i == KQ__SEG_LOST_MAX) {
			log->lost[best].end = log->lost[best + 1].end;
			memmove(log->lost + best + 1, log->lost + best + 2,
				(i - best - 2) * sizeof(log->lost[0]));
			i--;
		}
	}
	log->lost[i].from = from;
	log->lost[i].end = end;
	log->nlost = i + 1;
	return save(log);
}

int kq__seg_lost_refill(struct kq_log *log, uint64_t offset)
{
	size_t n = log->nlost;
	int rv;

	while (n > 0 && log->lost[n - 1].end > offset)
		n--;
	if (n == log->nlost)
		return 0;
	log->nlost = n;
	rv = save(log);
	if (rv != 0) {
		/* Memory and file disagree: no write until reopened. */
		kq__seg_log_fail(log, rv, "updating lost_offsets: %s",
				 kq_strerror(rv));
		kq__seg_log_report(log);
	}
	return rv;
}

int kq__seg_log_lost(struct kq_log *log, const struct kq_offset_range **out)
{
	*out = log->lost;
	return (int)log->nlost;
}
