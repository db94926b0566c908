/* The segment storage module: format, config, round trips, rolling,
 * truncation, retention and hard state.  Recovery and fault injection
 * live in test_segment_recovery.c and test_segment_faults.c; the helpers
 * here are shared with them (see "shared helpers" below). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/storage.h>

#include "../../plugins/segment/crc32c.h"
#include "../../plugins/segment/format.h"
#include "../../plugins/segment/io.h"
#include "../fake_host.h"

const struct kq_plugin_desc *kq_plugin_entry(void);

#include "test_segment.h"

const struct kq_storage_ops *t_ops;

static struct kq_host host;
static json_t *host_config;

void t_host_setup(const char *config_json)
{
	json_decref(host_config);
	host_config = NULL;
	if (config_json != NULL) {
		host_config = json_loads(config_json, 0, NULL);
		assert_non_null(host_config);
	}
	host = kq__test_host("segment", host_config);
	t_ops = kq_plugin_entry()->ops;
}

void *t_module(const char *config_json)
{
	void *mod = NULL;

	t_host_setup(config_json);
	assert_int_equal(t_ops->init(&host, &mod), 0);
	return mod;
}

void t_module_free(void *mod)
{
	t_ops->fini(mod);
	json_decref(host_config);
	host_config = NULL;
}

/* A fresh folder under $TMPDIR (or /tmp); buf holds 64 bytes. */
void t_mkdtemp(char *buf)
{
	const char *tmp = getenv("TMPDIR");

	if (tmp == NULL || *tmp == '\0' || strlen(tmp) > 40)
		tmp = "/tmp";
	snprintf(buf, 64, "%s/kq-segment-XXXXXX", tmp);
	assert_non_null(mkdtemp(buf));
}

/* Removes a test folder and the files in it (they hold no folders). */
void t_rmrf(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[512];

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0)
			t_rmrf(path); /* a folder (several logs in one test) */
	}
	closedir(d);
	rmdir(dir);
}

struct kq_log *t_open(void *mod, const char *dir, uint64_t segment_bytes)
{
	struct kq_log_options opts = {
		.segment_bytes = segment_bytes,
		.retention_ms = -1,
		.retention_bytes = -1,
	};
	struct kq_log *log = NULL;
	int rv = t_ops->open(mod, dir, &opts, &log);

	if (rv != 0)
		fail_msg("open %s: %s (%s)", dir, kq_strerror(rv),
			 kq__test_lastlog);
	return log;
}

/* A deterministic record for `offset`: odd offsets carry a key, the value
 * length varies, every byte depends on the offset.  `storage` holds at
 * least 160 bytes. */
void t_rec(struct kq_record *r, uint64_t offset, uint8_t *storage)
{
	size_t vlen = 20 + (size_t)(offset * 7 % 90);

	memset(r, 0, sizeof(*r));
	r->offset = offset;
	r->term = 1 + offset / 50;
	r->timestamp_ms = 1700000000000 + (int64_t)offset;
	r->flags = offset % 10 == 3 ? KQ_RECORD_CONTROL : 0;
	if (offset % 2 == 1) {
		snprintf((char *)storage, 32, "k%llu",
			 (unsigned long long)offset);
		r->key = storage;
		r->key_len = (uint32_t)strlen((char *)storage);
	}
	for (size_t i = 0; i < vlen; i++)
		storage[32 + i] = (uint8_t)(offset * 31 + i);
	r->value = storage + 32;
	r->value_len = (uint32_t)vlen;
}

/* Appends n records from `from`, offsets `step` apart, in one call. */
int t_append(struct kq_log *log, uint64_t from, size_t n, uint64_t step)
{
	struct kq_record *recs = calloc(n ? n : 1, sizeof(*recs));
	uint8_t *store = malloc((n ? n : 1) * 160);
	int rv;

	for (size_t i = 0; i < n; i++)
		t_rec(&recs[i], from + i * step, store + i * 160);
	rv = t_ops->append(log, recs, n);
	free(recs);
	free(store);
	return rv;
}

struct collect {
	uint64_t *offs;
	size_t n, max;
	bool bad;
};

/* Checks every record read against t_rec() of its offset. */
static int collect_cb(void *ctx, const struct kq_record *rec)
{
	struct collect *c = ctx;
	uint8_t store[160];
	struct kq_record want;

	t_rec(&want, rec->offset, store);
	if (rec->term != want.term || rec->timestamp_ms != want.timestamp_ms ||
	    rec->flags != want.flags || rec->key_len != want.key_len ||
	    rec->value_len != want.value_len ||
	    (want.key_len && memcmp(rec->key, want.key, want.key_len) != 0) ||
	    (rec->key_len == 0 && rec->key != NULL) ||
	    memcmp(rec->value, want.value, want.value_len) != 0)
		c->bad = true;
	if (c->n < c->max)
		c->offs[c->n] = rec->offset;
	c->n++;
	return 0;
}

/* Reads everything from `from` in pieces of at most 4 KiB, checking the
 * records; stops at the first error (returned in *rv). */
size_t t_read_all(struct kq_log *log, uint64_t from, uint64_t *offs, size_t max,
		  int *rv, uint64_t *next)
{
	struct collect c = {.offs = offs, .max = max};
	uint64_t at = from, nx = from;

	*rv = 0;
	for (;;) {
		int r = t_ops->read(log, at, UINT64_MAX, 4096, collect_cb, &c,
				    &nx);

		if (r < 0) {
			*rv = r;
			break;
		}
		if (r == 0)
			break;
		assert_true(nx > at);
		at = nx;
	}
	if (next != NULL)
		*next = nx;
	assert_false(c.bad);
	return c.n;
}

size_t t_count_files(const char *dir, const char *ext)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0, el = strlen(ext);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len > el && strcmp(de->d_name + len - el, ext) == 0)
			n++;
	}
	closedir(d);
	return n;
}

uint64_t t_file_size(const char *dir, const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) != 0)
		return UINT64_MAX;
	return (uint64_t)st.st_size;
}

