/* Fixed-width integers in byte buffers, at any alignment: little-endian
 * (segment files, snapshot files) and big-endian (the cluster port's
 * frames, network order).  Header-only; nothing to link. */
#ifndef KAFKAESQUE_BYTES_H
#define KAFKAESQUE_BYTES_H

#include <stdint.h>

static inline void kq_put32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void kq_put64le(uint8_t *p, uint64_t v)
{
	kq_put32le(p, (uint32_t)v);
	kq_put32le(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t kq_get32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t kq_get64le(const uint8_t *p)
{
	return (uint64_t)kq_get32le(p) | (uint64_t)kq_get32le(p + 4) << 32;
}

static inline void kq_put32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void kq_put64be(uint8_t *p, uint64_t v)
{
	kq_put32be(p, (uint32_t)(v >> 32));
	kq_put32be(p + 4, (uint32_t)v);
}

static inline uint32_t kq_get32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline uint64_t kq_get64be(const uint8_t *p)
{
	return (uint64_t)kq_get32be(p) << 32 | kq_get32be(p + 4);
}

#endif /* KAFKAESQUE_BYTES_H */
