/* Integration tests of storage behaviour seen through the protocol:
 * retention, a damaged sealed segment, and a full disk. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct tb tb;
static char mounted[600];

static int teardown(void **state)
{
	tb_kill9(&tb);
	if (mounted[0]) {
		umount2(mounted, MNT_DETACH);
		mounted[0] = '\0';
	}
	tb_cleanup(&tb);
	return 0;
}

static void cmd(struct tc *c, const char *command, const char *pattern)
{
	char line[1024];

	assert_int_equal(tc_cmd(c, command, line, sizeof(line), NULL, 0), 0);
	if (!tb_match(pattern, line))
		fail_msg("%s: expected \"%s\", got \"%s\"", command, pattern,
			 line);
}

/* The START of partition 0 in DESC. */
static long desc_start(struct tc *c, const char *topic)
{
	char command[64], line[256], data[4096];
	long start = -1;

	snprintf(command, sizeof(command), "DESC %s", topic);
	assert_int_equal(
		tc_cmd(c, command, line, sizeof(line), data, sizeof(data)), 0);
	sscanf(data, "PARTITION 0 LEADER %*d REPLICAS %*s START %ld", &start);
	return start;
}

static void publish_n(struct tc *c, const char *topic, int n, int size)
{
	char line[256], *msg = malloc((size_t)size + 64);

	for (int i = 0; i < n; i++) {
		int k = snprintf(msg, 64, "PUBS %s m%06d-", topic, i);

		memset(msg + k, 'x', (size_t)size);
		msg[k + size] = '\0';
		tc_send(c, msg);
	}
	for (int i = 0; i < n; i++) {
		assert_int_not_equal(tc_line(c, line, sizeof(line)), -1);
		assert_true(tb_match("OK {N} {N}", line));
	}
	free(msg);
}

/* Whole old segments go once a topic passes its retention.bytes; DESC's
 * START and CONS follow. */
