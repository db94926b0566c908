/* The segment module's recovery: index rebuilds, torn tails at every byte,
 * damage in sealed segments, and the checked-in fixture files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/storage.h>

#include "../../plugins/segment/format.h"
#include "../fake_host.h"

#ifndef KQ_FIXTURES_DIR
#define KQ_FIXTURES_DIR "tests/fixtures"
#endif

#include "test_segment.h"

#define SEG0 "00000000000000000000"

static uint8_t *slurp(const char *dir, const char *name, size_t *len)
{
	char path[512];
	FILE *fp;
	uint8_t *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "rb");
	if (fp == NULL)
		fail_msg("cannot open %s", path);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *dir, const char *name, const void *buf, size_t len)
{
	char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

/* Flips one byte of a file in place. */
static void flip(const char *dir, const char *name, uint64_t pos)
{
	char path[512];
	FILE *fp;
	int c;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, (long)pos, SEEK_SET);
	c = fgetc(fp);
	fseek(fp, (long)pos, SEEK_SET);
	fputc(c ^ 0x5a, fp);
	fclose(fp);
}

/* The byte position of each record in a segment file (ends too). */
static size_t record_bounds(const uint8_t *buf, size_t len, uint64_t *pos,
			    size_t max)
{
	size_t n = 0;
	uint64_t p = KQ__SEG_HDR_SIZE;

	while (p + 4 <= len && n < max) {
		pos[n++] = p;
		p += kq_get32le(buf + p) + 4;
	}
	pos[n] = p;
	return n;
}

static void seg_name(char *buf, uint64_t base, const char *ext)
{
	snprintf(buf, 64, "%020llu.%s", (unsigned long long)base, ext);
}

/* --- index rebuild --------------------------------------------------- */

enum damage { NO_INDEX, SHORT_INDEX, GARBAGE_INDEX, SHIFTED_INDEX };

static void check_index_rebuild(enum damage how)
{
	char dir[64], name[64];
	static uint64_t offs[1500];
	void *mod = t_module("{\"index_interval_bytes\": 200}");
	struct kq_log *log;
	uint64_t term, bases[64];
	size_t nseg = 0;
	int rv;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 8192);
	assert_int_equal(t_append(log, 0, 1500, 1), 0);
	t_ops->close(log);
	for (uint64_t b = 0; b < 1500 && nseg < 64; b++) {
		seg_name(name, b, "log");
		if (t_file_size(dir, name) != UINT64_MAX)
			bases[nseg++] = b;
	}
	assert_true(nseg > 5);
	for (size_t i = 0; i < nseg; i++) {
		size_t len;
		uint8_t *ix;

		seg_name(name, bases[i], "index");
		ix = slurp(dir, name, &len);
		assert_true(len > KQ__SEG_HDR_SIZE + 5 * KQ__SEG_IENTRY_SIZE);
		switch (how) {
		case NO_INDEX: break;
		case SHORT_INDEX:
			len = KQ__SEG_HDR_SIZE + 2 * KQ__SEG_IENTRY_SIZE + 5;
			break;
		case GARBAGE_INDEX:
			for (size_t k = 0; k < len; k++)
				ix[k] = (uint8_t)(k * 73 + i);
			break;
		case SHIFTED_INDEX:
			/* Consistent on its face, wrong in fact. */
			for (size_t k = 1;
			     (k + 1) * KQ__SEG_IENTRY_SIZE + KQ__SEG_HDR_SIZE <=
			     len;
			     k++) {
				uint8_t *e = ix + KQ__SEG_HDR_SIZE +
					     k * KQ__SEG_IENTRY_SIZE;

				/* Below the truth: a read seeking there
				 * would skip the records in between. */
				kq_put64le(e, kq_get64le(e) - 1);
			}
			break;
		}
		if (how == NO_INDEX) {
			char path[160];

			snprintf(path, sizeof(path), "%s/%s", dir, name);
			assert_int_equal(unlink(path), 0);
		} else {
			spit(dir, name, ix, len);
		}
		free(ix);
	}
	log = t_open(mod, dir, 8192);
	assert_int_equal(t_ops->first_offset(log), 0);
	assert_int_equal(t_ops->next_offset(log), 1500);
	for (uint64_t from = 0; from < 1500; from += 111) {
		assert_int_equal(t_read_all(log, from, offs, 1500, &rv, NULL),
				 1500 - from);
		assert_int_equal(rv, 0);
		assert_int_equal(offs[0], from);
		assert_int_equal(t_ops->term_at(log, from, &term), 0);
		assert_int_equal(term, 1 + from / 50);
	}
	t_ops->close(log);
	/* The rebuilt indexes were written back, whole. */
	for (size_t i = 0; i < nseg; i++) {
		uint64_t sz;

		seg_name(name, bases[i], "index");
		sz = t_file_size(dir, name);
		assert_int_not_equal(sz, UINT64_MAX);
		assert_int_equal((sz - KQ__SEG_HDR_SIZE) % KQ__SEG_IENTRY_SIZE,
				 0);
		assert_true(sz > KQ__SEG_HDR_SIZE + 5 * KQ__SEG_IENTRY_SIZE);
	}
	assert_int_equal(t_count_files(dir, ".tmp"), 0);
	log = t_open(mod, dir, 8192);
	assert_int_equal(t_read_all(log, 0, offs, 1500, &rv, NULL), 1500);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

