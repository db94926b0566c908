/* A segment's .log descriptor, shared by reference: the segment, readers
 * and syncs each hold one, so that closing the segment's to stay within
 * the bound never pulls it from under a read or a sync running on a
 * worker.  Also the log's to-sync list of such files: a file written
 * since its last sync is on it, with a reference of the list's. */
#include <errno.h>

#include <kafkaesque/list.h>

#include "io.h"
#include "module.h"

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

bool kq__seg_sfile_shared(struct kq_log *log, struct kq__seg_sfile *f)
{
	bool shared;

	pthread_mutex_lock(&log->mu);
	shared = f->refs > 1u + f->dirty;
	pthread_mutex_unlock(&log->mu);
	return shared;
}

void kq__seg_sfile_mark(struct kq_log *log, struct kq__seg_sfile *f)
{
	if (f->dirty)
		return;
	f->dirty = true;
	f->refs++;
	KQ_LIST_PUSH_BY(log->dirty, f, dprev, dnext);
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
