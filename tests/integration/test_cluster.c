/* Three brokers with the raft module on loopback, sharing a cluster
 * secret (each reads its own copy, mode 0600): a metadata leader is
 * elected and agreed on, survives a kill -9 of its broker by failing over,
 * keeps its place when the killed broker rejoins (pre-vote), and the
 * metadata and partition logs are replicated.  Each group caches only
 * 2 KiB of entries, so followers are served from the logs.  Metadata
 * snapshots are taken every 5 entries: a restarted follower recovers
 * from its own, and one that was down while the leader compacted catches
 * up by install-snapshot.  A follower that was down while retention deleted
 * the partition entries it lacked restarts its log at the leader's first
 * offset.  Each test runs on three brokers of its own. */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include <cmocka.h>

#include "cluster.h"

#define N TCL_N

static struct tcl cl;
/* A broker stopped with SIGSTOP, which cannot answer (-1: none). */
static int paused = -1;

/* Three brokers of their own, with `extra` spliced into their configs
 * ("" for the fixture's defaults) and cluster.session_timeout_ms
 * `session_ms`. */
static void start_cluster_session(const char *extra, int session_ms)
{
	paused = -1; /* a test that failed may have left one */
	memset(&cl, 0, sizeof(cl));
	cl.secret = 1;
	snprintf(cl.cluster_extra, sizeof(cl.cluster_extra),
		 "\"session_timeout_ms\": %d", session_ms);
	snprintf(cl.extra, sizeof(cl.extra), "%s", extra);
	tcl_setup(&cl);
	for (int i = 0; i < N; i++)
		tcl_start(&cl, i);
}

static void start_cluster(const char *extra)
{
	start_cluster_session(extra, 1500);
}

static int setup(void **state)
{
	start_cluster("");
	return 0;
}

/* Sessions long enough that only a graceful stop can end members within
 * a test's patience. */
static int setup_long_sessions(void **state)
{
	start_cluster_session("", 120000);
	return 0;
}

static int teardown(void **state)
{
	for (int i = 0; i < N; i++)
		tb_kill9(&cl.tbs[i]);
	tcl_teardown(&cl);
	return 0;
}

static void test_election(void **state)
{
	int leader = tcl_agree(&cl, N, 10);

	assert_true(leader >= 1 && leader <= N);
	print_message("metadata leader: broker %d\n", leader);
}

static void test_metadata_replicated(void **state)
{
	char status[256], data[4096];
	int leader = tcl_agree(&cl, N, 10);
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, leader - 1, "CRTP meta-topic 2", status, sizeof(status),
		NULL, 0);
	assert_string_equal(status, "OK meta-topic 2");
	for (int i = 0; i < N; i++) {
		int found = 0;

		end = tb_now() + 10;
		while (!found && tb_now() < end) {
			tcl_cmd(&cl, i, "LIST", status, sizeof(status), data,
				sizeof(data));
			found = strstr(data, "TOPIC meta-topic 2") != NULL;
			if (!found)
				usleep(20000);
		}
		if (!found)
			fail_msg("broker %d: LIST does not show the topic: "
				 "%s / %s",
				 i + 1, data, status);
	}
}

static void test_partition_replicated(void **state)
{
	char status[256], data[4096], command[128], msg[64];
	int leader = tcl_agree(&cl, N, 10), pleader = 0;
	long sub = 0;
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, leader - 1, "CRTP repl 1 replicas=3", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK repl 1");
	/* The partition's own group elects its leader. */
	end = tb_now() + 10;
	while (!pleader && tb_now() < end) {
		for (int i = 0; i < N && !pleader; i++) {
			const char *p;

			tcl_cmd(&cl, i, "DESC repl", status, sizeof(status),
				data, sizeof(data));
			p = strstr(data, "PARTITION 0 LEADER ");
			if (p &&
			    sscanf(p, "PARTITION 0 LEADER %d", &pleader) != 1)
				pleader = 0;
		}
		if (!pleader)
			usleep(20000);
	}
	assert_true(pleader >= 1 && pleader <= N);
	print_message("partition repl-0 leader: broker %d\n", pleader);
	assert_non_null(strstr(data, "REPLICAS "));

	tcl_cmd(&cl, pleader - 1, "PUBS repl replicated-hello", status,
		sizeof(status), NULL, 0);
	if (!tb_match("OK 0 {N}", status))
		fail_msg("PUBS on the partition leader: %s", status);

	/* Subscription ids are reserved through the metadata log, which
	 * only its leader can write: subscribe there.  Every broker holds a
	 * replica of the partition, so that broker reads it from its own
	 * copy (the partition leader itself when they coincide). */
	{
		struct tc c;
		char line[256];
		long off;

		assert_int_equal(tc_connect(&c, cl.tbs[leader - 1].port), 0);
		assert_int_equal(tc_cmd(&c, "SUBS repl g1", status,
					sizeof(status), NULL, 0),
				 0);
		assert_int_equal(sscanf(status, "OK %ld", &sub), 1);
		snprintf(command, sizeof(command), "CONS repl %ld 0", sub);
		/* A follower's replica may be a heartbeat behind the leader
		 * (docs/protocol.md): nothing yet is "OK 0". */
		end = tb_now() + 10;
		for (;;) {
			tc_send(&c, command);
			assert_true(tc_line(&c, line, sizeof(line)) > 0);
			if (strcmp(line, "OK 0") != 0 || tb_now() > end)
				break;
			usleep(20000);
		}
		if (sscanf(line, "MSG 0 %ld 15", &off) != 1)
			fail_msg("CONS: %s", line);
		assert_true(tc_line(&c, msg, sizeof(msg)) > 0);
		assert_string_equal(msg, "replicated-hello");
		assert_true(tc_line(&c, line, sizeof(line)) > 0);
		assert_string_equal(line, "OK 1");
		tc_close(&c);
	}
	/* Every replica's log holds it: DESC END moves past it on all. */
	for (int i = 0; i < N; i++) {
		long start = -1, endoff = -1;

		end = tb_now() + 10;
		do {
			const char *p;

			tcl_cmd(&cl, i, "DESC repl", status, sizeof(status),
				data, sizeof(data));
			p = strstr(data, " START ");
			if (p)
				sscanf(p, " START %ld END %ld", &start,
				       &endoff);
			if (endoff >= 2)
				break;
			usleep(20000);
		} while (tb_now() < end);
		if (endoff < 2)
			fail_msg("broker %d: DESC repl: %s", i + 1, data);
	}
}

/* Any broker serves CRTP and PUBS: a follower forwards the CRTP to the
 * metadata leader and answers once the topic is applied here too; every
 * broker's PUBS reach each partition's leader, also from brokers holding
 * no replica of it.  Each acknowledged offset holds the message it was
 * given, once. */
