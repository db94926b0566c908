/* The log of the Raft core: a snapshot point, a stretch only the caller's
 * storage holds, and an in-memory cache of the newest entries. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/error.h>

#include "raft_int.h"

/* Entries asked of the read hook at once, whatever the byte bound. */
#define READ_MAX_ENTRIES 65536

static size_t cost(const struct kq__raft_entry *e)
{
	return (size_t)e->len + KQ__RAFT_ENTRY_OVERHEAD;
}

static void drop_cache(struct kq__raft_log *l)
{
	for (size_t i = 0; i < l->n; i++)
		kq__raft_buf_unref(l->e[l->head + i].data);
	l->head = 0;
	l->n = 0;
	l->bytes = 0;
}

void kq__raft_log_fini(struct kq__raft_log *l)
{
	drop_cache(l);
	free(l->e);
	kq__raft_buf_unref(l->snap.data);
	memset(l, 0, sizeof(*l));
}

uint64_t kq__raft_log_last(const struct kq__raft_log *l)
{
	return l->first + l->n - 1;
}

uint64_t kq__raft_log_last_term(const struct kq__raft_log *l)
{
	return l->n ? l->e[l->head + l->n - 1].term : l->prev_term;
}

static int hook_failed(struct kq__raft_log *l, int rv)
{
	if (!l->error)
		l->error = rv ? rv : KQ_EINTERNAL;
	return -1;
}

int kq__raft_log_term(struct kq__raft_log *l, uint64_t index, uint64_t *term)
{
	int rv;

	if (index == l->snap.index) {
		*term = l->snap.term;
		return 0;
	}
	if (index < l->snap.index || index > kq__raft_log_last(l))
		return -1;
	if (index >= l->first) {
		*term = l->e[l->head + (index - l->first)].term;
		return 0;
	}
	if (index == l->first - 1) {
		*term = l->prev_term;
		return 0;
	}
	if (!l->term_at)
		return hook_failed(l, KQ_EINTERNAL);
	rv = l->term_at(l->ctx, index, term);
	return rv ? hook_failed(l, rv) : 0;
}

bool kq__raft_log_match(struct kq__raft_log *l, uint64_t index, uint64_t term)
{
	uint64_t t = 0;

	return kq__raft_log_term(l, index, &t) == 0 && t == term;
}

struct kq__raft_entry *kq__raft_log_get(const struct kq__raft_log *l,
					uint64_t index)
{
	if (index < l->first || index > kq__raft_log_last(l) ||
	    index <= l->snap.index)
		return NULL;
	return &l->e[l->head + (index - l->first)];
}

/* Reads from..to (all below the cache) through the hook into out. */
static int read_stored(struct kq__raft_log *l, uint64_t from, uint64_t to,
		       size_t max_bytes, struct kq__raft_entry *out, size_t *n)
{
	int rv;

	*n = 0;
	if (!l->read)
		return KQ_EINTERNAL;
	rv = l->read(l->ctx, from, to, max_bytes, out, n);
	if (rv == 0 && (*n == 0 || *n > to - from + 1))
		rv = KQ_ECORRUPT;
	for (size_t i = 0; rv == 0 && i < *n; i++)
		if (out[i].index != from + i)
			rv = KQ_ECORRUPT;
	if (rv != 0) {
		for (size_t i = 0; i < *n; i++)
			kq__raft_buf_unref(out[i].data);
		*n = 0;
	}
	return rv;
}

