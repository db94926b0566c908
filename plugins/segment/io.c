/* The libc-backed I/O table and the loops around pread/pwrite. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "io.h"

static int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	/* Without atime updates: reading a file written since its last
	 * read would dirty its inode, a journal write per read.  Only the
	 * owner may ask; others open it as usual. */
	int fd = openat(dirfd, path, flags | O_CLOEXEC | O_NOATIME, mode);

	if (fd < 0 && errno == EPERM)
		fd = openat(dirfd, path, flags | O_CLOEXEC, mode);
	return fd;
}

struct kq__seg_io kq__seg_io = {
	.openat = sys_openat,
	.close = close,
	.pread = pread,
	.pwrite = pwrite,
	.ftruncate = ftruncate,
	.fdatasync = fdatasync,
	.fsync = fsync,
	.syncfs = syncfs,
	.renameat = renameat,
	.unlinkat = unlinkat,
	.mkdir = mkdir,
	.fstat = fstat,
	.fstatfs = fstatfs,
	.uname = uname,
	.fstatat = fstatat,
	.opendir = opendir,
	.readdir = readdir,
	.closedir = closedir,
};

int kq__seg_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	/* A short write is retried for the rest, so that a full disk is
	 * reported as ENOSPC by the write that cannot proceed. */
	while (done < n) {
		ssize_t w = kq__seg_io.pwrite(fd, (const char *)buf + done,
					      n - done, (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		done += (size_t)w;
	}
	return 0;
}

ssize_t kq__seg_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = kq__seg_io.pread(fd, (char *)buf + done, n - done,
					     (off_t)(off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}
