#include "assign.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <kafkaesque/error.h>

/* who[p] of a partition that no member holds (yet). */
#define NOBODY SIZE_MAX

struct slot {
	size_t cur;    /* partitions held before */
	size_t target; /* partitions to hold after */
	size_t held;   /* partitions held so far while rebuilding */
	int fixed;     /* target already settled */
};

struct by_id {
	uint64_t sub_id;
	size_t idx;
};

static int cmp_by_id(const void *a, const void *b)
{
	const struct by_id *x = a, *y = b;

	return x->sub_id < y->sub_id ? -1 : x->sub_id > y->sub_id;
}

struct by_cap {
	uint32_t cap;
	size_t idx;
};

/* Capped members by increasing cap, then join order, for water-filling. */
static int cmp_by_cap(const void *a, const void *b)
{
	const struct by_cap *x = a, *y = b;

	if (x->cap != y->cap)
		return x->cap < y->cap ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Index of the member with `sub_id`, or NOBODY. */
static size_t find(const struct by_id *ids, size_t n, uint64_t sub_id)
{
	struct by_id key = {sub_id, 0};
	const struct by_id *hit;

	if (!sub_id || !n)
		return NOBODY;
	hit = bsearch(&key, ids, n, sizeof(*ids), cmp_by_id);
	return hit ? hit->idx : NOBODY;
}

/* Sets every member's target.  Members whose cap is at most the even
 * share of what is left are filled to their cap, smallest caps first:
 * taking one out never lowers the share of the others, so once the
 * smallest remaining cap is above the share, every other is too.  The
 * remaining members split the rest evenly; each cap there is above the
 * share, so any of them can take one more for the remainder. */
static void set_targets(uint32_t nparts,
			const struct kq__assign_member *members, size_t n,
			struct slot *s, struct by_cap *capped)
{
	uint64_t left = nparts, k = n, base, extra;
	size_t ncapped = 0, i, j;

	for (i = 0; i < n; i++) {
		if (members[i].cap) {
			capped[ncapped].cap = members[i].cap;
			capped[ncapped++].idx = i;
		}
	}
	qsort(capped, ncapped, sizeof(*capped), cmp_by_cap);

	for (j = 0; j < ncapped && k; j++) {
		uint32_t cap = capped[j].cap;

		if ((uint64_t)cap * k > left)
			break;
		s[capped[j].idx].target = cap;
		s[capped[j].idx].fixed = 1;
		left -= cap;
		k--;
	}
	if (!k)
		return; /* every member at its cap; the rest stays free */

	base = left / k;
	extra = left % k;
	/* The +1s go to members that already hold more than the share, so
	 * they keep a partition instead of giving it up to another member
	 * that would take it. */
	for (i = 0; i < n && extra; i++) {
		if (!s[i].fixed && s[i].cur > base) {
			s[i].target = base + 1;
			s[i].fixed = 1;
			extra--;
		}
	}
	for (i = 0; i < n; i++) {
		if (s[i].fixed)
			continue;
		s[i].target = base + (extra ? 1 : 0);
		if (extra)
			extra--;
	}
}

int kq__assign(uint32_t nparts, uint64_t *owner,
	       const struct kq__assign_member *members, size_t nmembers)
{
	struct slot *s = NULL;
	struct by_id *ids = NULL;
	struct by_cap *capped = NULL;
	size_t *who = NULL;
	size_t i, next, nalloc = nmembers ? nmembers : 1;
	uint32_t p;
	int pass, changed = 0, err = 0;

	/* The count of changes must fit the return value. */
	if (nparts > INT_MAX)
		return KQ_EBADARG;
	s = calloc(nalloc, sizeof(*s));
	ids = calloc(nalloc, sizeof(*ids));
	capped = calloc(nalloc, sizeof(*capped));
	who = calloc(nparts ? nparts : 1, sizeof(*who));
	if (!s || !ids || !capped || !who) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < nmembers; i++) {
		ids[i].sub_id = members[i].sub_id;
		ids[i].idx = i;
		if (!members[i].sub_id) {
			err = KQ_EBADARG;
			goto out;
		}
	}
	qsort(ids, nmembers, sizeof(*ids), cmp_by_id);
	for (i = 1; i < nmembers; i++) {
		if (ids[i].sub_id == ids[i - 1].sub_id) {
			err = KQ_EBADARG;
			goto out;
		}
	}

	for (p = 0; p < nparts; p++) {
		who[p] = find(ids, nmembers, owner[p]);
		if (who[p] != NOBODY)
			s[who[p]].cur++;
	}
	set_targets(nparts, members, nmembers, s, capped);

	/* Owners keep their lowest-numbered partitions up to their target:
	 * extras are given up from the highest partition down. */
	for (p = 0; p < nparts; p++) {
		if (who[p] == NOBODY)
			continue;
		if (s[who[p]].held < s[who[p]].target)
			s[who[p]].held++;
		else
			who[p] = NOBODY;
	}

	/* Free partitions fill the members below target in join order.  The
	 * ones that had an owner go first: they change owner whatever
	 * happens, while one that had none only changes if it is taken. */
	next = 0;
	for (pass = 0; pass < 2; pass++) {
		for (p = 0; p < nparts; p++) {
			if (who[p] != NOBODY || (owner[p] != 0) != (pass == 0))
				continue;
			while (next < nmembers &&
			       s[next].held >= s[next].target)
				next++;
			if (next == nmembers)
				break;
			who[p] = next;
			s[next].held++;
		}
	}

	for (p = 0; p < nparts; p++) {
		uint64_t now = who[p] == NOBODY ? 0 : members[who[p]].sub_id;

		if (now != owner[p])
			changed++;
		owner[p] = now;
	}
out:
	free(s);
	free(ids);
	free(capped);
	free(who);
	return err ? err : changed;
}
