/* libFuzzer target for the segment module's recovery, on an in-memory file
 * system (memfs.c), so it runs at memory speed.
 *
 * Input: one flags byte, then files, each a chunk
 *   kind (1 byte) | base (8 bytes, little-endian) | length (2) | bytes
 * kind bit 0: 0 a .log file, 1 an .index file; bit 1: put a valid header
 * of that kind and base before the bytes (so mutations reach records).
 * Flags: bits 0-1 pick the index interval, bit 2 appends records after
 * recovery and reopens the log, bit 3 truncates first, bit 4 runs retention and
 * compaction, bits 5-7 (when non-zero) fail a file change partway
 * through the workload.
 *
 * Invariants: nothing crashes or leaks (descriptors included); every
 * record read passes its checksum and offsets increase; offsets lost to
 * damage are in order and hold no record; without injected
 * faults, a recovered log takes appends, and what was appended and synced
 * is all there after reopening; a cut keeps the offsets lost.  At most 8 files
 * are made. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/storage.h>

#include "../../plugins/segment/format.h"
#include "../fake_host.h"
#include "memfs.h"

const struct kq_plugin_desc *kq_plugin_entry(void);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__asan_default_options(void);

/* Speed is most of what this target is for.  A run allocates well under
 * a megabyte: a smaller quarantine still catches use after free within
 * it, and spares the page faults of cycling through the default 256 MB.
 * Filling fresh allocations (a debugging aid, not a check) costs a
 * quarter of the time. */
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16:max_malloc_fill_size=0";
}

#define DIR_ "/kq/log"

static const struct kq_storage_ops *ops;
static struct kq_host hosts[4];
static void *mods[4];

/* One host per index interval, made once; its module is made for each
 * input (it holds a descriptor on the file system once a log opened). */
static void setup(void)
{
	static const int intervals[4] = {4096, 1, 64, 512};

	kq__memfs_install();
	ops = kq_plugin_entry()->ops;
	for (int i = 0; i < 4; i++) {
		json_t *cfg = json_pack("{s:i, s:s}", "index_interval_bytes",
					intervals[i], "fsync", "always");

		/* cfg is kept for the process's life. */
		hosts[i] = kq__test_host("segment", cfg);
	}
}

struct scan {
	uint64_t last;
	size_t n;
	int started;
};

static int check(void *ctx, const struct kq_record *rec)
{
	struct scan *s = ctx;

	if (s->started && rec->offset <= s->last)
		abort();
	if ((rec->key_len && !rec->key) || (rec->value_len && !rec->value))
		abort();
	s->started = 1;
	s->last = rec->offset;
	s->n++;
	return 0;
}

/* Lost ranges are non-empty, in order, and hold no record. */
static void check_lost(struct kq_log *log)
{
	const struct kq_offset_range *r;
	int n = ops->lost(log, &r);

	for (int i = 0; i < n; i++) {
		uint64_t term;

		if (r[i].from >= r[i].end || (i && r[i].from < r[i - 1].end))
			abort();
		if (ops->term_at(log, r[i].from, &term) != -ENOENT &&
		    r[i].from < ops->next_offset(log) &&
		    r[i].from >= ops->first_offset(log))
			abort();
	}
}

/* Reads [first, next) in small steps; returns the records read. */
static size_t read_all(struct kq_log *log)
{
	struct scan s = {0, 0, 0};
	uint64_t from = ops->first_offset(log), end = ops->next_offset(log);
	uint64_t next;

	while (from < end) {
		int rv = ops->read(log, from, end, 512, check, &s, &next);

		if (rv <= 0 || next <= from)
			break;
		from = next;
	}
	return s.n;
}

