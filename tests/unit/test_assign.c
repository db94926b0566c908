/* Consumer-group assignment: the seed's bug, caps, stickiness across
 * joins and leaves, and a randomized check of every promise kq__assign
 * makes. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/error.h>

#include "assign.h"

#define MAXP 64
#define MAXM 16

/* A group as the metadata state machine keeps it. */
struct group {
	uint32_t nparts;
	uint64_t owner[MAXP];
	struct kq__assign_member m[MAXM];
	size_t n;
	uint64_t next_id;
};

static void group_init(struct group *g, uint32_t nparts)
{
	memset(g, 0, sizeof(*g));
	g->nparts = nparts;
	g->next_id = 1;
}

static int rebalance(struct group *g)
{
	int moved = kq__assign(g->nparts, g->owner, g->m, g->n);

	assert_true(moved >= 0);
	return moved;
}

static uint64_t join(struct group *g, uint32_t cap)
{
	assert_true(g->n < MAXM);
	g->m[g->n].sub_id = g->next_id++;
	g->m[g->n].cap = cap;
	return g->m[g->n++].sub_id;
}

static void leave(struct group *g, uint64_t sub_id)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->m[i].sub_id == sub_id) {
			memmove(&g->m[i], &g->m[i + 1],
				(g->n - i - 1) * sizeof(g->m[0]));
			g->n--;
			return;
		}
	}
	fail_msg("no member %llu", (unsigned long long)sub_id);
}

static size_t count(const uint64_t *owner, uint32_t nparts, uint64_t sub_id)
{
	size_t c = 0;

	for (uint32_t p = 0; p < nparts; p++)
		c += owner[p] == sub_id;
	return c;
}

/* Asserts owner[0..nparts) equals the ids listed. */
static void expect(const struct group *g, const uint64_t *want)
{
	for (uint32_t p = 0; p < g->nparts; p++)
		if (g->owner[p] != want[p])
			fail_msg("partition %u: owner %llu, expected %llu", p,
				 (unsigned long long)g->owner[p],
				 (unsigned long long)want[p]);
}

/* Members with the given caps join an empty group of `nparts` at once:
 * all of `moved` partitions move, and each member ends with its count of
 * `want` (both in join order). */
static void expect_split(uint32_t nparts, const uint32_t *caps, size_t n,
			 int moved, const size_t *want)
{
	struct group g;
	uint64_t id[MAXM];

	group_init(&g, nparts);
	for (size_t i = 0; i < n; i++)
		id[i] = join(&g, caps[i]);
	assert_int_equal(rebalance(&g), moved);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(count(g.owner, nparts, id[i]), want[i]);
}

/* The seed gave a joining member every unassigned partition; the fix
 * must split 6 partitions 3/3 and move only 3 of them. */
static void test_new_member_takes_its_share(void **unused)
{
	struct group g;
	uint64_t a, b;

	group_init(&g, 6);
	a = join(&g, 0);
	assert_int_equal(rebalance(&g), 6);
	assert_int_equal(count(g.owner, 6, a), 6);

	b = join(&g, 0);
	assert_int_equal(rebalance(&g), 3);
	expect(&g, (uint64_t[]){a, a, a, b, b, b});
}

static void test_caps(void **unused)
{
	struct group g;
	uint64_t a, b, c;

	/* A cap 1, B no cap, 5 partitions: A 1, B 4. */
	group_init(&g, 5);
	a = join(&g, 1);
	assert_int_equal(rebalance(&g), 1);
	expect(&g, (uint64_t[]){a, 0, 0, 0, 0});
	b = join(&g, 0);
	assert_int_equal(rebalance(&g), 4);
	expect(&g, (uint64_t[]){a, b, b, b, b});

	/* Caps below the share are filled; the rest is split evenly, the
	 * remainder in join order: 7 over A cap 2, B, C is 2/3/2. */
	expect_split(7, (uint32_t[]){2, 0, 0}, 3, 7, (size_t[]){2, 3, 2});

	/* Caps above the share do not bind: 6 over A cap 5, B cap 5. */
	expect_split(6, (uint32_t[]){5, 5}, 2, 6, (size_t[]){3, 3});

	/* Caps adding up to less than the topic leave the rest unassigned
	 * until a member with room joins, which then takes all of it. */
	group_init(&g, 10);
	a = join(&g, 2);
	b = join(&g, 2);
	assert_int_equal(rebalance(&g), 4);
	assert_int_equal(count(g.owner, 10, 0), 6);
	c = join(&g, 0);
	assert_int_equal(rebalance(&g), 6);
	assert_int_equal(count(g.owner, 10, a), 2);
	assert_int_equal(count(g.owner, 10, b), 2);
	assert_int_equal(count(g.owner, 10, c), 6);
}