static void test_index_missing(void **state)
{
	check_index_rebuild(NO_INDEX);
}

static void test_index_short(void **state)
{
	check_index_rebuild(SHORT_INDEX);
}

static void test_index_garbage(void **state)
{
	check_index_rebuild(GARBAGE_INDEX);
}

static void test_index_shifted(void **state)
{
	check_index_rebuild(SHIFTED_INDEX);
}

/* --- torn tails ------------------------------------------------------ */

/* Cuts a 12-record segment at every byte: recovery keeps exactly the
 * complete records, truncates the rest, and the log goes on from there. */
static void test_torn_every_byte(void **state)
{
	char src[64], dir[64];
	void *mod = t_module("{\"index_interval_bytes\": 64}");
	struct kq_log *log;
	uint64_t pos[16] = {0}, offs[16] = {0}, next;
	uint8_t *logb, *ixb;
	size_t loglen, ixlen, nrec;
	int rv;

	t_mkdtemp(src);
	log = t_open(mod, src, 0);
	assert_int_equal(t_append(log, 0, 12, 1), 0);
	t_ops->close(log);
	logb = slurp(src, SEG0 ".log", &loglen);
	ixb = slurp(src, SEG0 ".index", &ixlen);
	nrec = record_bounds(logb, loglen, pos, 15);
	assert_int_equal(nrec, 12);
	assert_int_equal(pos[12], loglen);
	for (size_t len = 0; len < loglen; len++) {
		size_t whole = 0;
		int before = kq__test_nlogs;

		while (whole < nrec && pos[whole + 1] <= len)
			whole++;
		t_mkdtemp(dir);
		spit(dir, SEG0 ".log", logb, len);
		spit(dir, SEG0 ".index", ixb, ixlen);
		log = t_open(mod, dir, 0);
		assert_int_equal(t_ops->next_offset(log), whole);
		assert_int_equal(t_read_all(log, 0, offs, 16, &rv, &next),
				 whole);
		assert_int_equal(rv, 0);
		assert_int_equal(t_file_size(dir, SEG0 ".log"),
				 len < KQ__SEG_HDR_SIZE ? KQ__SEG_HDR_SIZE
							: pos[whole]);
		if (len != pos[whole])
			assert_true(kq__test_nlogs >
				    before); /* it was logged */
		/* The log goes on from the complete records. */
		assert_int_equal(t_append(log, whole, 12 - whole, 1), 0);
		t_ops->close(log);
		log = t_open(mod, dir, 0);
		assert_int_equal(t_read_all(log, 0, offs, 16, &rv, &next), 12);
		assert_int_equal(t_file_size(dir, SEG0 ".log"), loglen);
		t_ops->close(log);
		t_rmrf(dir);
	}
	free(logb);
	free(ixb);
	t_module_free(mod);
	t_rmrf(src);
}

