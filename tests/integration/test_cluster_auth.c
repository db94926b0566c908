/* The cluster port under attack, with real brokers on loopback.
 *
 * Three brokers share a secret.  A stranger's hello claiming broker 2,
 * followed by a forged APPEND of term 1000 carrying a metadata record,
 * changes nothing: no connection of a peer is replaced, no term moves,
 * no topic appears.  Fifty strangers each sending a 48 MiB first frame
 * leave the broker's memory where it was.  A broker holding another
 * secret is refused while the others keep their cluster, and rejoins
 * once it holds the right one.  A single broker shows the connection
 * caps, the handshake deadline and the secret file's checks; three
 * brokers without a secret still form a cluster, with a warning line. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/bytes.h>

#include "../../plugins/raft/port/frame.h"
#include "cluster.h"

#define N TCL_N

static struct tcl cl;
static char logbuf[1 << 21];

/* Another secret than the cluster's own. */
static const char bad_secret[] =
	"c29tZSBvdGhlciBjbHVzdGVyJ3Mgc2VjcmV0LCBub3QgdGhpcw==\n";

/* Three brokers of their own on the brokers' defaults, with
 * `cluster_extra` in their cluster sections; started, not waited for. */
static void start_cluster(int secret, const char *cluster_extra)
{
	memset(&cl, 0, sizeof(cl));
	cl.broker_defaults = 1;
	cl.secret = secret;
	snprintf(cl.cluster_extra, sizeof(cl.cluster_extra), "%s",
		 cluster_extra);
	tcl_setup(&cl);
	for (int i = 0; i < N; i++)
		tcl_start(&cl, i);
}

/* The secret cluster has room for fifty strangers from one address, so
 * that they reach the frame cap instead of the connection cap. */
static int setup_secret(void **state)
{
	start_cluster(1, "\"max_connections\": 200, "
			 "\"max_connections_per_address\": 100");
	return 0;
}

static int setup_open(void **state)
{
	start_cluster(0, "");
	return 0;
}

static int teardown(void **state)
{
	tcl_teardown(&cl);
	return 0;
}

#define ALL_UP	    ((1u << 1) | (1u << 2) | (1u << 3))
#define ALL_BROKERS 7u

