/* The entry codec: what a broker record becomes in a Raft entry's
 * payload, and back. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>

#include "module.h"

/* An entry's payload carries what a record holds besides offset, term and
 * flags: [timestamp_ms i64][key_len u32][key][value], big-endian.  Control
 * entries carry none. */
#define PAYLOAD_HEAD 12

/* Encodes a record's payload into a new buffer (NULL for a control
 * record, which has none): malloc'd, or a kq__raft_buf when `rbuf`;
 * *len receives its size. */
int kq__raft_entry_encode(const struct kq_record *rec, bool rbuf, void **out,
			  uint32_t *len)
{
	uint8_t *p;
	uint64_t n;

	*out = NULL;
	*len = 0;
	if (rec->flags & KQ_RECORD_CONTROL)
		return 0;
	n = PAYLOAD_HEAD + (uint64_t)rec->key_len + rec->value_len;
	if (n > UINT32_MAX)
		return KQ_EBADARG;
	p = rbuf ? kq__raft_buf_alloc(n) : malloc(n);
	if (!p)
		return -ENOMEM;
	kq_put64be(p, (uint64_t)rec->timestamp_ms);
	kq_put32be(p + 8, rec->key ? rec->key_len : 0);
	if (rec->key && rec->key_len)
		memcpy(p + PAYLOAD_HEAD, rec->key, rec->key_len);
	if (rec->value_len)
		memcpy(p + PAYLOAD_HEAD + (rec->key ? rec->key_len : 0),
		       rec->value, rec->value_len);
	*out = p;
	*len = (uint32_t)n;
	return 0;
}

/* The record view of an entry; pointers borrow the entry's payload. */
void kq__raft_entry_decode(const struct kq__raft_entry *e,
			   struct kq_record *rec)
{
	const uint8_t *p = e->data;
	uint32_t klen;

	memset(rec, 0, sizeof(*rec));
	rec->offset = e->index;
	rec->term = e->term;
	rec->flags = e->flags;
	if (!p || e->len < PAYLOAD_HEAD) {
		/* Not written by this module's propose: all of it is the
		 * value. */
		rec->value = p;
		rec->value_len = p ? e->len : 0;
		return;
	}
	klen = kq_get32be(p + 8);
	if (klen > e->len - PAYLOAD_HEAD) {
		rec->value = p;
		rec->value_len = e->len;
		return;
	}
	rec->timestamp_ms = (int64_t)kq_get64be(p);
	rec->key = klen ? p + PAYLOAD_HEAD : NULL;
	rec->key_len = klen;
	rec->value = p + PAYLOAD_HEAD + klen;
	rec->value_len = e->len - PAYLOAD_HEAD - klen;
}
