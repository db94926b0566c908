/* Opening a log (its folder listed, its segments loaded, the newest
 * recovered by recover.c) and closing it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <kafkaesque/list.h>

#include "format.h"
#include "io.h"
#include "module.h"

/* Parses "<20 digits>.<ext>"; returns 1 and *base on a match. */
static int parse_name(const char *name, const char *ext, uint64_t *base)
{
	uint64_t v = 0;

	for (int i = 0; i < 20; i++) {
		unsigned d = (unsigned char)name[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	if (name[20] != '.' || strcmp(name + 21, ext) != 0)
		return 0;
	*base = v;
	return 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct u64s {
	uint64_t *v;
	size_t n, cap;
};

static int u64s_push(const struct kq_host *host, struct u64s *a, uint64_t x)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint64_t *v = host->realloc(a->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n++] = x;
	return 0;
}

/* Lists the folder: segment bases of .log files, sorted, in *logs;
 * removes leftover temporary files and indexes without a log. */
static int list_dir(struct kq_log *log, struct u64s *logs)
{
	const struct kq_host *host = log->host;
	struct u64s idx = {0};
	struct dirent *de;
	DIR *d;
	int rv = 0, err;

	d = kq__seg_io.opendir(log->dir);
	err = errno;
	/* Out of descriptors (clients can take them all), as an open
	 * within the bound would: a few held ones go, and once more. */
	if (d == NULL && kq__seg_fds_shed(log->fds, &log->slot, err)) {
		d = kq__seg_io.opendir(log->dir);
		err = errno;
	}
	if (d == NULL)
		return -err;
	while (rv == 0 && (de = kq__seg_io.readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		uint64_t base;

		if (parse_name(de->d_name, "log", &base))
			rv = u64s_push(host, logs, base);
		else if (parse_name(de->d_name, "index", &base))
			rv = u64s_push(host, &idx, base);
		else if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0)
			kq__seg_log_unlinkat(log, de->d_name, 0);
	}
	kq__seg_io.closedir(d);
	if (rv == 0 && logs->n > 0)
		qsort(logs->v, logs->n, sizeof(uint64_t), cmp_u64);
	for (size_t i = 0; rv == 0 && i < idx.n; i++) {
		char name[32];

		if (logs->n > 0 && bsearch(&idx.v[i], logs->v, logs->n,
					   sizeof(uint64_t), cmp_u64) != NULL)
			continue;
		kq__seg_name(name, idx.v[i], "index");
		kq__seg_log_unlinkat(log, name, 0);
	}
	host->free(idx.v);
	return rv;
}

/* `fresh`: the folder was just created, and the first segment's syncs
 * are left to kq__seg_log_settle(). */
static int load(struct kq_log *log, bool fresh)
{
	struct u64s bases = {0};
	struct kq__seg *seg;
	int rv = list_dir(log, &bases);

	/* First: a log whose segments are all gone still keeps them. */
	if (rv == 0)
		rv = kq__seg_lost_load(log);
	if (rv != 0)
		goto out;
	if (bases.n == 0) {
		rv = kq__seg_create(log, 0, false, &seg);
		if (rv != 0)
			goto out;
		rv = kq__seg_log_push_seg(log, seg);
		if (rv != 0) {
			kq__seg_free(log, seg);
			goto out;
		}
		if (fresh) {
			/* For settling file by file, if it comes to that. */
			pthread_mutex_lock(&log->mu);
			log->dir_dirty = true;
			kq__seg_sfile_mark(log, seg->file);
			pthread_mutex_unlock(&log->mu);
			/* Only a shortcut for the first save: without it,
			 * that save replaces the file whole. */
			rv = kq__seg_log_make_hard_state(log);
			if (rv != 0)
				log->host->log(log->host, KQ_LOG_WARN,
					       "%s/raft.state: not made at "
					       "creation: %s",
					       log->dir, kq_strerror(rv));
			rv = 0;
			goto out;
		}
		if (kq__seg_io.fdatasync(seg->file->fd) != 0 ||
		    kq__seg_log_dirfd(log) < 0 ||
		    kq__seg_io.fsync(log->dirfd) != 0)
			rv = -errno;
		goto out;
	}
	for (size_t i = 0; i < bases.n; i++) {
		seg = kq__seg_new(log, bases.v[i]);
		if (seg == NULL || kq__seg_log_push_seg(log, seg) != 0) {
			kq__seg_free(log, seg);
			rv = -ENOMEM;
			goto out;
		}
		if (i + 1 < bases.n) {
			struct stat st;
			char name[32];

			seg->sealed = true;
			kq__seg_name(name, seg->base, "log");
			if (kq__seg_log_fstatat(log, name, &st) != 0) {
				rv = -errno;
				goto out;
			}
			seg->size = (uint64_t)st.st_size;
		}
	}
	rv = kq__seg_recover_newest(log, log->segs[log->nsegs - 1]);
out:
	log->host->free(bases.v);
	if (rv == 0) {
		kq__seg_log_set_next(log, false);
		log->durable_next = log->next;
		kq__seg_log_refresh_first(log);
	}
	return rv;
}

/* Creates the folder when missing (*made then).  Returns 0 or -errno. */
static int make_dir(struct kq_log *log, bool *made)
{
	*made = false;
	if (kq__seg_io.mkdir(log->dir, 0755) != 0)
		return errno == EEXIST ? 0 : -errno;
	*made = true;
	return 0;
}

int kq__seg_log_open(void *state, const char *dir,
		     const struct kq_log_options *opts, struct kq_log **out)
{
	struct kq__seg_module *mod = state;
	const struct kq_host *host = mod->host;
	struct kq_log *log;
	bool made, fresh, newfs, usable;
	int rv;

	if (opts != NULL &&
	    ((opts->segment_bytes != 0 && opts->segment_bytes < 4096) ||
	     opts->retention_ms < -1 || opts->retention_bytes < -1)) {
		host->log(host, KQ_LOG_ERROR,
			  "%s: bad log options (segment_bytes below 4096 or "
			  "retention below -1)",
			  dir);
		return KQ_EBADARG;
	}
	log = host->malloc(sizeof(*log));
	if (log == NULL)
		return -ENOMEM;
	memset(log, 0, sizeof(*log));
	log->host = host;
	log->conf = mod->conf;
	if (opts != NULL) {
		if (opts->segment_bytes != 0)
			log->conf.segment_bytes = opts->segment_bytes;
		log->conf.retention_ms = opts->retention_ms;
		log->conf.retention_bytes = opts->retention_bytes;
		log->conf.unsynced = opts->unsynced != 0;
	}
	log->fds = &mod->fds;
	log->slot.log = log;
	log->dirfd = -1;
	pthread_mutex_init(&log->mu, NULL);
	log->dir = host->malloc(strlen(dir) + 1);
	if (log->dir == NULL) {
		rv = -ENOMEM;
		goto fail;
	}
	strcpy(log->dir, dir);
	rv = make_dir(log, &made);
	if (rv != 0)
		goto fail;
	if (kq__seg_log_dirfd(log) < 0) {
		rv = -errno;
		goto fail;
	}
	/* Settled later, with the other logs opened meanwhile, where one
	 * syncfs() can do it; at once otherwise (and for the log whose
	 * folder was made before the module held its file system).  An
	 * old log is settled too: its name may never have been durable if
	 * a settle failed (or never came) before; file by file without
	 * syncfs(). */
	newfs = kq__seg_fsys_attach(mod, log);
	usable = kq__seg_fsys_usable(log->fsys);
	fresh = made && usable && !newfs;
	if (made && !fresh) {
		rv = kq__seg_log_sync_parent(log);
		if (rv != 0)
			goto fail;
	}
	log->hs_unread = made;
	rv = load(log, fresh);
	if (rv != 0)
		goto fail;
	/* A log made and synced here just now has nothing to settle. */
	if (usable && (fresh || !made))
		__atomic_store_n(&log->settle_no,
				 __atomic_add_fetch(&log->fsys->created, 1,
						    __ATOMIC_ACQ_REL),
				 __ATOMIC_RELEASE);
	else if (!made)
		log->settle_no = UINT64_MAX;
	*out = log;
	return 0;
fail:
	host->log(host, KQ_LOG_ERROR, "%s: cannot open the log: %s", dir,
		  kq_strerror(rv));
	if (log->dir == NULL) {
		pthread_mutex_destroy(&log->mu);
		host->free(log);
	} else {
		kq__seg_log_close(log);
	}
	return rv;
}

void kq__seg_log_close(struct kq_log *log)
{
	const struct kq_host *host = log->host;

	kq__seg_log_report(log);
	/* A failed fdatasync leaves its pages in the cache, marked clean
	 * though never written: reopened, even by another process, the log
	 * would read them and a fresh descriptor's sync would pass them as
	 * durable.  Under fsync "always" none of them was acknowledged. */
	if (kq__seg_log_failed(log) != 0 && log->conf.fsync == KQ_SYNC_ALWAYS) {
		int rv = kq__seg_log_drop_unsynced(log);

		if (rv != 0)
			host->log(host, KQ_LOG_WARN,
				  "%s: cannot drop the records no sync made "
				  "durable: %s",
				  log->dir, kq_strerror(rv));
	}
	/* Reopened, the log would not know it was never settled. */
	if (kq__seg_log_failed(log) == 0 && kq__seg_log_settle(log) != 0)
		kq__seg_log_report(log);
	if (log->nsegs > 0 && kq__seg_log_failed(log) == 0) {
		int rv = kq__seg_flush_index(log, log->segs[log->nsegs - 1]);

		if (rv != 0)
			host->log(host, KQ_LOG_WARN,
				  "%s: writing the index: %s", log->dir,
				  kq_strerror(rv));
	}
	for (size_t i = 0; i < log->nsegs; i++)
		kq__seg_free(log, log->segs[i]);
	while (log->dirty != NULL) {
		struct kq__seg_sfile *f = log->dirty;

		KQ_LIST_REMOVE_BY(log->dirty, f, dprev, dnext);
		f->dirty = false;
		kq__seg_sfile_unref(log, f);
	}
	if (log->dirfd >= 0) {
		kq__seg_io.close(log->dirfd);
		kq__seg_fds_count(log->fds, &log->slot, -1);
	}
	kq__seg_fds_unlink(log->fds, &log->slot);
	host->free(log->segs);
	host->free(log->wbuf);
	host->free(log->rbuf);
	host->free(log->dir);
	pthread_mutex_destroy(&log->mu);
	host->free(log);
}