static int count_in_log(int i, const char *needle)
{
	int n = 0;

	tb_read_log(&cl.tbs[i], logbuf, sizeof(logbuf));
	for (const char *p = logbuf; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static void test_cluster_with_secret(void **state)
{
	int leader = tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15);

	assert_true(leader > 0);
	assert_true(count_in_log(N - 1, "(authenticated)") >= 2);
	assert_int_equal(count_in_log(N - 1, "is open to anyone"), 0);
	print_message("secret cluster: broker %d leads\n", leader);
}

/* A forged metadata record: a topic nobody created. */
static size_t forged_append(uint8_t *out, uint64_t prev)
{
	static const char value[] = "{\"type\": \"topic\", \"name\": "
				    "\"forged\", \"partitions\": 1, "
				    "\"replicas\": 1}";
	uint8_t payload[256];
	struct kq__raft_entry e = {0};
	struct kq__raft_msg m = {0};
	size_t len = 0;

	memset(payload, 0, 12); /* timestamp (8), key length 0 (4) */
	memcpy(payload + 12, value, sizeof(value) - 1);
	e.index = prev + 1;
	e.term = 1000;
	e.len = (uint32_t)(12 + sizeof(value) - 1);
	e.data = payload;
	m.type = KQ__RAFT_MSG_APPEND;
	m.from = 2;
	m.to = 3;
	m.term = 1000;
	m.index = prev;
	m.log_term = prev ? 1 : 0;
	m.commit = prev + 1;
	m.entries = &e;
	m.n_entries = 1;
	len = kq__frame_msg_size(&m);
	kq__frame_put_msg(out, 0, &m);
	return len;
}

static void test_forged_hello_and_append(void **state)
{
	uint8_t frames[8192], nonce[KQ__FRAME_NONCE], mac[KQ__FRAME_MAC];
	char status[256], data[4096];
	size_t len = 0;
	int leader = tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15), leader_after;
	int conn3 = count_in_log(N - 1, "connected to broker 2");
	int lines3 = count_in_log(N - 1, "group meta: leader");
	int refused;

	assert_true(leader > 0);
	memset(nonce, 0x5a, sizeof(nonce));
	memset(mac, 0xa5, sizeof(mac));
	/* 1: a hello claiming broker 2, then APPENDs of term 1000. */
	kq__frame_put_hello(frames, 2, 3, KQ__FRAME_HELLO_AUTH, nonce);
	len = kq__frame_hello_size();
	for (uint64_t prev = 0; prev < 8; prev++)
		len += forged_append(frames + len, prev);
	assert_true(tcl_port_closes(&cl, N - 1, frames, len));
	/* 2: the same with an AUTH frame whose MAC is made up. */
	kq__frame_put_hello(frames, 2, 3, KQ__FRAME_HELLO_AUTH, nonce);
	len = kq__frame_hello_size();
	kq__frame_put_auth(frames + len, mac);
	len += kq__frame_auth_size();
	for (uint64_t prev = 0; prev < 8; prev++)
		len += forged_append(frames + len, prev);
	assert_true(tcl_port_closes(&cl, N - 1, frames, len));
	/* 3: a hello claiming 2 without a secret (the old behaviour). */
	kq__frame_put_hello(frames, 2, 3, 0, nonce);
	len = kq__frame_hello_size();
	len += forged_append(frames + len, 0);
	assert_true(tcl_port_closes(&cl, N - 1, frames, len));
	/* 4: the APPEND alone. */
	len = forged_append(frames, 0);
	assert_true(tcl_port_closes(&cl, N - 1, frames, len));

	/* One line per refused connection (they are a second apart at
	 * most, so some may be folded into a later line). */
	refused = count_in_log(N - 1, "says broker 2") +
		  count_in_log(N - 1, "before authentication");
	assert_true(refused >= 1);
	/* Let a forged term or leader surface if it got in anywhere. */
	usleep(1500000);
	leader_after = tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 10);
	assert_int_equal(leader_after, leader);
	/* The real broker 2's connection was never replaced. */
	assert_int_equal(count_in_log(N - 1, "connected to broker 2"), conn3);
	assert_int_equal(count_in_log(N - 1, "group meta: leader"), lines3);
	for (int i = 0; i < N; i++) {
		assert_int_equal(count_in_log(i, "term 1000"), 0);
		assert_int_equal(count_in_log(i, "broker 3: disconnected"), 0);
		tcl_cmd(&cl, i, "LIST", status, sizeof(status), data,
			sizeof(data));
		assert_null(strstr(data, "forged"));
		tcl_cmd(&cl, i, "DESC forged", status, sizeof(status), data,
			sizeof(data));
		assert_true(strncmp(status, "ERR NOTOPIC", 11) == 0);
	}
	print_message("forged hello and APPENDs: %d refusal line(s), broker "
		      "%d still leads, no term 1000, no topic\n",
		      refused, leader);
}

#define STRANGERS  50
#define FIRST_SIZE (48u << 20)

/* Fifty connections each send a frame header declaring 48 MiB and then
 * as much of its body as the broker takes, for up to 3 s. */
static void test_preauth_memory(void **state)
{
	static uint8_t chunk[1 << 16];
	int fds[STRANGERS];
	size_t sent[STRANGERS] = {0}, total = 0;
	long before, peak, after;
	int open_n = STRANGERS, leader;
	double end;

	assert_true(tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15) > 0);
	before = tb_rss_kb(cl.tbs[N - 1].pid);
	peak = before;
	for (int k = 0; k < STRANGERS; k++) {
		struct tc c;
		uint8_t head[5] = {0, 0, 0, 0, KQ__FRAME_MSG};

		kq_put32be(head, FIRST_SIZE);
		assert_int_equal(tc_connect(&c, cl.raft_ports[N - 1]), 0);
		fds[k] = c.fd;
		fcntl(fds[k], F_SETFL, O_NONBLOCK);
		if (send(fds[k], head, sizeof(head), MSG_NOSIGNAL) == 5)
			sent[k] = 5;
	}
	end = tb_now() + 3;
	while (open_n > 0 && tb_now() < end) {
		struct pollfd pfd[STRANGERS];
		long rss;

		for (int k = 0; k < STRANGERS; k++) {
			pfd[k].fd = fds[k];
			pfd[k].events = POLLOUT;
		}
		poll(pfd, STRANGERS, 50);
		for (int k = 0; k < STRANGERS; k++) {
			ssize_t n;

			if (fds[k] < 0 || !(pfd[k].revents & POLLOUT))
				continue;
			n = send(fds[k], chunk,
				 FIRST_SIZE + 5 - sent[k] < sizeof(chunk)
					 ? FIRST_SIZE + 5 - sent[k]
					 : sizeof(chunk),
				 MSG_NOSIGNAL);
			if (n > 0) {
				sent[k] += (size_t)n;
				total += (size_t)n;
			}
			if ((n < 0 && errno != EAGAIN) ||
			    sent[k] >= FIRST_SIZE + 5) {
				close(fds[k]);
				fds[k] = -1;
				open_n--;
			}
		}
		rss = tb_rss_kb(cl.tbs[N - 1].pid);
		if (rss > peak)
			peak = rss;
	}
	for (int k = 0; k < STRANGERS; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	after = tb_rss_kb(cl.tbs[N - 1].pid);
	print_message("pre-auth memory: %d connections, %zu bytes sent in "
		      "all, %d still open after 3 s; broker VmRSS %ld kB "
		      "before, %ld kB peak, %ld kB after\n",
		      STRANGERS, total, open_n, before, peak, after);
	/* A few MB of slack for allocator noise; the attack offered
	 * 2.4 GB. */
	assert_true(peak - before < 16 * 1024);
#if !defined(__SANITIZE_ADDRESS__)
	/* Under AddressSanitizer the broker's own baseline is larger. */
	assert_true(peak < 64 * 1024);
#endif
	assert_int_equal(open_n, 0);
	/* And the broker still serves, in its cluster. */
	leader = tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 10);
	assert_true(leader > 0);
}