void t_copy_file(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rb"), *out;
	size_t n;

	if (in == NULL)
		fail_msg("cannot open %s", from);
	out = fopen(to, "wb");
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* --- fixtures: a module and an empty folder per test ----------------- */

struct fx {
	char dir[64];
	void *mod;
	struct kq_log *log;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	t_mkdtemp(f->dir);
	f->mod = t_module(NULL);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	if (f->log != NULL)
		t_ops->close(f->log);
	t_module_free(f->mod);
	t_rmrf(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fx *f, uint64_t segment_bytes)
{
	t_ops->close(f->log);
	f->log = t_open(f->mod, f->dir, segment_bytes);
}

/* --- the format ------------------------------------------------------ */

static void test_crc32c(void **state)
{
	static const char check[] = "123456789";
	uint8_t buf[1000];

	assert_int_equal(kq__seg_crc32c(0, check, 9), 0xE3069283u);
	assert_int_equal(kq__seg_crc32c_table(0, check, 9), 0xE3069283u);
	assert_int_equal(kq__seg_crc32c(0, "", 0), 0);
	/* Incremental use equals one pass. */
	assert_int_equal(
		kq__seg_crc32c(kq__seg_crc32c(0, check, 4), check + 4, 5),
		0xE3069283u);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t off = 0; off < 9; off++)
		for (size_t len = 0; len + off <= sizeof(buf); len += 37)
			assert_int_equal(
				kq__seg_crc32c(0, buf + off, len),
				kq__seg_crc32c_table(0, buf + off, len));
	/* 32 bytes of zeros: the RFC 3720 (iSCSI) test vector. */
	memset(buf, 0, 32);
	assert_int_equal(kq__seg_crc32c(0, buf, 32), 0x8A9136AAu);
}

static void test_record_codec(void **state)
{
	uint8_t store[160], buf[256];
	struct kq_record r, out;
	uint64_t size;

	for (uint64_t off = 0; off < 4; off++) {
		t_rec(&r, off, store);
		kq__seg_record_encode(buf, &r);
		assert_int_equal(
			kq__seg_record_decode(buf, sizeof(buf), &out, &size),
			KQ__SEG_REC_OK);
		assert_int_equal(size, kq__seg_record_size(&r));
		assert_int_equal(out.offset, off);
		assert_int_equal(out.term, r.term);
		assert_int_equal(out.timestamp_ms, r.timestamp_ms);
		assert_int_equal(out.key_len, r.key_len);
		assert_memory_equal(out.value, r.value, r.value_len);
		/* Every prefix is short, every flipped bit is caught. */
		for (uint64_t len = 0; len < size; len++)
			assert_int_equal(
				kq__seg_record_decode(buf, len, &out, &size),
				KQ__SEG_REC_SHORT);
		for (uint64_t bit = 0; bit < size * 8; bit++) {
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			assert_int_not_equal(
				kq__seg_record_decode(buf, size, &out, &size),
				KQ__SEG_REC_OK);
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			size = kq__seg_record_size(&r);
		}
	}
	/* The layout is fixed: length, crc, offset at byte 8. */
	t_rec(&r, 0x0102030405060708ull, store);
	kq__seg_record_encode(buf, &r);
	assert_int_equal(kq_get32le(buf), kq__seg_record_size(&r) - 4);
	assert_int_equal(kq_get64le(buf + 8), 0x0102030405060708ull);
	assert_int_equal(buf[8], 0x08);
}

static void test_plugin_desc(void **state)
{
	const struct kq_plugin_desc *d = kq_plugin_entry();
	const struct kq_storage_ops *ops = d->ops;
	uint32_t ms = 0;
	void *mod;

	assert_int_equal(d->abi, KQ_PLUGIN_ABI);
	assert_int_equal(d->kind, KQ_PLUGIN_STORAGE);
	assert_string_equal(d->name, "segment");
	mod = t_module(NULL);
	assert_int_equal(ops->sync_policy(mod, &ms), KQ_SYNC_ALWAYS);
	assert_int_equal(ms, 1000);
	t_module_free(mod);
	mod = t_module("{\"fsync\": \"interval\", \"fsync_interval_ms\": 50,"
		       " \"segment_bytes\": 4096,"
		       " \"index_interval_bytes\": 128}");
	assert_int_equal(ops->sync_policy(mod, &ms), KQ_SYNC_INTERVAL);
	assert_int_equal(ms, 50);
	t_module_free(mod);
	mod = t_module("{\"fsync\": \"never\"}");
	assert_int_equal(ops->sync_policy(mod, &ms), KQ_SYNC_NEVER);
	t_module_free(mod);
}

/* The descriptor a module holds on its logs' file system until fini,
 * for syncfs() (fsys.c). */
#define FSYS_FD 1

static void expect_config_error(const char *json, const char *msg)
{
	void *mod = NULL;
	int before;

	t_host_setup(json);
	before = kq__test_nlogs;
	assert_int_equal(t_ops->init(&host, &mod), KQ_ECONFIG);
	assert_int_equal(kq__test_nlogs, before + 1);
	assert_string_equal(kq__test_lastlog, msg);
	t_host_setup(NULL);
}

static void test_config_errors(void **state)
{
	expect_config_error("{\"fsync\": \"sometimes\"}",
			    "segment.fsync: expected one of always, "
			    "interval, never");
	expect_config_error("{\"fsync\": 1}",
			    "segment.fsync: expected one of always, "
			    "interval, never");
	expect_config_error("{\"segment_bytes\": 100}",
			    "segment.segment_bytes: expected an integer of at "
			    "least 4096");
	expect_config_error("{\"segment_bytes\": \"1G\"}",
			    "segment.segment_bytes: expected an integer of at "
			    "least 4096");
	/* Retention is a property of each topic, set by the broker. */
	expect_config_error("{\"retention_ms\": 1000}",
			    "segment.retention_ms: unknown key "
			    "(known: segment_bytes, fsync, fsync_interval_ms, "
			    "open_files, index_interval_bytes, syncfs)");
	expect_config_error("{\"fsync_interval_ms\": 0}",
			    "segment.fsync_interval_ms: expected an integer "
			    "1..4294967295");
	expect_config_error("{\"index_interval_bytes\": 0}",
			    "segment.index_interval_bytes: expected an "
			    "integer 1..1073741824");
	expect_config_error("{\"segmentbytes\": 4096}",
			    "segment.segmentbytes: unknown key "
			    "(known: segment_bytes, fsync, fsync_interval_ms, "
			    "open_files, index_interval_bytes, syncfs)");
	expect_config_error("[1]", "segment: expected an object");
}

/* --- round trips ----------------------------------------------------- */

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	uint64_t offs[200], next, term;
	int rv;

	f->log = t_open(f->mod, f->dir, 0);
	assert_int_equal(t_ops->first_offset(f->log), 0);
	assert_int_equal(t_ops->next_offset(f->log), 0);
	assert_int_equal(t_read_all(f->log, 0, offs, 200, &rv, &next), 0);
	assert_int_equal(t_ops->term_at(f->log, 0, &term), -ENOENT);
	assert_int_equal(t_append(f->log, 0, 100, 1), 0);
	assert_int_equal(t_append(f->log, 100, 1, 1), 0);
	assert_int_equal(t_ops->append(f->log, NULL, 0), 0);
	assert_int_equal(t_ops->sync(f->log), 0);
	assert_int_equal(t_ops->first_offset(f->log), 0);
	assert_int_equal(t_ops->next_offset(f->log), 101);
	assert_int_equal(t_read_all(f->log, 0, offs, 200, &rv, &next), 101);
	assert_int_equal(rv, 0);
	assert_int_equal(next, 101);
	for (uint64_t i = 0; i < 101; i++)
		assert_int_equal(offs[i], i);
	assert_int_equal(t_read_all(f->log, 57, offs, 200, &rv, NULL), 44);
	assert_int_equal(offs[0], 57);
	assert_int_equal(t_ops->term_at(f->log, 100, &term), 0);
	assert_int_equal(term, 3);
	assert_int_equal(t_ops->term_at(f->log, 49, &term), 0);
	assert_int_equal(term, 1);
	assert_int_equal(t_ops->term_at(f->log, 101, &term), -ENOENT);
	/* Offsets must grow. */
	assert_int_equal(t_append(f->log, 100, 1, 1), KQ_EBADARG);
	assert_int_equal(t_append(f->log, 200, 2, 0), KQ_EBADARG);
	assert_int_equal(t_ops->next_offset(f->log), 101);
}