static void test_retention(void **state)
{
	struct tc c;
	char line[256];
	long first = 0;

	tb_setup(&tb, "\"topics\": {\"retention_check_ms\": 20}, "
		      "\"segment\": {\"segment_bytes\": 4096}");
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	cmd(&c, "CRTP r 1 retention.bytes=8192", "OK r 1");
	cmd(&c, "CRTP keep 1", "OK keep 1");
	publish_n(&c, "r", 300, 100);
	publish_n(&c, "keep", 300, 100);
	for (int i = 0; i < 500 && first <= 0; i++) {
		usleep(20000);
		first = desc_start(&c, "r");
	}
	assert_true(first > 0);
	assert_int_equal(desc_start(&c, "keep"), 0);
	/* A read from 0 starts at the first offset still there. */
	cmd(&c, "SUBS r g", "OK {N} 0");
	tc_send(&c, "CONS r 1 0 1");
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	{
		long off = -1;

		sscanf(line, "MSG 0 %ld", &off);
		assert_true(off >= first);
	}
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* A bad checksum inside a sealed segment: the partition serves reads up
 * to the damage, then says where it is; the broker keeps serving. */
static void test_damaged_segment(void **state)
{
	struct tc c;
	char line[1024], path[600];
	int msgs = 0;

	tb_setup(&tb, "\"segment\": {\"segment_bytes\": 4096}");
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	cmd(&c, "CRTP d 1", "OK d 1");
	cmd(&c, "CRTP other 1", "OK other 1");
	publish_n(&c, "d", 200, 100);
	publish_n(&c, "other", 10, 100);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	/* Damage a record in the middle of the first (sealed) segment. */
	snprintf(path, sizeof(path),
		 "%s/kafkaesque-1/d-0/00000000000000000000.log", tb.dir);
	tb_flip_byte(path, 2048);
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	cmd(&c, "SUBS d g", "OK 1001 0");
	tc_send(&c, "CONS d 1001 0");
	for (;;) {
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		if (strncmp(line, "MSG ", 4) == 0) {
			msgs++;
			assert_int_not_equal(tc_line(&c, line, sizeof(line)),
					     -1);
			assert_non_null(strstr(line, "xxxxxxxx"));
			continue;
		}
		break;
	}
	if (!tb_match("ERR INTERNAL partition d-0 is damaged at offset {N}{*}",
		      line))
		fail_msg("unexpected answer after %d messages: %s", msgs, line);
	assert_true(msgs > 0 && msgs < 200);
	/* Still serving: other topics, and new writes to this one. */
	cmd(&c, "PING", "OK PONG");
	cmd(&c, "SUBS other g", "OK 1002 0");
	tc_send(&c, "CONS other 1002 0");
	for (int i = 0; i < 20; i++)
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	assert_string_equal(line, "OK 10");
	cmd(&c, "PUBS d after the damage", "OK 0 200");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	tb_read_log(&tb, line, sizeof(line));
}

/* Starts a broker with `topic` of `nparts` partitions holding 30
 * messages, stops it, damages the last record of partition 0, starts it
 * again (with syncs that fail on demand when `syncfaults`, see
 * tb_start_syncfaults()) and connects c. */
static void damage_last_record(struct tc *c, const char *topic, int nparts,
			       int syncfaults)
{
	int status = 0;

	char command[128], want[128], path[600];
	struct stat st;

	tb_setup(&tb, NULL);
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(c, tb.port), 0);
	snprintf(command, sizeof(command), "CRTP %s %d", topic, nparts);
	snprintf(want, sizeof(want), "OK %s %d", topic, nparts);
	cmd(c, command, want);
	publish_n(c, topic, 30, 100);
	tc_close(c);
	assert_int_equal(tb_stop(&tb), 0);
	snprintf(path, sizeof(path),
		 "%s/kafkaesque-1/%s-0/00000000000000000000.log", tb.dir,
		 topic);
	assert_int_equal(stat(path, &st), 0);
	tb_flip_byte(path, st.st_size - 3);
	if (syncfaults)
		assert_int_equal(tb_start_syncfaults(&tb, &status), 0);
	else
		tb_start_checked(&tb);
	assert_int_equal(tc_connect(c, tb.port), 0);
}

/* The end of the range that the error of a CONS stopped at lost offsets
 * `from`.. names (the number of offsets kept lost follows the bytes the
 * damaged records held). */
static unsigned long long lost_end(const char *line, const char *part,
				   unsigned long long from)
{
	char want[128];
	unsigned long long a = 0, b = 0;

	snprintf(want, sizeof(want),
		 "ERR INTERNAL partition %s lost offsets %%llu..%%llu to",
		 part);
	if (sscanf(line, want, &a, &b) != 2 || a != from || b < from ||
	    !strstr(line, " to damage found at start-up (see the broker "
			  "log); CMIT past them to read on"))
		fail_msg("not a loss from %llu: %s", from, line);
	return b + 1;
}

/* The newest segment's last record damaged, nothing after it: it is
 * dropped, but its offset was acknowledged, so a new message takes one
 * after it, and a group that had not read it is stopped there, told why,
 * until CMIT moves it past. */
