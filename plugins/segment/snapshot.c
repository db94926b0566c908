/* Snapshots of a state-machine group: `snapshot` in the log's folder,
 * replaced atomically and durably (kq__seg_log_replace_file), so a crash
 * leaves the old snapshot or the new one.
 *
 * Layout, little-endian: "KQSNAP01", index u64, term u64, length u64,
 * FNV-1a 64 of the 24 bytes before it and the data, then the data
 * (docs/storage-format.md). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <kafkaesque/bytes.h>

#include "io.h"
#include "module.h"

#define SNAP_FILE  "snapshot"
#define SNAP_TMP   "snapshot.tmp"
#define SNAP_MAGIC "KQSNAP01"
#define SNAP_HDR   40

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len--) {
		h ^= *p++;
		h *= 1099511628211ULL;
	}
	return h;
}

/* The checksum of a header's index, term and length, and the data. */
static uint64_t checksum(const uint8_t *hdr, const void *data, size_t len)
{
	return fnv(fnv(1469598103934665603ULL, hdr + 8, 24), data, len);
}

int kq__seg_log_save_snapshot(struct kq_log *log, uint64_t index, uint64_t term,
			      const void *data, size_t len)
{
	uint8_t hdr[SNAP_HDR];
	int rv;

	/* As a hard state: a failed log vouches for nothing new until it
	 * is reopened. */
	kq__seg_log_report(log);
	if (kq__seg_log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	memcpy(hdr, SNAP_MAGIC, 8);
	kq_put64le(hdr + 8, index);
	kq_put64le(hdr + 16, term);
	kq_put64le(hdr + 24, len);
	kq_put64le(hdr + 32, checksum(hdr, data, len));
	/* The state is written where it lies: no copy of it. */
	rv = kq__seg_log_replace_file(log, SNAP_FILE, SNAP_TMP, hdr, SNAP_HDR,
				      data, len);
	if (rv != 0)
		log->host->log(log->host, KQ_LOG_ERROR,
			       "%s/" SNAP_FILE ": cannot save: %s", log->dir,
			       strerror(-rv));
	return rv;
}

static int damaged(struct kq_log *log, const char *why)
{
	log->host->log(log->host, KQ_LOG_ERROR, "%s/" SNAP_FILE ": %s",
		       log->dir, why);
	return KQ_ECORRUPT;
}

int kq__seg_log_load_snapshot(struct kq_log *log, uint64_t *index,
			      uint64_t *term, void **data, size_t *len)
{
	uint8_t hdr[SNAP_HDR];
	struct stat st;
	uint64_t n;
	ssize_t got;
	void *buf;
	int fd = kq__seg_log_openat(log, SNAP_FILE, O_RDONLY, 0);

	if (fd < 0)
		return -errno;
	got = fstat(fd, &st) != 0 ? -errno
				  : kq__seg_pread_full(fd, hdr, SNAP_HDR, 0);
	if (got < 0) {
		kq__seg_io.close(fd);
		return (int)got;
	}
	if (got != SNAP_HDR || memcmp(hdr, SNAP_MAGIC, 8) != 0) {
		kq__seg_io.close(fd);
		return damaged(log, "not a snapshot file");
	}
	/* The length is checked against the file before anything is
	 * allocated for it: a damaged one is damage, not a lack of memory. */
	n = kq_get64le(hdr + 24);
	if (n != (uint64_t)st.st_size - SNAP_HDR) {
		kq__seg_io.close(fd);
		return damaged(log, "damaged snapshot (its length is not the "
				    "file's)");
	}
	buf = log->host->malloc(n ? n : 1);
	got = buf ? kq__seg_pread_full(fd, buf, n, SNAP_HDR) : -ENOMEM;
	kq__seg_io.close(fd);
	if (got < 0) {
		log->host->free(buf);
		return (int)got;
	}
	if (got != (ssize_t)n ||
	    checksum(hdr, buf, n) != kq_get64le(hdr + 32)) {
		log->host->free(buf);
		return damaged(log, "damaged snapshot (bad checksum)");
	}
	*index = kq_get64le(hdr + 8);
	*term = kq_get64le(hdr + 16);
	*data = buf;
	*len = n;
	return 0;
}
