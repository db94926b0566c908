/* murmur2 against Kafka's own test vectors, and the keyhash partitioner
 * module built on it. */
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

#include "../../plugins/keyhash/murmur2.h"

struct vector {
	const char *data;
	size_t len;
	int32_t hash; /* as Java's Utils.murmur2 returns it */
};

/* A string literal's bytes and length, NULs included. */
#define BYTES(s) s, sizeof(s) - 1

/* Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/
 * common/utils/UtilsTest.java).  Between them they cover bodies of 0, 1,
 * 6 and 12 words and tails of 0, 2 and 3 bytes. */
static const struct vector kafka_vectors[] = {
	{BYTES("21"), -973932308},
	{BYTES("foobar"), -790332482},
	{BYTES("a-little-bit-long-string"), -985981536},
	{BYTES("a-little-bit-longer-string"), -1486304829},
	{BYTES("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971},
	{BYTES("abc"), 479470107},
};

/* The cases Kafka's vectors leave out: the empty input, a 1-byte tail,
 * and bytes >= 0x80, which Java sees as negative and masks with 0xff.
 * The values are what Kafka's Java code returns; the empty input's also
 * equals Apache Commons Codec's MurmurHash2.hash32 of zero bytes, which
 * uses the same seed. */
static const struct vector extra_vectors[] = {
	{BYTES(""), 275646681},
	{BYTES("x"), 2121525046},
	{BYTES("hello"), 2132663229},
	{BYTES("\xff\x80\x7f\x00\xfe"), -1958495739},
	{BYTES("\xc3\xa9t\xc3\xa9"), -2101193575},
};

static void check_vectors(const struct vector *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t h = kq__murmur2(v[i].data, v[i].len);

		if (h != (uint32_t)v[i].hash)
			fail_msg("murmur2 of vector %zu (%zu bytes): %d, "
				 "expected %d",
				 i, v[i].len, (int)(int32_t)h, (int)v[i].hash);
	}
}

static void test_kafka_vectors(void **unused)
{
	check_vectors(kafka_vectors,
		      sizeof(kafka_vectors) / sizeof(*kafka_vectors));
}

static void test_extra_vectors(void **unused)
{
	check_vectors(extra_vectors,
		      sizeof(extra_vectors) / sizeof(*extra_vectors));
}

/* The hash depends on every byte and on where it sits: a body word is not
 * confused with a tail, and NULL with length 0 is the empty input. */
static void test_hash_inputs(void **unused)
{
	assert_int_equal(kq__murmur2(NULL, 0), 275646681u);
	assert_int_not_equal(kq__murmur2("abcd", 4), kq__murmur2("abc", 3));
	assert_int_not_equal(kq__murmur2("abcde", 5), kq__murmur2("abcdf", 5));
	assert_int_not_equal(kq__murmur2("ab\0", 3), kq__murmur2("ab", 2));
}

struct mapping {
	const char *key;
	uint32_t partitions;
	uint32_t partition;
};

/* Kafka's default partitioner for a keyed record computes
 * toPositive(murmur2(key)) % numPartitions; these follow from the
 * vectors above, e.g. "21": -973932308 & 0x7fffffff = 1173551340, and
 * 1173551340 % 100 = 40. */
static const struct mapping kafka_partitions[] = {
	{"21", 100, 40},
	{"21", 7, 1173551340u % 7},
	{"foobar", 4, 2},
	{"foobar", 10, 6},
	{"a-little-bit-long-string", 3, 2},
	{"a-little-bit-long-string", 12, 8},
	{"a-little-bit-longer-string", 4, 3},
	{"a-little-bit-longer-string", 100, 19},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 6, 5},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 100, 77},
	{"abc", 4, 3},
	{"abc", 10, 7},
	{"abc", 1, 0},
};

static void test_partition_mapping(void **unused)
{
	for (size_t i = 0;
	     i < sizeof(kafka_partitions) / sizeof(*kafka_partitions); i++) {
		const struct mapping *m = &kafka_partitions[i];
		uint32_t h = kq__murmur2(m->key, strlen(m->key));

		assert_int_equal(kq__murmur2_partition(h, m->partitions),
				 m->partition);
	}
}

/* toPositive clears the sign bit; it is not abs(). */
static void test_to_positive(void **unused)
{
	assert_int_equal(kq__murmur2_partition(0x80000000u, 7), 0);
	assert_int_equal(kq__murmur2_partition(0xffffffffu, 1000),
			 0x7fffffffu % 1000);
	assert_int_equal(kq__murmur2_partition(0x7fffffffu, 1000),
			 0x7fffffffu % 1000);
	assert_int_equal(kq__murmur2_partition(5, 3), 2);
}

static void test_init_accepts_no_config(void **unused)
{
	expect_init_without_config("keyhash");
}

static void test_init_rejects_unknown_key(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("keyhash");
	json_t *cfg = json_pack("{s:i}", "foo", 1);
	struct kq_host h = kq__test_host("keyhash", cfg);
	void *state;

	assert_non_null(cfg);
	assert_int_equal(o->init(&h, &state), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "keyhash.foo: unknown key"));
	json_decref(cfg);
}

static void test_init_rejects_non_object(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("keyhash");
	json_t *cfg = json_string("murmur2");
	struct kq_host h = kq__test_host("keyhash", cfg);
	void *state;

	assert_int_equal(o->init(&h, &state), KQ_ECONFIG);
	assert_non_null(strstr(kq__test_logbuf, "keyhash"));
	json_decref(cfg);
}

/* Keyed messages land where Kafka puts them, whatever the counters say;
 * only the key is hashed, never the rest of the message. */
static void test_module_keyed(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("keyhash");
	struct kq_host h = kq__test_host("keyhash", NULL);
	void *state;

	assert_int_equal(o->init(&h, &state), 0);
	for (size_t i = 0;
	     i < sizeof(kafka_partitions) / sizeof(*kafka_partitions); i++) {
		const struct mapping *m = &kafka_partitions[i];

		assert_int_equal(place(o, state, m->key, "{\"Key\":\"...\"}",
				       m->partitions, i * 7, i * 3),
				 m->partition);
		assert_int_equal(place(o, state, m->key, "other body",
				       m->partitions, 12345, 999),
				 m->partition);
	}
	o->fini(state);
}

/* Without a key the module counts keyless messages only, so keyed ones
 * in between do not skew the rotation. */
static void test_module_keyless_round_robin(void **unused)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner("keyhash");
	struct kq_host h = kq__test_host("keyhash", NULL);
	void *state;

	assert_int_equal(o->init(&h, &state), 0);
	for (uint64_t n = 0; n < 20; n++)
		assert_int_equal(
			place(o, state, NULL, "plain text", 3, n * 5 + 1, n),
			n % 3);
	assert_int_equal(place(o, state, NULL, "x", 4, 0, UINT64_MAX),
			 UINT64_MAX % 4);
	assert_int_equal(place(o, state, NULL, "x", 1, 7, 7), 0);
	o->fini(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kafka_vectors),
		cmocka_unit_test(test_extra_vectors),
		cmocka_unit_test(test_hash_inputs),
		cmocka_unit_test(test_partition_mapping),
		cmocka_unit_test(test_to_positive),
		cmocka_unit_test(test_init_accepts_no_config),
		cmocka_unit_test(test_init_rejects_unknown_key),
		cmocka_unit_test(test_init_rejects_non_object),
		cmocka_unit_test(test_module_keyed),
		cmocka_unit_test(test_module_keyless_round_robin),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
