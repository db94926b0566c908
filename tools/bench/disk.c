/* kafkaesque-bench disk: what the disk under a data folder gives, measured
 * in the same run as a broker benchmark so that latency can be stated
 * against it (the speed of these disks changes by the hour).
 *
 * - fdatasync of 100-byte appends, from 1, 2 and 3 threads at once, each
 *   on a file of its own: a replicated write waits for two such syncs on
 *   one machine, and three brokers on one disk run three;
 * - 100-byte appends spread over many files, made durable together by
 *   one syncfs(2) every so many, against the same appends and syncs to
 *   one file: how much the disk writes per append, which bounds a
 *   publish spread over many partitions.
 *
 * Every file is made in a new folder inside the one given, so that no
 * file of the user's is touched, and the folder is removed at the end,
 * also when a call fails or SIGINT/SIGTERM stops the run. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <uv.h>

#include "disk.h"
#include "hist.h"

#define APPEND	  100
#define MAX_FILES 100000

struct disk_opts {
	double secs;   /* per fdatasync figure */
	long files;    /* spread figure */
	long per_sync; /* appends per syncfs */
	long appends;  /* spread figure */
};

/* The run's own folder, inside the one given. */
static char work[4096];
static char payload[APPEND];
static volatile sig_atomic_t stopped;

static void on_signal(int sig)
{
	(void)sig;
	stopped = 1;
}

static void path_of(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", work, name);
}

/* Reports a failed call in one line: what, on which file, why. */
static int fail(const char *call, const char *name, int err)
{
	char path[4200];

	path_of(path, sizeof(path), name);
	fprintf(stderr, "kafkaesque-bench disk: %s %s: %s\n", call, path,
		strerror(err ? err : EIO));
	return -1;
}

static int make_file(const char *name)
{
	char path[4200];

	path_of(path, sizeof(path), name);
	return open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
}

static void remove_file(const char *name)
{
	char path[4200];

	path_of(path, sizeof(path), name);
	unlink(path);
}

/* 100 bytes at off; a short write counts as EIO. */
static int append_at(int fd, off_t off)
{
	ssize_t n = pwrite(fd, payload, sizeof(payload), off);

	if (n == (ssize_t)sizeof(payload))
		return 0;
	return n < 0 ? errno : EIO;
}

struct stream {
	pthread_t thread;
	char name[32];
	int fd;
	uint64_t until;
	const char *failed; /* the call that failed, or NULL */
	int err;
	struct bench_hist hist;
};

static void *stream_run(void *arg)
{
	struct stream *s = arg;
	off_t off = 0;

	while (!stopped && uv_hrtime() < s->until) {
		uint64_t t0 = uv_hrtime();

		if ((s->err = append_at(s->fd, off)) != 0) {
			s->failed = "pwrite";
			break;
		}
		if (fdatasync(s->fd) != 0) {
			s->err = errno;
			s->failed = "fdatasync";
			break;
		}
		off += APPEND;
		bench_hist_add(&s->hist, uv_hrtime() - t0);
	}
	return NULL;
}

/* n threads append and fdatasync at once for secs; prints the p50/p99
 * of all their syncs together. */
static int sync_streams(const struct disk_opts *o, int n)
{
	static struct stream s[3];
	struct bench_hist all;
	int made = 0, started = 0, rv = 0;

	bench_hist_init(&all);
	for (; made < n; made++) {
		memset(&s[made], 0, sizeof(s[made]));
		bench_hist_init(&s[made].hist);
		snprintf(s[made].name, sizeof(s[made].name), "stream%d", made);
		s[made].fd = make_file(s[made].name);
		if (s[made].fd < 0) {
			rv = fail("open", s[made].name, errno);
			goto out;
		}
	}
	for (; started < n; started++) {
		int err;

		s[started].until = uv_hrtime() + (uint64_t)(o->secs * 1e9);
		err = pthread_create(&s[started].thread, NULL, stream_run,
				     &s[started]);
		if (err != 0) {
			rv = fail("pthread_create for", s[started].name, err);
			stopped = 1; /* the others stop at once */
			break;
		}
	}
	for (int i = 0; i < started; i++) {
		pthread_join(s[i].thread, NULL);
		if (s[i].failed && rv == 0)
			rv = fail(s[i].failed, s[i].name, s[i].err);
		bench_hist_merge(&all, &s[i].hist);
	}
	if (rv == 0 && !stopped)
		printf("fdatasync, %d stream%s: p50 %.1f us, p99 %.1f us (%llu "
		       "syncs)\n",
		       n, n > 1 ? "s at once" : "",
		       bench_hist_percentile(&all, 50) / 1e3,
		       bench_hist_percentile(&all, 99) / 1e3,
		       (unsigned long long)all.n);
out:
	for (int i = 0; i < made; i++) {
		close(s[i].fd);
		remove_file(s[i].name);
	}
	return rv;
}