static int stop_cb(void *ctx, const struct kq_record *rec)
{
	int *n = ctx;

	return ++*n >= 3;
}

static int count_cb(void *ctx, const struct kq_record *rec)
{
	(*(int *)ctx)++;
	return 0;
}

static void test_read_limits(void **state)
{
	struct fx *f = *state;
	uint64_t next;
	int n = 0;

	f->log = t_open(f->mod, f->dir, 0);
	assert_int_equal(t_append(f->log, 0, 50, 1), 0);
	/* The callback stops after its third record. */
	assert_int_equal(
		t_ops->read(f->log, 10, 50, SIZE_MAX, stop_cb, &n, &next), 3);
	assert_int_equal(next, 13);
	/* max_bytes 0 still passes one record. */
	n = 0;
	assert_int_equal(t_ops->read(f->log, 10, 50, 0, count_cb, &n, &next),
			 1);
	assert_int_equal(next, 11);
	/* Bytes are counted as stored: a record is 44 bytes plus key and
	 * value; record 0 takes 44 + 20, record 1 44 + 2 + 27. */
	n = 0;
	assert_int_equal(
		t_ops->read(f->log, 0, 50, 64 + 73, count_cb, &n, &next), 2);
	assert_int_equal(next, 2);
	n = 0;
	assert_int_equal(
		t_ops->read(f->log, 0, 50, 64 + 72, count_cb, &n, &next), 1);
	assert_int_equal(next, 1);
	/* `end` bounds the read; beyond the log nothing is passed. */
	n = 0;
	assert_int_equal(
		t_ops->read(f->log, 45, 47, SIZE_MAX, count_cb, &n, &next), 2);
	assert_int_equal(next, 47);
	assert_int_equal(
		t_ops->read(f->log, 50, 100, SIZE_MAX, count_cb, &n, &next), 0);
	assert_int_equal(next, 50);
	assert_int_equal(
		t_ops->read(f->log, 70, 100, SIZE_MAX, count_cb, &n, &next), 0);
	assert_int_equal(next, 70);
}

static void test_gaps(void **state)
{
	struct fx *f = *state;
	struct kq_record r[4];
	uint8_t store[4][160];
	uint64_t offs[8], next, term;
	const uint64_t want[4] = {5, 6, 100, 1000};
	int rv;

	f->log = t_open(f->mod, f->dir, 0);
	for (int i = 0; i < 4; i++)
		t_rec(&r[i], want[i], store[i]);
	assert_int_equal(t_ops->append(f->log, r, 4), 0);
	assert_int_equal(t_ops->first_offset(f->log), 5);
	assert_int_equal(t_ops->next_offset(f->log), 1001);
	assert_int_equal(t_read_all(f->log, 0, offs, 8, &rv, &next), 4);
	assert_memory_equal(offs, want, sizeof(want));
	assert_int_equal(t_read_all(f->log, 7, offs, 8, &rv, NULL), 2);
	assert_int_equal(offs[0], 100);
	assert_int_equal(
		t_ops->read(f->log, 7, 100, SIZE_MAX, count_cb, &rv, &next), 0);
	assert_int_equal(next, 100);
	assert_int_equal(t_ops->term_at(f->log, 7, &term), -ENOENT);
	assert_int_equal(t_ops->term_at(f->log, 100, &term), 0);
	assert_int_equal(term, 3);
	reopen(f, 0);
	assert_int_equal(t_ops->first_offset(f->log), 5);
	assert_int_equal(t_ops->next_offset(f->log), 1001);
	assert_int_equal(t_read_all(f->log, 0, offs, 8, &rv, &next), 4);
	assert_memory_equal(offs, want, sizeof(want));
}

/* Reading a log leaves its files' access times alone: with relatime a
 * read of a file written since its last read would dirty its inode, a
 * journal write per read. */
static void test_reads_leave_atime(void **state)
{
	struct fx *f = *state;
	struct timespec times[2] = {{.tv_sec = 1000}, {.tv_nsec = UTIME_OMIT}};
	uint64_t offs[16], next;
	char path[160];
	struct stat st;
	int rv;

	f->log = t_open(f->mod, f->dir, 1 << 20);
	assert_int_equal(t_append(f->log, 0, 10, 1), 0);
	t_ops->close(f->log);
	snprintf(path, sizeof(path), "%s/00000000000000000000.log", f->dir);
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	f->log = t_open(f->mod, f->dir, 1 << 20);
	assert_int_equal(t_read_all(f->log, 0, offs, 16, &rv, &next), 10);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_atim.tv_sec, 1000);
}

