/* Runs the scripted protocol sessions of tests/integration/sessions/
 * against a real broker, one cmocka test per script.
 *
 * Script lines:
 *   > TEXT           send TEXT and CRLF
 *   < PATTERN        the next line must match ({N} a number, {*} anything)
 *   @raw BYTES       send BYTES (C escapes: \r \n \t \\ \xHH), no CRLF
 *   @bytes BYTES     the next bytes received must be exactly BYTES
 *   @closed          the broker must have closed the connection
 *   @conn N          use connection N (0-7), connecting when needed
 *   @close           close the current connection
 *   @restart         stop the broker gracefully (exit 0) and start it
 *   @kill9           kill the broker with SIGKILL and start it
 *   @config JSON     extra top-level config keys (before any command)
 *   @telnet JSON     extra keys of the telnet section (same)
 *   # ...            comment */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "harness.h"

#ifndef KQ_SESSIONS_DIR
#define KQ_SESSIONS_DIR "tests/integration/sessions"
#endif

#define MAX_CONNS 8

struct run {
	const char *path;
	struct tb tb;
	struct tc conns[MAX_CONNS];
	int cur;
	int started;
	char config[2048];
	char telnet[512];
};

static size_t unescape(const char *in, char *out)
{
	size_t n = 0;

	while (*in) {
		if (*in != '\\') {
			out[n++] = *in++;
			continue;
		}
		in++;
		switch (*in) {
		case 'r':
			out[n++] = '\r';
			in++;
			break;
		case 'n':
			out[n++] = '\n';
			in++;
			break;
		case 't':
			out[n++] = '\t';
			in++;
			break;
		case '\\':
			out[n++] = '\\';
			in++;
			break;
		case 'x': {
			char hex[3] = {in[1], in[2], 0};

			out[n++] = (char)strtol(hex, NULL, 16);
			in += 3;
			break;
		}
		default: out[n++] = *in++;
		}
	}
	return n;
}

static void copy_arg(char *dst, size_t size, const char *src)
{
	size_t n = strlen(src);

	assert_true(n < size);
	memcpy(dst, src, n + 1);
}

static void start(struct run *r)
{
	int status = 0;

	if (r->started)
		return;
	tb_telnet_extra = r->telnet;
	tb_write_config(&r->tb, r->config);
	if (tb_start(&r->tb, &status) != 0) {
		char log[4096];

		tb_read_log(&r->tb, log, sizeof(log));
		fail_msg("%s: broker did not start (exit %d):\n%s", r->path,
			 status, log);
	}
	r->started = 1;
}

static struct tc *conn(struct run *r)
{
	struct tc *c = &r->conns[r->cur];

	start(r);
	if (c->fd < 0 && tc_connect(c, r->tb.port) != 0)
		fail_msg("%s: cannot connect", r->path);
	return c;
}

static void drop_conns(struct run *r)
{
	for (int i = 0; i < MAX_CONNS; i++)
		tc_close(&r->conns[i]);
	r->cur = 0;
}

