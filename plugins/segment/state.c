/* The durable hard state (Raft term and vote) in raft.state. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "io.h"
#include "module.h"

#define STATE_FILE KQ__SEG_STATE_FILE
#define STATE_TMP  "raft.state.tmp"
/* Format 1: one copy of 28 bytes, replaced by a rename.  Read, and
 * rewritten as format 2 at the first save. */
#define STATE_V1_SIZE 28
/* Format 2: two copies in blocks of their own (4 KiB apart: a device or
 * file system writes whole blocks, so a torn write of one copy cannot
 * reach the other), each with a sequence number; a save overwrites the
 * older copy in place, so it costs one write and one fdatasync instead of
 * a file creation, a rename and two fsyncs.  A torn write damages only
 * the copy being written, whose save never returned: the other still
 * holds the state before it. */
#define STATE_VERSION 2
#define STATE_SLOT    4096
#define STATE_SIZE    (2 * STATE_SLOT)

static void encode_slot(uint8_t *b, uint64_t seq,
			const struct kq_hard_state *hs)
{
	memcpy(b, "KQHS", 4);
	kq_put32le(b + 4, STATE_VERSION);
	kq_put64le(b + 8, seq);
	kq_put64le(b + 16, hs->term);
	kq_put64le(b + 24, hs->vote);
	kq_put32le(b + 32, kq__seg_crc32c(0, b, 32));
}

/* The whole file: both copies of `hs`, the newer (2) in its place. */
static void encode_file(uint8_t *file, const struct kq_hard_state *hs)
{
	memset(file, 0, STATE_SIZE);
	encode_slot(file, 2, hs);
	encode_slot(file + STATE_SLOT, 1, hs);
}

static bool decode_slot(const uint8_t *b, uint64_t *seq,
			struct kq_hard_state *hs)
{
	if (memcmp(b, "KQHS", 4) != 0 || kq_get32le(b + 4) != STATE_VERSION ||
	    kq_get32le(b + 32) != kq__seg_crc32c(0, b, 32))
		return false;
	*seq = kq_get64le(b + 8);
	hs->term = kq_get64le(b + 16);
	hs->vote = kq_get64le(b + 24);
	return true;
}

/* Overwrites the older copy: `seq` says which.  Its whole block, so that
 * the kernel need not read it first (a load reads with O_DIRECT, which
 * leaves nothing of the file in the page cache). */
static int save_in_place(struct kq_log *log, uint64_t seq,
			 const struct kq_hard_state *hs, bool sync)
{
	uint8_t b[STATE_SLOT];
	int fd, rv;

	memset(b, 0, sizeof(b));
	encode_slot(b, seq, hs);
	fd = kq__seg_log_openat(log, STATE_FILE, O_WRONLY, 0);
	if (fd < 0)
		return -errno;
	rv = kq__seg_pwrite_all(fd, b, sizeof(b), (seq & 1) * STATE_SLOT);
	if (rv == 0 && sync && kq__seg_io.fdatasync(fd) != 0)
		rv = -errno;
	kq__seg_io.close(fd);
	return rv;
}

int kq__seg_log_make_hard_state(struct kq_log *log)
{
	static const struct kq_hard_state none = {0, 0};
	uint8_t file[STATE_SIZE];
	int fd, rv;

	encode_file(file, &none);
	fd = kq__seg_log_openat(log, STATE_FILE, O_WRONLY | O_CREAT | O_EXCL,
				0644);
	if (fd < 0)
		return -errno;
	rv = kq__seg_pwrite_all(fd, file, sizeof(file), 0);
	kq__seg_io.close(fd);
	if (rv != 0) {
		kq__seg_log_unlinkat(log, STATE_FILE, 0);
		return rv;
	}
	log->hs_seq = 2;
	log->hs_made = true;
	return 0;
}

/* Whether a save or stage may go now: KQ_EUNAVAILABLE on a failed log,
 * KQ_EBUSY while a staged hard state is not durable yet (either would
 * overwrite the copy of the newest durable one). */