#define ANY_MSGS 20
static void test_any_broker_serves(void **state)
{
	char status[256], data[8192], command[160], line[256], body[128];
	int leader = tcl_agree(&cl, N, 10), follower;
	long acked[N][ANY_MSGS][2];
	double end;

	assert_true(leader > 0);
	follower = leader % N; /* an index whose broker is not the leader */
	tcl_cmd(&cl, follower, "CRTP anyb 3 replicas=3", status, sizeof(status),
		NULL, 0);
	assert_string_equal(status, "OK anyb 3");
	tcl_cmd(&cl, follower, "LIST", status, sizeof(status), data,
		sizeof(data));
	assert_non_null(strstr(data, "TOPIC anyb 3"));
	tcl_cmd(&cl, (follower + 1) % N, "CRTP anyb1 3 replicas=1", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK anyb1 3");
	tcl_cmd(&cl, follower, "CRTP anyb 3", status, sizeof(status), NULL, 0);
	assert_true(strncmp(status, "ERR EXISTS", 10) == 0);

	/* Pipelined from every broker, keyless: round robin over the
	 * partitions, wherever their leaders are. */
	for (int i = 0; i < N; i++) {
		for (int t = 0; t < 2; t++) {
			struct tc c;

			assert_int_equal(tc_connect(&c, cl.tbs[i].port), 0);
			for (int k = 0; k < ANY_MSGS; k++) {
				snprintf(command, sizeof(command),
					 "PUBS %s m-%d-%d",
					 t ? "anyb1" : "anyb", i, k);
				tc_send(&c, command);
			}
			for (int k = 0; k < ANY_MSGS; k++) {
				long part, off;

				assert_true(tc_line(&c, line, sizeof(line)) >
					    0);
				if (sscanf(line, "OK %ld %ld", &part, &off) !=
				    2)
					fail_msg("broker %d, PUBS %d of %s: %s",
						 i + 1, k, t ? "anyb1" : "anyb",
						 line);
				if (!t) {
					acked[i][k][0] = part;
					acked[i][k][1] = off;
				}
			}
			tc_close(&c);
		}
	}
	/* No offset handed out twice. */
	for (int i = 0; i < N * ANY_MSGS; i++)
		for (int j = i + 1; j < N * ANY_MSGS; j++)
			if (acked[i / ANY_MSGS][i % ANY_MSGS][0] ==
				    acked[j / ANY_MSGS][j % ANY_MSGS][0] &&
			    acked[i / ANY_MSGS][i % ANY_MSGS][1] ==
				    acked[j / ANY_MSGS][j % ANY_MSGS][1])
				fail_msg("offset %ld of anyb-%ld acknowledged "
					 "twice",
					 acked[i / ANY_MSGS][i % ANY_MSGS][1],
					 acked[i / ANY_MSGS][i % ANY_MSGS][0]);

	/* Read back on the metadata leader, which holds every partition:
	 * each acknowledged offset holds its message. */
	{
		struct tc c;
		long sub, got = 0;

		assert_int_equal(tc_connect(&c, cl.tbs[leader - 1].port), 0);
		assert_int_equal(tc_cmd(&c, "SUBS anyb g", status,
					sizeof(status), NULL, 0),
				 0);
		assert_int_equal(sscanf(status, "OK %ld", &sub), 1);
		end = tb_now() + 10;
		do {
			int found = 0;

			snprintf(command, sizeof(command), "CONS anyb %ld 0",
				 sub);
			tc_send(&c, command);
			got = 0;
			for (;;) {
				long part, off, len;

				assert_true(tc_line(&c, line, sizeof(line)) >
					    0);
				if (strncmp(line, "OK", 2) == 0)
					break;
				if (sscanf(line, "MSG %ld %ld %ld", &part, &off,
					   &len) != 3)
					fail_msg("CONS: %s", line);
				assert_true(tc_line(&c, body, sizeof(body)) >
					    0);
				got++;
				for (int i = 0; i < N; i++)
					for (int k = 0; k < ANY_MSGS; k++) {
						char want[32];

						if (acked[i][k][0] != part ||
						    acked[i][k][1] != off)
							continue;
						snprintf(want, sizeof(want),
							 "m-%d-%d", i, k);
						assert_string_equal(body, want);
						found++;
					}
			}
			if (found == N * ANY_MSGS && got == N * ANY_MSGS)
				break;
			usleep(50000);
		} while (tb_now() < end);
		assert_int_equal(got, N * ANY_MSGS);
		tc_close(&c);
	}
}

/* Reads CONS answers on c up to the status line: the messages' count, or
 * -1 on an ERR (the line is left in status). */
static long cons_count(struct tc *c, const char *command, char *status,
		       size_t len)
{
	char line[256];
	long n = 0;

	tc_send(c, command);
	for (;;) {
		long part, off, mlen;

		assert_true(tc_line(c, status, len) > 0);
		if (sscanf(status, "MSG %ld %ld %ld", &part, &off, &mlen) ==
		    3) {
			assert_true(tc_line(c, line, sizeof(line)) > 0);
			n++;
			continue;
		}
		return strncmp(status, "OK", 2) == 0 ? n : -1;
	}
}

/* SUBS, CONS and CMIT on a broker that does not lead the metadata: the
 * subscription id reservation and the committed offsets are forwarded to
 * the leader, and offsets committed on one broker hold on another. */
static void test_follower_subscribes(void **state)
{
	char status[256], command[160];
	int leader = tcl_agree(&cl, N, 10), f1, f2;
	struct tc c;
	long sub, n, got = 0;
	double end;

	assert_true(leader > 0);
	f1 = leader % N;
	f2 = (leader + 1) % N;
	tcl_cmd(&cl, f1, "CRTP fsub 2 replicas=3", status, sizeof(status), NULL,
		0);
	assert_string_equal(status, "OK fsub 2");
	for (int k = 0; k < 10; k++) {
		snprintf(command, sizeof(command), "PUBS fsub m%d", k);
		tcl_cmd(&cl, k % N, command, status, sizeof(status), NULL, 0);
		if (strncmp(status, "OK ", 3) != 0)
			fail_msg("PUBS on broker %d: %s", k % N + 1, status);
	}

	assert_int_equal(tc_connect(&c, cl.tbs[f1].port), 0);
	assert_int_equal(
		tc_cmd(&c, "SUBS fsub g", status, sizeof(status), NULL, 0), 0);
	if (sscanf(status, "OK %ld 0,1", &sub) != 1)
		fail_msg("SUBS on follower broker %d: %s", f1 + 1, status);
	snprintf(command, sizeof(command), "CONS fsub %ld", sub);
	/* This broker's replicas learn the commit a heartbeat later. */
	end = tb_now() + 10;
	while (got < 10 && tb_now() < end) {
		n = cons_count(&c, command, status, sizeof(status));
		if (n < 0)
			fail_msg("CONS on broker %d: %s", f1 + 1, status);
		got += n;
		if (got < 10)
			usleep(50000);
	}
	assert_int_equal(got, 10);
	snprintf(command, sizeof(command), "CMIT fsub %ld", sub);
	assert_int_equal(tc_cmd(&c, command, status, sizeof(status), NULL, 0),
			 0);
	assert_string_equal(status, "OK 2");
	tc_close(&c);

	/* The group's offsets reach the other brokers: a member on f2 reads
	 * nothing more, once f2 applied the commit (a metadata write
	 * forwarded from f1 after CMIT answered).  A read that came too
	 * early is given back unacknowledged with UNSB. */
	assert_int_equal(tc_connect(&c, cl.tbs[f2].port), 0);
	end = tb_now() + 10;
	do {
		assert_int_equal(tc_cmd(&c, "SUBS fsub g", status,
					sizeof(status), NULL, 0),
				 0);
		assert_int_equal(sscanf(status, "OK %ld", &sub), 1);
		snprintf(command, sizeof(command), "CONS fsub %ld", sub);
		n = cons_count(&c, command, status, sizeof(status));
		snprintf(command, sizeof(command), "UNSB fsub %ld", sub);
		assert_int_equal(
			tc_cmd(&c, command, status, sizeof(status), NULL, 0),
			0);
		if (n == 0)
			break;
		usleep(50000);
	} while (tb_now() < end);
	assert_int_equal(n, 0);
	tc_close(&c);
}

/* GRPS on broker i: its data lines into `out`; the number of members. */
static int groups_of(int i, const char *topic, char *out, size_t len)
{
	char status[256], command[64];
	int n = -1;

	snprintf(command, sizeof(command), "GRPS %s", topic);
	tcl_cmd(&cl, i, command, status, sizeof(status), out, len);
	if (sscanf(status, "OK %d", &n) != 1)
		fail_msg("GRPS on broker %d: %s", i + 1, status);
	return n;
}

/* Waits until every running broker answers GRPS with `members` members,
 * all alike; returns that answer's data lines in `out`. */
static void groups_agree(const char *topic, int members, char *out, size_t len,
			 double timeout)
{
	char first[4096], other[4096];
	double end = tb_now() + timeout;
	int ok;

	do {
		int k = -1;

		ok = 1;
		for (int i = 0; i < N && ok; i++) {
			if (cl.tbs[i].pid <= 0 || i == paused)
				continue;
			if (k < 0) {
				k = i;
				ok = groups_of(i, topic, first,
					       sizeof(first)) == members;
			} else {
				ok = groups_of(i, topic, other,
					       sizeof(other)) == members &&
				     strcmp(first, other) == 0;
			}
		}
		if (ok)
			break;
		usleep(50000);
	} while (tb_now() < end);
	if (!ok) {
		for (int i = 0; i < N; i++) {
			static char log[1 << 16];

			tb_read_log(&cl.tbs[i], log, sizeof(log));
			fprintf(stderr, "--- broker %d\n%s\n", i + 1, log);
		}
		fail_msg("brokers do not agree on %d members of %s: %s",
			 members, topic, first);
	}
	snprintf(out, len, "%s", first);
}

/* Checks GRPS data lines of group g: every partition of n held by exactly
 * one member, each member holding `each` (0: any). */
static void check_spread(const char *data, int nparts, int each)
{
	int held[64] = {0};
	const char *p = data;

	while ((p = strstr(p, "GROUP g "))) {
		long sub;
		int off = 0, count = 0;
		const char *q;

		assert_int_equal(sscanf(p, "GROUP g %ld %n", &sub, &off), 1);
		q = p + off;
		while (*q >= '0' && *q <= '9') {
			int part = atoi(q);

			assert_true(part >= 0 && part < nparts);
			held[part]++;
			count++;
			while (*q >= '0' && *q <= '9')
				q++;
			if (*q == ',')
				q++;
		}
		if (each)
			assert_int_equal(count, each);
		p = q;
	}
	for (int k = 0; k < nparts; k++)
		if (held[k] != 1)
			fail_msg("partition %d has %d members: %s", k, held[k],
				 data);
}

/* A member of group g of `topic` on each broker, each on connection c[i]
 * with id sub[i]. */
static void join_everywhere(const char *topic, struct tc c[N], long sub[N])
{
	char status[256], command[64];

	snprintf(command, sizeof(command), "SUBS %s g", topic);
	for (int i = 0; i < N; i++) {
		assert_int_equal(tc_connect(&c[i], cl.tbs[i].port), 0);
		assert_int_equal(
			tc_cmd(&c[i], command, status, sizeof(status), NULL, 0),
			0);
		if (sscanf(status, "OK %ld", &sub[i]) != 1)
			fail_msg("SUBS on broker %d: %s", i + 1, status);
	}
}

#define REM_MSGS 2400
#define REM_LEN	 600

static long rem_read; /* messages the last cons_rem read */

/* Reads a CONS of `rem` on c: every message must be the one acknowledged
 * at its partition and offset (acked[k] = {partition, offset}).  Returns
 * the count read, or -1 on an ERR (left in status). */
static long cons_rem(struct tc *c, const char *command, long acked[][2],
		     char *status, size_t len)
{
	static char body[REM_LEN + 16];
	long n = 0;

	tc_send(c, command);
	for (;;) {
		long part, off, mlen, k;

		assert_true(tc_line(c, status, len) > 0);
		rem_read = n;
		if (sscanf(status, "MSG %ld %ld %ld", &part, &off, &mlen) != 3)
			return strncmp(status, "OK", 2) == 0 ? n : -1;
		assert_int_equal(mlen, REM_LEN);
		assert_true(tc_line(c, body, sizeof(body)) == REM_LEN);
		if (sscanf(body, "m-%ld-", &k) != 1 || k < 0 || k >= REM_MSGS)
			fail_msg("CONS %s: body %.20s", command, body);
		if (acked[k][0] != part || acked[k][1] != off)
			fail_msg(
				"message %ld was acknowledged at %ld/%ld, read "
				"at %ld/%ld",
				k, acked[k][0], acked[k][1], part, off);
		n++;
	}
}

/* CONS of partitions this broker holds no replica of reads them from a
 * broker that does, several budgets' worth: every broker reads every
 * message at its acknowledged offset, a group's position moves on through
 * any broker, and a partition whose only replica is down is answered
 * ERR UNAVAILABLE after the others' messages. */
static void test_cons_remote(void **state)
{
	static long acked[REM_MSGS][2];
	static char msg[REM_LEN + 64];
	char status[256], data[2048], command[160], *line, *save = NULL;
	int leader = tcl_agree(&cl, N, 10), holder[3] = {0};
	long sub[N], n;
	struct tc c[N];
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, 0, "CRTP rem 3 replicas=1", status, sizeof(status), NULL,
		0);
	assert_string_equal(status, "OK rem 3");
	assert_int_equal(tc_connect(&c[0], cl.tbs[0].port), 0);
	for (int k = 0; k < REM_MSGS; k++) {
		int h = snprintf(msg, sizeof(msg), "PUBS rem m-%d-", k);

		memset(msg + h, 'x', REM_LEN - (h - 9));
		msg[9 + REM_LEN] = '\0';
		tc_send(&c[0], msg);
	}
	for (int k = 0; k < REM_MSGS; k++) {
		assert_true(tc_line(&c[0], status, sizeof(status)) > 0);
		if (sscanf(status, "OK %ld %ld", &acked[k][0], &acked[k][1]) !=
		    2)
			fail_msg("PUBS %d: %s", k, status);
	}
	tc_close(&c[0]);
	tcl_cmd(&cl, 0, "DESC rem", status, sizeof(status), data, sizeof(data));
	for (line = strtok_r(data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int p, r;

		if (sscanf(line, "PARTITION %d LEADER %*s REPLICAS %d", &p,
			   &r) == 2 &&
		    p >= 0 && p < 3)
			holder[p] = r;
	}
	for (int p = 0; p < 3; p++)
		assert_true(holder[p] >= 1 && holder[p] <= N);

	/* Every broker reads all of it, from offset 0, one group each. */
	for (int i = 0; i < N; i++) {
		assert_int_equal(tc_connect(&c[i], cl.tbs[i].port), 0);
		snprintf(command, sizeof(command), "SUBS rem g%d", i);
		assert_int_equal(
			tc_cmd(&c[i], command, status, sizeof(status), NULL, 0),
			0);
		if (sscanf(status, "OK %ld", &sub[i]) != 1)
			fail_msg("SUBS on broker %d: %s", i + 1, status);
		snprintf(command, sizeof(command), "CONS rem %ld 0", sub[i]);
		end = tb_now() + 10;
		do { /* a replica learns the commit a heartbeat later */
			n = cons_rem(&c[i], command, acked, status,
				     sizeof(status));
			if (n < 0)
				fail_msg("CONS on broker %d: %s", i + 1,
					 status);
		} while (n < REM_MSGS && tb_now() < end && !usleep(50000));
		assert_int_equal(n, REM_MSGS);
	}

	/* The group's position, through a broker that holds partition 0 of
	 * none of them: 10, then the rest, then nothing. */
	{
		int i = holder[0] % N; /* index of a broker not holding p0 */
		long again = 0;

		snprintf(command, sizeof(command), "CONS rem %ld - 10", sub[i]);
		assert_int_equal(
			cons_rem(&c[i], command, acked, status, sizeof(status)),
			10);
		snprintf(command, sizeof(command), "CONS rem %ld -", sub[i]);
		assert_int_equal(
			cons_rem(&c[i], command, acked, status, sizeof(status)),
			REM_MSGS - 10);
		assert_int_equal(
			cons_rem(&c[i], command, acked, status, sizeof(status)),
			0);

		/* CMIT with an offset there too: the bound comes from a
		 * broker holding the partition. */
		for (int k = 0; k < REM_MSGS; k++)
			again += acked[k][0] == 0 && acked[k][1] >= 5;
		snprintf(command, sizeof(command), "CMIT rem %ld 0 5", sub[i]);
		tc_cmd(&c[i], command, status, sizeof(status), NULL, 0);
		assert_string_equal(status, "OK 1");
		snprintf(command, sizeof(command), "CMIT rem %ld 0 5", sub[i]);
		tc_cmd(&c[i], command, status, sizeof(status), NULL, 0);
		assert_string_equal(status, "OK 0");
		snprintf(command, sizeof(command), "CONS rem %ld -", sub[i]);
		assert_int_equal(
			cons_rem(&c[i], command, acked, status, sizeof(status)),
			again);
		snprintf(command, sizeof(command), "CMIT rem %ld 0 99999999",
			 sub[i]);
		tc_cmd(&c[i], command, status, sizeof(status), NULL, 0);
		if (!strstr(status, "ERR BADARG") ||
		    !strstr(status, "past the end of rem-0"))
			fail_msg("CMIT past the end: %s", status);
	}

	/* Partition 0's only replica goes: the others are still read
	 * through any broker left, then partition 0 is refused. */
	tb_kill9(&cl.tbs[holder[0] - 1]);
	for (int i = 0; i < N; i++) {
		long in_p0 = 0;

		if (i == holder[0] - 1)
			continue;
		for (int k = 0; k < REM_MSGS; k++)
			in_p0 += acked[k][0] == 0;
		snprintf(command, sizeof(command), "CONS rem %ld 0", sub[i]);
		n = cons_rem(&c[i], command, acked, status, sizeof(status));
		if (n != -1 || !strstr(status, "ERR UNAVAILABLE") ||
		    !strstr(status, "rem-0"))
			fail_msg("CONS on broker %d with rem-0 down: %ld, %s",
				 i + 1, n, status);
		assert_int_equal(rem_read, REM_MSGS - in_p0);
	}
	for (int i = 0; i < N; i++)
		if (i != holder[0] - 1)
			tc_close(&c[i]);
	tc_close(&c[holder[0] - 1]);
}

/* One consumer group over three brokers: a member on each shares the
 * partitions (two each), GRPS and ASGN answer alike on every broker; the
 * members of a broker killed with -9 end after cluster.session_timeout_ms
 * and the survivors take its partitions; the killed broker's members do
 * not come back with it; a member whose connection closes leaves on
 * every broker. */
static void test_groups_span_brokers(void **state)
{
	char status[256], data[4096], command[160], asgn[N][256];
	int leader = tcl_agree(&cl, N, 10), victim;
	long sub[N];
	struct tc c[N];

	assert_true(leader > 0);
	tcl_cmd(&cl, leader % N, "CRTP grp 6 replicas=3", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK grp 6");
	join_everywhere("grp", c, sub);
	groups_agree("grp", N, data, sizeof(data), 10);
	check_spread(data, 6, 2);
	/* ASGN of one id is the same on every broker. */
	for (int i = 0; i < N; i++) {
		snprintf(command, sizeof(command), "ASGN grp %ld", sub[0]);
		tcl_cmd(&cl, i, command, asgn[i], sizeof(asgn[i]), NULL, 0);
		assert_string_equal(asgn[i], asgn[0]);
	}

	/* A follower of the metadata dies: the metadata leader ends its
	 * member after the session timeout. */
	victim = leader % N;
	tb_kill9(&cl.tbs[victim]);
	tc_close(&c[victim]);
	groups_agree("grp", N - 1, data, sizeof(data), 15);
	check_spread(data, 6, 3);
	snprintf(command, sizeof(command), "GROUP g %ld ", sub[victim]);
	assert_null(strstr(data, command));

	tcl_start(&cl, victim);
	assert_true(tcl_agree(&cl, N, 15) > 0);
	groups_agree("grp", N - 1, data, sizeof(data), 10);
	check_spread(data, 6, 3);

	/* A connection closes: its member leaves everywhere. */
	tc_close(&c[leader - 1]);
	groups_agree("grp", N - 2, data, sizeof(data), 10);
	check_spread(data, 6, 6);
	for (int i = 0; i < N; i++)
		if (i != victim && i != leader - 1)
			tc_close(&c[i]);
}

/* A broker stopped (SIGSTOP) past the session timeout: its member ends on
 * the others, which take its partitions; once it runs again it learns its
 * member ended (CONS answers ERR NOSUB, as a fenced Kafka consumer is told
 * to rejoin), and a new SUBS there joins the same group. */
static void test_group_member_fenced(void **state)
{
	char status[256], data[4096], command[160];
	int leader = tcl_agree(&cl, N, 10), stopped;
	long sub[N], again;
	struct tc c[N];
	double end;

	assert_true(leader > 0);
	stopped = leader % N; /* not the metadata leader */
	tcl_cmd(&cl, leader - 1, "CRTP fence 4 replicas=3", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK fence 4");
	join_everywhere("fence", c, sub);
	groups_agree("fence", N, data, sizeof(data), 10);

	assert_int_equal(kill(cl.tbs[stopped].pid, SIGSTOP), 0);
	paused = stopped;
	groups_agree("fence", N - 1, data, sizeof(data), 20);
	check_spread(data, 4, 2);
	assert_int_equal(kill(cl.tbs[stopped].pid, SIGCONT), 0);
	paused = -1;

	/* It applies the expiry of its own members once it catches up. */
	snprintf(command, sizeof(command), "CONS fence %ld", sub[stopped]);
	end = tb_now() + 15;
	do {
		assert_int_equal(tc_cmd(&c[stopped], command, status,
					sizeof(status), data, sizeof(data)),
				 0);
		if (strncmp(status, "ERR NOSUB", 9) == 0)
			break;
		usleep(50000);
	} while (tb_now() < end);
	if (strncmp(status, "ERR NOSUB", 9) != 0)
		fail_msg("CONS of an ended member on broker %d: %s",
			 stopped + 1, status);
	assert_int_equal(tc_cmd(&c[stopped], "SUBS fence g", status,
				sizeof(status), NULL, 0),
			 0);
	if (sscanf(status, "OK %ld", &again) != 1)
		fail_msg("SUBS again on broker %d: %s", stopped + 1, status);
	groups_agree("fence", N, data, sizeof(data), 10);
	check_spread(data, 4, 0);
	for (int i = 0; i < N; i++)
		tc_close(&c[i]);
}

/* `CONS stale <sub> - <n>` on c, which must hand out n messages: the
 * offset of the first. */
static long cons_stale(struct tc *c, long sub, int n)
{
	char status[256], data[4096], command[96], want[32];
	long part, off;

	snprintf(command, sizeof(command), "CONS stale %ld - %d", sub, n);
	assert_int_equal(
		tc_cmd(c, command, status, sizeof(status), data, sizeof(data)),
		0);
	snprintf(want, sizeof(want), "OK %d", n);
	assert_string_equal(status, want);
	assert_int_equal(sscanf(data, "MSG %ld %ld", &part, &off), 2);
	return off;
}

/* A CMIT sent to the metadata leader while it was stopped (SIGSTOP) past
 * the session timeout, by a member that ended meanwhile, is not applied
 * once it runs again: the partition's new owner has read and committed
 * since, and reads on from its own offset (it was moved ahead, past
 * messages nobody received). */
static void test_stale_cmit_refused(void **state)
{
	char status[256], command[160];
	int leader = tcl_agree(&cl, N, 10), other;
	long old_sub, new_sub, next;
	struct tc c0, c1;
	double end;

	assert_true(leader > 0);
	other = leader % N; /* index of a broker that does not lead */
	tcl_cmd(&cl, leader - 1, "CRTP stale 1 replicas=3", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK stale 1");
	for (int i = 0; i < 20; i++) {
		snprintf(command, sizeof(command), "PUBS stale m%d", i);
		tcl_cmd(&cl, leader - 1, command, status, sizeof(status), NULL,
			0);
		assert_true(strncmp(status, "OK ", 3) == 0);
	}
	assert_int_equal(tc_connect(&c0, cl.tbs[leader - 1].port), 0);
	assert_int_equal(tc_connect(&c1, cl.tbs[other].port), 0);
	assert_int_equal(
		tc_cmd(&c0, "SUBS stale g", status, sizeof(status), NULL, 0),
		0);
	assert_int_equal(sscanf(status, "OK %ld", &old_sub), 1);
	(void)cons_stale(&c0, old_sub, 4);
	assert_int_equal(
		tc_cmd(&c1, "SUBS stale g", status, sizeof(status), NULL, 0),
		0);
	assert_int_equal(sscanf(status, "OK %ld", &new_sub), 1);

	assert_int_equal(kill(cl.tbs[leader - 1].pid, SIGSTOP), 0);
	paused = leader - 1;
	/* The old member ends; the new one takes partition 0. */
	snprintf(command, sizeof(command), "ASGN stale %ld", new_sub);
	end = tb_now() + 20;
	do {
		assert_int_equal(
			tc_cmd(&c1, command, status, sizeof(status), NULL, 0),
			0);
		if (strlen(status) > 2 &&
		    strcmp(status + strlen(status) - 2, " 0") == 0)
			break;
		usleep(100000);
	} while (tb_now() < end);
	if (strcmp(status + strlen(status) - 2, " 0") != 0)
		fail_msg("ASGN of the new member: %s", status);
	next = cons_stale(&c1, new_sub, 3) + 3;
	snprintf(command, sizeof(command), "CMIT stale %ld", new_sub);
	assert_int_equal(tc_cmd(&c1, command, status, sizeof(status), NULL, 0),
			 0);
	assert_string_equal(status, "OK 1");

	/* Sent to the stopped broker, read once it runs again. */
	snprintf(command, sizeof(command), "CMIT stale %ld 0 %ld", old_sub,
		 next + 10);
	tc_send(&c0, command);
	assert_int_equal(kill(cl.tbs[leader - 1].pid, SIGCONT), 0);
	paused = -1;
	assert_true(tc_line(&c0, status, sizeof(status)) > 0);
	if (strncmp(status, "ERR ", 4) != 0)
		fail_msg("CMIT of an ended member: %s", status);

	assert_int_equal(cons_stale(&c1, new_sub, 2), next);
	tc_close(&c0);
	tc_close(&c1);
}

/* Each partition ends up led by its first replica: placement spreads
 * first replicas over the brokers, so six partitions give each broker two
 * (STAT's LEADS), also after the broker leading two of them was killed
 * and came back. */
static int leaders_placed(int i, const char *topic, int nparts, int *leads)
{
	char status[256], data[4096], command[64];
	const char *p = data;
	int placed = 0;

	memset(leads, 0, (N + 1) * sizeof(*leads));
	snprintf(command, sizeof(command), "DESC %s", topic);
	tcl_cmd(&cl, i, command, status, sizeof(status), data, sizeof(data));
	for (int k = 0; k < nparts && (p = strstr(p, "PARTITION ")); k++) {
		int part, leader, first;

		if (sscanf(p, "PARTITION %d LEADER %d REPLICAS %d", &part,
			   &leader, &first) == 3 &&
		    leader >= 1 && leader <= N) {
			leads[leader]++;
			placed += leader == first;
		}
		p++;
	}
	return placed;
}

static void test_leaders_spread(void **state)
{
	char status[256], data[4096];
	int leader = tcl_agree(&cl, N, 10), leads[N + 1], victim = 0;
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, 0, "CRTP spread 6 replicas=3", status, sizeof(status),
		NULL, 0);
	assert_string_equal(status, "OK spread 6");
	end = tb_now() + 15;
	while (leaders_placed(0, "spread", 6, leads) < 6 && tb_now() < end)
		usleep(50000);
	assert_int_equal(leaders_placed(0, "spread", 6, leads), 6);
	for (int id = 1; id <= N; id++)
		assert_int_equal(leads[id], 2);
	/* STAT counts them too. */
	tcl_cmd(&cl, 0, "STAT", status, sizeof(status), data, sizeof(data));
	for (int id = 1; id <= N; id++) {
		char want[64];

		snprintf(want, sizeof(want),
			 "BROKER %d 127.0.0.1:%d up LEADS 2", id,
			 cl.tbs[id - 1].port);
		if (!strstr(data, want))
			fail_msg("STAT: no \"%s\" in:\n%s", want, data);
	}

	/* The broker leading partition 0 dies: the others take its two
	 * partitions, then give them back once it is back. */
	end = tb_now() + 5;
	while (!victim && tb_now() < end) {
		const char *p;

		tcl_cmd(&cl, 0, "DESC spread", status, sizeof(status), data,
			sizeof(data));
		p = strstr(data, "PARTITION 0 LEADER ");
		if (p)
			sscanf(p, "PARTITION 0 LEADER %d", &victim);
	}
	assert_true(victim >= 1 && victim <= N);
	tb_kill9(&cl.tbs[victim - 1]);
	end = tb_now() + 10;
	do {
		int other = victim % N; /* an index of a live broker */

		leaders_placed(other, "spread", 6, leads);
		if (leads[victim] == 0 && leads[1] + leads[2] + leads[3] == 6)
			break;
		usleep(50000);
	} while (tb_now() < end);
	assert_int_equal(leads[victim], 0);
	tcl_start(&cl, victim - 1);
	end = tb_now() + 15;
	while (leaders_placed(victim - 1, "spread", 6, leads) < 6 &&
	       tb_now() < end)
		usleep(50000);
	assert_int_equal(leaders_placed(victim - 1, "spread", 6, leads), 6);
	assert_int_equal(leads[victim], 2);
}

/* A new partition's first replica campaigns first, so it is elected in
 * term 1, not after another replica and a hand-over.  Read from the
 * brokers' debug lines: the first leader each logs for a partition.  A
 * replica that had not opened the partition yet when asked lets another
 * win now and then, and a stalled broker (under the sanitizers) may lose
 * all eight of its own at once, so 16 of 24 is asked; with every replica
 * waiting alike, a third to a half were (11 of 24 in one run). */
static int setup_debug(void **state)
{
	start_cluster("\"log\": \"debug\"");
	return 0;
}

static void test_new_partitions_elected_once(void **state)
{
	static char log[1 << 20];
	char status[256], data[8192];
	int leader = tcl_agree(&cl, N, 10), leads[N + 1], once = 0;
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, 0, "CRTP first 24 replicas=3", status, sizeof(status),
		NULL, 0);
	assert_string_equal(status, "OK first 24");
	end = tb_now() + 15;
	while (leaders_placed(0, "first", 24, leads) < 24 && tb_now() < end)
		usleep(50000);
	assert_int_equal(leaders_placed(0, "first", 24, leads), 24);
	tcl_cmd(&cl, 0, "DESC first", status, sizeof(status), data,
		sizeof(data));
	tb_read_log(&cl.tbs[0], log, sizeof(log));
	for (int part = 0; part < 24; part++) {
		char want[64], line[96];
		const char *p, *d;
		int first = 0, who = 0;
		unsigned long long term = 0;

		snprintf(want, sizeof(want), "PARTITION %d LEADER", part);
		d = strstr(data, want);
		assert_non_null(d);
		assert_int_equal(sscanf(d,
					"PARTITION %*d LEADER %*d REPLICAS %d",
					&first),
				 1);
		snprintf(want, sizeof(want), "group first-%d: leader broker ",
			 part);
		p = strstr(log, want);
		if (!p)
			fail_msg("no \"%s\" in broker 1's log", want);
		snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
		assert_int_equal(sscanf(line + strlen(want), "%d in term %llu",
					&who, &term),
				 2);
		once += who == first && term == 1;
	}
	if (once < 16)
		fail_msg("only %d of 24 partitions were first led by their "
			 "first replica in term 1",
			 once);
}

static void test_garbage_on_cluster_port(void **state)
{
	static const char http[] = "GET / HTTP/1.0\r\n\r\n";
	static const unsigned char unknown_type[] = {0, 0, 0, 1, 9};
	static const unsigned char huge_count[] = {
		0, 0, 0, 22, 3, 0, 0, 0, 0,    0,    0,	   0,	 1,
		0, 0, 0, 0,  0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff, 0};
	char log[65536];
	int leader;

	/* The broker with the highest id accepts from everyone. */
	assert_true(tcl_port_closes(&cl, N - 1, http, sizeof(http) - 1));
	assert_true(tcl_port_closes(&cl, N - 1, unknown_type,
				    sizeof(unknown_type)));
	assert_true(
		tcl_port_closes(&cl, N - 1, huge_count, sizeof(huge_count)));
	tb_read_log(&cl.tbs[N - 1], log, sizeof(log));
	assert_non_null(strstr(log, "bad frame"));
	/* The cluster did not notice. */
	leader = tcl_agree(&cl, N, 10);
	assert_true(leader > 0);
}

/* kill -9 of the metadata leader: the survivors agree on a new one; the
 * killed broker, restarted, leaves it in place (pre-vote) and learns the
 * metadata written while it was away. */
static void test_failover_and_rejoin(void **state)
{
	int leader = tcl_agree(&cl, N, 10), next = 0;
	double t0, took;

	assert_true(leader > 0);
	tb_kill9(&cl.tbs[leader - 1]);
	t0 = tb_now();
	/* The survivors must agree on a new leader among themselves. */
	{
		double end = t0 + 10;

		while (tb_now() < end) {
			int l1 = 0, l2 = 0, k = 0;

			for (int i = 0; i < N; i++) {
				int up, l;

				if (cl.tbs[i].pid <= 0)
					continue;
				if (tcl_stat(&cl, i, &up, &l) != 0)
					l = 0;
				if (k++ == 0)
					l1 = l;
				else
					l2 = l;
			}
			if (l1 > 0 && l1 == l2 && l1 != leader) {
				next = l1;
				break;
			}
			usleep(10000);
		}
	}
	took = tb_now() - t0;
	print_message("failover: broker %d killed, broker %d leads after "
		      "%.3f s\n",
		      leader, next, took);
	assert_true(next > 0 && next != leader);
	/* The dead broker shows as down. */
	assert_int_equal(tcl_agree(&cl, N - 1, 10), next);
	{
		char status[256];

		tcl_cmd(&cl, next - 1, "CRTP away 1", status, sizeof(status),
			NULL, 0);
		assert_string_equal(status, "OK away 1");
	}
	tcl_start(&cl, leader - 1);
	leader = tcl_agree(&cl, N, 15);
	assert_int_equal(leader, next);
	print_message("after the rejoin: broker %d still leads\n", leader);
	/* The rejoined broker learned the metadata written while away. */
	for (int i = 0; i < N; i++) {
		char status[256], data[4096];
		double end = tb_now() + 10;
		int found = 0;

		while (!found && tb_now() < end) {
			tcl_cmd(&cl, i, "LIST", status, sizeof(status), data,
				sizeof(data));
			found = strstr(data, "TOPIC away 1") != NULL;
			if (!found)
				usleep(20000);
		}
		assert_true(found);
	}
}

/* Creates topics `prefix`-0 .. `prefix`-(n-1) on the metadata leader. */
static void create_topics(const char *prefix, int n)
{
	char status[256], command[128], want[128];

	for (int k = 0; k < n; k++) {
		int leader = tcl_agree(&cl, -1, 10);

		assert_true(leader > 0);
		snprintf(command, sizeof(command), "CRTP %s-%d 1", prefix, k);
		snprintf(want, sizeof(want), "OK %s-%d 1", prefix, k);
		tcl_cmd(&cl, leader - 1, command, status, sizeof(status), NULL,
			0);
		assert_string_equal(status, want);
	}
}

/* Waits until LIST on broker i shows topics `prefix`-0 .. -(n-1). */
static void wait_topics(int i, const char *prefix, int n)
{
	char status[256], data[16384], want[128];
	double end = tb_now() + 15;
	int k = 0;

	while (k < n && tb_now() < end) {
		snprintf(want, sizeof(want), "TOPIC %s-%d 1", prefix, k);
		tcl_cmd(&cl, i, "LIST", status, sizeof(status), data,
			sizeof(data));
		if (strstr(data, want))
			k++;
		else
			usleep(20000);
	}
	if (k < n)
		fail_msg("broker %d: LIST lacks %s-%d: %s", i + 1, prefix, k,
			 data);
}

static int has_meta_snapshot(int i)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/kafkaesque-%d/__meta/snapshot",
		 cl.tbs[i].dir, i + 1);
	return stat(path, &st) == 0 && st.st_size > 0;
}

