/* Segment files: creating, opening, indexing and removing them. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "format.h"
#include "io.h"
#include "module.h"

void kq__seg_name(char *buf, uint64_t base, const char *ext)
{
	/* By hand: recovery names every file it looks at, and snprintf was
	 * a noticeable part of opening a log. */
	for (int i = 19; i >= 0; i--) {
		buf[i] = (char)('0' + base % 10);
		base /= 10;
	}
	buf[20] = '.';
	for (int i = 21; i < 31 && (buf[i] = *ext++) != '\0'; i++)
		;
	buf[31] = '\0';
}

struct kq__seg *kq__seg_new(struct kq_log *log, uint64_t base)
{
	struct kq__seg *seg = log->host->malloc(sizeof(*seg));

	if (seg == NULL)
		return NULL;
	memset(seg, 0, sizeof(*seg));
	seg->slot.log = log;
	seg->slot.seg = seg;
	seg->base = base;
	seg->ifd = -1;
	seg->max_ts = INT64_MIN;
	seg->reported = UINT64_MAX;
	return seg;
}

/* Closes what the segment holds, index entries not yet written or not. */
static void release(struct kq_log *log, struct kq__seg *seg)
{
	if (seg->ifd >= 0) {
		kq__seg_io.close(seg->ifd);
		seg->ifd = -1;
	}
	if (seg->file != NULL) {
		kq__seg_sfile_unref(log, seg->file);
		seg->file = NULL;
	}
	if (seg->held)
		kq__seg_fds_count(log->fds, &seg->slot, -(int)seg->held);
	seg->held = 0;
	kq__seg_fds_unlink(log->fds, &seg->slot);
}

void kq__seg_hold(struct kq_log *log, struct kq__seg *seg, unsigned n)
{
	seg->held += n;
	kq__seg_fds_count(log->fds, &seg->slot, (int)n);
}

int kq__seg_close_fds(struct kq_log *log, struct kq__seg *seg)
{
	if (seg->ifd >= 0) {
		int rv = kq__seg_flush_index(log, seg);

		if (rv != 0)
			return rv;
	}
	release(log, seg);
	return 0;
}

void kq__seg_free(struct kq_log *log, struct kq__seg *seg)
{
	if (seg == NULL)
		return;
	release(log, seg);
	kq__seg_index_free(log->host, &seg->idx);
	log->host->free(seg);
}

/* Creates one file holding only its header. Returns the fd or -errno. */
static int create_file(struct kq_log *log, const char *name,
		       enum kq__seg_file_kind kind, uint64_t base)
{
	uint8_t hdr[KQ__SEG_HDR_SIZE];
	int fd, rv;

	fd = kq__seg_log_openat(log, name, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	kq__seg_header_encode(hdr, kind, base);
	rv = kq__seg_pwrite_all(fd, hdr, sizeof(hdr), 0);
	if (rv != 0) {
		kq__seg_io.close(fd);
		kq__seg_log_unlinkat(log, name, 0);
		return rv;
	}
	return fd;
}

int kq__seg_create(struct kq_log *log, uint64_t base, bool tmp,
		   struct kq__seg **out)
{
	struct kq__seg *seg = kq__seg_new(log, base);
	char name[32];
	int fd;

