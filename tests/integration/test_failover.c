/* Three brokers under fire, with a publisher connected to each: the
 * brokers leading partitions are killed with SIGKILL and restarted
 * (KQ_FAILOVERS times, 10 by default), one is stopped with SIGSTOP for
 * KQ_STOP_SECONDS (10), and broker 3 is cut off from the cluster port by
 * nft rules for 5 s.  Publishers keep sending throughout, pipelined and
 * without keys, and reconnect to their own broker when it comes back; every
 * PUBS goes through forwarding whenever its broker does not lead the
 * partition.
 *
 * Then every broker is read from offset 0, and:
 *   - every acknowledged message is there exactly once, at its
 *     acknowledged offset, on every broker;
 *   - a message answered ERR or lost with its connection is there at most
 *     once;
 *   - no offset holds two messages (across brokers);
 *   - a publisher's acknowledged messages of one partition have
 *     increasing offsets in the order sent;
 *   - the cut-off broker acknowledged nothing that was sent to it more
 *     than a second into the cut.
 * It prints the faults, counts and the worst publish gap: the longest
 * time a publisher whose broker was running waited between two
 * acknowledgements.
 *
 * The test runs in a network namespace of its own (unshare; without root,
 * inside a user namespace of its own), so the nft rules see only its
 * loopback; it needs nft (nftables) and ip (iproute2).
 * tools/failover-soak.sh runs it with KQ_FAILOVERS=200. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "cluster.h"

#define NPUB	 TCL_N
#define NPARTS	 3
#define WINDOW	 4
#define MAX_MSGS 400000 /* per publisher */
#define TOPIC	 "chk"

enum { S_NONE, S_SENT, S_ACKED, S_FAILED, S_UNKNOWN };

struct msg {
	uint8_t state;
	uint8_t part;
	uint8_t seen; /* times read back on the broker being checked */
	long off;
	float sent; /* seconds after the start, when sent */
};

struct pub {
	int idx; /* broker index it talks to */
	int fd;
	char buf[1 << 16];
	size_t len;
	uint32_t next;	       /* next sequence number to send */
	uint32_t inflight[64]; /* ring of sequence numbers sent */
	unsigned head, n;      /* in the ring */
	double last_ack;       /* when it last got an OK */
	double worst_gap;
	uint64_t acked, failed, unknown;
	uint64_t acked_in_cut; /* OK answers while its broker was cut off */
	int gap_paused;	       /* its broker is cut off: no gap counted */
	struct msg *msgs;
};

static struct tcl cl;
static struct pub pubs[NPUB];
static double cut_from = -1, cut_until = -1; /* broker 3 cut off */
static int stopped = -1;		     /* broker index SIGSTOPped */
static int draining;			     /* no new PUBS, answers awaited */
static double t0;			     /* when publishing began */

static unsigned env_uint(const char *name, unsigned def)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : def;
}

/* ------------------------------------------------------------ publishers */