/* A follower killed and restarted recovers the metadata from its own
 * snapshot and the log after it. */
static void test_snapshot_restart(void **state)
{
	int leader = tcl_agree(&cl, N, 15), f;

	assert_true(leader > 0);
	f = leader % N; /* a follower */
	create_topics("snap", 8);
	wait_topics(f, "snap", 8);
	tb_kill9(&cl.tbs[f]);
	tcl_start(&cl, f);
	wait_topics(f, "snap", 8);
	if (!has_meta_snapshot(f))
		fail_msg("broker %d: no metadata snapshot in %s", f + 1,
			 cl.tbs[f].dir);
	assert_true(tcl_agree(&cl, N, 15) > 0);
}

/* A follower that was down while the leader's snapshots compacted the
 * metadata log past it gets the leader's snapshot. */
static void test_install_snapshot(void **state)
{
	static char log[1 << 20];
	int leader = tcl_agree(&cl, N, 15), f;

	assert_true(leader > 0);
	f = (leader + 1) % N; /* a follower */
	create_topics("before", 8);
	wait_topics(f, "before", 8);
	tb_kill9(&cl.tbs[f]);
	assert_true(tcl_agree(&cl, N - 1, 15) > 0);
	create_topics("away", 12);
	tcl_start(&cl, f);
	wait_topics(f, "away", 12);
	wait_topics(f, "before", 8);
	tb_read_log(&cl.tbs[f], log, sizeof(log));
	if (!strstr(log, "group meta: installed a snapshot"))
		fail_msg("broker %d did not install a snapshot:\n%s", f + 1,
			 log);
	assert_true(has_meta_snapshot(f));
	assert_true(tcl_agree(&cl, N, 15) > 0);
}

