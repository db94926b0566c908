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

#include "../nested_json.h"
#include "harness.h"

static struct tb tb;
static struct tc conns[80]; /* test_accept_emfile's clients */

static int teardown(void **state)
{
	for (size_t i = 0; i < sizeof(conns) / sizeof(*conns); i++)
		if (conns[i].fd > 0)
			tc_close(&conns[i]);
	tb_cleanup(&tb);
	tb_telnet_extra = "";
	tb_nofile = 0;
	return 0;
}

static void expect_cmd(struct tc *c, const char *cmd, const char *pattern)
{
	char line[1024];

	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0), 0);
	if (!tb_match(pattern, line))
		fail_msg("%s: expected \"%s\", got \"%s\"", cmd, pattern, line);
}

/* A new connection is served. */
static void expect_pong(void)
{
	struct tc c;

	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "PING", "OK PONG");
	tc_close(&c);
}

/* Stops the broker, which must exit 0, and reads its log. */
static void stop_and_read_log(char *log, size_t len)
{
	assert_int_equal(tb_stop(&tb), 0);
	tb_read_log(&tb, log, len);
}

/* Creates or truncates the file at `path` to hold `text`. */
static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* The file at `path`, which must exist, into `text` (NUL-terminated). */
static void read_text(const char *path, char *text, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(text, 1, len - 1, f);
	text[n] = '\0';
	fclose(f);
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
 * cause; the topic exists, with that partition retried; the broker loses
 * no memory over it and stops cleanly (under the sanitizers a leak makes
 * the exit status non-zero). */
static void test_crtp_says_why(void **state)
{
	char path[400], log[16384];
	struct tc c;

	tb_setup_started(&tb, NULL);
	/* A file where the partition's folder goes. */
	snprintf(path, sizeof(path), "%s/kafkaesque-1/t-1", tb.dir);
	write_text(path, "");
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "CRTP t 3",
		   "ERR UNAVAILABLE topic t was created, but partitions of it "
		   "cannot be opened here yet: Not a directory; they are "
		   "retried");
	expect_cmd(&c, "LIST", "OK 1");
	expect_cmd(&c, "CRTP u 3", "OK u 3");
	tc_close(&c);
	stop_and_read_log(log, sizeof(log));
	assert_null(strstr(log, "LeakSanitizer"));
}

/* Clients take every descriptor storage does not hold: each of hogs[64]
 * is connected and answered (OK PONG, or ERR BUSY and closed). */
static void take_descriptors(struct tc *hogs)
{
	char line[256];
	int busy = 0;

	for (int i = 0; i < 64; i++) {
		if (tc_connect(&hogs[i], tb.port) != 0) {
			hogs[i].fd = -1;
			continue;
		}
		tc_send(&hogs[i], "PING");
		assert_int_not_equal(tc_line(&hogs[i], line, sizeof(line)), -1);
		busy += strcmp(line, "OK PONG") != 0;
	}
	assert_true(busy > 0);
}

/* Closes what take_descriptors() opened. */
static void free_descriptors(struct tc *hogs)
{
	for (int i = 0; i < 64; i++)
		if (hogs[i].fd >= 0)
			tc_close(&hogs[i]);
}

/* A broker (with the `extra` config sections) that has topic t of one
 * partition, holding record 0, is restarted; c is connected to it, and
 * clients in hogs[64] then take every other descriptor. */
static void restart_without_descriptors(const char *extra, struct tc *c,
					struct tc *hogs)
{
	tb_nofile = 64;
	tb_setup_started(&tb, extra);
	assert_int_equal(tc_connect(c, tb.port), 0);
	expect_cmd(c, "CRTP t 1", "OK t 1");
	expect_cmd(c, "PUBS t old", "OK 0 0");
	tc_close(c);
	assert_int_equal(tb_stop(&tb), 0);

	tb_start_checked(&tb);
	assert_int_equal(tc_connect(c, tb.port), 0);
	expect_cmd(c, "PING", "OK PONG");
	take_descriptors(hogs);
}

/* Out of descriptors, CRTP of 100 partitions still succeeds: storage
 * holds a bounded number of descriptors whatever the partitions, here
 * clients take all the rest, and an open that finds none closes some of
 * storage's least recently used and tries again.  (Where that is not
 * enough, CRTP names the cause, as test_crtp_says_why checks.)  The
 * topic's folders are not orphans on a restart that runs out too, and
 * the topic is there once descriptors suffice. */