/* A new log in a new folder `dir` with records 0..9 written and synced:
 * returns the segment's bytes (caller frees), their length in *len and
 * each record's position in pos[0..9]. */
static uint8_t *ten_records(char *dir, void *mod, uint64_t *pos, size_t *len)
{
	struct kq_log *log;
	uint8_t *buf;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, 0, 10, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	buf = slurp(dir, SEG0 ".log", len);
	assert_int_equal(record_bounds(buf, *len, pos, 15), 10);
	return buf;
}

/* Garbage after the newest segment's last record, or a last record cut
 * short, is a torn tail: dropped, and nothing is lost. */
static void test_torn_garbage(void **state)
{
	const struct kq_offset_range *lost;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16], offs[16];
	uint8_t *logb, junk[100];
	size_t loglen;
	int rv;

	logb = ten_records(dir, mod, pos, &loglen);
	/* Zeros, as a file system may leave after a crash. */
	memset(junk, 0, sizeof(junk));
	spit(dir, SEG0 ".log", logb, loglen);
	{
		char path[128];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/" SEG0 ".log", dir);
		fp = fopen(path, "ab");
		fwrite(junk, 1, sizeof(junk), fp);
		fclose(fp);
	}
	log = t_open(mod, dir, 0);
	assert_int_equal(t_read_all(log, 0, offs, 16, &rv, NULL), 10);
	assert_int_equal(t_file_size(dir, SEG0 ".log"), loglen);
	assert_int_equal(t_ops->lost(log, &lost), 0);
	t_ops->close(log);
	/* A valid record repeating the last offset is no record either. */
	{
		char path[128];
		FILE *fp;

		snprintf(path, sizeof(path), "%s/" SEG0 ".log", dir);
		fp = fopen(path, "ab");
		fwrite(logb + pos[9], 1, loglen - pos[9], fp);
		fclose(fp);
	}
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), 10);
	assert_int_equal(t_read_all(log, 0, offs, 16, &rv, NULL), 10);
	assert_int_equal(t_file_size(dir, SEG0 ".log"), loglen);
	assert_int_equal(t_ops->lost(log, &lost), 0);
	t_ops->close(log);
	/* The last record cut short: torn, nothing lost. */
	spit(dir, SEG0 ".log", logb, loglen - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), 9);
	assert_int_equal(t_file_size(dir, SEG0 ".log"), pos[9]);
	assert_int_equal(t_ops->lost(log, &lost), 0);
	t_ops->close(log);
	free(logb);
	t_module_free(mod);
	t_rmrf(dir);
}

/* How many offsets recovery keeps lost for `whole` bad records in
 * `bytes`: as many as the bytes could hold, when more (a damaged length
 * field hides records from the count). */
static uint64_t lost_count(uint64_t bytes, uint64_t whole)
{
	uint64_t most = bytes / KQ__SEG_REC_FIXED;

	return most > whole ? most : whole;
}

/* Whole records failing their checksum at the end of the newest segment,
 * nothing valid after them, were written whole and may have been
 * acknowledged: they are dropped, but their offsets are kept as lost,
 * durably, until records are appended into them again. */
