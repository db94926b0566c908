/* Integration test harness: real kafkaesqued processes on free loopback
 * ports, and line-oriented clients speaking the text protocol. */
#ifndef KQ_TEST_HARNESS_H
#define KQ_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A broker process started by a test. */
struct tb {
	pid_t pid;
	int port;
	char dir[256];	  /* temporary folder: config, data, log */
	char config[300]; /* path of the config file */
	char log[300];	  /* the broker's stderr */
};

/* Extra keys for the telnet section, e.g. "\"max_line\": 64" ("" by
 * default). */
extern const char *tb_telnet_extra;

/* When above 0, brokers started by tb_start() and tb_run_args() run with
 * this limit of open descriptors (RLIMIT_NOFILE); 0 by default. */
extern int tb_nofile;

/* A free TCP port on 127.0.0.1 (bound and released). */
int tb_free_port(void);

/* Creates a temporary folder and writes a config into it: `extra` is
 * spliced into the default JSON object (may be NULL or ""), e.g.
 * "\"topics\": {\"default_partitions\": 4}". */
void tb_setup(struct tb *tb, const char *extra);

/* Rewrites the config with new extra sections (same folder and port). */
void tb_write_config(struct tb *tb, const char *extra);

/* Like tb_setup(), but writes no config: the test writes its own with
 * tb_write_raw() (a cluster member needs its own id and sections). */
void tb_setup_empty(struct tb *tb);

/* Writes `json` as tb's whole config file. */
void tb_write_raw(struct tb *tb, const char *json);

/* Starts the broker on tb's config; waits until it accepts connections.
 * Returns 0, or -1 when it exited first (its exit status in *status). */
int tb_start(struct tb *tb, int *status);

/* tb_start(); a broker that exits instead fails the test, its log in the
 * message. */
void tb_start_checked(struct tb *tb);

/* tb_setup() with `extra`, then tb_start_checked(). */
void tb_setup_started(struct tb *tb, const char *extra);

/* Like tb_start(), with tests/plugins/failsync.so preloaded: while the
 * file <tb->dir>/failsync exists fdatasync() fails with EIO, and while
 * <tb->dir>/holdsync exists it waits (see tb_flag()). */
int tb_start_syncfaults(struct tb *tb, int *status);

/* Flips the bits of the byte at `pos` of the file at `path` (damage). */
void tb_flip_byte(const char *path, long pos);

/* Creates (on 1) or removes (on 0) the file `name` in tb's folder. */
void tb_flag(const struct tb *tb, const char *name, int on);

/* Runs the broker with arbitrary arguments and waits for it to exit;
 * returns its exit status and copies its stderr into out. */
int tb_run_args(const char *const *args, char *out, size_t outlen);

/* SIGTERM and wait: returns the exit status (0 when graceful). */
int tb_stop(struct tb *tb);
/* SIGKILL and wait. */
void tb_kill9(struct tb *tb);
/* Removes the temporary folder. */
void tb_cleanup(struct tb *tb);
/* Reads the broker's log into out (NUL-terminated). */
void tb_read_log(const struct tb *tb, char *out, size_t outlen);

/* A client connection. */
struct tc {
	int fd;
	char buf[1 << 16];
	size_t len;
};

int tc_connect(struct tc *c, int port);
void tc_close(struct tc *c);
/* Sends bytes as given (no line ending added). */
void tc_send_raw(struct tc *c, const void *data, size_t len);
/* Sends one line, adding CRLF. */
void tc_send(struct tc *c, const char *line);
/* Reads one line (without CRLF) into out; waits up to 10 s. Returns its
 * length, or -1 on timeout or close. */
int tc_line(struct tc *c, char *out, size_t outlen);
/* Reads exactly n bytes. Returns 0 or -1. */
int tc_bytes(struct tc *c, char *out, size_t n);
/* Sends `cmd` and returns the status line in out (data lines skipped
 * into data when non-NULL, joined with '\n'). */
int tc_cmd(struct tc *c, const char *cmd, char *out, size_t outlen, char *data,
	   size_t datalen);

/* Seconds on the monotonic clock. */
double tb_now(void);

/* Runs a shell command made from fmt; fails the test when it does not
 * exit 0. */
void tb_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Resident memory of process pid in kB (-1 when unknown). */
/* STAT on broker i of the n in tbs: *up gets bit 1 << id of each broker
 * it counts up, *leader the META-LEADER (0 none, -1 more than one).
 * Returns 0, or -1 when it did not answer or a line is not one of the n
 * brokers at its port. */
int tb_stat(const struct tb *tbs, int n, int i, unsigned *up, int *leader);

long tb_rss_kb(pid_t pid);
/* Descriptors process pid has open (-1 when unknown). */
int tb_open_fds(pid_t pid);

/* Matches `line` against `pattern`, where "{N}" matches a decimal number
 * and "{*}" any text. Returns 1 on match. */
int tb_match(const char *pattern, const char *line);

#endif /* KQ_TEST_HARNESS_H */