/* Retention on a replicated partition: the leader's first offset moves
 * on while a follower is down, and the follower, restarted, gets the
 * restart point and continues from there. */
static void test_retention_restart_point(void **state)
{
	char status[256], command[600], path[512], payload[401];
	int leader = tcl_agree(&cl, N, 15), pleader, f;
	long ls = -1, le = -1, fs = -1, fe = -1;
	struct stat st;
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, leader - 1, "CRTP ret 1 replicas=3 retention.bytes=8192",
		status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK ret 1");
	pleader = tcl_partition_leader(&cl, "ret", 0, 10);
	assert_true(pleader > 0);
	f = pleader % N;
	/* Every replica holds the partition before one goes away. */
	for (int i = 0; i < N; i++) {
		end = tb_now() + 10;
		do {
			tcl_desc(&cl, i, "ret", 0, &fs, &fe, NULL);
			if (fe >= 0)
				break;
			usleep(20000);
		} while (tb_now() < end);
		if (fe < 0)
			fail_msg("broker %d does not hold ret-0", i + 1);
	}
	tb_kill9(&cl.tbs[f]);
	memset(payload, 'r', sizeof(payload) - 1);
	payload[sizeof(payload) - 1] = '\0';
	for (int k = 0; k < 120; k++) {
		snprintf(command, sizeof(command), "PUBS ret %s", payload);
		tcl_cmd(&cl, pleader - 1, command, status, sizeof(status), NULL,
			0);
		if (strncmp(status, "OK", 2) != 0)
			fail_msg("PUBS %d on broker %d: %s", k, pleader,
				 status);
	}
	end = tb_now() + 10;
	do {
		tcl_desc(&cl, pleader - 1, "ret", 0, &ls, &le, NULL);
		if (ls > 10)
			break;
		usleep(20000);
	} while (tb_now() < end);
	if (ls <= 10)
		fail_msg("retention did not delete segments: START %ld", ls);
	tcl_start(&cl, f);
	end = tb_now() + 15;
	do {
		tcl_desc(&cl, f, "ret", 0, &fs, &fe, NULL);
		if (fe >= le && fs > 10)
			break;
		usleep(20000);
	} while (tb_now() < end);
	print_message("retention: leader %d holds %ld..%ld, restarted "
		      "follower %d %ld..%ld\n",
		      pleader, ls, le, f + 1, fs, fe);
	/* The leader no longer holds what the follower lacked (it was
	 * down from before the first PUBS): catching up at all means it
	 * got the restart point, and the leader's core dropped the deleted
	 * entries instead of failing to read them. */
	assert_true(fe >= le);
	assert_true(fs > 10);
	/* The restart point (index and term, no data) is on disk. */
	snprintf(path, sizeof(path), "%s/kafkaesque-%d/ret-0/snapshot",
		 cl.tbs[f].dir, f + 1);
	assert_int_equal(stat(path, &st), 0);
	assert_true(tcl_agree(&cl, N, 15) > 0);
}