static void test_lost_offsets(void **state)
{
	const struct kq_offset_range *lost;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16], offs[16], e0, e1;
	uint8_t *logb;
	size_t loglen;
	char says[64];
	int rv;

	logb = ten_records(dir, mod, pos, &loglen);
	e0 = 8 + lost_count(loglen - pos[8], 2);
	/* The values of the last two records damaged. */
	flip(dir, SEG0 ".log", pos[9] - 3);
	flip(dir, SEG0 ".log", loglen - 3);
	for (int reopen = 0; reopen < 2; reopen++) {
		log = t_open(mod, dir, 0);
		assert_int_equal(t_ops->next_offset(log), 8);
		assert_int_equal(t_read_all(log, 0, offs, 16, &rv, NULL), 8);
		assert_int_equal(t_file_size(dir, SEG0 ".log"), pos[8]);
		assert_int_equal(t_ops->lost(log, &lost), 1);
		assert_int_equal(lost[0].from, 8);
		assert_int_equal(lost[0].end, e0);
		t_ops->close(log);
	}
	snprintf(says, sizeof(says), "offsets 8..%llu (as many",
		 (unsigned long long)e0 - 1);
	assert_non_null(strstr(kq__test_lastlog, says));
	/* Appended past the range (offsets are handed out after it): the
	 * range stays. */
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, e0, 2, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), e0 + 2);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_int_equal(t_read_all(log, 0, offs, 16, &rv, NULL), 10);
	assert_int_equal(offs[8], e0);
	t_ops->close(log);
	/* Damaged again at the end: the new range follows the first. */
	e1 = t_file_size(dir, SEG0 ".log");
	{
		uint8_t *buf = slurp(dir, SEG0 ".log", &loglen);

		assert_int_equal(record_bounds(buf, loglen, pos, 16), 10);
		free(buf);
	}
	e1 = e0 + 1 + lost_count(e1 - pos[9], 1);
	flip(dir, SEG0 ".log", t_file_size(dir, SEG0 ".log") - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), e0 + 1);
	assert_int_equal(t_ops->lost(log, &lost), 2);
	assert_int_equal(lost[1].from, e0 + 1);
	assert_int_equal(lost[1].end, e1);
	/* Records appended into a range (a replica refilling what it lost)
	 * drop it, and the ones above. */
	assert_int_equal(t_ops->truncate(log, 8), 0);
	assert_int_equal(t_append(log, 8, 1, 1), 0);
	assert_int_equal(t_ops->lost(log, &lost), 0);
	t_ops->close(log);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->lost(log, &lost), 0);
	assert_int_equal(t_ops->next_offset(log), 9);
	t_ops->close(log);
	free(logb);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Whole records failing their checksum before a record cut short (a
 * later write torn by a crash) may have been acknowledged too: their
 * offsets are lost, not reused. */
static void test_lost_before_torn(void **state)
{
	const struct kq_offset_range *lost;
	char dir[64], path[128];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16];
	uint8_t *logb;
	size_t loglen;

	uint64_t end;

	logb = ten_records(dir, mod, pos, &loglen);
	end = 8 + lost_count(loglen - 3 - pos[8], 1);
	spit(dir, SEG0 ".log", logb, loglen - 3);
	flip(dir, SEG0 ".log", pos[9] - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), 8);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_int_equal(lost[0].from, 8);
	assert_int_equal(lost[0].end, end);
	/* A cut below a range keeps it (a reopen after a failed sync cuts
	 * what was never durable, not what was acknowledged before). */
	assert_int_equal(t_ops->truncate(log, 5), 0);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	t_ops->close(log);
	/* Kept even when every segment is gone. */
	snprintf(path, sizeof(path), "%s/" SEG0 ".log", dir);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/" SEG0 ".index", dir);
	unlink(path);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_int_equal(lost[0].end, end);
	t_ops->close(log);
	free(logb);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Damage that reaches below a range lost before (a record kept below
 * it, and the records appended after it) merges into one range from
 * after the last record kept: no offset in between is left out. */
static void test_lost_merges(void **state)
{
	const struct kq_offset_range *lost;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16], e0;
	uint8_t *logb, *buf;
	size_t loglen, len;

	logb = ten_records(dir, mod, pos, &loglen);
	e0 = 8 + lost_count(loglen - pos[8], 2);
	flip(dir, SEG0 ".log", pos[9] - 3);
	flip(dir, SEG0 ".log", loglen - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, e0, 2, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	/* Records 0..7, then e0 and e0 + 1: damage 7 and those two. */
	buf = slurp(dir, SEG0 ".log", &len);
	assert_int_equal(record_bounds(buf, len, pos, 16), 10);
	flip(dir, SEG0 ".log", pos[8] - 3);
	flip(dir, SEG0 ".log", pos[9] - 3);
	flip(dir, SEG0 ".log", len - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_int_equal(lost[0].from, 7);
	assert_int_equal(lost[0].end, e0 + lost_count(len - pos[7], 3));
	t_ops->close(log);
	free(buf);
	free(logb);
	t_module_free(mod);
	t_rmrf(dir);
}

/* A damaged length field sends the count of bad records astray: the
 * offsets kept lost still reach past every damaged record. */
static void test_lost_damaged_length(void **state)
{
	const struct kq_offset_range *lost;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16];
	uint8_t *logb;
	size_t loglen;

	logb = ten_records(dir, mod, pos, &loglen);
	flip(dir, SEG0 ".log", pos[7]); /* record 7's length, low byte */
	flip(dir, SEG0 ".log", pos[9] - 3);
	flip(dir, SEG0 ".log", loglen - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), 7);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_int_equal(lost[0].from, 7);
	assert_true(lost[0].end >= 10);
	t_ops->close(log);
	free(logb);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Past 16 ranges the two closest merge, so that the fewest records kept
 * between ranges are refused to readers. */