static void test_rolling(void **state)
{
	struct fx *f = *state;
	static uint64_t offs[2000];
	uint64_t next;
	size_t nlogs;
	DIR *d;
	struct dirent *de;
	int rv;

	f->log = t_open(f->mod, f->dir, 4096);
	for (uint64_t i = 0; i < 2000; i += 100)
		assert_int_equal(t_append(f->log, i, 100, 1), 0);
	assert_int_equal(t_ops->sync(f->log), 0);
	nlogs = t_count_files(f->dir, ".log");
	assert_true(nlogs > 50);
	assert_int_equal(t_count_files(f->dir, ".index"), nlogs);
	/* Every segment stays within segment_bytes and is named after its
	 * first record. */
	d = opendir(f->dir);
	while ((de = readdir(d)) != NULL) {
		char *end;
		unsigned long long base;

		if (strstr(de->d_name, ".log") == NULL)
			continue;
		assert_int_equal(strlen(de->d_name), 24);
		assert_true(t_file_size(f->dir, de->d_name) <= 4096);
		base = strtoull(de->d_name, &end, 10);
		assert_string_equal(end, ".log");
		assert_int_equal(
			t_read_all(f->log, base, offs, 1, &rv, NULL) > 0, 1);
		assert_int_equal(offs[0], base);
	}
	closedir(d);
	assert_int_equal(t_read_all(f->log, 0, offs, 2000, &rv, &next), 2000);
	for (uint64_t i = 0; i < 2000; i++)
		assert_int_equal(offs[i], i);
	/* One call spanning many segments. */
	assert_int_equal(t_append(f->log, 2000, 500, 1), 0);
	reopen(f, 4096);
	assert_int_equal(t_ops->next_offset(f->log), 2500);
	assert_int_equal(t_read_all(f->log, 1234, offs, 2000, &rv, &next),
			 1266);
	assert_int_equal(offs[0], 1234);
	assert_int_equal(next, 2500);
}

static void test_reopen(void **state)
{
	struct fx *f = *state;
	static uint64_t offs[3000];
	uint64_t term;
	int rv;

	f->log = t_open(f->mod, f->dir, 8192);
	for (uint64_t i = 10; i < 3010; i += 300)
		assert_int_equal(t_append(f->log, i, 300, 1), 0);
	assert_int_equal(t_ops->sync(f->log), 0);
	reopen(f, 8192);
	assert_int_equal(t_ops->first_offset(f->log), 10);
	assert_int_equal(t_ops->next_offset(f->log), 3010);
	assert_int_equal(t_read_all(f->log, 0, offs, 3000, &rv, NULL), 3000);
	for (uint64_t i = 0; i < 3000; i++)
		assert_int_equal(offs[i], i + 10);
	for (uint64_t o = 10; o < 3010; o += 97) {
		assert_int_equal(t_ops->term_at(f->log, o, &term), 0);
		assert_int_equal(term, 1 + o / 50);
	}
	/* Appends go on where the log ended. */
	assert_int_equal(t_append(f->log, 3010, 10, 1), 0);
	reopen(f, 8192);
	assert_int_equal(t_read_all(f->log, 3000, offs, 3000, &rv, NULL), 20);
}

/* --- dropping records ------------------------------------------------ */

static uint64_t seg_base_at(const char *dir, size_t i)
{
	uint64_t bases[4096];
	size_t n = 0;
	DIR *d = opendir(dir);
	struct dirent *de;

	while ((de = readdir(d)) != NULL)
		if (strlen(de->d_name) == 24 && strstr(de->d_name, ".log"))
			bases[n++] = strtoull(de->d_name, NULL, 10);
	closedir(d);
	for (size_t a = 0; a < n; a++)
		for (size_t b = a + 1; b < n; b++)
			if (bases[b] < bases[a]) {
				uint64_t t = bases[a];

				bases[a] = bases[b];
				bases[b] = t;
			}
	return i < n ? bases[i] : UINT64_MAX;
}

static void test_truncate(void **state)
{
	struct fx *f = *state;
	static uint64_t offs[1000];
	uint64_t b2, b3, next, term;
	size_t nseg;
	int rv;

	f->log = t_open(f->mod, f->dir, 4096);
	assert_int_equal(t_append(f->log, 0, 1000, 1), 0);
	nseg = t_count_files(f->dir, ".log");
	assert_true(nseg > 10);
	b2 = seg_base_at(f->dir, 2);
	b3 = seg_base_at(f->dir, 3);
	/* Inside segment 2: later segments go, segment 2 is cut. */
	assert_int_equal(t_ops->truncate(f->log, b2 + 3), 0);
	assert_int_equal(t_ops->next_offset(f->log), b2 + 3);
	assert_int_equal(t_count_files(f->dir, ".log"), 3);
	assert_int_equal(t_read_all(f->log, 0, offs, 1000, &rv, &next), b2 + 3);
	assert_int_equal(t_ops->term_at(f->log, b2 + 3, &term), -ENOENT);
	assert_int_equal(t_ops->term_at(f->log, b2 + 2, &term), 0);
	/* Truncating beyond the end does nothing. */
	assert_int_equal(t_ops->truncate(f->log, b2 + 100), 0);
	assert_int_equal(t_ops->next_offset(f->log), b2 + 3);
	/* New records go on from there, other contents this time. */
	assert_int_equal(t_append(f->log, b2 + 3, 200, 1), 0);
	assert_int_equal(t_ops->next_offset(f->log), b2 + 203);
	reopen(f, 4096);
	assert_int_equal(t_ops->next_offset(f->log), b2 + 203);
	assert_int_equal(t_read_all(f->log, 0, offs, 1000, &rv, NULL),
			 b2 + 203);
	for (uint64_t i = 0; i < b2 + 203; i++)
		assert_int_equal(offs[i], i);
	/* Exactly at a segment's first record: the segment goes. */
	b3 = seg_base_at(f->dir, 3);
	assert_int_equal(t_ops->truncate(f->log, b3), 0);
	assert_int_equal(t_count_files(f->dir, ".log"), 3);
	assert_int_equal(t_ops->next_offset(f->log), b3);
	reopen(f, 4096);
	assert_int_equal(t_ops->next_offset(f->log), b3);
	assert_int_equal(t_read_all(f->log, 0, offs, 1000, &rv, NULL), b3);
	/* At the first record: the log empties and restarts there. */
	assert_int_equal(t_ops->truncate(f->log, 0), 0);
	assert_int_equal(t_ops->first_offset(f->log), 0);
	assert_int_equal(t_ops->next_offset(f->log), 0);
	assert_int_equal(t_count_files(f->dir, ".log"), 1);
	assert_int_equal(t_append(f->log, 0, 3, 1), 0);
	reopen(f, 4096);
	assert_int_equal(t_read_all(f->log, 0, offs, 1000, &rv, NULL), 3);
}

