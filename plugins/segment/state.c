/* The durable hard state (Raft term and vote) in raft.state. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "io.h"
#include "log.h"

#define STATE_FILE "raft.state"
#define STATE_TMP  "raft.state.tmp"
#define STATE_SIZE 28

int kq__log_save_hard_state(struct kq_log *log, const struct kq_hard_state *hs)
{
	uint8_t buf[STATE_SIZE];
	int rv;

	kq__log_report(log);
	if (kq__log_failed(log) != 0)
		return KQ_EUNAVAILABLE;
	memcpy(buf, "KQHS", 4);
	kq_put32le(buf + 4, KQ__FORMAT_VERSION);
	kq_put64le(buf + 8, hs->term);
	kq_put64le(buf + 16, hs->vote);
	kq_put32le(buf + 24, kq__crc32c(0, buf, 24));
	rv = kq__log_replace_file(log, STATE_FILE, STATE_TMP, buf, sizeof(buf));
	if (rv == 0)
		return 0;
	kq__log_fail(log, rv, "saving the hard state: %s", strerror(-rv));
	kq__log_report(log);
	return rv;
}

int kq__log_load_hard_state(struct kq_log *log, struct kq_hard_state *hs)
{
	uint8_t buf[STATE_SIZE + 1];
	ssize_t r;
	int fd;

	kq__log_report(log);
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
	if (r != STATE_SIZE || memcmp(buf, "KQHS", 4) != 0 ||
	    kq_get32le(buf + 24) != kq__crc32c(0, buf, 24) ||
	    kq_get32le(buf + 4) != KQ__FORMAT_VERSION) {
		log->host->log(log->host, KQ_LOG_ERROR,
			       "%s/" STATE_FILE ": damaged hard state",
			       log->dir);
		return KQ_ECORRUPT;
	}
	hs->term = kq_get64le(buf + 8);
	hs->vote = kq_get64le(buf + 16);
	return 0;
}
