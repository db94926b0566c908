#include <kafkaesque/bytes.h>

#include "murmur2.h"

#define MURMUR2_SEED 0x9747b28cu
#define MURMUR2_M    0x5bd1e995u
#define MURMUR2_R    24

/* Java works on signed ints, but its `*` wraps modulo 2^32 and Kafka uses
 * the unsigned shift `>>>` throughout, so unsigned 32-bit arithmetic gives
 * the same bits.  Kafka's length is an int: the seed is mixed with the low
 * 32 bits of it. */
uint32_t kq__murmur2(const void *data, size_t len)
{
	const unsigned char *b = data;
	uint32_t h = MURMUR2_SEED ^ (uint32_t)len;
	size_t i, body = len & ~(size_t)3;

	for (i = 0; i < body; i += 4) {
		/* Little-endian words, whatever the host's byte order. */
		uint32_t k = kq_get32le(b + i);

		k *= MURMUR2_M;
		k ^= k >> MURMUR2_R;
		k *= MURMUR2_M;
		h *= MURMUR2_M;
		h ^= k;
	}

	switch (len & 3) {
	case 3:
		h ^= (uint32_t)b[body + 2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)b[body + 1] << 8;
		/* fall through */
	case 1:
		h ^= (uint32_t)b[body];
		h *= MURMUR2_M;
		break;
	}

	h ^= h >> 13;
	h *= MURMUR2_M;
	h ^= h >> 15;
	return h;
}

uint32_t kq__murmur2_partition(uint32_t hash, uint32_t partitions)
{
	/* Kafka's Utils.toPositive: clear the sign bit, never abs(), so
	 * that INT_MIN maps to 0 as well. */
	return (hash & 0x7fffffffu) % partitions;
}
