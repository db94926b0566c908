/* The 32-bit MurmurHash2 variant of Kafka's default partitioner
 * (org.apache.kafka.common.utils.Utils.murmur2). */
#ifndef KQ_KEYHASH_MURMUR2_H
#define KQ_KEYHASH_MURMUR2_H

#include <stddef.h>
#include <stdint.h>

/* Hashes `len` bytes at `data` (borrowed; may be NULL when len is 0) with
 * Kafka's seed.  The result, read as a two's complement int32_t, equals
 * what Java's Utils.murmur2 returns for the same bytes. */
uint32_t kq__murmur2(const void *data, size_t len);

/* Kafka's partition for a hash: (hash & 0x7fffffff) % partitions, with
 * partitions > 0. */
uint32_t kq__murmur2_partition(uint32_t hash, uint32_t partitions);

#endif /* KQ_KEYHASH_MURMUR2_H */