static void run_line(struct run *r, const char *line, int lineno)
{
	char buf[1 << 16], got[1 << 16];
	size_t n;

	if (line[0] == '>' && line[1] == ' ') {
		tc_send(conn(r), line + 2);
	} else if (line[0] == '<' && line[1] == ' ') {
		if (tc_line(conn(r), got, sizeof(got)) < 0)
			fail_msg("%s:%d: expected \"%s\", got nothing", r->path,
				 lineno, line + 2);
		if (!tb_match(line + 2, got))
			fail_msg("%s:%d: expected \"%s\", got \"%s\"", r->path,
				 lineno, line + 2, got);
	} else if (strncmp(line, "@raw ", 5) == 0) {
		n = unescape(line + 5, buf);
		tc_send_raw(conn(r), buf, n);
	} else if (strncmp(line, "@bytes ", 7) == 0) {
		n = unescape(line + 7, buf);
		if (tc_bytes(conn(r), got, n) != 0 || memcmp(got, buf, n) != 0)
			fail_msg("%s:%d: expected bytes %s", r->path, lineno,
				 line + 7);
	} else if (strcmp(line, "@closed") == 0) {
		if (tc_line(conn(r), got, sizeof(got)) >= 0)
			fail_msg("%s:%d: expected the connection closed, got "
				 "\"%s\"",
				 r->path, lineno, got);
		tc_close(conn(r));
	} else if (strncmp(line, "@conn ", 6) == 0) {
		r->cur = atoi(line + 6) % MAX_CONNS;
	} else if (strcmp(line, "@close") == 0) {
		tc_close(&r->conns[r->cur]);
	} else if (strcmp(line, "@restart") == 0) {
		int st;

		start(r);
		drop_conns(r);
		st = tb_stop(&r->tb);
		if (st != 0)
			fail_msg("%s:%d: graceful stop exited %d", r->path,
				 lineno, st);
		r->started = 0;
		start(r);
	} else if (strcmp(line, "@kill9") == 0) {
		start(r);
		drop_conns(r);
		tb_kill9(&r->tb);
		r->started = 0;
		start(r);
	} else if (strncmp(line, "@config ", 8) == 0) {
		copy_arg(r->config, sizeof(r->config), line + 8);
	} else if (strncmp(line, "@telnet ", 8) == 0) {
		copy_arg(r->telnet, sizeof(r->telnet), line + 8);
	} else {
		fail_msg("%s:%d: cannot parse script line \"%s\"", r->path,
			 lineno, line);
	}
}

static int setup(void **state)
{
	struct run *r = calloc(1, sizeof(*r));

	r->path = *state;
	for (int i = 0; i < MAX_CONNS; i++)
		r->conns[i].fd = -1;
	tb_setup(&r->tb, NULL);
	*state = r;
	return 0;
}

/* Runs after a failed assertion too: no broker outlives its test. */
static int teardown(void **state)
{
	struct run *r = *state;

	drop_conns(r);
	tb_cleanup(&r->tb);
	tb_telnet_extra = "";
	free(r);
	return 0;
}

static void run_script(void **state)
{
	struct run *r = *state;
	char line[1 << 16];
	int lineno = 0;
	FILE *f;

	f = fopen(r->path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		size_t n = strlen(line);

		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		run_line(r, line, lineno);
	}
	fclose(f);
	drop_conns(r);
	if (r->started) {
		int st = tb_stop(&r->tb);

		if (st != 0) {
			char log[8192];

			tb_read_log(&r->tb, log, sizeof(log));
			fail_msg("%s: broker exit status %d on stop:\n%s",
				 r->path, st, log);
		}
		r->started = 0;
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
	const char *dir = getenv("KQ_SESSIONS_DIR");
	struct CMUnitTest *tests;
	char **paths = NULL;
	size_t n = 0, i;
	struct dirent *e;
	DIR *d;
	int rv;

	if (!dir)
		dir = KQ_SESSIONS_DIR;
	d = opendir(dir);
	if (!d) {
		fprintf(stderr, "no session folder %s\n", dir);
		return 1;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len < 5 || strcmp(e->d_name + len - 4, ".kqs") != 0)
			continue;
		paths = realloc(paths, (n + 1) * sizeof(*paths));
		paths[n] = malloc(strlen(dir) + len + 2);
		sprintf(paths[n], "%s/%s", dir, e->d_name);
		n++;
	}
	closedir(d);
	qsort(paths, n, sizeof(*paths), by_name);
	tests = calloc(n, sizeof(*tests));
	for (i = 0; i < n; i++) {
		tests[i].name = strrchr(paths[i], '/') + 1;
		tests[i].test_func = run_script;
		tests[i].initial_state = paths[i];
		tests[i].setup_func = setup;
		tests[i].teardown_func = teardown;
	}
	rv = _cmocka_run_group_tests("sessions", tests, n, NULL, NULL);
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(tests);
	return rv;
}
