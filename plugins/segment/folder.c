/* A log's folder, reached through a descriptor held within the bound
 * (fds.c): opened when it was closed, and the files in it opened,
 * removed, renamed and looked at relative to it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include "io.h"
#include "module.h"

int kq__seg_log_dirfd(struct kq_log *log)
{
	if (log->dirfd >= 0) {
		kq__seg_fds_touch(log->fds, &log->slot);
		return log->dirfd;
	}
	kq__seg_fds_make_room(log->fds, &log->slot);
	log->dirfd = kq__seg_fds_openat(log->fds, &log->slot, AT_FDCWD,
					log->dir, O_RDONLY | O_DIRECTORY, 0);
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
		return kq__seg_fds_openat(log->fds, NULL, AT_FDCWD, path, flags,
					  mode);
	}
	d = kq__seg_log_dirfd(log);
	if (d < 0)
		return -1;
	/* The new descriptor is the caller's: make room for it too. */
	kq__seg_fds_make_room(log->fds, &log->slot);
	return kq__seg_fds_openat(log->fds, &log->slot, d, name, flags, mode);
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
