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
 *   publish spread over many partitions. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "disk.h"
#include "hist.h"

#define APPEND 100

struct disk_opts {
	const char *dir;
	double secs;  /* per fdatasync figure */
	int files;    /* spread figure */
	int per_sync; /* appends per syncfs */
	long appends; /* spread figure */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int open_in(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
}

static void remove_in(const char *dir, const char *name)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
}

struct stream {
	pthread_t thread;
	int fd;
	uint64_t until;
	int err;
	struct bench_hist hist;
};

static void *stream_run(void *arg)
{
	struct stream *s = arg;
	char buf[APPEND];
	off_t off = 0;

	memset(buf, 'x', sizeof(buf));
	while (now_ns() < s->until) {
		uint64_t t0 = now_ns();

		if (pwrite(s->fd, buf, sizeof(buf), off) !=
			    (ssize_t)sizeof(buf) ||
		    fdatasync(s->fd) != 0) {
			s->err = errno;
			break;
		}
		off += sizeof(buf);
		bench_hist_add(&s->hist, now_ns() - t0);
	}
	return NULL;
}

/* n threads append and fdatasync at once for secs; prints the p50/p99
 * of all their syncs together. */
static int sync_streams(const struct disk_opts *o, int n)
{
	static struct stream s[3];
	struct bench_hist all;
	char name[32];
	int rv = 0;

	bench_hist_init(&all);
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "stream%d", i);
		memset(&s[i], 0, sizeof(s[i]));
		bench_hist_init(&s[i].hist);
		s[i].fd = open_in(o->dir, name);
		if (s[i].fd < 0) {
			fprintf(stderr, "kafkaesque-bench disk: %s/%s: %s\n",
				o->dir, name, strerror(errno));
			return -1;
		}
	}
	for (int i = 0; i < n; i++) {
		s[i].until = now_ns() + (uint64_t)(o->secs * 1e9);
		pthread_create(&s[i].thread, NULL, stream_run, &s[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(s[i].thread, NULL);
		close(s[i].fd);
		snprintf(name, sizeof(name), "stream%d", i);
		remove_in(o->dir, name);
		if (s[i].err) {
			fprintf(stderr, "kafkaesque-bench disk: %s\n",
				strerror(s[i].err));
			rv = -1;
		}
		for (size_t k = 0; k < BENCH_HIST_BUCKETS; k++)
			all.counts[k] += s[i].hist.counts[k];
		all.n += s[i].hist.n;
		all.sum += s[i].hist.sum;
		if (s[i].hist.max > all.max)
			all.max = s[i].hist.max;
		if (s[i].hist.min < all.min)
			all.min = s[i].hist.min;
	}
	printf("fdatasync, %d stream%s: p50 %.1f us, p99 %.1f us (%llu "
	       "syncs)\n",
	       n, n > 1 ? "s at once" : "",
	       bench_hist_percentile(&all, 50) / 1e3,
	       bench_hist_percentile(&all, 99) / 1e3,
	       (unsigned long long)all.n);
	return rv;
}

/* Sectors written to the device holding dir, from /proc/diskstats; -1
 * when it cannot be told (a device-mapper or network file system). */
static long long sectors_written(dev_t dev)
{
	FILE *f = fopen("/proc/diskstats", "r");
	unsigned maj, min;
	char name[64];
	long long v[7];
	long long out = -1;

	if (f == NULL)
		return -1;
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
static int spread(const struct disk_opts *o, int nfiles)
{
	int *fds = calloc((size_t)nfiles, sizeof(*fds));
	off_t *ends = calloc((size_t)nfiles, sizeof(*ends));
	char buf[APPEND], name[32];
	struct stat st;
	uint64_t t0, rng = 88172645463325252ull;
	long long s0, s1;
	int rv = -1, made = 0;

	memset(buf, 'x', sizeof(buf));
	if (fds == NULL || ends == NULL || stat(o->dir, &st) != 0)
		goto out;
	for (; made < nfiles; made++) {
		snprintf(name, sizeof(name), "spread%d", made);
		fds[made] = open_in(o->dir, name);
		if (fds[made] < 0)
			goto out;
	}
	if (syncfs(fds[0]) != 0)
		goto out;
	s0 = sectors_written(st.st_dev);
	t0 = now_ns();
	for (long i = 0; i < o->appends; i++) {
		int k;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		k = (int)(rng % (uint64_t)nfiles);
		if (pwrite(fds[k], buf, sizeof(buf), ends[k]) !=
		    (ssize_t)sizeof(buf))
			goto out;
		ends[k] += sizeof(buf);
		if ((i + 1) % o->per_sync == 0 && syncfs(fds[0]) != 0)
			goto out;
	}
	if (syncfs(fds[0]) != 0)
		goto out;
	t0 = now_ns() - t0;
	s1 = sectors_written(st.st_dev);
	printf("%d file%s, a syncfs every %d appends: %.0f appends/s", nfiles,
	       nfiles > 1 ? "s" : "", o->per_sync, o->appends / (t0 / 1e9));
	if (s0 >= 0 && s1 >= s0)
		printf(", %.1f KiB written per append",
		       (s1 - s0) * 512.0 / 1024 / o->appends);
	printf("\n");
	rv = 0;
out:
	if (rv != 0)
		fprintf(stderr, "kafkaesque-bench disk: %s: %s\n", o->dir,
			strerror(errno));
	for (int i = 0; i < made; i++) {
		close(fds[i]);
		snprintf(name, sizeof(name), "spread%d", i);
		remove_in(o->dir, name);
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
		"  -D, --dir DIR         folder to write in (default .); the\n"
		"                        files made are removed at the end\n"
		"  -d, --duration SECS   seconds per fdatasync figure (default "
		"3)\n"
		"      --files N         files of the spread figure (default "
		"1000)\n"
		"      --per-sync N      appends per syncfs (default 64)\n"
		"  -n, --count N         appends of each spread figure\n"
		"                        (default 20000)\n"
		"      --help            this text\n");
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
	struct disk_opts o = {".", 3, 1000, 64, 20000};
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "D:d:n:", longs, NULL)) != -1) {
		switch (c) {
		case 'D': o.dir = optarg; break;
		case 'd': o.secs = strtod(optarg, &end); break;
		case 'f': o.files = (int)strtol(optarg, &end, 10); break;
		case 's': o.per_sync = (int)strtol(optarg, &end, 10); break;
		case 'n': o.appends = strtol(optarg, &end, 10); break;
		case 'H': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (c != 'D' && (*end != '\0' || end == optarg)) {
			fprintf(stderr,
				"kafkaesque-bench disk: not a number: "
				"%s\n",
				optarg);
			return 2;
		}
	}
	if (optind < argc || o.secs <= 0 || o.secs > 3600 || o.files < 1 ||
	    o.files > 100000 || o.per_sync < 1 || o.appends < 1) {
		fprintf(stderr, "kafkaesque-bench disk: bad arguments "
				"(--help lists them)\n");
		return 2;
	}
	printf("kafkaesque-bench disk: %s, %d-byte appends\n", o.dir, APPEND);
	fflush(stdout);
	for (int n = 1; n <= 3; n++) {
		if (sync_streams(&o, n) != 0)
			return 1;
		fflush(stdout);
	}
	if (spread(&o, o.files) != 0 || spread(&o, 1) != 0)
		return 1;
	return 0;
}
