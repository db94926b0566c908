/* Fixed-width integers in byte buffers, at any alignment: little-endian
 * (segment files, snapshot files) and big-endian (the cluster port's
 * frames, network order).  Header-only; nothing to link. */
#ifndef KAFKAESQUE_BYTES_H
#define KAFKAESQUE_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline void kq_put16le(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline uint16_t kq_get16le(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

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

/* A bounds-checked reader over a caller-owned buffer: a read past the end
 * sets `bad` and yields zeros (NULL from kq_take), so a decoder checks
 * once, at the end. */
struct kq_reader {
	const uint8_t *p;
	size_t left;
	int bad;
};

/* The next n bytes (borrowed from the buffer), or NULL. */
static inline const uint8_t *kq_take(struct kq_reader *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->bad || r->left < n) {
		r->bad = 1;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

static inline uint8_t kq_take8(struct kq_reader *r)
{
	const uint8_t *p = kq_take(r, 1);

	return p ? p[0] : 0;
}

static inline uint16_t kq_take16le(struct kq_reader *r)
{
	const uint8_t *p = kq_take(r, 2);

	return p ? kq_get16le(p) : 0;
}

/* kq_take32le() and its kin: the next integer of the width and order
 * the name says, or 0. */
#define KQ__TAKE(name, type, width, get)                                       \
	static inline type name(struct kq_reader *r)                           \
	{                                                                      \
		const uint8_t *p = kq_take(r, width);                          \
                                                                               \
		return p ? get(p) : 0;                                         \
	}
KQ__TAKE(kq_take32le, uint32_t, 4, kq_get32le)
KQ__TAKE(kq_take64le, uint64_t, 8, kq_get64le)
KQ__TAKE(kq_take32be, uint32_t, 4, kq_get32be)
KQ__TAKE(kq_take64be, uint64_t, 8, kq_get64be)
#undef KQ__TAKE

#endif /* KAFKAESQUE_BYTES_H */