static void test_lost_bound(void **state)
{
	const struct kq_offset_range *lost;
	struct kq_offset_range first;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16], next;
	uint8_t *logb;
	size_t loglen;

	/* The first range has two kept records after it, every later one
	 * a single record. */
	logb = ten_records(dir, mod, pos, &loglen);
	free(logb);
	flip(dir, SEG0 ".log", loglen - 3);
	for (int cycle = 0; cycle < 17; cycle++) {
		log = t_open(mod, dir, 0);
		assert_int_equal(t_ops->lost(log, &lost),
				 cycle + 1 < 17 ? cycle + 1 : 16);
		if (cycle == 0)
			first = lost[0];
		next = lost[t_ops->lost(log, &lost) - 1].end;
		assert_int_equal(t_append(log, next, cycle == 0 ? 3 : 2, 1), 0);
		assert_int_equal(t_ops->sync(log), 0);
		t_ops->close(log);
		flip(dir, SEG0 ".log", t_file_size(dir, SEG0 ".log") - 3);
	}
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->lost(log, &lost), 16);
	assert_int_equal(lost[0].from, first.from);
	assert_int_equal(lost[0].end, first.end);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* A damaged record at the top of the offsets: the range kept lost stops
 * at UINT64_MAX (no offset reaches it) instead of wrapping. */