static void test_damaged_last_record(void **state)
{
	struct tc c;
	char line[1024], cmdline[128], want[64];
	unsigned long long id, end, after;
	int msgs = 0;

	damage_last_record(&c, "e", 1, 0);
	assert_int_equal(
		tc_cmd(&c, "PUBS e after", line, sizeof(line), NULL, 0), 0);
	assert_int_equal(sscanf(line, "OK 0 %llu", &after), 1);
	assert_true(after >= 30);
	assert_int_equal(tc_cmd(&c, "SUBS e g", line, sizeof(line), NULL, 0),
			 0);
	assert_int_equal(sscanf(line, "OK %llu", &id), 1);
	/* Everything before the lost offset, then a stop there. */
	snprintf(cmdline, sizeof(cmdline), "CONS e %llu", id);
	tc_send(&c, cmdline);
	for (;;) {
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		if (strncmp(line, "MSG ", 4) != 0)
			break;
		msgs++;
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	}
	assert_int_equal(msgs, 29);
	assert_string_equal(line, "OK 29");
	assert_int_equal(tc_cmd(&c, cmdline, line, sizeof(line), NULL, 0), 0);
	end = lost_end(line, "e-0", 29);
	assert_int_equal(end, after);
	snprintf(cmdline, sizeof(cmdline), "CMIT e %llu 0 %llu", id, end);
	cmd(&c, cmdline, "OK 1");
	snprintf(cmdline, sizeof(cmdline), "CONS e %llu", id);
	tc_send(&c, cmdline);
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	snprintf(want, sizeof(want), "MSG 0 %llu 5", after);
	assert_string_equal(line, want);
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	assert_string_equal(line, "after");
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	assert_string_equal(line, "OK 1");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	tb_read_log(&tb, line, sizeof(line));
}

/* Publishes `command` until it is answered OK (a log reopening by
 * itself answers UNAVAILABLE meanwhile), for up to 20 s; the answer goes
 * into line. */
static void publish_until_ok(struct tc *c, const char *command, char *line,
			     size_t len)
{
	double end = tb_now() + 20;

	do {
		usleep(200000);
		assert_int_equal(tc_cmd(c, command, line, len, NULL, 0), 0);
	} while (strncmp(line, "OK", 2) != 0 && tb_now() < end);
}

/* Lost offsets outlive the reopen after a failed sync: the cut of what
 * was never made durable does not free the offset acknowledged before
 * the damage. */
