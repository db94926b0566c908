/* Many subscriptions and groups on one broker: 100,000 SUBS over 10,000
 * groups from 100 connections finish and are all answered OK, GRPS lists
 * every member, closing the connections frees every group, and the limits
 * hold.  Another client pings all along; its latency is printed, not
 * asserted (speed is measured, never timed in tests). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define CONNS	100
#define PER	1000
#define GROUPS	10000
#define MAXPING 100000

static struct tb tb;

struct pinger {
	int port;
	volatile int stop;
	double lat[MAXPING];
	size_t n;
	int failed;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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
		double t0 = now_s();

		tc_send(&c, "PING");
		if (tc_line(&c, line, sizeof(line)) < 0 ||
		    strcmp(line, "OK PONG") != 0) {
			p->failed = 1;
			break;
		}
		p->lat[p->n++] = now_s() - t0;
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

static int teardown(void **state)
{
	(void)state;
	tb_cleanup(&tb);
	return 0;
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
	t0 = now_s();
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
		      now_s() - t0);
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
	pg.stop = 1;
	pthread_join(th, NULL);
	assert_false(pg.failed);
	if (pg.n) {
		qsort(pg.lat, pg.n, sizeof(pg.lat[0]), by_value);
		print_message("PING meanwhile: %zu, p50 %.2f ms, p99 %.2f ms, "
			      "max %.2f ms\n",
			      pg.n, pg.lat[pg.n / 2] * 1e3,
			      pg.lat[pg.n * 99 / 100] * 1e3,
			      pg.lat[pg.n - 1] * 1e3);
	}
	/* The groups went with their last members: none is listed. */
	assert_int_equal(tc_connect(&conns[0], tb.port), 0);
	assert_int_equal(
		tc_cmd(&conns[0], "GRPS s", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 0");
	tc_close(&conns[0]);
	assert_int_equal(tb_stop(&tb), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_subs_over_many_groups, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