static void test_lost_at_the_top(void **state)
{
	const struct kq_offset_range *lost;
	uint64_t base = UINT64_MAX - 2;
	char dir[64], name[64];
	void *mod = t_module(NULL);
	struct kq_log *log;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->reset(log, base), 0);
	assert_int_equal(t_append(log, base, 1, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	seg_name(name, base, "log");
	flip(dir, name, t_file_size(dir, name) - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_true(lost[0].from == base);
	assert_true(lost[0].end == UINT64_MAX);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* A segment whose every record fails its checksum: the first record may
 * sit above the segment's base (a Raft log starts at 1 in segment 0), so
 * one offset more is kept lost. */
static void test_lost_whole_segment(void **state)
{
	const struct kq_offset_range *lost;
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[4];
	uint8_t *buf;
	size_t len;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, 1, 2, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	buf = slurp(dir, SEG0 ".log", &len);
	assert_int_equal(record_bounds(buf, len, pos, 4), 2);
	flip(dir, SEG0 ".log", pos[1] - 3);
	flip(dir, SEG0 ".log", len - 3);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->lost(log, &lost), 1);
	assert_int_equal(lost[0].from, 0);
	assert_int_equal(lost[0].end,
			 lost_count(len - KQ__SEG_HDR_SIZE, 2) + 1);
	t_ops->close(log);
	free(buf);
	t_module_free(mod);
	t_rmrf(dir);
}

/* A damaged lost_offsets file refuses the open, saying what to do. */
static void test_lost_offsets_damaged(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[16];
	size_t loglen;
	uint8_t *logb = ten_records(dir, mod, pos, &loglen);

	flip(dir, SEG0 ".log", loglen - 3);
	log = t_open(mod, dir, 0);
	t_ops->close(log);
	flip(dir, "lost_offsets", 14);
	assert_int_equal(t_ops->open(mod, dir, NULL, &log), KQ_ECORRUPT);
	free(logb);
	t_module_free(mod);
	t_rmrf(dir);
}

/* --- damage that is reported, not truncated -------------------------- */

/* A damaged record in the newest segment followed by valid ones is
 * damage, not a torn tail: the records after it stay, reads stop before
 * it as for a sealed segment, and no offset is handed out twice. */
static void test_damage_in_newest_keeps_later_records(void **state)
{
	char dir[64];
	/* One index entry for the whole file: recovery scans it all. */
	void *mod = t_module("{\"index_interval_bytes\": 1048576}");
	struct kq_log *log;
	uint64_t pos[64], offs[64], next, size;
	uint8_t *logb, *ixb;
	size_t loglen, ixlen;
	int rv;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, 0, 50, 1), 0);
	assert_int_equal(t_ops->sync(log), 0);
	t_ops->close(log);
	logb = slurp(dir, SEG0 ".log", &loglen);
	ixb = slurp(dir, SEG0 ".index", &ixlen);
	assert_int_equal(record_bounds(logb, loglen, pos, 63), 50);
	/* A byte of record 24's value, and then of its length field. */
	for (int round = 0; round < 2; round++) {
		spit(dir, SEG0 ".log", logb, loglen);
		spit(dir, SEG0 ".index", ixb, ixlen);
		flip(dir, SEG0 ".log", round == 0 ? pos[25] - 3 : pos[24] + 1);
		for (int reopen = 0; reopen < 2; reopen++) {
			int before = kq__test_nlogs;

			log = t_open(mod, dir, 0);
			assert_int_equal(t_ops->next_offset(log), 50);
			assert_int_equal(t_file_size(dir, SEG0 ".log"), loglen);
			if (reopen == 0)
				assert_true(kq__test_nlogs >
					    before); /* reported */
			assert_int_equal(
				t_read_all(log, 0, offs, 64, &rv, &next), 24);
			assert_int_equal(rv, KQ_ECORRUPT);
			assert_int_equal(next, 24);
			assert_int_equal(
				t_read_all(log, 25, offs, 64, &rv, &next), 25);
			assert_int_equal(rv, 0);
			assert_int_equal(offs[0], 25);
			assert_int_equal(offs[24], 49);
			t_ops->close(log);
		}
		/* New records take new offsets. */
		log = t_open(mod, dir, 0);
		assert_int_equal(t_append(log, 50, 2, 1), 0);
		assert_int_equal(t_ops->next_offset(log), 52);
		t_ops->close(log);
		size = t_file_size(dir, SEG0 ".log");
		assert_true(size > loglen);
	}
	free(logb);
	free(ixb);
	t_module_free(mod);
	t_rmrf(dir);
}