static void test_more_members_than_partitions(void **unused)
{
	struct group g;
	uint64_t a, b, c, d;

	group_init(&g, 2);
	a = join(&g, 0);
	b = join(&g, 0);
	c = join(&g, 0);
	d = join(&g, 0);
	assert_int_equal(rebalance(&g), 2);
	expect(&g, (uint64_t[]){a, b});

	/* Members without partitions do not disturb those holding one. */
	leave(&g, c);
	assert_int_equal(rebalance(&g), 0);
	expect(&g, (uint64_t[]){a, b});

	/* A holder leaving hands its partition to the first idle member. */
	leave(&g, a);
	assert_int_equal(rebalance(&g), 1);
	expect(&g, (uint64_t[]){d, b});
}

static void test_leave_and_rejoin_are_sticky(void **unused)
{
	struct group g;
	uint64_t a, b, c, d;

	group_init(&g, 6);
	a = join(&g, 0);
	assert_int_equal(rebalance(&g), 6);
	b = join(&g, 0);
	assert_int_equal(rebalance(&g), 3);
	c = join(&g, 0);
	assert_int_equal(rebalance(&g), 2);
	expect(&g, (uint64_t[]){a, a, c, b, b, c});

	/* Only the leaver's partitions move. */
	leave(&g, b);
	assert_int_equal(rebalance(&g), 2);
	expect(&g, (uint64_t[]){a, a, c, a, c, c});

	/* Coming back (a new subscription) takes one from each. */
	d = join(&g, 0);
	assert_int_equal(rebalance(&g), 2);
	expect(&g, (uint64_t[]){a, a, c, d, c, d});

	/* Nothing changed: nothing moves. */
	assert_int_equal(rebalance(&g), 0);
	expect(&g, (uint64_t[]){a, a, c, d, c, d});
}

/* Owners missing from the member list lose everything; ids that were
 * never members count the same. */
static void test_departed_owners(void **unused)
{
	struct kq__assign_member m[] = {{10, 0}, {20, 0}};
	uint64_t owner[] = {99, 10, 99, 10, 10, 10, 77, 0};

	/* 10 keeps its 4 lowest (1, 3, 4, 5), 20 takes 4 of the others:
	 * first those that had an owner. */
	assert_int_equal(kq__assign(8, owner, m, 2), 4);
	assert_memory_equal(owner,
			    ((uint64_t[]){20, 10, 20, 10, 10, 10, 20, 20}),
			    sizeof(owner));

	/* With no members every partition is freed. */
	assert_int_equal(kq__assign(8, owner, NULL, 0), 8);
	assert_int_equal(count(owner, 8, 0), 8);
	assert_int_equal(kq__assign(8, owner, NULL, 0), 0);
	assert_int_equal(kq__assign(0, owner, m, 2), 0);
}

/* A partition left unassigned by caps prefers to stay unassigned: the
 * member takes the partitions whose owner left (they change owner
 * anyway), not the never-assigned ones. */
static void test_unassigned_stay_put(void **unused)
{
	struct kq__assign_member m[] = {{5, 2}};
	uint64_t owner[] = {0, 0, 42, 43};

	assert_int_equal(kq__assign(4, owner, m, 1), 2);
	assert_memory_equal(owner, ((uint64_t[]){0, 0, 5, 5}), sizeof(owner));
}

/* Owners above target give up their highest partitions. */
static void test_extras_from_the_top(void **unused)
{
	struct kq__assign_member m[] = {{1, 0}, {2, 0}, {3, 0}};
	uint64_t owner[] = {1, 2, 1, 2, 1, 2, 1, 2, 1};

	/* Targets 3/3/3: 1 keeps 0, 2, 4 and frees 6, 8; 2 keeps 1, 3, 5
	 * and frees 7; 3 takes 6, 7, 8. */
	assert_int_equal(kq__assign(9, owner, m, 3), 3);
	assert_memory_equal(owner, ((uint64_t[]){1, 2, 1, 2, 1, 2, 3, 3, 3}),
			    sizeof(owner));
}