/* Sectors written to device dev, from /proc/diskstats; -1 when it is not
 * listed there (tmpfs, a network file system). */
static long long sectors_written(dev_t dev)
{
	FILE *f = fopen("/proc/diskstats", "r");
	unsigned maj, min;
	char name[64];
	long long v[7];
	long long out = -1;

	if (f == NULL)
		return -1;
	/* major minor name, then reads, reads merged, sectors read, ms
	 * reading, writes, writes merged, sectors written (512 bytes). */
	while (fscanf(f, "%u %u %63s %lld %lld %lld %lld %lld %lld %lld%*[^\n]",
		      &maj, &min, name, &v[0], &v[1], &v[2], &v[3], &v[4],
		      &v[5], &v[6]) == 10)
		if (maj == major(dev) && min == minor(dev))
			out = v[6];
	fclose(f);
	return out;
}

/* Appends to nfiles files picked at random, a syncfs every per_sync;
 * prints appends per second and the device's bytes per append. */
static int spread(const struct disk_opts *o, long nfiles)
{
	int *fds = calloc((size_t)nfiles, sizeof(*fds));
	off_t *ends = calloc((size_t)nfiles, sizeof(*ends));
	char name[32];
	struct stat st;
	uint64_t t0, rng = 88172645463325252ull;
	long long s0, s1;
	long made = 0, i = 0, k = 0;
	int rv = -1, err;

	if (fds == NULL || ends == NULL) {
		fprintf(stderr, "kafkaesque-bench disk: out of memory\n");
		goto out;
	}
	if (stat(work, &st) != 0) {
		fail("stat", ".", errno);
		goto out;
	}
	for (; made < nfiles; made++) {
		snprintf(name, sizeof(name), "spread%ld", made);
		fds[made] = make_file(name);
		if (fds[made] < 0) {
			fail("open", name, errno);
			goto out;
		}
	}
	if (syncfs(fds[0]) != 0) {
		fail("syncfs", "spread0", errno);
		goto out;
	}
	s0 = sectors_written(st.st_dev);
	t0 = uv_hrtime();
	for (; i < o->appends && !stopped; i++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		k = (long)(rng % (uint64_t)nfiles);
		if ((err = append_at(fds[k], ends[k])) != 0) {
			snprintf(name, sizeof(name), "spread%ld", k);
			fail("pwrite", name, err);
			goto out;
		}
		ends[k] += APPEND;
		if ((i + 1) % o->per_sync == 0 && syncfs(fds[0]) != 0) {
			fail("syncfs", "spread0", errno);
			goto out;
		}
	}
	if (stopped)
		goto out;
	if (syncfs(fds[0]) != 0) {
		fail("syncfs", "spread0", errno);
		goto out;
	}
	t0 = uv_hrtime() - t0;
	s1 = sectors_written(st.st_dev);
	printf("%ld file%s, a syncfs every %ld appends: %.0f appends/s", nfiles,
	       nfiles > 1 ? "s" : "", o->per_sync, o->appends / (t0 / 1e9));
	if (s0 >= 0 && s1 >= s0)
		printf(", %.1f KiB written per append",
		       (s1 - s0) * 512.0 / 1024 / o->appends);
	printf("\n");
	rv = 0;
out:
	for (long j = 0; j < made; j++) {
		close(fds[j]);
		snprintf(name, sizeof(name), "spread%ld", j);
		remove_file(name);
	}
	free(fds);
	free(ends);
	return rv;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kafkaesque-bench disk [options]\n"
		"\n"
		"What the disk under a folder gives: fdatasync of 100-byte\n"
		"appends from 1, 2 and 3 threads at once, then 100-byte\n"
		"appends spread over many files with a syncfs every so many,\n"
		"against the same appends to one file.\n"
		"\n"
		"  -D, --dir DIR         folder to write in (default .): the\n"
		"                        files go in a new folder there, "
		"removed\n"
		"                        at the end\n"
		"  -d, --duration SECS   seconds per fdatasync figure, up to "
		"3600\n"
		"                        (default 3)\n"
		"      --files N         files of the spread figure, up to %d\n"
		"                        (default 1000)\n"
		"      --per-sync N      appends per syncfs (default 64)\n"
		"  -n, --count N         appends of each spread figure, up to\n"
		"                        1000000000 (default 20000)\n"
		"      --help            this text\n",
		MAX_FILES);
}