static void test_corrupt_sealed(void **state)
{
	char dir[64], name[64];
	static uint64_t offs[600];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[200], b1 = 0, b2 = 0, next, term, sz1, sz0;
	uint8_t *buf;
	size_t len, n;
	int rv, before;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_append(log, 0, 600, 1), 0);
	t_ops->close(log);
	for (uint64_t b = 1; b < 600 && b2 == 0; b++) {
		seg_name(name, b, "log");
		if (t_file_size(dir, name) == UINT64_MAX)
			continue;
		if (b1 == 0)
			b1 = b;
		else
			b2 = b;
	}
	assert_true(b2 > b1);
	/* Damage record b1 + 5 (in sealed segment 1) inside its value. */
	seg_name(name, b1, "log");
	buf = slurp(dir, name, &len);
	n = record_bounds(buf, len, pos, 199);
	assert_true(n > 6);
	free(buf);
	flip(dir, name, pos[5] + 50);
	sz1 = t_file_size(dir, name);
	sz0 = t_file_size(dir, SEG0 ".log");

	log = t_open(mod, dir, 4096);
	assert_int_equal(t_ops->next_offset(log), 600);
	assert_int_equal(t_file_size(dir, name), sz1); /* not truncated */
	before = kq__test_nlogs;
	assert_int_equal(t_read_all(log, 0, offs, 600, &rv, &next), b1 + 5);
	assert_int_equal(rv, KQ_ECORRUPT);
	assert_int_equal(next, b1 + 5);
	assert_true(kq__test_nlogs == before + 1);
	assert_non_null(strstr(kq__test_lastlog, name));
	{
		char at[64];

		snprintf(at, sizeof(at), "byte %llu",
			 (unsigned long long)pos[5]);
		assert_non_null(strstr(kq__test_lastlog, at));
	}
	/* Once per place: reading again does not log again. */
	assert_int_equal(t_read_all(log, b1 + 2, offs, 600, &rv, &next), 3);
	assert_int_equal(rv, KQ_ECORRUPT);
	assert_int_equal(next, b1 + 5);
	assert_true(kq__test_nlogs == before + 1);
	assert_int_equal(t_ops->term_at(log, b1 + 5, &term), KQ_ECORRUPT);
	assert_int_equal(t_ops->term_at(log, b1 + 4, &term), 0);
	/* Data after the damaged segment reads fine. */
	assert_int_equal(t_read_all(log, b2, offs, 600, &rv, &next), 600 - b2);
	assert_int_equal(rv, 0);
	/* Appends go on; nothing was dropped. */
	assert_int_equal(t_append(log, 600, 10, 1), 0);
	t_ops->close(log);
	assert_int_equal(t_file_size(dir, name), sz1);

	/* A damaged header of a sealed segment: open works, reads fail. */
	flip(dir, SEG0 ".log", 2);
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_read_all(log, 0, offs, 600, &rv, &next), 0);
	assert_int_equal(rv, KQ_ECORRUPT);
	assert_int_equal(next, 0);
	assert_int_equal(t_read_all(log, b2, offs, 600, &rv, &next), 610 - b2);
	t_ops->close(log);
	assert_int_equal(t_file_size(dir, SEG0 ".log"), sz0);

	/* Damage in the newest segment before its last index entry is
	 * reported too, not truncated. */
	t_rmrf(dir);
	t_module_free(mod);
	mod = t_module("{\"index_interval_bytes\": 100}");
	t_mkdtemp(dir);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, 0, 100, 1), 0);
	t_ops->close(log);
	buf = slurp(dir, SEG0 ".log", &len);
	record_bounds(buf, len, pos, 199);
	free(buf);
	flip(dir, SEG0 ".log", pos[20] + 30);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->next_offset(log), 100);
	assert_int_equal(t_file_size(dir, SEG0 ".log"), len);
	assert_int_equal(t_read_all(log, 0, offs, 600, &rv, &next), 20);
	assert_int_equal(rv, KQ_ECORRUPT);
	assert_int_equal(next, 20);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* A newest segment torn in a log of several: only it is cut. */
static void test_torn_newest_of_many(void **state)
{
	char dir[64], name[64];
	static uint64_t offs[700];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t last = 0, size;
	int rv;

	t_mkdtemp(dir);
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_append(log, 0, 700, 1), 0);
	t_ops->close(log);
	for (uint64_t b = 0; b < 700; b++) {
		seg_name(name, b, "log");
		if (t_file_size(dir, name) != UINT64_MAX)
			last = b;
	}
	seg_name(name, last, "log");
	size = t_file_size(dir, name);
	{
		char path[160];

		snprintf(path, sizeof(path), "%s/%s", dir, name);
		assert_int_equal(truncate(path, (off_t)size - 7), 0);
	}
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_ops->next_offset(log), 699);
	assert_int_equal(t_read_all(log, 0, offs, 700, &rv, NULL), 699);
	assert_int_equal(rv, 0);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* --- fixtures -------------------------------------------------------- */

/* Copies tests/fixtures/segment/<which> into a fresh folder. */
static void copy_fixture(const char *which, char *dir)
{
	static const char *const files[] = {SEG0 ".log", SEG0 ".index",
					    "00000000000000000037.log",
					    "00000000000000000037.index"};
	char from[512], to[512];

	t_mkdtemp(dir);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(from, sizeof(from), "%s/segment/%s/%s",
			 KQ_FIXTURES_DIR, which, files[i]);
		if (access(from, R_OK) != 0)
			continue;
		snprintf(to, sizeof(to), "%s/%s", dir, files[i]);
		t_copy_file(from, to);
	}
}

