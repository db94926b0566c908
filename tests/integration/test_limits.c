/* Many subscriptions, groups and topics on one broker.  100,000 SUBS over
 * 10,000 groups from 100 connections finish and are all answered OK, GRPS
 * lists every member, closing the connections frees every group, and the
 * limits hold; another client pings all along, its latency printed, not
 * asserted (speed is measured, never timed in tests).  500 topics are
 * created, written and served again after a restart under a limit of 128
 * descriptors.  A CRTP of 1,000 partitions lets other clients be served
 * while it runs, and is answered when all are open, or cut short by
 * SIGTERM. */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CONNS	100
#define PER	1000
#define GROUPS	10000
#define MAXPING 100000

/* A CRTP cut short by SIGTERM. */
#define STOPPING_ANSWER                                                        \
	"ERR UNAVAILABLE topic big was created, but the broker is "            \
	"stopping: its partitions are opened at the next start"

static struct tb tb;

struct pinger {
	int port;
	volatile int stop;
	double lat[MAXPING];
	size_t n;
	int failed;
};

static void *ping_loop(void *arg)
{
	struct pinger *p = arg;
	struct tc c;
	char line[64];

	if (tc_connect(&c, p->port) != 0) {
		p->failed = 1;
		return NULL;
	}
	while (!p->stop && p->n < MAXPING) {
		double t0 = tb_now();

		tc_send(&c, "PING");
		if (tc_line(&c, line, sizeof(line)) < 0 ||
		    strcmp(line, "OK PONG") != 0) {
			p->failed = 1;
			break;
		}
		p->lat[p->n++] = tb_now() - t0;
		usleep(2000);
	}
	tc_close(&c);
	return NULL;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Stops the pinger and prints its latencies (measured, not asserted). */
static void ping_stop(struct pinger *pg, pthread_t th)
{
	pg->stop = 1;
	pthread_join(th, NULL);
	assert_false(pg->failed);
	if (!pg->n)
		return;
	qsort(pg->lat, pg->n, sizeof(pg->lat[0]), by_value);
	print_message("PING meanwhile: %zu, p50 %.2f ms, p99 %.2f ms, "
		      "max %.2f ms\n",
		      pg->n, pg->lat[pg->n / 2] * 1e3,
		      pg->lat[pg->n * 99 / 100] * 1e3,
		      pg->lat[pg->n - 1] * 1e3);
}

static int teardown(void **state)
{
	(void)state;
	tb_nofile = 0;
	tb_telnet_extra = "";
	tb_cleanup(&tb);
	return 0;
}

/* Under `ulimit -n 128`, 500 topics are created and written, and the
 * broker restarts and serves them all: descriptors are bounded by
 * configuration, not by the number of partitions. */
static void test_many_topics_few_descriptors(void **state)
{
	enum { TOPICS = 500 };
	char line[256], cmd[64], want[64];
	struct tc c;
	int st = 0, most = 0;

	(void)state;
	tb_nofile = 128;
	tb_setup(&tb, NULL);
	assert_int_equal(tb_start(&tb, &st), 0);
	/* 1,024 clients could take every descriptor: said at start. */
	{
		static char log[1 << 16];

		tb_read_log(&tb, log, sizeof(log));
		if (!strstr(log, "telnet.max_connections (1024) is more than "
				 "half the open files limit (128)"))
			fail_msg("no warning about max_connections:\n%s", log);
	}
	assert_int_equal(tc_connect(&c, tb.port), 0);
	for (int i = 0; i < TOPICS; i++) {
		snprintf(cmd, sizeof(cmd), "CRTP t%d", i);
		assert_int_equal(tc_cmd(&c, cmd, line, sizeof(line), NULL, 0),
				 0);
		snprintf(want, sizeof(want), "OK t%d 1", i);
		if (strcmp(line, want) != 0)
			fail_msg("%s: %s", cmd, line);
		snprintf(cmd, sizeof(cmd), "PUBS t%d m%d", i, i);
		assert_int_equal(tc_cmd(&c, cmd, line, sizeof(line), NULL, 0),
				 0);
		assert_string_equal(line, "OK 0 0");
		if (i % 50 == 0 && tb_open_fds(tb.pid) > most)
			most = tb_open_fds(tb.pid);
	}
	tc_close(&c);
	print_message("%d topics under a limit of 128 descriptors: at most "
		      "%d open\n",
		      TOPICS, most);
	assert_int_equal(tb_stop(&tb), 0);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	for (int i = 0; i < TOPICS; i += 7) {
		char data[256];

		snprintf(cmd, sizeof(cmd), "DESC t%d", i);
		assert_int_equal(
			tc_cmd(&c, cmd, line, sizeof(line), data, sizeof(data)),
			0);
		assert_non_null(strstr(data, "START 0 END 1"));
	}
	assert_int_equal(tc_cmd(&c, "SUBS t499 g", line, sizeof(line), NULL, 0),
			 0);
	assert_true(strncmp(line, "OK ", 3) == 0);
	tc_send(&c, "CONS t499 1001 0");
	assert_true(tc_line(&c, line, sizeof(line)) > 0);
	assert_string_equal(line, "MSG 0 0 4");
	assert_true(tc_line(&c, line, sizeof(line)) > 0);
	assert_string_equal(line, "m499");
	assert_true(tc_line(&c, line, sizeof(line)) > 0);
	assert_string_equal(line, "OK 1");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Waits up to 120 s for one line (a big CRTP under sanitizers is slow). */
static int line_within(struct tc *c, char *out, size_t outlen)
{
	for (int i = 0; i < 12; i++)
		if (tc_line(c, out, outlen) >= 0)
			return 0;
	return -1;
}

/* DESC big lists its 1,000 partitions, every one open. */
static void expect_all_open(struct tc *c)
{
	static char data[65536];
	char line[256];

	assert_int_equal(
		tc_cmd(c, "DESC big", line, sizeof(line), data, sizeof(data)),
		0);
	assert_string_equal(line, "OK big 1000");
	assert_null(strstr(data, "UNAVAILABLE"));
}

/* The broker, sent SIGTERM, exits 0, and its next start opens all of
 * big's partitions. */
static void expect_clean_stop_then_all_open(void)
{
	struct tc c;
	int st = 0;

	assert_int_equal(waitpid(tb.pid, &st, 0), tb.pid);
	tb.pid = 0;
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	expect_all_open(&c);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Waits until big's metadata record is applied (DESC knows it). */
static void wait_applied(struct tc *c)
{
	char line[256];

	for (int i = 0; i < 1000; i++) {
		assert_int_equal(
			tc_cmd(c, "DESC big", line, sizeof(line), NULL, 0), 0);
		if (strcmp(line, "OK big 1000") == 0)
			break;
		usleep(1000);
	}
	assert_string_equal(line, "OK big 1000");
}

/* Starts a broker and sends CRTP big 1000 on `a`; `c` is another
 * client. */
static void start_big_crtp(struct tc *a, struct tc *c)
{
	int st = 0;

	tb_setup(&tb, NULL);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(a, tb.port), 0);
	assert_int_equal(tc_connect(c, tb.port), 0);
	tc_send(a, "CRTP big 1000");
}

/* CRTP of 1,000 partitions opens them a slice at a time: a client that
 * pings meanwhile is answered before the CRTP is, PUBS to a partition not
 * yet open says so, and the CRTP's answer comes once every partition is
 * open. */
static void test_big_crtp_does_not_stall(void **state)
{
	static struct pinger pg;
	struct pollfd pfd;
	char line[256];
	struct tc a, c;
	pthread_t th;
	double t0, took;

	(void)state;
	start_big_crtp(&a, &c);
	usleep(20000);
	assert_int_equal(tc_cmd(&c, "PING", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK PONG");
	pfd = (struct pollfd){.fd = a.fd, .events = POLLIN};
	if (a.len || poll(&pfd, 1, 0) != 0)
		fail_msg("the CRTP was answered before a PING sent after it");
	/* Keyless: to a partition that is open, or refused saying why. */
	assert_int_equal(tc_cmd(&c, "PUBS big x", line, sizeof(line), NULL, 0),
			 0);
	if (!tb_match("OK {N} 0", line) &&
	    !tb_match("ERR UNAVAILABLE partition big-{N} is still being "
		      "opened here; try again",
		      line) &&
	    !tb_match("ERR NOTOPIC{*}", line))
		fail_msg("PUBS during the CRTP: %s", line);
	pg.port = tb.port;
	pthread_create(&th, NULL, ping_loop, &pg);
	t0 = tb_now();
	assert_int_equal(line_within(&a, line, sizeof(line)), 0);
	assert_string_equal(line, "OK big 1000");
	took = tb_now() - t0;
	print_message("CRTP big 1000 answered %.2f s after a ping\n", took);
	ping_stop(&pg, th);
	expect_all_open(&c);
	tc_close(&a);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* A client that pipelines a command with a big answer (DESC of 1,000
 * partitions, about 60 KiB) and never reads: the broker stops reading it
 * once its answers waiting to go out pass the output bound, wherever they
 * wait, so its memory stays bounded and another client is answered. */
static void test_unread_answers_are_bounded(void **state)
{
	static const char cmd[] = "DESC big\r\n";
	char line[256], buf[64 * sizeof(cmd)];
	struct tc a, c;
	long before, after;
	size_t sent = 0;
	double t0;

	(void)state;
	start_big_crtp(&a, &c);
	assert_int_equal(line_within(&a, line, sizeof(line)), 0);
	assert_string_equal(line, "OK big 1000");
	before = tb_rss_kb(tb.pid);
	for (size_t i = 0; i < 64; i++)
		memcpy(buf + i * (sizeof(cmd) - 1), cmd, sizeof(cmd) - 1);
	/* Until the broker stops reading: 4 s of sending at most. */
	fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) | O_NONBLOCK);
	for (t0 = tb_now(); tb_now() - t0 < 4;) {
		ssize_t n =
			send(a.fd, buf, 64 * (sizeof(cmd) - 1), MSG_NOSIGNAL);

		if (n > 0)
			sent += (size_t)n;
		else
			usleep(10000);
	}
	after = tb_rss_kb(tb.pid);
	t0 = tb_now();
	assert_int_equal(tc_cmd(&c, "PING", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK PONG");
	print_message("%zu DESC sent unread: RSS %ld kB -> %ld kB; PING "
		      "answered in %.3f s\n",
		      sent / (sizeof(cmd) - 1), before, after, tb_now() - t0);
	if (after - before > 100 * 1024)
		fail_msg("RSS grew by %ld kB for answers nobody reads",
			 after - before);
	tc_close(&a);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* A client that pipelines big PUBS while the disk holds their fsync:
 * the broker takes a bounded amount of message bytes in flight from one
 * connection, not 4,096 messages of up to max_line each, and answers
 * every one once the disk is back. */
static void test_publish_bytes_in_flight_are_bounded(void **state)
{
	enum { N = 400, MSG = 1000000 };
	char *line = malloc(MSG + 32), status[256];
	struct tc a, c;
	long before, after;
	int st = 0, ok = 0;

	(void)state;
	assert_non_null(line);
	tb_setup(&tb, NULL);
	assert_int_equal(tb_start_syncfaults(&tb, &st), 0);
	assert_int_equal(tc_connect(&a, tb.port), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(
		tc_cmd(&c, "CRTP t 1", status, sizeof(status), NULL, 0), 0);
	before = tb_rss_kb(tb.pid);
	tb_flag(&tb, "holdsync", 1);
	memcpy(line, "PUBS t ", 7);
	memset(line + 7, 'x', MSG);
	memcpy(line + 7 + MSG, "\r\n", 2);
	fcntl(a.fd, F_SETFL, fcntl(a.fd, F_GETFL) | O_NONBLOCK);
	/* As much as the broker takes in 4 s. */
	for (double t0 = tb_now(); tb_now() - t0 < 4;) {
		static size_t at;
		ssize_t n = send(a.fd, line + at, MSG + 9 - at, MSG_NOSIGNAL);

		if (n > 0 && (at += (size_t)n) == MSG + 9) {
			at = 0;
			if (++ok == N)
				break;
		} else if (n <= 0) {
			usleep(10000);
		}
	}
	after = tb_rss_kb(tb.pid);
	print_message("%d PUBS of 1 MB sent while the fsync is held: RSS "
		      "%ld kB -> %ld kB\n",
		      ok, before, after);
	tb_flag(&tb, "holdsync", 0);
	/* 16 MiB in flight, and what the allocator (under ASan, its
	 * quarantine) keeps of those stored. */
	if (after - before > 128 * 1024)
		fail_msg("RSS grew by %ld kB for messages in flight",
			 after - before);
	tc_close(&a);
	tc_close(&c);
	free(line);
	assert_int_equal(tb_stop(&tb), 0);
}

/* SIGTERM while a big CRTP opens its partitions: the CRTP is answered,
 * the broker stops cleanly, and the next start opens them all. */
static void test_stop_during_big_crtp(void **state)
{
	char line[256];
	struct tc a, c;

	(void)state;
	start_big_crtp(&a, &c);
	wait_applied(&c);
	kill(tb.pid, SIGTERM);
	assert_int_equal(line_within(&a, line, sizeof(line)), 0);
	if (strcmp(line, "OK big 1000") != 0 &&
	    strcmp(line, STOPPING_ANSWER) != 0)
		fail_msg("CRTP cut by SIGTERM: %s", line);
	tc_close(&a);
	tc_close(&c);
	expect_clean_stop_then_all_open();
}

/* A CRTP whose record is applied after SIGTERM (its metadata write held
 * in fdatasync until the broker began to stop) is answered, saying its
 * partitions open at the next start; the broker exits 0 and the next
 * start opens them all. */
static void test_crtp_applied_while_stopping(void **state)
{
	char line[256];
	struct tc a, c;
	struct pollfd pfd;
	int st = 0;

	(void)state;
	tb_setup(&tb, NULL);
	assert_int_equal(tb_start_syncfaults(&tb, &st), 0);
	assert_int_equal(tc_connect(&a, tb.port), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	tb_flag(&tb, "holdsync", 1);
	tc_send(&a, "CRTP big 1000");
	/* The ping's answer shows the CRTP was read: its record waits. */
	assert_int_equal(tc_cmd(&c, "PING", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK PONG");
	usleep(100000);
	pfd = (struct pollfd){.fd = a.fd, .events = POLLIN};
	if (a.len || poll(&pfd, 1, 0) != 0)
		fail_msg("the CRTP was answered while its write was held");
	kill(tb.pid, SIGTERM);
	usleep(200000);
	tb_flag(&tb, "holdsync", 0);
	if (line_within(&a, line, sizeof(line)) != 0)
		fail_msg("the CRTP was never answered");
	/* Not opened after SIGTERM: that would hold the stop for as long
	 * as 1,000 partitions take to open. */
	assert_string_equal(line, STOPPING_ANSWER);
	tc_close(&a);
	tc_close(&c);
	expect_clean_stop_then_all_open();
}

/* While a topic's partitions are being opened they count once against
 * limits.max_partitions_total, not twice. */
static void test_opening_counts_once(void **state)
{
	char line[256];
	struct tc a, c;
	int st = 0;

	(void)state;
	tb_setup(&tb, "\"limits\": {\"max_partitions_total\": 1500}");
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&a, tb.port), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	tc_send(&a, "CRTP big 1000");
	/* Most likely before every partition is open. */
	wait_applied(&c);
	assert_int_equal(
		tc_cmd(&c, "CRTP more 400", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK more 400");
	assert_int_equal(
		tc_cmd(&c, "CRTP over 101", line, sizeof(line), NULL, 0), 0);
	if (!tb_match("ERR BUSY 101 more partitions would pass "
		      "limits.max_partitions_total (1500; 1400 in use)",
		      line))
		fail_msg("CRTP past the limit: %s", line);
	assert_int_equal(line_within(&a, line, sizeof(line)), 0);
	assert_string_equal(line, "OK big 1000");
	tc_close(&a);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

static void test_subs_over_many_groups(void **state)
{
	static struct tc conns[CONNS];
	static struct pinger pg;
	char line[256], cmd[64];
	pthread_t th;
	int st = 0, members = 0;
	double t0;

	(void)state;
	tb_setup(&tb, NULL);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&conns[0], tb.port), 0);
	assert_int_equal(
		tc_cmd(&conns[0], "CRTP s 4", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK s 4");
	pg.port = tb.port;
	pthread_create(&th, NULL, ping_loop, &pg);
	t0 = tb_now();
	for (int c = 0; c < CONNS; c++) {
		if (c > 0)
			assert_int_equal(tc_connect(&conns[c], tb.port), 0);
		for (int j = 0; j < PER; j++) {
			snprintf(cmd, sizeof(cmd), "SUBS s g%d",
				 (c * PER + j) % GROUPS);
			tc_send(&conns[c], cmd);
		}
		for (int j = 0; j < PER; j++) {
			assert_true(tc_line(&conns[c], line, sizeof(line)) > 0);
			if (strncmp(line, "OK ", 3) != 0)
				fail_msg("SUBS %d on connection %d: %s", j, c,
					 line);
		}
	}
	print_message("%d SUBS over %d groups: %.2f s\n", CONNS * PER, GROUPS,
		      tb_now() - t0);
	/* The next one on a full connection is refused, naming the limit. */
	tc_send(&conns[0], "SUBS s another");
	assert_true(tc_line(&conns[0], line, sizeof(line)) > 0);
	assert_non_null(strstr(line, "ERR BUSY"));
	assert_non_null(strstr(line, "max_subscriptions_per_connection"));
	/* Every member is listed. */
	tc_send(&conns[0], "GRPS s");
	for (;;) {
		assert_true(tc_line(&conns[0], line, sizeof(line)) > 0);
		if (strncmp(line, "GROUP ", 6) != 0)
			break;
		members++;
	}
	assert_int_equal(members, CONNS * PER);
	snprintf(cmd, sizeof(cmd), "OK %d", CONNS * PER);
	assert_string_equal(line, cmd);
	for (int c = 0; c < CONNS; c++)
		tc_close(&conns[c]);
	ping_stop(&pg, th);
	/* The groups went with their last members: none is listed. */
	assert_int_equal(tc_connect(&conns[0], tb.port), 0);
	assert_int_equal(
		tc_cmd(&conns[0], "GRPS s", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 0");
	tc_close(&conns[0]);
	assert_int_equal(tb_stop(&tb), 0);
}

/* Connections that each hold most of a 1 MiB line cost the broker its
 * input budget, not their sum: past telnet.max_input_bytes it reads none
 * of them further, while complete lines from others are still served. */
static void test_input_budget(void **state)
{
	enum { N = 60, PART = 900 * 1024 };
	static char junk[PART];
	static struct tc conns[N];
	struct tc c;
	char line[256];
	long before, during;
	int st = 0;

	(void)state;
	tb_telnet_extra =
		"\"max_input_bytes\": 4194304, \"stall_timeout_ms\": 2000";
	tb_setup(&tb, NULL);
	assert_int_equal(tb_start(&tb, &st), 0);
	before = tb_rss_kb(tb.pid);
	memset(junk, 'x', sizeof(junk));
	memcpy(junk, "PUBS t ", 7);
	for (int i = 0; i < N; i++) {
		int fl;

		assert_int_equal(tc_connect(&conns[i], tb.port), 0);
		fl = fcntl(conns[i].fd, F_GETFL);
		fcntl(conns[i].fd, F_SETFL, fl | O_NONBLOCK);
		/* As much as the kernel takes; the broker decides the rest. */
		for (size_t off = 0; off < sizeof(junk);) {
			ssize_t k = send(conns[i].fd, junk + off,
					 sizeof(junk) - off, MSG_NOSIGNAL);

			if (k <= 0)
				break;
			off += (size_t)k;
		}
	}
	usleep(500000);
	during = tb_rss_kb(tb.pid);
	print_message("%d connections with a partial %d KiB line: broker RSS "
		      "%ld kB before, %ld kB with them\n",
		      N, PART / 1024, before, during);
	/* Without the budget this is over 50 MB of lines. */
	assert_true(during - before < 24 * 1024);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(tc_cmd(&c, "PING", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK PONG");
	/* Complete lines go on past the budget. */
	assert_int_equal(tc_cmd(&c, "CRTP t", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK t 1");
	/* Clients stalled in the middle of a line are closed after
	 * stall_timeout_ms (or as soon as they hang up), giving the budget
	 * back, and a long line flows again. */
	for (int i = 0; i < N; i++)
		tc_close(&conns[i]);
	junk[PART - 1] = '\n';
	tc_send_raw(&c, junk, PART);
	assert_true(tc_line(&c, line, sizeof(line)) > 0);
	assert_string_equal(line, "OK 0 0");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_subs_over_many_groups, teardown),
		cmocka_unit_test_teardown(test_many_topics_few_descriptors,
					  teardown),
		cmocka_unit_test_teardown(test_input_budget, teardown),
		cmocka_unit_test_teardown(test_unread_answers_are_bounded,
					  teardown),
		cmocka_unit_test_teardown(
			test_publish_bytes_in_flight_are_bounded, teardown),
		cmocka_unit_test_teardown(test_big_crtp_does_not_stall,
					  teardown),
		cmocka_unit_test_teardown(test_stop_during_big_crtp, teardown),
		cmocka_unit_test_teardown(test_crtp_applied_while_stopping,
					  teardown),
		cmocka_unit_test_teardown(test_opening_counts_once, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