/* Broker 3 restarted with another secret is refused by both others,
 * which keep their cluster; with the right one it rejoins. */
static void test_wrong_secret_refused(void **state)
{
	unsigned up;
	int leader, l;
	double end;

	assert_true(tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15) > 0);
	tb_kill9(&cl.tbs[N - 1]);
	tcl_write_secret(&cl, N - 1, bad_secret);
	tcl_start(&cl, N - 1);
	/* For 3 s, brokers 1 and 2 never see it up. */
	end = tb_now() + 3;
	leader = 0;
	while (tb_now() < end) {
		for (int i = 0; i < N - 1; i++) {
			assert_int_equal(tb_stat(cl.tbs, N, i, &up, &l), 0);
			assert_false(up & (1u << 3));
			if (l > 0)
				leader = l;
		}
		usleep(50000);
	}
	assert_true(leader == 1 || leader == 2);
	assert_true(tcl_agree_view(&cl, 3u, (1u << 1) | (1u << 2), 5) > 0);
	/* Each side says why.  A dialer sees the refusal when it reads
	 * broker 3's AUTH before broker 3 closes; under load the close may
	 * come first, and it says so at its next attempt. */
	end = tb_now() + 15;
	while ((count_in_log(0, "authentication failed") +
				count_in_log(1, "authentication failed") <
			1 ||
		count_in_log(N - 1, "authentication failed") < 1) &&
	       tb_now() < end)
		usleep(100000);
	assert_true(count_in_log(0, "authentication failed") +
			    count_in_log(1, "authentication failed") >=
		    1);
	assert_true(count_in_log(N - 1, "authentication failed") >= 1);
	print_message("wrong secret: broker 3 refused, brokers 1 and 2 keep "
		      "leader %d\n",
		      leader);
	/* The right secret again: it rejoins. */
	tb_kill9(&cl.tbs[N - 1]);
	tcl_write_secret(&cl, N - 1, NULL);
	tcl_start(&cl, N - 1);
	assert_true(tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15) > 0);
}

/* A cluster that formed stops on SIGTERM, every broker with status 0. */
static void test_graceful_stop(void **state)
{
	assert_true(tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15) > 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(tb_stop(&cl.tbs[i]), 0);
}

/* ------------------------------------------------------------ no secret */

static void test_cluster_without_secret(void **state)
{
	int leader = tcl_agree_view(&cl, ALL_BROKERS, ALL_UP, 15);

	assert_true(leader > 0);
	for (int i = 0; i < N; i++) {
		char want[128];

		snprintf(want, sizeof(want),
			 "no cluster.secret_file: the cluster port "
			 "127.0.0.1:%d is open to anyone who reaches it",
			 cl.raft_ports[i]);
		assert_int_equal(count_in_log(i, want), 1);
		assert_int_equal(count_in_log(i, "(authenticated)"), 0);
	}
	/* The pre-auth frame cap holds here too. */
	{
		static const uint8_t big[5] = {0x03, 0, 0, 0, KQ__FRAME_MSG};

		assert_true(tcl_port_closes(&cl, N - 1, big, sizeof(big)));
		assert_true(count_in_log(N - 1, "frame too long before "
						"authentication") >= 1);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(tb_stop(&cl.tbs[i]), 0);
}

/* ------------------------------------------------------------ one broker */

static struct tb solo;
static int solo_raft;

/* Broker 2 of a cluster whose broker 1 never runs: it accepts from 1. */
static void solo_config(const char *cluster_extra)
{
	char json[2048];

	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": 2, \"data_dir\": \"%s\"},\n"
		 " \"plugins\": {\"transport\": \"telnet\", \"partitioner\": "
		 "\"keyhash\", \"storage\": \"segment\", \"consensus\": "
		 "\"raft\"},\n"
		 " \"telnet\": {\"host\": \"127.0.0.1\", \"port\": %d},\n"
		 " \"cluster\": {%s\"peers\": [{\"id\": 1, \"port\": %d, "
		 "\"raft_port\": %d}, {\"id\": 2, \"port\": %d, "
		 "\"raft_port\": %d}]}}\n",
		 solo.dir, solo.port, cluster_extra, tb_free_port(),
		 tb_free_port(), solo.port, solo_raft);
	tb_write_raw(&solo, json);
}

