/* The durable hard state (Raft term and vote) in raft.state. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "io.h"
#include "log.h"

#define STATE_FILE "raft.state"
#define STATE_TMP  "raft.state.tmp"
/* Format 1: one copy of 28 bytes, replaced by a rename.  Read, and
 * rewritten as format 2 at the first save. */
#define STATE_V1_SIZE 28
/* Format 2: two copies in sectors of their own, each with a sequence
 * number; a save overwrites the older copy in place, so it costs one
 * write and one fdatasync instead of a file creation, a rename and two
 * fsyncs.  A torn write damages only the copy being written, whose save
 * never returned: the other still holds the state before it. */
#define STATE_VERSION	2
#define STATE_SLOT	512
#define STATE_SLOT_SIZE 36
#define STATE_SIZE	(2 * STATE_SLOT)

static void encode_slot(uint8_t *b, uint64_t seq,
			const struct kq_hard_state *hs)
{
	memcpy(b, "KQHS", 4);
	kq_put32le(b + 4, STATE_VERSION);
	kq_put64le(b + 8, seq);
	kq_put64le(b + 16, hs->term);
	kq_put64le(b + 24, hs->vote);
	kq_put32le(b + 32, kq__crc32c(0, b, 32));
}

static bool decode_slot(const uint8_t *b, uint64_t *seq,
			struct kq_hard_state *hs)
{
	if (memcmp(b, "KQHS", 4) != 0 ||
	    kq_get32le(b + 4) != STATE_VERSION ||
	    kq_get32le(b + 32) != kq__crc32c(0, b, 32))
		return false;
	*seq = kq_get64le(b + 8);
	hs->term = kq_get64le(b + 16);
	hs->vote = kq_get64le(b + 24);
	return true;
}

/* Overwrites the older copy: `seq` says which. */
static int save_in_place(struct kq_log *log, uint64_t seq,
			 const struct kq_hard_state *hs)
{
	uint8_t b[STATE_SLOT_SIZE];
	int fd, rv;

	encode_slot(b, seq, hs);
	fd = kq__log_openat(log, STATE_FILE, O_WRONLY, 0);
	if (fd < 0)
		return -errno;
	rv = kq__pwrite_all(fd, b, sizeof(b), (seq & 1) * STATE_SLOT);
	if (rv == 0 && kq__seg_io.fdatasync(fd) != 0)
		rv = -errno;
	kq__seg_io.close(fd);
	return rv;
}

int kq__log_save_hard_state(struct kq_log *log, const struct kq_hard_state *hs)
{
	uint8_t file[STATE_SIZE];
	int rv;

	kq__log_report(log);
	if (kq__log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	if (log->hs_seq != 0) {
		rv = save_in_place(log, log->hs_seq + 1, hs);
		if (rv == 0)
			log->hs_seq++;
	} else {
		/* No file of format 2 yet: both copies, replaced whole. */
		memset(file, 0, sizeof(file));
		encode_slot(file, 2, hs);
		encode_slot(file + STATE_SLOT, 1, hs);
		rv = kq__log_replace_file(log, STATE_FILE, STATE_TMP, file,
					  sizeof(file));
		if (rv == 0)
			log->hs_seq = 2;
	}
	if (rv == 0)
		return 0;
	kq__log_fail(log, rv, "saving the hard state: %s", strerror(-rv));
	kq__log_report(log);
	return rv;
}

static int damaged(struct kq_log *log)
{
	log->host->log(log->host, KQ_LOG_ERROR,
		       "%s/" STATE_FILE ": damaged hard state", log->dir);
	return KQ_ECORRUPT;
}

int kq__log_load_hard_state(struct kq_log *log, struct kq_hard_state *hs)
{
	uint8_t buf[STATE_SIZE + 1];
	struct kq_hard_state copy[2];
	uint64_t seq[2];
	bool ok[2];
	ssize_t r;
	int fd, newer;

	kq__log_report(log);
	log->hs_seq = 0;
	fd = kq__log_openat(log, STATE_FILE, O_RDONLY, 0);
	if (fd < 0) {
		if (errno != ENOENT)
			return -errno;
		hs->term = 0;
		hs->vote = 0;
		return 0;
	}
	r = kq__pread_full(fd, buf, sizeof(buf), 0);
	kq__seg_io.close(fd);
	if (r < 0)
		return (int)r;
	if (r == STATE_V1_SIZE) {
		if (memcmp(buf, "KQHS", 4) != 0 || kq_get32le(buf + 4) != 1 ||
		    kq_get32le(buf + 24) != kq__crc32c(0, buf, 24))
			return damaged(log);
		hs->term = kq_get64le(buf + 8);
		hs->vote = kq_get64le(buf + 16);
		return 0;
	}
	if (r != STATE_SIZE)
		return damaged(log);
	ok[0] = decode_slot(buf, &seq[0], &copy[0]);
	ok[1] = decode_slot(buf + STATE_SLOT, &seq[1], &copy[1]);
	if (!ok[0] && !ok[1])
		return damaged(log);
	newer = !ok[0] || (ok[1] && seq[1] > seq[0]);
	/* A copy in the other one's place is not one this module wrote. */
	if ((seq[newer] & 1) != (uint64_t)newer)
		return damaged(log);
	*hs = copy[newer];
	log->hs_seq = seq[newer];
	return 0;
}
