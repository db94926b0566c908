/* What the tests of the partitioner modules share: a module started
 * without a config, and the partition it picks for one message.  Include
 * after cmocka.h and fake_host.h. */
#ifndef KQ_TEST_PARTITIONER_H
#define KQ_TEST_PARTITIONER_H

#include <string.h>

#include <kafkaesque/partitioner.h>

/* The module starts with no config and with an empty object, and logs
 * nothing for the latter. */
static inline void expect_init_without_config(const char *module)
{
	const struct kq_partitioner_ops *o = kq__test_partitioner(module);
	json_t *empty = json_object();
	struct kq_host h = kq__test_host(module, NULL);
	void *state;

	assert_int_equal(o->init(&h, &state), 0);
	o->fini(state);
	h = kq__test_host(module, empty);
	assert_int_equal(o->init(&h, &state), 0);
	o->fini(state);
	assert_string_equal(kq__test_logbuf, "");
	json_decref(empty);
}

/* The partition `o` picks, in `state`, for a message `value` of topic "t"
 * with `key` (NULL for none) and the topic's counters `seq` and
 * `keyless_seq`. */
static inline uint32_t place(const struct kq_partitioner_ops *o, void *state,
			     const char *key, const char *value,
			     uint32_t partitions, uint64_t seq,
			     uint64_t keyless_seq)
{
	struct kq_partition_req r = {
		.topic = "t",
		.partitions = partitions,
		.key = key,
		.key_len = key ? strlen(key) : 0,
		.value = value,
		.value_len = strlen(value),
		.seq = seq,
		.keyless_seq = keyless_seq,
	};

	return o->partition(state, &r);
}

#endif /* KQ_TEST_PARTITIONER_H */
