/* Syncs of many logs at once: one syncfs() per filesystem makes every
 * log's writes durable with one journal commit, where a sync per log
 * costs an fdatasync per written file.  With fsync always and writes
 * spread over thousands of partitions, that is the difference between
 * the disk's syncs per second and its bandwidth.  When syncfs() fails,
 * each log is synced file by file, so an error is told to the logs it
 * belongs to and to no other. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io.h"
#include "log.h"

/* Filesystems one call syncs at most with syncfs(); logs on others are
 * synced file by file. */
#define MAX_DEVS 8

struct pending {
	uint64_t next, gen;
	bool dir;		  /* the folder needs an fsync too */
	struct kq__sfile **files; /* written since the last sync */
	size_t nfiles;
};

/* Takes log's written files off its list (their references with them):
 * what was appended before is what this sync makes durable. */
static int take(struct kq_log *log, struct pending *pd)
{
	size_t cap = 0;
	int rv;

	memset(pd, 0, sizeof(*pd));
	pthread_mutex_lock(&log->mu);
	rv = log->failed;
	pd->next = log->next;
	pd->gen = log->gen;
	pd->dir = log->dir_dirty;
	log->dir_dirty = false;
	while (rv == 0 && log->dirty != NULL) {
		struct kq__sfile *f = log->dirty;

		if (pd->nfiles == cap) {
			size_t ncap = cap ? 2 * cap : 4;
			struct kq__sfile **nf =
				realloc(pd->files, ncap * sizeof(*nf));

			if (nf == NULL) {
				rv = -ENOMEM;
				break;
			}
			pd->files = nf;
			cap = ncap;
		}
		log->dirty = f->dnext;
		f->dirty = false;
		f->dnext = NULL;
		pd->files[pd->nfiles++] = f;
	}
	pthread_mutex_unlock(&log->mu);
	/* Files taken off the list are synced by no one else: the log
	 * refuses writes until it is reopened from what is durable. */
	if (rv == -ENOMEM)
		kq__log_fail(log, rv, "out of memory to sync");
	return rv;
}

/* syncfs() of the filesystem of each log still in the running. */
static int sync_filesystems(struct kq_log **logs, size_t n, const int *status)
{
	dev_t devs[MAX_DEVS];
	size_t ndevs = 0;

	for (size_t i = 0; i < n; i++) {
		struct stat st;
		bool seen = false;
		int fd, rv = 0;

		if (status[i] != 0)
			continue;
		fd = kq__seg_io.openat(AT_FDCWD, logs[i]->dir,
				       O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0)
			return -errno;
		if (kq__seg_io.fstat(fd, &st) != 0) {
			rv = -errno;
		} else {
			for (size_t k = 0; k < ndevs; k++)
				seen = seen || devs[k] == st.st_dev;
			if (!seen && ndevs == MAX_DEVS)
				rv = -EXDEV;
			else if (!seen && kq__seg_io.syncfs(fd) != 0)
				rv = -errno;
			else if (!seen)
				devs[ndevs++] = st.st_dev;
		}
		kq__seg_io.close(fd);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* One log, file by file, as kq__log_sync() does. */
static int sync_files(struct kq_log *log, const struct pending *pd)
{
	for (size_t k = 0; k < pd->nfiles; k++)
		if (kq__seg_io.fdatasync(pd->files[k]->fd) != 0) {
			int rv = -errno;

			kq__log_fail(log, rv, "fdatasync: %s", strerror(-rv));
			return rv;
		}
	if (pd->dir) {
		int fd = kq__seg_io.openat(AT_FDCWD, log->dir,
					   O_RDONLY | O_DIRECTORY, 0),
		    rv = 0;

		if (fd < 0 || kq__seg_io.fsync(fd) != 0)
			rv = -errno;
		if (fd >= 0)
			kq__seg_io.close(fd);
		if (rv != 0) {
			kq__log_fail(log, rv, "fsync of the folder: %s",
				     strerror(-rv));
			return rv;
		}
	}
	return 0;
}

int kq__log_sync_many(struct kq_log **logs, size_t n, int *status)
{
	struct pending *pd = calloc(n ? n : 1, sizeof(*pd));
	bool never, flushed;

	if (pd == NULL) {
		for (size_t i = 0; i < n; i++)
			status[i] = kq__log_sync(logs[i]);
		return 0;
	}
	never = n && logs[0]->conf.fsync == KQ_SYNC_NEVER;
	for (size_t i = 0; i < n; i++)
		status[i] = take(logs[i], &pd[i]);
	flushed = never || sync_filesystems(logs, n, status) == 0;
	for (size_t i = 0; i < n; i++) {
		struct kq_log *log = logs[i];

		if (status[i] == 0 && !flushed)
			status[i] = sync_files(log, &pd[i]);
		for (size_t k = 0; k < pd[i].nfiles; k++)
			kq__sfile_unref(log, pd[i].files[k]);
		free(pd[i].files);
		if (status[i] != 0)
			continue;
		pthread_mutex_lock(&log->mu);
		if (log->gen == pd[i].gen && pd[i].next > log->durable_next)
			log->durable_next = pd[i].next;
		/* A failure elsewhere meanwhile is not this sync's success. */
		if (log->failed != 0)
			status[i] = log->failed;
		pthread_mutex_unlock(&log->mu);
	}
	free(pd);
	return 0;
}