/* A whole number in [1, max], or -1. */
static long parse_count(const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < 1 || v > max)
		return -1;
	return v;
}

/* One descriptor per spread file, and a few more. */
static int enough_descriptors(long files)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < (rlim_t)files + 16 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)files + 16) {
		fprintf(stderr,
			"kafkaesque-bench disk: --files %ld needs %ld open "
			"files; the limit is %llu\n",
			files, files + 16, (unsigned long long)rl.rlim_cur);
		return 0;
	}
	return 1;
}

int bench_disk_main(int argc, char **argv)
{
	static const struct option longs[] = {
		{"dir", required_argument, NULL, 'D'},
		{"duration", required_argument, NULL, 'd'},
		{"files", required_argument, NULL, 'f'},
		{"per-sync", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	struct disk_opts o = {3, 1000, 64, 20000};
	struct sigaction sa;
	const char *dir = ".";
	char *end;
	int c, rv = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "D:d:n:", longs, NULL)) != -1) {
		const char *flag = NULL;
		long *field = NULL, max = 0;

		switch (c) {
		case 'D': dir = optarg; break;
		case 'd':
			errno = 0;
			o.secs = strtod(optarg, &end);
			/* NaN fails both tests. */
			if (errno || end == optarg || *end != '\0' ||
			    !(o.secs > 0 && o.secs <= 3600)) {
				fprintf(stderr,
					"kafkaesque-bench disk: -d: expected "
					"seconds in (0, 3600], got \"%s\"\n",
					optarg);
				return 2;
			}
			break;
		case 'f':
			field = &o.files, max = MAX_FILES, flag = "--files";
			break;
		case 's':
			field = &o.per_sync, max = LONG_MAX,
			flag = "--per-sync";
			break;
		case 'n':
			field = &o.appends, max = 1000000000, flag = "-n";
			break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (field && (*field = parse_count(optarg, max)) < 0) {
			fprintf(stderr,
				"kafkaesque-bench disk: %s: expected a whole "
				"number in 1..%ld, got \"%s\"\n",
				flag, max, optarg);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"kafkaesque-bench disk: unexpected \"%s\" "
			"(--help lists the options)\n",
			argv[optind]);
		return 2;
	}
	if (!enough_descriptors(o.files))
		return 1;
	snprintf(work, sizeof(work), "%s/kq-bench-disk.XXXXXX", dir);
	if (mkdtemp(work) == NULL) {
		fprintf(stderr, "kafkaesque-bench disk: mkdtemp in %s: %s\n",
			dir, strerror(errno));
		return 1;
	}
	memset(payload, 'x', sizeof(payload));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("kafkaesque-bench disk: %s, %d-byte appends\n", dir, APPEND);
	fflush(stdout);
	for (int n = 1; n <= 3 && rv == 0 && !stopped; n++) {
		rv = sync_streams(&o, n);
		fflush(stdout);
	}
	if (rv == 0 && !stopped)
		rv = spread(&o, o.files);
	if (rv == 0 && !stopped)
		rv = spread(&o, 1);
	rmdir(work);
	if (stopped && rv == 0) {
		fprintf(stderr, "kafkaesque-bench disk: stopped by a signal\n");
		rv = -1;
	}
	return rv == 0 ? 0 : 1;
}
