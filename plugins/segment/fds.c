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
 * partitions writes to every one of them): with one syncfs() of its
 * file system where that is used, which makes every held file durable
 * at once, else with an fdatasync of that file.  A log opened unsynced
 * (kq_log_options.unsynced: fsync "never", where nobody waits for a
 * sync) has such a file closed without one instead.  An open that finds
 * the process out of descriptors sheds a few held ones and tries again.
 * Also here: the log's folder reached through its held descriptor
 * (openat and friends, a file replaced atomically, the folder synced),
 * and the reference-counted descriptors of segment files that readers
 * and syncs share. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "io.h"
#include "module.h"

void kq__seg_fds_init(struct kq__seg_fds *fds, unsigned limit)
{
	fds->limit = limit;
	fds->held = 0;
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

/* Takes f off its log's to-sync list; true when it was on it (the list's
 * reference is then the caller's to drop).  Caller holds log->mu. */
static bool take_off(struct kq_log *log, struct kq__seg_sfile *f)
{
	if (!f->dirty)
		return false;
	KQ_LIST_REMOVE_BY(log->dirty, f, dprev, dnext);
	f->dirty = false;
	return true;
}

int kq__seg_sfile_sync(struct kq_log *log, struct kq__seg_sfile *f, bool always)
{
	int rv = 0;

	pthread_mutex_lock(&log->mu);
	if (!f->dirty && !always) {
		pthread_mutex_unlock(&log->mu);
		return 0;
	}
	f->refs++;
	pthread_mutex_unlock(&log->mu);
	if (kq__seg_io.fdatasync(f->fd) != 0)
		rv = -errno;
	pthread_mutex_lock(&log->mu);
	if (rv == 0 && take_off(log, f))
		f->refs--; /* the list's; ours is still held */
	pthread_mutex_unlock(&log->mu);
	kq__seg_sfile_unref(log, f);
	return rv;
}

void kq__seg_sfile_unlist(struct kq_log *log, struct kq__seg_sfile *f)
{
	bool listed;

	pthread_mutex_lock(&log->mu);
	listed = take_off(log, f);
	pthread_mutex_unlock(&log->mu);
	if (listed)
		kq__seg_sfile_unref(log, f);
}

/* kq__seg_sfile_sync(), failing the log when it fails (as a sync of its
 * own would); false then. */
static bool sync_now(struct kq_log *log, struct kq__seg_sfile *f)
{
	int rv = kq__seg_sfile_sync(log, f, false);

	if (rv != 0)
		kq__seg_log_fail(log, rv, "fdatasync: %s", strerror(-rv));
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
		/* Nobody waits for its sync but the last one, at the stop:
		 * it goes unsynced, as the policy allows. */
		if (dirty && log->conf.unsynced) {
			kq__seg_sfile_unlist(log, f);
			dirty = false;
		}
		if (dirty && !(force && sync_now(log, f)))
			return false;
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

/* Only written files are left to close: one syncfs() of the oldest
 * one's file system makes every held file on it durable, so they all
 * come off their logs' to-sync lists and close without a sync each,
 * this time and the next ones. */
static void sync_held(struct kq__seg_fds *fds)
{
	struct kq__seg_fdslot *s = fds->lru.prev;
	struct kq__seg_fsys *fs;

	if (s == &fds->lru)
		return;
	fs = s->log->fsys;
	/* Not behind a worker's syncfs(): the oldest file alone is
	 * synced then, which keeps the loop's wait short. */
	if (!kq__seg_fsys_usable(fs) ||
	    !kq__seg_fsys_sync(fs, s->log, false, 0))
		return;
	/* Written on this thread only: nothing was written since. */
	for (s = fds->lru.next; s != &fds->lru; s = s->next)
		if (s->seg != NULL && s->seg->file != NULL &&
		    s->log->fsys == fs)
			kq__seg_sfile_unlist(s->log, s->seg->file);
}

void kq__seg_fds_make_room(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep)
{
	/* Files that need no sync first, then the oldest that do. */
	for (int force = 0; force < 2 && fds->held >= fds->limit; force++) {
		struct kq__seg_fdslot *s = fds->lru.prev;

		if (force)
			sync_held(fds);

		while (fds->held >= fds->limit && s != &fds->lru) {
			struct kq__seg_fdslot *prev = s->prev;

			if (s != keep)
				close_holder(fds, s, force);
			s = prev;
		}
	}
}

/* How many held descriptors an open that found none left closes. */
#define SHED 8

/* openat, and where the process or the system is out of descriptors
 * (clients can take them all), once more after closing up to SHED of the
 * least recently used holders' (never `keep`'s): the bound is a ceiling,
 * not a promise, and a log must not fail for want of one descriptor. */
static int openat_shedding(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep,
			   int dirfd, const char *path, int flags, mode_t mode)
{
	int fd = kq__seg_io.openat(dirfd, path, flags, mode), err = errno;
	unsigned limit = fds->limit, held = fds->held;

	if (fd >= 0 || (err != EMFILE && err != ENFILE) || held == 0)
		return fd;
	fds->limit = held > SHED ? held - SHED + 1 : 1;
	kq__seg_fds_make_room(fds, keep);
	fds->limit = limit;
	if (fds->held == held) {
		errno = err;
		return -1;
	}
	return kq__seg_io.openat(dirfd, path, flags, mode);
}

int kq__seg_log_dirfd(struct kq_log *log)
{
	if (log->dirfd >= 0) {
		kq__seg_fds_touch(log->fds, &log->slot);
		return log->dirfd;
	}
	kq__seg_fds_make_room(log->fds, &log->slot);
	log->dirfd = openat_shedding(log->fds, &log->slot, AT_FDCWD, log->dir,
				     O_RDONLY | O_DIRECTORY, 0);
	if (log->dirfd < 0)
		return -1;
	kq__seg_fds_count(log->fds, &log->slot, 1);
	return log->dirfd;
}

int kq__seg_log_openat(struct kq_log *log, const char *name, int flags,
		       mode_t mode)
{
	char path[4096];
	int d;

	/* A folder closed to stay within the bound is not opened again
	 * just to open a file in it: with thousands of logs written in
	 * turn, that would double the opens and halve the files held. */
	if (log->dirfd < 0 && (size_t)snprintf(path, sizeof(path), "%s/%s",
					       log->dir, name) < sizeof(path)) {
		kq__seg_fds_make_room(log->fds, NULL);
		return openat_shedding(log->fds, NULL, AT_FDCWD, path, flags,
				       mode);
	}
	d = kq__seg_log_dirfd(log);
	if (d < 0)
		return -1;
	/* The new descriptor is the caller's: make room for it too. */
	kq__seg_fds_make_room(log->fds, &log->slot);
	return openat_shedding(log->fds, &log->slot, d, name, flags, mode);
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

int kq__seg_log_sync_dir(struct kq_log *log)
{
	int rv = kq__seg_log_settle(log), d;

	if (rv != 0)
		return rv;
	d = kq__seg_log_dirfd(log);
	if (d >= 0 && kq__seg_io.fsync(d) == 0)
		return 0;
	rv = -errno;
	kq__seg_log_fail(log, rv, "fsync of the folder: %s", strerror(-rv));
	kq__seg_log_report(log);
	return rv;
}

int kq__seg_log_swap_file(struct kq_log *log, const char *name, const char *tmp,
			  const void *head, size_t head_len, const void *body,
			  size_t body_len, bool durable)
{
	int fd, rv;

	fd = kq__seg_log_openat(log, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	rv = kq__seg_pwrite_all(fd, head, head_len, 0);
	if (rv == 0 && body_len)
		rv = kq__seg_pwrite_all(fd, body, body_len, head_len);
	/* A new file: fdatasync makes its size durable with its bytes. */
	if (rv == 0 && durable && kq__seg_io.fdatasync(fd) != 0)
		rv = -errno;
	kq__seg_io.close(fd);
	if (rv == 0 && kq__seg_log_renameat(log, tmp, name) != 0)
		rv = -errno;
	if (rv != 0)
		/* A full disk keeps no half-written copy. */
		kq__seg_log_unlinkat(log, tmp, 0);
	return rv;
}

int kq__seg_log_replace_file(struct kq_log *log, const char *name,
			     const char *tmp, const void *head, size_t head_len,
			     const void *body, size_t body_len)
{
	int rv;

	/* Aside, durable, then swapped in and the swap made durable: a
	 * crash leaves the old file or the new one (of a folder that
	 * stays). */
	rv = kq__seg_log_settle(log);
	if (rv == 0)
		rv = kq__seg_log_swap_file(log, name, tmp, head, head_len, body,
					   body_len, true);
	return rv != 0 ? rv : kq__seg_log_sync_dir(log);
}

/* --- reference-counted descriptors of segment files --- */

struct kq__seg_sfile *kq__seg_sfile_new(struct kq_log *log, int fd)
{
	struct kq__seg_sfile *f = log->host->malloc(sizeof(*f));

	if (f == NULL)
		return NULL;
	f->fd = fd;
	f->refs = 1;
	f->dirty = false;
	f->dprev = f->dnext = NULL;
	return f;
}

void kq__seg_sfile_mark(struct kq_log *log, struct kq__seg_sfile *f)
{
	if (f->dirty)
		return;
	f->dirty = true;
	f->refs++;
	KQ_LIST_PUSH_BY(log->dirty, f, dprev, dnext);
}

void kq__seg_sfile_ref(struct kq_log *log, struct kq__seg_sfile *f)
{
	pthread_mutex_lock(&log->mu);
	f->refs++;
	pthread_mutex_unlock(&log->mu);
}

void kq__seg_sfile_unref(struct kq_log *log, struct kq__seg_sfile *f)
{
	bool last;

	pthread_mutex_lock(&log->mu);
	last = --f->refs == 0;
	pthread_mutex_unlock(&log->mu);
	if (last) {
		kq__seg_io.close(f->fd);
		log->host->free(f);
	}
}
