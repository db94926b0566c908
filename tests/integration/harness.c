#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef KQ_BUILDDIR
#define KQ_BUILDDIR "."
#endif

const char *tb_telnet_extra = "";
int tb_nofile;

static void die(const char *what)
{
	fprintf(stderr, "harness: %s: %s\n", what, strerror(errno));
	abort();
}

static const char *broker_path(void)
{
	const char *env = getenv("KQ_BROKER");

	return env && *env ? env : KQ_BUILDDIR "/kafkaesqued";
}

int tb_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0)
		die("socket");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		die("bind");
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

void tb_write_config(struct tb *tb, const char *extra)
{
	FILE *f = fopen(tb->config, "w");

	if (!f)
		die("config");
	fprintf(f,
		"{\"broker\": {\"id\": 1, \"data_dir\": \"%s\"},\n"
		" \"plugins\": {\"transport\": \"telnet\", \"partitioner\": "
		"[\"keyhash\", \"roundrobin\"], \"storage\": \"segment\", "
		"\"consensus\": \"local\"},\n"
		" \"telnet\": {\"host\": \"127.0.0.1\", \"port\": "
		"%d%s%s}%s%s}\n",
		tb->dir, tb->port, *tb_telnet_extra ? ", " : "",
		tb_telnet_extra, extra && *extra ? ",\n " : "",
		extra ? extra : "");
	fclose(f);
}

void tb_setup(struct tb *tb, const char *extra)
{
	tb_setup_empty(tb);
	tb_write_config(tb, extra);
}

void tb_start_checked(struct tb *tb)
{
	int status = 0;

	if (tb_start(tb, &status) != 0) {
		char log[8192];

		tb_read_log(tb, log, sizeof(log));
		fail_msg("broker in %s did not start (exit %d):\n%s", tb->dir,
			 status, log);
	}
}

void tb_setup_started(struct tb *tb, const char *extra)
{
	tb_setup(tb, extra);
	tb_start_checked(tb);
}

void tb_setup_empty(struct tb *tb)
{
	char tmpl[] = "/tmp/kq-test-XXXXXX";

	memset(tb, 0, sizeof(*tb));
	if (!mkdtemp(tmpl))
		die("mkdtemp");
	snprintf(tb->dir, sizeof(tb->dir), "%s", tmpl);
	snprintf(tb->config, sizeof(tb->config), "%s/config.json", tb->dir);
	snprintf(tb->log, sizeof(tb->log), "%s/broker.log", tb->dir);
	tb->port = tb_free_port();
}

void tb_write_raw(struct tb *tb, const char *json)
{
	FILE *f = fopen(tb->config, "w");

	if (!f)
		die("config");
	fputs(json, f);
	fclose(f);
}

static pid_t spawn(const char *const *args, const char *log)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
			close(fd);
		}
		if (tb_nofile > 0) {
			struct rlimit rl = {(rlim_t)tb_nofile,
					    (rlim_t)tb_nofile};

			setrlimit(RLIMIT_NOFILE, &rl);
		}
		execv(args[0], (char *const *)args);
		fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

