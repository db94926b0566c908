/* The segment module under injected I/O failures: every write, sync,
 * rename or truncate of a workload failed in turn (EIO, ENOSPC, short
 * writes), then the log reopened: no synced record may be missing, no
 * garbage may be readable, and the failed log must refuse appends. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/resource.h>

#include <cmocka.h>

#include <kafkaesque/storage.h>

#include "../../plugins/segment/io.h"
#include "../../plugins/segment/module.h"

#include "../fake_host.h"

#include "test_segment.h"

enum fop {
	F_NONE,
	F_PWRITE,
	F_FDATASYNC,
	F_FSYNC,
	F_FTRUNCATE,
	F_RENAME,
	F_CREATE, /* openat with O_CREAT */
	F_SYNCFS,
	F_ANY,	   /* any of the above */
	F_OPEN,	   /* any openat (not part of F_ANY) */
	F_LISTDIR, /* opendir (not part of F_ANY) */
	F_OPENDIR, /* counted only: openat with O_DIRECTORY */
	F_COUNT,
};

static struct {
	enum fop op;
	long nth; /* fail the nth matching call, 1-based */
	int err;
	bool shortw; /* pwrite: write half and return that */
	bool sticky; /* every later matching call fails too */
	long seen;
	bool fired;
	bool no_ftruncate;   /* ftruncate fails once the fault fired */
	long calls[F_COUNT]; /* calls made of each, while injecting */
} fi;

static struct kq__seg_io real;
static bool swapped; /* kq__seg_io holds fault functions; real the calls */

static bool fire(enum fop op)
{
	fi.calls[op]++;
	if (fi.op == F_NONE ||
	    (fi.op != op &&
	     (fi.op != F_ANY || op == F_OPEN || op == F_LISTDIR)))
		return false;
	if (fi.fired)
		return fi.sticky;
	if (++fi.seen < fi.nth)
		return false;
	fi.fired = true;
	return true;
}

static ssize_t f_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	/* A short write is retried for the rest; a disk that wrote half
	 * refuses the rest, as a full one does. */
	static int refuse_rest;

	if (refuse_rest) {
		refuse_rest = 0;
		errno = fi.err;
		return -1;
	}
	if (fire(F_PWRITE)) {
		if (fi.shortw && n > 1) {
			refuse_rest = 1;
			return real.pwrite(fd, buf, n / 2, off);
		}
		errno = fi.err;
		return -1;
	}
	return real.pwrite(fd, buf, n, off);
}

static int f_fdatasync(int fd)
{
	if (fire(F_FDATASYNC)) {
		errno = fi.err;
		return -1;
	}
	return real.fdatasync(fd);
}

static int f_fsync(int fd)
{
	if (fire(F_FSYNC)) {
		errno = fi.err;
		return -1;
	}
	return real.fsync(fd);
}

static int f_syncfs(int fd)
{
	if (fire(F_SYNCFS)) {
		errno = fi.err;
		return -1;
	}
	return real.syncfs(fd);
}

static int f_ftruncate(int fd, off_t len)
{
	if (fire(F_FTRUNCATE) || (fi.no_ftruncate && fi.fired)) {
		errno = fi.err;
		return -1;
	}
	return real.ftruncate(fd, len);
}

static int f_renameat(int a, const char *b, int c, const char *d)
{
	if (fire(F_RENAME)) {
		errno = fi.err;
		return -1;
	}
	return real.renameat(a, b, c, d);
}

static int f_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	if (flags & O_DIRECTORY)
		fi.calls[F_OPENDIR]++;
	if (fire(F_OPEN)) {
		errno = fi.err;
		return -1;
	}
	if ((flags & O_CREAT) && fire(F_CREATE)) {
		errno = fi.err;
		return -1;
	}
	return real.openat(dirfd, path, flags, mode);
}

static DIR *f_opendir(const char *path)
{
	if (fire(F_LISTDIR)) {
		errno = fi.err;
		return NULL;
	}
	return real.opendir(path);
}

static long nreads;	/* pread calls while injecting */
static uint64_t nbytes; /* bytes they returned */

static ssize_t f_pread(int fd, void *buf, size_t n, off_t off)
{
	ssize_t r = real.pread(fd, buf, n, off);

	nreads++;
	if (r > 0)
		nbytes += (uint64_t)r;
	return r;
}

static void inject(enum fop op, long nth, int err)
{
	memset(&fi, 0, sizeof(fi));
	fi.op = op;
	fi.nth = nth;
	fi.err = err;
	if (!swapped)
		real = kq__seg_io;
	swapped = true;
	kq__seg_io.pwrite = f_pwrite;
	kq__seg_io.fdatasync = f_fdatasync;
	kq__seg_io.fsync = f_fsync;
	kq__seg_io.syncfs = f_syncfs;
	kq__seg_io.ftruncate = f_ftruncate;
	kq__seg_io.renameat = f_renameat;
	kq__seg_io.openat = f_openat;
	kq__seg_io.opendir = f_opendir;
	kq__seg_io.pread = f_pread;
	nreads = 0;
	nbytes = 0;
}

static void restore(void)
{
	if (swapped)
		kq__seg_io = real;
	swapped = false;
	fi.op = F_NONE;
}

/* After a reopen: offsets 0..n-1 without a hole, each record intact
 * (t_read_all checks contents), at least `acked` of them. */