	if (seg == NULL)
		return -ENOMEM;
	kq__seg_name(name, base, tmp ? "log.tmp" : "log");
	fd = create_file(log, name, KQ__SEG_FILE_LOG, base);
	if (fd < 0) {
		kq__seg_free(log, seg);
		return fd;
	}
	if (kq__seg_adopt_file(log, seg, fd) != 0) {
		kq__seg_log_unlinkat(log, name, 0);
		kq__seg_free(log, seg);
		return -ENOMEM;
	}
	kq__seg_name(name, base, tmp ? "index.tmp" : "index");
	seg->ifd = create_file(log, name, KQ__SEG_FILE_INDEX, base);
	if (seg->ifd < 0) {
		int rv = seg->ifd;

		seg->ifd = -1;
		kq__seg_name(name, base, tmp ? "log.tmp" : "log");
		kq__seg_log_unlinkat(log, name, 0);
		kq__seg_free(log, seg);
		return rv;
	}
	kq__seg_hold(log, seg, 2);
	seg->size = KQ__SEG_HDR_SIZE;
	seg->idx_loaded = true;
	seg->idx_trusted = true;
	seg->tail_known = true;
	*out = seg;
	return 0;
}

int kq__seg_publish(struct kq_log *log, struct kq__seg *seg)
{
	static const char *const ext[2][2] = {{"log.tmp", "log"},
					      {"index.tmp", "index"}};
	char from[32], to[32];

	for (int i = 0; i < 2; i++) {
		kq__seg_name(from, seg->base, ext[i][0]);
		kq__seg_name(to, seg->base, ext[i][1]);
		if (kq__seg_log_renameat(log, from, to) != 0)
			return -errno;
	}
	return 0;
}

void kq__seg_report(struct kq_log *log, struct kq__seg *seg, uint64_t pos,
		    const char *why)
{
	char name[32];

	if (seg->reported == pos)
		return;
	seg->reported = pos;
	kq__seg_name(name, seg->base, "log");
	log->host->log(log->host, KQ_LOG_ERROR,
		       "%s/%s: damaged data at byte %" PRIu64 ": %s", log->dir,
		       name, pos, why);
}

int kq__seg_check_header(int fd, uint64_t base)
{
	uint8_t hdr[KQ__SEG_HDR_SIZE];
	ssize_t r = kq__seg_pread_full(fd, hdr, sizeof(hdr), 0);

	if (r < 0)
		return (int)r;
	return r != sizeof(hdr) ||
	       kq__seg_header_check(hdr, KQ__SEG_FILE_LOG, base) != 0;
}

int kq__seg_open_file(struct kq_log *log, struct kq__seg *seg)
{
	char name[32];
	int fd, rv;

	if (seg->file != NULL) {
		if (seg->held)
			kq__seg_fds_touch(log->fds, &seg->slot);
		return 0;
	}
	kq__seg_name(name, seg->base, "log");
	fd = kq__seg_log_openat(log, name, O_RDWR, 0);
	if (fd < 0) {
		rv = -errno;
		log->host->log(log->host, KQ_LOG_ERROR, "%s/%s: open: %s",
			       log->dir, name, strerror(-rv));
		return rv;
	}
	rv = kq__seg_check_header(fd, seg->base);
	if (rv != 0) {
		kq__seg_io.close(fd);
		if (rv < 0)
			return rv;
		kq__seg_report(log, seg, 0, "bad segment header");
		return KQ_ECORRUPT;
	}
	rv = kq__seg_adopt_file(log, seg, fd);
	if (rv == 0)
		kq__seg_hold(log, seg, 1);
	return rv;
}

int kq__seg_adopt_file(struct kq_log *log, struct kq__seg *seg, int fd)
{
	seg->file = kq__seg_sfile_new(log, fd);
	if (seg->file == NULL) {
		kq__seg_io.close(fd);
		return -ENOMEM;
	}
	return 0;
}

int kq__seg_open_sized(struct kq_log *log, const char *name, int flags, int *fd,
		       uint64_t *size)
{
	struct stat st;
	int rv;

	*fd = kq__seg_log_openat(log, name, flags, 0);
	if (*fd < 0)
		return -errno;
	if (kq__seg_io.fstat(*fd, &st) != 0) {
		rv = -errno;
		kq__seg_io.close(*fd);
		return rv;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

int kq__seg_read_index(struct kq_log *log, struct kq__seg *seg,
		       uint64_t log_size)
{
	char name[32];
	uint64_t fsize;
	uint8_t *buf;
	ssize_t r;
	int fd, rv;

	kq__seg_name(name, seg->base, "index");
	rv = kq__seg_open_sized(log, name, O_RDONLY, &fd, &fsize);
	if (rv != 0)
		return rv;
	buf = log->host->malloc((size_t)fsize + 1);
	if (buf == NULL) {
		kq__seg_io.close(fd);
		return -ENOMEM;
	}
	r = kq__seg_pread_full(fd, buf, (size_t)fsize, 0);
	kq__seg_io.close(fd);
	if (r < 0) {
		log->host->free(buf);
		return (int)r;
	}
	rv = kq__seg_index_parse(log->host, &seg->idx, buf, (size_t)r,
				 seg->base, log_size);
	log->host->free(buf);
	return rv;
}

int kq__seg_write_index(struct kq_log *log, struct kq__seg *seg)
{
	char tmp[32], name[32];
	size_t len = KQ__SEG_HDR_SIZE + seg->idx.n * KQ__SEG_IENTRY_SIZE;
	uint8_t *buf = log->host->malloc(len);
	int rv;

	if (buf == NULL)
		return -ENOMEM;
	kq__seg_header_encode(buf, KQ__SEG_FILE_INDEX, seg->base);
	kq__seg_index_encode(&seg->idx, 0, seg->idx.n, buf + KQ__SEG_HDR_SIZE);
	kq__seg_name(tmp, seg->base, "index.tmp");
	kq__seg_name(name, seg->base, "index");
	/* Not synced: an index is rebuilt from its segment when it does
	 * not match it. */
	rv = kq__seg_log_swap_file(log, name, tmp, buf, len, NULL, 0, false);
	log->host->free(buf);
	if (rv != 0)
		return rv;
	seg->idx.flushed = seg->idx.n;
	if (seg->ifd >= 0) {
		/* The old descriptor names the replaced file. */
		kq__seg_io.close(seg->ifd);
		seg->ifd = -1;
		seg->held--;
		kq__seg_fds_count(log->fds, &seg->slot, -1);
		return kq__seg_open_ifd(log, seg);
	}
	return 0;
}

int kq__seg_open_ifd(struct kq_log *log, struct kq__seg *seg)
{
	char name[32];

	if (seg->ifd >= 0) {
		kq__seg_fds_touch(log->fds, &seg->slot);
		return 0;
	}
	kq__seg_name(name, seg->base, "index");
	seg->ifd = kq__seg_log_openat(log, name, O_RDWR, 0);
	if (seg->ifd < 0)
		return -errno;
	kq__seg_hold(log, seg, 1);
	return 0;
}

int kq__seg_flush_index(struct kq_log *log, struct kq__seg *seg)
{
	uint8_t buf[256 * KQ__SEG_IENTRY_SIZE];

	/* The newest segment's file may have been closed to stay within
	 * the bound: its pending entries open it again. */
	if (!seg->sealed && seg->idx.flushed < seg->idx.n) {
		int rv = kq__seg_open_ifd(log, seg);

		if (rv != 0)
			return rv;
	}
	while (seg->ifd >= 0 && seg->idx.flushed < seg->idx.n) {
		size_t from = seg->idx.flushed, to = seg->idx.n;
		int rv;

		if (to - from > 256)
			to = from + 256;
		kq__seg_index_encode(&seg->idx, from, to, buf);
		rv = kq__seg_pwrite_all(
			seg->ifd, buf, (to - from) * KQ__SEG_IENTRY_SIZE,
			KQ__SEG_HDR_SIZE + from * KQ__SEG_IENTRY_SIZE);
		if (rv != 0)
			return rv;
		seg->idx.flushed = to;
	}
	return 0;
}

int kq__seg_unlink(struct kq_log *log, struct kq__seg *seg)
{
	char name[32];

	kq__seg_name(name, seg->base, "log");
	if (kq__seg_log_unlinkat(log, name, 0) != 0 && errno != ENOENT)
		return -errno;
	kq__seg_name(name, seg->base, "index");
	if (kq__seg_log_unlinkat(log, name, 0) != 0 && errno != ENOENT)
		return -errno;
	return 0;
}
