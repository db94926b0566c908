/* Integration tests of a standalone broker probed as an unfriendly client
 * or operator would: exhausted descriptors, files in the way, a deleted
 * metadata log, signals, passwords. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct tb tb;

static int teardown(void **state)
{
	tb_cleanup(&tb);
	tb_telnet_extra = "";
	tb_nofile = 0;
	return 0;
}

static void start_with(const char *extra)
{
	int status = 0;

	tb_setup(&tb, extra);
	if (tb_start(&tb, &status) != 0) {
		char log[4096];

		tb_read_log(&tb, log, sizeof(log));
		fail_msg("broker did not start (exit %d):\n%s", status, log);
	}
}

static void restart(void)
{
	int status = 0;

	if (tb_start(&tb, &status) != 0) {
		char log[8192];

		tb_read_log(&tb, log, sizeof(log));
		fail_msg("broker did not restart (exit %d):\n%s", status, log);
	}
}

static void expect_cmd(struct tc *c, const char *cmd, const char *pattern)
{
	char line[1024];

	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0), 0);
	if (!tb_match(pattern, line))
		fail_msg("%s: expected \"%s\", got \"%s\"", cmd, pattern, line);
}

static int count_lines(const char *log, const char *text)
{
	int n = 0;

	for (const char *p = log; (p = strstr(p, text)); p++)
		n++;
	return n;
}

/* ------------------------------------------------------------ CRTP */

/* A partition that cannot be opened is named in the answer with its
 * cause; the broker loses no memory over it and stops cleanly (under
 * the sanitizers a leak makes the exit status non-zero). */
static void test_crtp_says_why(void **state)
{
	char path[400], log[16384];
	struct tc c;
	FILE *f;

	start_with(NULL);
	snprintf(path, sizeof(path), "%s/kafkaesque-1/t-1", tb.dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "CRTP t 3",
		   "ERR UNAVAILABLE topic t could not be created: "
		   "Not a directory");
	expect_cmd(&c, "LIST", "OK 0");
	expect_cmd(&c, "CRTP u 3", "OK u 3");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	tb_read_log(&tb, log, sizeof(log));
	assert_null(strstr(log, "LeakSanitizer"));
}

/* Out of descriptors, CRTP says so. */
static void test_crtp_emfile(void **state)
{
	struct tc c;

	tb_nofile = 64;
	start_with(NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "CRTP big 100",
		   "ERR UNAVAILABLE topic big could not be created: "
		   "Too many open files");
	expect_cmd(&c, "PING", "OK PONG");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* ------------------------------------------------------------ orphans */

/* With the metadata log deleted by hand, the old partition folders are
 * moved aside instead of coming back as a new topic's data, and
 * subscription ids do not start over. */
static void test_orphaned_partitions(void **state)
{
	char line[1024], path[400], log[16384], cmd[512];
	long id1, id2;
	struct tc c;
	struct stat st;

	start_with(NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "CRTP t 2", "OK t 2");
	expect_cmd(&c, "PUBS t old", "OK {N} 0");
	assert_int_equal(tc_cmd(&c, "SUBS t g", line, sizeof(line), NULL, 0),
			 0);
	id1 = strtol(line + 3, NULL, 10);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);

	snprintf(cmd, sizeof(cmd), "rm -rf '%s/kafkaesque-1/__meta'", tb.dir);
	assert_int_equal(system(cmd), 0);
	restart();
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "LIST", "OK 0");
	expect_cmd(&c, "CRTP t 2", "OK t 2");
	expect_cmd(&c, "DESC t", "OK t 2");
	assert_int_equal(tc_cmd(&c, "SUBS t g", line, sizeof(line), NULL, 0),
			 0);
	assert_true(tb_match("OK {N} 0,1", line));
	id2 = strtol(line + 3, NULL, 10);
	assert_true(id2 > id1);
	snprintf(cmd, sizeof(cmd), "CONS t %ld 0", id2);
	expect_cmd(&c, cmd, "OK 0");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);

	tb_read_log(&tb, log, sizeof(log));
	assert_int_equal(count_lines(log, "is not in the metadata: moved to "),
			 2);
	snprintf(path, sizeof(path), "%s/kafkaesque-1/orphaned", tb.dir);
	assert_int_equal(stat(path, &st), 0);
	snprintf(cmd, sizeof(cmd),
		 "test $(ls '%s' | grep -c '^t-[01]\\.[0-9]*T[0-9]*Z$') = 2",
		 path);
	assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ SIGHUP */

/* Without a log file a hangup is logged and changes nothing. */
static void test_sighup_without_log_file(void **state)
{
	char log[16384];
	struct tc c;

	start_with(NULL);
	assert_int_equal(kill(tb.pid, SIGHUP), 0);
	usleep(200000);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "PING", "OK PONG");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	tb_read_log(&tb, log, sizeof(log));
	assert_non_null(strstr(log, "Hangup: ignored"));
}

/* With broker.log_file, a hangup after the file was moved away (what
 * logrotate does) opens it anew; the broker goes on. */
static void test_sighup_reopens_log_file(void **state)
{
	char extra[1024], path[400], moved[420], text[16384];
	struct tc c;
	FILE *f;
	size_t n;

	tb_setup_empty(&tb);
	snprintf(path, sizeof(path), "%s/kq.log", tb.dir);
	snprintf(extra, sizeof(extra),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%s\", "
		 "\"log_file\": \"%s\"}, "
		 "\"telnet\": {\"port\": %d}}",
		 tb.dir, path, tb.port);
	tb_write_raw(&tb, extra);
	restart();
	snprintf(moved, sizeof(moved), "%s.1", path);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(kill(tb.pid, SIGHUP), 0);
	for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
		usleep(10000);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "PING", "OK PONG");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);

	f = fopen(moved, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_non_null(strstr(text, "ready"));
	assert_null(strstr(text, "stopped"));
	f = fopen(path, "r");
	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	assert_non_null(strstr(text, "reopened the log file"));
	assert_non_null(strstr(text, "stopped"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_crtp_says_why, teardown),
		cmocka_unit_test_teardown(test_crtp_emfile, teardown),
		cmocka_unit_test_teardown(test_orphaned_partitions, teardown),
		cmocka_unit_test_teardown(test_sighup_without_log_file,
					  teardown),
		cmocka_unit_test_teardown(test_sighup_reopens_log_file,
					  teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
