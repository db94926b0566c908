/* Integration tests with real broker processes: start-up errors, restart
 * and kill -9 durability, streaming reads with flat memory. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/partitioner.h>

#include "harness.h"

#ifndef KQ_TEST_PLUGINDIR
#define KQ_TEST_PLUGINDIR "tests/plugins/.libs"
#endif

static struct tb tb;
static void *scratch; /* a test's allocation, freed even if it fails */

static int teardown(void **state)
{
	free(scratch);
	scratch = NULL;
	tb_cleanup(&tb);
	tb_telnet_extra = "";
	return 0;
}

/* Writes a config file of its own and runs the broker on it until it
 * exits; returns the status and its log in out. */
static int run_config(const char *json, char *out, size_t outlen)
{
	const char *args[] = {"-config", tb.config, NULL};
	FILE *f;

	tb_cleanup(&tb);
	tb_setup(&tb, NULL);
	f = fopen(tb.config, "w");
	assert_non_null(f);
	fprintf(f, json, tb.dir, tb.port);
	fclose(f);
	return tb_run_args(args, out, outlen);
}

#define PLUGINS_OK                                                             \
	"\"plugins\": {\"transport\": \"telnet\", \"partitioner\": "           \
	"\"keyhash\", \"storage\": \"segment\", \"consensus\": \"local\"}"

static void expect_failure(const char *json, int status, const char *text)
{
	char out[8192];
	int st = run_config(json, out, sizeof(out));

	if (st != status || !strstr(out, text))
		fail_msg("expected exit %d and \"%s\", got exit %d:\n%s",
			 status, text, st, out);
	/* One line says what is wrong and where. */
	assert_non_null(strstr(out, "error"));
}

static void test_config_errors(void **state)
{
	char out[4096];
	const char *missing[] = {"-config=/nonexistent/kq.json", NULL};

	assert_int_equal(tb_run_args(missing, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "/nonexistent/kq.json"));

	expect_failure("{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, "
		       "\"bogus\": %d}",
		       2, "bogus: unknown key");
	expect_failure("{\"broker\": {\"id\": \"one\", \"data_dir\": \"%s\", "
		       "\"x\": %d}}",
		       2, "broker.");
	expect_failure(
		"{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, " PLUGINS_OK
		", \"telnet\": {\"port\": %d}, "
		"\"topics\": {\"default_partitions\": 0}}",
		2, "topics.default_partitions: expected an integer");
	expect_failure(
		"{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, " PLUGINS_OK
		", \"telnet\": {\"port\": %d}, "
		"\"segment\": {\"fsync\": \"sometimes\"}}",
		1, "segment.fsync: expected one of always, interval, never");
	expect_failure(
		"{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, " PLUGINS_OK
		", \"telnet\": {\"port\": %d, \"colour\": 1}}",
		1, "telnet.colour");
	expect_failure("{ \"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, "
		       "\"plugins\": {\"transport\": [\"telnet\"] %d}",
		       2, "line 1");
}