static size_t check_reopened(void *mod, const char *dir, uint64_t acked,
			     uint64_t appended)
{
	static uint64_t offs[4096];
	struct kq_log *log = t_open(mod, dir, 4096);
	size_t n;
	int rv;

	n = t_read_all(log, 0, offs, 4096, &rv, NULL);
	assert_int_equal(rv, 0);
	for (size_t i = 0; i < n && i < 4096; i++)
		assert_int_equal(offs[i], i);
	if (n < acked)
		fail_msg("acknowledged records lost: %zu of %llu", n,
			 (unsigned long long)acked);
	assert_true(n <= appended);
	assert_int_equal(t_ops->next_offset(log), n);
	/* And the reopened log accepts appends. */
	assert_int_equal(t_append(log, n, 5, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	return n;
}

/* The basic cases, each spelled out. */
static void single_write_fault(int err, bool shortw, bool no_ftruncate)
{
	size_t n;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	static uint64_t offs[512];
	int rv, before;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_append(log, 0, 100, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	inject(F_PWRITE, 1, err);
	fi.shortw = shortw;
	fi.no_ftruncate = no_ftruncate;
	before = kq__test_nlogs;
	rv = t_append(log, 100, 3, 1);
	assert_true(rv < 0);
	assert_true(kq__test_nlogs == before + 1); /* the reason, logged once */
	assert_int_equal(t_append(log, 100, 3, 1), KQ_EUNAVAILABLE);
	assert_int_equal(t_append(log, 200, 3, 1), KQ_EUNAVAILABLE);
	assert_true(t_ops->sync(log) != 0);
	assert_true(t_ops->truncate(log, 50) != 0);
	assert_int_equal(kq__test_nlogs, before + 1);
	/* Reads still serve what was synced. */
	assert_int_equal(t_read_all(log, 0, offs, 512, &rv, NULL), 100);
	assert_int_equal(rv, 0);
	restore();
	t_ops->close(log);
	/* The failed write's complete records may survive it when its
	 * partial tail was left behind, never a partial one. */
	n = check_reopened(mod, dir, 100, 103);
	if (!no_ftruncate)
		assert_int_equal(n, 100);
	t_module_free(mod);
	t_rmrf(dir);
}

static void test_write_eio(void **state)
{
	single_write_fault(EIO, false, false);
}

static void test_write_enospc(void **state)
{
	single_write_fault(ENOSPC, false, false);
}

static void test_short_write(void **state)
{
	single_write_fault(EIO, true, false);
}

static void test_short_write_left_behind(void **state)
{
	/* The half record stays in the file: recovery cuts it. */
	single_write_fault(EIO, true, true);
}

static int skip_cb(void *ctx, const struct kq_record *rec)
{
	(void)ctx, (void)rec;
	return 0;
}

/* A log in `dir` with 100 records synced, then 50 whose sync failed. */
static struct kq_log *fail_second_sync(void *mod, const char *dir,
				       uint64_t segment_bytes)
{
	struct kq_log *log = t_open(mod, dir, segment_bytes);

	assert_int_equal(t_append(log, 0, 100, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	assert_int_equal(t_append(log, 100, 50, 1), 0);
	inject(F_FDATASYNC, 1, EIO);
	assert_int_equal(t_ops->sync(log), -EIO);
	return log;
}

static void test_fdatasync_eio(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	static uint64_t offs[512];
	uint64_t next;
	int rv;

	t_mkdtemp(dir);
	log = fail_second_sync(mod, dir, 1 << 20);
	/* Never retried into success, even once the disk is back. */
	restore();
	assert_true(t_ops->sync(log) != 0);
	assert_true(t_ops->sync(log) != 0);
	assert_int_equal(t_append(log, 150, 1, 1), KQ_EUNAVAILABLE);
	/* Only what the last good sync covered is served. */
	assert_int_equal(t_read_all(log, 0, offs, 512, &rv, NULL), 100);
	assert_int_equal(t_ops->next_offset(log), 150);
	/* Past it the log says it cannot serve, not that nothing is there:
	 * a consumer would take that for a gap and skip 100..149. */
	assert_int_equal(
		t_ops->read(log, 100, 150, 1 << 20, skip_cb, NULL, &next),
		KQ_EUNAVAILABLE);
	assert_int_equal(next, 100);
	t_ops->close(log);
	check_reopened(mod, dir, 100, 150);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Records whose fdatasync failed stay in the page cache, marked clean
 * though never written: a fresh descriptor's sync then succeeds without
 * writing them, and a restarted broker would count them durable.  Under
 * fsync "always" nothing past the last good sync was acknowledged, so
 * closing the failed log drops it, new segments included; under
 * "interval" the records were acknowledged when written, and stay. */
static void test_failed_sync_dropped_at_close(void **state)
{
	static const char *const conf[] = {"{\"fsync\": \"always\"}",
					   "{\"fsync\": \"interval\"}"};
	static const uint64_t left[] = {100, 150};

	for (int i = 0; i < 2; i++) {
		void *mod = t_module(conf[i]);
		struct kq_log *log;
		char dir[64];

		t_mkdtemp(dir);
		log = fail_second_sync(mod, dir, 4096); /* they roll */
		restore();
		t_ops->close(log);
		assert_int_equal(check_reopened(mod, dir, left[i], 150),
				 left[i]);
		t_module_free(mod);
		t_rmrf(dir);
	}
}

/* A workload of appends (rolling segments), syncs, a truncation and a
 * hard state save; returns the number of I/O calls of `op` it made. */
struct run {
	uint64_t acked;	   /* below this every record was synced */
	uint64_t appended; /* highest offset + 1 ever passed to append */
	bool failed;
};

static void workload(struct kq_log *log, struct run *r)
{
	uint64_t next = 0;

	memset(r, 0, sizeof(*r));
	for (int batch = 0; batch < 24; batch++) {
		int rv;

		/* A failed append may still have written some records. */
		if (next + 25 > r->appended)
			r->appended = next + 25;
		rv = t_append(log, next, 25, 1);
		if (rv != 0) {
			assert_true(rv < 0);
			r->failed = true;
			return;
		}
		next += 25;
		if (batch % 2 == 1) {
			if (t_ops->sync(log) != 0) {
				r->failed = true;
				return;
			}
			r->acked = next;
		}
		if (batch == 9 || batch == 17) {
			struct kq_hard_state hs = {(uint64_t)batch, 1};

			/* Dropped records count as gone once asked for. */
			next -= 40;
			if (r->acked > next)
				r->acked = next;
			if (t_ops->truncate(log, next) != 0) {
				r->failed = true;
				return;
			}
			if (t_ops->save_hard_state(log, &hs) != 0) {
				r->failed = true;
				return;
			}
		}
	}
}

static void sweep(enum fop op, int err, bool shortw, bool sticky)
{
	void *mod = t_module(NULL);
	long calls = 0;

	for (long nth = 1;; nth++) {
		char dir[64];
		struct kq_log *log;
		struct run r;
		bool fired;
		size_t n;

		t_mkdtemp(dir);
		log = t_open(mod, dir, 4096);
		inject(op, nth, err);
		fi.shortw = shortw;
		fi.sticky = sticky;
		workload(log, &r);
		fired = fi.fired;
		if (fired) {
			/* A failure fails the log: no more appends. */
			assert_true(r.failed);
			assert_int_equal(t_append(log, r.appended + 1000, 1, 1),
					 KQ_EUNAVAILABLE);
			assert_true(t_ops->sync(log) != 0);
		} else {
			assert_false(r.failed);
			calls = fi.seen;
		}
		restore();
		t_ops->close(log);
		n = check_reopened(mod, dir, r.acked, r.appended);
		/* A failed fdatasync, under fsync "always": what no sync
		 * covered is gone, since its pages may never reach the
		 * disk.  (Other failures may leave records that a sync did
		 * cover, such as a truncation's, or a sync's whose settle
		 * failed after its fdatasync.) */
		if (fired && op == F_FDATASYNC && n != r.acked)
			fail_msg("call %ld failed: %zu records back, %llu "
				 "synced",
				 nth, n, (unsigned long long)r.acked);
		t_rmrf(dir);
		if (!fired)
			break;
	}
	assert_true(calls > 0);
	t_module_free(mod);
}

static void test_sweep_pwrite(void **state)
{
	sweep(F_PWRITE, EIO, false, false);
	sweep(F_PWRITE, ENOSPC, false, true);
	sweep(F_PWRITE, EIO, true, false);
}

static void test_sweep_fdatasync(void **state)
{
	sweep(F_FDATASYNC, EIO, false, false);
	sweep(F_FDATASYNC, EIO, false, true);
}

static void test_sweep_fsync(void **state)
{
	sweep(F_FSYNC, EIO, false, false);
}

static void test_sweep_ftruncate(void **state)
{
	sweep(F_FTRUNCATE, EIO, false, false);
}

static void test_sweep_rename(void **state)
{
	sweep(F_RENAME, EIO, false, false);
}

static void test_sweep_create(void **state)
{
	sweep(F_CREATE, ENOSPC, false, false);
}

static void test_sweep_any(void **state)
{
	sweep(F_ANY, EIO, false, true);
}

/* sync() flushes under every policy: the policy is the core's, which
 * reads it through sync_policy and decides when to call sync() (under
 * "never" only at a graceful stop, whose last sync must be real). */
static void test_policies(void **state)
{
	static const char *const conf[] = {
		"{\"fsync\": \"never\", \"syncfs\": false}",
		"{\"fsync\": \"interval\", \"syncfs\": false}",
		"{\"fsync\": \"always\", \"syncfs\": false}"};

	for (int i = 0; i < 3; i++) {
		char dir[64];
		void *mod = t_module(conf[i]);
		struct kq_log *log;

		t_mkdtemp(dir);
		log = t_open(mod, dir, 1 << 20);
		assert_int_equal(t_append(log, 0, 10, 1), 0);
		inject(F_FDATASYNC, 1, EIO);
		assert_int_equal(t_ops->sync(log), -EIO);
		assert_true(fi.fired);
		restore();
		t_ops->close(log);
		t_module_free(mod);
		t_rmrf(dir);
	}
}

/* A log the core syncs only before closing it (kq_log_options.unsynced,
 * fsync "never") is kept within the descriptor bound by closing written
 * files unsynced: no fdatasync runs while appends go round 40 logs with
 * room for 16 descriptors.  A log whose syncs are awaited syncs such a
 * file before closing it instead (here without syncfs(), see
 * test_room_made_with_syncfs). */
static void test_unsynced_closes_without_sync(void **state)
{
	for (int unsynced = 1; unsynced >= 0; unsynced--) {
		struct kq_log_options opts = {.segment_bytes = 1 << 20,
					      .retention_ms = -1,
					      .retention_bytes = -1,
					      .unsynced = unsynced};
		void *mod = t_module("{\"open_files\": 16, \"syncfs\": false}");
		struct kq_log *logs[40];
		char top[64], dir[96];
		int failed = 0;

		t_mkdtemp(top);
		for (int i = 0; i < 40; i++) {
			snprintf(dir, sizeof(dir), "%s/n%d", top, i);
			assert_int_equal(t_ops->open(mod, dir, &opts, &logs[i]),
					 0);
		}
		inject(F_FDATASYNC, 1, EIO);
		fi.sticky = true;
		for (int round = 0; round < 3; round++)
			for (int i = 0; i < 40; i++)
				failed |=
					t_append(logs[i], (uint64_t)round * 10,
						 10, 1) != 0;
		assert_int_equal(fi.fired, !unsynced);
		assert_int_equal(failed, !unsynced);
		restore();
		for (int i = 0; i < 40; i++)
			t_ops->close(logs[i]);
		t_module_free(mod);
		t_rmrf(top);
	}
}

/* A fresh folder `top` (64 bytes) with the module's first log in it,
 * which takes the module's file system: logs made after it are new
 * ones, left to be settled. */
static struct kq_log *open_first(void *mod, char *top)
{
	char dir[96];

	t_mkdtemp(top);
	snprintf(dir, sizeof(dir), "%s/first", top);
	return t_open(mod, dir, 1 << 20);
}

/* Logs created together are settled together: opening new logs (after
 * the one whose folder was made before the module held its file system)
 * makes no sync at all; the first durable write of any of them (here a
 * hard state) is one syncfs(), which settles them all, so the others'
 * first hard states sync only themselves: raft.state, made by open()
 * and settled with the rest, is written in place, one fdatasync with no
 * file created, renamed or folder fsync'd.  A log alone not yet settled
 * is settled file by file, at its first sync or at its close. */
static void test_new_logs_settle_together(void **state)
{
	void *mod = t_module(NULL);
	struct kq_hard_state hs = {1, 2};
	struct kq_log *logs[11];
	char top[64], dir[96];

	logs[10] = open_first(mod, top);
	inject(F_NONE, 0, 0);
	for (int i = 0; i < 10; i++) {
		snprintf(dir, sizeof(dir), "%s/n%d", top, i);
		logs[i] = t_open(mod, dir, 1 << 20);
	}
	assert_int_equal(fi.calls[F_SYNCFS] + fi.calls[F_FDATASYNC] +
				 fi.calls[F_FSYNC],
			 0);
	inject(F_NONE, 0, 0);
	assert_int_equal(t_ops->save_hard_state(logs[3], &hs), 0);
	assert_int_equal(fi.calls[F_SYNCFS], 1);
	for (int i = 0; i < 9; i++)
		assert_int_equal(t_ops->save_hard_state(logs[i], &hs), 0);
	assert_int_equal(fi.calls[F_SYNCFS], 1);
	assert_int_equal(fi.calls[F_FDATASYNC], 10);
	assert_int_equal(
		fi.calls[F_FSYNC] + fi.calls[F_RENAME] + fi.calls[F_CREATE], 0);
	for (int i = 0; i < 9; i++) {
		struct kq_hard_state got;

		assert_int_equal(t_ops->load_hard_state(logs[i], &got), 0);
		assert_int_equal(got.term, 1);
		assert_int_equal(got.vote, 2);
	}
	/* Opened after that syncfs(): settled by its close. */
	snprintf(dir, sizeof(dir), "%s/late", top);
	t_ops->close(logs[9]);
	inject(F_NONE, 0, 0);
	logs[9] = t_open(mod, dir, 1 << 20);
	/* Its first sync too: one log is no reason for a syncfs(). */
	assert_int_equal(t_append(logs[9], 0, 10, 1), 0);
	assert_int_equal(t_ops->sync(logs[9]), 0);
	t_ops->close(logs[9]);
	assert_int_equal(fi.calls[F_SYNCFS], 0);
	assert_true(fi.calls[F_FDATASYNC] >= 1);
	assert_true(fi.calls[F_FSYNC] >= 2);
	restore();
	for (int i = 0; i < 9; i++)
		t_ops->close(logs[i]);
	t_ops->close(logs[10]);
	t_module_free(mod);
	t_rmrf(top);
}

/* raft.state made with a new log is only a shortcut: when it cannot be
 * made (here the disk is full), the log opens all the same, and its
 * first save replaces the file whole. */
static void test_new_log_without_state_file(void **state)
{
	void *mod = t_module(NULL);
	struct kq_hard_state hs = {4, 2}, got;
	struct kq_log *first, *log;
	char top[64], dir[96];

	(void)state;
	first = open_first(mod, top);
	snprintf(dir, sizeof(dir), "%s/new", top);
	inject(F_CREATE, 3, ENOSPC); /* .log, .index, raft.state */
	log = t_open(mod, dir, 1 << 20);
	assert_true(fi.fired);
	restore();
	assert_int_equal(t_file_size(dir, "raft.state"), UINT64_MAX);
	assert_int_equal(t_ops->save_hard_state(log, &hs), 0);
	assert_int_equal(t_file_size(dir, "raft.state"), 8192);
	t_ops->close(log);
	log = t_open(mod, dir, 1 << 20);
	assert_int_equal(t_ops->load_hard_state(log, &got), 0);
	assert_int_equal(got.term, 4);
	assert_int_equal(got.vote, 2);
	t_ops->close(log);
	t_ops->close(first);
	t_module_free(mod);
	t_rmrf(top);
}

struct save_thread {
	struct kq_log *log;
	int rv;
};

static void *save_main(void *arg)
{
	struct save_thread *t = arg;
	struct kq_hard_state hs = {1, 2};

	t->rv = t_ops->save_hard_state(t->log, &hs);
	return NULL;
}

/* A settle that waited for another syncfs() to end (its file system's
 * mutex held here meanwhile) finds its log covered by it, and runs no
 * syncfs() of its own. */
static void test_settle_behind_a_syncfs(void **state)
{
	void *mod = t_module(NULL);
	struct kq_log *first, *logs[8];
	struct save_thread t;
	struct kq__seg_fsys *fs;
	char top[64], dir[96];
	pthread_t th;

	(void)state;
	first = open_first(mod, top);
	for (int i = 0; i < 8; i++) {
		snprintf(dir, sizeof(dir), "%s/n%d", top, i);
		logs[i] = t_open(mod, dir, 1 << 20);
	}
	fs = logs[0]->fsys;
	inject(F_NONE, 0, 0);
	pthread_mutex_lock(&fs->mu);
	t.log = logs[0];
	t.rv = -1;
	assert_int_equal(pthread_create(&th, NULL, save_main, &t), 0);
	/* Long enough for the save to wait on the mutex; were it later, it
	 * would find its log settled before it, and this would pass as
	 * well. */
	usleep(100000);
	/* Another syncfs() that covered every log created so far. */
	assert_int_equal(real.syncfs(fs->fd), 0);
	__atomic_store_n(&fs->covered,
			 __atomic_load_n(&fs->created, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fs->mu);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.rv, 0);
	assert_int_equal(fi.calls[F_SYNCFS], 0);
	restore();
	for (int i = 0; i < 8; i++)
		t_ops->close(logs[i]);
	t_ops->close(first);
	t_module_free(mod);
	t_rmrf(top);
}

/* Reopened without syncfs() (off here; an older kernel alike), a log is
 * settled file by file at its first durable write: its folder and its
 * name in the parent, in case the settle of its creation never came
 * (a crash, a failed syncfs()).  Once: the next sync makes no fsync. */
static void test_reopened_log_settles(void **state)
{
	void *mod = t_module("{\"syncfs\": false}");
	struct kq_log *log;
	char dir[64];
	long fsyncs;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 1 << 20);
	t_ops->close(log);
	log = t_open(mod, dir, 1 << 20);
	inject(F_NONE, 0, 0);
	assert_int_equal(t_append(log, 0, 10, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	assert_true(fi.calls[F_FSYNC] >= 2);
	fsyncs = fi.calls[F_FSYNC];
	assert_int_equal(t_append(log, 10, 10, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	assert_int_equal(fi.calls[F_FSYNC], fsyncs);
	restore();
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Appends to log and syncs it, every open failing with err: the sync
 * succeeds, with one syncfs(). */
static void sync_without_descriptors(struct kq_log *log, int err)
{
	assert_int_equal(t_append(log, 0, 10, 1), 0);
	inject(F_OPEN, 1, err);
	fi.sticky = true;
	assert_int_equal(t_ops->sync(log), 0);
	assert_true(fi.fired);
	assert_int_equal(fi.calls[F_SYNCFS], 1);
	restore();
}

/* A log is settled by path (its folder and its parent; a new one's
 * raft.state too) at its first durable write: after a restart, or a new
 * log alone.  With the process out of descriptors (clients can take them
 * all) those opens fail: one syncfs(), whose descriptor the module holds
 * for good, stands for them, and the log does not fail. */
static void test_settle_out_of_descriptors(void **state)
{
	void *mod = t_module(NULL);
	struct kq_hard_state hs = {1, 2}, got;
	struct kq_log *first, *old, *young;
	char top[64], dir[96];

	(void)state;
	first = open_first(mod, top);
	snprintf(dir, sizeof(dir), "%s/old", top);
	old = t_open(mod, dir, 1 << 20);
	t_ops->close(old);
	old = t_open(mod, dir, 1 << 20);
	sync_without_descriptors(old, EMFILE);
	snprintf(dir, sizeof(dir), "%s/young", top);
	young = t_open(mod, dir, 1 << 20);
	sync_without_descriptors(young, ENFILE);
	/* Both go on as usual. */
	assert_int_equal(t_append(old, 10, 10, 1), 0);
	assert_int_equal(t_ops->sync(old), 0);
	hs.term = 2;
	assert_int_equal(t_ops->save_hard_state(young, &hs), 0);
	assert_int_equal(t_ops->load_hard_state(young, &got), 0);
	assert_int_equal(got.term, 2);
	t_ops->close(young);
	t_ops->close(old);
	t_ops->close(first);
	t_module_free(mod);
	t_rmrf(top);
}

/* Four logs l0..l3 in a new folder `top`, each with 10 records synced;
 * `dir` is left naming the last. */
static void open_four(void *mod, char *top, char *dir, struct kq_log **logs)
{
	t_mkdtemp(top);
	for (int i = 0; i < 4; i++) {
		snprintf(dir, 96, "%s/l%d", top, i);
		logs[i] = t_open(mod, dir, 1 << 20);
		assert_int_equal(t_append(logs[i], 0, 10, 1), 0);
		assert_int_equal(t_ops->sync(logs[i]), 0);
	}
}

/* Closes *log and opens it again: the hard state it then loads. */
static struct kq_hard_state reopen_hs(void *mod, const char *dir,
				      struct kq_log **log)
{
	struct kq_hard_state got;

	t_ops->close(*log);
	*log = t_open(mod, dir, 1 << 20);
	assert_int_equal(t_ops->load_hard_state(*log, &got), 0);
	return got;
}

/* Closes open_four()'s logs and removes them with the module. */
static void close_four(void *mod, const char *top, struct kq_log **logs)
{
	for (int i = 0; i < 4; i++)
		t_ops->close(logs[i]);
	t_module_free(mod);
	t_rmrf(top);
}

/* An open on the loop that finds no descriptor left (clients can take
 * them all) closes some the module holds, least recently used first, and
 * tries again: the log goes on instead of failing. */
static void test_open_sheds_descriptors(void **state)
{
	void *mod = t_module(NULL);
	struct kq__seg_module *m = mod;
	struct kq_hard_state hs = {3, 1}, got;
	struct kq_log *logs[4];
	char top[64], dir[96];
	unsigned held;

	(void)state;
	open_four(mod, top, dir, logs);
	held = m->fds.held;
	inject(F_OPEN, 1, EMFILE);
	assert_int_equal(t_ops->save_hard_state(logs[3], &hs), 0);
	assert_true(fi.fired);
	restore();
	assert_true(m->fds.held < held);
	assert_int_equal(t_ops->load_hard_state(logs[3], &got), 0);
	assert_int_equal(got.term, 3);
	/* The logs whose descriptors went reopen them when used. */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(t_append(logs[i], 10, 10, 1), 0);
		assert_int_equal(t_ops->sync(logs[i]), 0);
		t_ops->close(logs[i]);
	}
	t_module_free(mod);
	t_rmrf(top);
}

/* Four logs of a module of their own, for the staged hard state's
 * tests (open_four). */
struct four {
	void *mod;
	struct kq_log *logs[4];
	char top[64], dir[96];
};

static void four_open(struct four *f)
{
	f->mod = t_module(NULL);
	open_four(f->mod, f->top, f->dir, f->logs);
}

/* The same for a staged hard state: the process out of descriptors
 * when it is written sheds the module's, and the log does not fail. */
static void test_staged_open_sheds_descriptors(void **state)
{
	struct kq_hard_state hs = {3, 1}, got;
	struct four f;

	(void)state;
	four_open(&f);
	inject(F_OPEN, 1, EMFILE);
	assert_int_equal(t_ops->stage_hard_state(f.logs[3], &hs), 0);
	assert_int_equal(t_ops->sync(f.logs[3]), 0);
	assert_true(fi.fired);
	restore();
	got = reopen_hs(f.mod, f.dir, &f.logs[3]);
	assert_int_equal(got.term, 3);
	assert_int_equal(got.vote, 1);
	close_four(f.mod, f.top, f.logs);
}

/* The same for the listing of a log's folder when it opens (every log
 * at a restart, when peers and clients connect too): the log opens. */
static void test_listing_sheds_descriptors(void **state)
{
	struct four f;

	(void)state;
	four_open(&f);
	t_ops->close(f.logs[3]);
	inject(F_LISTDIR, 1, EMFILE);
	f.logs[3] = t_open(f.mod, f.dir, 1 << 20);
	assert_true(fi.fired);
	restore();
	assert_int_equal(t_append(f.logs[3], 10, 10, 1), 0);
	assert_int_equal(t_ops->sync(f.logs[3]), 0);
	close_four(f.mod, f.top, f.logs);
}

/* A full disk when a staged hard state is written, or a failed sync of
 * it: the log fails (the stage or the sync says so, never 0), and the
 * restart finds the last durable one. */
static void test_staged_hard_state_faults(void **state)
{
	struct kq_hard_state hs = {3, 1}, got;
	struct four f;

	(void)state;
	four_open(&f);
	assert_int_equal(t_ops->save_hard_state(f.logs[3], &hs), 0);
	hs = (struct kq_hard_state){4, 2};
	inject(F_PWRITE, 1, ENOSPC);
	assert_int_equal(t_ops->stage_hard_state(f.logs[3], &hs), -ENOSPC);
	restore();
	assert_int_equal(t_ops->stage_hard_state(f.logs[3], &hs),
			 KQ_EUNAVAILABLE);
	got = reopen_hs(f.mod, f.dir, &f.logs[3]);
	assert_int_equal(got.term, 3);
	/* Written, and its sync fails: the restart reads the disk. */
	assert_int_equal(t_ops->sync(f.logs[3]), 0); /* settles it */
	assert_int_equal(t_ops->stage_hard_state(f.logs[3], &hs), 0);
	inject(F_FDATASYNC, 1, EIO);
	assert_true(t_ops->sync(f.logs[3]) != 0);
	restore();
	got = reopen_hs(f.mod, f.dir, &f.logs[3]);
	assert_true(got.term == 3 || got.term == 4);
	close_four(f.mod, f.top, f.logs);
}

/* When the syncfs() that would settle new logs fails, the log being
 * settled is settled file by file: its first segment, the raft.state
 * open() made, its folder and its name in the parent folder; its hard
 * state is then saved in place. */
static void test_settle_without_syncfs(void **state)
{
	void *mod = t_module(NULL);
	struct kq_hard_state hs = {1, 2}, got;
	struct kq_log *first, *logs[8];
	char top[64], dir[96];

	first = open_first(mod, top);
	for (int i = 0; i < 8; i++) {
		snprintf(dir, sizeof(dir), "%s/new%d", top, i);
		logs[i] = t_open(mod, dir, 1 << 20);
	}
	inject(F_SYNCFS, 1, EIO);
	assert_int_equal(t_ops->save_hard_state(logs[0], &hs), 0);
	assert_true(fi.fired);
	/* The segment and raft.state, then the folder and the parent; then
	 * raft.state again for the save. */
	assert_int_equal(fi.calls[F_FDATASYNC], 3);
	assert_int_equal(fi.calls[F_FSYNC], 2);
	assert_int_equal(fi.calls[F_RENAME] + fi.calls[F_CREATE], 0);
	restore();
	assert_int_equal(t_ops->load_hard_state(logs[0], &got), 0);
	assert_int_equal(got.term, 1);
	for (int i = 0; i < 8; i++)
		t_ops->close(logs[i]);
	t_ops->close(first);
	t_module_free(mod);
	t_rmrf(top);
}

/* Opens n logs under a fresh folder `top` (64 bytes) of module mod,
 * each with 10 records appended and not synced. */
static void many_logs(void *mod, char *top, struct kq_log **logs, int n)
{
	char dir[96];

	t_mkdtemp(top);
	for (int i = 0; i < n; i++) {
		snprintf(dir, sizeof(dir), "%s/n%d", top, i);
		logs[i] = t_open(mod, dir, 1 << 20);
		assert_int_equal(t_append(logs[i], 0, 10, 1), 0);
	}
}

/* sync_many() of logs[0..n), which must succeed for each. */
static void sync_many_ok(void *mod, struct kq_log **logs, int n)
{
	int results[64];

	assert_true(n <= 64);
	assert_int_equal(t_ops->sync_many(mod, logs, (size_t)n, results), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(results[i], 0);
}

static void close_logs(void *mod, char *top, struct kq_log **logs, int n)
{
	for (int i = 0; i < n; i++)
		t_ops->close(logs[i]);
	t_module_free(mod);
	t_rmrf(top);
}

/* Appends going round 40 logs with room for 16 descriptors: once only
 * written files are left to close, one syncfs() makes them all durable
 * and they close without an fdatasync each.  Every log's sync() then
 * succeeds and its records are all there. */
static void test_room_made_with_syncfs(void **state)
{
	void *mod = t_module("{\"open_files\": 16}");
	struct kq_log *logs[40];
	char top[64];

	many_logs(mod, top, logs, 40);
	inject(F_NONE, 0, 0);
	for (int round = 1; round < 3; round++)
		for (int i = 0; i < 40; i++)
			assert_int_equal(
				t_append(logs[i], (uint64_t)round * 10, 10, 1),
				0);
	assert_true(fi.calls[F_SYNCFS] >= 1);
	assert_int_equal(fi.calls[F_FDATASYNC], 0);
	restore();
	for (int i = 0; i < 40; i++) {
		uint64_t offs[32], next;
		int rv;

		assert_int_equal(t_ops->sync(logs[i]), 0);
		assert_int_equal(t_read_all(logs[i], 0, offs, 32, &rv, &next),
				 30);
	}
	close_logs(mod, top, logs, 40);
}

/* 40 logs written and synced, with room for 16 descriptors; counting
 * calls from here.  Returns the module. */
static void *bounded_logs(char *top, struct kq_log **logs)
{
	void *mod = t_module("{\"open_files\": 16}");

	many_logs(mod, top, logs, 40);
	sync_many_ok(mod, logs, 40);
	inject(F_NONE, 0, 0);
	return mod;
}

/* While a worker's syncfs() runs (its file system's mutex held here),
 * the loop does not wait for it to make room: it syncs the oldest file
 * alone, as without syncfs(). */
static void test_room_made_beside_a_syncfs(void **state)
{
	struct kq_log *logs[40];
	char top[64];
	void *mod = bounded_logs(top, logs);

	pthread_mutex_lock(&logs[0]->fsys->mu);
	for (int i = 0; i < 40; i++)
		assert_int_equal(t_append(logs[i], 10, 10, 1), 0);
	pthread_mutex_unlock(&logs[0]->fsys->mu);
	assert_int_equal(fi.calls[F_SYNCFS], 0);
	assert_true(fi.calls[F_FDATASYNC] > 0);
	restore();
	sync_many_ok(mod, logs, 40);
	close_logs(mod, top, logs, 40);
}

/* Descriptors the process has open. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the listing's own */
}

struct many_thread {
	void *mod;
	struct kq_log **logs;
	int results[12];
	int rv;
};

static void *sync_many_main(void *arg)
{
	struct many_thread *t = arg;

	t->rv = t_ops->sync_many(t->mod, t->logs, 12, t->results);
	return NULL;
}

/* Whether log has nothing on its to-sync list (a sync took it all). */
static bool nothing_listed(struct kq_log *log)
{
	bool none;

	pthread_mutex_lock(&log->mu);
	none = log->dirty == NULL;
	pthread_mutex_unlock(&log->mu);
	return none;
}

/* A file a sync on a worker took stays open until that sync ends:
 * closing its segment to make room frees no descriptor, and the next
 * write to it opens a second one.  It stays counted against the bound
 * meanwhile.  Here a sync of 12 logs is held up (its syncfs() waits for
 * the mutex held here) while writes go round 28 other logs, with the
 * process allowed two descriptors past the bound: every write succeeds
 * and the bound holds.  Before, the sync's files went uncounted, the
 * process past the bound by as many (a broker with 2,000 partitions
 * under ulimit -n 512: 256 held and up to 176 more after a restart),
 * and a write failed with EMFILE, shedding having closed only holders
 * of files the sync kept open. */
static void test_bound_counts_files_being_synced(void **state)
{
	int base = open_fds();
	struct kq_log *logs[40];
	struct kq__seg_module *m;
	struct many_thread t;
	pthread_t th;
	char top[64];
	void *mod = bounded_logs(top, logs);
	struct rlimit was, rl;
	int open, failed = -1, rv = 0;
	unsigned held;

	(void)state;
	m = mod;
	restore();
	for (int i = 0; i < 12; i++)
		assert_int_equal(t_append(logs[i], 10, 10, 1), 0);
	pthread_mutex_lock(&logs[0]->fsys->mu);
	t.mod = mod;
	t.logs = logs;
	t.rv = -1;
	assert_int_equal(pthread_create(&th, NULL, sync_many_main, &t), 0);
	for (int i = 0; i < 12; i++)
		while (!nothing_listed(logs[i]))
			usleep(1000);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &was), 0);
	rl = was;
	rl.rlim_cur = (rlim_t)(base + (int)m->fds.limit + 2);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	for (int i = 12; i < 40 && failed < 0; i++)
		if ((rv = t_append(logs[i], 10, 10, 1)) != 0)
			failed = i;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &was), 0);
	open = open_fds() - base;
	held = m->fds.held;
	pthread_mutex_unlock(&logs[0]->fsys->mu);
	assert_int_equal(pthread_join(th, NULL), 0);
	if (failed >= 0)
		fail_msg("append to log %d: %s (%d descriptors open, %u "
			 "counted, bound %u)",
			 failed, kq_strerror(rv), open, held, m->fds.limit);
	/* One past it: the open that found only files in use left. */
	if (open > (int)m->fds.limit + 1)
		fail_msg("%d descriptors open, %u counted, bound %u", open,
			 held, m->fds.limit);
	assert_int_equal(t.rv, 0);
	for (int i = 0; i < 12; i++)
		assert_int_equal(t.results[i], 0);
	sync_many_ok(mod, logs, 40);
	assert_int_equal(open_fds() - base, (int)m->fds.held);
	for (int i = 0; i < 40; i++) {
		uint64_t offs[32], next;

		assert_int_equal(t_read_all(logs[i], 0, offs, 32, &rv, &next),
				 20);
	}
	close_logs(mod, top, logs, 40);
}

/* Appends going round 40 logs with room for 16 descriptors reopen
 * their segments' files, but never their folders: a folder closed to
 * stay within the bound is not opened again just to open a file in it. */
static void test_reopen_without_folder(void **state)
{
	struct kq_log *logs[40];
	char top[64];
	void *mod = bounded_logs(top, logs);

	for (int round = 1; round < 3; round++) {
		for (int i = 0; i < 40; i++)
			assert_int_equal(
				t_append(logs[i], (uint64_t)round * 10, 10, 1),
				0);
		sync_many_ok(mod, logs, 40);
	}
	assert_int_equal(fi.calls[F_OPENDIR], 0);
	restore();
	close_logs(mod, top, logs, 40);
}

/* sync_many() of 40 written logs is one syncfs(), with no fdatasync or
 * fsync; it leaves nothing to sync behind (each log's sync() then makes
 * no call), and each log's records stay readable. */
static void test_sync_many_one_syncfs(void **state)
{
	void *mod = t_module(NULL);
	struct kq_log *logs[40];
	char top[64];

	many_logs(mod, top, logs, 40);
	inject(F_NONE, 0, 0);
	sync_many_ok(mod, logs, 40);
	assert_int_equal(fi.calls[F_SYNCFS], 1);
	assert_int_equal(fi.calls[F_FDATASYNC], 0);
	assert_int_equal(fi.calls[F_FSYNC], 0);
	for (int i = 0; i < 40; i++)
		assert_int_equal(t_ops->sync(logs[i]), 0);
	assert_int_equal(fi.calls[F_SYNCFS] + fi.calls[F_FDATASYNC] +
				 fi.calls[F_FSYNC],
			 1);
	/* One log alone is synced file by file. */
	assert_int_equal(t_append(logs[0], 10, 5, 1), 0);
	sync_many_ok(mod, logs, 1);
	assert_int_equal(fi.calls[F_SYNCFS], 1);
	assert_int_equal(fi.calls[F_FDATASYNC], 1);
	restore();
	for (int i = 0; i < 40; i++) {
		uint64_t offs[16], next;
		int rv;

		assert_int_equal(t_read_all(logs[i], 0, offs, 16, &rv, &next),
				 i == 0 ? 15 : 10);
	}
	close_logs(mod, top, logs, 40);
}

/* A failed syncfs() loses nothing: every file is then fdatasync'd, and
 * only the log whose own fdatasync fails reports it (and fails).  The
 * file system is synced file by file from then on: the error was seen
 * through the module's descriptor, which would not report it again. */
static void test_sync_many_syncfs_fails(void **state)
{
	void *mod = t_module(NULL);
	struct kq_log *logs[8];
	int results[8];
	char top[64];

	many_logs(mod, top, logs, 8);
	inject(F_SYNCFS, 1, EIO);
	sync_many_ok(mod, logs, 8);
	assert_true(fi.fired);
	assert_true(fi.calls[F_FDATASYNC] >= 8);
	assert_non_null(strstr(kq__test_logbuf, "syncfs: Input/output error; "
						"the file system of"));
	for (int i = 0; i < 8; i++)
		assert_int_equal(t_append(logs[i], 10, 5, 1), 0);
	/* The third file's fdatasync fails: its log alone. */
	inject(F_FDATASYNC, 3, EIO);
	assert_int_equal(t_ops->sync_many(mod, logs, 8, results), 0);
	assert_int_equal(fi.calls[F_SYNCFS], 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(results[i], i == 2 ? -EIO : 0);
	restore();
	assert_int_equal(t_append(logs[2], 15, 1, 1), KQ_EUNAVAILABLE);
	assert_int_equal(t_append(logs[3], 15, 1, 1), 0);
	close_logs(mod, top, logs, 8);
}

/* "syncfs": false syncs file by file; so does a kernel whose syncfs()
 * does not report every error (before Linux 5.17), and a file system
 * whose sync_fs may not commit what fdatasync would (FUSE, NFS,
 * overlay). */
static void test_sync_many_without_syncfs(void **state)
{
	void *mod = t_module("{\"syncfs\": false}");
	struct kq_log *logs[4];
	char top[64];

	many_logs(mod, top, logs, 4);
	inject(F_NONE, 0, 0);
	sync_many_ok(mod, logs, 4);
	assert_int_equal(fi.calls[F_SYNCFS], 0);
	assert_true(fi.calls[F_FDATASYNC] >= 4);
	restore();
	close_logs(mod, top, logs, 4);
	assert_false(kq__seg_syncfs_reports_errors("5.16.20"));
	assert_false(kq__seg_syncfs_reports_errors("5.10.0-28-amd64"));
	assert_false(kq__seg_syncfs_reports_errors("4.19.0-26-amd64"));
	assert_false(kq__seg_syncfs_reports_errors("linux"));
	assert_true(kq__seg_syncfs_reports_errors("5.17.0"));
	assert_true(kq__seg_syncfs_reports_errors("6.1.0-18-amd64"));
	assert_true(kq__seg_syncfs_reports_errors("10.0"));
	assert_true(kq__seg_syncfs_commits(0xEF53));	  /* ext4 */
	assert_true(kq__seg_syncfs_commits(0x58465342));  /* XFS */
	assert_false(kq__seg_syncfs_commits(0x65735546)); /* FUSE */
	assert_false(kq__seg_syncfs_commits(0x6969));	  /* NFS */
	assert_false(kq__seg_syncfs_commits(0x794c7630)); /* overlay */
}

/* A segment is durable before the next one exists: a roll fdatasyncs
 * the sealed segment even when nobody called sync(). */
static void test_roll_syncs_sealed(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 4096);
	inject(F_FDATASYNC, 1, EIO);
	assert_int_equal(t_append(log, 0, 100, 1), -EIO);
	assert_true(fi.fired);
	restore();
	assert_int_equal(t_append(log, 100, 1, 1), KQ_EUNAVAILABLE);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Opening a log reads neither its sealed segments nor their indexes,
 * except the oldest's index (for first_offset()). */
static void test_open_is_lazy(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t next;
	int rv;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 4096);
	for (uint64_t i = 0; i < 8000; i += 1000)
		assert_int_equal(t_append(log, i, 1000, 1), 0);
	t_ops->close(log);
	inject(F_NONE, 0, 0);
	log = t_open(mod, dir, 4096);
	assert_true(nbytes < 3 * 4096);
	assert_true(nreads < 10);
	restore();
	assert_int_equal(t_ops->first_offset(log), 0);
	assert_int_equal(t_ops->next_offset(log), 8000);
	assert_int_equal(t_read_all(log, 7990, NULL, 0, &rv, &next), 10);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* The hard state as a disk under a page cache, as Linux keeps one: a
 * write dirties its 4 KiB pages; a sync that succeeds writes the dirty
 * pages to the "disk", one that fails drops them (marked clean, they
 * stay in the cache but never reach the disk); reads of a descriptor
 * opened with O_DIRECT see the disk.  So a load that read the cache
 * after a failed fdatasync could hand back a vote that never became
 * durable. */
#define HS_MAX	 16384
#define HS_PAGE	 4096
#define HS_PAGES (HS_MAX / HS_PAGE)
static struct hs_file {
	uint8_t cache[HS_MAX], disk[HS_MAX];
	size_t cache_len, disk_len;
	bool dirty[HS_PAGES];
} hs_files[2];		     /* raft.state, raft.state.tmp */
static int hs_fd_file[1024]; /* fd -> 1 + file, 0: other */
static bool hs_fd_direct[1024];

static int hs_which(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (strcmp(base, "raft.state") == 0)
		return 1;
	if (strcmp(base, "raft.state.tmp") == 0)
		return 2;
	return 0;
}

static int hs_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	int w = hs_which(path);
	int fd = real.openat(dirfd, path, flags & ~O_DIRECT, mode);

	if (fd >= 0 && fd < 1024) {
		hs_fd_file[fd] = w;
		hs_fd_direct[fd] = (flags & O_DIRECT) != 0;
		if (w && (flags & O_TRUNC))
			hs_files[w - 1].cache_len = 0;
	}
	return fd;
}

static ssize_t hs_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	int w = fd < 1024 ? hs_fd_file[fd] : 0;

	if (w) {
		struct hs_file *f = &hs_files[w - 1];

		assert_true((size_t)off + n <= HS_MAX);
		memcpy(f->cache + off, buf, n);
		for (size_t pg = (size_t)off / HS_PAGE;
		     n && pg <= ((size_t)off + n - 1) / HS_PAGE; pg++)
			f->dirty[pg] = true;
		if ((size_t)off + n > f->cache_len)
			f->cache_len = (size_t)off + n;
	}
	return real.pwrite(fd, buf, n, off);
}

static ssize_t hs_pread(int fd, void *buf, size_t n, off_t off)
{
	int w = fd < 1024 ? hs_fd_file[fd] : 0;

	if (w && hs_fd_direct[fd]) {
		struct hs_file *f = &hs_files[w - 1];
		size_t len = (size_t)off < f->disk_len ? f->disk_len - off : 0;

		len = len < n ? len : n;
		memcpy(buf, f->disk + off, len);
		return (ssize_t)len;
	}
	return real.pread(fd, buf, n, off);
}

static int hs_sync(int fd, int (*sync)(int))
{
	int w = fd >= 0 && fd < 1024 ? hs_fd_file[fd] : 0;
	struct hs_file *f = w ? &hs_files[w - 1] : NULL;
	bool failed = w && fire(F_FDATASYNC);

	for (int pg = 0; f && pg < HS_PAGES; pg++) {
		if (f->dirty[pg] && !failed)
			memcpy(f->disk + pg * HS_PAGE, f->cache + pg * HS_PAGE,
			       HS_PAGE);
		f->dirty[pg] = false;
	}
	if (failed) {
		errno = fi.err;
		return -1;
	}
	if (f)
		f->disk_len = f->cache_len;
	return sync(fd);
}

static int hs_fdatasync(int fd)
{
	return hs_sync(fd, real.fdatasync);
}

static int hs_fsync(int fd)
{
	return hs_sync(fd, real.fsync);
}

static int hs_renameat(int a, const char *b, int c, const char *d)
{
	int rv = real.renameat(a, b, c, d);

	if (rv == 0 && hs_which(b) == 2 && hs_which(d) == 1)
		hs_files[0] = hs_files[1];
	return rv;
}

static int hs_close(int fd)
{
	if (fd >= 0 && fd < 1024)
		hs_fd_file[fd] = 0;
	return real.close(fd);
}

/* The next fdatasync of the hard state fails with EIO. */
static void hs_fail_next_sync(void)
{
	fi.op = F_FDATASYNC;
	fi.nth = 1;
	fi.err = EIO;
	fi.fired = false;
	fi.seen = 0;
}

/* The old and the new snapshot of the sweeps below. */
static char snap_old[3000], snap_new[5000];

/* Reopens dir: its snapshot is the old one (index 10, term 1) or the new
 * one (20, 2), whole.  Returns its index. */
static uint64_t load_old_or_new(void *mod, const char *dir)
{
	struct kq_log *log = t_open(mod, dir, 4096);
	uint64_t index, term;
	void *data;
	size_t len;

	assert_int_equal(t_ops->load_snapshot(log, &index, &term, &data, &len),
			 0);
	if (index == 10) {
		assert_int_equal(term, 1);
		assert_int_equal(len, sizeof(snap_old));
		assert_memory_equal(data, snap_old, len);
	} else {
		assert_int_equal(index, 20);
		assert_int_equal(term, 2);
		assert_int_equal(len, sizeof(snap_new));
		assert_memory_equal(data, snap_new, len);
	}
	free(data);
	t_ops->close(log);
	return index;
}

/* A snapshot replaced while any file call fails, at every step: the
 * save reports it, and the snapshot loaded afterwards is the old one or
 * the new one, whole, never a mix or damage. */
static void test_snapshot_sweep(void **state)
{
	/* A full disk too: ENOSPC on the writes and on the creation. */
	static const struct {
		enum fop op;
		int err;
	} ops[] = {{F_PWRITE, EIO}, {F_PWRITE, ENOSPC}, {F_FDATASYNC, EIO},
		   {F_FSYNC, EIO},  {F_RENAME, EIO},	{F_CREATE, ENOSPC}};
	void *mod = t_module(NULL);

	(void)state;
	memset(snap_old, 'o', sizeof(snap_old));
	memset(snap_new, 'n', sizeof(snap_new));
	for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		for (long nth = 1;; nth++) {
			char dir[64];
			struct kq_log *log;
			bool fired;
			int rv;

			t_mkdtemp(dir);
			log = t_open(mod, dir, 4096);
			assert_int_equal(t_ops->save_snapshot(log, 10, 1,
							      snap_old,
							      sizeof(snap_old)),
					 0);
			inject(ops[k].op, nth, ops[k].err);
			fi.shortw = ops[k].op == F_PWRITE && nth % 2 == 0;
			rv = t_ops->save_snapshot(log, 20, 2, snap_new,
						  sizeof(snap_new));
			fired = fi.fired;
			restore();
			assert_int_equal(rv != 0, fired);
			/* A failed save leaves no half-written copy behind
			 * (a full disk keeps its space). */
			assert_int_equal(t_count_files(dir, ".tmp"), 0);
			t_ops->close(log);
			if (load_old_or_new(mod, dir) == 10)
				assert_true(fired);
			t_rmrf(dir);
			if (!fired)
				break;
		}
	}
	t_module_free(mod);
}

/* The snapshot's two names under a machine crash: each file is an inode
 * with what the page cache holds and what reached the disk (a sync that
 * succeeds writes the cache, one that fails loses what it held), and the
 * folder's names are kept twice too, as the cache has them and as the
 * disk does since the folder's last fsync.  The calls go through the
 * fault functions first, so a fault at any step is a call that did
 * nothing.  pc_crash() rewrites the real files as the disk has them. */
#define PC_NAMES  5
#define PC_INODES 8
static const char *const pc_names[PC_NAMES] = {"snapshot", "snapshot.tmp",
					       "raft.state", "raft.state.tmp",
					       "00000000000000000000.log"};
static struct pc_inode {
	uint8_t cache[HS_MAX], disk[HS_MAX];
	size_t cache_len, disk_len;
	bool lost; /* a sync failed: what the cache held never reaches disk */
} pc_inodes[PC_INODES];
static int pc_n_inodes;
static int pc_name_cache[PC_NAMES], pc_name_disk[PC_NAMES]; /* -1: none */
static int pc_fd_inode[1024];				    /* 1 + inode */
static unsigned pc_renames; /* of modelled names, that succeeded */
static bool pc_fd_folder[1024];
static char pc_dir[64];
/* The folder holding pc_dir, and whether pc_dir's name in it is on the
 * disk (its fsync or a syncfs() since pc_dir was made). */
static char pc_parent[64];
static bool pc_fd_parent[1024], pc_dir_named;

/* The name's index when `path` (from `dirfd`) is one of pc_names in the
 * folder pc_dir, else -1: other logs' files are not in the model. */
static int pc_which(int dirfd, const char *path)
{
	size_t n = strlen(pc_dir);
	const char *base = path;

	if (dirfd == AT_FDCWD) {
		if (strncmp(path, pc_dir, n) != 0 || path[n] != '/')
			return -1;
		base = path + n + 1;
	} else if (dirfd < 0 || dirfd >= 1024 || !pc_fd_folder[dirfd]) {
		return -1;
	}
	for (int i = 0; i < PC_NAMES; i++)
		if (strcmp(base, pc_names[i]) == 0)
			return i;
	return -1;
}

static int pc_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	int name = pc_which(dirfd, path),
	    fd = f_openat(dirfd, path, flags, mode);

	if (fd < 0 || fd >= 1024)
		return fd;
	pc_fd_folder[fd] = (flags & O_DIRECTORY) && strcmp(path, pc_dir) == 0;
	pc_fd_parent[fd] =
		(flags & O_DIRECTORY) && strcmp(path, pc_parent) == 0;
	pc_fd_inode[fd] = 0;
	if (name < 0)
		return fd;
	if (pc_name_cache[name] < 0) {
		assert_true((flags & O_CREAT) && pc_n_inodes < PC_INODES);
		memset(&pc_inodes[pc_n_inodes], 0, sizeof(pc_inodes[0]));
		pc_name_cache[name] = pc_n_inodes++;
	}
	if (flags & O_TRUNC)
		pc_inodes[pc_name_cache[name]].cache_len = 0;
	pc_fd_inode[fd] = 1 + pc_name_cache[name];
	return fd;
}

static ssize_t pc_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	ssize_t w = f_pwrite(fd, buf, n, off);

	if (w > 0 && fd < 1024 && pc_fd_inode[fd]) {
		struct pc_inode *f = &pc_inodes[pc_fd_inode[fd] - 1];

		assert_true((size_t)off + (size_t)w <= HS_MAX);
		memcpy(f->cache + off, buf, (size_t)w);
		if ((size_t)off + (size_t)w > f->cache_len)
			f->cache_len = (size_t)off + (size_t)w;
	}
	return w;
}

static int pc_sync(int fd, int (*sync)(int))
{
	int rv = sync(fd);

	if (fd < 0 || fd >= 1024)
		return rv;
	if (pc_fd_inode[fd]) {
		struct pc_inode *f = &pc_inodes[pc_fd_inode[fd] - 1];

		/* A sync that fails loses what the cache held; one cut
		 * short by the crash (a sticky fault) leaves it to it. */
		if (rv != 0 && !fi.sticky)
			f->lost = true;
		else if (rv == 0 && !f->lost) {
			memcpy(f->disk, f->cache, f->cache_len);
			f->disk_len = f->cache_len;
		}
	} else if (pc_fd_folder[fd] && rv == 0) {
		memcpy(pc_name_disk, pc_name_cache, sizeof(pc_name_disk));
	} else if (pc_fd_parent[fd] && rv == 0) {
		pc_dir_named = true;
	}
	return rv;
}

static int pc_fdatasync(int fd)
{
	return pc_sync(fd, f_fdatasync);
}

static int pc_fsync(int fd)
{
	return pc_sync(fd, f_fsync);
}

/* syncfs() writes back every file and the folder (one that fails here
 * failed before it wrote anything). */
static int pc_syncfs(int fd)
{
	int rv = f_syncfs(fd);

	if (rv != 0)
		return rv;
	for (int i = 0; i < pc_n_inodes; i++)
		if (!pc_inodes[i].lost) {
			memcpy(pc_inodes[i].disk, pc_inodes[i].cache,
			       pc_inodes[i].cache_len);
			pc_inodes[i].disk_len = pc_inodes[i].cache_len;
		}
	memcpy(pc_name_disk, pc_name_cache, sizeof(pc_name_disk));
	pc_dir_named = true;
	return rv;
}

static int pc_renameat(int a, const char *b, int c, const char *d)
{
	int from = pc_which(a, b), to = pc_which(c, d),
	    rv = f_renameat(a, b, c, d);

	if (rv == 0 && from >= 0 && to >= 0) {
		pc_renames++;
		pc_name_cache[to] = pc_name_cache[from];
		pc_name_cache[from] = -1;
	}
	return rv;
}

static int pc_unlinkat(int dirfd, const char *path, int flags)
{
	int name = pc_which(dirfd, path),
	    rv = real.unlinkat(dirfd, path, flags);

	if (rv == 0 && name >= 0)
		pc_name_cache[name] = -1;
	return rv;
}

static int pc_close(int fd)
{
	if (fd >= 0 && fd < 1024) {
		pc_fd_inode[fd] = 0;
		pc_fd_folder[fd] = false;
		pc_fd_parent[fd] = false;
	}
	return real.close(fd);
}

/* Fault `op` at its nth call (0: none) over the model. */
static void pc_inject(enum fop op, long nth, int err, bool sticky)
{
	inject(op, nth, err);
	fi.sticky = sticky;
	kq__seg_io.openat = pc_openat;
	kq__seg_io.pwrite = pc_pwrite;
	kq__seg_io.fdatasync = pc_fdatasync;
	kq__seg_io.fsync = pc_fsync;
	kq__seg_io.syncfs = pc_syncfs;
	kq__seg_io.renameat = pc_renameat;
	kq__seg_io.unlinkat = pc_unlinkat;
	kq__seg_io.close = pc_close;
}

/* The faults of the crash sweeps: the machine dies at a call (sticky:
 * every call from it on fails, then the crash), or one call fails (then
 * the crash). */
static const struct {
	enum fop op;
	int err;
	bool sticky;
} pc_faults[] = {{F_ANY, EIO, true},	    {F_PWRITE, EIO, false},
		 {F_PWRITE, ENOSPC, false}, {F_FDATASYNC, EIO, false},
		 {F_FSYNC, EIO, false},	    {F_RENAME, EIO, false},
		 {F_SYNCFS, EIO, false},    {F_CREATE, ENOSPC, false}};

/* What the kernel wrote back on its own before the crash. */
enum pc_written {
	PC_NONE,
	PC_NAMES_ONLY,	/* the folder */
	PC_ALL,		/* the folder and every file's cache */
	PC_FIRST_PAGES, /* the folder and the first 4 KiB of each file */
	PC_TORN,	/* the folder, and of each file's last page that differs
			 * from the disk only its first 16 bytes */
	PC_WRITTEN_COUNT,
};

/* The machine stops: the files hold what their disk holds, and the
 * folder's names are those of its last fsync, or of the cache when the
 * kernel wrote it back (`written`), with what it wrote of the files. */
static void pc_crash(enum pc_written written)
{
	if (!pc_dir_named && written == PC_NONE) {
		/* The folder itself is lost, with all it held. */
		t_rmrf(pc_dir);
		return;
	}
	/* A run before may have lost it. */
	if (mkdir(pc_dir, 0755) != 0)
		assert_int_equal(errno, EEXIST);
	if (written != PC_NONE)
		memcpy(pc_name_disk, pc_name_cache, sizeof(pc_name_disk));
	for (int i = 0; written >= PC_ALL && i < pc_n_inodes; i++) {
		struct pc_inode *f = &pc_inodes[i];
		size_t n = f->cache_len;

		size_t at = 0;

		if (f->lost)
			continue;
		if (written == PC_FIRST_PAGES && n > 4096)
			n = 4096;
		if (written == PC_TORN) {
			size_t pg = n ? (n - 1) / 4096 + 1 : 0, end = n;

			n = 0;
			while (pg-- > 0) {
				at = pg * 4096;
				if (f->disk_len < at + 16 ||
				    memcmp(f->disk + at, f->cache + at, 16) !=
					    0) {
					n = at + 16 < end ? at + 16 : end;
					break;
				}
			}
			if (n == 0)
				continue;
		}
		memcpy(f->disk + at, f->cache + at, n - at);
		if (n > f->disk_len)
			f->disk_len = n;
	}
	for (int i = 0; i < PC_NAMES; i++) {
		char path[128];
		int ino = pc_name_disk[i], fd;

		snprintf(path, sizeof(path), "%s/%s", pc_dir, pc_names[i]);
		unlink(path);
		if (ino < 0)
			continue;
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		assert_true(fd >= 0);
		assert_int_equal(
			write(fd, pc_inodes[ino].disk, pc_inodes[ino].disk_len),
			(ssize_t)pc_inodes[ino].disk_len);
		close(fd);
		pc_inodes[ino].cache_len = pc_inodes[ino].disk_len;
	}
	memcpy(pc_name_cache, pc_name_disk, sizeof(pc_name_cache));
}

/* A snapshot replaced while the machine dies at any step of it (every
 * call from the nth on fails, then the crash), or while one call fails
 * (then the crash), with the folder's last names lost or written back:
 * the snapshot loaded after the restart is the old one or the new one,
 * whole, and the new one when its save reported success. */
static void test_snapshot_crash_sweep(void **state)
{
	void *mod = t_module(NULL);
	unsigned crashes = 0, reverted = 0, kept_new = 0;

	(void)state;
	memset(snap_old, 'o', sizeof(snap_old));
	memset(snap_new, 'n', sizeof(snap_new));
	for (size_t k = 0; k < 2 * sizeof(pc_faults) / sizeof(pc_faults[0]);
	     k++) {
		size_t o = k / 2;
		bool names_written = k % 2;

		for (long nth = 1;; nth++) {
			struct kq_log *log;
			bool fired;
			int rv;

			t_mkdtemp(pc_dir);
			pc_parent[0] = '\0';
			pc_dir_named = true;
			memset(pc_name_cache, -1, sizeof(pc_name_cache));
			memset(pc_name_disk, -1, sizeof(pc_name_disk));
			memset(pc_fd_inode, 0, sizeof(pc_fd_inode));
			memset(pc_fd_folder, 0, sizeof(pc_fd_folder));
			pc_n_inodes = 0;
			pc_inject(F_NONE, 0, 0, false);
			log = t_open(mod, pc_dir, 4096);
			assert_int_equal(t_ops->save_snapshot(log, 10, 1,
							      snap_old,
							      sizeof(snap_old)),
					 0);
			pc_inject(pc_faults[o].op, nth, pc_faults[o].err,
				  pc_faults[o].sticky);
			rv = t_ops->save_snapshot(log, 20, 2, snap_new,
						  sizeof(snap_new));
			fired = fi.fired;
			restore();
			t_ops->close(log);
			reverted += pc_name_cache[0] != pc_name_disk[0];
			pc_crash(names_written ? PC_NAMES_ONLY : PC_NONE);
			crashes++;
			/* A save that reported success survives the crash. */
			if (load_old_or_new(mod, pc_dir) == 20)
				kept_new += rv != 0;
			else
				assert_int_not_equal(rv, 0);
			t_rmrf(pc_dir);
			if (!fired)
				break;
		}
	}
	/* The sweep reached the steps between the rename and the folder's
	 * fsync: a crash there takes the new name back, or keeps it and
	 * the new snapshot though its save failed. */
	assert_true(crashes > 10);
	assert_true(reverted > 0);
	assert_true(kept_new > 0);
	t_module_free(mod);
}

/* A crash sweep over a new log, the folder pc_dir that open() makes: the
 * machine dies at any step from the open on (every call from the nth
 * fails, then the crash), or while one call fails, with the kernel
 * having written back nothing, or the folder and none, all, the first
 * page or a torn last page of the files.  The new log is settled with
 * others by one syncfs(), or alone file by file.  `run` does its work
 * on the log (NULL when the open failed); after each crash
 * `check` gets the log reopened on another module. */
struct new_log_sweep {
	void (*run)(struct new_log_sweep *sw, struct kq_log *log);
	void (*check)(struct new_log_sweep *sw, struct kq_log *log,
		      const char *where);
	unsigned crashes;
};

static void new_log_crash_sweep(struct new_log_sweep *sw)
{
	struct pc_inode inodes[PC_INODES];
	int n_inodes, names[PC_NAMES], cached[PC_NAMES];

	for (size_t k = 0; k < 2 * sizeof(pc_faults) / sizeof(pc_faults[0]);
	     k++) {
		size_t o = k / 2, siblings = k % 2 ? 8 : 0;

		for (long nth = 1;; nth++) {
			struct kq_log *sib[9], *log = NULL;
			char top[64], dir[96], where[128];
			void *mod = t_module(NULL);
			bool fired;

			t_mkdtemp(top);
			for (size_t i = 0; i <= siblings; i++) {
				snprintf(dir, sizeof(dir), "%s/s%zu", top, i);
				sib[i] = t_open(mod, dir, 4096);
			}
			assert_true(strlen(top) + 3 <= sizeof(pc_dir));
			memcpy(pc_dir, top, strlen(top));
			memcpy(pc_dir + strlen(top), "/m", 3);
			memcpy(pc_parent, top, strlen(top) + 1);
			pc_dir_named = false;
			memset(pc_name_cache, -1, sizeof(pc_name_cache));
			memset(pc_name_disk, -1, sizeof(pc_name_disk));
			memset(pc_fd_inode, 0, sizeof(pc_fd_inode));
			memset(pc_fd_folder, 0, sizeof(pc_fd_folder));
			memset(pc_fd_parent, 0, sizeof(pc_fd_parent));
			pc_n_inodes = 0;
			pc_renames = 0;
			pc_inject(pc_faults[o].op, nth, pc_faults[o].err,
				  pc_faults[o].sticky);
			if (t_ops->open(mod, pc_dir,
					&(struct kq_log_options){
						.segment_bytes = 4096,
						.retention_ms = -1,
						.retention_bytes = -1},
					&log) != 0)
				log = NULL;
			sw->run(sw, log);
			fired = fi.fired;
			restore();
			if (log != NULL)
				t_ops->close(log);
			for (size_t i = 0; i <= siblings; i++)
				t_ops->close(sib[i]);
			t_module_free(mod);
			memcpy(inodes, pc_inodes, sizeof(inodes));
			memcpy(names, pc_name_disk, sizeof(names));
			memcpy(cached, pc_name_cache, sizeof(cached));
			n_inodes = pc_n_inodes;
			for (int w = 0; w < PC_WRITTEN_COUNT; w++) {
				memcpy(pc_inodes, inodes, sizeof(inodes));
				memcpy(pc_name_disk, names, sizeof(names));
				memcpy(pc_name_cache, cached, sizeof(cached));
				pc_n_inodes = n_inodes;
				pc_crash((enum pc_written)w);
				sw->crashes++;
				snprintf(where, sizeof(where),
					 "%s, fault %zu at call %ld, written "
					 "back %d",
					 siblings ? "together" : "alone", o,
					 nth, w);
				mod = t_module(NULL);
				log = t_open(mod, pc_dir, 4096);
				sw->check(sw, log, where);
				t_ops->close(log);
				t_module_free(mod);
			}
			t_rmrf(top);
			if (!fired)
				break;
		}
	}
}

/* The hard state of a new log: the raft.state open() makes, then three
 * saves in place. */
static const struct kq_hard_state hs_sweep[] = {{0, 0}, {1, 1}, {2, 2}, {3, 0}};

struct hs_sweep {
	struct new_log_sweep sw;
	int ok, tried; /* of hs_sweep: the last saved, the last tried */
	unsigned torn, in_place;
	bool staged; /* each staged and made durable by a sync */
};

static int hs_sweep_save(struct hs_sweep *h, struct kq_log *log)
{
	const struct kq_hard_state *hs = &hs_sweep[h->tried];

	int rv;

	if (!h->staged)
		return t_ops->save_hard_state(log, hs);
	rv = t_ops->stage_hard_state(log, hs);
	if (rv == KQ_EBUSY && t_ops->sync(log) == 0) /* a new log */
		rv = t_ops->stage_hard_state(log, hs);
	return rv ? rv : t_ops->sync(log);
}

static void hs_sweep_run(struct new_log_sweep *sw, struct kq_log *log)
{
	struct hs_sweep *h = (struct hs_sweep *)sw;

	h->ok = h->tried = 0;
	if (log == NULL)
		return;
	for (h->tried = 1; h->tried < 4; h->tried++) {
		if (hs_sweep_save(h, log) != 0)
			break;
		h->ok = h->tried;
	}
	if (h->tried == 4)
		h->tried = 3;
	h->in_place += pc_renames == 0 && h->ok == 3;
}

static void hs_sweep_check(struct new_log_sweep *sw, struct kq_log *log,
			   const char *where)
{
	struct hs_sweep *h = (struct hs_sweep *)sw;
	struct kq_hard_state got;
	int j;

	assert_int_equal(t_ops->load_hard_state(log, &got), 0);
	for (j = h->ok; j <= h->tried; j++)
		if (got.term == hs_sweep[j].term &&
		    got.vote == hs_sweep[j].vote)
			break;
	if (j > h->tried)
		fail_msg("%s: term %" PRIu64 " vote %" PRIu64
			 ", saved up to term %d, tried %d",
			 where, got.term, got.vote, h->ok, h->tried);
	h->torn += t_file_size(pc_dir, "raft.state") < 8192;
}

/* After the restart the hard state loads, never as damage, and is the
 * last one saved or one whose save was under way.  (A failed sync loses
 * what the cache held, so here the one under way never comes through.)
 * Without the settle's fdatasync of raft.state, a torn first save reads
 * as damage. */
static void test_hard_state_crash_sweep(void **state)
{
	struct hs_sweep h = {
		{hs_sweep_run, hs_sweep_check, 0}, 0, 0, 0, 0, false};

	(void)state;
	new_log_crash_sweep(&h.sw);
	/* The sweep reached crashes before the settle that left raft.state
	 * empty or short, and runs whose saves all went in place. */
	assert_true(h.sw.crashes > 100);
	assert_true(h.torn > 0);
	assert_true(h.in_place > 0);
}

/* The same saves staged, each made durable by a sync, which settles the
 * new log before it writes in place. */
static void test_staged_hard_state_crash_sweep(void **state)
{
	struct hs_sweep h = {
		{hs_sweep_run, hs_sweep_check, 0}, 0, 0, 0, 0, true};

	(void)state;
	new_log_crash_sweep(&h.sw);
	assert_true(h.sw.crashes > 100);
	assert_true(h.torn > 0);
	assert_true(h.in_place > 0);
}

/* The records of a new log: three appends of 5, each synced. */
struct rec_sweep {
	struct new_log_sweep sw;
	uint64_t acked, tried; /* ends: synced, appended */
	unsigned lost_unacked;
};

static void rec_sweep_run(struct new_log_sweep *sw, struct kq_log *log)
{
	struct rec_sweep *r = (struct rec_sweep *)sw;

	r->acked = r->tried = 0;
	for (int b = 0; log != NULL && b < 3; b++) {
		if (t_append(log, r->acked, 5, 1) != 0)
			break;
		r->tried = r->acked + 5;
		if (t_ops->sync(log) != 0)
			break;
		r->acked = r->tried;
	}
}

static void rec_sweep_check(struct new_log_sweep *sw, struct kq_log *log,
			    const char *where)
{
	struct rec_sweep *r = (struct rec_sweep *)sw;
	uint64_t offs[32], next;
	size_t n;
	int rv;

	n = t_read_all(log, 0, offs, 32, &rv, &next);
	if (rv != 0 || n < r->acked || n > r->tried)
		fail_msg("%s: %zu records read (status %d), %" PRIu64
			 " acknowledged, %" PRIu64 " written",
			 where, n, rv, r->acked, r->tried);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(offs[i], i);
	assert_true(t_ops->next_offset(log) >= r->acked);
	r->lost_unacked += n < r->tried;
}

/* The records of a new log, each batch synced, under the same crashes:
 * after the restart every record whose sync returned is there, whole,
 * and the log holds nothing but a prefix of what was written. */
static void test_new_log_records_crash_sweep(void **state)
{
	struct rec_sweep r = {{rec_sweep_run, rec_sweep_check, 0}, 0, 0, 0};

	(void)state;
	new_log_crash_sweep(&r.sw);
	assert_true(r.sw.crashes > 100);
	assert_true(r.lost_unacked > 0);
}

static void test_hard_state_failed_sync(void **state)
{
	struct kq_hard_state hs, in;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;

	(void)state;
	memset(hs_files, 0, sizeof(hs_files));
	memset(hs_fd_file, 0, sizeof(hs_fd_file));
	inject(F_NONE, 0, EIO);
	kq__seg_io.openat = hs_openat;
	kq__seg_io.pwrite = hs_pwrite;
	kq__seg_io.pread = hs_pread;
	kq__seg_io.fdatasync = hs_fdatasync;
	kq__seg_io.fsync = hs_fsync;
	kq__seg_io.renameat = hs_renameat;
	kq__seg_io.close = hs_close;
	t_mkdtemp(dir);
	log = t_open(mod, dir, 1 << 20);
	hs = (struct kq_hard_state){5, 1};
	assert_int_equal(t_ops->save_hard_state(log, &hs), 0);
	hs = (struct kq_hard_state){6, 2};
	assert_int_equal(t_ops->save_hard_state(log, &hs), 0);
	/* Term 7's vote is written, and its sync fails. */
	hs_fail_next_sync();
	hs = (struct kq_hard_state){7, 3};
	assert_int_equal(t_ops->save_hard_state(log, &hs), -EIO);
	fi.op = F_NONE;
	assert_int_equal(t_ops->save_hard_state(log, &hs), KQ_EUNAVAILABLE);
	/* Nor a snapshot, until it is reopened. */
	assert_int_equal(t_ops->save_snapshot(log, 1, 1, NULL, 0),
			 KQ_EUNAVAILABLE);
	t_ops->close(log);
	/* Reopened (the page cache still holds term 7): the disk's state. */
	log = t_open(mod, dir, 1 << 20);
	assert_int_equal(t_ops->load_hard_state(log, &in), 0);
	assert_int_equal(in.term, 6);
	assert_int_equal(in.vote, 2);
	/* The next save does not overwrite the copy of term 6 either. */
	hs = (struct kq_hard_state){8, 0};
	hs_fail_next_sync();
	assert_int_equal(t_ops->save_hard_state(log, &hs), -EIO);
	fi.op = F_NONE;
	t_ops->close(log);
	log = t_open(mod, dir, 1 << 20);
	assert_int_equal(t_ops->load_hard_state(log, &in), 0);
	assert_int_equal(in.term, 6);
	hs = (struct kq_hard_state){9, 1};
	assert_int_equal(t_ops->save_hard_state(log, &hs), 0);
	t_ops->close(log);
	log = t_open(mod, dir, 1 << 20);
	assert_int_equal(t_ops->load_hard_state(log, &in), 0);
	assert_int_equal(in.term, 9);
	assert_int_equal(in.vote, 1);
	/* What a load reads is made durable before it is trusted. */
	hs_fail_next_sync();
	assert_int_equal(t_ops->load_hard_state(log, &in), -EIO);
	fi.op = F_NONE;
	t_ops->close(log);
	restore();
	t_module_free(mod);
	t_rmrf(dir);
}

/* The files waiting for a sync are taken off their list from the middle
 * and the ends (a sync of one file, an unsynced log's drop); what is left
 * reads the same both ways, and each file's references come back. */
static void test_sync_list_unlink(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	struct kq__seg_sfile *sf[4];
	const struct kq__seg_sfile *p, *last = NULL;
	size_t k = 0;

	(void)state;
	t_mkdtemp(dir);
	log = t_open(mod, dir, 0);

	for (int i = 0; i < 4; i++) {
		char path[128];
		int fd;

		snprintf(path, sizeof(path), "%s/list-%d", dir, i);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		sf[i] = kq__seg_sfile_new(log, fd);
		assert_non_null(sf[i]);
		pthread_mutex_lock(&log->mu);
		kq__seg_sfile_mark(log, sf[i]); /* newest first */
		pthread_mutex_unlock(&log->mu);
		assert_int_equal(sf[i]->refs, 2);
	}
	/* The middle one synced, the oldest dropped: 3 then 1 are left. */
	assert_int_equal(kq__seg_sfile_sync(log, sf[2], false), 0);
	kq__seg_sfile_unlist(log, sf[0]);
	assert_false(sf[2]->dirty);
	assert_int_equal(sf[2]->refs, 1);
	assert_int_equal(sf[0]->refs, 1);
	pthread_mutex_lock(&log->mu);
	for (p = log->dirty; p != NULL; last = p, p = p->dnext) {
		assert_true(k < 2);
		assert_ptr_equal(p, sf[k == 0 ? 3 : 1]);
		assert_ptr_equal(p->dprev, last);
		k++;
	}
	assert_int_equal(k, 2);
	for (p = last; p != NULL; p = p->dprev)
		assert_ptr_equal(p, sf[--k == 0 ? 3 : 1]);
	pthread_mutex_unlock(&log->mu);
	/* A file synced twice, or dropped when not listed, is left alone. */
	assert_int_equal(kq__seg_sfile_sync(log, sf[2], false), 0);
	kq__seg_sfile_unlist(log, sf[0]);
	assert_int_equal(sf[2]->refs, 1);
	assert_int_equal(sf[0]->refs, 1);
	for (int i = 0; i < 4; i++) /* 1 and 3 keep the list's */
		kq__seg_sfile_unref(log, sf[i]);
	t_ops->close(log); /* which drops it */
	t_module_free(mod);
	t_rmrf(dir);
}

static int teardown_io(void **state)
{
	restore();
	return 0;
}

/* Every test leaves the I/O table as it found it, even when failing. */
#define T(name) cmocka_unit_test_teardown(name, teardown_io)

int run_fault_tests(void)
{
	const struct CMUnitTest tests[] = {
		T(test_sync_list_unlink),
		T(test_write_eio),
		T(test_write_enospc),
		T(test_short_write),
		T(test_short_write_left_behind),
		T(test_fdatasync_eio),
		T(test_failed_sync_dropped_at_close),
		T(test_sweep_pwrite),
		T(test_sweep_fdatasync),
		T(test_sweep_fsync),
		T(test_sweep_ftruncate),
		T(test_sweep_rename),
		T(test_sweep_create),
		T(test_sweep_any),
		T(test_policies),
		T(test_unsynced_closes_without_sync),
		T(test_sync_many_one_syncfs),
		T(test_room_made_with_syncfs),
		T(test_reopen_without_folder),
		T(test_room_made_beside_a_syncfs),
		T(test_bound_counts_files_being_synced),
		T(test_new_logs_settle_together),
		T(test_settle_without_syncfs),
		T(test_settle_out_of_descriptors),
		T(test_new_log_without_state_file),
		T(test_settle_behind_a_syncfs),
		T(test_open_sheds_descriptors),
		T(test_staged_open_sheds_descriptors),
		T(test_listing_sheds_descriptors),
		T(test_staged_hard_state_faults),
		T(test_reopened_log_settles),
		T(test_sync_many_syncfs_fails),
		T(test_sync_many_without_syncfs),
		T(test_roll_syncs_sealed),
		T(test_open_is_lazy),
		T(test_hard_state_failed_sync),
		T(test_snapshot_sweep),
		T(test_snapshot_crash_sweep),
		T(test_hard_state_crash_sweep),
		T(test_staged_hard_state_crash_sweep),
		T(test_new_log_records_crash_sweep),
	};

	if (getenv("KQ_SEGMENT_WRITE_FIXTURES") != NULL)
		return 0;
	return cmocka_run_group_tests_name("segment faults", tests, NULL, NULL);
}
