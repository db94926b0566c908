/* A standalone broker keeps the highest subscription id limit it ever
 * applied in <dir>/sub_ids, so that ids are not handed out twice even when
 * the metadata log is deleted by hand.  (In a cluster the metadata comes
 * back from the other brokers.) */
#include "idfloor.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

uint64_t kq__idfloor_load(const char *dir)
{
	char path[4096];
	unsigned long long v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/sub_ids", dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	return v;
}

int kq__idfloor_save(const char *dir, uint64_t floor)
{
	char path[4096], tmp[4200], text[32];
	int fd, n, rv = 0;

	snprintf(path, sizeof(path), "%s/sub_ids", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	n = snprintf(text, sizeof(text), "%" PRIu64 "\n", floor);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	errno = 0; /* a short write sets none */
	if (write(fd, text, (size_t)n) != n || fsync(fd) != 0)
		rv = errno ? -errno : -EIO;
	close(fd);
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv != 0) {
		unlink(tmp);
		return rv;
	}
	/* The rename is durable once the folder is. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rv = -errno;
	close(fd);
	return rv;
}