static void test_plugin_errors(void **state)
{
	char json[1024], want[128];

	expect_failure("{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, "
		       "\"plugins\": {\"transport\": \"nosuch\"}, "
		       "\"nosuch\": {\"port\": %d}}",
		       1, "transport module nosuch: cannot load (tried ");
	expect_failure("{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"}, "
		       "\"plugins\": {\"storage\": \"keyhash\"}, "
		       "\"telnet\": {\"port\": %d}}",
		       1, "is a partitioner module");
	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%%s\"}, "
		 "\"plugin_path\": [\"%s\"], "
		 "\"plugins\": {\"partitioner\": [\"keyhash\", \"badabi\"]}, "
		 "\"telnet\": {\"port\": %%d}}",
		 KQ_TEST_PLUGINDIR);
	expect_failure(json, 1, "built for plugin ABI 999");
	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%%s\"}, "
		 "\"plugin_path\": [\"%s\"], "
		 "\"plugins\": {\"partitioner\": [\"badsize\"]}, "
		 "\"telnet\": {\"port\": %%d}}",
		 KQ_TEST_PLUGINDIR);
	snprintf(want, sizeof(want),
		 "its ops table is %zu bytes, this broker's is %zu",
		 sizeof(struct kq_partitioner_ops) - sizeof(void *),
		 sizeof(struct kq_partitioner_ops));
	expect_failure(json, 1, want);
	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%%s\"}, "
		 "\"plugin_path\": [\"%s\"], "
		 "\"plugins\": {\"partitioner\": [\"baddesc\"]}, "
		 "\"telnet\": {\"port\": %%d}}",
		 KQ_TEST_PLUGINDIR);
	snprintf(want, sizeof(want),
		 "its descriptor is %zu bytes, this broker's is %zu",
		 sizeof(struct kq_plugin_desc) - sizeof(void *),
		 sizeof(struct kq_plugin_desc));
	expect_failure(json, 1, want);
	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": 1, \"data_dir\": \"%%s\"}, "
		 "\"plugin_path\": [\"%s\"], "
		 "\"plugins\": {\"consensus\": \"noentry\"}, "
		 "\"telnet\": {\"port\": %%d}}",
		 KQ_TEST_PLUGINDIR);
	expect_failure(json, 1, "no kq_plugin_entry symbol");
}

static void test_command_line(void **state)
{
	char out[4096];
	const char *version[] = {"-version", NULL};
	const char *help[] = {"-h", NULL};
	const char *bogus[] = {"-bogus=1", NULL};
	const char *badport[] = {"-port=99999", NULL};

	assert_int_equal(tb_run_args(version, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "kafkaesqued "));
	assert_int_equal(tb_run_args(help, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "-brokerId"));
	assert_int_equal(tb_run_args(bogus, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "unknown flag -bogus"));
	assert_int_equal(tb_run_args(badport, out, sizeof(out)), 2);
	assert_non_null(strstr(out, "-port"));
}

/* Flags override the file: the broker listens where -port says and keeps
 * its data where -datadir and -brokerId say. */
static void test_flags_override(void **state)
{
	struct tc c;
	char line[256], port[32], dir[300], id[] = "-brokerId=7";
	const char *args[8];
	int p2;

	tb_setup(&tb, NULL);
	p2 = tb_free_port();
	snprintf(port, sizeof(port), "-port=%d", p2);
	snprintf(dir, sizeof(dir), "-datadir=%s/other", tb.dir);
	args[0] = "-c";
	args[1] = tb.config;
	args[2] = port;
	args[3] = dir;
	args[4] = id;
	args[5] = NULL;
	/* Run it in the background through the harness's spawn path. */
	{
		char cmd[2048];

		snprintf(cmd, sizeof(cmd),
			 "%s %s %s %s %s %s >>%s 2>&1 & echo $! > %s/pid",
			 getenv("KQ_BROKER") ? getenv("KQ_BROKER")
					     : KQ_BUILDDIR "/kafkaesqued",
			 args[0], args[1], args[2], args[3], args[4], tb.log,
			 tb.dir);
		assert_int_equal(system(cmd), 0);
		snprintf(cmd, sizeof(cmd), "%s/pid", tb.dir);
		for (int i = 0; i < 100 && tb.pid <= 0; i++) {
			FILE *f = fopen(cmd, "r");

			if (f) {
				if (fscanf(f, "%d", &tb.pid) != 1)
					tb.pid = 0;
				fclose(f);
			}
			if (tb.pid <= 0)
				usleep(10000);
		}
	}
	assert_true(tb.pid > 0);
	for (int i = 0; i < 2000 && tc_connect(&c, p2) != 0; i++)
		usleep(10000);
	assert_true(c.fd >= 0);
	assert_int_equal(tc_cmd(&c, "STAT", line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 7");
	tc_close(&c);
	snprintf(dir, sizeof(dir), "%s/other/kafkaesque-7/__meta", tb.dir);
	assert_int_equal(access(dir, F_OK), 0);
	/* Not our child: SIGTERM it and wait for its port to close. */
	kill(tb.pid, SIGTERM);
	for (int i = 0; i < 2000 && kill(tb.pid, 0) == 0; i++)
		usleep(10000);
	assert_int_not_equal(kill(tb.pid, 0), 0);
	tb.pid = 0;
}

/* Two brokers cannot share a data folder or a port. */
static void test_exclusive_resources(void **state)
{
	char out[8192];
	const char *args[] = {"-config", tb.config, NULL};
	int st;

	tb_setup_started(&tb, NULL);
	st = tb_run_args(args, out, sizeof(out));
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "in use by another broker"));
	{
		char other[320], portarg[32];
		const char *args2[] = {"-config", tb.config, other, portarg,
				       NULL};

		snprintf(other, sizeof(other), "-datadir=%s/second", tb.dir);
		snprintf(portarg, sizeof(portarg), "-port=%d", tb.port);
		st = tb_run_args(args2, out, sizeof(out));
		assert_int_equal(st, 1);
		assert_non_null(strstr(out, "127.0.0.1"));
	}
	assert_int_equal(tb_stop(&tb), 0);
}

