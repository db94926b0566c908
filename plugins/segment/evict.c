/* What the descriptor bound (fds.c) does to a segment it closes to make
 * room: a segment's files written since the last sync stay open for that
 * sync, unless the bound must be kept (`force`), when they are made
 * durable right here, on the loop: with one syncfs() of their file
 * system where that is used, which makes every held file durable at
 * once, else with an fdatasync of the oldest.  This is what keeps the
 * bound however many logs are written between two syncs (a burst of
 * elections over thousands of partitions writes to every one of them).
 * A file a sync on a worker or a read still uses stays, counted, forced
 * or not: closing its holder would free no descriptor.
 * A log opened unsynced (kq_log_options.unsynced: fsync "never", where
 * nobody waits for a sync) has such a file closed without one instead.
 * The module hands these to the bound at init (kq__seg_fds_init), so
 * that the bound, below segments and syncs, calls neither. */
#include <string.h>

#include "module.h"

/* kq__seg_sfile_sync(), failing the log when it fails (as a sync of its
 * own would); false then. */
static bool sync_now(struct kq_log *log, struct kq__seg_sfile *f)
{
	int rv = kq__seg_sfile_sync(log, f, false);

	if (rv != 0)
		kq__seg_log_fail(log, rv, "fdatasync: %s", strerror(-rv));
	return rv == 0;
}

bool kq__seg_evict_close(struct kq__seg_fdslot *s, bool force)
{
	struct kq_log *log = s->log;
	struct kq__seg_sfile *f = s->seg->file;
	bool dirty = false;

	/* A file written since the last sync stays open for that sync
	 * anyway: closing the holder would only make the next write open a
	 * second descriptor for it. */
	if (f != NULL) {
		pthread_mutex_lock(&log->mu);
		dirty = f->dirty;
		pthread_mutex_unlock(&log->mu);
	}
	/* Nobody waits for its sync but the last one, at the stop: it goes
	 * unsynced, as the policy allows. */
	if (dirty && log->conf.unsynced) {
		kq__seg_sfile_unlist(log, f);
		dirty = false;
	}
	if (dirty && !(force && sync_now(log, f)))
		return false;
	/* A file a sync on a worker took (or a cursor reads) stays open
	 * until that ends, whatever is done here: closing the holder would
	 * free no descriptor, only take it off the count (the process would
	 * go past the bound by every file a slow sync holds), and the next
	 * write would open a second one.  It stays, and counts. */
	if (f != NULL && kq__seg_sfile_shared(log, f))
		return false;
	return kq__seg_close_fds(log, s->seg) == 0;
}

void kq__seg_evict_sync_held(struct kq__seg_fds *fds)
{
	struct kq__seg_fdslot *s = fds->oldest;
	struct kq__seg_fsys *fs;

	if (s == NULL)
		return;
	fs = s->log->fsys;
	/* Not behind a worker's syncfs(): the oldest file alone is synced
	 * then, which keeps the loop's wait short. */
	if (!kq__seg_fsys_usable(fs) ||
	    !kq__seg_fsys_sync(fs, s->log, false, 0))
		return;
	/* Written on this thread only: nothing was written since. */
	for (s = fds->oldest; s != NULL; s = s->next)
		if (s->seg != NULL && s->seg->file != NULL &&
		    s->log->fsys == fs)
			kq__seg_sfile_unlist(s->log, s->seg->file);
}
