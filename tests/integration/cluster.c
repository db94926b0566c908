/* The three-broker fixture: configs, start and stop, and the queries
 * every cluster test makes. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cluster.h"

static int port_taken(const struct tcl *c, int port, int n)
{
	for (int k = 0; k < n; k++)
		if (c->tbs[k].port == port || c->raft_ports[k] == port)
			return 1;
	return 0;
}

static const char secret[] = "dGhyZWUgYnJva2VycyBvbiBsb29wYmFjaw==\n";

void tcl_write_secret(struct tcl *c, int i, const char *text)
{
	char path[400];
	size_t len;
	int fd;

	if (!text)
		text = secret;
	len = strlen(text);
	snprintf(path, sizeof(path), "%s/cluster.secret", c->tbs[i].dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

void tcl_write_config(struct tcl *c, int i)
{
	char json[8192], peers[1024], secret_file[512] = "", tuned[512] = "";
	const char *tail = c->extra;
	size_t off = 0;

	for (int k = 0; k < TCL_N; k++)
		off += (size_t)snprintf(
			peers + off, sizeof(peers) - off,
			"%s{\"id\": %d, \"host\": \"127.0.0.1\", \"port\": %d, "
			"\"raft_port\": %d}",
			k ? ", " : "", k + 1, c->tbs[k].port, c->raft_ports[k]);
	if (c->secret)
		snprintf(secret_file, sizeof(secret_file),
			 "\"secret_file\": \"%s/cluster.secret\", ",
			 c->tbs[i].dir);
	if (!c->broker_defaults) {
		snprintf(tuned, sizeof(tuned),
			 " \"raft\": {\"snapshot_every\": 5, "
			 "\"cache_bytes\": 2048},\n"
			 " \"segment\": {\"segment_bytes\": %d%s%s},\n",
			 c->segment_bytes ? c->segment_bytes : 4096,
			 c->segment_extra[0] ? ", " : "", c->segment_extra);
		if (!tail[0])
			tail = "\"topics\": {\"retention_check_ms\": 100}";
	}
	snprintf(json, sizeof(json),
		 "{\"broker\": {\"id\": %d, \"data_dir\": \"%s\"},\n"
		 " \"plugins\": {\"transport\": \"telnet\", \"partitioner\": "
		 "[\"keyhash\", \"roundrobin\"], \"storage\": \"segment\", "
		 "\"consensus\": \"raft\"},\n"
		 " \"telnet\": {\"host\": \"127.0.0.1\", \"port\": %d},\n"
		 "%s \"cluster\": {%s\"peers\": [%s]%s%s}%s%s}\n",
		 i + 1, c->tbs[i].dir, c->tbs[i].port, tuned, secret_file,
		 peers, c->cluster_extra[0] ? ", " : "", c->cluster_extra,
		 tail[0] ? ",\n " : "", tail);
	tb_write_raw(&c->tbs[i], json);
}

void tcl_setup(struct tcl *c)
{
	for (int i = 0; i < TCL_N; i++) {
		tb_setup_empty(&c->tbs[i]);
		while (port_taken(c, c->tbs[i].port, i))
			c->tbs[i].port = tb_free_port();
		do
			c->raft_ports[i] = tb_free_port();
		while (c->raft_ports[i] == c->tbs[i].port ||
		       port_taken(c, c->raft_ports[i], i));
	}
	for (int i = 0; i < TCL_N; i++) {
		if (c->secret)
			tcl_write_secret(c, i, NULL);
		tcl_write_config(c, i);
	}
}

void tcl_start(struct tcl *c, int i)
{
	int st = 0;

	if ((c->syncfaults ? tb_start_syncfaults(&c->tbs[i], &st)
			   : tb_start(&c->tbs[i], &st)) != 0) {
		char log[8192];

		tb_read_log(&c->tbs[i], log, sizeof(log));
		fail_msg("broker %d did not start (exit %d):\n%s", i + 1, st,
			 log);
	}
}

int tcl_start_all(struct tcl *c)
{
	int leader;

	for (int i = 0; i < TCL_N; i++)
		tcl_start(c, i);
	leader = tcl_agree(c, TCL_N, 15);
	assert_true(leader > 0);
	return leader;
}

void tcl_teardown(struct tcl *c)
{
	for (int i = 0; i < TCL_N; i++)
		tb_cleanup(&c->tbs[i]);
}

int tcl_alive(struct tcl *c, int i)
{
	int st;

	if (c->tbs[i].pid <= 0)
		return 0;
	if (waitpid(c->tbs[i].pid, &st, WNOHANG) == c->tbs[i].pid) {
		c->tbs[i].pid = 0;
		print_message("broker %d exited: %s %d\n", i + 1,
			      WIFSIGNALED(st) ? "signal" : "status",
			      WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		return 0;
	}
	return 1;
}

int tcl_stat(struct tcl *c, int i, int *up, int *leader)
{
	unsigned mask;
	int rv = tb_stat(c->tbs, TCL_N, i, &mask, leader);

	*up = __builtin_popcount(mask);
	return rv;
}

/* Waits until every broker in `who` (a bit per index) sees `n_up`
 * brokers up (any when < 0), exactly those of `up` when it is not 0, and
 * they name one META-LEADER; returns it, or 0 at the deadline. */
