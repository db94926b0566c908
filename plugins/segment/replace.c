/* Files replaced in a log's folder: swapped in by a rename, or replaced
 * atomically and durably; and the folder itself synced.  The durable
 * ones settle the log first (settle.c): a new log's folder must be
 * durable before anything in it is made so. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "io.h"
#include "module.h"

int kq__seg_log_swap_file(struct kq_log *log, const char *name, const char *tmp,
			  const void *head, size_t head_len, const void *body,
			  size_t body_len, bool durable)
{
	int fd, rv;

	fd = kq__seg_log_openat(log, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	rv = kq__seg_pwrite_all(fd, head, head_len, 0);
	if (rv == 0 && body_len)
		rv = kq__seg_pwrite_all(fd, body, body_len, head_len);
	/* A new file: fdatasync makes its size durable with its bytes. */
	if (rv == 0 && durable && kq__seg_io.fdatasync(fd) != 0)
		rv = -errno;
	kq__seg_io.close(fd);
	if (rv == 0 && kq__seg_log_renameat(log, tmp, name) != 0)
		rv = -errno;
	if (rv != 0)
		/* A full disk keeps no half-written copy. */
		kq__seg_log_unlinkat(log, tmp, 0);
	return rv;
}

int kq__seg_log_sync_dir(struct kq_log *log)
{
	int rv = kq__seg_log_settle(log), d;

	if (rv != 0)
		return rv;
	d = kq__seg_log_dirfd(log);
	if (d >= 0 && kq__seg_io.fsync(d) == 0)
		return 0;
	rv = -errno;
	kq__seg_log_fail(log, rv, "fsync of the folder: %s", strerror(-rv));
	kq__seg_log_report(log);
	return rv;
}

int kq__seg_log_replace_file(struct kq_log *log, const char *name,
			     const char *tmp, const void *head, size_t head_len,
			     const void *body, size_t body_len)
{
	int rv;

	/* Aside, durable, then swapped in and the swap made durable: a
	 * crash leaves the old file or the new one (of a folder that
	 * stays). */
	rv = kq__seg_log_settle(log);
	if (rv == 0)
		rv = kq__seg_log_swap_file(log, name, tmp, head, head_len, body,
					   body_len, true);
	return rv != 0 ? rv : kq__seg_log_sync_dir(log);
}