static int may_save(struct kq_log *log)
{
	int rv = 0;

	kq__seg_log_report(log);
	/* Both under one hold: a sync failing on the worker fails the log
	 * before it clears hs_syncing, so the copy it left undurable is
	 * never taken for a durable one. */
	pthread_mutex_lock(&log->mu);
	if (log->failed != 0)
		rv = KQ_EUNAVAILABLE;
	else if (log->hs_dirty || log->hs_syncing)
		rv = KQ_EBUSY;
	pthread_mutex_unlock(&log->mu);
	return rv;
}

int kq__seg_log_save_hard_state(struct kq_log *log,
				const struct kq_hard_state *hs)
{
	uint8_t file[STATE_SIZE];
	int rv = may_save(log);

	if (rv != 0)
		return rv;
	log->hs_unread = false;
	/* Replacing the file settles the log first; so does this, and it
	 * must: an in-place save into the file open() made relies on the
	 * other copy being durable. */
	rv = kq__seg_log_settle(log);
	if (rv != 0)
		return rv;
	if (log->hs_seq != 0) {
		rv = save_in_place(log, log->hs_seq + 1, hs, true);
		if (rv == 0)
			log->hs_seq++;
	} else {
		/* No file of format 2 yet: both copies, replaced whole. */
		encode_file(file, hs);
		rv = kq__seg_log_replace_file(log, STATE_FILE, STATE_TMP, file,
					      sizeof(file), NULL, 0);
		if (rv == 0)
			log->hs_seq = 2;
	}
	if (rv == 0)
		return 0;
	kq__seg_log_fail(log, rv, "saving the hard state: %s", strerror(-rv));
	kq__seg_log_report(log);
	return rv;
}

int kq__seg_log_stage_hard_state(struct kq_log *log,
				 const struct kq_hard_state *hs)
{
	/* One at a time: its write overwrites the copy before the newest,
	 * which must be durable by then. */
	int rv = may_save(log);

	if (rv != 0)
		return rv;
	/* No copy of format 2 to overwrite in place (a file of format 1,
	 * or one a crash left unsettled): replaced whole, here, once. */
	if (log->hs_seq == 0)
		return kq__seg_log_save_hard_state(log, hs);
	/* A new log's raft.state is durable once the log is settled,
	 * which a sync does, off the loop. */
	if (!kq__seg_log_settled(log))
		return KQ_EBUSY;
	log->hs_unread = false;
	/* Written here, through the descriptor bound (which sheds held
	 * descriptors for it), and made durable by the next sync. */
	rv = save_in_place(log, log->hs_seq + 1, hs, false);
	if (rv != 0) {
		kq__seg_log_fail(log, rv, "saving the hard state: %s",
				 strerror(-rv));
		kq__seg_log_report(log);
		return rv;
	}
	pthread_mutex_lock(&log->mu);
	log->hs_seq++;
	log->hs_dirty = true;
	pthread_mutex_unlock(&log->mu);
	return 0;
}

int kq__seg_log_sync_staged(struct kq_log *log)
{
	char path[4096];
	int rv = -ENAMETOOLONG;

	if ((size_t)snprintf(path, sizeof(path), "%s/" STATE_FILE, log->dir) <
	    sizeof(path))
		rv = kq__seg_log_sync_path(log, path, true);
	if (rv != 0)
		kq__seg_log_fail(log, rv, "fdatasync of the hard state: %s",
				 strerror(-rv));
	return rv;
}

/* Whether what was read is what a crash may leave of the file open()
 * made before the log's creation was settled: a file short of its whole
 * size (file systems make a size durable with the data below it), each
 * copy in it all zeros or (a prefix of) the one open() wrote.  No save
 * came then (a save settles the log first, which makes the whole file
 * durable), so it reads as never saved, as a missing file does.  A file
 * of the whole size whose copies are both unreadable, zeros included,
 * is damage: its size was durable, so was what any save wrote. */
static bool never_saved(const uint8_t *buf, size_t r)
{
	static const struct kq_hard_state none = {0, 0};
	uint8_t file[STATE_SIZE];

	if (r >= STATE_SIZE)
		return false;
	encode_file(file, &none);
	for (size_t at = 0; at < STATE_SIZE; at += STATE_SLOT) {
		size_t n = r > at ? r - at : 0;
		bool zeros = true;

		n = n < STATE_SLOT ? n : STATE_SLOT;
		for (size_t i = 0; i < n && zeros; i++)
			zeros = buf[at + i] == 0;
		if (!zeros && memcmp(buf + at, file + at, n) != 0)
			return false;
	}
	return true;
}

