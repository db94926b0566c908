/* kafkaesque-bench: a log-linear latency histogram.
 *
 * Values below 256 have one bucket each; above, every power of two is cut
 * into 128 equal buckets, so a reported value is within 1/128 (< 0.8 %)
 * of the true one.  The memory is fixed (about 58 KiB) however many
 * samples are recorded. */
#ifndef KQ_BENCH_HIST_H
#define KQ_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_LINEAR  256
#define BENCH_HIST_SUB	   128
#define BENCH_HIST_BUCKETS (BENCH_HIST_LINEAR + 56 * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t counts[BENCH_HIST_BUCKETS];
	uint64_t n;
	uint64_t min;
	uint64_t max;
	double sum;
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, uint64_t v);
/* Adds the samples of h to into; both are the caller's. */
void bench_hist_merge(struct bench_hist *into, const struct bench_hist *h);

/* The smallest recorded value v such that at least p percent of the
 * samples are <= v, rounded up to its bucket's upper edge and never above
 * the exact maximum.  0 when the histogram is empty. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);

double bench_hist_mean(const struct bench_hist *h);

#endif