/* The +1 remainders go to members that hold more than the share before
 * falling back to join order, so nobody moves for nothing. */
static void test_remainder_stays_with_holders(void **unused)
{
	struct kq__assign_member m[] = {{1, 0}, {2, 0}, {3, 0}};
	uint64_t owner[] = {0, 0, 3, 3, 0, 0, 0};
	uint64_t owner2[] = {3, 3, 3, 0, 0, 0, 0};

	/* 7 over 3: shares 2, one +1.  Member 3 holds 2, not more, so the
	 * +1 goes to member 1 in join order. */
	assert_int_equal(kq__assign(7, owner, m, 3), 5);
	assert_memory_equal(owner, ((uint64_t[]){1, 1, 3, 3, 1, 2, 2}),
			    sizeof(owner));

	/* Member 3 holding 3 keeps all 3. */
	assert_int_equal(kq__assign(7, owner2, m, 3), 4);
	assert_memory_equal(owner2, ((uint64_t[]){3, 3, 3, 1, 1, 2, 2}),
			    sizeof(owner2));
}

static void test_deterministic(void **unused)
{
	struct kq__assign_member m[] = {{7, 0}, {3, 2}, {9, 0}, {4, 1}};
	uint64_t first[13] = {9, 9, 9, 9, 9, 3, 3, 3, 1, 1, 0, 0, 4};
	uint64_t second[13];
	int moved;

	memcpy(second, first, sizeof(first));
	moved = kq__assign(13, first, m, 4);
	assert_int_equal(kq__assign(13, second, m, 4), moved);
	assert_memory_equal(first, second, sizeof(first));
	/* And stable: the answer is its own fixed point. */
	assert_int_equal(kq__assign(13, second, m, 4), 0);
	assert_memory_equal(first, second, sizeof(first));
}

static void test_bad_members(void **unused)
{
	struct kq__assign_member zero[] = {{1, 0}, {0, 0}};
	struct kq__assign_member dup[] = {{1, 0}, {2, 0}, {1, 3}};
	uint64_t owner[] = {1, 2, 0};

	assert_int_equal(kq__assign(3, owner, zero, 2), KQ_EBADARG);
	assert_int_equal(kq__assign(3, owner, dup, 3), KQ_EBADARG);
	/* Too many partitions to count changes in an int; owner[] is not
	 * read then. */
	assert_int_equal(kq__assign((uint32_t)INT_MAX + 1, owner, dup, 2),
			 KQ_EBADARG);
	assert_memory_equal(owner, ((uint64_t[]){1, 2, 0}), sizeof(owner));
}

