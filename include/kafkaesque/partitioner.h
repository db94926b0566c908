/* kafkaesque plugin SDK: partitioner modules.
 *
 * A partitioner maps one message to a partition.  It is pure and
 * synchronous: no I/O, no blocking, called on the event loop for every
 * published message. */
#ifndef KAFKAESQUE_PARTITIONER_H
#define KAFKAESQUE_PARTITIONER_H

#include "plugin.h"

/* One message to place.  All pointers are borrowed for the duration of the
 * call only. */
struct kq_partition_req {
	const char *topic;
	uint32_t partitions; /* > 0 */
	const void *key;     /* NULL when the message has no key */
	size_t key_len;
	const void *value; /* the whole stored message */
	size_t value_len;
	uint64_t seq;	      /* messages of this topic placed so far by
			       * this broker (0, 1, 2, ...) */
	uint64_t keyless_seq; /* same, counting keyless messages only */
};

struct kq_partitioner_ops {
	KQ_MODULE_OPS_FIELDS
	/* Returns a partition in [0, req->partitions). */
	uint32_t (*partition)(void *state, const struct kq_partition_req *req);
};

#endif /* KAFKAESQUE_PARTITIONER_H */
