/* Making written records durable: sync() of one log, file by file, and
 * sync_many() of several, which covers the files of all of them with one
 * syncfs() per file system (fsys.c) instead of an fdatasync (and a
 * journal commit) per file.  With thousands of partitions written in one
 * loop turn that is the difference between one commit and thousands.
 * Either settles the log first where open() left it unsettled
 * (settle.c), and makes the hard state staged for it (state.c, written
 * on the loop) durable with the rest: one syncfs() covers many logs'. */
#include <errno.h>
#include <string.h>

#include <kafkaesque/list.h>

#include "io.h"
#include "module.h"

/* What one log's sync covers, taken under its mutex when it starts: the
 * first files of its to-sync list (`more` when others are left there),
 * in an array of the syncer's own, since the loop may put a taken file
 * back on the list while it is being synced. */
#define PFILES 4

struct pending {
	struct kq_log *log;
	uint64_t next, gen;
	bool dir; /* the folder changed */
	bool more;
	struct kq__seg_sfile *files[PFILES]; /* with the list's refs */
	size_t nfiles;
	/* The staged hard state taken (written in raft.state, not yet
	 * durable), and whether it still needs a sync. */
	bool has_hs, hs_written;
	int rv;
};

/* Takes up to PFILES files off the list.  Caller holds log->mu. */
static void take_files(struct kq_log *log, struct pending *p)
{
	p->nfiles = 0;
	while (p->nfiles < PFILES && log->dirty != NULL) {
		struct kq__seg_sfile *f = log->dirty;

		KQ_LIST_REMOVE_BY(log->dirty, f, dprev, dnext);
		f->dirty = false;
		p->files[p->nfiles++] = f;
	}
	p->more = log->dirty != NULL;
}

static void take(struct kq_log *log, struct pending *p)
{
	p->log = log;
	p->nfiles = 0;
	p->more = false;
	p->dir = false;
	p->has_hs = false;
	p->hs_written = false;
	pthread_mutex_lock(&log->mu);
	p->rv = log->failed;
	if (p->rv == 0) {
		p->next = log->next;
		p->gen = log->gen;
		p->dir = log->dir_dirty;
		log->dir_dirty = false;
		if (log->hs_dirty) {
			p->has_hs = p->hs_written = true;
			log->hs_dirty = false;
			log->hs_syncing = true;
		}
		/* The list's references come with the files: each is
		 * dropped once its data is durable (or the sync failed). */
		take_files(log, p);
	}
	pthread_mutex_unlock(&log->mu);
}

/* The files taken were made durable by someone else (syncfs()), or not
 * at all (rv): drop their references. */
static void release(struct pending *p)
{
	for (size_t i = 0; i < p->nfiles; i++)
		kq__seg_sfile_unref(p->log, p->files[i]);
	p->nfiles = 0;
}

/* Each file (those left on the list too), then the folder: the way
 * without syncfs(). */
static void sync_each(struct pending *p)
{
	struct kq_log *log = p->log;

	if (p->hs_written)
		p->rv = kq__seg_log_sync_staged(log);
	p->hs_written = false;
	for (;;) {
		for (size_t i = 0; i < p->nfiles && p->rv == 0; i++)
			if (kq__seg_io.fdatasync(p->files[i]->fd) != 0) {
				p->rv = -errno;
				kq__seg_log_fail(log, p->rv, "fdatasync: %s",
						 strerror(-p->rv));
			}
		release(p);
		if (p->rv != 0 || !p->more)
			break;
		pthread_mutex_lock(&log->mu);
		take_files(log, p);
		pthread_mutex_unlock(&log->mu);
	}
	if (p->rv == 0 && p->dir)
		p->rv = kq__seg_log_sync_folder(log);
	p->dir = false;
	p->more = false;
}

static int finish(struct pending *p)
{
	struct kq_log *log = p->log;

	release(p); /* taken, and a failure stopped the sync */
	pthread_mutex_lock(&log->mu);
	if (p->has_hs)
		log->hs_syncing = false;
	if (p->rv != 0) {
		pthread_mutex_unlock(&log->mu);
		return p->rv;
	}
	if (log->gen == p->gen && p->next > log->durable_next)
		log->durable_next = p->next;
	/* A failure elsewhere meanwhile is not this sync's success. */
	if (log->failed != 0)
		p->rv = log->failed;
	pthread_mutex_unlock(&log->mu);
	return p->rv;
}

/* Whether a log has anything to sync. */
static bool has_work(const struct pending *p)
{
	return p->rv == 0 &&
	       (p->nfiles > 0 || p->more || p->dir || p->hs_written);
}

/* Covered by a syncfs(): what was taken is durable, and what is left on
 * the list is synced file by file (written since, perhaps). */
static void covered(struct pending *p)
{
	release(p);
	p->hs_written = false;
	p->dir = false;
	if (p->more)
		sync_each(p);
}

/* Syncs ps[0..n): the logs of a file system where KQ__SEG_TOGETHER or
 * more have something to sync with one syncfs(), the others (and all of
 * them where syncfs() fails) file by file. */
static void sync_pending(struct pending *ps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct kq__seg_fsys *fs = ps[i].log->fsys;
		size_t logs = 0;

		/* After this, every log on fs is done or fs is broken. */
		if (!has_work(&ps[i]) || !kq__seg_fsys_usable(fs))
			continue;
		for (size_t j = i; j < n; j++)
			if (ps[j].log->fsys == fs && has_work(&ps[j]))
				logs++;
		if (logs < KQ__SEG_TOGETHER)
			continue;
		if (!kq__seg_fsys_sync(fs, ps[i].log, true, 0))
			continue;
		for (size_t j = i; j < n; j++)
			if (ps[j].log->fsys == fs && has_work(&ps[j]))
				covered(&ps[j]);
	}
	for (size_t i = 0; i < n; i++)
		if (has_work(&ps[i]))
			sync_each(&ps[i]);
}

int kq__seg_log_sync(struct kq_log *log)
{
	struct pending p;

	take(log, &p);
	if (has_work(&p))
		sync_each(&p);
	if (finish(&p) == 0)
		p.rv = kq__seg_log_settle(log);
	return p.rv;
}

int kq__seg_log_sync_many(void *state, struct kq_log *const *logs, size_t n,
			  int *results)
{
	enum { CHUNK = 256 };
	struct pending ps[CHUNK];

	(void)state;
	for (size_t at = 0; at < n; at += CHUNK) {
		size_t k = n - at < CHUNK ? n - at : CHUNK;

		for (size_t i = 0; i < k; i++)
			take(logs[at + i], &ps[i]);
		sync_pending(ps, k);
		for (size_t i = 0; i < k; i++) {
			results[at + i] = finish(&ps[i]);
			if (results[at + i] == 0)
				results[at + i] = kq__seg_log_settle(ps[i].log);
		}
	}
	return 0;
}
