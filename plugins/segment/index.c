/* The in-memory sparse index and its file encoding. */
#include <errno.h>

#include "format.h"
#include "index.h"

int kq__seg_index_reserve(const struct kq_host *host, struct kq__seg_index *ix,
			  size_t more)
{
	size_t cap = ix->cap ? ix->cap : 64;
	struct kq__seg_ientry *e;

	if (ix->n + more <= ix->cap)
		return 0;
	while (cap < ix->n + more)
		cap *= 2;
	e = host->realloc(ix->e, cap * sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	ix->e = e;
	ix->cap = cap;
	return 0;
}

int kq__seg_index_push(const struct kq_host *host, struct kq__seg_index *ix,
		       uint64_t offset, uint64_t pos)
{
	int rv = kq__seg_index_reserve(host, ix, 1);

	if (rv != 0)
		return rv;
	ix->e[ix->n].offset = offset;
	ix->e[ix->n].pos = pos;
	ix->n++;
	return 0;
}

void kq__seg_index_free(const struct kq_host *host, struct kq__seg_index *ix)
{
	host->free(ix->e);
	ix->e = NULL;
	ix->n = ix->cap = ix->flushed = 0;
}

ssize_t kq__seg_index_find(const struct kq__seg_index *ix, uint64_t offset)
{
	size_t lo = 0, hi = ix->n;

	/* Invariant: entries below lo are <= offset, from hi on above. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ix->e[mid].offset <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (ssize_t)lo - 1;
}

int kq__seg_index_parse(const struct kq_host *host, struct kq__seg_index *ix,
			const uint8_t *buf, size_t len, uint64_t base,
			uint64_t log_size)
{
	size_t n, i;
	int rv;

	if (len < KQ__SEG_HDR_SIZE ||
	    kq__seg_header_check(buf, KQ__SEG_FILE_INDEX, base))
		return KQ_ECORRUPT;
	n = (len - KQ__SEG_HDR_SIZE) / KQ__SEG_IENTRY_SIZE;
	rv = kq__seg_index_reserve(host, ix, n);
	if (rv != 0)
		return rv;
	for (i = 0; i < n; i++) {
		const uint8_t *p =
			buf + KQ__SEG_HDR_SIZE + i * KQ__SEG_IENTRY_SIZE;
		uint64_t off = kq_get64le(p), pos = kq_get64le(p + 8);

		if (i == 0 ? (off < base || pos != KQ__SEG_HDR_SIZE)
			   : (off <= ix->e[i - 1].offset ||
			      pos <= ix->e[i - 1].pos))
			break;
		if (pos + KQ__SEG_REC_FIXED > log_size)
			break;
		ix->e[i].offset = off;
		ix->e[i].pos = pos;
	}
	ix->n = i;
	ix->flushed = i;
	if (i != n || (len - KQ__SEG_HDR_SIZE) % KQ__SEG_IENTRY_SIZE != 0)
		return KQ_ECORRUPT;
	return 0;
}

void kq__seg_index_encode(const struct kq__seg_index *ix, size_t from,
			  size_t to, uint8_t *dst)
{
	for (size_t i = from; i < to; i++) {
		kq_put64le(dst, ix->e[i].offset);
		kq_put64le(dst + 8, ix->e[i].pos);
		dst += KQ__SEG_IENTRY_SIZE;
	}
}