static void test_reset(void **state)
{
	struct fx *f = *state;
	uint64_t offs[100], term;
	int rv;

	f->log = t_open(f->mod, f->dir, 4096);
	assert_int_equal(t_append(f->log, 0, 300, 1), 0);
	assert_int_equal(t_ops->reset(f->log, 5000), 0);
	assert_int_equal(t_ops->first_offset(f->log), 5000);
	assert_int_equal(t_ops->next_offset(f->log), 5000);
	assert_int_equal(t_count_files(f->dir, ".log"), 1);
	assert_int_not_equal(t_file_size(f->dir, "00000000000000005000.log"),
			     UINT64_MAX);
	assert_int_equal(t_read_all(f->log, 0, offs, 100, &rv, NULL), 0);
	assert_int_equal(t_ops->term_at(f->log, 10, &term), -ENOENT);
	assert_int_equal(t_append(f->log, 4999, 1, 1), KQ_EBADARG);
	assert_int_equal(t_append(f->log, 5000, 10, 1), 0);
	reopen(f, 4096);
	assert_int_equal(t_ops->first_offset(f->log), 5000);
	assert_int_equal(t_read_all(f->log, 0, offs, 100, &rv, NULL), 10);
	assert_int_equal(offs[0], 5000);
	/* Reset to below the current log, and then reopen it empty. */
	assert_int_equal(t_ops->reset(f->log, 7), 0);
	assert_int_equal(t_count_files(f->dir, ".log"), 1);
	reopen(f, 4096);
	assert_int_equal(t_ops->first_offset(f->log), 7);
	assert_int_equal(t_ops->next_offset(f->log), 7);
	/* Reset to the base of the segment in place. */
	assert_int_equal(t_append(f->log, 7, 3, 1), 0);
	assert_int_equal(t_ops->reset(f->log, 7), 0);
	assert_int_equal(t_ops->next_offset(f->log), 7);
	reopen(f, 4096);
	assert_int_equal(t_ops->next_offset(f->log), 7);
	assert_int_equal(t_read_all(f->log, 0, offs, 100, &rv, NULL), 0);
}

static void test_compact(void **state)
{
	struct fx *f = *state;
	static uint64_t offs[1000];
	uint64_t b1, b3;
	size_t nseg;
	int rv;

	f->log = t_open(f->mod, f->dir, 4096);
	assert_int_equal(t_append(f->log, 0, 500, 1), 0);
	nseg = t_count_files(f->dir, ".log");
	b1 = seg_base_at(f->dir, 1);
	b3 = seg_base_at(f->dir, 3);
	assert_int_equal(t_ops->compact(f->log, 0), 0);
	assert_int_equal(t_ops->compact(f->log, b1 - 1), 0);
	/* Segments 0..2 hold only offsets below b3. */
	assert_int_equal(t_ops->compact(f->log, b3), 3);
	assert_int_equal(t_ops->first_offset(f->log), b3);
	assert_int_equal(t_count_files(f->dir, ".log"), nseg - 3);
	assert_int_equal(t_count_files(f->dir, ".index"), nseg - 3);
	assert_int_equal(t_read_all(f->log, 0, offs, 1000, &rv, NULL),
			 500 - b3);
	assert_int_equal(offs[0], b3);
	/* Never the newest. */
	assert_int_equal(t_ops->compact(f->log, UINT64_MAX), (int)nseg - 4);
	assert_int_equal(t_count_files(f->dir, ".log"), 1);
	assert_int_equal(t_ops->next_offset(f->log), 500);
	reopen(f, 4096);
	assert_int_equal(t_ops->first_offset(f->log), seg_base_at(f->dir, 0));
	assert_int_equal(t_ops->next_offset(f->log), 500);
}

/* Retention as the core runs it: the point, then compaction up to it.
 * Asking for the point alone deletes nothing. */
static int t_retain(struct kq_log *log, int64_t now_ms)
{
	uint64_t before, first = t_ops->first_offset(log);
	int rv = t_ops->retention_point(log, now_ms, &before);

	if (rv != 0)
		return rv;
	assert_int_equal(t_ops->first_offset(log), first);
	return before > first ? t_ops->compact(log, before) : 0;
}

/* Descriptors the process has open. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the one reading the folder */
}

/* Forty logs of several segments each, on a module bound to 16 held
 * descriptors: what the process has open stays near the bound whatever
 * is appended, read, synced, truncated or reopened, and every record
 * reads back. */
