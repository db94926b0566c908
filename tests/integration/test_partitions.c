/* Many replicated partitions under a small descriptor limit: three
 * brokers, each started with `ulimit -n 512`, create 2,000 partitions of
 * three replicas, take messages on every one of them (round robin) through
 * every broker, are killed with SIGKILL and started again, and then every
 * acknowledged message is read back, once, at its offset, from every
 * broker, and every partition goes back to its preferred leader (its first
 * replica).  Descriptors are bounded by segment.open_files (at most half
 * the limit), not by the number of partitions. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.h"

#define TOPICS	   20
#define PARTITIONS 100
#define PER_PART   2 /* messages per partition */
#define MSGS	   (TOPICS * PARTITIONS * PER_PART)
#define NOFILE	   512

static struct tcl cl;

/* acked[t][k]: partition and offset of message k of topic t; -1 when
 * it was answered ERR UNAVAILABLE (a leader changed with it in flight:
 * it may or may not be stored). */
static long acked[TOPICS][PARTITIONS * PER_PART][2];
static long nacked[TOPICS];

static int setup(void **state)
{
	(void)state;
	memset(&cl, 0, sizeof(cl));
	cl.segment_bytes = 1 << 20;
	tb_nofile = NOFILE;
	tcl_setup(&cl);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tcl_teardown(&cl);
	tb_nofile = 0;
	return 0;
}

/* Open descriptors of broker i's process. */
static int open_fds(int i)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)cl.tbs[i].pid);
	d = opendir(path);
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Pipelines topic t's messages into broker i; without keys they go round
 * robin, so each partition takes PER_PART, each acknowledged with its
 * offset. */
static void publish(int i, int t)
{
	char command[128], line[256];
	struct tc c;

	assert_int_equal(tc_connect(&c, cl.tbs[i].port), 0);
	for (int k = 0; k < PARTITIONS * PER_PART; k++) {
		snprintf(command, sizeof(command), "PUBS m%d t%d-%d", t, t, k);
		tc_send(&c, command);
	}
	for (int k = 0; k < PARTITIONS * PER_PART; k++) {
		assert_true(tc_line(&c, line, sizeof(line)) > 0);
		if (sscanf(line, "OK %ld %ld", &acked[t][k][0],
			   &acked[t][k][1]) == 2) {
			nacked[t]++;
			continue;
		}
		if (strncmp(line, "ERR UNAVAILABLE", 15) != 0)
			fail_msg("PUBS %d of m%d on broker %d: %s", k, t, i + 1,
				 line);
		acked[t][k][0] = acked[t][k][1] = -1;
	}
	tc_close(&c);
}

/* Reads topic t from offset 0 on broker i: every message once, each
 * acknowledged one at its offset.  Returns the acknowledged messages
 * read (0 while the broker does not know the commit of every partition
 * yet). */
static long read_back(int i, int t)
{
	static char seen[PARTITIONS * PER_PART];
	static int attempt; /* a group of its own each time */
	char command[96], status[256], body[128];
	long sub, n = 0;
	struct tc c;

	memset(seen, 0, sizeof(seen));
	assert_int_equal(tc_connect(&c, cl.tbs[i].port), 0);
	snprintf(command, sizeof(command), "SUBS m%d r%d", t, attempt++);
	assert_int_equal(tc_cmd(&c, command, status, sizeof(status), NULL, 0),
			 0);
	if (sscanf(status, "OK %ld", &sub) != 1)
		fail_msg("SUBS on broker %d: %s", i + 1, status);
	snprintf(command, sizeof(command), "CONS m%d %ld 0", t, sub);
	tc_send(&c, command);
	for (;;) {
		long part, off, len;
		int bt, bk;

		assert_true(tc_line(&c, status, sizeof(status)) > 0);
		if (sscanf(status, "MSG %ld %ld %ld", &part, &off, &len) != 3)
			break;
		assert_true(tc_line(&c, body, sizeof(body)) > 0);
		if (sscanf(body, "t%d-%d", &bt, &bk) != 2 || bt != t ||
		    bk < 0 || bk >= PARTITIONS * PER_PART)
			fail_msg("broker %d, m%d: %s", i + 1, t, body);
		if (acked[t][bk][0] >= 0 &&
		    (acked[t][bk][0] != part || acked[t][bk][1] != off))
			fail_msg("broker %d: message %d of m%d acknowledged at "
				 "%ld/%ld, read at %ld/%ld",
				 i + 1, bk, t, acked[t][bk][0], acked[t][bk][1],
				 part, off);
		if (seen[bk]++)
			fail_msg("broker %d: message %d of m%d read twice",
				 i + 1, bk, t);
		n += acked[t][bk][0] >= 0;
	}
	if (strncmp(status, "OK", 2) != 0)
		n = 0; /* a partition not readable yet: asked again */
	tc_close(&c);
	return n;
}