int kq__raft_log_entries(struct kq__raft_log *l, uint64_t from, uint64_t to,
			 size_t max_bytes, struct kq__raft_entry **out,
			 size_t *n)
{
	struct kq__raft_entry *a;
	size_t k = 0, bytes = 0, room;
	int rv;

	*out = NULL;
	*n = 0;
	room = to - from + 1;
	if (room > READ_MAX_ENTRIES)
		room = READ_MAX_ENTRIES;
	a = malloc(room * sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (from < l->first) {
		uint64_t end = to < l->first - 1 ? to : l->first - 1;
		size_t got;

		if (end - from + 1 > room)
			end = from + room - 1;
		rv = read_stored(l, from, end, max_bytes, a, &got);
		if (rv != 0) {
			free(a);
			hook_failed(l, rv);
			return rv;
		}
		/* Keep what fits the bound (the hook may pass more). */
		while (k < got) {
			if (k && max_bytes && bytes + cost(&a[k]) > max_bytes)
				break;
			bytes += cost(&a[k]);
			k++;
		}
		for (size_t i = k; i < got; i++)
			kq__raft_buf_unref(a[i].data);
		if (k < got || from + k < l->first) {
			*out = a;
			*n = k;
			return 0;
		}
	}
	while (k < room && from + k <= to) {
		const struct kq__raft_entry *e = kq__raft_log_get(l, from + k);

		if (k && max_bytes && bytes + cost(e) > max_bytes)
			break;
		bytes += cost(e);
		a[k] = *e;
		kq__raft_buf_ref(e->data);
		k++;
	}
	*out = a;
	*n = k;
	return 0;
}

int kq__raft_log_append(struct kq__raft_log *l, const struct kq__raft_entry *e,
			size_t n)
{
	if (l->head + l->n + n > l->cap) {
		if (l->head && l->n + n <= l->cap && l->head >= l->n) {
			/* Reuse the room evictions left at the front. */
			memmove(l->e, l->e + l->head, l->n * sizeof(*l->e));
			l->head = 0;
		} else {
			size_t cap = l->cap ? l->cap : 64;
			struct kq__raft_entry *ne;

			while (cap < l->head + l->n + n)
				cap *= 2;
			ne = realloc(l->e, cap * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			l->e = ne;
			l->cap = cap;
		}
	}
	for (size_t i = 0; i < n; i++) {
		l->e[l->head + l->n + i] = e[i];
		kq__raft_buf_ref(e[i].data);
		l->bytes += cost(&e[i]);
	}
	l->n += n;
	return 0;
}

int kq__raft_log_truncate(struct kq__raft_log *l, uint64_t from)
{
	uint64_t t;

	if (from > kq__raft_log_last(l))
		return 0;
	if (from <= l->snap.index + 1) {
		drop_cache(l);
		l->first = l->snap.index + 1;
		l->prev_term = l->snap.term;
		return 0;
	}
	if (from >= l->first) {
		size_t keep = from - l->first;

		for (size_t i = keep; i < l->n; i++) {
			l->bytes -= cost(&l->e[l->head + i]);
			kq__raft_buf_unref(l->e[l->head + i].data);
		}
		l->n = keep;
		return 0;
	}
	/* Into the stored stretch: the cache restarts at `from`. */
	if (kq__raft_log_term(l, from - 1, &t))
		return l->error;
	drop_cache(l);
	l->first = from;
	l->prev_term = t;
	return 0;
}

void kq__raft_log_compact(struct kq__raft_log *l, uint64_t index, void *data,
			  uint32_t len)
{
	uint64_t term = 0;

	if (index <= l->snap.index || kq__raft_log_term(l, index, &term))
		return;
	if (index >= l->first) {
		size_t drop = index - l->first + 1;

		for (size_t i = 0; i < drop; i++) {
			l->bytes -= cost(&l->e[l->head + i]);
			kq__raft_buf_unref(l->e[l->head + i].data);
		}
		l->head += drop;
		l->n -= drop;
		if (!l->n)
			l->head = 0;
		l->first = index + 1;
		l->prev_term = term;
	}
	kq__raft_buf_unref(l->snap.data);
	kq__raft_buf_ref(data);
	l->snap = (struct kq__raft_snapshot){index, term, data, len};
}

void kq__raft_log_restore(struct kq__raft_log *l,
			  const struct kq__raft_snapshot *s)
{
	drop_cache(l);
	kq__raft_buf_unref(l->snap.data);
	kq__raft_buf_ref(s->data);
	l->snap = *s;
	l->first = s->index + 1;
	l->prev_term = s->term;
}

void kq__raft_log_evict(struct kq__raft_log *l, uint64_t durable, size_t bound)
{
	if (!bound || !l->read || !l->term_at)
		return;
	while (l->n && l->bytes > bound && l->first <= durable) {
		struct kq__raft_entry *e = &l->e[l->head];

		l->bytes -= cost(e);
		l->prev_term = e->term;
		kq__raft_buf_unref(e->data);
		l->head++;
		l->n--;
		l->first++;
	}
	if (!l->n)
		l->head = 0;
}

uint64_t kq__raft_log_find_conflict(struct kq__raft_log *l, uint64_t index,
				    uint64_t term)
{
	uint64_t lo, hi, t = 0;

	if (index > kq__raft_log_last(l))
		index = kq__raft_log_last(l);
	/* Below the snapshot nothing is known; the caller will fall back to
	 * sending the snapshot. */
	if (index <= l->snap.index)
		return index;
	/* The snapshot index always qualifies (everything there is
	 * committed); look for the last index in (lo, index] that does. */
	lo = l->snap.index;
	hi = index;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo + 1) / 2;

		if (kq__raft_log_term(l, mid, &t))
			return lo;
		if (t <= term)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}
