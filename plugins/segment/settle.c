/* Settling a log open() made (see kq_log.settle_no): its folder, the
 * folder's name in its parent, and the files open() wrote made durable
 * once, before anything of the log is, with one syncfs() where that
 * covers it, else file by file.  Also syncs by path, which any thread
 * may run. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "format.h"
#include "io.h"
#include "module.h"

int kq__seg_log_sync_path(struct kq_log *log, const char *path, bool file)
{
	int fd = kq__seg_io.openat(AT_FDCWD, path,
				   O_RDONLY | (file ? 0 : O_DIRECTORY), 0),
	    rv = 0;

	if (fd < 0) {
		rv = -errno;
		/* Out of descriptors (clients can take them all): the file
		 * system's is held for good, and its syncfs() covers this
		 * file or folder too.  The log must not fail for that. */
		if ((rv == -EMFILE || rv == -ENFILE) &&
		    kq__seg_fsys_usable(log->fsys) &&
		    kq__seg_fsys_sync(log->fsys, log, true, 0))
			rv = 0;
		return rv;
	}
	if ((file ? kq__seg_io.fdatasync(fd) : kq__seg_io.fsync(fd)) != 0)
		rv = -errno;
	kq__seg_io.close(fd);
	return rv;
}

/* The folder on a descriptor of its own (see kq__seg_log_sync_path). */
int kq__seg_log_sync_folder(struct kq_log *log)
{
	int rv = kq__seg_log_sync_path(log, log->dir, false);

	if (rv != 0)
		kq__seg_log_fail(log, rv, "fsync of the folder: %s",
				 strerror(-rv));
	return rv;
}

int kq__seg_log_sync_parent(struct kq_log *log)
{
	const char *slash = strrchr(log->dir, '/');
	char parent[4096];

	if (slash == NULL)
		strcpy(parent, ".");
	else if (slash == log->dir)
		strcpy(parent, "/");
	else if ((size_t)(slash - log->dir) >= sizeof(parent))
		return -ENAMETOOLONG;
	else
		snprintf(parent, sizeof(parent), "%.*s",
			 (int)(slash - log->dir), log->dir);
	return kq__seg_log_sync_path(log, parent, false);
}

/* Syncs the files on the log's to-sync list where they are, each taken
 * off only once durable: a sync running meanwhile either takes a file
 * itself (and waits for its own fdatasync) or finds it done.  0 or
 * -errno (the log is then failed). */
static int sync_listed(struct kq_log *log)
{
	/* Bounded: on a worker, the loop may keep listing files. */
	for (int i = 0; i < 8; i++) {
		struct kq__seg_sfile *f;
		int rv;

		pthread_mutex_lock(&log->mu);
		f = log->dirty;
		if (f != NULL)
			f->refs++;
		pthread_mutex_unlock(&log->mu);
		if (f == NULL)
			return 0;
		rv = kq__seg_sfile_sync(log, f, true);
		kq__seg_sfile_unref(log, f);
		if (rv != 0) {
			kq__seg_log_fail(log, rv, "fdatasync: %s",
					 strerror(-rv));
			return rv;
		}
	}
	return 0;
}

/* Where a log settles file by file: fdatasync of the raft.state open()
 * made, if it did (state.c).  0 or -errno (the log is then failed). */
static int sync_made_state(struct kq_log *log)
{
	char path[4096];
	int rv;

	if (!log->hs_made)
		return 0;
	/* By path: on a worker, the loop may close the folder's fd. */
	if ((size_t)snprintf(path, sizeof(path), "%s/" KQ__SEG_STATE_FILE,
			     log->dir) >= sizeof(path))
		rv = -ENAMETOOLONG;
	else
		rv = kq__seg_log_sync_path(log, path, true);
	if (rv != 0)
		kq__seg_log_fail(log, rv,
				 "fdatasync of " KQ__SEG_STATE_FILE ": %s",
				 strerror(-rv));
	return rv;
}

/* Whether a syncfs() that began after the log numbered `no` was opened
 * has succeeded: it made all of that log durable. */
static bool settled(struct kq__seg_fsys *fs, uint64_t no)
{
	return fs != NULL &&
	       no <= __atomic_load_n(&fs->covered, __ATOMIC_ACQUIRE);
}

bool kq__seg_log_settled(struct kq_log *log)
{
	uint64_t no = __atomic_load_n(&log->settle_no, __ATOMIC_ACQUIRE);

	return no == 0 || settled(log->fsys, no);
}

int kq__seg_log_settle(struct kq_log *log)
{
	struct kq__seg_fsys *fs = log->fsys;
	uint64_t no = __atomic_load_n(&log->settle_no, __ATOMIC_ACQUIRE);
	int rv;

	if (no == 0 || settled(fs, no))
		goto done;
	if (kq__seg_fsys_usable(fs) &&
	    __atomic_load_n(&fs->created, __ATOMIC_ACQUIRE) -
			    __atomic_load_n(&fs->covered, __ATOMIC_ACQUIRE) >=
		    KQ__SEG_TOGETHER &&
	    kq__seg_fsys_sync(fs, log, true, no))
		goto done;
	/* File by file: the log's own files (open() left a new one's on its
	 * to-sync list), its folder, then its name; a step that had no
	 * descriptor made the rest durable with a syncfs() instead.  No
	 * durability claim moves here. */
	rv = sync_listed(log);
	if (rv == 0 && !settled(fs, no))
		rv = sync_made_state(log);
	if (rv == 0 && !settled(fs, no))
		rv = kq__seg_log_sync_folder(log);
	if (rv == 0 && !settled(fs, no)) {
		rv = kq__seg_log_sync_parent(log);
		if (rv != 0)
			kq__seg_log_fail(log, rv,
					 "fsync of the parent folder: %s",
					 strerror(-rv));
	}
	if (rv != 0)
		return rv;
done:
	__atomic_store_n(&log->settle_no, 0, __ATOMIC_RELEASE);
	return 0;
}
