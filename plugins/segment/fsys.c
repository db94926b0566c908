/* The file systems a module's logs live on, and syncfs() on them: one
 * call makes every file written on a file system durable, where each file
 * would cost an fdatasync and a journal commit of its own.
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