/* Requests that wait longer than telnet's stop grace (5 s). */
static int setup_offsets_retention(void **state)
{
	start_cluster("\"limits\": {\"max_groups\": 2}, "
		      "\"groups\": {\"offsets_retention_ms\": 3000}");
	return 0;
}

static int setup_slow_requests(void **state)
{
	start_cluster("\"topics\": {\"retention_check_ms\": 100, "
		      "\"request_timeout_ms\": 30000}");
	return 0;
}

/* A CMIT waiting for a partition's end from a broker that does not
 * answer (SIGSTOP) is answered at a stop, not left behind: ERR
 * UNAVAILABLE saying the broker is stopping, and the broker exits 0. */
static void test_stop_answers_waiting_cmit(void **state)
{
	char status[256], data[1024], command[128];
	int holder = 0, y, st;
	long sub;
	struct tc c;

	assert_true(tcl_agree(&cl, N, 10) > 0);
	tcl_cmd(&cl, 0, "CRTP stp 1 replicas=1", status, sizeof(status), NULL,
		0);
	assert_string_equal(status, "OK stp 1");
	tcl_cmd(&cl, 0, "DESC stp", status, sizeof(status), data, sizeof(data));
	assert_int_equal(
		sscanf(data, "PARTITION 0 LEADER %*s REPLICAS %d", &holder), 1);
	y = holder % N; /* the index of a broker not holding it */
	assert_int_equal(tc_connect(&c, cl.tbs[y].port), 0);
	tc_cmd(&c, "SUBS stp g", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &sub), 1);
	assert_int_equal(kill(cl.tbs[holder - 1].pid, SIGSTOP), 0);
	snprintf(command, sizeof(command), "CMIT stp %ld 0 0", sub);
	tc_send(&c, command);
	usleep(300000);
	assert_int_equal(kill(cl.tbs[y].pid, SIGTERM), 0);
	strcpy(status, "(closed without an answer)");
	if (tc_line(&c, status, sizeof(status)) < 0 ||
	    !strstr(status, "ERR UNAVAILABLE") || !strstr(status, "stopping"))
		fail_msg("CMIT at the stop: \"%s\"", status);
	assert_int_equal(waitpid(cl.tbs[y].pid, &st, 0), cl.tbs[y].pid);
	cl.tbs[y].pid = 0;
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	assert_int_equal(kill(cl.tbs[holder - 1].pid, SIGCONT), 0);
	tc_close(&c);
}

