/* Integration tests that drive outside programs: a real `telnet` client
 * under tmux, and the example partitioner built against the SDK installed
 * by `make install`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#ifndef KQ_SRCDIR
#define KQ_SRCDIR "."
#endif

static struct tb tb;
static char session[64];

static int teardown(void **state)
{
	char cmd[256];

	if (session[0]) {
		snprintf(cmd, sizeof(cmd), "tmux -L %s kill-server 2>/dev/null",
			 session);
		if (system(cmd) != 0)
			session[0] = '\0';
		session[0] = '\0';
	}
	tb_cleanup(&tb);
	return 0;
}

/* The tmux pane's text. */
static void capture(char *out, size_t outlen)
{
	char cmd[256];
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "tmux -L %s capture-pane -p -t %s -S -200",
		 session, session);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	pclose(p);
}

/* Waits (up to 20 s) until the pane shows `text`. */
static void wait_for(const char *text)
{
	char screen[65536];

	for (int i = 0; i < 400; i++) {
		capture(screen, sizeof(screen));
		if (strstr(screen, text))
			return;
		usleep(50000);
	}
	fail_msg("the telnet pane never showed \"%s\":\n%s", text, screen);
}

static void type(const char *line)
{
	tb_sh("tmux -L %s send-keys -t %s -l '%s' && "
	      "tmux -L %s send-keys -t %s Enter",
	      session, session, line, session, session);
}

static void test_real_telnet_client(void **state)
{
	int st;

	tb_setup(&tb, NULL);
	assert_int_equal(tb_start(&tb, &st), 0);
	snprintf(session, sizeof(session), "kq-telnet-%d", (int)getpid());
	/* A private tmux server: nothing else on the machine can end it. */
	/* The pane outlives telnet so its last words can be read. */
	tb_sh("tmux -L %s new-session -d -s %s -x 160 -y 60 "
	      "'telnet 127.0.0.1 %d' \\; set-option -t %s remain-on-exit on",
	      session, session, tb.port, session);
	wait_for("Escape character");
	type("PING");
	wait_for("OK PONG");
	type("CRTP demo 2");
	wait_for("OK demo 2");
	type("PUBS demo {\"Key\":\"124\",\"Body\":\"Hello World!\"}");
	wait_for("OK 0 0");
	type("PUBS demo plain words, typed by hand");
	wait_for("OK 0 1");
	type("SUBS demo readers");
	wait_for("OK 1 0,1");
	type("CONS demo 1 0");
	wait_for("MSG 0 1 26");
	wait_for("plain words, typed by hand");
	wait_for("OK 2");
	type("NOPE");
	wait_for("ERR UNKNOWN");
	type("QUIT");
	wait_for("OK BYE");
	wait_for("Connection closed by foreign host");
	assert_int_equal(tb_stop(&tb), 0);
}

/* Installs the SDK into a staging root, builds the example partitioner
 * with nothing but pkg-config, and sees messages placed by it. */
static void test_out_of_tree_partitioner(void **state)
{
	char extra[1024], line[256], pc[512];
	struct tc c;
	FILE *p;
	int st;

	tb_setup(&tb, NULL);
	tb_sh("make -s install DESTDIR='%s/root' >'%s/install.log' 2>&1",
	      tb.dir, tb.dir);
	snprintf(extra, sizeof(extra),
		 "find '%s/root' -name kafkaesque.pc | head -1", tb.dir);
	p = popen(extra, "r");
	assert_non_null(p);
	assert_non_null(fgets(pc, sizeof(pc), p));
	pclose(p);
	pc[strcspn(pc, "\n")] = '\0';
	*strrchr(pc, '/') = '\0';
	tb_sh("cp -r '%s/examples/partitioner' '%s/example' && "
	      "PKG_CONFIG_PATH='%s' PKG_CONFIG_SYSROOT_DIR='%s/root' "
	      "make -s -C '%s/example' >'%s/example.log' 2>&1",
	      KQ_SRCDIR, tb.dir, pc, tb.dir, tb.dir, tb.dir);
	snprintf(extra, sizeof(extra), "\"plugin_path\": [\"%s/example\"]",
		 tb.dir);
	tb_write_config(&tb, extra);
	/* The harness's plugins section names keyhash and roundrobin; add
	 * firstbyte to the list. */
	tb_sh("sed -i 's/\"roundrobin\"\\]/\"roundrobin\", \"firstbyte\"]/' "
	      "'%s'",
	      tb.config);
	assert_int_equal(tb_start(&tb, &st), 0);
	assert_int_equal(tc_connect(&c, tb.port), 0);
	assert_int_equal(tc_cmd(&c, "CRTP t 4 partitioner=firstbyte", line,
				sizeof(line), NULL, 0),
			 0);
	assert_string_equal(line, "OK t 4");
	/* 'A' is 65: partition 1; 'B' 66: partition 2; keyless "c..." 99:
	 * partition 3. */
	tc_cmd(&c, "PUBS t {\"Key\":\"A\"}", line, sizeof(line), NULL, 0);
	assert_string_equal(line, "OK 1 0");
	tc_cmd(&c, "PUBS t {\"Key\":\"Bob\"}", line, sizeof(line), NULL, 0);
	assert_string_equal(line, "OK 2 0");
	tc_cmd(&c, "PUBS t carrots", line, sizeof(line), NULL, 0);
	assert_string_equal(line, "OK 3 0");
	tc_close(&c);
	assert_int_equal(tb_stop(&tb), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_real_telnet_client, teardown),
		cmocka_unit_test_teardown(test_out_of_tree_partitioner,
					  teardown),
	};

	return cmocka_run_group_tests_name("external", tests, NULL, NULL);
}
