/* Descriptors held across calls, bounded per module: a broker with ten
 * thousand partitions must not need three descriptors each.  Holders (a
 * log's folder, a segment's files) sit on a least-recently-used list;
 * opening one more past the limit first closes the oldest holders, which
 * reopen on their next use.  Readers and syncs keep references of their
 * own to a .log file, so closing a holder never pulls a descriptor from
 * under them.  A file written since the last sync is kept open for that
 * sync; when only such files are left to close, the oldest is synced
 * right here, on the loop, so that the bound holds however many logs
 * are written between two syncs (a burst of elections over thousands of
 * partitions writes to every one of them). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>

#include "io.h"
#include "log.h"

void kq__seg_fds_init(struct kq__seg_fds *fds, unsigned limit)
{
	fds->limit = limit;
	fds->held = 0;
	fds->evicted = 0;
	fds->synced = 0;
	fds->lru.prev = fds->lru.next = &fds->lru;
}

static bool linked(const struct kq__seg_fdslot *s)
{
	return s->next != NULL;
}

void kq__seg_fds_unlink(struct kq__seg_fdslot *s)
{
	if (!linked(s))
		return;
	s->prev->next = s->next;
	s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

void kq__seg_fds_touch(struct kq__seg_fds *fds, struct kq__seg_fdslot *s)
{
	if (linked(s)) {
		if (fds->lru.next == s)
			return;
		kq__seg_fds_unlink(s);
	}
	s->prev = &fds->lru;
	s->next = fds->lru.next;
	fds->lru.next->prev = s;
	fds->lru.next = s;
}

void kq__seg_fds_count(struct kq__seg_fds *fds, struct kq__seg_fdslot *s, int n)
{
	fds->held = (unsigned)((int)fds->held + n);
	if (n > 0)
		kq__seg_fds_touch(fds, s);
}

/* Makes f's writes durable now and takes it off its log's list of files
 * to sync; false when the sync failed (the log then fails, as a sync of
 * its own would make it).  The list's reference is dropped only once
 * the data is durable: a sync of the log running meanwhile either takes
 * f itself or finds it done. */
static bool sync_now(struct kq_log *log, struct kq__seg_sfile *f)
{
	struct kq__seg_sfile **pp;
	int rv = 0;

	pthread_mutex_lock(&log->mu);
	if (!f->dirty) {
		pthread_mutex_unlock(&log->mu);
		return true;
	}
	f->refs++;
	pthread_mutex_unlock(&log->mu);
	if (kq__seg_io.fdatasync(f->fd) != 0) {
		rv = -errno;
		kq__seg_log_fail(log, rv, "fdatasync: %s", strerror(-rv));
	}
	pthread_mutex_lock(&log->mu);
	if (rv == 0 && f->dirty) {
		for (pp = &log->dirty; *pp && *pp != f; pp = &(*pp)->dnext)
			;
		if (*pp) {
			*pp = f->dnext;
			f->dirty = false;
			f->dnext = NULL;
			f->refs--; /* the list's; ours is still held */
		}
	}
	pthread_mutex_unlock(&log->mu);
	kq__seg_sfile_unref(log, f);
	return rv == 0;
}

/* Closes what holder s has; false when it must stay (its index could
 * not be written, or it was written since the last sync and `force` is
 * not set). */
static bool close_holder(struct kq__seg_fds *fds, struct kq__seg_fdslot *s,
			 bool force)
{
	struct kq_log *log = s->log;

	if (s->seg != NULL) {
		struct kq__seg_sfile *f = s->seg->file;
		bool dirty = false;

		/* A file written since the last sync stays open for that
		 * sync anyway: closing the holder would only make the next
		 * write open a second descriptor for it. */
		if (f != NULL) {
			pthread_mutex_lock(&log->mu);
			dirty = f->dirty;
			pthread_mutex_unlock(&log->mu);
		}
		if (dirty && !(force && sync_now(log, f)))
			return false;
		if (dirty)
			fds->synced++;
		return kq__seg_close_fds(log, s->seg) == 0;
	}
	if (log->dirfd >= 0) {
		kq__seg_io.close(log->dirfd);
		log->dirfd = -1;
		kq__seg_fds_count(fds, s, -1);
	}
	if (linked(s))
		kq__seg_fds_unlink(s);
	return true;
}

void kq__seg_fds_make_room(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep)
{
	/* Files that need no sync first, then the oldest that do. */
	for (int force = 0; force < 2 && fds->held >= fds->limit; force++) {
		struct kq__seg_fdslot *s = fds->lru.prev;

		while (fds->held >= fds->limit && s != &fds->lru) {
			struct kq__seg_fdslot *prev = s->prev;

			if (s != keep && close_holder(fds, s, force))
				fds->evicted++;
			s = prev;
		}
	}
}

int kq__seg_log_dirfd(struct kq_log *log)
{
	if (log->dirfd >= 0) {
		kq__seg_fds_touch(log->fds, &log->slot);
		return log->dirfd;
	}
	kq__seg_fds_make_room(log->fds, &log->slot);
	log->dirfd = kq__seg_io.openat(AT_FDCWD, log->dir,
				       O_RDONLY | O_DIRECTORY, 0);
	if (log->dirfd < 0)
		return -1;
	kq__seg_fds_count(log->fds, &log->slot, 1);
	return log->dirfd;
}

int kq__seg_log_openat(struct kq_log *log, const char *name, int flags,
		       mode_t mode)
{
	int d = kq__seg_log_dirfd(log);

	if (d < 0)
		return -1;
	/* The new descriptor is the caller's: make room for it too. */
	kq__seg_fds_make_room(log->fds, &log->slot);
	return kq__seg_io.openat(d, name, flags, mode);
}

int kq__seg_log_unlinkat(struct kq_log *log, const char *name, int flags)
{
	int d = kq__seg_log_dirfd(log);

	return d < 0 ? -1 : kq__seg_io.unlinkat(d, name, flags);
}

int kq__seg_log_renameat(struct kq_log *log, const char *from, const char *to)
{
	int d = kq__seg_log_dirfd(log);

	return d < 0 ? -1 : kq__seg_io.renameat(d, from, d, to);
}

int kq__seg_log_fstatat(struct kq_log *log, const char *name, struct stat *st)
{
	int d = kq__seg_log_dirfd(log);

	return d < 0 ? -1 : kq__seg_io.fstatat(d, name, st, 0);
}
