/* kafkaesque-bench: log-linear latency histogram. */
#include <string.h>

#include "hist.h"

static unsigned bucket_of(uint64_t v)
{
	unsigned msb, shift;

	if (v < BENCH_HIST_LINEAR)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	/* Keep the top 8 bits: the mantissa is 128..255. */
	shift = msb - 7;
	return BENCH_HIST_LINEAR + (shift - 1) * BENCH_HIST_SUB +
	       (unsigned)((v >> shift) - BENCH_HIST_SUB);
}

static uint64_t bucket_top(unsigned idx)
{
	unsigned shift;
	uint64_t m;

	if (idx < BENCH_HIST_LINEAR)
		return idx;
	shift = (idx - BENCH_HIST_LINEAR) / BENCH_HIST_SUB + 1;
	m = (idx - BENCH_HIST_LINEAR) % BENCH_HIST_SUB + BENCH_HIST_SUB;
	/* Wraps to UINT64_MAX for the very last bucket, which is right. */
	return ((m + 1) << shift) - 1;
}

void bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->counts[bucket_of(v)]++;
	h->n++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void bench_hist_merge(struct bench_hist *into, const struct bench_hist *h)
{
	for (size_t k = 0; k < BENCH_HIST_BUCKETS; k++)
		into->counts[k] += h->counts[k];
	into->n += h->n;
	into->sum += h->sum;
	if (h->min < into->min)
		into->min = h->min;
	if (h->max > into->max)
		into->max = h->max;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0;
	double want;

	if (!h->n)
		return 0;
	if (p >= 100.0)
		return h->max;
	/* Rounded up by hand so the tool needs no libm. */
	want = p / 100.0 * (double)h->n;
	rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			uint64_t top = bucket_top(i);

			if (top > h->max)
				top = h->max;
			if (top < h->min)
				top = h->min;
			return top;
		}
	}
	return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
	return h->n ? h->sum / (double)h->n : 0.0;
}