static void dump_logs(void)
{
	static char log[1 << 20];

	for (int k = 0; k < TCL_N; k++) {
		tb_read_log(&cl.tbs[k], log, sizeof(log));
		printf("log of broker %d:\n%s\n", k + 1, log);
	}
}

/* Whether every broker leads exactly the partitions whose first replica
 * it is, as broker 1 sees it; *led gets how many are led so. */
static bool leaders_preferred(int *led)
{
	static char data[16384];
	char status[256], command[64];
	int want[TCL_N + 1] = {0}, have[TCL_N + 1] = {0};
	const char *p;

	for (int t = 0; t < TOPICS; t++) {
		snprintf(command, sizeof(command), "DESC m%d", t);
		tcl_cmd(&cl, 0, command, status, sizeof(status), data,
			sizeof(data));
		for (p = data; (p = strstr(p, " REPLICAS ")); p++) {
			int first = atoi(p + 10);

			if (first >= 1 && first <= TCL_N)
				want[first]++;
		}
	}
	tcl_cmd(&cl, 0, "STAT", status, sizeof(status), data, sizeof(data));
	for (p = data; (p = strstr(p, "BROKER ")); p++) {
		int id = atoi(p + 7);
		const char *l = strstr(p, " LEADS ");

		if (id >= 1 && id <= TCL_N && l)
			have[id] = atoi(l + 7);
	}
	*led = 0;
	for (int i = 1; i <= TCL_N; i++)
		*led += have[i] < want[i] ? have[i] : want[i];
	for (int i = 1; i <= TCL_N; i++)
		if (have[i] != want[i])
			return false;
	return true;
}

static void test_many_partitions(void **state)
{
	char status[256], command[96];
	int leader = tcl_start_all(&cl);
	double t0 = tb_now(), end;

	(void)state;
	for (int t = 0; t < TOPICS; t++) {
		snprintf(command, sizeof(command), "CRTP m%d %d replicas=3", t,
			 PARTITIONS);
		tcl_cmd(&cl, t % TCL_N, command, status, sizeof(status), NULL,
			0);
		if (strncmp(status, "OK", 2) != 0)
			fail_msg("%s on broker %d: %s", command, t % TCL_N + 1,
				 status);
	}
	printf("%d partitions of 3 replicas created in %.1f s\n",
	       TOPICS * PARTITIONS, tb_now() - t0);
	t0 = tb_now();
	for (int t = 0; t < TOPICS; t++)
		publish(t % TCL_N, t);
	{
		long all = 0;

		for (int t = 0; t < TOPICS; t++)
			all += nacked[t];
		printf("%ld of %d messages acknowledged in %.1f s\n", all, MSGS,
		       tb_now() - t0);
	}
	for (int i = 0; i < TCL_N; i++) {
		int n = open_fds(i);

		printf("broker %d: %d descriptors open (limit %d)\n", i + 1, n,
		       NOFILE);
		assert_true(n < NOFILE / 2 + 64);
	}

	for (int i = 0; i < TCL_N; i++)
		tb_kill9(&cl.tbs[i]);
	t0 = tb_now();
	for (int i = 0; i < TCL_N; i++)
		tcl_start(&cl, i);
	leader = tcl_agree(&cl, TCL_N, 60);
	if (leader <= 0) {
		dump_logs();
		fail_msg("no metadata leader 60 s after the restart");
	}
	printf("restarted; metadata leader after %.1f s\n", tb_now() - t0);
	for (int i = 0; i < TCL_N; i++) {
		for (int t = 0; t < TOPICS; t++) {
			long n;

			end = tb_now() + 60;
			while ((n = read_back(i, t)) < nacked[t] &&
			       tb_now() < end)
				usleep(100000);
			if (n != nacked[t]) {
				static char data[16384];

				for (int k = 0; k < TCL_N; k++) {
					snprintf(command, sizeof(command),
						 "DESC m%d", t);
					tcl_cmd(&cl, k, command, status,
						sizeof(status), data,
						sizeof(data));
					printf("broker %d: %s\n%s\n", k + 1,
					       status, data);
				}
				dump_logs();
				fail_msg("broker %d read %ld of the %ld "
					 "acknowledged messages of m%d",
					 i + 1, n, nacked[t], t);
			}
		}
	}
	printf("every message read back from every broker %.1f s after the "
	       "restart\n",
	       tb_now() - t0);
	/* Leaders come back to their preferred brokers a few at a time,
	 * sleeping groups included, not one sweep of them every few
	 * seconds. */
	{
		int led = 0;

		end = tb_now() + 60;
		while (!leaders_preferred(&led) && tb_now() < end)
			usleep(200000);
		if (!leaders_preferred(&led)) {
			static char data[4096];

			tcl_cmd(&cl, 0, "STAT", status, sizeof(status), data,
				sizeof(data));
			fail_msg("60 s after the restart, %d of %d partitions "
				 "are led by their first replica:\n%s",
				 led, TOPICS * PARTITIONS, data);
		}
		printf("every partition led by its first replica %.1f s "
		       "after the restart\n",
		       tb_now() - t0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_many_partitions, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