/* ------------------------------------------------------------ durability */

struct pub_run {
	struct tc *c;
	int count;
	volatile int stop;
};

static void *publisher(void *arg)
{
	struct pub_run *pr = arg;
	char buf[65536];
	size_t used = 0;

	for (int i = 0; i < pr->count && !pr->stop; i++) {
		used += (size_t)snprintf(buf + used, sizeof(buf) - used,
					 "PUBS d msg-%d\r\n", i);
		if (used > sizeof(buf) - 64 || i == pr->count - 1) {
			const char *p = buf;

			while (used) {
				ssize_t n = write(pr->c->fd, p, used);

				if (n <= 0)
					return NULL;
				p += n;
				used -= (size_t)n;
			}
		}
	}
	return NULL;
}

struct acked {
	int part;
	long off;
};

/* Reads every message of topic d from offset 0 and checks each
 * acknowledged one is there with its own text. */
static void check_all_present(struct tc *c, struct acked *acks, int nacks,
			      int nparts)
{
	char line[256], msg[256], *text;
	long count = 0, off, len;
	int part;
	char **seen[8] = {0};
	long seen_n[8] = {0};

	assert_true(nparts <= 8);
	tc_send(c, "SUBS d check");
	assert_int_not_equal(tc_line(c, line, sizeof(line)), -1);
	assert_true(tb_match("OK {N} {*}", line));
	{
		char cmd[64];
		long id = strtol(line + 3, NULL, 10);

		snprintf(cmd, sizeof(cmd), "CONS d %ld 0", id);
		tc_send(c, cmd);
	}
	for (;;) {
		assert_int_not_equal(tc_line(c, line, sizeof(line)), -1);
		if (strncmp(line, "OK ", 3) == 0)
			break;
		assert_int_equal(
			sscanf(line, "MSG %d %ld %ld", &part, &off, &len), 3);
		assert_true(len < (long)sizeof(msg));
		assert_int_equal(tc_bytes(c, msg, (size_t)len + 2), 0);
		msg[len] = '\0';
		text = strdup(msg);
		if (off >= seen_n[part]) {
			long n = off + 1024;

			seen[part] = realloc(seen[part], n * sizeof(char *));
			memset(seen[part] + seen_n[part], 0,
			       (n - seen_n[part]) * sizeof(char *));
			seen_n[part] = n;
		}
		assert_null(seen[part][off]);
		seen[part][off] = text;
		count++;
	}
	for (int i = 0; i < nacks; i++) {
		char want[64];
		int p = acks[i].part;
		long o = acks[i].off;

		snprintf(want, sizeof(want), "msg-%d", i);
		if (o >= seen_n[p] || !seen[p][o])
			fail_msg("acknowledged message %d (%d/%ld) is missing",
				 i, p, o);
		assert_string_equal(seen[p][o], want);
	}
	for (int p = 0; p < 8; p++) {
		for (long o = 0; o < seen_n[p]; o++)
			free(seen[p][o]);
		free(seen[p]);
	}
	assert_true(count >= nacks);
}