static int try_connect(int port)
{
	struct sockaddr_in sa;
	/* Not inherited by brokers started later: a client connection a
	 * broker process also holds would never close. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int tb_start(struct tb *tb, int *status)
{
	const char *args[] = {broker_path(), "-config", tb->config, NULL};
	int st, fd;

	tb->pid = spawn(args, tb->log);
	/* Up to 20 s: a broker under sanitizers recovering data is slow. */
	for (int i = 0; i < 2000; i++) {
		if (waitpid(tb->pid, &st, WNOHANG) == tb->pid) {
			tb->pid = 0;
			if (status)
				*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			return -1;
		}
		fd = try_connect(tb->port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		usleep(10000);
	}
	fprintf(stderr, "harness: broker did not listen on %d\n", tb->port);
	tb_kill9(tb);
	return -1;
}

int tb_start_syncfaults(struct tb *tb, int *status)
{
	const char *was = getenv("ASAN_OPTIONS");
	char *saved = was ? strdup(was) : NULL;
	char flag[600], hold[600], preload[600], asan[1024];
	int rv;

	snprintf(flag, sizeof(flag), "%s/failsync", tb->dir);
	snprintf(hold, sizeof(hold), "%s/holdsync", tb->dir);
	snprintf(preload, sizeof(preload), "%s/.libs/failsync.so",
		 KQ_TEST_PLUGINDIR);
	/* A sanitized broker wants its runtime first; this one is not. */
	snprintf(asan, sizeof(asan), "%s%sverify_asan_link_order=0",
		 saved ? saved : "", saved ? ":" : "");
	setenv("KQ_FAILSYNC_FILE", flag, 1);
	setenv("KQ_HOLDSYNC_FILE", hold, 1);
	setenv("LD_PRELOAD", preload, 1);
	setenv("ASAN_OPTIONS", asan, 1);
	rv = tb_start(tb, status);
	unsetenv("LD_PRELOAD");
	unsetenv("KQ_FAILSYNC_FILE");
	unsetenv("KQ_HOLDSYNC_FILE");
	if (saved)
		setenv("ASAN_OPTIONS", saved, 1);
	else
		unsetenv("ASAN_OPTIONS");
	free(saved);
	return rv;
}

void tb_flip_byte(const char *path, long pos)
{
	int fd = open(path, O_RDWR);
	unsigned char b;

	if (fd < 0 || pread(fd, &b, 1, pos) != 1)
		die("flip: read");
	b ^= 0x5a;
	if (pwrite(fd, &b, 1, pos) != 1)
		die("flip: write");
	close(fd);
}

void tb_flag(const struct tb *tb, const char *name, int on)
{
	char path[600];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tb->dir, name);
	if (!on) {
		if (unlink(path) != 0)
			die("unlink flag");
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		die("create flag");
	close(fd);
}

int tb_run_args(const char *const *args, char *out, size_t outlen)
{
	char log[] = "/tmp/kq-run-XXXXXX";
	const char *full[32];
	int fd = mkstemp(log), st, n = 0;
	pid_t pid;

	if (fd < 0)
		die("mkstemp");
	close(fd);
	full[n++] = broker_path();
	for (; *args && n < 31; args++)
		full[n++] = *args;
	full[n] = NULL;
	pid = spawn(full, log);
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid");
	fd = open(log, O_RDONLY);
	n = fd >= 0 ? (int)read(fd, out, outlen - 1) : 0;
	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	unlink(log);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int tb_stop(struct tb *tb)
{
	int st;

	if (tb->pid <= 0)
		return -1;
	kill(tb->pid, SIGTERM);
	if (waitpid(tb->pid, &st, 0) != tb->pid)
		die("waitpid");
	tb->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void tb_kill9(struct tb *tb)
{
	if (tb->pid <= 0)
		return;
	kill(tb->pid, SIGKILL);
	waitpid(tb->pid, NULL, 0);
	tb->pid = 0;
}

void tb_cleanup(struct tb *tb)
{
	char cmd[400];

	tb_kill9(tb);
	if (!tb->dir[0] || getenv("KQ_KEEP_TEST_DIRS"))
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tb->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "harness: could not remove %s\n", tb->dir);
	tb->dir[0] = '\0';
}

void tb_read_log(const struct tb *tb, char *out, size_t outlen)
{
	int fd = open(tb->log, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, out, outlen - 1) : 0;

	out[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
}

int tc_connect(struct tc *c, int port)
{
	int one = 1;

	c->len = 0;
	c->fd = try_connect(port);
	if (c->fd >= 0)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return c->fd >= 0 ? 0 : -1;
}

void tc_close(struct tc *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void tc_send_raw(struct tc *c, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t n = write(c->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

void tc_send(struct tc *c, const char *line)
{
	tc_send_raw(c, line, strlen(line));
	tc_send_raw(c, "\r\n", 2);
}

static int fill(struct tc *c)
{
	struct pollfd p = {.fd = c->fd, .events = POLLIN};
	ssize_t n;

	if (c->len == sizeof(c->buf))
		return -1;
	if (poll(&p, 1, 10000) <= 0)
		return -1;
	n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	if (n <= 0)
		return -1;
	c->len += (size_t)n;
	return 0;
}

int tc_line(struct tc *c, char *out, size_t outlen)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);

		if (nl) {
			size_t n = (size_t)(nl - c->buf), used = n + 1;

			if (n && c->buf[n - 1] == '\r')
				n--;
			if (n >= outlen)
				n = outlen - 1;
			memcpy(out, c->buf, n);
			out[n] = '\0';
			memmove(c->buf, c->buf + used, c->len - used);
			c->len -= used;
			return (int)n;
		}
		if (fill(c) != 0)
			return -1;
	}
}

int tc_bytes(struct tc *c, char *out, size_t n)
{
	while (c->len < n && n <= sizeof(c->buf))
		if (fill(c) != 0)
			return -1;
	if (c->len < n)
		return -1;
	memcpy(out, c->buf, n);
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
	return 0;
}

int tc_cmd(struct tc *c, const char *cmd, char *out, size_t outlen, char *data,
	   size_t datalen)
{
	size_t used = 0;
	char line[8192];

	tc_send(c, cmd);
	if (data && datalen)
		data[0] = '\0';
	for (;;) {
		if (tc_line(c, line, sizeof(line)) < 0)
			return -1;
		if (strncmp(line, "OK", 2) == 0 ||
		    strncmp(line, "ERR ", 4) == 0) {
			snprintf(out, outlen, "%s", line);
			return 0;
		}
		if (data && used < datalen) {
			int n = snprintf(data + used, datalen - used, "%s%s",
					 used ? "\n" : "", line);

			if (n > 0)
				used += (size_t)n;
		}
	}
}

int tb_match(const char *pattern, const char *line)
{
	while (*pattern) {
		if (strncmp(pattern, "{N}", 3) == 0) {
			if (*line < '0' || *line > '9')
				return 0;
			while (*line >= '0' && *line <= '9')
				line++;
			pattern += 3;
		} else if (strncmp(pattern, "{*}", 3) == 0) {
			pattern += 3;
			for (const char *l = line;; l++) {
				if (tb_match(pattern, l))
					return 1;
				if (!*l)
					return 0;
			}
		} else if (*pattern++ != *line++) {
			return 0;
		}
	}
	return *line == '\0';
}

long tb_rss_kb(pid_t pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

int tb_open_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

double tb_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void tb_sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	if (st != 0)
		fail_msg("command failed (%d): %s", st, cmd);
}

int tb_stat(const struct tb *tbs, int n, int i, unsigned *up, int *leader)
{
	struct tc conn;
	char status[256], data[4096], *line, *save = NULL;
	int lines = 0;

	*up = 0;
	*leader = 0;
	if (tc_connect(&conn, tbs[i].port) != 0)
		return -1;
	if (tc_cmd(&conn, "STAT", status, sizeof(status), data, sizeof(data)) !=
		    0 ||
	    strncmp(status, "OK", 2) != 0) {
		tc_close(&conn);
		return -1;
	}
	tc_close(&conn);
	for (line = strtok_r(data, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		int id, port, k = 0;
		char state[8];

		if (sscanf(line, "BROKER %d 127.0.0.1:%d %7s%n", &id, &port,
			   state, &k) != 3 ||
		    id < 1 || id > n || port != tbs[id - 1].port)
			return -1;
		lines++;
		if (strcmp(state, "up") == 0)
			*up |= 1u << id;
		if (strstr(line + k, " META-LEADER") != NULL)
			*leader = *leader ? -1 : id;
	}
	return lines == n ? 0 : -1;
}