static void test_open_files_bounded(void **state)
{
	struct fx *f = *state;
	void *mod = t_module("{\"open_files\": 16}");
	struct kq_log *logs[40];
	char dirs[40][80];
	uint64_t offs[400], next;
	int base = count_fds(), rv;

	for (int i = 0; i < 40; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "%s/p%d", f->dir, i);
		logs[i] = t_open(mod, dirs[i], 4096);
		assert_int_equal(t_append(logs[i], 0, 100, 1), 0);
		assert_int_equal(t_ops->sync(logs[i]), 0);
		assert_true(count_fds() <= base + 16 + 1);
	}
	assert_true(t_count_files(dirs[0], ".log") >= 3);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 40; i++) {
			assert_int_equal(
				t_read_all(logs[i], 0, offs, 400, &rv, &next),
				100 + 50 * round);
			assert_int_equal(rv, 0);
			assert_int_equal(
				t_append(logs[i], 100 + 50 * round, 50, 1), 0);
			/* Files written since the last sync stay open for
			 * it, as the broker syncs every loop turn. */
			assert_int_equal(t_ops->sync(logs[i]), 0);
			assert_true(count_fds() <= base + 16 + 1);
		}
	/* Written everywhere before syncing: once only files written since
	 * the last sync are left to close, the oldest is synced and closed,
	 * so the bound holds; the syncs after find them done. */
	for (int i = 0; i < 40; i++) {
		assert_int_equal(t_append(logs[i], 200, 10, 1), 0);
		assert_true(count_fds() <= base + 16 + 1);
	}
	for (int i = 0; i < 40; i++)
		assert_int_equal(t_ops->sync(logs[i]), 0);
	assert_int_equal(t_read_all(logs[0], 0, offs, 400, &rv, &next), 210);
	assert_true(count_fds() <= base + 16 + 1);
	for (int i = 0; i < 40; i++)
		assert_int_equal(t_ops->truncate(logs[i], 200), 0);
	assert_int_equal(t_ops->truncate(logs[7], 120), 0);
	assert_int_equal(t_ops->next_offset(logs[7]), 120);
	for (int i = 0; i < 40; i++)
		t_ops->close(logs[i]);
	assert_int_equal(count_fds(), base + FSYS_FD);
	for (int i = 0; i < 40; i++) {
		logs[i] = t_open(mod, dirs[i], 4096);
		assert_int_equal(t_read_all(logs[i], 0, offs, 400, &rv, &next),
				 i == 7 ? 120 : 200);
		assert_int_equal(offs[0], 0);
		assert_true(count_fds() <= base + 16 + 1);
	}
	for (int i = 0; i < 40; i++)
		t_ops->close(logs[i]);
	assert_int_equal(count_fds(), base + FSYS_FD);
	t_module_free(mod);
}

/* A log of 4 KiB segments that the core would sync only before closing
 * it (kq_log_options.unsynced, fsync "never"). */
static struct kq_log *open_unsynced(void *mod, const char *dir)
{
	struct kq_log_options opts = {.segment_bytes = 4096,
				      .retention_ms = -1,
				      .retention_bytes = -1,
				      .unsynced = 1};
	struct kq_log *log = NULL;

	assert_int_equal(t_ops->open(mod, dir, &opts, &log), 0);
	return log;
}

/* A log the core syncs only before closing it (fsync "never":
 * kq_log_options.unsynced) lets written files go unsynced, so appends
 * over many logs stay within the bound without a sync on the way; a
 * sync() still syncs what is open, for the last sync at a stop. */
static void test_open_files_bounded_without_sync(void **state)
{
	struct fx *f = *state;
	void *mod = t_module("{\"open_files\": 16}");
	struct kq_log *logs[40];
	char dirs[40][80];
	int base = count_fds();

	for (int i = 0; i < 40; i++) {
		snprintf(dirs[i], sizeof(dirs[i]), "%s/n%d", f->dir, i);
		logs[i] = open_unsynced(mod, dirs[i]);
	}
	for (int round = 0; round < 5; round++)
		for (int i = 0; i < 40; i++) {
			assert_int_equal(
				t_append(logs[i], (uint64_t)round * 20, 20, 1),
				0);
			assert_true(count_fds() <= base + 16 + 1);
		}
	for (int i = 0; i < 40; i++) {
		assert_int_equal(t_ops->sync(logs[i]), 0);
		t_ops->close(logs[i]);
	}
	assert_int_equal(count_fds(), base + FSYS_FD);
	t_module_free(mod);
}

/* A segment deleted while its file waits for a sync (reset, truncate)
 * lets the file go: under fsync "never" nothing else would close it
 * before the stop, and its disk space would stay taken. */
static void test_dropped_segment_lets_its_file_go(void **state)
{
	struct fx *f = *state;
	void *mod = t_module("{\"open_files\": 16}");
	struct kq_log *log;
	int base = count_fds();

	log = open_unsynced(mod, f->dir);
	for (int round = 0; round < 50; round++) {
		uint64_t from = (uint64_t)round * 100;

		assert_int_equal(t_append(log, from, 5, 1), 0);
		assert_int_equal(t_ops->reset(log, from + 100), 0);
		assert_true(count_fds() <= base + 16 + 1);
	}
	t_ops->close(log);
	assert_int_equal(count_fds(), base + FSYS_FD);
	t_module_free(mod);
}

static void test_retain(void **state)
{
	struct fx *f = *state;
	struct kq_log_options opts = {
		.segment_bytes = 4096,
		.retention_ms = -1,
		.retention_bytes = 3 * 4096,
	};
	uint64_t total = 0, newest_base;
	size_t nseg;
	DIR *d;
	struct dirent *de;

	assert_int_equal(t_ops->open(f->mod, f->dir, &opts, &f->log), 0);
	assert_int_equal(t_append(f->log, 0, 600, 1), 0);
	nseg = t_count_files(f->dir, ".log");
	assert_true(nseg > 6);
	assert_true(t_retain(f->log, 0) > 0);
	/* What is left is the smallest suffix of segments holding at least
	 * retention_bytes. */
	d = opendir(f->dir);
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".log") != NULL)
			total += t_file_size(f->dir, de->d_name);
	closedir(d);
	assert_true(total >= 3 * 4096);
	assert_true(t_count_files(f->dir, ".log") <= 4);
	assert_int_equal(t_retain(f->log, 0), 0);
	t_ops->close(f->log);

	/* By time: records are stamped 1700000000000 + offset. */
	opts.retention_bytes = -1;
	opts.retention_ms = 1000;
	assert_int_equal(t_ops->open(f->mod, f->dir, &opts, &f->log), 0);
	newest_base = seg_base_at(f->dir, t_count_files(f->dir, ".log") - 1);
	assert_int_equal(t_retain(f->log, 1700000000000 + 1000), 0);
	nseg = t_count_files(f->dir, ".log");
	/* Segment 0 ends at base(1) - 1: now - that > 1000 deletes it. */
	assert_int_equal(
		t_retain(f->log, 1700000000000 + 1000 +
					 (int64_t)seg_base_at(f->dir, 1)),
		1);
	assert_int_equal(t_count_files(f->dir, ".log"), nseg - 1);
	/* Far in the future all but the newest go. */
	assert_int_equal(t_retain(f->log, INT64_MAX / 2), (int)nseg - 2);
	assert_int_equal(seg_base_at(f->dir, 0), newest_base);
	assert_int_equal(t_ops->first_offset(f->log), newest_base);
}

/* Flips one byte of a file. */
static void damage_byte(const char *path, long at)
{
	FILE *fp = fopen(path, "r+b");
	int c;

	assert_non_null(fp);
	fseek(fp, at, SEEK_SET);
	c = fgetc(fp);
	fseek(fp, at, SEEK_SET);
	fputc(c ^ 0x55, fp);
	fclose(fp);
}