static void test_kill9_pipelined(void **state)
{
	struct tc c;
	struct pub_run pr;
	pthread_t th;
	char line[256];
	int total = 400000, nacks = 0, st;
	struct acked *acks = scratch = calloc((size_t)total, sizeof(*acks));

	signal(SIGPIPE, SIG_IGN);
	tb_setup_started(&tb, NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(tc_cmd(&c, "CRTP d 3", line, sizeof(line), NULL, 0),
			 0);
	assert_string_equal(line, "OK d 3");
	pr.c = &c;
	pr.count = total;
	pr.stop = 0;
	pthread_create(&th, NULL, publisher, &pr);
	/* Kill it in the middle of the run, with answers still coming. */
	while (nacks < 20000) {
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		assert_int_equal(sscanf(line, "OK %d %ld", &acks[nacks].part,
					&acks[nacks].off),
				 2);
		nacks++;
	}
	tb_kill9(&tb);
	/* Answers already received count too. */
	while (tc_line(&c, line, sizeof(line)) >= 0 && nacks < total)
		if (sscanf(line, "OK %d %ld", &acks[nacks].part,
			   &acks[nacks].off) == 2)
			nacks++;
	pr.stop = 1;
	tc_close(&c);
	pthread_join(th, NULL);
	print_message("acknowledged before kill -9: %d of %d\n", nacks, total);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	check_all_present(&c, acks, nacks, 3);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* SIGTERM in the middle of a pipelined run: every command the broker
 * started is answered before it closes, and exactly the answered messages
 * are stored. */
static void test_graceful_stop_answers_in_flight(void **state)
{
	struct tc c;
	struct pub_run pr;
	char line[256], want[64];
	int acked = 0, st;

	signal(SIGPIPE, SIG_IGN);
	tb_setup_started(&tb, NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(tc_cmd(&c, "CRTP d 1", line, sizeof(line), NULL, 0),
			 0);
	pr.c = &c;
	pr.count = 20000;
	pr.stop = 0;
	publisher(&pr);
	assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
	assert_string_equal(line, "OK 0 0");
	acked = 1;
	kill(tb.pid, SIGTERM);
	while (tc_line(&c, line, sizeof(line)) >= 0) {
		snprintf(want, sizeof(want), "OK 0 %d", acked);
		assert_string_equal(line, want);
		acked++;
	}
	tc_close(&c);
	{
		int status;

		assert_int_equal(waitpid(tb.pid, &status, 0), tb.pid);
		tb.pid = 0;
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	print_message("answered before the graceful stop: %d of %d\n", acked,
		      pr.count);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(
		tc_cmd(&c, "DESC d", line, sizeof(line), want, sizeof(want)),
		0);
	snprintf(line, sizeof(line),
		 "PARTITION 0 LEADER 1 REPLICAS 1 START 0 "
		 "END %d",
		 acked);
	assert_string_equal(want, line);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* A reader that stops reading must not make the broker buffer the
 * partition: its memory stays flat while the socket is full. */
static void test_cons_streams_with_flat_memory(void **state)
{
	struct tc c, r;
	struct pub_run pr;
	char line[256];
	int total = 200000, got = 0;
	long before, during;

	tb_setup_started(&tb, NULL);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(tc_cmd(&c, "CRTP d 1", line, sizeof(line), NULL, 0),
			 0);
	pr.c = &c;
	pr.count = total;
	pr.stop = 0;
	publisher(&pr);
	while (got < total) {
		assert_int_not_equal(tc_line(&c, line, sizeof(line)), -1);
		assert_true(tb_match("OK 0 {N}", line));
		got++;
	}
	before = tb_rss_kb(tb.pid);
	assert_int_equal(tc_connect(&r, tb.port), 0);
	assert_int_equal(tc_cmd(&r, "SUBS d g", line, sizeof(line), NULL, 0),
			 0);
	tc_send(&r, "CONS d 1 0");
	assert_int_not_equal(tc_line(&r, line, sizeof(line)), -1);
	assert_string_equal(line, "MSG 0 0 5");
	/* Let the broker fill the socket buffers, then look at it. */
	sleep(1);
	during = tb_rss_kb(tb.pid);
	print_message("broker RSS %ld kB before the read, %ld kB while the "
		      "reader is stalled (%d messages stored)\n",
		      before, during, total);
	assert_true(during - before < 32 * 1024);
	/* Reading on finishes the stream: every message, then OK. */
	got = 1;
	for (;;) {
		assert_int_not_equal(tc_line(&r, line, sizeof(line)), -1);
		if (strncmp(line, "OK ", 3) == 0)
			break;
		if (strncmp(line, "MSG ", 4) == 0)
			got++;
	}
	assert_int_equal(got, total);
	assert_int_equal(atoi(line + 3), total);
	tc_close(&r);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* SUBS, CONS, CMIT (answered once the group's offset is stored), UNSB:
 * a console with a group of its own.  Returns how many messages CONS
 * read. */
static int visit_group(struct tc *c, const char *group)
{
	char cmd[128], line[256], data[4096];
	long id;
	int n;

	snprintf(cmd, sizeof(cmd), "SUBS t %s", group);
	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0), 0);
	if (sscanf(line, "OK %ld", &id) != 1)
		fail_msg("%s: %s", cmd, line);
	snprintf(cmd, sizeof(cmd), "CONS t %ld", id);
	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), data, sizeof(data)),
			 0);
	assert_int_equal(sscanf(line, "OK %d", &n), 1);
	snprintf(cmd, sizeof(cmd), "CMIT t %ld", id);
	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 1");
	snprintf(cmd, sizeof(cmd), "UNSB t %ld", id);
	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK");
	return n;
}

/* The first offset a new subscription of `group` reads (-1: none), its
 * id into *id. */
static long first_read(struct tc *c, const char *group, long *id)
{
	char cmd[128], line[256], data[4096];
	long part, off;

	snprintf(cmd, sizeof(cmd), "SUBS t %s", group);
	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0), 0);
	if (sscanf(line, "OK %ld", id) != 1)
		fail_msg("%s: %s", cmd, line);
	snprintf(cmd, sizeof(cmd), "CONS t %ld - 1", *id);
	data[0] = '\0';
	assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), data, sizeof(data)),
			 0);
	if (strncmp(line, "OK", 2) != 0)
		fail_msg("%s: %s", cmd, line);
	return sscanf(data, "MSG %ld %ld", &part, &off) == 2 ? off : -1;
}

