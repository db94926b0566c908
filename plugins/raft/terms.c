/* The term index: where each term starts in a group's log, kept in
 * memory as entries are written, so that the core's term_at and the term
 * of a retention point do not read storage. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "module.h"

/* Records that `index` has `term`; indexes come in increasing order. */
int kq__raft_terms_push(struct kq_group *g, uint64_t index, uint64_t term)
{
	struct kq__raft_term_start *t;

	if (g->n_terms && g->terms[g->n_terms - 1].term == term)
		return 0;
	if (g->n_terms == g->cap_terms) {
		size_t cap = g->cap_terms ? g->cap_terms * 2 : 8;

		t = realloc(g->terms, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		g->terms = t;
		g->cap_terms = cap;
	}
	g->terms[g->n_terms++] = (struct kq__raft_term_start){index, term};
	return 0;
}

/* Forgets the terms of entries from `from` on (the point stays). */
void kq__raft_terms_truncate(struct kq_group *g, uint64_t from)
{
	while (g->n_terms > 1 && g->terms[g->n_terms - 1].index >= from)
		g->n_terms--;
}

/* The log restarts after `point`, of term `term`. */
void kq__raft_terms_reset(struct kq_group *g, uint64_t point, uint64_t term)
{
	g->n_terms = 0;
	kq__raft_terms_push(g, point,
			    term); /* cannot fail: room was made at open */
}

/* Forgets what lies before `point`, which becomes the first index. */
void kq__raft_terms_prune(struct kq_group *g, uint64_t point)
{
	size_t k = 0;

	while (k + 1 < g->n_terms && g->terms[k + 1].index <= point)
		k++;
	if (k) {
		memmove(g->terms, g->terms + k,
			(g->n_terms - k) * sizeof(*g->terms));
		g->n_terms -= k;
	}
	if (g->n_terms && g->terms[0].index < point)
		g->terms[0].index = point;
}

int kq__raft_terms_lookup(const struct kq_group *g, uint64_t index,
			  uint64_t *term)
{
	size_t lo = 0, hi = g->n_terms;

	if (!g->n_terms || index < g->terms[0].index)
		return -ENOENT;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (g->terms[mid].index <= index)
			lo = mid;
		else
			hi = mid;
	}
	*term = g->terms[lo].term;
	return 0;
}

/* Finds the term starts strictly inside (lo, hi] of the stored log,
 * knowing the terms at both ends: terms never decrease along a log, so
 * a stretch whose ends agree holds one term. */
int kq__raft_terms_scan(struct kq_group *g, uint64_t lo, uint64_t tlo,
			uint64_t hi, uint64_t thi)
{
	uint64_t mid, tmid;
	int rv;

	if (tlo == thi)
		return 0;
	if (hi == lo + 1)
		return kq__raft_terms_push(g, hi, thi);
	mid = lo + (hi - lo) / 2;
	rv = kq__raft_store(g)->term_at(g->store, mid, &tmid);
	if (rv == 0)
		rv = kq__raft_terms_scan(g, lo, tlo, mid, tmid);
	if (rv == 0)
		rv = kq__raft_terms_scan(g, mid, tmid, hi, thi);
	return rv;
}
