/* Reading a secret from a file named in the configuration: the cluster
 * secret (checked by the core, loaded by the raft module) and telnet's
 * password.  One set of rules for all of them, and one for the cluster
 * secret's length, which the core and the raft module both apply.
 * Header-only; nothing to link. */
#ifndef KAFKAESQUE_SECRET_H
#define KAFKAESQUE_SECRET_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads the regular file `path` into buf (cap bytes, caller-owned; pass
 * one byte more than the longest secret allowed, plus two for a final
 * CRLF, so that a longer one shows as longer), and drops one final "\n"
 * or "\r\n".  Returns 0 with *len and the file's permission bits in
 * *mode, or -1 with `why` (whylen bytes) saying what is wrong and buf
 * wiped.  A FIFO or device is refused, not waited
 * on.  The caller wipes buf once done with the secret. */
static inline int kq_secret_read(const char *path, void *buf, size_t cap,
				 size_t *len, mode_t *mode, char *why,
				 size_t whylen)
{
	unsigned char *b = buf;
	struct stat st;
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	int err = 0;

	if (fd < 0) {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		snprintf(why, whylen, "not a regular file");
		return -1;
	}
	while (n < cap) {
		ssize_t r = read(fd, b + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	if (err) {
		memset(b, 0, cap);
		snprintf(why, whylen, "cannot read: %s", strerror(err));
		return -1;
	}
	if (n > 0 && b[n - 1] == '\n') {
		n--;
		if (n > 0 && b[n - 1] == '\r')
			n--;
	}
	*len = n;
	*mode = st.st_mode & 07777;
	return 0;
}

/* The cluster secret: the shortest accepted, once one final newline is
 * dropped, and the longest file read. */
#define KQ_CLUSTER_SECRET_MIN 16
#define KQ_CLUSTER_SECRET_MAX 4096

/* Why a cluster secret of `len` bytes is refused, in words, or NULL when
 * it is accepted. */
static inline const char *kq_cluster_secret_refused(size_t len)
{
	if (len > KQ_CLUSTER_SECRET_MAX)
		return "longer than 4096 bytes";
	if (len == 0)
		return "empty";
	if (len < KQ_CLUSTER_SECRET_MIN)
		return "shorter than 16 bytes";
	return NULL;
}

#endif /* KAFKAESQUE_SECRET_H */