static int setup_solo(void **state)
{
	tb_setup_empty(&solo);
	do
		solo_raft = tb_free_port();
	while (solo_raft == solo.port);
	return 0;
}

static int teardown_solo(void **state)
{
	tb_kill9(&solo);
	tb_cleanup(&solo);
	return 0;
}

static int solo_run(char *out, size_t len)
{
	const char *args[] = {"-config", solo.config, NULL};

	return tb_run_args(args, out, len);
}

static void solo_secret(const char *text, mode_t mode)
{
	char path[400];
	int fd;

	snprintf(path, sizeof(path), "%s/s", solo.dir);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	chmod(path, mode);
}

static void test_secret_file_errors(void **state)
{
	char out[8192], extra[512];
	int st;

	snprintf(extra, sizeof(extra), "\"secret_file\": \"%s/none\", ",
		 solo.dir);
	solo_config(extra);
	st = solo_run(out, sizeof(out));
	if (st != 2 || !strstr(out, "cluster.secret_file: ") ||
	    !strstr(out, "No such file"))
		fail_msg("missing file: exit %d:\n%s", st, out);

	snprintf(extra, sizeof(extra), "\"secret_file\": \"%s/s\", ", solo.dir);
	solo_config(extra);
	solo_secret("", 0600);
	st = solo_run(out, sizeof(out));
	if (st != 2 || !strstr(out, "cluster.secret_file: ") ||
	    !strstr(out, ": empty"))
		fail_msg("empty file: exit %d:\n%s", st, out);
	solo_secret("too short\n", 0600);
	st = solo_run(out, sizeof(out));
	if (st != 2 || !strstr(out, "shorter than 16 bytes"))
		fail_msg("short secret: exit %d:\n%s", st, out);
	/* The secret never shows in the log. */
	assert_null(strstr(out, "too short"));
	solo_secret("0123456789abcdef\n", 0000);
	if (geteuid() != 0) {
		st = solo_run(out, sizeof(out));
		if (st != 2 || !strstr(out, "Permission denied"))
			fail_msg("unreadable: exit %d:\n%s", st, out);
	}
	snprintf(extra, sizeof(extra), "\"secret_file\": 7, ");
	solo_config(extra);
	st = solo_run(out, sizeof(out));
	if (st != 2 || !strstr(out, "cluster.secret_file: expected"))
		fail_msg("not a string: exit %d:\n%s", st, out);
	solo_config("\"auth_timeout_ms\": 0, ");
	st = solo_run(out, sizeof(out));
	if (st != 2 || !strstr(out, "cluster.auth_timeout_ms: expected"))
		fail_msg("timeout: exit %d:\n%s", st, out);
	solo_config("\"max_connections\": 1, ");
	st = solo_run(out, sizeof(out));
	if (st != 2 || !strstr(out, "cluster.max_connections: expected"))
		fail_msg("max_connections: exit %d:\n%s", st, out);
}

/* A secret readable by others starts, with a warning line. */
static void test_loose_secret_warns(void **state)
{
	char extra[512];
	int st = 0;

	snprintf(extra, sizeof(extra), "\"secret_file\": \"%s/s\", ", solo.dir);
	solo_config(extra);
	solo_secret("0123456789abcdef-a-secret\n", 0644);
	assert_int_equal(tb_start(&solo, &st), 0);
	tb_read_log(&solo, logbuf, sizeof(logbuf));
	assert_non_null(strstr(logbuf, "is readable by its group or others"));
	assert_null(strstr(logbuf, "0123456789abcdef"
				   "-a-secret"));
	assert_int_equal(tb_stop(&solo), 0);
}

/* Idle connections that fill the caps; past them, each new connection
 * takes the place of the oldest one without a handshake (a peer's takes
 * a round trip, a stranger's may sit until the deadline), with few log
 * lines; idle ones go at the deadline. */
