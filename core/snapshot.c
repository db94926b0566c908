/* Snapshot files of state-machine groups: `<log dir>/snapshot`, replaced
 * atomically (write a temporary file, fsync it, rename, fsync the folder).
 *
 * Layout, little-endian: "KQSNAP01", index u64, term u64, length u64,
 * FNV-1a 64 of the 24 bytes before it and the data, then the data. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kafkaesque/bytes.h>

#include "broker.h"
#include "log.h"

#define MAGIC "KQSNAP01"
#define HDR   40

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len--) {
		h ^= *p++;
		h *= 1099511628211ULL;
	}
	return h;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int kq__snapshot_save(const char *dir, uint64_t index, uint64_t term,
		      const void *data, size_t len)
{
	char tmp[4200], path[4200];
	unsigned char hdr[HDR];
	int fd, dfd, rv;

	snprintf(tmp, sizeof(tmp), "%s/snapshot.tmp", dir);
	snprintf(path, sizeof(path), "%s/snapshot", dir);
	memcpy(hdr, MAGIC, 8);
	kq_put64le(hdr + 8, index);
	kq_put64le(hdr + 16, term);
	kq_put64le(hdr + 24, len);
	kq_put64le(hdr + 32,
	      fnv(fnv(1469598103934665603ULL, hdr + 8, 24), data, len));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	rv = write_all(fd, hdr, HDR);
	if (rv == 0)
		rv = write_all(fd, data, len);
	if (rv == 0 && fdatasync(fd) != 0)
		rv = -errno;
	close(fd);
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv != 0) {
		unlink(tmp);
		return rv;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rv = fsync(dfd) != 0 ? -errno : 0;
	close(dfd);
	return rv;
}

int kq__snapshot_load(const char *dir, uint64_t *index, uint64_t *term,
		      void **data, size_t *len)
{
	char path[4200];
	unsigned char hdr[HDR];
	uint64_t n;
	char *buf;
	FILE *f;

	snprintf(path, sizeof(path), "%s/snapshot", dir);
	f = fopen(path, "rb");
	if (!f)
		return -errno;
	if (fread(hdr, 1, HDR, f) != HDR || memcmp(hdr, MAGIC, 8) != 0) {
		fclose(f);
		kq__error("%s: not a snapshot file", path);
		return KQ_ECORRUPT;
	}
	n = kq_get64le(hdr + 24);
	buf = n < (1ULL << 32) ? malloc(n ? n : 1) : NULL;
	if (!buf || fread(buf, 1, n, f) != n ||
	    fnv(fnv(1469598103934665603ULL, hdr + 8, 24), buf, n) !=
		    kq_get64le(hdr + 32)) {
		fclose(f);
		free(buf);
		kq__error("%s: damaged snapshot (bad length or checksum)",
			  path);
		return KQ_ECORRUPT;
	}
	fclose(f);
	*index = kq_get64le(hdr + 8);
	*term = kq_get64le(hdr + 16);
	*data = buf;
	*len = n;
	return 0;
}