/* Committed offsets are metadata: every broker applies a change in log
 * order, the broker that proposed it too, so all end alike. */

/* Waits until broker i's replica of partition 0 of `topic` ends at n or
 * later. */
static void wait_end(int i, const char *topic, long n)
{
	long start, end;
	double until = tb_now() + 10;

	do {
		tcl_desc(&cl, i, topic, 0, &start, &end, NULL);
		if (end >= n)
			return;
		usleep(20000);
	} while (tb_now() < until);
	fail_msg("broker %d: %s-0 ends at %ld", i + 1, topic, end);
}

/* A topic of one partition, replicated on every broker, holding n
 * messages (from offset 2: the first two are its leaders' terms) on
 * every replica, so that a CMIT up to n passes on any broker. */
static void offsets_topic(const char *topic, int n)
{
	char status[256], command[160];

	snprintf(command, sizeof(command), "CRTP %s 1 replicas=3", topic);
	tcl_cmd(&cl, 0, command, status, sizeof(status), NULL, 0);
	assert_true(strncmp(status, "OK ", 3) == 0);
	for (int k = 0; k < n; k++) {
		snprintf(command, sizeof(command), "PUBS %s m%d", topic, k);
		tcl_cmd(&cl, k % N, command, status, sizeof(status), NULL, 0);
		if (strncmp(status, "OK ", 3) != 0)
			fail_msg("PUBS on broker %d: %s", k % N + 1, status);
	}
	for (int i = 0; i < N; i++)
		wait_end(i, topic, n);
}

/* Returns once broker i applied every metadata record committed before
 * the call: a SUBS is answered once its join, proposed after them, is
 * applied there (a group of its own, left again). */
static void applied_on(int i, const char *topic)
{
	char status[256], command[160];

	snprintf(command, sizeof(command), "SUBS %s barrier", topic);
	tcl_cmd(&cl, i, command, status, sizeof(status), NULL, 0);
	if (strncmp(status, "OK ", 3) != 0)
		fail_msg("SUBS on broker %d: %s", i + 1, status);
}

/* The offset of the first message a CONS by `sub` without an offset
 * reads on broker i, at most one message (-1: none). */
static long read_from(int i, const char *topic, long sub)
{
	char status[256], data[1024], command[160];
	long part, off;

	snprintf(command, sizeof(command), "CONS %s %ld - 1", topic, sub);
	tcl_cmd(&cl, i, command, status, sizeof(status), data, sizeof(data));
	if (strncmp(status, "OK", 2) != 0)
		fail_msg("%s on broker %d: %s", command, i + 1, status);
	return sscanf(data, "MSG %ld %ld", &part, &off) == 2 ? off : -1;
}

/* Connects c to broker i and subscribes it to `group` of `topic`;
 * returns its subscription id. */
static long subs_on(struct tc *c, int i, const char *topic, const char *group)
{
	char command[160], status[256];
	long sub;

	assert_int_equal(tc_connect(c, cl.tbs[i].port), 0);
	snprintf(command, sizeof(command), "SUBS %s %s", topic, group);
	tc_cmd(c, command, status, sizeof(status), NULL, 0);
	if (sscanf(status, "OK %ld", &sub) != 1)
		fail_msg("%s on broker %d: %s", command, i + 1, status);
	return sub;
}

/* Two CMITs setting one offset, sent to two brokers at once, are both
 * answered OK 1; every broker then reads from the same offset: the one
 * the metadata log holds last. */
static void test_cmit_race_agrees(void **state)
{
	char status[256], command[160];
	long sub, at[N];
	struct tc m, c[2];

	assert_true(tcl_agree(&cl, N, 10) > 0);
	offsets_topic("race", 30);
	for (int round = 0; round < 5; round++) {
		assert_int_equal(tc_connect(&m, cl.tbs[0].port), 0);
		snprintf(command, sizeof(command), "SUBS race s%d", round);
		tc_cmd(&m, command, status, sizeof(status), NULL, 0);
		assert_int_equal(sscanf(status, "OK %ld", &sub), 1);
		assert_int_equal(tc_connect(&c[0], cl.tbs[0].port), 0);
		assert_int_equal(tc_connect(&c[1], cl.tbs[2].port), 0);
		snprintf(command, sizeof(command), "CMIT race %ld 0 4", sub);
		tc_send(&c[0], command);
		snprintf(command, sizeof(command), "CMIT race %ld 0 14", sub);
		tc_send(&c[1], command);
		for (int k = 0; k < 2; k++) {
			assert_true(tc_line(&c[k], status, sizeof(status)) > 0);
			if (strcmp(status, "OK 1") != 0)
				fail_msg("CMIT on broker %d: %s", k * 2 + 1,
					 status);
			tc_close(&c[k]);
		}
		for (int i = 0; i < N; i++)
			applied_on(i, "race");
		for (int i = 0; i < N; i++)
			at[i] = read_from(i, "race", sub);
		if (at[0] != at[1] || at[1] != at[2] ||
		    (at[0] != 4 && at[0] != 14))
			fail_msg("round %d: brokers read from %ld, %ld, %ld",
				 round, at[0], at[1], at[2]);
		tc_close(&m);
	}
}

