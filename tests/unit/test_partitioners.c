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

static void test_init_config(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("roundrobin");
	json_t *empty = json_object();
	json_t *bad = json_pack("{s:b,s:s}", "sticky", 1, "x", "y");
	json_t *notobj = json_integer(3);
	struct kq_host h;
	void *state;

	h = kq__test_host("roundrobin", NULL);
	assert_int_equal(o->init(&h, &state), 0);
	o->fini(state);
	h = kq__test_host("roundrobin", empty);
	assert_int_equal(o->init(&h, &state), 0);
	o->fini(state);
	assert_string_equal(kq__test_logbuf, "");

	/* Every unknown key is named, not only the first. */
	h = kq__test_host("roundrobin", bad);
	assert_int_equal(o->init(&h, &state), KQ_ECONFIG);
	assert_non_null(
		strstr(kq__test_logbuf, "roundrobin.sticky: unknown key"));
	assert_non_null(strstr(kq__test_logbuf, "roundrobin.x: unknown key"));

	h = kq__test_host("roundrobin", notobj);
	assert_int_equal(o->init(&h, &state), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "roundrobin"));

	json_decref(empty);
	json_decref(bad);
	json_decref(notobj);
}

static uint32_t place(const struct kq_partitioner_ops *o, void *state,
		      const char *key, uint32_t partitions, uint64_t seq,
		      uint64_t keyless_seq)
{
	static const char value[] = "{\"Key\":\"k\",\"Body\":\"b\"}";
	struct kq_partition_req r = {
		.topic = "t",
		.partitions = partitions,
		.key = key,
		.key_len = key ? strlen(key) : 0,
		.value = value,
		.value_len = sizeof(value) - 1,
		.seq = seq,
		.keyless_seq = keyless_seq,
	};

	return o->partition(state, &r);
}

/* The partition follows the topic's message count alone: keyed and
 * keyless messages share one rotation. */
static void test_rotation_ignores_keys(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("roundrobin");
	struct kq_host h = kq__test_host("roundrobin", NULL);
	void *state;

	assert_int_equal(o->init(&h, &state), 0);
	for (uint64_t n = 0; n < 30; n++) {
		assert_int_equal(place(o, state, "k", 4, n, 0), n % 4);
		assert_int_equal(place(o, state, NULL, 4, n, 17), n % 4);
		assert_int_equal(place(o, state, "other", 7, n, n), n % 7);
	}
	assert_int_equal(place(o, state, "k", 1, 12345, 0), 0);
	assert_int_equal(place(o, state, NULL, 5, UINT64_MAX, 0),
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
