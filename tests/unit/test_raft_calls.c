/* The raft module's calls to other brokers (plugins/raft/call.c): each
 * reply finds its call, in any order, at a cost that does not grow with
 * the calls out; calls that time out, whose peer goes down, or that are
 * canceled end once each.  The cluster port is replaced by stubs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "../../plugins/raft/module.h"
#include "../fake_host.h"

/* ------------------------------------------------------------ stubs */

static int refuse; /* the next kq__cluster_call fails with this */

int kq__cluster_call(struct kq__cluster *c, int to, uint64_t id,
		     const void *body, size_t len)
{
	int rv = refuse;

	(void)c;
	(void)to;
	(void)id;
	(void)body;
	(void)len;
	refuse = 0;
	return rv;
}

void kq__cluster_reply(struct kq__cluster *c, int to, uint64_t conn,
		       uint64_t id, const void *body, size_t len)
{
	(void)c;
	(void)to;
	(void)conn;
	(void)id;
	(void)body;
	(void)len;
}

static int laters;

void kq__raft_module_later(struct kq__raft_module *mod)
{
	(void)mod;
	laters++;
}

/* ------------------------------------------------------------ harness */

enum { N = 3000 };

static struct {
	uv_loop_t loop;
	struct kq_host host;
	struct kq__raft_module mod;
	struct kq_call calls[N];
	int status[N]; /* 1 + status once its callback ran, 0 before */
	char reply[N][16];
} h;

static void on_reply(struct kq_call *call, int status, const void *reply,
		     size_t len)
{
	int i = (int)(call - h.calls);

	assert_int_equal(h.status[i], 0); /* once */
	h.status[i] = 1 + status;
	if (status == 0) {
		assert_true(len < sizeof(h.reply[i]));
		memcpy(h.reply[i], reply, len);
	}
}

static int setup(void **state)
{
	(void)state;
	memset(&h, 0, sizeof(h));
	assert_int_equal(uv_loop_init(&h.loop), 0);
	h.host = kq__test_host("raft", NULL);
	h.host.loop = &h.loop;
	h.mod.host = &h.host;
	h.mod.cluster = (struct kq__cluster *)&h; /* never looked into */
	laters = 0;
	refuse = 0;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	kq__raft_calls_cancel(&h.mod);
	kq__raft_calls_run_failed(&h.mod);
	assert_int_equal(h.mod.n_calls, 0);
	kq__raft_calls_free(&h.mod);
	assert_int_equal(uv_loop_close(&h.loop), 0);
	return 0;
}

/* Calls i in [from, to) to broker `peer`. */
static void call_range(int from, int to, int peer)
{
	for (int i = from; i < to; i++)
		assert_int_equal(kq__raft_call(&h.mod, &h.calls[i], peer, "q",
					       1, 5000, on_reply),
				 0);
}

/* Broker `peer`'s answer to call i: OK and "a<i>". */
static void answer(int i, int peer)
{
	uint8_t body[16];
	int n = snprintf((char *)body + 1, sizeof(body) - 1, "a%d", i);

	body[0] = 0; /* CALL_OK */
	kq__raft_calls_reply(&h.mod, peer, h.calls[i].id, body, (size_t)n + 2);
}

/* ------------------------------------------------------------ tests */

/* Replies oldest first, as a leader answers the batches of many
 * partitions: a list searched from the newest looked at all n calls for
 * each, n * n / 2 in all. */
static void test_reply_cost_is_flat(void **state)
{
	uint64_t looked;

	(void)state;
	call_range(0, N, 2);
	looked = h.mod.calls_looked;
	for (int i = 0; i < N; i++)
		answer(i, 2);
	looked = h.mod.calls_looked - looked;
	for (int i = 0; i < N; i++) {
		char want[16];

		snprintf(want, sizeof(want), "a%d", i);
		assert_int_equal(h.status[i], 1);
		assert_string_equal(h.reply[i], want);
	}
	/* A lookup and a removal each, a few slots each. */
	assert_true(looked <= (uint64_t)N * 8);
	assert_int_equal(h.mod.n_calls, 0);
}

/* Replies in a scrambled order, from two peers, with unknown ids, a
 * reply from the wrong peer and a duplicate: each call ends once, with
 * its own answer; the table stays whole through removals that shift
 * others back. */
static void test_replies_in_any_order(void **state)
{
	static int order[N];
	uint64_t seed = 88172645463325252ull;

	(void)state;
	call_range(0, N / 2, 2);
	call_range(N / 2, N, 3);
	for (int i = 0; i < N; i++)
		order[i] = i;
	for (int i = N - 1; i > 0; i--) {
		int j, t;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		j = (int)(seed % (uint64_t)(i + 1));
		t = order[i];
		order[i] = order[j];
		order[j] = t;
	}
	for (int k = 0; k < N; k++) {
		int i = order[k], peer = i < N / 2 ? 2 : 3;

		answer(i, peer == 2 ? 3 : 2); /* not from the peer asked */
		assert_int_equal(h.status[i], 0);
		answer(i, peer);
		answer(i, peer); /* again: ended already */
		kq__raft_calls_reply(&h.mod, peer,
				     h.mod.call_seq + 1 + (uint64_t)k,
				     (const uint8_t *)"\0x", 2);
	}
	for (int i = 0; i < N; i++) {
		char want[16];

		snprintf(want, sizeof(want), "a%d", i);
		assert_int_equal(h.status[i], 1);
		assert_string_equal(h.reply[i], want);
	}
	assert_int_equal(h.mod.n_calls, 0);
	assert_null(h.mod.calls);
}

/* A peer down fails its calls (from `later`), the others stay and still
 * find their replies; a call refused by the port is not kept. */
static void test_down_and_refused(void **state)
{
	(void)state;
	call_range(0, 100, 2);
	call_range(100, 200, 3);
	refuse = KQ_EBUSY;
	assert_int_equal(
		kq__raft_call(&h.mod, &h.calls[200], 2, "q", 1, 5000, on_reply),
		KQ_EBUSY);
	assert_int_equal(h.mod.n_calls, 200);
	kq__raft_calls_down(&h.mod, 2);
	assert_true(laters > 0);
	kq__raft_calls_run_failed(&h.mod);
	for (int i = 0; i < 100; i++)
		assert_int_equal(h.status[i], 1 + KQ_EUNAVAILABLE);
	for (int i = 100; i < 200; i++) {
		assert_int_equal(h.status[i], 0);
		answer(i, 3);
		assert_int_equal(h.status[i], 1);
	}
	assert_int_equal(h.status[200], 0);
	assert_int_equal(h.mod.n_calls, 0);
}

/* Calls past their deadline fail at the tick; the others stay. */
static void test_deadline(void **state)
{
	(void)state;
	for (int i = 0; i < 50; i++)
		assert_int_equal(kq__raft_call(&h.mod, &h.calls[i], 2, "q", 1,
					       i % 2 ? 1 : 60000, on_reply),
				 0);
	uv_sleep(5);
	uv_update_time(&h.loop);
	kq__raft_calls_tick(&h.mod);
	for (int i = 0; i < 50; i++)
		assert_int_equal(h.status[i], i % 2 ? 1 + KQ_EUNAVAILABLE : 0);
	for (int i = 0; i < 50; i += 2)
		answer(i, 2);
	for (int i = 0; i < 50; i += 2)
		assert_int_equal(h.status[i], 1);
	assert_int_equal(h.mod.n_calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reply_cost_is_flat, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_replies_in_any_order,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_down_and_refused, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
