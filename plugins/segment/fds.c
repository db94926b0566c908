/* Descriptors held across calls, bounded per module: a broker with ten
 * thousand partitions must not need three descriptors each.  Holders (a
 * log's folder, a segment's files) sit on a least-recently-used list;
 * opening one more past the limit first closes the oldest holders, which
 * reopen on their next use.  A folder this file closes itself; a
 * segment it closes through the hooks the module gives it (evict.c),
 * which may keep one open until its sync, or sync it.  An open that
 * finds the process out of descriptors sheds a few held ones and tries
 * again. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include <kafkaesque/list.h>

#include "io.h"
#include "module.h"

void kq__seg_fds_init(struct kq__seg_fds *fds, unsigned limit,
		      bool (*close)(struct kq__seg_fdslot *s, bool force),
		      void (*sync_held)(struct kq__seg_fds *fds))
{
	fds->limit = limit;
	fds->close = close;
	fds->sync_held = sync_held;
	fds->held = 0;
	fds->oldest = fds->newest = NULL;
}

void kq__seg_fds_unlink(struct kq__seg_fds *fds, struct kq__seg_fdslot *s)
{
	if (!s->linked)
		return;
	KQ_LIST_REMOVE_TAIL_BY(fds->oldest, fds->newest, s, prev, next);
	s->prev = s->next = NULL;
	s->linked = false;
}

void kq__seg_fds_touch(struct kq__seg_fds *fds, struct kq__seg_fdslot *s)
{
	if (s->linked) {
		if (fds->newest == s)
			return;
		kq__seg_fds_unlink(fds, s);
	}
	KQ_LIST_APPEND_BY(fds->oldest, fds->newest, s, prev, next);
	s->linked = true;
}

void kq__seg_fds_count(struct kq__seg_fds *fds, struct kq__seg_fdslot *s, int n)
{
	fds->held = (unsigned)((int)fds->held + n);
	if (n > 0)
		kq__seg_fds_touch(fds, s);
}

/* Closes what holder s has; false when it must stay (see
 * kq__seg_fds.close). */
static bool close_holder(struct kq__seg_fds *fds, struct kq__seg_fdslot *s,
			 bool force)
{
	struct kq_log *log = s->log;

	if (s->seg != NULL)
		return fds->close(s, force);
	if (log->dirfd >= 0) {
		kq__seg_io.close(log->dirfd);
		log->dirfd = -1;
		kq__seg_fds_count(fds, s, -1);
	}
	kq__seg_fds_unlink(fds, s);
	return true;
}

void kq__seg_fds_make_room(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep)
{
	/* Files that need no sync first, then the oldest that do. */
	for (int force = 0; force < 2 && fds->held >= fds->limit; force++) {
		struct kq__seg_fdslot *s = fds->oldest;

		if (force)
			fds->sync_held(fds);

		while (fds->held >= fds->limit && s != NULL) {
			struct kq__seg_fdslot *newer = s->next;

			if (s != keep)
				close_holder(fds, s, force);
			s = newer;
		}
	}
}

/* How many held descriptors an open that found none left closes. */
#define SHED 8

bool kq__seg_fds_shed(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep,
		      int err)
{
	unsigned limit = fds->limit, held = fds->held;

	if ((err != EMFILE && err != ENFILE) || held == 0)
		return false;
	fds->limit = held > SHED ? held - SHED + 1 : 1;
	kq__seg_fds_make_room(fds, keep);
	fds->limit = limit;
	return fds->held != held;
}

/* openat, and where the process or the system is out of descriptors
 * (clients can take them all), once more after closing up to SHED of the
 * least recently used holders' (never `keep`'s): the bound is a ceiling,
 * not a promise, and a log must not fail for want of one descriptor. */
int kq__seg_fds_openat(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep,
		       int dirfd, const char *path, int flags, mode_t mode)
{
	int fd = kq__seg_io.openat(dirfd, path, flags, mode), err = errno;

	if (fd >= 0)
		return fd;
	if (!kq__seg_fds_shed(fds, keep, err)) {
		errno = err;
		return -1;
	}
	return kq__seg_io.openat(dirfd, path, flags, mode);
}