static int agree(struct tcl *c, unsigned who, int n_up, unsigned up,
		 double timeout)
{
	double end = tb_now() + timeout;

	do {
		int agreed = 0, ok = 1;

		for (int i = 0; i < TCL_N && ok; i++) {
			unsigned seen;
			int leader;

			if (!(who & (1u << i)))
				continue;
			if (tb_stat(c->tbs, TCL_N, i, &seen, &leader) != 0 ||
			    (n_up >= 0 && __builtin_popcount(seen) != n_up) ||
			    (up && seen != up) || leader <= 0 ||
			    (agreed && leader != agreed))
				ok = 0;
			else
				agreed = leader;
		}
		if (ok && agreed)
			return agreed;
		usleep(20000);
	} while (tb_now() < end);
	return 0;
}

int tcl_agree(struct tcl *c, int want_up, double timeout)
{
	unsigned running = 0;

	for (int i = 0; i < TCL_N; i++)
		if (c->tbs[i].pid > 0)
			running |= 1u << i;
	return agree(c, running, want_up, 0, timeout);
}

int tcl_agree_view(struct tcl *c, unsigned who, unsigned up, double timeout)
{
	return agree(c, who, -1, up, timeout);
}

void tcl_cmd(struct tcl *c, int i, const char *command, char *status,
	     size_t len, char *data, size_t dlen)
{
	struct tc conn;

	assert_int_equal(tc_connect(&conn, c->tbs[i].port), 0);
	assert_int_equal(tc_cmd(&conn, command, status, len, data, dlen), 0);
	tc_close(&conn);
}

void tcl_desc(struct tcl *c, int i, const char *topic, int part, long *start,
	      long *end, int *leader)
{
	char command[300], status[256], data[8192], want[64];
	const char *p;
	long s = -1, e = -1;
	int l = 0;

	snprintf(command, sizeof(command), "DESC %s", topic);
	snprintf(want, sizeof(want), "PARTITION %d LEADER ", part);
	tcl_cmd(c, i, command, status, sizeof(status), data, sizeof(data));
	p = strstr(data, want);
	if (p) {
		if (sscanf(p + strlen(want), "%d", &l) != 1)
			l = 0;
		p = strstr(p, " START ");
		if (p && sscanf(p, " START %ld END %ld", &s, &e) != 2)
			s = e = -1;
	}
	*start = s;
	*end = e;
	if (leader)
		*leader = l;
}

int tcl_partition_leader(struct tcl *c, const char *topic, int part,
			 double timeout)
{
	double end = tb_now() + timeout;

	do {
		for (int i = 0; i < TCL_N; i++) {
			long s, e;
			int l = 0;

			if (c->tbs[i].pid <= 0)
				continue;
			tcl_desc(c, i, topic, part, &s, &e, &l);
			if (l > 0)
				return l;
		}
		usleep(20000);
	} while (tb_now() < end);
	return 0;
}

int tcl_port_closes(struct tcl *c, int i, const void *data, size_t len)
{
	struct tc conn;
	struct pollfd pfd;
	char buf[512];
	double end = tb_now() + 5;
	int closed = 0;

	assert_int_equal(tc_connect(&conn, c->raft_ports[i]), 0);
	/* The broker may close before it has read everything. */
	if (send(conn.fd, data, len, MSG_NOSIGNAL) < 0 && errno != EPIPE &&
	    errno != ECONNRESET)
		fail_msg("send: %s", strerror(errno));
	pfd.fd = conn.fd;
	pfd.events = POLLIN;
	while (!closed && tb_now() < end)
		if (poll(&pfd, 1, 100) > 0)
			/* The broker's own hello may come first. */
			closed = recv(conn.fd, buf, sizeof(buf), 0) <= 0;
	tc_close(&conn);
	return closed;
}
