/* A log's segments in base order, and the bounds they give it (first
 * offset, next offset), shared by the ops that add or drop segments. */
#include <errno.h>
#include <inttypes.h>

#include "format.h"
#include "module.h"

int kq__seg_log_push_seg(struct kq_log *log, struct kq__seg *seg)
{
	if (log->nsegs == log->cap) {
		size_t cap = log->cap ? log->cap * 2 : 16;
		struct kq__seg **s =
			log->host->realloc(log->segs, cap * sizeof(*s));

		if (s == NULL)
			return -ENOMEM;
		log->segs = s;
		log->cap = cap;
	}
	log->segs[log->nsegs++] = seg;
	return 0;
}

int kq__seg_log_drop_seg(struct kq_log *log, size_t i)
{
	struct kq__seg *seg = log->segs[i];
	int rv = kq__seg_unlink(log, seg);

	if (rv != 0) {
		kq__seg_log_fail(log, rv, "deleting segment %" PRIu64 ": %s",
				 seg->base, strerror(-rv));
		kq__seg_log_report(log);
		return rv;
	}
	memmove(log->segs + i, log->segs + i + 1,
		(log->nsegs - i - 1) * sizeof(*log->segs));
	log->nsegs--;
	pthread_mutex_lock(&log->mu);
	log->dir_dirty = true;
	pthread_mutex_unlock(&log->mu);
	/* A deleted file needs no sync: off the list, so that its
	 * descriptor (and its disk space) go now, not at the next sync,
	 * which under fsync "never" comes only at the stop. */
	if (seg->file != NULL)
		kq__seg_sfile_unlist(log, seg->file);
	kq__seg_free(log, seg);
	return 0;
}

void kq__seg_log_refresh_first(struct kq_log *log)
{
	for (size_t i = 0; i < log->nsegs; i++) {
		struct kq__seg *seg = log->segs[i];

		if (seg->size <= KQ__SEG_HDR_SIZE)
			continue;
		if (kq__seg_load_index(log, seg) == 0 && seg->idx.n > 0)
			log->first = seg->idx.e[0].offset;
		else
			log->first = seg->base;
		return;
	}
	log->first = log->next;
}

void kq__seg_log_set_next(struct kq_log *log, bool dropped)
{
	struct kq__seg *seg = log->segs[log->nsegs - 1];
	uint64_t next =
		seg->size > KQ__SEG_HDR_SIZE ? seg->last + 1 : seg->base;

	pthread_mutex_lock(&log->mu);
	log->next = next;
	if (dropped) {
		log->gen++;
		if (log->durable_next > next)
			log->durable_next = next;
	}
	pthread_mutex_unlock(&log->mu);
}