static void test_crtp_emfile(void **state)
{
	static struct tc hogs[64];
	char path[400], log[16384];
	struct tc c;

	tb_nofile = 64;
	tb_setup_started(&tb, NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	take_descriptors(hogs);
	expect_cmd(&c, "CRTP big 100", "OK big 100");
	expect_cmd(&c, "PUBS big x", "OK {N} 0");
	free_descriptors(hogs);
	expect_cmd(&c, "PING", "OK PONG");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);

	tb_start_checked(&tb);
	stop_and_read_log(log, sizeof(log));
	assert_null(strstr(log, "moved to"));
	snprintf(path, sizeof(path), "%s/kafkaesque-1/big-0", tb.dir);
	assert_int_equal(access(path, F_OK), 0);

	tb_nofile = 0;
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "DESC big", "OK big 100");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Restarted, a broker makes each old partition durable again at its
 * first write (its folder and the folder's name, by path, on a worker).
 * With clients holding every other descriptor, that write still
 * succeeds: the file system's descriptor, held for good, syncs them. */
static void test_write_after_restart_emfile(void **state)
{
	static struct tc hogs[64];
	struct tc c;

	restart_without_descriptors(NULL, &c, hogs);
	expect_cmd(&c, "PUBS t new", "OK 0 1");
	free_descriptors(hogs);
	expect_cmd(&c, "PUBS t again", "OK 0 2");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Without syncfs() to stand for them, those syncs need a descriptor of
 * their own: out of them, the write is refused with an answer that names
 * the limit and what raises it, and the partition takes writes again
 * once descriptors are free. */
static void test_write_refused_names_the_limit(void **state)
{
	static struct tc hogs[64];
	struct tc c;

	restart_without_descriptors("\"segment\": {\"syncfs\": false}", &c,
				    hogs);
	expect_cmd(&c, "PUBS t new",
		   "ERR UNAVAILABLE partition t-0 is not accepting writes: "
		   "Too many open files (this broker may have {N} open: "
		   "raise ulimit -n)");
	free_descriptors(hogs);
	/* The partition is reopened (every 5 s) and takes writes again. */
	for (double until = tb_now() + 30;;) {
		char line[256];

		assert_int_equal(
			tc_cmd(&c, "PUBS t again", line, sizeof(line), NULL, 0),
			0);
		if (tb_match("OK 0 {N}", line))
			break;
		if (tb_now() > until)
			fail_msg("PUBS t again: %s", line);
		usleep(200000);
	}
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* ------------------------------------------------------------ start-up */

/* A host that does not resolve is named with the key, in words. */
static void test_bad_host(void **state)
{
	char json[1024], out[8192];
	const char *args[] = {"-config", tb.config, NULL};

	tb_setup_empty(&tb);
	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, "
		 "\"telnet\": {\"host\": \"bad host\", \"port\": %d}}",
		 tb.dir, tb.port);
	tb_write_raw(&tb, json);
	assert_int_equal(tb_run_args(args, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "telnet.host: cannot listen on \"bad "
				    "host\""));
	assert_null(strstr(out, "Unknown error"));
}

/* Ports on the command line are decimal digits in 1..65535, nothing
 * else; a bad one stops the broker with one line and status 2 before
 * anything else is looked at. */
static void test_port_flags(void **state)
{
	static const char *const bad[] = {
		"-port=65536", "-port=99999999999999999999",
		"-port=+1",    "-port= 1",
		"-port=0x10",  "-raftport=65536",
		"-port=",
	};
	char out[4096];

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		const char *args[] = {bad[i], "-config=/nonexistent.json",
				      NULL};
		int st = tb_run_args(args, out, sizeof(out));

		if (st != 2 ||
		    !strstr(out, "port: expected an integer "
				 "1..65535") ||
		    strchr(out, '\n') != out + strlen(out) - 1)
			fail_msg("%s: exit %d, %s", bad[i], st, out);
	}
}

/* ------------------------------------------------------------ accept */

static double cpu_seconds(pid_t pid)
{
	char path[64];
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	/* Fields 14 and 15; the name in parentheses holds no spaces. */
	assert_int_equal(fscanf(f,
				"%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u "
				"%*u %*u %lu %lu",
				&ut, &st),
			 2);
	fclose(f);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Out of descriptors, a new connection is answered ERR BUSY and closed;
 * the broker logs it, does not spin, and serves again once descriptors
 * are free. */
static void test_accept_emfile(void **state)
{
	enum { N = sizeof(conns) / sizeof(*conns) };
	struct tc *cs = conns;
	char line[256], log[16384];
	int busy = 0, served = 0;
	double before, after;

	tb_nofile = 48;
	tb_setup_started(&tb, NULL);
	for (int i = 0; i < N; i++)
		assert_int_equal(tc_connect(&cs[i], tb.port), 0);
	for (int i = 0; i < N; i++) {
		tc_send(&cs[i], "PING");
		assert_int_not_equal(tc_line(&cs[i], line, sizeof(line)), -1);
		if (strcmp(line, "OK PONG") == 0)
			served++;
		else if (strcmp(line, "ERR BUSY out of file descriptors; try "
				      "again later") == 0)
			busy++;
		else
			fail_msg("connection %d: %s", i, line);
	}
	print_message("%d served, %d refused\n", served, busy);
	assert_true(served > 0);
	assert_true(busy > 0);
	/* Still at the limit, the broker is idle. */
	before = cpu_seconds(tb.pid);
	usleep(1000000);
	after = cpu_seconds(tb.pid);
	assert_true(after - before < 0.3);
	for (int i = 0; i < N; i++)
		tc_close(&cs[i]);
	usleep(100000);
	expect_pong();
	stop_and_read_log(log, sizeof(log));
	assert_int_equal(count_lines(log, "out of file descriptors"), 1);
}

/* ------------------------------------------------------------ keys */

/* A top-level string "Key" is the key whatever else the object holds:
 * key "124" goes to partition 2 of 3 (murmur2), where the README's
 * example puts it. */
static void test_keys_beside_odd_values(void **state)
{
	static const char *const msgs[] = {
		"{\"n\":123456789012345678901234567890,\"Key\":\"124\"}",
		"{\"x\":1e400,\"Key\":\"124\"}",
		"{\"s\":\"\\ud800\",\"Key\":\"124\"}",
		"{\"K\\u0065y\":\"1\\u0032\\u0034\"}",
		"{\"Key\":\"nope\",\"a\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]"
		"]],"
		"\"Key\":\"124\"}",
	};
	char cmd[256];
	struct tc c;

	tb_setup_started(&tb, NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "CRTP orders 3", "OK orders 3");
	for (size_t i = 0; i < sizeof(msgs) / sizeof(*msgs); i++) {
		snprintf(cmd, sizeof(cmd), "PUBS orders %s", msgs[i]);
		expect_cmd(&c, cmd, "OK 2 {N}");
	}
	/* Deeper than any JSON library goes. */
	{
		size_t n;
		char *m = kq__test_nested_json("PUBS orders {\"a\":", 5000,
					       ",\"Key\":\"124\"}", &n);

		assert_non_null(m);
		tc_send(&c, m);
		free(m);
		assert_int_not_equal(tc_line(&c, cmd, sizeof(cmd)), -1);
		assert_true(tb_match("OK 2 {N}", cmd));
	}
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

	tb_setup_started(&tb, NULL);
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
	tb_start_checked(&tb);
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
	stop_and_read_log(log, sizeof(log));
	assert_int_equal(count_lines(log, "is not in the metadata: moved to "),
			 2);
	snprintf(path, sizeof(path), "%s/kafkaesque-1/orphaned", tb.dir);
	assert_int_equal(stat(path, &st), 0);
	snprintf(cmd, sizeof(cmd),
		 "test $(ls '%s' | grep -c '^t-[01]\\.[0-9]*T[0-9]*Z$') = 2",
		 path);
	assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------ AUTH */

/* A broker with telnet.password_file: nothing but HELP, PING, QUIT and
 * AUTH before the password; a failure is logged with the peer. */
static void test_auth(void **state)
{
	char extra[600], path[400], log[16384];
	struct tc c;

	tb_setup(&tb, NULL);
	snprintf(path, sizeof(path), "%s/password", tb.dir);
	write_text(path, "open sesame\n");
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(extra, sizeof(extra), "\"password_file\": \"%s\"", path);
	tb_telnet_extra = extra;
	tb_write_config(&tb, NULL);
	tb_start_checked(&tb);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "PING", "OK PONG");
	expect_cmd(&c, "CRTP t", "ERR AUTH authentication required{*}");
	expect_cmd(&c, "AUTH sesame", "ERR AUTH wrong password");
	expect_cmd(&c, "AUTH \"open sesame\"", "OK");
	expect_cmd(&c, "CRTP t", "OK t 1");
	tc_close(&c);
	/* Authentication belongs to the connection. */
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "LIST", "ERR AUTH {*}");
	tc_close(&c);
	stop_and_read_log(log, sizeof(log));
	assert_int_equal(count_lines(log, "failed AUTH from 127.0.0.1:"), 1);
	assert_null(strstr(log, "open sesame"));
}

/* ------------------------------------------------------------ signals */

/* Once the port accepts, SIGTERM is a graceful stop (status 0), never the
 * default action: the handlers are in place before anything listens. */
static void test_sigterm_as_soon_as_listening(void **state)
{
	struct tc c;

	tb_setup_started(&tb, NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_cmd(&c, "CRTP many 200", "OK many 200");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	for (int i = 0; i < 20; i++) {
		tb_start_checked(&tb);
		assert_int_equal(tb_stop(&tb), 0);
	}
}

/* ------------------------------------------------------------ SIGHUP */

/* Without a log file a hangup is logged and changes nothing. */
static void test_sighup_without_log_file(void **state)
{
	char log[16384];

	tb_setup_started(&tb, NULL);
	assert_int_equal(kill(tb.pid, SIGHUP), 0);
	usleep(200000);
	expect_pong();
	stop_and_read_log(log, sizeof(log));
	assert_non_null(strstr(log, "Hangup: ignored"));
}

/* With broker.log_file, a hangup after the file was moved away (what
 * logrotate does) opens it anew; the broker goes on. */
static void test_sighup_reopens_log_file(void **state)
{
	char extra[1024], path[400], moved[420], text[16384];

	tb_setup_empty(&tb);
	snprintf(path, sizeof(path), "%s/kq.log", tb.dir);
	snprintf(extra, sizeof(extra),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%s\", "
		 "\"log_file\": \"%s\"}, "
		 "\"telnet\": {\"port\": %d}}",
		 tb.dir, path, tb.port);
	tb_write_raw(&tb, extra);
	tb_start_checked(&tb);
	snprintf(moved, sizeof(moved), "%s.1", path);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(kill(tb.pid, SIGHUP), 0);
	for (int i = 0; i < 500 && access(path, F_OK) != 0; i++)
		usleep(10000);
	expect_pong();
	assert_int_equal(tb_stop(&tb), 0);

	read_text(moved, text, sizeof(text));
	assert_non_null(strstr(text, "ready"));
	assert_null(strstr(text, "stopped"));
	read_text(path, text, sizeof(text));
	assert_non_null(strstr(text, "reopened the log file"));
	assert_non_null(strstr(text, "stopped"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_crtp_says_why, teardown),
		cmocka_unit_test_teardown(test_crtp_emfile, teardown),
		cmocka_unit_test_teardown(test_write_after_restart_emfile,
					  teardown),
		cmocka_unit_test_teardown(test_write_refused_names_the_limit,
					  teardown),
		cmocka_unit_test_teardown(test_bad_host, teardown),
		cmocka_unit_test_teardown(test_port_flags, teardown),
		cmocka_unit_test_teardown(test_accept_emfile, teardown),
		cmocka_unit_test_teardown(test_keys_beside_odd_values,
					  teardown),
		cmocka_unit_test_teardown(test_orphaned_partitions, teardown),
		cmocka_unit_test_teardown(test_auth, teardown),
		cmocka_unit_test_teardown(test_sigterm_as_soon_as_listening,
					  teardown),
		cmocka_unit_test_teardown(test_sighup_without_log_file,
					  teardown),
		cmocka_unit_test_teardown(test_sighup_reopens_log_file,
					  teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
