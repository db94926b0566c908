/* Making written records durable: sync() of one log, file by file, and
 * sync_many() of several, which covers the files of all of them with one
 * syncfs() per file system instead of an fdatasync (and a journal commit)
 * per file.
 * With thousands of partitions written in one loop turn that is the
 * difference between one commit and thousands.  syncfs() is used only
 * where it reports write-back errors (Linux 5.8 and later) and only until
 * it reports one; a failed syncfs() falls back to an fdatasync of each
 * file, which names the files whose data was lost. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>

#include "io.h"
#include "module.h"

bool kq__seg_syncfs_reports_errors(const char *release)
{
	unsigned major = 0, minor = 0;

	if (sscanf(release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 8);
}

void kq__seg_fsys_init(struct kq__seg_module *mod)
{
	struct utsname u;

	mod->nfsys = 0;
	mod->syncfs_ok = mod->conf.syncfs && uname(&u) == 0 &&
			 kq__seg_syncfs_reports_errors(u.release);
}

void kq__seg_fsys_fini(struct kq__seg_module *mod)
{
	for (size_t i = 0; i < mod->nfsys; i++) {
		kq__seg_io.close(mod->fsys[i].fd);
		mod->fds.held--;
	}
	mod->nfsys = 0;
}

bool kq__seg_fsys_attach(struct kq__seg_module *mod, struct kq_log *log)
{
	struct stat st;
	struct kq__seg_fsys *fs;
	int fd;

	log->fsys = NULL;
	if (!mod->syncfs_ok || log->dirfd < 0 ||
	    kq__seg_io.fstat(log->dirfd, &st) != 0)
		return false;
	for (size_t i = 0; i < mod->nfsys; i++)
		if (mod->fsys[i].dev == st.st_dev) {
			log->fsys = &mod->fsys[i];
			return false;
		}
	/* Past the table's size a log is synced file by file. */
	if (mod->nfsys == KQ__SEG_FSYS_MAX)
		return false;
	fd = kq__seg_io.openat(AT_FDCWD, log->dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return false;
	/* Counted against the bound for good: held until fini. */
	kq__seg_fds_make_room(&mod->fds, &log->slot);
	mod->fds.held++;
	fs = &mod->fsys[mod->nfsys++];
	fs->dev = st.st_dev;
	fs->fd = fd;
	fs->broken = 0;
	fs->created = fs->covered = 0;
	log->fsys = fs;
	return true;
}

/* fsync of the folder from the worker, on a descriptor of its own: the
 * loop may close the log's at any time to stay within the bound. */
static int sync_folder(struct kq_log *log)
{
	int fd = kq__seg_io.openat(AT_FDCWD, log->dir, O_RDONLY | O_DIRECTORY,
				   0),
	    rv = 0;

	if (fd < 0)
		return -1;
	if (kq__seg_io.fsync(fd) != 0)
		rv = -1;
	if (rv != 0) {
		int e = errno;

		kq__seg_io.close(fd);
		errno = e;
		return rv;
	}
	kq__seg_io.close(fd);
	return 0;
}

/* What one log's sync covers, taken under its mutex when it starts. */
struct pending {
	struct kq_log *log;
	uint64_t next, gen;
	bool dir;		     /* the folder changed */
	struct kq__seg_sfile *files; /* off the to-sync list, with its refs */
	int rv;
};

static void take(struct kq_log *log, struct pending *p)
{
	p->log = log;
	p->files = NULL;
	pthread_mutex_lock(&log->mu);
	p->rv = log->failed;
	if (p->rv == 0) {
		p->next = log->next;
		p->gen = log->gen;
		p->dir = log->dir_dirty;
		log->dir_dirty = false;
		/* The list's references come with the files: each is
		 * dropped once its data is durable (or the sync failed). */
		p->files = log->dirty;
		log->dirty = NULL;
		for (struct kq__seg_sfile *f = p->files; f; f = f->dnext)
			f->dirty = false;
	}
	pthread_mutex_unlock(&log->mu);
}

/* The files were made durable by someone else (syncfs()), or not at all
 * (rv): drop their references. */
static void release(struct pending *p)
{
	struct kq__seg_sfile *f = p->files, *next;

	p->files = NULL;
	for (; f; f = next) {
		next = f->dnext;
		f->dnext = NULL;
		kq__seg_sfile_unref(p->log, f);
	}
}

/* Each file, then the folder: the way without syncfs(). */
static void sync_each(struct pending *p)
{
	struct kq_log *log = p->log;

	for (struct kq__seg_sfile *f = p->files; f && p->rv == 0; f = f->dnext)
		if (kq__seg_io.fdatasync(f->fd) != 0) {
			p->rv = -errno;
			kq__seg_log_fail(log, p->rv, "fdatasync: %s",
					 strerror(-p->rv));
		}
	release(p);
	if (p->rv == 0 && p->dir && sync_folder(log) != 0) {
		p->rv = -errno;
		kq__seg_log_fail(log, p->rv, "fsync of the folder: %s",
				 strerror(-p->rv));
	}
}