/* ------------------------------------------------------------------ */
/* Randomized: many sequences of joins and leaves with random caps,
 * some starting from arbitrary owner tables, checking after every step
 * each promise the assignment makes.  The generator is seeded, so a
 * failure names the sequence and step that reproduce it. */

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64*: the same sequence on every platform. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static uint32_t rnd(uint32_t n)
{
	return (uint32_t)(rng() % n);
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Checks the step from `before` to g->owner, which reported `moved`. */
static void check_step(const struct group *g, const uint64_t *before, int moved,
		       unsigned seq, unsigned step)
{
	size_t cur[MAXM], cnt[MAXM], total = 0, kept = 0, none_before = 0;
	size_t changed = 0, bound, unassigned;
	uint32_t p;
	size_t i, j;

#define CHECK(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			print_error("sequence %u step %u: ", seq, step);       \
			fail_msg(__VA_ARGS__);                                 \
		}                                                              \
	} while (0)

	for (i = 0; i < g->n; i++) {
		cur[i] = count(before, g->nparts, g->m[i].sub_id);
		cnt[i] = count(g->owner, g->nparts, g->m[i].sub_id);
		total += cnt[i];
		kept += min_sz(cur[i], cnt[i]);
	}
	for (p = 0; p < g->nparts; p++) {
		changed += before[p] != g->owner[p];
		none_before += before[p] == 0;
	}

	/* Every partition is unassigned or owned by a member. */
	unassigned = count(g->owner, g->nparts, 0);
	CHECK(total + unassigned == g->nparts, "partition owned by a stranger");

	/* The count reported is the count of changed owners. */
	CHECK(moved >= 0 && (size_t)moved == changed,
	      "reported %d moves, %zu owners changed", moved, changed);

	for (i = 0; i < g->n; i++) {
		uint32_t cap = g->m[i].cap;

		/* Capped. */
		CHECK(!cap || cnt[i] <= cap, "member %zu: %zu over cap %u", i,
		      cnt[i], cap);
		/* Complete. */
		CHECK(!unassigned || (cap && cnt[i] == cap),
		      "member %zu under its cap with %zu unassigned", i,
		      unassigned);
		/* Balanced: a member two below another is at its cap, so
		 * uncapped members differ by at most one. */
		for (j = 0; j < g->n; j++)
			CHECK(cnt[j] < cnt[i] + 2 || (cap && cnt[i] == cap),
			      "member %zu has %zu, member %zu has %zu", i,
			      cnt[i], j, cnt[j]);
	}

	/* Sticky, part 1.  With these counts, member i can keep at most
	 * min(cur[i], cnt[i]) of its partitions, every other owned
	 * partition changes owner, and a partition unassigned before is
	 * unchanged only if it stays unassigned: at least
	 *   nparts - kept - min(unassigned before, unassigned after)
	 * owners change.  The assignment must reach that bound exactly. */
	bound = g->nparts - kept - min_sz(none_before, unassigned);
	CHECK(changed == bound, "%zu moves, %zu would do", changed, bound);

	/* Sticky, part 2: the counts themselves keep the most.  Any other
	 * capped, complete and balanced outcome differs by members trading
	 * counts; a trade between i (one more) and j that j's cap allows
	 * would keep one more partition exactly when i keeps no more than
	 * j's count anyway and j held at least i's count. */
	for (i = 0; i < g->n; i++)
		for (j = 0; j < g->n; j++)
			CHECK(!(cnt[i] == cnt[j] + 1 &&
				(!g->m[j].cap || g->m[j].cap >= cnt[i]) &&
				cur[i] <= cnt[j] && cur[j] >= cnt[i]),
			      "members %zu and %zu should trade counts", i, j);
#undef CHECK
}

static void test_random_sequences(void **unused)
{
	rng_state = 0x9e3779b97f4a7c15ull;

	for (unsigned seq = 0; seq < 2000; seq++) {
		struct group g;
		uint64_t before[MAXP], again[MAXP];
		unsigned steps = 1 + rnd(40);

		group_init(&g, 1 + rnd(seq % 4 ? 24 : MAXP));

		for (unsigned step = 0; step < steps; step++) {
			uint32_t op = rnd(20);
			int moved;

			if (g.n == 0 || (op < 11 && g.n < MAXM)) {
				/* Half uncapped, the rest small caps. */
				join(&g, rnd(2) ? 0 : 1 + rnd(6));
			} else if (op < 18) {
				leave(&g, g.m[rnd((uint32_t)g.n)].sub_id);
			} else if (op == 18) {
				/* An arbitrary table: members over their caps
				 * or their share, strangers, gaps. */
				for (uint32_t p = 0; p < g.nparts; p++)
					g.owner[p] =
						rnd(4) ? rnd(g.next_id + 2) : 0;
			}
			/* else: rebalance an unchanged group */

			memcpy(before, g.owner, sizeof(before));
			moved = kq__assign(g.nparts, g.owner, g.m, g.n);
			check_step(&g, before, moved, seq, step);

			/* Deterministic and stable: the same input gives the
			 * same answer, and that answer is a fixed point. */
			memcpy(again, before, sizeof(again));
			assert_int_equal(kq__assign(g.nparts, again, g.m, g.n),
					 moved);
			assert_memory_equal(again, g.owner,
					    g.nparts * sizeof(*again));
			assert_int_equal(kq__assign(g.nparts, again, g.m, g.n),
					 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_member_takes_its_share),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_more_members_than_partitions),
		cmocka_unit_test(test_leave_and_rejoin_are_sticky),
		cmocka_unit_test(test_departed_owners),
		cmocka_unit_test(test_unassigned_stay_put),
		cmocka_unit_test(test_extras_from_the_top),
		cmocka_unit_test(test_remainder_stays_with_holders),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_bad_members),
		cmocka_unit_test(test_random_sequences),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