static int damaged(struct kq_log *log)
{
	log->host->log(log->host, KQ_LOG_ERROR,
		       "%s/" STATE_FILE ": damaged hard state", log->dir);
	return KQ_ECORRUPT;
}

/* Opens raft.state to read what is on the disk, not what the page cache
 * holds: after a failed fdatasync the cache may still show a copy that
 * never became durable, and a vote read back from it could be given
 * again after a crash.  File systems without O_DIRECT (tmpfs) have no
 * disk to disagree with. */
static int open_uncached(struct kq_log *log, bool *direct)
{
	static bool warned; /* once per process: it is the file system's */
	int fd;

	*direct = true;
	fd = kq__seg_log_openat(log, STATE_FILE, O_RDONLY | O_DIRECT, 0);
	if (fd >= 0 || errno != EINVAL)
		return fd;
	*direct = false;
	fd = kq__seg_log_openat(log, STATE_FILE, O_RDONLY, 0);
	if (fd >= 0 && !warned) {
		warned = true;
		log->host->log(
			log->host, KQ_LOG_WARN,
			"%s/" STATE_FILE ": the file system has no "
			"O_DIRECT; hard states are read through the page "
			"cache, which after a failed sync may show one "
			"that never became durable",
			log->dir);
	}
	return fd;
}

int kq__seg_log_load_hard_state(struct kq_log *log, struct kq_hard_state *hs)
{
	/* O_DIRECT wants an aligned buffer and length. */
	size_t len = STATE_SIZE + STATE_SLOT;
	struct kq_hard_state copy[2];
	uint64_t seq[2];
	uint8_t *buf;
	bool ok[2], direct;
	ssize_t r;
	int fd, newer, rv;

	kq__seg_log_report(log);
	/* A folder open() made holds nothing saved yet. */
	if (log->hs_unread) {
		hs->term = 0;
		hs->vote = 0;
		return 0;
	}
	log->hs_seq = 0;
	fd = open_uncached(log, &direct);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		hs->term = 0;
		hs->vote = 0;
		return 0;
	}
	if (posix_memalign((void **)&buf, STATE_SLOT, len) != 0) {
		kq__seg_io.close(fd);
		return -ENOMEM;
	}
	/* Direct reads past an unaligned end fail, so one read: a regular
	 * file reads short only at its end. */
	r = direct ? kq__seg_io.pread(fd, buf, len, 0)
		   : kq__seg_pread_full(fd, buf, len, 0);
	if (r < 0 && direct)
		r = -errno;
	/* What was read may still sit in the device's volatile cache, or
	 * in pages a file system kept dirty after a failed write-back: the
	 * state is trusted (a vote read back may be given again) only once
	 * it is durable. */
	if (r >= 0 && kq__seg_io.fdatasync(fd) != 0)
		r = -errno;
	kq__seg_io.close(fd);
	if (r < 0) {
		rv = (int)r;
	} else if (r == STATE_V1_SIZE && memcmp(buf, "KQHS", 4) == 0 &&
		   kq_get32le(buf + 4) == 1) {
		if (kq_get32le(buf + 24) != kq__seg_crc32c(0, buf, 24)) {
			rv = damaged(log);
		} else {
			hs->term = kq_get64le(buf + 8);
			hs->vote = kq_get64le(buf + 16);
			rv = 0;
		}
	} else if (never_saved(buf, (size_t)r)) {
		/* hs_seq stays 0: the next save replaces the file whole. */
		hs->term = 0;
		hs->vote = 0;
		rv = 0;
	} else if (r != STATE_SIZE) {
		rv = damaged(log);
	} else {
		ok[0] = decode_slot(buf, &seq[0], &copy[0]);
		ok[1] = decode_slot(buf + STATE_SLOT, &seq[1], &copy[1]);
		newer = !ok[0] || (ok[1] && seq[1] > seq[0]);
		/* A copy in the other one's place is not one this module
		 * wrote. */
		if ((!ok[0] && !ok[1]) || (seq[newer] & 1) != (uint64_t)newer) {
			rv = damaged(log);
		} else {
			*hs = copy[newer];
			log->hs_seq = seq[newer];
			rv = 0;
		}
	}
	free(buf);
	return rv;
}
