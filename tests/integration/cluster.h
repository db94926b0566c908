/* A three-broker cluster fixture for integration tests: real kafkaesqued
 * processes with consensus `raft` on free loopback ports, and the queries
 * tests make of them (STAT agreement, DESC ranges, one-shot commands).
 * Each test program owns one `struct tcl` at a time. */
#ifndef KQ_TEST_CLUSTER_H
#define KQ_TEST_CLUSTER_H

#include "harness.h"

#define TCL_N 3

struct tcl {
	struct tb tbs[TCL_N];
	int raft_ports[TCL_N];
	/* JSON members spliced into the top-level object of every config,
	 * after the defaults (e.g. "\"topics\": {...}"); "" for none.  The
	 * defaults: raft snapshot_every 5, cache_bytes 2048; segment
	 * segment_bytes 4096; topics retention_check_ms 100. */
	char extra[1024];
	/* Leave those defaults out: the brokers run on their own (and
	 * segment_bytes and segment_extra are unused). */
	int broker_defaults;
	/* Spliced into the cluster section after "peers" ("" for none). */
	char cluster_extra[512];
	/* Spliced into the segment section after segment_bytes. */
	char segment_extra[256];
	/* The segment section's segment_bytes; 0 for 4096. */
	int segment_bytes;
	/* Start the brokers with failing syncs at hand (tb_flag() with
	 * "failsync" on a broker's tb, see tb_start_syncfaults()). */
	int syncfaults;
	/* Authenticate the cluster port: each broker reads its own copy of
	 * one secret, <its folder>/cluster.secret (mode 0600). */
	int secret;
};

/* Picks ports and folders and writes the configs; starts nothing. */
void tcl_setup(struct tcl *c);
/* Rewrites broker i's config from c->extra and c->cluster_extra. */
void tcl_write_config(struct tcl *c, int i);
/* Writes broker i's cluster.secret: `secret`, or the cluster's own when
 * NULL (what tcl_setup() writes with c->secret). */
void tcl_write_secret(struct tcl *c, int i, const char *secret);
/* Starts broker i; fails the test with its log when it exits. */
void tcl_start(struct tcl *c, int i);
/* Starts all three and waits until they agree on a metadata leader;
 * returns it. */
int tcl_start_all(struct tcl *c);
/* Kills every broker still running and removes the folders. */
void tcl_teardown(struct tcl *c);

/* 1 while broker i's process is running (not exited, not reaped). */
int tcl_alive(struct tcl *c, int i);

/* STAT on broker i: the number of brokers it sees up and its
 * META-LEADER (0 none, -1 several).  -1 when it did not answer. */
int tcl_stat(struct tcl *c, int i, int *up, int *leader);
/* Waits until every running broker sees `want_up` up (any when < 0) and
 * all name one META-LEADER; returns it, or 0 at the deadline. */
int tcl_agree(struct tcl *c, int want_up, double timeout);
/* Waits until every broker in `who` (a bit 1 << i per index, running or
 * not) sees exactly the brokers of `up` (a bit 1 << id per id; 0 for any)
 * up and they name one META-LEADER; returns it, or 0 at the deadline. */
int tcl_agree_view(struct tcl *c, unsigned who, unsigned up, double timeout);
/* Sends one command to broker i on a new connection: the status line
 * into status, data lines (joined by '\n') into data when non-NULL. */
void tcl_cmd(struct tcl *c, int i, const char *command, char *status,
	     size_t len, char *data, size_t dlen);
/* DESC START and END of partition `part` of `topic` on broker i (-1 when
 * not shown); the leader it names into *leader when non-NULL. */
void tcl_desc(struct tcl *c, int i, const char *topic, int part, long *start,
	      long *end, int *leader);
/* Waits until some broker names a leader of partition `part`; returns
 * its id, or 0 at the deadline. */
int tcl_partition_leader(struct tcl *c, const char *topic, int part,
			 double timeout);
/* Sends `len` bytes to broker i's cluster port on a new connection; 1
 * when the broker then closes it within 5 s. */
int tcl_port_closes(struct tcl *c, int i, const void *data, size_t len);

#endif /* KQ_TEST_CLUSTER_H */
