/* Retention in a three-broker cluster: the retention walk meets
 * partitions this broker does not replicate, and a replicated partition
 * whose retention is due keeps every entry that is not committed.  Each
 * test runs on a cluster of its own. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.h"

static struct tcl cl;

static int setup(void **state)
{
	(void)state;
	memset(&cl, 0, sizeof(cl));
	snprintf(cl.extra, sizeof(cl.extra),
		 "\"topics\": {\"retention_check_ms\": 200}");
	tcl_setup(&cl);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	tcl_teardown(&cl);
	return 0;
}

/* Partitions with one replica each, spread over the brokers, so every
 * broker's retention walk meets partitions it holds no log for. */
static void test_retention_skips_partitions_held_elsewhere(void **state)
{
	char status[256], command[128];
	int leader = tcl_start_all(&cl);
	double end;

	(void)state;
	tcl_cmd(&cl, leader - 1, "CRTP ret 3 replicas=1 retention.ms=1000",
		status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK ret 3");
	for (int p = 0; p < 3; p++) {
		int pl = tcl_partition_leader(&cl, "ret", p, 10);

		assert_true(pl > 0);
		snprintf(command, sizeof(command), "PUBS ret m%d", p);
		/* Keyless messages go round robin: publish on the
		 * partition's own broker until one lands. */
		tcl_cmd(&cl, pl - 1, command, status, sizeof(status), NULL, 0);
	}
	/* Several retention runs on every broker. */
	end = tb_now() + 2.5;
	while (tb_now() < end) {
		for (int i = 0; i < TCL_N; i++)
			if (!tcl_alive(&cl, i))
				fail_msg("broker %d died during retention",
					 i + 1);
		usleep(100000);
	}
	for (int i = 0; i < TCL_N; i++) {
		assert_true(tcl_alive(&cl, i));
		tcl_cmd(&cl, i, "PING", status, sizeof(status), NULL, 0);
		assert_string_equal(status, "OK PONG");
	}
	assert_true(tcl_agree(&cl, TCL_N, 10) > 0);
}

/* Stops broker i gracefully and removes `file` from its data folder. */
static void stop_and_remove(int i, const char *file)
{
	char path[600];

	assert_int_equal(tb_stop(&cl.tbs[i]), 0);
	snprintf(path, sizeof(path), "%s/kafkaesque-%d/%s", cl.tbs[i].dir,
		 i + 1, file);
	assert_int_equal(unlink(path), 0);
}

/* Starts the cluster, creates `topic` with one partition on all three
 * brokers and waits for its leader; returns a broker (index) that does
 * not lead the metadata. */
static int follower_with_partition(const char *topic)
{
	char status[256], command[300];
	int leader = tcl_start_all(&cl);

	snprintf(command, sizeof(command), "CRTP %s 1 replicas=3", topic);
	tcl_cmd(&cl, leader - 1, command, status, sizeof(status), NULL, 0);
	assert_true(strncmp(status, "OK ", 3) == 0);
	assert_true(tcl_partition_leader(&cl, topic, 0, 10) > 0);
	return leader % TCL_N;
}

/* A broker whose raft.state is gone while its log holds entries of later
 * terms would start at term 0 with no vote, and could vote twice in a
 * term: it refuses to start and names the file. */
static void test_lost_raft_state_refused(void **state)
{
	char log[16384];
	int f = follower_with_partition("st"), st = 0;

	(void)state;
	stop_and_remove(f, "__meta/raft.state");
	assert_int_equal(tb_start(&cl.tbs[f], &st), -1);
	assert_int_not_equal(st, 0);
	tb_read_log(&cl.tbs[f], log, sizeof(log));
	if (!strstr(log, "__meta/raft.state holds term 0 but the log holds "
			 "term"))
		fail_msg("no line naming the file:\n%s", log);
}

/* The same for a partition's replica: it is not opened (and so never
 * votes or acknowledges), with one line naming the file. */
static void test_lost_partition_raft_state_refused(void **state)
{
	char log[16384];
	int f = follower_with_partition("ps"), st = 0;
	double end;

	(void)state;
	stop_and_remove(f, "ps-0/raft.state");
	tb_start(&cl.tbs[f], &st);
	end = tb_now() + 5;
	do {
		tb_read_log(&cl.tbs[f], log, sizeof(log));
		if (strstr(log, "ps-0/raft.state holds term 0 but the log "
				"holds term"))
			return;
		usleep(50000);
	} while (tb_now() < end);
	fail_msg("no line naming the file:\n%s", log);
}

/* The newest segment of broker i's replica of `part` (e.g. "lone-0"):
 * its path into path, its size returned. */
static long newest_segment(int i, const char *part, char *path, size_t len)
{
	char dir[600], best[64] = "";
	struct dirent *d;
	struct stat st;
	DIR *dp;

	snprintf(dir, sizeof(dir), "%s/kafkaesque-%d/%s", cl.tbs[i].dir, i + 1,
		 part);
	dp = opendir(dir);
	assert_non_null(dp);
	while ((d = readdir(dp)))
		if (strlen(d->d_name) == 24 &&
		    strcmp(d->d_name + 20, ".log") == 0 &&
		    strcmp(d->d_name, best) > 0)
			memcpy(best, d->d_name, 25); /* 24 and the NUL */
	closedir(dp);
	assert_true(best[0] != '\0');
	assert_true((size_t)snprintf(path, len, "%s/%s", dir, best) < len);
	assert_int_equal(stat(path, &st), 0);
	return (long)st.st_size;
}

/* Publishes `msg` on broker i, again while it answers UNAVAILABLE (an
 * election) or NOTOPIC (a restarted broker catching up on the metadata)
 * for up to 15 s; returns the offset it was given. */
static long publish_on(int i, const char *msg)
{
	char status[256], command[128];
	double end = tb_now() + 15;
	long off = -1;

	snprintf(command, sizeof(command), "PUBS lone %s", msg);
	do {
		tcl_cmd(&cl, i, command, status, sizeof(status), NULL, 0);
		if (sscanf(status, "OK 0 %ld", &off) == 1)
			return off;
		usleep(100000);
	} while ((strncmp(status, "ERR UNAVAILABLE", 15) == 0 ||
		  strncmp(status, "ERR NOTOPIC", 11) == 0) &&
		 tb_now() < end);
	fail_msg("PUBS %s: %s", msg, status);
	return -1;
}

/* A partition with one replica whose last two records were damaged on
 * disk: recovery drops them, and there is no other replica to fetch
 * them from.  They were acknowledged, so their offsets are never given
 * to new messages. */
static void test_lone_replica_lost_tail(void **state)
{
	char status[256], path[700], again[700];
	int leader = tcl_start_all(&cl), pl;
	long before, last, size, next;

	(void)state;
	tcl_cmd(&cl, leader - 1, "CRTP lone 1 replicas=1", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK lone 1");
	pl = tcl_partition_leader(&cl, "lone", 0, 10);
	assert_true(pl > 0);
	for (int k = 0; k < 4; k++)
		publish_on(pl - 1, "m");
	before = newest_segment(pl - 1, "lone-0", path, sizeof(path));
	last = publish_on(pl - 1, "m");
	size = newest_segment(pl - 1, "lone-0", again, sizeof(again));
	assert_string_equal(path, again); /* the same segment */
	assert_int_equal(tb_stop(&cl.tbs[pl - 1]), 0);
	/* Inside the last two records, which have the same size. */
	tb_flip_byte(path, size - 3);
	tb_flip_byte(path, before - 3);
	tcl_start(&cl, pl - 1);
	next = publish_on(pl - 1, "after");
	if (next <= last)
		fail_msg("offset %ld handed out again (%ld was acknowledged)",
			 next, last);
}

/* fsync interval with raft is allowed, with one warning line. */
static void test_fsync_interval_warns(void **state)
{
	char log[16384];

	(void)state;
	snprintf(cl.segment_extra, sizeof(cl.segment_extra),
		 "\"fsync\": \"interval\"");
	for (int i = 0; i < TCL_N; i++)
		tcl_write_config(&cl, i);
	tcl_start(&cl, 0);
	tb_read_log(&cl.tbs[0], log, sizeof(log));
	if (!strstr(log, "fsync interval in a cluster"))
		fail_msg("no warning:\n%s", log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_retention_skips_partitions_held_elsewhere, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_lost_raft_state_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_lost_partition_raft_state_refused, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_fsync_interval_warns,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_lone_replica_lost_tail,
						setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