static void test_lost_kept_across_failed_sync(void **state)
{
	char line[1024];
	struct tc c;

	(void)state;
	damage_last_record(&c, "e", 1, 1);
	tb_flag(&tb, "failsync", 1);
	assert_int_equal(
		tc_cmd(&c, "PUBS e never", line, sizeof(line), NULL, 0), 0);
	if (!tb_match("ERR UNAVAILABLE {*}", line))
		fail_msg("PUBS with a failing fdatasync: %s", line);
	tb_flag(&tb, "failsync", 0);
	publish_until_ok(&c, "PUBS e c", line, sizeof(line));
	{
		unsigned long long off = 0;

		/* 29 was acknowledged before the damage. */
		assert_int_equal(sscanf(line, "OK 0 %llu", &off), 1);
		assert_true(off >= 30);
	}
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Reads the answer to a CONS already sent: counts its messages by
 * partition into per[3] and copies its last line. */
static void cons_answer(struct tc *c, int per[3], char *last, size_t len)
{
	char line[1024];
	int p;

	per[0] = per[1] = per[2] = 0;
	for (;;) {
		assert_int_not_equal(tc_line(c, line, sizeof(line)), -1);
		if (sscanf(line, "MSG %d", &p) != 1)
			break;
		assert_true(p >= 0 && p < 3);
		per[p]++;
		assert_int_not_equal(tc_line(c, line, sizeof(line)), -1);
	}
	snprintf(last, len, "%s", line);
}

/* Lost offsets at the end of one partition do not hold back the
 * others: a CONS delivers what they have and names the loss last; and
 * with nothing published since, CMIT can still move past the loss. */
static void test_lost_partition_beside_others(void **state)
{
	struct tc c;
	char line[1024], cmdline[128];
	unsigned long long id, end;
	int per[3];

	damage_last_record(&c, "two", 2, 0); /* round robin: 15 each */
	assert_int_equal(tc_cmd(&c, "SUBS two g", line, sizeof(line), NULL, 0),
			 0);
	assert_int_equal(sscanf(line, "OK %llu", &id), 1);
	/* Partition 0 up to the loss. */
	snprintf(cmdline, sizeof(cmdline), "CONS two %llu - 14", id);
	tc_send(&c, cmdline);
	cons_answer(&c, per, line, sizeof(line));
	assert_int_equal(per[0], 14);
	assert_string_equal(line, "OK 14");
	/* Partition 1's messages, then the loss of partition 0. */
	snprintf(cmdline, sizeof(cmdline), "CONS two %llu", id);
	tc_send(&c, cmdline);
	cons_answer(&c, per, line, sizeof(line));
	assert_int_equal(per[0], 0);
	assert_int_equal(per[1], 15);
	end = lost_end(line, "two-0", 14);
	/* Nothing published since: the loss is still within reach. */
	snprintf(cmdline, sizeof(cmdline), "CMIT two %llu 0 %llu", id, end);
	cmd(&c, cmdline, "OK 1");
	cmd(&c, "PUBS two a", "OK {N} {N}");
	cmd(&c, "PUBS two b", "OK {N} {N}");
	snprintf(cmdline, sizeof(cmdline), "CONS two %llu", id);
	tc_send(&c, cmdline);
	cons_answer(&c, per, line, sizeof(line));
	assert_int_equal(per[0], 1);
	assert_int_equal(per[1], 1);
	assert_string_equal(line, "OK 2");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* A full disk: writes stop with ERR UNAVAILABLE, every acknowledged
 * message stays readable, and after space is freed a restart recovers. */
/* Starts a broker whose data lives on a 512 KiB tmpfs, creates topic f
 * and publishes to it one message at a time until three are refused for
 * the full disk; returns how many were acknowledged. */
static int fill_disk(struct tc *c, int size)
{
	char line[1024], data[600];
	int acked = 0, refused = 0;
	char *msg = malloc((size_t)size + 64);

	tb_setup(&tb, NULL);
	snprintf(data, sizeof(data), "%s/data", tb.dir);
	assert_int_equal(mkdir(data, 0755), 0);
	if (mount("kq-test", data, "tmpfs", 0, "size=512k") != 0)
		fail_msg("cannot mount a tmpfs on %s: %s", data,
			 strerror(errno));
	snprintf(mounted, sizeof(mounted), "%s", data);
	snprintf(line, sizeof(line), "\"segment\": {\"segment_bytes\": 65536}");
	tb_write_config(&tb, line);
	/* The data folder lives on the small tmpfs. */
	{
		char cmdline[1200];

		snprintf(
			cmdline, sizeof(cmdline),
			"sed -i 's|\"data_dir\": \"%s\"|\"data_dir\": \"%s\"|' "
			"'%s'",
			tb.dir, data, tb.config);
		assert_int_equal(system(cmdline), 0);
	}
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(c, tb.port), 0);
	cmd(c, "CRTP f 1", "OK f 1");
	/* One at a time, so that each answer belongs to a known message. */
	for (int i = 0; i < 2000 && refused < 3; i++) {
		int k = snprintf(msg, 64, "PUBS f n%05d-", i);

		memset(msg + k, 'y', (size_t)size);
		msg[k + size] = '\0';
		assert_int_equal(tc_cmd(c, msg, line, sizeof(line), NULL, 0),
				 0);
		if (strncmp(line, "OK 0 ", 5) == 0) {
			assert_int_equal(refused, 0);
			assert_int_equal(atoi(line + 5), acked);
			acked++;
		} else {
			if (!tb_match("ERR UNAVAILABLE partition f-0 is not "
				      "accepting writes: No space left on "
				      "device",
				      line))
				fail_msg("unexpected answer: %s", line);
			refused++;
		}
	}
	print_message("full disk after %d acknowledged messages\n", acked);
	assert_true(acked > 10 && refused == 3);
	free(msg);
	return acked;
}

static void test_full_disk(void **state)
{
	struct tc c;
	char line[1024], data[600], opts[64];
	const int size = 900;
	char *msg = malloc(size + 64);
	int acked = fill_disk(&c, size);

	/* Reads keep working and return every acknowledged message. */
	cmd(&c, "SUBS f g", "OK {N} 0");
	tc_send(&c, "CONS f 1 0");
	for (int i = 0; i < acked; i++) {
		char want[32];

		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		snprintf(want, sizeof(want), "MSG 0 %d %d", i, size + 7);
		assert_string_equal(line, want);
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		snprintf(want, sizeof(want), "n%05d-", i);
		assert_int_equal(strncmp(line, want, 7), 0);
	}
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	snprintf(data, sizeof(data), "OK %d", acked);
	assert_string_equal(line, data);
	tc_close(&c);
	tb_stop(&tb); /* the final sync may report the full disk */

	/* Free space, restart: everything acknowledged is there, writes
	 * work again. */
	snprintf(opts, sizeof(opts), "size=%dk", 8192);
	assert_int_equal(mount("kq-test", mounted, "tmpfs", MS_REMOUNT, opts),
			 0);
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	snprintf(data, sizeof(data),
		 "PARTITION 0 LEADER 1 REPLICAS 1 START 0 "
		 "END %d",
		 acked);
	assert_int_equal(tc_cmd(&c, "DESC f", line, sizeof(line), msg, 256), 0);
	assert_string_equal(msg, data);
	snprintf(data, sizeof(data), "OK 0 %d", acked);
	cmd(&c, "PUBS f after", data);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	free(msg);
}

/* Frees space on the full disk, then sends `command` every 200 ms for up
 * to 20 s until it is answered OK; its last answer is left in line. */
static void grow_and_retry(struct tc *c, const char *command, char *line,
			   size_t len)
{
	double end;

	assert_int_equal(
		mount("kq-test", mounted, "tmpfs", MS_REMOUNT, "size=8192k"),
		0);
	end = tb_now() + 20;
	do {
		usleep(200000);
		assert_int_equal(tc_cmd(c, command, line, len, NULL, 0), 0);
	} while (strncmp(line, "OK", 2) != 0 && tb_now() < end);
}

/* Once space is freed, a log that failed on the full disk is reopened
 * by itself: writes go on at the next offset, without a restart, and a
 * graceful stop exits 0. */
static void test_full_disk_recovers(void **state)
{
	struct tc c;
	char line[1024], want[64];
	int acked = fill_disk(&c, 900);

	grow_and_retry(&c, "PUBS f after", line, sizeof(line));
	snprintf(want, sizeof(want), "OK 0 %d", acked);
	if (strcmp(line, want) != 0)
		fail_msg("after freeing space: %s (want %s)", line, want);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* The metadata log fails on the full disk too (a CRTP is refused, saying
 * why); once space is freed it is reopened by itself, keeping every topic
 * and offset, and the next CRTP and SUBS work without a restart. */
static void test_full_disk_metadata_recovers(void **state)
{
	struct tc c;
	char line[1024], name[64];
	int made = 0;

	fill_disk(&c, 900);
	/* Topics until the metadata log has no room left either. */
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "CRTP m%d 1", i);
		assert_int_equal(tc_cmd(&c, name, line, sizeof(line), NULL, 0),
				 0);
		if (strncmp(line, "ERR UNAVAILABLE metadata log:", 29) == 0)
			break;
		made++;
	}
	if (!tb_match("ERR UNAVAILABLE metadata log: No space left on "
		      "device{*}",
		      line))
		fail_msg("CRTP on a full disk: %s", line);
	grow_and_retry(&c, "CRTP late 1", line, sizeof(line));
	if (strcmp(line, "OK late 1") != 0)
		fail_msg("CRTP after freeing space: %s", line);
	cmd(&c, "PUBS late m", "OK 0 0");
	cmd(&c, "SUBS late g", "OK {N} 0");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	/* All of it after a restart, and the topics made before. */
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	cmd(&c, "DESC late", "OK late 1");
	for (int i = 0; i < made; i++) {
		snprintf(name, sizeof(name), "DESC m%d", i);
		assert_int_equal(tc_cmd(&c, name, line, sizeof(line), NULL, 0),
				 0);
		assert_true(strncmp(line, "OK m", 4) == 0);
	}
	cmd(&c, "CRTP late2 1", "OK late2 1");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Starts the broker with failsync preloaded, connects c, creates topic
 * s and stores `ok` messages ("a", "b"), then one, "never", whose
 * fdatasync fails. */
static void fail_after(struct tc *c, int ok)
{
	char line[1024];
	int st = 0;

	tb_setup(&tb, NULL);
	assert_int_equal(tb_start_syncfaults(&tb, &st), 0);
	assert_int_equal(tc_connect(c, tb.port), 0);
	cmd(c, "CRTP s 1", "OK s 1");
	cmd(c, "PUBS s a", "OK 0 0");
	if (ok > 1)
		cmd(c, "PUBS s b", "OK 0 1");
	tb_flag(&tb, "failsync", 1);
	assert_int_equal(tc_cmd(c, "PUBS s never", line, sizeof(line), NULL, 0),
			 0);
	if (!tb_match("ERR UNAVAILABLE {*}", line))
		fail_msg("PUBS with a failing fdatasync: %s", line);
	tb_flag(&tb, "failsync", 0);
}

/* Under fsync always, a message whose write succeeded but whose
 * fdatasync failed was never acknowledged: when the log is reopened (by
 * itself, once syncs work again) it is dropped, the next message takes
 * its offset, and no reader ever sees it.  fdatasync fails on demand
 * through a preloaded library (tests/plugins/failsync.c). */
static void test_failed_sync_dropped_on_reopen(void **state)
{
	char line[1024];
	unsigned long long id;
	struct tc c;

	fail_after(&c, 2);
	publish_until_ok(&c, "PUBS s c", line, sizeof(line));
	assert_string_equal(line, "OK 0 2");
	assert_int_equal(tc_cmd(&c, "SUBS s g", line, sizeof(line), NULL, 0),
			 0);
	assert_int_equal(sscanf(line, "OK %llu", &id), 1);
	snprintf(line, sizeof(line), "CONS s %llu", id);
	tc_send(&c, line);
	for (int i = 0; i < 3; i++) {
		char want[32];

		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		snprintf(want, sizeof(want), "MSG 0 %d 1", i);
		assert_string_equal(line, want);
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		assert_string_equal(line, i == 0 ? "a" : i == 1 ? "b" : "c");
	}
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	assert_string_equal(line, "OK 3");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* The same across a restart: the failed sync's pages stay in the cache,
 * marked clean though never written, so a restarted broker would read
 * the message back and a fresh descriptor's fdatasync would pass it as
 * durable.  Stopped before it reopens the log, the broker drops it when
 * it closes the log. */
static void test_failed_sync_dropped_at_restart(void **state)
{
	struct tc c;

	fail_after(&c, 1);
	tc_close(&c);
	tb_stop(&tb); /* its failed log cannot be synced: not graceful */
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	/* Offset 1 was never handed out: the next message takes it. */
	cmd(&c, "PUBS s b", "OK 0 1");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Mounting a tmpfs needs a mount namespace of our own; as a normal user,
 * a user namespace makes us root inside it. */
/* A partition whose folder cannot be opened at start does not hide its
 * topic: the others serve, it answers UNAVAILABLE with its cause (DESC
 * shows it), and it opens by itself once the cause is gone. */
static void test_unopenable_partition(void **state)
{
	char path[600], moved[640], line[512], data[4096];
	struct tc c;
	double end;

	tb_setup(&tb, NULL);
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	cmd(&c, "CRTP u 3", "OK u 3");
	for (int p = 0; p < 3; p++)
		cmd(&c, "PUBS u before", "OK {N} 0");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	/* Its folder replaced by a file: the log cannot open. */
	snprintf(path, sizeof(path), "%s/kafkaesque-1/u-1", tb.dir);
	snprintf(moved, sizeof(moved), "%s.aside", path);
	assert_int_equal(rename(path, moved), 0);
	fclose(fopen(path, "w"));
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(
		tc_cmd(&c, "DESC u", line, sizeof(line), data, sizeof(data)),
		0);
	assert_string_equal(line, "OK u 3");
	if (!strstr(data, "PARTITION 1 LEADER - REPLICAS 1 START 0 END 0 "
			  "UNAVAILABLE "))
		fail_msg("DESC u: %s", data);
	/* Messages without a key go to partitions that are open. */
	for (int k = 0; k < 4; k++) {
		int part = -1;

		assert_int_equal(
			tc_cmd(&c, "PUBS u after", line, sizeof(line), NULL, 0),
			0);
		assert_int_equal(sscanf(line, "OK %d", &part), 1);
		assert_true(part == 0 || part == 2);
	}
	cmd(&c, "SUBS u g", "OK {N} 0,1,2");
	/* The open partitions' messages, then the one that is not. */
	tc_send(&c, "CONS u 1001 0");
	{
		int per[3];

		cons_answer(&c, per, line, sizeof(line));
		assert_int_equal(per[0], 3);
		assert_int_equal(per[1], 0);
		assert_int_equal(per[2], 3);
	}
	if (!tb_match("ERR UNAVAILABLE partition u-1 cannot be opened here: "
		      "{*}",
		      line))
		fail_msg("CONS: %s", line);
	/* Back in place: opened again within the retry period. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rename(moved, path), 0);
	end = tb_now() + 15;
	do {
		usleep(200000);
		assert_int_equal(tc_cmd(&c, "DESC u", line, sizeof(line), data,
					sizeof(data)),
				 0);
	} while (strstr(data, "UNAVAILABLE") && tb_now() < end);
	if (strstr(data, "UNAVAILABLE"))
		fail_msg("still unavailable: %s", data);
	assert_non_null(strstr(data, "PARTITION 1 LEADER 1 REPLICAS 1 "
				     "START 0 END 1"));
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

static int private_mounts(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	char map[64];
	int fd;

	if (uid == 0)
		return unshare(CLONE_NEWNS) == 0 &&
				       mount("none", "/", NULL,
					     MS_REC | MS_PRIVATE, NULL) == 0
			       ? 0
			       : -1;
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
		return -1;
	fd = open("/proc/self/setgroups", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "deny", 4) != 4)
			return -1;
		close(fd);
	}
	snprintf(map, sizeof(map), "0 %d 1", (int)uid);
	fd = open("/proc/self/uid_map", O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) < 0)
		return -1;
	close(fd);
	snprintf(map, sizeof(map), "0 %d 1", (int)gid);
	fd = open("/proc/self/gid_map", O_WRONLY);
	if (fd < 0 || write(fd, map, strlen(map)) < 0)
		return -1;
	close(fd);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_retention, teardown),
		cmocka_unit_test_teardown(test_unopenable_partition, teardown),
		cmocka_unit_test_teardown(test_damaged_segment, teardown),
		cmocka_unit_test_teardown(test_damaged_last_record, teardown),
		cmocka_unit_test_teardown(test_lost_partition_beside_others,
					  teardown),
		cmocka_unit_test_teardown(test_lost_kept_across_failed_sync,
					  teardown),
		cmocka_unit_test_teardown(test_full_disk, teardown),
		cmocka_unit_test_teardown(test_full_disk_recovers, teardown),
		cmocka_unit_test_teardown(test_full_disk_metadata_recovers,
					  teardown),
		cmocka_unit_test_teardown(test_failed_sync_dropped_on_reopen,
					  teardown),
		cmocka_unit_test_teardown(test_failed_sync_dropped_at_restart,
					  teardown),
	};

	if (private_mounts() != 0)
		fprintf(stderr,
			"no private mount namespace (%s): the full "
			"disk test will fail\n",
			strerror(errno));
	return cmocka_run_group_tests_name("storage", tests, NULL, NULL);
}