/* The snapshot beside a log: absent, saved, replaced whole, and damage
 * (a flipped bit, a cut) reported with the file's name, never read as a
 * partial state. */
static void test_snapshot(void **state)
{
	struct fx *f = *state;
	const char text[] = "{\"topics\": []}";
	uint64_t index = 0, term = 0;
	void *data = NULL;
	size_t len = 0;
	char path[128];
	FILE *fp;

	f->log = t_open(f->mod, f->dir, 0);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len),
		-ENOENT);
	assert_int_equal(
		t_ops->save_snapshot(f->log, 41, 3, text, strlen(text)), 0);
	reopen(f, 0);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len), 0);
	assert_int_equal(index, 41);
	assert_int_equal(term, 3);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(data, text, len);
	free(data);
	assert_int_equal(t_ops->save_snapshot(f->log, 99, 4, "x", 1), 0);
	assert_int_equal(t_count_files(f->dir, ".tmp"), 0);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len), 0);
	assert_int_equal(index, 99);
	assert_int_equal(term, 4);
	assert_int_equal(len, 1);
	free(data);
	/* An empty state is a snapshot too. */
	assert_int_equal(t_ops->save_snapshot(f->log, 100, 4, "", 0), 0);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len), 0);
	assert_int_equal(len, 0);
	free(data);
	assert_int_equal(t_ops->save_snapshot(f->log, 101, 5, "xy", 2), 0);
	snprintf(path, sizeof(path), "%s/snapshot", f->dir);
	damage_byte(path, 41);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len),
		KQ_ECORRUPT);
	assert_non_null(strstr(kq__test_lastlog, path));
	assert_int_equal(truncate(path, 20), 0);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len),
		KQ_ECORRUPT);
	assert_non_null(strstr(kq__test_lastlog, "not a snapshot file"));
	/* A length that would ask for the whole memory is damage. */
	assert_int_equal(t_ops->save_snapshot(f->log, 102, 5, "xy", 2), 0);
	damage_byte(path, 31);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len),
		KQ_ECORRUPT);
	/* So is one that memory could hold but the file does not: it is
	 * named as damage before anything is allocated for it. */
	assert_int_equal(t_ops->save_snapshot(f->log, 103, 5, "xy", 2), 0);
	damage_byte(path, 27);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len),
		KQ_ECORRUPT);
	assert_non_null(
		strstr(kq__test_lastlog, "its length is not the file's"));
	/* Bytes after the state are damage, not ignored. */
	assert_int_equal(t_ops->save_snapshot(f->log, 104, 5, "xy", 2), 0);
	fp = fopen(path, "ab");
	assert_non_null(fp);
	fputc('z', fp);
	fclose(fp);
	assert_int_equal(
		t_ops->load_snapshot(f->log, &index, &term, &data, &len),
		KQ_ECORRUPT);
}

/* Creates or truncates the file at `path` to hold buf[0..len). */
static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(buf, 1, len, fp), len);
	fclose(fp);
}

/* Stages hs, syncing first when the log asks (a log not settled). */
static int stage(struct kq_log *log, const struct kq_hard_state *hs)
{
	int rv = t_ops->stage_hard_state(log, hs);

	if (rv == KQ_EBUSY && t_ops->sync(log) == 0)
		rv = t_ops->stage_hard_state(log, hs);
	return rv;
}

/* A staged hard state is written at once and made durable by the next
 * sync, of one log or many; one at a time, and a new log is synced
 * before its first. */
static void test_staged_hard_state(void **state)
{
	struct fx *f = *state;
	struct kq_hard_state hs = {5, 1}, in;
	struct kq_log *logs[1];
	int res[1];

	f->log = t_open(f->mod, f->dir, 0);
	/* A log not settled yet (where the file system settles it with a
	 * syncfs) is synced first. */
	assert_int_equal(stage(f->log, &hs), 0);
	assert_int_equal(t_ops->sync(f->log), 0);
	/* Written in place; the next waits for its sync, as a save does. */
	hs = (struct kq_hard_state){6, 2};
	assert_int_equal(stage(f->log, &hs), 0);
	assert_int_equal(t_ops->stage_hard_state(f->log, &hs), KQ_EBUSY);
	assert_int_equal(t_ops->save_hard_state(f->log, &hs), KQ_EBUSY);
	assert_int_equal(t_ops->sync(f->log), 0);
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 6);
	assert_int_equal(in.vote, 2);
	/* Not synced: the restart finds it or the one before, whole. */
	hs = (struct kq_hard_state){8, 0};
	assert_int_equal(stage(f->log, &hs), 0);
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_true(in.term == 6 || in.term == 8);
	/* Through sync_many, alternating copies. */
	for (uint64_t t = 9; t < 12; t++) {
		hs = (struct kq_hard_state){t, t % 3};
		assert_int_equal(stage(f->log, &hs), 0);
		logs[0] = f->log;
		assert_int_equal(t_ops->sync_many(f->mod, logs, 1, res), 0);
		assert_int_equal(res[0], 0);
	}
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 11);
	assert_int_equal(in.vote, 2);
	assert_int_equal(t_file_size(f->dir, "raft.state"), 8192);
}

