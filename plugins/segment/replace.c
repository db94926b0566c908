/* Durable changes to a log's folder: a file replaced atomically and
 * durably, and the folder itself synced.  Both settle the log first
 * (sync.c): a new log's folder must be durable before anything in it
 * is made so. */
#include <errno.h>
#include <string.h>

#include "io.h"
#include "module.h"

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
