/* Descriptors held across calls, bounded per module: a broker with ten
 * thousand partitions must not need three descriptors each.  Holders (a
 * log's folder, a segment's files) sit on a least-recently-used list;
 * opening one more past the limit first closes the oldest holders, which
 * reopen on their next use.  A folder this file closes itself; a
 * segment it closes through the hooks the module gives it (evict.c),
 * which may keep one open until its sync, or sync it.  An open that
 * finds the process out of descriptors sheds a few held ones and tries
 * again.  Also here: the log's folder reached through its held
 * descriptor (openat and friends, a file swapped in by a rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

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
	if (linked(s))
		kq__seg_fds_unlink(s);
	return true;
}

void kq__seg_fds_make_room(struct kq__seg_fds *fds, struct kq__seg_fdslot *keep)
{
	/* Files that need no sync first, then the oldest that do. */
	for (int force = 0; force < 2 && fds->held >= fds->limit; force++) {
		struct kq__seg_fdslot *s = fds->lru.prev;

		if (force)
			fds->sync_held(fds);

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