static int finish(struct pending *p)
{
	struct kq_log *log = p->log;

	if (p->rv != 0)
		return p->rv;
	pthread_mutex_lock(&log->mu);
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
	return p->rv == 0 && (p->files != NULL || p->dir);
}

bool kq__seg_fsys_usable(struct kq__seg_fsys *fs)
{
	return fs != NULL && !__atomic_load_n(&fs->broken, __ATOMIC_ACQUIRE);
}

bool kq__seg_fsys_sync(struct kq__seg_fsys *fs, struct kq_log *log)
{
	uint64_t upto = __atomic_load_n(&fs->created, __ATOMIC_ACQUIRE), was;
	int e;

	if (kq__seg_io.syncfs(fs->fd) == 0) {
		was = __atomic_load_n(&fs->covered, __ATOMIC_ACQUIRE);
		while (was < upto &&
		       !__atomic_compare_exchange_n(&fs->covered, &was, upto,
						    false, __ATOMIC_ACQ_REL,
						    __ATOMIC_ACQUIRE))
			;
		return true;
	}
	e = errno ? errno : EIO;
	if (__atomic_exchange_n(&fs->broken, e, __ATOMIC_ACQ_REL) == 0)
		log->host->log(log->host, KQ_LOG_WARN,
			       "syncfs: %s; the file system of %s is synced "
			       "file by file from now on",
			       strerror(e), log->dir);
	return false;
}

int kq__seg_log_sync_parent(struct kq_log *log)
{
	const char *slash = strrchr(log->dir, '/');
	char parent[4096];
	int fd, rv = 0;

	if (slash == NULL)
		strcpy(parent, ".");
	else if (slash == log->dir)
		strcpy(parent, "/");
	else if ((size_t)(slash - log->dir) >= sizeof(parent))
		return -ENAMETOOLONG;
	else
		snprintf(parent, sizeof(parent), "%.*s",
			 (int)(slash - log->dir), log->dir);
	fd = kq__seg_io.openat(AT_FDCWD, parent, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0 || kq__seg_io.fsync(fd) != 0)
		rv = -errno;
	if (fd >= 0)
		kq__seg_io.close(fd);
	return rv;
}

int kq__seg_log_settle(struct kq_log *log)
{
	struct kq__seg_fsys *fs = log->fsys;
	uint64_t no = __atomic_load_n(&log->settle_no, __ATOMIC_ACQUIRE);
	struct pending p;
	int rv;

	if (no == 0)
		return 0;
	if (no > __atomic_load_n(&fs->covered, __ATOMIC_ACQUIRE) &&
	    (!kq__seg_fsys_usable(fs) || !kq__seg_fsys_sync(fs, log))) {
		/* File by file: the log's own files and folder (open() left
		 * them on its to-sync list), then its name. */
		take(log, &p);
		if (has_work(&p))
			sync_each(&p);
		rv = finish(&p);
		if (rv == 0) {
			rv = kq__seg_log_sync_parent(log);
			if (rv != 0)
				kq__seg_log_fail(log, rv,
						 "fsync of the parent folder: "
						 "%s",
						 strerror(-rv));
		}
		if (rv != 0)
			return rv;
	}
	__atomic_store_n(&log->settle_no, 0, __ATOMIC_RELEASE);
	return 0;
}

/* Syncs ps[0..n): the logs of a file system where two or more have
 * something to sync with one syncfs(), the others (and all of them
 * where syncfs() fails) file by file. */
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
		if (logs < 2)
			continue;
		if (!kq__seg_fsys_sync(fs, ps[i].log))
			continue;
		for (size_t j = i; j < n; j++)
			if (ps[j].log->fsys == fs && has_work(&ps[j])) {
				release(&ps[j]);
				ps[j].dir = false;
			}
	}
	for (size_t i = 0; i < n; i++)
		if (has_work(&ps[i]))
			sync_each(&ps[i]);
}

int kq__seg_log_sync(struct kq_log *log)
{
	struct pending p;

	take(log, &p);
	/* A log not settled yet needs a syncfs() anyway: it covers the
	 * files too. */
	if (has_work(&p) &&
	    __atomic_load_n(&log->settle_no, __ATOMIC_ACQUIRE) &&
	    kq__seg_fsys_usable(log->fsys) &&
	    kq__seg_fsys_sync(log->fsys, log)) {
		release(&p);
		p.dir = false;
	}
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
