/* The wire format of requests one broker forwards to another (forward.c
 * sends them, serve.c runs them), carried by the consensus module's
 * call().  Little-endian.  A request:
 *   kind (1) | CREATE: name (2+n) partitions (4) options (2, then 2+n each)
 *            | PUBLISH: topic (2+n) partition (4) count (4),
 *                       then per message: value (4+n) key (4+n)
 *            | META: a metadata record, JSON (the rest)
 *            | FETCH: topic (2+n) partition (4) from (8) end (8) budget (4)
 *                     max (4, 0: none)
 * and its answer:
 *   status (4, a kq error or 0) | moved (4: 0 when it ran; else the leader
 *   the broker knows, -1 for none) | errmsg (2+n) | CREATE: partitions (4)
 *   metadata end (8) | PUBLISH: first offset (8), all three always there
 *   (0 when they do not apply); but for FETCH:
 *   status (4, a kq error or 0) | errmsg (2+n) | next (8) | end (8) |
 *   count (4) | per record: offset (8) value (4+n)
 * where `end` is the bound the reader asked for, cut to what the broker
 * asked has committed and to lost ranges, and `next` is where the read
 * goes on.  A failed status may follow records: they come first.  A read
 * from UINT64_MAX returns no record and asks only the commit end (CMIT
 * with an offset, in commit.c). */
#ifndef KQ_CORE_WIRE_H
#define KQ_CORE_WIRE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>

/* A forwarded batch that waits gathers at most this much (as a local
 * batch in publish.c). */
#define KQ__FWD_MERGE_MSGS  8192
#define KQ__FWD_MERGE_BYTES (8u << 20)
/* Options a forwarded CRTP may carry. */
#define KQ__FWD_MAX_OPTIONS 16

/* A growing buffer a request is encoded into; `oom` once a growth
 * failed (the request is then refused). */
struct kq__wire {
	uint8_t *p;
	size_t len, cap;
	int oom;
};

static inline void kq__wire_put(struct kq__wire *w, const void *data, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *np;

		while (cap < w->len + n)
			cap *= 2;
		np = realloc(w->p, cap);
		if (!np) {
			w->oom = 1;
			return;
		}
		w->p = np;
		w->cap = cap;
	}
	if (n)
		memcpy(w->p + w->len, data, n);
	w->len += n;
}

static inline void kq__wire_put8(struct kq__wire *w, uint8_t v)
{
	kq__wire_put(w, &v, 1);
}

static inline void kq__wire_put16(struct kq__wire *w, uint16_t v)
{
	uint8_t b[2];

	kq_put16le(b, v);
	kq__wire_put(w, b, 2);
}

static inline void kq__wire_put32(struct kq__wire *w, uint32_t v)
{
	uint8_t b[4];

	kq_put32le(b, v);
	kq__wire_put(w, b, 4);
}

static inline void kq__wire_put_str(struct kq__wire *w, const char *s)
{
	size_t n = strlen(s);

	if (n > UINT16_MAX)
		n = UINT16_MAX;
	kq__wire_put16(w, (uint16_t)n);
	kq__wire_put(w, s, n);
}

/* A string of at most `max` bytes into out (NUL-terminated); a longer
 * one is malformed, unless `cut` (a message, cut to fit). */
static inline void kq__wire_rd_string(struct kq_reader *r, char *out,
				      size_t max, int cut)
{
	uint16_t n = kq_take16le(r);
	const uint8_t *p = kq_take(r, n);

	if (!p) {
		out[0] = '\0';
		return;
	}
	if (n > max && !cut)
		r->bad = 1;
	if (n > max)
		n = (uint16_t)max;
	memcpy(out, p, n);
	out[n] = '\0';
}

static inline void kq__wire_rd_str(struct kq_reader *r, char *out, size_t max)
{
	kq__wire_rd_string(r, out, max, 0);
}

/* The largest answer: status, moved, a 255-byte message, three
 * numbers. */
#define KQ__WIRE_ANSWER_MAX (4 + 4 + 2 + 255 + 4 + 8 + 8)

/* Encodes an answer into out (KQ__WIRE_ANSWER_MAX bytes); returns its length.
 * No allocation, so that every request gets its answer. */
static inline size_t kq__wire_encode_answer(uint8_t *out, int status, int moved,
					    const char *errmsg, uint32_t nparts,
					    uint64_t meta_end, uint64_t first)
{
	size_t n = errmsg ? strlen(errmsg) : 0;

	if (n > 255)
		n = 255;
	kq_put32le(out, (uint32_t)status);
	kq_put32le(out + 4, (uint32_t)moved);
	kq_put16le(out + 8, (uint16_t)n);
	memcpy(out + 10, errmsg ? errmsg : "", n);
	kq_put32le(out + 10 + n, nparts);
	kq_put64le(out + 14 + n, meta_end);
	kq_put64le(out + 22 + n, first);
	return 30 + n;
}

/* The most a read's answer carries (plus one record). */
#define KQ__WIRE_READ_MAX (1u << 20)
/* The largest head of a read's answer: status, message, the numbers. */
#define KQ__WIRE_READ_HEAD_MAX (4 + 2 + 255 + 8 + 8 + 4)

/* Encodes the head of a read's answer into out (KQ__WIRE_READ_HEAD_MAX
 * bytes); returns its length. */
static inline size_t kq__wire_encode_read_head(uint8_t *out, int status,
					       const char *errmsg,
					       uint64_t next, uint64_t end,
					       uint32_t count)
{
	size_t n = strlen(errmsg);

	if (n > 255)
		n = 255;
	kq_put32le(out, (uint32_t)status);
	kq_put16le(out + 4, (uint16_t)n);
	memcpy(out + 6, errmsg, n);
	kq_put64le(out + 6 + n, next);
	kq_put64le(out + 14 + n, end);
	kq_put32le(out + 22 + n, count);
	return 26 + n;
}

#endif /* KQ_CORE_WIRE_H */