static void test_hard_state(void **state)
{
	struct fx *f = *state;
	struct kq_hard_state hs = {7, 7}, in;
	char path[128];

	f->log = t_open(f->mod, f->dir, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &hs), 0);
	assert_int_equal(hs.term, 0);
	assert_int_equal(hs.vote, 0);
	hs.term = 42;
	hs.vote = 3;
	assert_int_equal(t_ops->save_hard_state(f->log, &hs), 0);
	hs.term = 43;
	hs.vote = 0;
	assert_int_equal(t_ops->save_hard_state(f->log, &hs), 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 43);
	assert_int_equal(in.vote, 0);
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 43);
	assert_int_equal(t_count_files(f->dir, ".tmp"), 0);
	/* Saves overwrite the older of two copies in place: a torn write of
	 * the newest (a save that never returned) leaves the state before
	 * it. */
	hs.term = 44;
	hs.vote = 2;
	assert_int_equal(t_ops->save_hard_state(f->log, &hs), 0);
	snprintf(path, sizeof(path), "%s/raft.state", f->dir);
	assert_int_equal(t_file_size(f->dir, "raft.state"), 8192);
	assert_int_equal(t_count_files(f->dir, ".tmp"), 0);
	damage_byte(path, 4096 * ((3 + 1) & 1) + 20); /* the copy of 44 */
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 43);
	assert_int_equal(in.vote, 0);
	/* The next save goes on from there, into the damaged copy. */
	hs.term = 45;
	assert_int_equal(t_ops->save_hard_state(f->log, &hs), 0);
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 45);
	assert_int_equal(in.vote, 2);
	/* Both copies damaged: reported, not read as zeros. */
	damage_byte(path, 9);
	damage_byte(path, 4096 + 9);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), KQ_ECORRUPT);
	/* A whole file of zeros too: its size was durable, so was what a
	 * save wrote in it.  Shorter than that, it is what a crash before
	 * the new log's settle leaves of the file open() made (nothing, or
	 * its first copy): never saved, like a missing file. */
	{
		static const uint8_t zeros[8192];
		uint8_t first[4096];

		write_file(path, zeros, sizeof(zeros));
		assert_int_equal(t_ops->load_hard_state(f->log, &in),
				 KQ_ECORRUPT);
		write_file(path, zeros, 0);
		in.term = 9;
		assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
		assert_int_equal(in.term, 0);
		assert_int_equal(in.vote, 0);
		memset(first, 0, sizeof(first));
		memcpy(first, "KQHS", 4);
		kq_put32le(first + 4, 2);
		kq_put64le(first + 8, 2);
		kq_put32le(first + 32, kq__seg_crc32c(0, first, 32));
		write_file(path, first, sizeof(first));
		in.term = 9;
		assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
		assert_int_equal(in.term, 0);
		/* A copy of another state there is damage. */
		kq_put64le(first + 16, 5);
		kq_put32le(first + 32, kq__seg_crc32c(0, first, 32));
		write_file(path, first, sizeof(first));
		assert_int_equal(t_ops->load_hard_state(f->log, &in),
				 KQ_ECORRUPT);
	}
	/* A file of format 1 (one copy of 28 bytes) is read, and the next
	 * save rewrites it as format 2. */
	{
		uint8_t v1[28];

		memcpy(v1, "KQHS", 4);
		kq_put32le(v1 + 4, 1);
		kq_put64le(v1 + 8, 9);
		kq_put64le(v1 + 16, 1);
		kq_put32le(v1 + 24, kq__seg_crc32c(0, v1, 24));
		write_file(path, v1, sizeof(v1));
	}
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 9);
	assert_int_equal(in.vote, 1);
	hs.term = 10;
	assert_int_equal(t_ops->save_hard_state(f->log, &hs), 0);
	assert_int_equal(t_file_size(f->dir, "raft.state"), 8192);
	reopen(f, 0);
	assert_int_equal(t_ops->load_hard_state(f->log, &in), 0);
	assert_int_equal(in.term, 10);
}

struct sync_thread {
	struct kq_log *log;
	int stop; /* atomic */
	int errors;
	int syncs;
};

static void *sync_main(void *arg)
{
	struct sync_thread *s = arg;

	while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
		if (t_ops->sync(s->log) != 0)
			s->errors++;
		s->syncs++;
	}
	return NULL;
}

static void test_sync_thread(void **state)
{
	struct fx *f = *state;
	static uint64_t offs[20000];
	struct sync_thread s = {0};
	pthread_t th;
	int rv;

	f->log = t_open(f->mod, f->dir, 16384);
	s.log = f->log;
	assert_int_equal(pthread_create(&th, NULL, sync_main, &s), 0);
	for (uint64_t i = 0; i < 20000; i += 50) {
		uint64_t next;
		int n = 0;

		assert_int_equal(t_append(f->log, i, 50, 1), 0);
		assert_int_equal(t_ops->read(f->log, i, i + 50, SIZE_MAX,
					     count_cb, &n, &next),
				 50);
		if (i % 5000 == 0)
			assert_int_equal(t_ops->compact(f->log, i / 2) >= 0, 1);
	}
	__atomic_store_n(&s.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	assert_int_equal(s.errors, 0);
	assert_true(s.syncs > 0);
	assert_int_equal(t_ops->sync(f->log), 0);
	reopen(f, 16384);
	assert_int_equal(t_ops->next_offset(f->log), 20000);
	assert_int_equal(t_read_all(f->log, t_ops->first_offset(f->log), offs,
				    20000, &rv, NULL),
			 20000 - t_ops->first_offset(f->log));
	assert_int_equal(rv, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

/* The tests' folders are on an ext4 as far as the module knows, so that
 * its syncfs() paths (and the descriptor it holds for them) are the same
 * whatever file system /tmp is here (syncfs() works on any; only its
 * durability differs). */
static int ext4_fstatfs(int fd, struct statfs *st)
{
	int rv = fstatfs(fd, st);

	if (rv == 0)
		st->f_type = 0xEF53;
	return rv;
}

/* And on a kernel whose syncfs() reports every error. */
static int kernel_6_1(struct utsname *u)
{
	memset(u, 0, sizeof(*u));
	strcpy(u->sysname, "Linux");
	strcpy(u->release, "6.1.0");
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test(test_record_codec),
		cmocka_unit_test(test_plugin_desc),
		cmocka_unit_test(test_config_errors),
		T(test_round_trip),
		T(test_read_limits),
		T(test_gaps),
		T(test_rolling),
		T(test_reads_leave_atime),
		T(test_reopen),
		T(test_truncate),
		T(test_reset),
		T(test_compact),
		T(test_retain),
		T(test_open_files_bounded),
		T(test_open_files_bounded_without_sync),
		T(test_dropped_segment_lets_its_file_go),
		T(test_hard_state),
		T(test_staged_hard_state),
		T(test_snapshot),
		T(test_sync_thread),
	};
	int failed = 0;

	kq__seg_io.fstatfs = ext4_fstatfs;
	kq__seg_io.uname = kernel_6_1;
	/* KQ_SEGMENT_WRITE_FIXTURES: only write the fixture files. */
	if (getenv("KQ_SEGMENT_WRITE_FIXTURES") == NULL)
		failed += cmocka_run_group_tests_name("segment", tests, NULL,
						      NULL);
	failed += run_recovery_tests();
	failed += run_fault_tests();
	return failed != 0;
}