static int connect_to(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* The connection broke: what was in flight may or may not be stored. */
static void pub_lost(struct pub *p)
{
	while (p->n) {
		p->msgs[p->inflight[p->head]].state = S_UNKNOWN;
		p->unknown++;
		p->head = (p->head + 1) % 64;
		p->n--;
	}
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	p->len = 0;
}

static int broker_running(int i)
{
	return cl.tbs[i].pid > 0 && stopped != i;
}

static void pub_fill(struct pub *p)
{
	char line[64];

	while (p->fd >= 0 && p->n < WINDOW && p->next < MAX_MSGS && !draining) {
		int len =
			snprintf(line, sizeof(line),
				 "PUBS " TOPIC " p%d-%u\r\n", p->idx, p->next);

		if (send(p->fd, line, (size_t)len, MSG_NOSIGNAL) != len) {
			pub_lost(p);
			return;
		}
		p->msgs[p->next].state = S_SENT;
		p->msgs[p->next].sent = (float)(tb_now() - t0);
		p->inflight[(p->head + p->n) % 64] = p->next;
		p->n++;
		p->next++;
	}
}

static void pub_answer(struct pub *p, const char *line, double now)
{
	uint32_t seq;
	long part, off;

	if (!p->n)
		fail_msg("publisher %d: answer with nothing in flight: %s",
			 p->idx + 1, line);
	seq = p->inflight[p->head];
	p->head = (p->head + 1) % 64;
	p->n--;
	if (sscanf(line, "OK %ld %ld", &part, &off) == 2) {
		if (part < 0 || part >= NPARTS)
			fail_msg("publisher %d: %s", p->idx + 1, line);
		p->msgs[seq].state = S_ACKED;
		p->msgs[seq].part = (uint8_t)part;
		p->msgs[seq].off = off;
		p->acked++;
		/* Sent once it was cut off, and acknowledged before it
		 * was back: that cannot have been committed.  (Answers
		 * keep their order, so one sent before the cut may come
		 * late, behind a PUBS that waited for its deadline.) */
		if (p->idx == 2 && cut_from > 0 &&
		    p->msgs[seq].sent > cut_from - t0 + 1 &&
		    (cut_until < 0 || now < cut_until)) {
			p->acked_in_cut++;
			print_message("broker 3 acknowledged p2-%u at %ld:%ld "
				      "%.3f s into the cut, sent %.3f s into "
				      "it\n",
				      seq, part, off, now - cut_from,
				      p->msgs[seq].sent - (cut_from - t0));
		}
		if (p->last_ack > 0 && broker_running(p->idx) &&
		    !p->gap_paused && now - p->last_ack > p->worst_gap)
			p->worst_gap = now - p->last_ack;
		p->last_ack = now;
	} else if (strncmp(line, "ERR ", 4) == 0) {
		p->msgs[seq].state = S_FAILED;
		p->failed++;
	} else {
		fail_msg("publisher %d: unexpected answer: %s", p->idx + 1,
			 line);
	}
}

static void pub_read(struct pub *p, double now)
{
	ssize_t n = recv(p->fd, p->buf + p->len, sizeof(p->buf) - p->len, 0);
	char *nl;

	if (n <= 0) {
		pub_lost(p);
		return;
	}
	p->len += (size_t)n;
	while ((nl = memchr(p->buf, '\n', p->len))) {
		size_t l = (size_t)(nl - p->buf) + 1;

		*nl = '\0';
		if (nl > p->buf && nl[-1] == '\r')
			nl[-1] = '\0';
		pub_answer(p, p->buf, now);
		memmove(p->buf, p->buf + l, p->len - l);
		p->len -= l;
	}
}

/* Runs the publishers for `secs` seconds. */
static void publish_for(double secs)
{
	double end = tb_now() + secs;

	while (tb_now() < end) {
		struct pollfd pfd[NPUB];
		double now;

		for (int i = 0; i < NPUB; i++) {
			struct pub *p = &pubs[i];

			/* A reconnect after a pause: its gap does not
			 * count the time its broker was down. */
			if (p->fd < 0 && broker_running(i)) {
				p->fd = connect_to(cl.tbs[i].port);
				if (p->fd >= 0)
					p->last_ack = tb_now();
			}
			pub_fill(p);
			pfd[i].fd = p->fd;
			pfd[i].events = POLLIN;
		}
		if (poll(pfd, NPUB, 10) < 0 && errno != EINTR)
			fail_msg("poll: %s", strerror(errno));
		now = tb_now();
		for (int i = 0; i < NPUB; i++)
			if (pubs[i].fd >= 0 &&
			    (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				pub_read(&pubs[i], now);
	}
}

/* ------------------------------------------------------------ faults */

/* The broker leading the most of the topic's partitions (the metadata
 * leader when none is known). */
static int busiest_leader(void)
{
	int count[TCL_N + 1] = {0}, best = 0, up, meta = 0;

	for (int part = 0; part < NPARTS; part++) {
		for (int i = 0; i < TCL_N; i++) {
			long s, e;
			int l = 0;

			if (!broker_running(i))
				continue;
			tcl_desc(&cl, i, TOPIC, part, &s, &e, &l);
			if (l > 0 && l <= TCL_N) {
				count[l]++;
				break;
			}
		}
	}
	for (int id = 1; id <= TCL_N; id++)
		if (count[id] > count[best])
			best = id;
	if (!best)
		for (int i = 0; i < TCL_N && !best; i++)
			if (broker_running(i) &&
			    tcl_stat(&cl, i, &up, &meta) == 0 && meta > 0)
				best = meta;
	return best ? best : 1;
}

/* Fails the test when a broker the test did not kill has exited (a
 * crash, or a sanitizer's report), with the end of its log. */
static void check_alive(void)
{
	for (int i = 0; i < TCL_N; i++) {
		char log[4096];

		if (cl.tbs[i].pid <= 0 || tcl_alive(&cl, i))
			continue;
		tb_read_log(&cl.tbs[i], log, sizeof(log));
		fail_msg("broker %d exited on its own:\n%s", i + 1, log);
	}
}

/* Publishes until all three brokers agree again (or 30 s). */
static void heal(void)
{
	double end = tb_now() + 30;

	while (tb_now() < end) {
		publish_for(0.2);
		check_alive();
		if (tcl_agree(&cl, TCL_N, 0.01) > 0)
			return;
	}
	fail_msg("the brokers did not agree again within 30 s");
}

static void kill_and_restart(int id)
{
	check_alive();
	print_message("kill -9 broker %d\n", id);
	tb_kill9(&cl.tbs[id - 1]);
	pub_lost(&pubs[id - 1]);
	publish_for(1.0);
	tcl_start(&cl, id - 1);
	heal();
}

static void stop_and_continue(int id, unsigned secs)
{
	print_message("SIGSTOP broker %d for %u s\n", id, secs);
	kill(cl.tbs[id - 1].pid, SIGSTOP);
	stopped = id - 1;
	publish_for(secs);
	kill(cl.tbs[id - 1].pid, SIGCONT);
	stopped = -1;
	pubs[id - 1].last_ack = 0; /* its gap does not count the pause */
	heal();
}

/* Cuts broker 3 off the cluster port: it has the highest id, so every
 * cluster connection of it was accepted on its own raft port, and
 * dropping that port's packets isolates it. */
static void cut_broker_3(void)
{
	int port = cl.raft_ports[2];

	print_message("cut broker 3 off for 5 s (nft)\n");
	tb_sh("nft add table inet kqtest");
	tb_sh("nft 'add chain inet kqtest in { type filter hook input priority "
	      "0; }'");
	tb_sh("nft add rule inet kqtest in tcp dport %d drop", port);
	tb_sh("nft add rule inet kqtest in tcp sport %d drop", port);
	cut_from = tb_now();
	pubs[2].gap_paused = 1;
	publish_for(5);
	cut_until = tb_now();
	tb_sh("nft delete table inet kqtest");
	heal();
	pubs[2].gap_paused = 0;
	pubs[2].last_ack = 0;
}

/* ------------------------------------------------------------ checking */

struct seen {
	long off[NPARTS];
	char **body[NPARTS]; /* body at offset, by offset (sparse) */
	long cap[NPARTS];
};

static struct seen first_view; /* the first broker's, for comparison */

static void view_put(struct seen *v, int part, long off, const char *body)
{
	if (off >= v->cap[part]) {
		long cap = v->cap[part] ? v->cap[part] : 1024;

		while (cap <= off)
			cap *= 2;
		v->body[part] =
			realloc(v->body[part], (size_t)cap * sizeof(char *));
		assert_non_null(v->body[part]);
		memset(v->body[part] + v->cap[part], 0,
		       (size_t)(cap - v->cap[part]) * sizeof(char *));
		v->cap[part] = cap;
	}
	if (v->body[part][off])
		fail_msg("offset %ld of %s-%d read twice", off, TOPIC, part);
	v->body[part][off] = strdup(body);
}

/* Reads the whole topic on broker i; returns the messages read. */
static long read_all(int i, struct seen *v)
{
	struct tc c;
	char status[256], line[256], body[256], command[128];
	long sub, n = 0;

	memset(v, 0, sizeof(*v));
	assert_int_equal(tc_connect(&c, cl.tbs[i].port), 0);
	snprintf(command, sizeof(command), "SUBS " TOPIC " check-%d", i + 1);
	assert_int_equal(tc_cmd(&c, command, status, sizeof(status), NULL, 0),
			 0);
	if (sscanf(status, "OK %ld", &sub) != 1)
		fail_msg("broker %d: %s: %s", i + 1, command, status);
	snprintf(command, sizeof(command), "CONS " TOPIC " %ld 0", sub);
	tc_send(&c, command);
	for (;;) {
		long part, off, len;

		if (tc_line(&c, line, sizeof(line)) < 0)
			fail_msg("broker %d: CONS ended early", i + 1);
		if (strncmp(line, "OK", 2) == 0)
			break;
		if (sscanf(line, "MSG %ld %ld %ld", &part, &off, &len) != 3 ||
		    part < 0 || part >= NPARTS || off < 0)
			fail_msg("broker %d: CONS: %s", i + 1, line);
		assert_true(tc_line(&c, body, sizeof(body)) >= 0);
		view_put(v, (int)part, off, body);
		n++;
	}
	tc_close(&c);
	return n;
}

static void view_free(struct seen *v)
{
	for (int p = 0; p < NPARTS; p++) {
		for (long o = 0; o < v->cap[p]; o++)
			free(v->body[p][o]);
		free(v->body[p]);
	}
	memset(v, 0, sizeof(*v));
}

/* Checks broker i's view against what was acknowledged; returns 1 when
 * every acknowledged message is there (0: maybe not caught up yet). */
static int check_view(int i, struct seen *v, int final)
{
	for (int k = 0; k < NPUB; k++)
		for (uint32_t s = 0; s < pubs[k].next; s++)
			pubs[k].msgs[s].seen = 0;
	for (int part = 0; part < NPARTS; part++) {
		for (long off = 0; off < v->cap[part]; off++) {
			const char *b = v->body[part][off];
			int k;
			unsigned s;

			if (!b)
				continue;
			if (sscanf(b, "p%d-%u", &k, &s) != 2 || k < 0 ||
			    k >= NPUB || s >= pubs[k].next)
				fail_msg("broker %d: %s-%d offset %ld holds "
					 "\"%s\", never sent",
					 i + 1, TOPIC, part, off, b);
			if (++pubs[k].msgs[s].seen > 1)
				fail_msg("broker %d: \"%s\" stored twice",
					 i + 1, b);
			if (pubs[k].msgs[s].state == S_ACKED &&
			    (pubs[k].msgs[s].part != part ||
			     pubs[k].msgs[s].off != off))
				fail_msg("broker %d: \"%s\" acknowledged at "
					 "%d:%ld, stored at %d:%ld",
					 i + 1, b, pubs[k].msgs[s].part,
					 pubs[k].msgs[s].off, part, off);
		}
	}
	for (int k = 0; k < NPUB; k++)
		for (uint32_t s = 0; s < pubs[k].next; s++)
			if (pubs[k].msgs[s].state == S_ACKED &&
			    !pubs[k].msgs[s].seen) {
				if (final)
					fail_msg("broker %d: acknowledged "
						 "\"p%d-%u\" (%d:%ld) missing",
						 i + 1, k, s,
						 pubs[k].msgs[s].part,
						 pubs[k].msgs[s].off);
				return 0;
			}
	return 1;
}

static void check_order(void)
{
	for (int k = 0; k < NPUB; k++) {
		long last[NPARTS];

		for (int p = 0; p < NPARTS; p++)
			last[p] = -1;
		for (uint32_t s = 0; s < pubs[k].next; s++) {
			struct msg *m = &pubs[k].msgs[s];

			if (m->state != S_ACKED)
				continue;
			if (m->off <= last[m->part])
				fail_msg("publisher %d: p%d-%u acknowledged at "
					 "%d:%ld, after an earlier message at "
					 "%ld",
					 k + 1, k, s, m->part, m->off,
					 last[m->part]);
			last[m->part] = m->off;
		}
	}
}

static void compare_views(int i, const struct seen *v)
{
	for (int p = 0; p < NPARTS; p++)
		for (long o = 0; o < v->cap[p] && o < first_view.cap[p]; o++)
			if (v->body[p][o] && first_view.body[p][o] &&
			    strcmp(v->body[p][o], first_view.body[p][o]) != 0)
				fail_msg(
					"%s-%d offset %ld: \"%s\" on broker 1, "
					"\"%s\" on broker %d",
					TOPIC, p, o, first_view.body[p][o],
					v->body[p][o], i + 1);
}

/* ------------------------------------------------------------ the test */

static void test_failover_under_fire(void **state)
{
	unsigned failovers = env_uint("KQ_FAILOVERS", 10);
	unsigned stop_secs = env_uint("KQ_STOP_SECONDS", 10);
	char status[256];
	double worst = 0;
	uint64_t acked = 0, failed = 0, unknown = 0;

	(void)state;
	tcl_cmd(&cl, 0, "CRTP " TOPIC " 3 replicas=3", status, sizeof(status),
		NULL, 0);
	assert_string_equal(status, "OK " TOPIC " 3");
	t0 = tb_now();
	for (int i = 0; i < NPUB; i++) {
		pubs[i].idx = i;
		pubs[i].fd = -1;
		pubs[i].msgs = calloc(MAX_MSGS, sizeof(struct msg));
		assert_non_null(pubs[i].msgs);
	}
	publish_for(1.0);
	for (unsigned r = 0; r < failovers; r++) {
		kill_and_restart(busiest_leader());
		publish_for(0.5);
		if (r == failovers / 3 && stop_secs)
			stop_and_continue(busiest_leader(), stop_secs);
		if (r == (2 * failovers) / 3)
			cut_broker_3();
	}
	if (!failovers) {
		stop_and_continue(busiest_leader(), stop_secs);
		cut_broker_3();
	}
	publish_for(1.0);
	check_alive();
	/* Answers still on their way are awaited. */
	draining = 1;
	for (int t = 0; t < 400; t++) {
		int busy = 0;

		for (int i = 0; i < NPUB; i++)
			busy += pubs[i].n > 0 && pubs[i].fd >= 0;
		if (!busy)
			break;
		publish_for(0.05);
	}
	for (int i = 0; i < NPUB; i++) {
		acked += pubs[i].acked;
		failed += pubs[i].failed;
		unknown += pubs[i].unknown;
		if (pubs[i].worst_gap > worst)
			worst = pubs[i].worst_gap;
		if (pubs[i].fd >= 0)
			close(pubs[i].fd);
		pubs[i].fd = -1;
	}
	print_message("%u kills, 1 SIGSTOP, 1 cut; %llu acknowledged, %llu "
		      "answered ERR, %llu lost with their connection; worst "
		      "publish gap %.3f s\n",
		      failovers, (unsigned long long)acked,
		      (unsigned long long)failed, (unsigned long long)unknown,
		      worst);
	assert_true(acked > 0);
	if (pubs[2].acked_in_cut)
		fail_msg("broker 3 acknowledged %llu messages while cut off",
			 (unsigned long long)pubs[2].acked_in_cut);
	check_order();
	for (int i = 0; i < TCL_N; i++) {
		struct seen v;
		double end = tb_now() + 15;
		int done = 0;

		/* A replica may still be catching up. */
		while (!done) {
			read_all(i, &v);
			done = check_view(i, &v, tb_now() > end);
			if (!done) {
				view_free(&v);
				usleep(100000);
			}
		}
		if (i == 0)
			first_view = v;
		else {
			compare_views(i, &v);
			view_free(&v);
		}
	}
	view_free(&first_view);
	for (int i = 0; i < NPUB; i++) {
		free(pubs[i].msgs);
		pubs[i].msgs = NULL;
	}
}

/* A leader whose group stops on a storage error while its followers
 * sleep (here: retention cannot record its restart point, every
 * fdatasync of that broker failing) hands them an election: its broker
 * still answers keepalives, so nothing else would wake them, and the
 * partition would have no leader until that broker restarts. */
static void test_leader_stops_while_asleep(void **state)
{
	char status[256], command[600], body[400];
	int lead, other, now_lead = 0;
	double end;

	(void)state;
	tcl_cmd(&cl, 0, "CRTP ret 1 replicas=3 retention.ms=3000", status,
		sizeof(status), NULL, 0);
	assert_string_equal(status, "OK ret 1");
	/* Led by its first replica, so that no hand-over is due. */
	end = tb_now() + 30;
	do {
		int first = 0;
		const char *r;

		tcl_cmd(&cl, 0, "DESC ret", status, sizeof(status), body,
			sizeof(body));
		lead = atoi(strstr(body, " LEADER ")
				    ? strstr(body, " LEADER ") + 8
				    : "0");
		r = strstr(body, " REPLICAS ");
		first = r ? atoi(r + 10) : -1;
		if (lead > 0 && lead == first)
			break;
		usleep(100000);
	} while (tb_now() < end);
	assert_true(lead > 0);
	other = lead % TCL_N; /* index of another broker */
	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	/* A few segments of 4 KiB, old enough for retention in 3 s. */
	for (int k = 0; k < 40; k++) {
		snprintf(command, sizeof(command),
			 "PUBS ret {\"n\":%d,\"b\":\"%.300s\"}", k, body);
		tcl_cmd(&cl, lead - 1, command, status, sizeof(status), NULL,
			0);
		assert_int_equal(strncmp(status, "OK", 2), 0);
	}
	/* Idle: the group sleeps on every broker.  Then the leader's disk
	 * fails, before retention comes due. */
	usleep(1500000);
	tb_flag(&cl.tbs[lead - 1], "failsync", 1);
	end = tb_now() + 30;
	for (;;) {
		char log[65536];

		tb_read_log(&cl.tbs[lead - 1], log, sizeof(log));
		if (strstr(log, "group ret-0: recording the retention point "
				"failed"))
			break;
		if (tb_now() > end)
			fail_msg("broker %d: retention never failed:\n%s", lead,
				 log);
		usleep(100000);
	}
	/* Another broker takes the partition, and a publish through any
	 * broker but the sick one is stored. */
	end = tb_now() + 20;
	do {
		snprintf(command, sizeof(command), "PUBS ret {\"after\":1}");
		tcl_cmd(&cl, other, command, status, sizeof(status), NULL, 0);
		if (strncmp(status, "OK", 2) == 0)
			break;
		usleep(200000);
	} while (tb_now() < end);
	if (strncmp(status, "OK", 2) != 0)
		fail_msg("20 s after broker %d's group stopped, a publish "
			 "through broker %d: %s",
			 lead, other + 1, status);
	{
		char log[65536];

		/* Its followers were asleep: they were asked. */
		tb_read_log(&cl.tbs[lead - 1], log, sizeof(log));
		assert_non_null(strstr(log, "group ret-0: stopped while "
					    "leading"));
	}
	tcl_desc(&cl, other, "ret", 0, &(long){0}, &(long){0}, &now_lead);
	assert_true(now_lead > 0 && now_lead != lead);
	tb_flag(&cl.tbs[lead - 1], "failsync", 0);
}

/* Whether broker i answers PING within `secs`. */
static int answers_within(int i, double secs)
{
	struct tc c;
	struct pollfd pfd;
	char line[64];
	int ok;

	if (tc_connect(&c, cl.tbs[i].port) != 0)
		return 0;
	tc_send(&c, "PING");
	pfd.fd = c.fd;
	pfd.events = POLLIN;
	ok = poll(&pfd, 1, (int)(secs * 1000)) == 1 &&
	     tc_line(&c, line, sizeof(line)) >= 0 &&
	     strcmp(line, "OK PONG") == 0;
	tc_close(&c);
	return ok;
}

/* An election's durable save of term and vote leaves the loop free: a
 * follower whose disk holds every flush still answers its clients while
 * it votes (its vote waits for the flush).  Thousands of elections at
 * once, after a broker died, once held the loop for seconds. */
static void test_votes_never_hold_the_loop(void **state)
{
	char status[256];
	int lead, voter, slow = 0;
	double end;

	(void)state;
	tcl_cmd(&cl, 0, "CRTP hsv 8 replicas=3", status, sizeof(status), NULL,
		0);
	assert_string_equal(status, "OK hsv 8");
	for (int p = 0; p < 8; p++)
		assert_true(tcl_partition_leader(&cl, "hsv", p, 30) > 0);
	lead = tcl_partition_leader(&cl, "hsv", 0, 30);
	voter = lead % TCL_N; /* an index other than lead's */
	tb_flag(&cl.tbs[voter], "holdsync", 1);
	stopped = lead - 1;
	kill(cl.tbs[lead - 1].pid, SIGSTOP);
	/* The followers of the stopped leader's groups campaign within a
	 * few seconds, and the held voter saves term and vote. */
	end = tb_now() + 12;
	while (tb_now() < end) {
		if (!answers_within(voter, 1.5))
			slow++;
		usleep(100000);
	}
	tb_flag(&cl.tbs[voter], "holdsync", 0);
	kill(cl.tbs[lead - 1].pid, SIGCONT);
	stopped = -1;
	{
		char log[65536];

		tb_read_log(&cl.tbs[voter], log, sizeof(log));
		if (slow)
			fail_msg("broker %d left PING unanswered for 1.5 s %d "
				 "times while its flushes were held:\n%s",
				 voter + 1, slow, log);
	}
	/* Released, the partitions are led again. */
	for (int p = 0; p < 8; p++)
		assert_true(tcl_partition_leader(&cl, "hsv", p, 30) > 0);
}

/* Each test starts from nothing a test before it left, passed or not. */
static void reset(void)
{
	for (int i = 0; i < NPUB; i++) {
		/* msgs is set, with fd, only while a test publishes. */
		if (pubs[i].msgs != NULL && pubs[i].fd >= 0)
			close(pubs[i].fd);
		free(pubs[i].msgs);
	}
	memset(pubs, 0, sizeof(pubs));
	memset(&cl, 0, sizeof(cl));
	cut_from = cut_until = -1;
	stopped = -1;
	draining = 0;
	t0 = 0;
}

static int setup(void **state)
{
	(void)state;
	reset();
	snprintf(cl.extra, sizeof(cl.extra),
		 "\"topics\": {\"retention_check_ms\": 100}");
	cl.segment_bytes = 1 << 20;
	tcl_setup(&cl);
	tcl_start_all(&cl);
	return 0;
}

/* Three brokers of 4 KiB segments, each able to fail its syncs. */
static int setup_sick(void **state)
{
	(void)state;
	reset();
	snprintf(cl.extra, sizeof(cl.extra),
		 "\"topics\": {\"retention_check_ms\": 100}");
	cl.syncfaults = 1;
	tcl_setup(&cl);
	tcl_start_all(&cl);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < TCL_N; i++)
		if (cl.tbs[i].pid > 0)
			kill(cl.tbs[i].pid, SIGCONT);
	tcl_teardown(&cl);
	return 0;
}

static int write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	int ok = f && fputs(text, f) >= 0;

	if (f && fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -1;
}

/* A user namespace where this process is root, and a network namespace
 * in it. */
static int own_namespaces(void)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
		return -1;
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
	if (write_file("/proc/self/uid_map", map) != 0)
		return -1;
	if (write_file("/proc/self/setgroups", "deny") != 0)
		return -1;
	snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
	return write_file("/proc/self/gid_map", map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_failover_under_fire, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_leader_stops_while_asleep,
						setup_sick, teardown),
		cmocka_unit_test_setup_teardown(test_votes_never_hold_the_loop,
						setup_sick, teardown),
	};

	/* A network namespace of its own: the nft rules and the brokers'
	 * loopback are this test's alone.  Without root, a user namespace
	 * gives the rights over it. */
	if (unshare(CLONE_NEWNET) != 0 && own_namespaces() != 0) {
		fprintf(stderr,
			"test_failover: cannot make a network namespace: %s "
			"(needs root, or user namespaces)\n",
			strerror(errno));
		return 1;
	}
	if (system("ip link set lo up") != 0 ||
	    system("nft list tables >/dev/null") != 0) {
		fprintf(stderr, "test_failover: needs ip (iproute2) and nft "
				"(nftables)\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
