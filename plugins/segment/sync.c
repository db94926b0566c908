/* Making written records durable: sync() of one log, file by file, and
 * sync_many() of several, which covers the files of all of them with one
 * syncfs() per file system instead of an fdatasync (and a journal commit)
 * per file.  With thousands of partitions written in one loop turn that
 * is the difference between one commit and thousands.  Also the settling
 * of logs open() made (see kq_log.settle_no).
 *
 * syncfs() is used only where it reports every error: Linux 5.17 and
 * later (write-back errors since 5.8, the file system's own commit since
 * 5.17), on file systems whose sync_fs commits what fdatasync would
 * (ext4, XFS, Btrfs, F2FS; tmpfs has nothing to commit), and only until
 * it reports one.  The calls on one file system are serialized: they
 * share a descriptor, through which an error is reported once, to one
 * caller.  A failed syncfs() falls back to an fdatasync of each file,
 * whose own descriptor names the files whose data was lost. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/vfs.h>

#include <kafkaesque/list.h>

#include "format.h"
#include "io.h"
#include "module.h"

bool kq__seg_syncfs_reports_errors(const char *release)
{
	unsigned major = 0, minor = 0;

	if (sscanf(release, "%u.%u", &major, &minor) != 2)
		return false;
	return major > 5 || (major == 5 && minor >= 17);
}

bool kq__seg_syncfs_commits(long f_type)
{
	switch ((unsigned long)f_type & 0xffffffffUL) {
	case 0xEF53UL:	   /* ext2/3/4 */
	case 0x58465342UL: /* XFS */
	case 0x9123683EUL: /* Btrfs */
	case 0xF2F52010UL: /* F2FS */
	case 0x01021994UL: /* tmpfs */ return true;
	default: return false;
	}
}

void kq__seg_fsys_init(struct kq__seg_module *mod)
{
	struct utsname u;

	mod->nfsys = 0;
	mod->syncfs_ok = mod->conf.syncfs && kq__seg_io.uname(&u) == 0 &&
			 kq__seg_syncfs_reports_errors(u.release);
}

void kq__seg_fsys_fini(struct kq__seg_module *mod)
{
	for (size_t i = 0; i < mod->nfsys; i++) {
		kq__seg_io.close(mod->fsys[i].fd);
		pthread_mutex_destroy(&mod->fsys[i].mu);
		mod->fds.held--;
	}
	mod->nfsys = 0;
}

bool kq__seg_fsys_attach(struct kq__seg_module *mod, struct kq_log *log)
{
	struct statfs sfs;
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
	if (mod->nfsys == KQ__SEG_FSYS_MAX ||
	    kq__seg_io.fstatfs(log->dirfd, &sfs) != 0 ||
	    !kq__seg_syncfs_commits((long)sfs.f_type))
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
	pthread_mutex_init(&fs->mu, NULL);
	log->fsys = fs;
	return true;
}

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

/* fsync of the log's folder; failure fails the log. */
static int sync_folder(struct kq_log *log)
{
	int rv = kq__seg_log_sync_path(log, log->dir, false);

	if (rv != 0)
		kq__seg_log_fail(log, rv, "fsync of the folder: %s",
				 strerror(-rv));
	return rv;
}

/* syncfs() writes back every dirty file of its file system, other
 * programs' too: it is used where it stands for the syncs of at least
 * this many logs (written in one loop turn, or opened and not yet
 * settled), so that a few partitions stay clear of other writers' dirty
 * data on a shared file system, and pay an fdatasync each as before.
 * The core's threshold for handing logs over together. */
#define TOGETHER KQ_SYNC_MANY_MIN

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
	pthread_mutex_lock(&log->mu);
	p->rv = log->failed;
	if (p->rv == 0) {
		p->next = log->next;
		p->gen = log->gen;
		p->dir = log->dir_dirty;
		log->dir_dirty = false;
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
		p->rv = sync_folder(log);
	p->dir = false;
	p->more = false;
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
	return p->rv == 0 && (p->nfiles > 0 || p->more || p->dir);
}

/* Covered by a syncfs(): what was taken is durable, and what is left on
 * the list is synced file by file (written since, perhaps). */
static void covered(struct pending *p)
{
	release(p);
	p->dir = false;
	if (p->more)
		sync_each(p);
}

bool kq__seg_fsys_usable(struct kq__seg_fsys *fs)
{
	return fs != NULL && !__atomic_load_n(&fs->broken, __ATOMIC_ACQUIRE);
}

bool kq__seg_fsys_sync(struct kq__seg_fsys *fs, struct kq_log *log, bool wait,
		       uint64_t no)
{
	uint64_t upto, was;
	bool ok;
	int e;

	if (!wait) {
		if (pthread_mutex_trylock(&fs->mu) != 0)
			return false;
	} else {
		pthread_mutex_lock(&fs->mu);
	}
	if (__atomic_load_n(&fs->broken, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&fs->mu);
		return false;
	}
	/* The syncfs() this call waited for may have covered it. */
	if (no != 0 && no <= __atomic_load_n(&fs->covered, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&fs->mu);
		return true;
	}
	upto = __atomic_load_n(&fs->created, __ATOMIC_ACQUIRE);
	ok = kq__seg_io.syncfs(fs->fd) == 0;
	if (ok) {
		was = __atomic_load_n(&fs->covered, __ATOMIC_ACQUIRE);
		if (upto > was)
			__atomic_store_n(&fs->covered, upto, __ATOMIC_RELEASE);
	} else {
		e = errno ? errno : EIO;
		__atomic_store_n(&fs->broken, e, __ATOMIC_RELEASE);
		log->host->log(log->host, KQ_LOG_WARN,
			       "syncfs: %s; the file system of %s is synced "
			       "file by file from now on",
			       strerror(e), log->dir);
	}
	pthread_mutex_unlock(&fs->mu);
	return ok;
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
		    TOGETHER &&
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
		rv = sync_folder(log);
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

/* Syncs ps[0..n): the logs of a file system where TOGETHER or more have
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
		if (logs < TOGETHER)
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
