/* The in-memory log cache of the Raft core. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

void kq__raft_log_fini(struct kq__raft_log *l)
{
	for (size_t i = 0; i < l->n; i++)
		kq__raft_buf_unref(l->e[i].data);
	free(l->e);
	kq__raft_buf_unref(l->snap.data);
	memset(l, 0, sizeof(*l));
}

uint64_t kq__raft_log_last(const struct kq__raft_log *l)
{
	return l->snap.index + l->n;
}

uint64_t kq__raft_log_last_term(const struct kq__raft_log *l)
{
	return l->n ? l->e[l->n - 1].term : l->snap.term;
}

int kq__raft_log_term(const struct kq__raft_log *l, uint64_t index,
		      uint64_t *term)
{
	if (index == l->snap.index) {
		*term = l->snap.term;
		return 0;
	}
	if (index < l->snap.index || index > kq__raft_log_last(l))
		return -1;
	*term = l->e[index - l->snap.index - 1].term;
	return 0;
}

bool kq__raft_log_match(const struct kq__raft_log *l, uint64_t index,
			uint64_t term)
{
	uint64_t t = 0;

	return kq__raft_log_term(l, index, &t) == 0 && t == term;
}

struct kq__raft_entry *kq__raft_log_get(const struct kq__raft_log *l,
					uint64_t index)
{
	if (index <= l->snap.index || index > kq__raft_log_last(l))
		return NULL;
	return &l->e[index - l->snap.index - 1];
}

int kq__raft_log_append(struct kq__raft_log *l, const struct kq__raft_entry *e,
			size_t n)
{
	if (l->n + n > l->cap) {
		size_t cap = l->cap ? l->cap : 64;
		struct kq__raft_entry *ne;

		while (cap < l->n + n)
			cap *= 2;
		ne = realloc(l->e, cap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		l->e = ne;
		l->cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		l->e[l->n + i] = e[i];
		kq__raft_buf_ref(e[i].data);
	}
	l->n += n;
	return 0;
}

void kq__raft_log_truncate(struct kq__raft_log *l, uint64_t from)
{
	size_t keep;

	if (from > kq__raft_log_last(l))
		return;
	keep = from <= l->snap.index ? 0 : from - l->snap.index - 1;
	for (size_t i = keep; i < l->n; i++)
		kq__raft_buf_unref(l->e[i].data);
	l->n = keep;
}

void kq__raft_log_compact(struct kq__raft_log *l, uint64_t index, void *data,
			  uint32_t len)
{
	uint64_t term = 0;
	size_t drop;

	if (index <= l->snap.index || kq__raft_log_term(l, index, &term))
		return;
	drop = index - l->snap.index;
	for (size_t i = 0; i < drop; i++)
		kq__raft_buf_unref(l->e[i].data);
	memmove(l->e, l->e + drop, (l->n - drop) * sizeof(*l->e));
	l->n -= drop;
	kq__raft_buf_unref(l->snap.data);
	kq__raft_buf_ref(data);
	l->snap = (struct kq__raft_snapshot){index, term, data, len};
}

void kq__raft_log_restore(struct kq__raft_log *l,
			  const struct kq__raft_snapshot *s)
{
	kq__raft_log_truncate(l, 0);
	kq__raft_buf_unref(l->snap.data);
	kq__raft_buf_ref(s->data);
	l->snap = *s;
}

uint64_t kq__raft_log_find_conflict(const struct kq__raft_log *l,
				    uint64_t index, uint64_t term)
{
	uint64_t t = 0;

	if (index > kq__raft_log_last(l))
		index = kq__raft_log_last(l);
	/* Below the snapshot nothing is known; the caller will fall back to
	 * sending the snapshot. */
	if (index < l->snap.index)
		return index;
	while (index > l->snap.index) {
		kq__raft_log_term(l, index, &t);
		if (t <= term)
			return index;
		index--;
	}
	return index;
}