/* Connects c to tb's broker and publishes m0..m4 to a new topic t. */
static void five_messages(struct tc *c)
{
	char line[256], cmd[128];

	assert_int_equal(tc_connect(c, tb.port), 0);
	assert_int_equal(tc_cmd(c, "CRTP t 1", line, sizeof(line), NULL, 0), 0);
	for (int i = 0; i < 5; i++) {
		snprintf(cmd, sizeof(cmd), "PUBS t m%d", i);
		assert_int_equal(tc_cmd(c, cmd, line, sizeof(line), NULL, 0),
				 0);
	}
}

/* Offsets retention: groups with no member that committed offsets count
 * against limits.max_groups only until groups.offsets_retention_ms has
 * passed since their last activity; then they are forgotten, so new
 * groups can start, and a SUBS of a forgotten one reads from the start.
 * A group with a member keeps its offsets however old they are. */
static void test_offsets_retention(void **state)
{
	char line[256], cmd[128];
	struct tc c, m;
	double t0, waited;
	long id, mid;

	tb_setup_started(&tb, "\"limits\": {\"max_groups\": 2}, "
			      "\"groups\": {\"offsets_retention_ms\": 1500}");
	five_messages(&c);
	assert_int_equal(visit_group(&c, "g1"), 5);
	assert_int_equal(visit_group(&c, "g2"), 5);
	t0 = tb_now();
	/* Both kept by their offsets: no room for a third, for now. */
	assert_int_equal(tc_cmd(&c, "SUBS t g3", line, sizeof(line), NULL, 0),
			 0);
	assert_string_equal(line, "ERR BUSY no more groups: limits.max_groups "
				  "is 2");
	do {
		usleep(100000);
		assert_int_equal(
			tc_cmd(&c, "SUBS t g3", line, sizeof(line), NULL, 0),
			0);
	} while (strncmp(line, "OK ", 3) != 0 && tb_now() - t0 < 10);
	waited = tb_now() - t0;
	print_message("a new group got room after %.1f s\n", waited);
	if (strncmp(line, "OK ", 3) != 0)
		fail_msg("SUBS t g3 after %.1f s: %s", waited, line);
	assert_true(waited > 1.0);
	/* g1 was forgotten: it starts from the topic's start, and stays
	 * (it has a member now). */
	assert_int_equal(first_read(&c, "g1", &mid), 0);
	snprintf(cmd, sizeof(cmd), "CONS t %ld", mid);
	assert_int_equal(tc_cmd(&c, cmd, line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 4");
	snprintf(cmd, sizeof(cmd), "CMIT t %ld", mid);
	assert_int_equal(tc_cmd(&c, cmd, line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 1");
	/* Its offsets grow older than the retention while it has a member:
	 * they stay. */
	sleep(3);
	snprintf(cmd, sizeof(cmd), "UNSB t %ld", mid);
	assert_int_equal(tc_cmd(&c, cmd, line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK");
	assert_int_equal(tc_connect(&m, tb.port), 0);
	assert_int_equal(tc_cmd(&m, "PUBS t m5", line, sizeof(line), NULL, 0),
			 0);
	assert_int_equal(first_read(&m, "g1", &id), 5);
	tc_close(&m);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

/* A standalone broker does not log its members, so a restart cannot
 * tell how long ago its groups had one: it counts as their last
 * activity.  A group whose member held it past the retention until the
 * stop keeps its offsets after the restart. */
static void test_offsets_retention_restart(void **state)
{
	char line[256], cmd[128], data[4096];
	struct tc c;
	long id;

	tb_setup_started(&tb, "\"groups\": {\"offsets_retention_ms\": 4000}");
	five_messages(&c);
	assert_int_equal(tc_cmd(&c, "SUBS t g1", line, sizeof(line), NULL, 0),
			 0);
	assert_int_equal(sscanf(line, "OK %ld", &id), 1);
	snprintf(cmd, sizeof(cmd), "CONS t %ld - 2", id);
	assert_int_equal(
		tc_cmd(&c, cmd, line, sizeof(line), data, sizeof(data)), 0);
	assert_string_equal(line, "OK 2");
	snprintf(cmd, sizeof(cmd), "CMIT t %ld", id);
	assert_int_equal(tc_cmd(&c, cmd, line, sizeof(line), NULL, 0), 0);
	assert_string_equal(line, "OK 1");
	/* The member holds the group past the retention, until the stop. */
	sleep(5);
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
	tb_start_checked(&tb);
	/* A retire tick or two (every second here). */
	sleep(2);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	if (first_read(&c, "g1", &id) != 2)
		fail_msg("g1 reads from the start after the restart");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_command_line, teardown),
		cmocka_unit_test_teardown(test_config_errors, teardown),
		cmocka_unit_test_teardown(test_plugin_errors, teardown),
		cmocka_unit_test_teardown(test_flags_override, teardown),
		cmocka_unit_test_teardown(test_exclusive_resources, teardown),
		cmocka_unit_test_teardown(test_kill9_pipelined, teardown),
		cmocka_unit_test_teardown(test_graceful_stop_answers_in_flight,
					  teardown),
		cmocka_unit_test_teardown(test_cons_streams_with_flat_memory,
					  teardown),
		cmocka_unit_test_teardown(test_offsets_retention, teardown),
		cmocka_unit_test_teardown(test_offsets_retention_restart,
					  teardown),
	};

	return cmocka_run_group_tests_name("broker", tests, NULL, NULL);
}