static void test_fixture_valid(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t offs[32];
	int rv;

	copy_fixture("valid", dir);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_ops->first_offset(log), 0);
	assert_int_equal(t_ops->next_offset(log), 10);
	assert_int_equal(t_read_all(log, 0, offs, 32, &rv, NULL), 10);
	assert_int_equal(rv, 0);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

static void test_fixture_torn(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t offs[32];
	int rv, before = kq__test_nlogs;

	copy_fixture("torn", dir);
	log = t_open(mod, dir, 0);
	assert_true(kq__test_nlogs > before);
	assert_non_null(strstr(kq__test_lastlog, "torn tail"));
	assert_int_equal(t_ops->next_offset(log), 9);
	assert_int_equal(t_read_all(log, 0, offs, 32, &rv, NULL), 9);
	assert_int_equal(rv, 0);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

static void test_fixture_corrupt(void **state)
{
	char dir[64];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t offs[64], next;
	int rv;

	copy_fixture("corrupt", dir);
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_ops->next_offset(log), 50);
	assert_int_equal(t_read_all(log, 0, offs, 64, &rv, &next), 5);
	assert_int_equal(rv, KQ_ECORRUPT);
	assert_int_equal(next, 5);
	assert_int_equal(t_read_all(log, 37, offs, 64, &rv, &next), 13);
	assert_int_equal(rv, 0);
	t_ops->close(log);
	t_module_free(mod);
	t_rmrf(dir);
}

/* Writes the fixture folders under `out` (run the test program with
 * KQ_SEGMENT_WRITE_FIXTURES=<dir> to regenerate them). */
static void write_fixtures(const char *out)
{
	char dir[512];
	void *mod = t_module(NULL);
	struct kq_log *log;
	uint64_t pos[64];
	uint8_t *buf;
	size_t len;

	snprintf(dir, sizeof(dir), "%s/valid", out);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, 0, 10, 1), 0);
	t_ops->close(log);

	snprintf(dir, sizeof(dir), "%s/torn", out);
	log = t_open(mod, dir, 0);
	assert_int_equal(t_append(log, 0, 10, 1), 0);
	t_ops->close(log);
	buf = slurp(dir, SEG0 ".log", &len);
	record_bounds(buf, len, pos, 63);
	spit(dir, SEG0 ".log", buf, pos[9] + (pos[10] - pos[9]) / 2);
	free(buf);

	snprintf(dir, sizeof(dir), "%s/corrupt", out);
	log = t_open(mod, dir, 4096);
	assert_int_equal(t_append(log, 0, 50, 1), 0);
	t_ops->close(log);
	assert_int_not_equal(t_file_size(dir, "00000000000000000037.log"),
			     UINT64_MAX);
	buf = slurp(dir, SEG0 ".log", &len);
	record_bounds(buf, len, pos, 63);
	free(buf);
	flip(dir, SEG0 ".log", pos[5] + 46);
	t_module_free(mod);
}

int run_recovery_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_index_missing),
		cmocka_unit_test(test_index_short),
		cmocka_unit_test(test_index_garbage),
		cmocka_unit_test(test_index_shifted),
		cmocka_unit_test(test_torn_every_byte),
		cmocka_unit_test(test_torn_garbage),
		cmocka_unit_test(test_lost_offsets),
		cmocka_unit_test(test_lost_offsets_damaged),
		cmocka_unit_test(test_lost_before_torn),
		cmocka_unit_test(test_lost_whole_segment),
		cmocka_unit_test(test_lost_merges),
		cmocka_unit_test(test_lost_damaged_length),
		cmocka_unit_test(test_lost_bound),
		cmocka_unit_test(test_lost_at_the_top),
		cmocka_unit_test(test_torn_newest_of_many),
		cmocka_unit_test(test_damage_in_newest_keeps_later_records),
		cmocka_unit_test(test_corrupt_sealed),
		cmocka_unit_test(test_fixture_valid),
		cmocka_unit_test(test_fixture_torn),
		cmocka_unit_test(test_fixture_corrupt),
	};
	const char *out = getenv("KQ_SEGMENT_WRITE_FIXTURES");

	if (out != NULL) {
		write_fixtures(out);
		return 0;
	}
	return cmocka_run_group_tests_name("segment recovery", tests, NULL,
					   NULL);
}