static void test_caps_and_deadline(void **state)
{
	struct tc idle[2], c;
	char buf[128];
	int st = 0, lines;
	double t0;

	unlink(solo.log);
	solo_config("\"max_connections\": 3, "
		    "\"max_connections_per_address\": 2, "
		    "\"auth_timeout_ms\": 700, ");
	assert_int_equal(tb_start(&solo, &st), 0);
	for (int k = 0; k < 2; k++)
		assert_int_equal(tc_connect(&idle[k], solo_raft), 0);
	usleep(100000);
	/* A flood past the per-address cap: the idle ones make room first,
	 * then each newcomer for the next. */
	for (int k = 0; k < 200; k++) {
		assert_int_equal(tc_connect(&c, solo_raft), 0);
		tc_close(&c);
	}
	for (int k = 0; k < 2; k++) {
		struct pollfd pfd = {.fd = idle[k].fd, .events = POLLIN};

		assert_true(poll(&pfd, 1, 300) > 0);
		assert_true(recv(idle[k].fd, buf, sizeof(buf), 0) <= 0 ||
			    (poll(&pfd, 1, 300) > 0 &&
			     recv(idle[k].fd, buf, sizeof(buf), 0) <= 0));
		tc_close(&idle[k]);
	}
	tb_read_log(&solo, logbuf, sizeof(logbuf));
	{
		int n = 0;

		for (const char *p = logbuf;
		     (p = strstr(p, "(cluster.max_connections_per_address)"));
		     p++)
			n++;
		lines = n;
	}
	print_message("caps: 200 connections past the cap, %d log line(s)\n",
		      lines);
	/* A burst of a few, then about one a second. */
	assert_true(lines >= 1 && lines <= 8);
	assert_non_null(strstr(logbuf, "to make room for one from"));
	/* The idle ones are closed at the deadline. */
	usleep(200000);
	for (int k = 0; k < 2; k++)
		assert_int_equal(tc_connect(&idle[k], solo_raft), 0);
	t0 = tb_now();
	for (int k = 0; k < 2; k++) {
		struct pollfd pfd = {.fd = idle[k].fd, .events = POLLIN};
		int gone = 0;

		while (!gone && tb_now() - t0 < 5)
			if (poll(&pfd, 1, 100) > 0)
				gone = recv(idle[k].fd, buf, sizeof(buf), 0) <=
				       0;
		assert_true(gone);
		tc_close(&idle[k]);
	}
	print_message("deadline: idle connections closed after %.2f s\n",
		      tb_now() - t0);
	tb_read_log(&solo, logbuf, sizeof(logbuf));
	assert_non_null(strstr(logbuf, "no handshake within 700 ms"));
	/* Room again: a new connection gets the broker's hello. */
	assert_int_equal(tc_connect(&c, solo_raft), 0);
	{
		struct pollfd pfd = {.fd = c.fd, .events = POLLIN};

		assert_true(poll(&pfd, 1, 2000) > 0);
		assert_true(recv(c.fd, buf, sizeof(buf), 0) > 0);
	}
	tc_close(&c);
	assert_int_equal(tb_stop(&solo), 0);
}

int main(void)
{
	/* Each test starts brokers of its own, so that any one runs alone
	 * (CMOCKA_TEST_ABORT aside, cmocka's filter picks one). */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cluster_with_secret,
						setup_secret, teardown),
		cmocka_unit_test_setup_teardown(test_forged_hello_and_append,
						setup_secret, teardown),
		cmocka_unit_test_setup_teardown(test_preauth_memory,
						setup_secret, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_secret_refused,
						setup_secret, teardown),
		cmocka_unit_test_setup_teardown(test_graceful_stop,
						setup_secret, teardown),
		/* Without a secret too: the frame cap does not depend on
		 * one, and here 34 of the 50 strangers meet the
		 * per-address cap first. */
		cmocka_unit_test_setup_teardown(test_preauth_memory, setup_open,
						teardown),
		cmocka_unit_test_setup_teardown(test_cluster_without_secret,
						setup_open, teardown),
		cmocka_unit_test_setup_teardown(test_secret_file_errors,
						setup_solo, teardown_solo),
		cmocka_unit_test_setup_teardown(test_loose_secret_warns,
						setup_solo, teardown_solo),
		cmocka_unit_test_setup_teardown(test_caps_and_deadline,
						setup_solo, teardown_solo),
	};

	return cmocka_run_group_tests_name("cluster auth", tests, NULL, NULL)
		       ? 1
		       : 0;
}
