/* The system calls the segment module performs on files, behind a table
 * that tests replace to inject failures (EIO, ENOSPC, short writes). */
#ifndef KQ_SEGMENT_IO_H
#define KQ_SEGMENT_IO_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/vfs.h>

/* Each member behaves like the libc call of the same name: -1 with errno
 * set on failure. */
struct kq__seg_io {
	int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*ftruncate)(int fd, off_t len);
	int (*fdatasync)(int fd);
	int (*fsync)(int fd);
	int (*syncfs)(int fd);
	int (*renameat)(int olddir, const char *oldp, int newdir,
			const char *newp);
	int (*unlinkat)(int dirfd, const char *path, int flags);
	int (*mkdir)(const char *path, mode_t mode);
	/* Sizes and folder listings too, so that a log can live entirely
	 * in memory (the fuzz targets run recovery at memory speed). */
	int (*fstat)(int fd, struct stat *st);
	int (*fstatfs)(int fd, struct statfs *st);
	int (*uname)(struct utsname *u); /* the kernel's release */
	int (*fstatat)(int dirfd, const char *path, struct stat *st, int flags);
	DIR *(*opendir)(const char *path);
	struct dirent *(*readdir)(DIR *d);
	int (*closedir)(DIR *d);
};

/* The table every file operation of the module goes through.  Owned by
 * the module, initialised to the libc calls; tests may overwrite members
 * (and must restore them) while no log is in use on another thread. */
extern struct kq__seg_io kq__seg_io;

/* Writes all `n` bytes at `off`.  Returns 0, or -errno; a short write is
 * an error (-EIO) because a regular file only writes short when the
 * device is out of space or failing. */
int kq__seg_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* Reads up to `n` bytes at `off`, retrying short reads.  Returns the
 * bytes read (fewer only at end of file) or -errno. */
ssize_t kq__seg_pread_full(int fd, void *buf, size_t n, uint64_t off);

#endif /* KQ_SEGMENT_IO_H */
