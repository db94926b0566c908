/* The roundrobin partitioner module: descriptor, config checks and the
 * partition it picks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/partitioner.h>

#include "../fake_host.h"
#include "partitioner_test.h"

static void test_init_config(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("roundrobin");
	json_t *bad = json_pack("{s:b,s:s}", "sticky", 1, "x", "y");
	json_t *notobj = json_integer(3);
	struct kq_host h;
	void *state;

	expect_init_without_config("roundrobin");

	/* Every unknown key is named, not only the first. */
	h = kq__test_host("roundrobin", bad);
	assert_int_equal(o->init(&h, &state), KQ_ECONFIG);
	assert_non_null(
		strstr(kq__test_logbuf, "roundrobin.sticky: unknown key"));
	assert_non_null(strstr(kq__test_logbuf, "roundrobin.x: unknown key"));

	h = kq__test_host("roundrobin", notobj);
	assert_int_equal(o->init(&h, &state), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "roundrobin"));

	json_decref(bad);
	json_decref(notobj);
}

/* Every message's body: it names a key of its own. */
static const char body[] = "{\"Key\":\"k\",\"Body\":\"b\"}";

/* The partition follows the topic's message count alone: keyed and
 * keyless messages share one rotation. */
static void test_rotation_ignores_keys(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("roundrobin");
	struct kq_host h = kq__test_host("roundrobin", NULL);
	void *state;

	assert_int_equal(o->init(&h, &state), 0);
	for (uint64_t n = 0; n < 30; n++) {
		assert_int_equal(place(o, state, "k", body, 4, n, 0), n % 4);
		assert_int_equal(place(o, state, NULL, body, 4, n, 17), n % 4);
		assert_int_equal(place(o, state, "other", body, 7, n, n),
				 n % 7);
	}
	assert_int_equal(place(o, state, "k", body, 1, 12345, 0), 0);
	assert_int_equal(place(o, state, NULL, body, 5, UINT64_MAX, 0),
			 UINT64_MAX % 5);
	o->fini(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_config),
		cmocka_unit_test(test_rotation_ignores_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
