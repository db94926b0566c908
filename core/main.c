/* kafkaesqued: the broker daemon. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "broker.h"
#include "conf.h"
#include "log.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kafkaesqued [-config=FILE | -c FILE] [-brokerId=N] "
		"[-port=N]\n"
		"                   [-raftport=N] [-datadir=DIR] [-h] "
		"[-version]\n"
		"\n"
		"  -config=FILE, -c FILE  JSON configuration (default: a "
		"standalone broker\n"
		"                         on 127.0.0.1:8080 with data under "
		"./kafkaesque-1)\n"
		"  -brokerId=N            broker id (overrides broker.id)\n"
		"  -port=N                client port (overrides the first "
		"transport's port)\n"
		"  -raftport=N            cluster port (overrides "
		"cluster.raft_port)\n"
		"  -datadir=DIR           parent of kafkaesque-<id>/ "
		"(overrides broker.data_dir)\n"
		"  -h                     this help\n"
		"  -version               print the version and exit\n");
}

static int parse_int(const char *flag, const char *v, int min, int max,
		     int *out)
{
	char *end = NULL;
	long n = 0;

	errno = 0;
	/* Digits only: strtol alone would take " 80" and "+80". */
	if (*v >= '0' && *v <= '9')
		n = strtol(v, &end, 10);
	if (!end || errno || *end || n < min || n > max) {
		fprintf(stderr,
			"kafkaesqued: %s: expected an integer %d..%d, "
			"got \"%s\"\n",
			flag, min, max, v);
		return -1;
	}
	*out = (int)n;
	return 0;
}

/* Go-style flags, as the original broker took them: -name=value,
 * -name value, and the same with two dashes. Returns 1 to exit 0, -1 on
 * error, 0 to run. */
static int parse_args(int argc, char **argv, const char **config,
		      struct kq__overrides *ov)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i], *eq, *val;
		char name[32];
		size_t len;

		if (arg[0] != '-') {
			fprintf(stderr, "kafkaesqued: unexpected argument %s\n",
				arg);
			return -1;
		}
		arg += arg[1] == '-' ? 2 : 1;
		eq = strchr(arg, '=');
		len = eq ? (size_t)(eq - arg) : strlen(arg);
		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, arg, len);
		name[len] = '\0';
		if (!strcmp(name, "h") || !strcmp(name, "help")) {
			usage(stdout);
			return 1;
		}
		if (!strcmp(name, "version")) {
			printf("kafkaesqued %s (plugin ABI %d)\n",
			       PACKAGE_VERSION, KQ_PLUGIN_ABI);
			return 1;
		}
		if (strcmp(name, "config") && strcmp(name, "c") &&
		    strcmp(name, "brokerId") && strcmp(name, "port") &&
		    strcmp(name, "raftport") && strcmp(name, "datadir")) {
			fprintf(stderr,
				"kafkaesqued: unknown flag -%s (try -h)\n",
				name);
			return -1;
		}
		if (eq) {
			val = eq + 1;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			fprintf(stderr, "kafkaesqued: -%s needs a value\n",
				name);
			return -1;
		}
		if (!strcmp(name, "config") || !strcmp(name, "c"))
			*config = val;
		else if (!strcmp(name, "datadir"))
			ov->data_dir = val;
		else if (!strcmp(name, "brokerId") &&
			 parse_int("-brokerId", val, 1, INT_MAX,
				   &ov->broker_id))
			return -1;
		else if (!strcmp(name, "port") &&
			 parse_int("-port", val, 1, 65535, &ov->port))
			return -1;
		else if (!strcmp(name, "raftport") &&
			 parse_int("-raftport", val, 1, 65535, &ov->raft_port))
			return -1;
	}
	return 0;
}

/* Descriptors: the soft limit up to the hard one, since storage and
 * clients both need them; the storage module bounds its own share. */
static void raise_nofile(void)
{
	struct rlimit rl;
	rlim_t soft;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	soft = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			rl.rlim_cur = soft;
	}
	kq__info("open files: soft limit %llu (was %llu), hard limit %llu",
		 (unsigned long long)rl.rlim_cur, (unsigned long long)soft,
		 (unsigned long long)rl.rlim_max);
}

int main(int argc, char **argv)
{
	struct kq__overrides ov = {0};
	struct kq__config cfg;
	struct kq_broker *b = NULL;
	const char *config = NULL;
	char err[1024];
	uv_loop_t loop;
	int rv;

	rv = parse_args(argc, argv, &config, &ov);
	if (rv != 0)
		return rv > 0 ? 0 : 2;
	if (kq__config_load(config, &ov, &cfg, err, sizeof(err)) != 0) {
		kq__error("%s", err);
		return 2;
	}
	kq__log_set_level(cfg.log_level);
	if (cfg.log_file) {
		rv = kq__log_file_open(cfg.log_file);
		if (rv != 0) {
			kq__error("broker.log_file: cannot open %s: %s",
				  cfg.log_file, strerror(-rv));
			kq__config_free(&cfg);
			return 1;
		}
	}
	/* Until the broker's handler is in place a hangup must not kill a
	 * starting broker. */
	signal(SIGHUP, SIG_IGN);
	raise_nofile();
	/* A peer that hangs up mid-write is an error of that write, not a
	 * reason to die. */
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	rv = kq__broker_open(&loop, &cfg, &b);
	if (rv == 0) {
		uv_run(&loop, UV_RUN_DEFAULT);
		rv = b->exit_code;
	} else {
		rv = 1;
	}
	kq__broker_close(b);
	if (uv_loop_close(&loop) != 0 && rv == 0)
		kq__warn("event loop closed with handles still open");
	kq__config_free(&cfg);
	return rv;
}
