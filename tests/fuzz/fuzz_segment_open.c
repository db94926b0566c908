/* libFuzzer target for the segment module's recovery and reads: the input
 * becomes the newest segment file of a log (after a valid header, so that
 * records are reached), the log is opened, which validates and truncates
 * its tail and rebuilds the index, and then read from start to end.
 * Nothing may crash, and every record read must pass its checksum.
 *
 * Built on request: make fuzz-segment && ./fuzz_segment_open -max_total_time=60
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kafkaesque/storage.h>

#include "../../plugins/segment/format.h"

const struct kq_plugin_desc *kq_plugin_entry(void);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void quiet(const struct kq_host *h, enum kq_log_level l, const char *fmt,
		  ...)
{
}

static struct kq_host host = {
	.abi = KQ_PLUGIN_ABI,
	.module = "segment",
	.log = quiet,
	.malloc = malloc,
	.realloc = realloc,
	.free = free,
};

static int count(void *ctx, const struct kq_record *rec)
{
	(*(size_t *)ctx)++;
	return 0;
}

static char dir[] = "/tmp/kq-fuzz-segment-XXXXXX";

/* Leaves no folder behind: everything in it, then it. */
static void remove_dir(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct kq_storage_ops *ops;
	static void *mod;
	struct kq_log_options opts = {0, -1, -1};
	uint8_t hdr[KQ__HDR_SIZE];
	struct kq_log *log;
	char path[128];
	uint64_t next = 0;
	size_t n = 0;
	int fd;

	if (!ops) {
		if (!mkdtemp(dir))
			abort();
		atexit(remove_dir);
		ops = kq_plugin_entry()->ops;
		if (ops->init(&host, &mod) != 0)
			abort();
	}
	snprintf(path, sizeof(path), "%s/00000000000000000000.log", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	kq__header_encode(hdr, KQ__FILE_LOG, 0);
	if (fd < 0 || write(fd, hdr, sizeof(hdr)) != (ssize_t)sizeof(hdr) ||
	    write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	snprintf(path, sizeof(path), "%s/00000000000000000000.index", dir);
	unlink(path);
	if (ops->open(mod, dir, &opts, &log) == 0) {
		ops->read(log, ops->first_offset(log), ops->next_offset(log),
			  SIZE_MAX, count, &n, &next);
		ops->close(log);
	}
	return 0;
}