/* A CMIT whose record never commits (forwarded to a metadata leader that
 * is stopped, then killed) answers ERR UNAVAILABLE and leaves the offset
 * as it was, on the broker that took it too. */
static void test_cmit_lost_changes_nothing(void **state)
{
	char status[256], command[160];
	int leader = tcl_agree(&cl, N, 10), f;
	long sub, at;
	struct tc m;

	assert_true(leader > 0);
	f = leader % N; /* a follower */
	offsets_topic("lost", 30);
	assert_int_equal(tc_connect(&m, cl.tbs[f].port), 0);
	tc_cmd(&m, "SUBS lost g", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &sub), 1);
	snprintf(command, sizeof(command), "CMIT lost %ld 0 10", sub);
	tc_cmd(&m, command, status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK 1");

	assert_int_equal(kill(cl.tbs[leader - 1].pid, SIGSTOP), 0);
	paused = leader - 1;
	snprintf(command, sizeof(command), "CMIT lost %ld 0 25", sub);
	tc_cmd(&m, command, status, sizeof(status), NULL, 0);
	if (strncmp(status, "ERR UNAVAILABLE", 15) != 0)
		fail_msg("CMIT forwarded to a stopped leader: %s", status);
	/* It never reads what was forwarded to it. */
	tb_kill9(&cl.tbs[leader - 1]);
	paused = -1;
	tcl_start(&cl, leader - 1);
	assert_true(tcl_agree(&cl, N, 15) > 0);
	for (int i = 0; i < N; i++) {
		applied_on(i, "lost");
		wait_end(i, "lost", 30); /* the restarted one catches up */
		at = read_from(i, "lost", sub);
		if (at != 10)
			fail_msg("broker %d reads from %ld, not 10", i + 1, at);
	}
	tc_close(&m);
}

/* A follower down while the metadata log was compacted past it installs
 * the leader's snapshot once it is back: its offsets are replaced by the
 * snapshot's, also those set lower meanwhile, and a group the others
 * dropped has none there either. */
static void test_snapshot_replaces_offsets(void **state)
{
	static char log[1 << 20];
	char status[256], command[160];
	int leader = tcl_agree(&cl, N, 10), f;
	long a, b, c, first, at;
	struct tc ma, mb, mc;

	assert_true(leader > 0);
	/* A follower other than broker 1, which the members use. */
	f = leader - 1 == 2 ? 1 : 2;
	offsets_topic("snapo", 30);
	/* Where a group with no committed offset reads from. */
	assert_int_equal(tc_connect(&mc, cl.tbs[0].port), 0);
	tc_cmd(&mc, "SUBS snapo Z", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &c), 1);
	first = read_from(0, "snapo", c);
	assert_true(first >= 0 && first < 3);
	tc_close(&mc);
	assert_int_equal(tc_connect(&ma, cl.tbs[0].port), 0);
	assert_int_equal(tc_connect(&mb, cl.tbs[0].port), 0);
	assert_int_equal(tc_connect(&mc, cl.tbs[0].port), 0);
	tc_cmd(&ma, "SUBS snapo A", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &a), 1);
	tc_cmd(&mb, "SUBS snapo B", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &b), 1);
	tc_cmd(&mc, "SUBS snapo C", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &c), 1);
	snprintf(command, sizeof(command), "CMIT snapo %ld 0 20", a);
	tc_cmd(&ma, command, status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK 1");
	snprintf(command, sizeof(command), "CMIT snapo %ld 0 3", c);
	tc_cmd(&mc, command, status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK 1");
	applied_on(f, "snapo");

	/* Killed, it comes back with its own state (A at 20, C at 3), then
	 * gets the snapshot: the leader's log no longer reaches back to
	 * it. */
	tb_kill9(&cl.tbs[f]);
	assert_true(tcl_agree(&cl, N - 1, 15) > 0);
	for (int k = 0; k < 20; k++) {
		if (k == 10) {
			snprintf(command, sizeof(command), "CMIT snapo %ld 0 5",
				 a);
			tc_cmd(&ma, command, status, sizeof(status), NULL, 0);
			assert_string_equal(status, "OK 1");
			/* Group C back at 0 and empty: it is dropped. */
			snprintf(command, sizeof(command), "CMIT snapo %ld 0 0",
				 c);
			tc_cmd(&mc, command, status, sizeof(status), NULL, 0);
			assert_string_equal(status, "OK 1");
			tc_close(&mc);
		}
		snprintf(command, sizeof(command), "CMIT snapo %ld 0 %d", b,
			 k % 2 ? 7 : 8);
		tc_cmd(&mb, command, status, sizeof(status), NULL, 0);
		assert_string_equal(status, "OK 1");
	}
	tcl_start(&cl, f);
	assert_true(tcl_agree(&cl, N, 15) > 0);
	applied_on(f, "snapo");
	wait_end(f, "snapo", 30);
	tb_read_log(&cl.tbs[f], log, sizeof(log));
	if (!strstr(log, "group meta: installed a snapshot"))
		fail_msg("broker %d did not install a snapshot:\n%s", f + 1,
			 log);
	for (int i = 0; i < N; i++) {
		applied_on(i, "snapo");
		at = read_from(i, "snapo", a);
		if (at != 5)
			fail_msg("broker %d reads A from %ld, not 5", i + 1,
				 at);
	}
	/* A new member of C reads from the start everywhere. */
	assert_int_equal(tc_connect(&mc, cl.tbs[0].port), 0);
	tc_cmd(&mc, "SUBS snapo C", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &c), 1);
	for (int i = 0; i < N; i++) {
		applied_on(i, "snapo");
		at = read_from(i, "snapo", c);
		if (at != first)
			fail_msg("broker %d reads C from %ld, not %ld", i + 1,
				 at, first);
	}
	tc_close(&ma);
	tc_close(&mb);
	tc_close(&mc);
}

/* A member of group g of a new topic "seek" on broker 1, set at 2, with
 * a batch of 20 handed out and not acknowledged yet; its id. */