static void put_file(const uint8_t *chunk, size_t len, int kind, uint64_t base,
		     int header)
{
	char path[128];
	uint8_t *buf = malloc(len + KQ__SEG_HDR_SIZE);
	size_t off = 0;

	if (!buf)
		abort();
	if (header) {
		kq__seg_header_encode(
			buf, kind ? KQ__SEG_FILE_INDEX : KQ__SEG_FILE_LOG,
			base);
		off = KQ__SEG_HDR_SIZE;
	}
	memcpy(buf + off, chunk, len);
	snprintf(path, sizeof(path), DIR_ "/%020llu.%s",
		 (unsigned long long)base, kind ? "index" : "log");
	kq__memfs_put(path, buf, off + len);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kq_log_options opts = {.segment_bytes = 4096,
				      .retention_ms = -1,
				      .retention_bytes = -1};
	struct kq_log *log;
	uint8_t flags;
	void *mod;
	uint64_t next1, appended = 0;
	int faults, unsure = 0;

	if (!ops)
		setup();
	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	if (ops->init(&hosts[flags & 3], &mods[flags & 3]) != 0)
		abort();
	mod = mods[flags & 3];
	faults = flags >> 5;
	kq__memfs_mkdir(DIR_);
	/* A few files are enough for every recovery path, and bound the
	 * time one input takes. */
	for (int nfiles = 0; size >= 11 && nfiles < 8; nfiles++) {
		uint8_t kind = data[0];
		uint64_t base = kq_get64le(data + 1);
		size_t len = (size_t)data[9] | (size_t)data[10] << 8;

		data += 11;
		size -= 11;
		if (len > size)
			len = size;
		put_file(data, len, kind & 1, base, kind & 2);
		data += len;
		size -= len;
	}
	if (faults)
		kq__memfs_fail_after(faults * 3 - 1, faults & 1 ? EIO : ENOSPC);

	if (ops->open(mod, DIR_, &opts, &log) != 0)
		goto out;
	check_lost(log);
	read_all(log);
	next1 = ops->next_offset(log);
	/* Dropping records may leave an older, damaged segment newest, or
	 * fail halfway: the reopened log is then checked for safety only. */
	unsure = (flags & 24) != 0;
	if (flags & 8) {
		uint64_t first = ops->first_offset(log);
		uint64_t cut = first + (next1 - first) / 2;
		const struct kq_offset_range *r;
		struct kq_offset_range was[16];
		int n = ops->lost(log, &r);

		/* A cut keeps the offsets lost: it must never free one. */
		memcpy(was, r, (size_t)n * sizeof(*r));
		if (ops->truncate(log, cut) == 0 &&
		    (ops->next_offset(log) > cut || ops->lost(log, &r) != n ||
		     memcmp(was, r, (size_t)n * sizeof(*r)) != 0))
			abort();
		next1 = ops->next_offset(log);
	}
	if (flags & 16) {
		uint64_t before, was = ops->first_offset(log);

		/* Retention as the broker runs it: the point, then
		 * compaction up to it; the point alone deletes nothing. */
		if (ops->retention_point(log, INT64_MAX / 2, &before) == 0) {
			if (ops->first_offset(log) != was)
				abort();
			ops->compact(log, before);
		}
		ops->compact(log, next1);
		read_all(log);
	}
	if (flags & 4) {
		struct kq_record recs[3];
		char body[3][600];

		memset(recs, 0, sizeof(recs));
		for (int i = 0; i < 3; i++) {
			memset(body[i], 'a' + i, sizeof(body[i]));
			recs[i].offset = next1 + (uint64_t)i * 2;
			recs[i].term = 1;
			recs[i].key = i == 1 ? "k" : NULL;
			recs[i].key_len = i == 1 ? 1 : 0;
			recs[i].value = body[i];
			recs[i].value_len = (uint32_t)(200 * (i + 1));
		}
		if (next1 < UINT64_MAX - 16 && ops->append(log, recs, 3) == 0 &&
		    ops->sync(log) == 0)
			appended = recs[2].offset + 1;
		else if (next1 < UINT64_MAX - 16 && !faults && !unsure)
			abort(); /* a recovered log must take appends */
	}
	ops->close(log);
	if (!(flags & 4))
		goto out;

	/* Reopened: recovery of what recovery (and our append) left. */
	if (ops->open(mod, DIR_, &opts, &log) != 0) {
		if (!faults && !unsure)
			abort();
		goto out;
	}
	if (!faults && !unsure && appended && ops->next_offset(log) != appended)
		abort();
	read_all(log);
	ops->close(log);
out:
	ops->fini(mod);
	if (kq__memfs_reset() != 0)
		abort(); /* a descriptor or listing left open */
	return 0;
}