static long seek_then_hand_out(struct tc *m)
{
	char status[256], command[160];
	long sub;

	assert_true(tcl_agree(&cl, N, 10) > 0);
	offsets_topic("seek", 30);
	sub = subs_on(m, 0, "seek", "g");
	snprintf(command, sizeof(command), "CMIT seek %ld 0 2", sub);
	tc_cmd(m, command, status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK 1");
	snprintf(command, sizeof(command), "CONS seek %ld - 20", sub);
	assert_int_equal(cons_count(m, command, status, sizeof(status)), 20);
	return sub;
}

/* CMIT of partition 0 of "seek" to `offset` for member sub, sent to
 * broker 3; its status line into status. */
static void cmit_on_broker_3(long sub, int offset, char *status, size_t len)
{
	char command[160];

	snprintf(command, sizeof(command), "CMIT seek %ld 0 %d", sub, offset);
	tcl_cmd(&cl, 2, command, status, len, NULL, 0);
}

/* Member sub's group reads "seek" from `want` on every broker, once each
 * has applied what the metadata holds. */
static void all_read_from(long sub, long want)
{
	for (int i = 0; i < N; i++) {
		long at;

		applied_on(i, "seek");
		at = read_from(i, "seek", sub);
		if (at != want)
			fail_msg("broker %d reads from %ld after CMIT %ld on "
				 "broker 3, not %ld",
				 i + 1, at, want, want);
	}
}

/* A CMIT with an offset sent to another broker than the CONS before:
 * the batch that CONS handed out is not acknowledged by the next CONS,
 * which reads from the offset set, as on a single broker. */
static void test_cmit_elsewhere_cancels_batch(void **state)
{
	char status[256];
	struct tc m;
	long sub;

	sub = seek_then_hand_out(&m);
	cmit_on_broker_3(sub, 5, status, sizeof(status));
	assert_string_equal(status, "OK 1");
	/* Broker 1's CONS reads from 5, and every broker agrees. */
	all_read_from(sub, 5);
	tc_close(&m);
}

/* A CMIT with an offset equal to the committed one, sent to another
 * broker than the CONS before: that batch is not acknowledged either;
 * the group reads from the offset set, on every broker. */
static void test_cmit_same_offset_elsewhere(void **state)
{
	char status[256];
	struct tc m;
	long sub;

	sub = seek_then_hand_out(&m);
	cmit_on_broker_3(sub, 2, status, sizeof(status));
	assert_true(strncmp(status, "OK ", 3) == 0);
	all_read_from(sub, 2);
	tc_close(&m);
}

/* A leader stopped while its proposals wait for followers that sleep
 * (SIGSTOP) cancels them before it frees their partitions, and exits 0.
 * The client's connection is reset, so that the broker does not wait for
 * its answers to go out before stopping. */
static void test_stop_cancels_waiting_proposals(void **state)
{
	static const char pubs[] = "PUBS w m1\r\nPUBS w m2\r\n";
	struct linger lg = {1, 0};
	char status[256], log[1 << 16];
	int lead, st;
	struct tc c;

	(void)state;
	assert_true(tcl_agree(&cl, N, 10) > 0);
	tcl_cmd(&cl, 0, "CRTP w 1 replicas=3", status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK w 1");
	lead = tcl_partition_leader(&cl, "w", 0, 10);
	assert_true(lead >= 1 && lead <= N);
	for (int i = 0; i < N; i++)
		if (i != lead - 1)
			assert_int_equal(kill(cl.tbs[i].pid, SIGSTOP), 0);
	assert_int_equal(tc_connect(&c, cl.tbs[lead - 1].port), 0);
	assert_int_equal(
		setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	tc_send_raw(&c, pubs, sizeof(pubs) - 1);
	usleep(50000);
	tc_close(&c); /* a reset */
	usleep(20000);
	assert_int_equal(kill(cl.tbs[lead - 1].pid, SIGTERM), 0);
	assert_int_equal(waitpid(cl.tbs[lead - 1].pid, &st, 0),
			 cl.tbs[lead - 1].pid);
	cl.tbs[lead - 1].pid = 0;
	tb_read_log(&cl.tbs[lead - 1], log, sizeof(log));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || strstr(log, "Sanitizer"))
		fail_msg("broker %d stopped with %s %d:\n%s", lead,
			 WIFEXITED(st) ? "status" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), log);
	for (int i = 0; i < N; i++)
		if (i != lead - 1)
			kill(cl.tbs[i].pid, SIGCONT);
}

/* SUBS `group` of `topic` on broker i's client c, CONS, CMIT (answered
 * once applied there), UNSB: the group keeps only its offsets. */
static void visit_group(struct tc *c, const char *topic, const char *group)
{
	char status[256], data[4096], command[160];
	long id;

	snprintf(command, sizeof(command), "SUBS %s %s", topic, group);
	tc_cmd(c, command, status, sizeof(status), NULL, 0);
	if (sscanf(status, "OK %ld", &id) != 1)
		fail_msg("%s: %s", command, status);
	snprintf(command, sizeof(command), "CONS %s %ld", topic, id);
	tc_cmd(c, command, status, sizeof(status), data, sizeof(data));
	if (strncmp(status, "OK ", 3) != 0 || atoi(status + 3) < 1)
		fail_msg("%s: %s", command, status);
	snprintf(command, sizeof(command), "CMIT %s %ld", topic, id);
	tc_cmd(c, command, status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK 1");
	snprintf(command, sizeof(command), "UNSB %s %ld", topic, id);
	tc_cmd(c, command, status, sizeof(status), NULL, 0);
	assert_string_equal(status, "OK");
}

/* SUBS `group` on broker i: its status line; a subscription it made is
 * ended at once (it commits nothing, so its group goes with it). */
static void subs_once(int i, const char *topic, const char *group, char *status,
		      size_t len)
{
	char command[160];
	struct tc c;
	long id;

	assert_int_equal(tc_connect(&c, cl.tbs[i].port), 0);
	snprintf(command, sizeof(command), "SUBS %s %s", topic, group);
	tc_cmd(&c, command, status, len, NULL, 0);
	if (sscanf(status, "OK %ld", &id) == 1) {
		char answer[256];

		snprintf(command, sizeof(command), "UNSB %s %ld", topic, id);
		tc_cmd(&c, command, answer, sizeof(answer), NULL, 0);
		assert_string_equal(answer, "OK");
	}
	tc_close(&c);
}

/* Offsets retention in a cluster: the metadata leader's forget record is
 * applied on every broker, so a group with no member past
 * groups.offsets_retention_ms stops counting against limits.max_groups
 * on all three, and its committed offsets are gone on all three. */
static void test_offsets_retention_replicated(void **state)
{
	char status[256], data[4096];
	long first, id, at;
	double t0;
	struct tc c;

	assert_true(tcl_agree(&cl, N, 10) > 0);
	offsets_topic("ret", 5);
	/* Where a new group reads from. */
	id = subs_on(&c, 0, "ret", "fresh");
	first = read_from(0, "ret", id);
	assert_true(first >= 0 && first < 3);
	tc_close(&c);
	groups_agree("ret", 0, data, sizeof(data), 10);

	assert_int_equal(tc_connect(&c, cl.tbs[0].port), 0);
	visit_group(&c, "ret", "g1");
	visit_group(&c, "ret", "g2");
	tc_close(&c);
	t0 = tb_now();
	/* Every broker applied the leaves: both groups are kept by their
	 * offsets alone, and none has room for a third. */
	groups_agree("ret", 0, data, sizeof(data), 10);
	for (int i = 0; i < N; i++) {
		subs_once(i, "ret", "g3", status, sizeof(status));
		if (strcmp(status,
			   "ERR BUSY no more groups: limits.max_groups is 2"))
			fail_msg("SUBS on broker %d %.1f s after the leaves: "
				 "%s",
				 i + 1, tb_now() - t0, status);
	}
	/* Then the leader's forget frees both, on every broker. */
	for (int i = 0; i < N; i++) {
		do {
			subs_once(i, "ret", "g3", status, sizeof(status));
			if (strncmp(status, "OK ", 3) == 0)
				break;
			usleep(100000);
		} while (tb_now() - t0 < 20);
		if (strncmp(status, "OK ", 3) != 0)
			fail_msg("SUBS on broker %d after %.1f s: %s", i + 1,
				 tb_now() - t0, status);
	}
	print_message("room for new groups on every broker after %.1f s\n",
		      tb_now() - t0);
	assert_true(tb_now() - t0 > 2.0);
	/* One forget made room; the other may come a scan later (the
	 * leader scans every quarter of the retention). */
	for (int i = 0; i < N; i++) {
		static char log[1 << 20];
		int both;

		do {
			tb_read_log(&cl.tbs[i], log, sizeof(log));
			both = strstr(log, "group g1 of ret: no member for "
					   "groups.offsets_retention_ms") &&
			       strstr(log, "group g2 of ret: no member for "
					   "groups.offsets_retention_ms");
			if (!both)
				usleep(100000);
		} while (!both && tb_now() - t0 < 20);
		if (!both)
			fail_msg("broker %d did not apply the forgets:\n%s",
				 i + 1, log);
	}
	/* g1's offsets are gone everywhere: a new member reads from the
	 * start, and GRPS agrees on it. */
	assert_int_equal(tc_connect(&c, cl.tbs[0].port), 0);
	tc_cmd(&c, "SUBS ret g1", status, sizeof(status), NULL, 0);
	assert_int_equal(sscanf(status, "OK %ld", &id), 1);
	groups_agree("ret", 1, data, sizeof(data), 10);
	for (int i = 0; i < N; i++) {
		at = read_from(i, "ret", id);
		if (at != first)
			fail_msg("broker %d reads g1 from %ld, not %ld", i + 1,
				 at, first);
	}
	tc_close(&c);
}

/* A broker stopped gracefully (SIGTERM) ends its consumer group members
 * as it stops, so the others take their partitions at once rather than
 * after cluster.session_timeout_ms (120 s here): first the metadata
 * leader, which commits the record itself, then a broker that forwards
 * it to the new leader. */
static void test_stop_ends_members(void **state)
{
	char status[256], data[4096];
	int leader = tcl_agree(&cl, N, 10), left = -1, old;
	long sub[N];
	struct tc c[N];
	double end;

	assert_true(leader > 0);
	tcl_cmd(&cl, leader - 1, "CRTP gstop 4 replicas=3", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK gstop 4");
	join_everywhere("gstop", c, sub);
	groups_agree("gstop", N, data, sizeof(data), 10);
	check_spread(data, 4, 0);

	assert_int_equal(tb_stop(&cl.tbs[leader - 1]), 0);
	tc_close(&c[leader - 1]);
	groups_agree("gstop", N - 1, data, sizeof(data), 15);
	check_spread(data, 4, 2);

	/* The survivors may still name the stopped one for a while. */
	old = leader;
	end = tb_now() + 15;
	do
		leader = tcl_agree(&cl, N - 1, 15);
	while ((leader == old || leader <= 0) && tb_now() < end);
	assert_true(leader > 0 && leader != old);
	for (int i = 0; i < N; i++)
		if (cl.tbs[i].pid > 0 && i != leader - 1) {
			assert_int_equal(tb_stop(&cl.tbs[i]), 0);
			tc_close(&c[i]);
		} else if (cl.tbs[i].pid > 0) {
			left = i;
		}
	if (left != leader - 1)
		fail_msg("broker %d leads the metadata, broker %d is left",
			 leader, left + 1);
	groups_agree("gstop", 1, data, sizeof(data), 15);
	check_spread(data, 4, 4);
	tc_close(&c[left]);
}

static void test_graceful_stop(void **state)
{
	for (int i = 0; i < N; i++)
		assert_int_equal(tb_stop(&cl.tbs[i]), 0);
}

int main(void)
{
	/* Each test on three brokers of its own: one failure stays its own. */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_election, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metadata_replicated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_partition_replicated,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_any_broker_serves, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_follower_subscribes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cons_remote, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_groups_span_brokers, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_group_member_fenced, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_stale_cmit_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_leaders_spread, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_new_partitions_elected_once, setup_debug,
			teardown),
		cmocka_unit_test_setup_teardown(test_garbage_on_cluster_port,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_failover_and_rejoin, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_restart, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_install_snapshot, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_retention_restart_point,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_answers_waiting_cmit,
						setup_slow_requests, teardown),
		cmocka_unit_test_setup_teardown(test_cmit_race_agrees, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_cmit_lost_changes_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_snapshot_replaces_offsets,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_cmit_elsewhere_cancels_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmit_same_offset_elsewhere,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_stop_cancels_waiting_proposals, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_offsets_retention_replicated,
			setup_offsets_retention, teardown),
		cmocka_unit_test_setup_teardown(test_stop_ends_members,
						setup_long_sessions, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_stop, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
