/* The cluster port's frame codec.  Integers are big-endian. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/bytes.h>
#include <kafkaesque/error.h>

#include "frame.h"

/* Body bytes of a MSG frame without entries and snapshot data. */
#define MSG_FIXED (1 + 8 + 1 + 1 + 7 * 8 + 4 + 8 + 8 + 1 + 4)
/* Bytes of one entry besides its payload. */
#define ENTRY_FIXED (8 + 8 + 4 + 4)
#define HB_FIXED    (1 + 8 + 8 + 4)

static uint8_t *put8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	kq_put32be(p, v);
	return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	kq_put64be(p, v);
	return p + 8;
}

static uint8_t *put_bytes(uint8_t *p, const void *data, size_t len)
{
	if (len)
		memcpy(p, data, len);
	return p + len;
}

int kq__frame_peek_max(const uint8_t *buf, size_t len, uint32_t max,
		       size_t *frame_len, const char **why)
{
	uint32_t body;

	if (len < KQ__FRAME_HEAD)
		return 0;
	body = kq_get32be(buf);
	if (body < 1 || body > max || body > KQ__FRAME_MAX) {
		if (!body)
			*why = "empty frame";
		else if (max < KQ__FRAME_MAX && body <= KQ__FRAME_MAX)
			*why = "frame too long before authentication";
		else
			*why = "frame longer than 64 MiB";
		return KQ_ECORRUPT;
	}
	if (len - KQ__FRAME_HEAD < body)
		return 0;
	*frame_len = KQ__FRAME_HEAD + (size_t)body;
	return 1;
}

int kq__frame_peek(const uint8_t *buf, size_t len, size_t *frame_len,
		   const char **why)
{
	return kq__frame_peek_max(buf, len, KQ__FRAME_MAX, frame_len, why);
}

static int corrupt(const char **why, const char *text)
{
	*why = text;
	return KQ_ECORRUPT;
}

static int decode_msg(struct kq_reader *r, struct kq__frame *f,
		      const char **why)
{
	struct kq__raft_msg *m = &f->msg;
	uint32_t n, snap_len;
	uint8_t type, flags, snap_flags;
	const uint8_t *data;

	f->group = kq_take64be(r);
	type = kq_take8(r);
	flags = kq_take8(r);
	m->from = kq_take64be(r);
	m->to = kq_take64be(r);
	m->term = kq_take64be(r);
	m->index = kq_take64be(r);
	m->log_term = kq_take64be(r);
	m->commit = kq_take64be(r);
	m->hint = kq_take64be(r);
	n = kq_take32be(r);
	if (r->bad)
		return corrupt(why, "truncated message");
	if (type < KQ__RAFT_MSG_APPEND || type > KQ__RAFT_MSG_TIMEOUT_NOW)
		return corrupt(why, "unknown message type");
	if (flags & ~3u || ((flags & 2) && type != KQ__RAFT_MSG_HEARTBEAT))
		return corrupt(why, "unknown message flags");
	m->type = (enum kq__raft_msg_type)type;
	m->reject = flags & 1;
	m->quiet = (flags & 2) != 0;
	/* A VOTE's hint says transfer (1) or not (0); these never carry
	 * one. */
	if ((type == KQ__RAFT_MSG_VOTE && m->hint > 1) ||
	    ((type == KQ__RAFT_MSG_PREVOTE ||
	      type == KQ__RAFT_MSG_TIMEOUT_NOW) &&
	     m->hint))
		return corrupt(why, "hint a message of its type never carries");
	if (n && type != KQ__RAFT_MSG_APPEND)
		return corrupt(why, "entries in a message that carries none");
	/* Each entry needs at least its fixed part: checked before the
	 * array is allocated. */
	if (n > r->left / ENTRY_FIXED)
		return corrupt(why, "entry count larger than the frame");
	if (n) {
		m->entries = calloc(n, sizeof(*m->entries));
		if (!m->entries)
			return -ENOMEM;
		m->n_entries = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct kq__raft_entry *e = &m->entries[i];

		e->index = kq_take64be(r);
		e->term = kq_take64be(r);
		e->flags = kq_take32be(r);
		e->len = kq_take32be(r);
		if (r->bad)
			goto truncated;
		data = kq_take(r, e->len);
		if (!data)
			goto truncated;
		e->data = e->len ? (void *)data : NULL;
		if (e->flags & ~(uint32_t)KQ__RAFT_ENTRY_CONTROL) {
			*why = "unknown entry flags";
			goto bad;
		}
		/* The core relies on entries following the previous one. */
		if (e->index != m->index + 1 + i) {
			*why = "entry indexes not consecutive";
			goto bad;
		}
	}
	m->snap.index = kq_take64be(r);
	m->snap.term = kq_take64be(r);
	snap_flags = kq_take8(r);
	snap_len = kq_take32be(r);
	if (r->bad)
		goto truncated;
	if (snap_flags & ~1u) {
		*why = "unknown snapshot flags";
		goto bad;
	}
	if (!(snap_flags & 1) && snap_len) {
		*why = "snapshot data length without data";
		goto bad;
	}
	if ((snap_flags & 1) && type != KQ__RAFT_MSG_SNAPSHOT) {
		*why = "snapshot data in a message that carries none";
		goto bad;
	}
	data = kq_take(r, snap_len);
	if (!data)
		goto truncated;
	/* An empty snapshot still has data: point at the frame itself. */
	m->snap.data = (snap_flags & 1) ? (void *)data : NULL;
	m->snap.len = snap_len;
	return 0;
truncated:
	*why = "truncated message";
bad:
	free(m->entries);
	m->entries = NULL;
	m->n_entries = 0;
	return KQ_ECORRUPT;
}

int kq__frame_decode(const uint8_t *buf, size_t len, struct kq__frame *f,
		     const char **why)
{
	struct kq_reader r;
	size_t flen;
	int rv;

	memset(f, 0, sizeof(*f));
	rv = kq__frame_peek(buf, len, &flen, why);
	if (rv == 0 || (rv == 1 && flen != len))
		return corrupt(why, "frame length does not match");
	if (rv < 0)
		return rv;
	r.p = buf + KQ__FRAME_HEAD;
	r.left = len - KQ__FRAME_HEAD;
	r.bad = 0;
	f->type = (enum kq__frame_type)kq_take8(&r);
	switch (f->type) {
	case KQ__FRAME_HELLO: {
		uint32_t magic = kq_take32be(&r), id, to;

		f->version = kq_take8(&r);
		if (r.bad)
			return corrupt(why, "truncated hello");
		if (magic != KQ__FRAME_MAGIC)
			return corrupt(why, "bad magic");
		/* Checked before the rest: other versions have other
		 * lengths, and this is the reason worth logging. */
		if (f->version != KQ__FRAME_VERSION)
			return corrupt(why, "unsupported version");
		id = kq_take32be(&r);
		to = kq_take32be(&r);
		f->hello_flags = kq_take8(&r);
		f->nonce = kq_take(&r, KQ__FRAME_NONCE);
		if (r.bad)
			return corrupt(why, "truncated hello");
		if (id < 1 || id > 0x7fffffffu || to > 0x7fffffffu)
			return corrupt(why, "bad broker id");
		if (f->hello_flags & ~KQ__FRAME_HELLO_AUTH)
			return corrupt(why, "unknown hello flags");
		f->broker_id = (int)id;
		f->hello_to = (int)to;
		break;
	}
	case KQ__FRAME_AUTH:
		f->mac = kq_take(&r, KQ__FRAME_MAC);
		if (r.bad)
			return corrupt(why, "truncated auth");
		break;
	case KQ__FRAME_MSG:
		rv = decode_msg(&r, f, why);
		if (rv != 0)
			return rv;
		break;
	case KQ__FRAME_HEARTBEATS:
		f->hb_from = kq_take64be(&r);
		f->hb_to = kq_take64be(&r);
		f->n_hb = kq_take32be(&r);
		if (r.bad)
			return corrupt(why, "truncated heartbeats");
		if (f->n_hb > r.left / KQ__FRAME_HB_ITEM ||
		    r.left != (size_t)f->n_hb * KQ__FRAME_HB_ITEM)
			return corrupt(why, "heartbeat count does not match");
		f->hb = r.p;
		for (uint32_t i = 0; i < f->n_hb; i++) {
			uint8_t t = f->hb[i * KQ__FRAME_HB_ITEM + 8];

			if (t != KQ__RAFT_MSG_HEARTBEAT &&
			    t != (KQ__RAFT_MSG_HEARTBEAT |
				  KQ__FRAME_HB_QUIET) &&
			    t != KQ__RAFT_MSG_HEARTBEAT_RESP)
				return corrupt(why, "bad heartbeat type");
		}
		r.left = 0;
		break;
	case KQ__FRAME_CALL:
	case KQ__FRAME_REPLY:
		f->call_id = kq_take64be(&r);
		if (r.bad)
			return corrupt(why, "truncated call");
		f->body = r.p;
		f->body_len = r.left;
		r.left = 0;
		break;
	default: return corrupt(why, "unknown frame type");
	}
	if (r.left) {
		kq__frame_release(f);
		return corrupt(why, "trailing bytes");
	}
	return 0;
}

void kq__frame_release(struct kq__frame *f)
{
	if (f->type == KQ__FRAME_MSG)
		free(f->msg.entries);
	f->msg.entries = NULL;
	f->msg.n_entries = 0;
}

void kq__frame_hb_get(const struct kq__frame *f, uint32_t i,
		      struct kq__frame_hb *out)
{
	const uint8_t *p = f->hb + (size_t)i * KQ__FRAME_HB_ITEM;

	out->group = kq_get64be(p);
	out->type = (enum kq__raft_msg_type)(p[8] & ~KQ__FRAME_HB_QUIET);
	out->quiet = (p[8] & KQ__FRAME_HB_QUIET) != 0;
	out->term = kq_get64be(p + 9);
	out->commit = kq_get64be(p + 17);
}

size_t kq__frame_hello_size(void)
{
	return KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY;
}

void kq__frame_put_hello(uint8_t *out, int broker_id, int to, uint32_t flags,
			 const uint8_t *nonce)
{
	out = put32(out, KQ__FRAME_HELLO_BODY);
	out = put8(out, KQ__FRAME_HELLO);
	out = put32(out, KQ__FRAME_MAGIC);
	out = put8(out, KQ__FRAME_VERSION);
	out = put32(out, (uint32_t)broker_id);
	out = put32(out, (uint32_t)to);
	out = put8(out, (uint8_t)flags);
	put_bytes(out, nonce, KQ__FRAME_NONCE);
}

size_t kq__frame_auth_size(void)
{
	return KQ__FRAME_HEAD + KQ__FRAME_AUTH_BODY;
}

void kq__frame_put_auth(uint8_t *out, const uint8_t *mac)
{
	out = put32(out, KQ__FRAME_AUTH_BODY);
	out = put8(out, KQ__FRAME_AUTH);
	put_bytes(out, mac, KQ__FRAME_MAC);
}

size_t kq__frame_msg_size(const struct kq__raft_msg *m)
{
	uint64_t body = MSG_FIXED;

	for (size_t i = 0; i < m->n_entries; i++)
		body += ENTRY_FIXED + (uint64_t)m->entries[i].len;
	if (m->snap.data)
		body += m->snap.len;
	if (body > KQ__FRAME_MAX)
		return SIZE_MAX;
	return KQ__FRAME_HEAD + (size_t)body;
}

void kq__frame_put_msg(uint8_t *out, uint64_t group,
		       const struct kq__raft_msg *m)
{
	size_t size = kq__frame_msg_size(m);

	out = put32(out, (uint32_t)(size - KQ__FRAME_HEAD));
	out = put8(out, KQ__FRAME_MSG);
	out = put64(out, group);
	out = put8(out, (uint8_t)m->type);
	out = put8(out, (m->reject ? 1 : 0) | (m->quiet ? 2 : 0));
	out = put64(out, m->from);
	out = put64(out, m->to);
	out = put64(out, m->term);
	out = put64(out, m->index);
	out = put64(out, m->log_term);
	out = put64(out, m->commit);
	out = put64(out, m->hint);
	out = put32(out, (uint32_t)m->n_entries);
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct kq__raft_entry *e = &m->entries[i];

		out = put64(out, e->index);
		out = put64(out, e->term);
		out = put32(out, e->flags);
		out = put32(out, e->len);
		out = put_bytes(out, e->data, e->len);
	}
	out = put64(out, m->snap.index);
	out = put64(out, m->snap.term);
	out = put8(out, m->snap.data ? 1 : 0);
	out = put32(out, m->snap.data ? m->snap.len : 0);
	if (m->snap.data)
		put_bytes(out, m->snap.data, m->snap.len);
}

size_t kq__frame_hb_size(uint32_t n)
{
	return KQ__FRAME_HEAD + HB_FIXED + (size_t)n * KQ__FRAME_HB_ITEM;
}

void kq__frame_put_hb(uint8_t *out, uint64_t from, uint64_t to,
		      const struct kq__frame_hb *items, uint32_t n)
{
	out = put32(out, (uint32_t)(kq__frame_hb_size(n) - KQ__FRAME_HEAD));
	out = put8(out, KQ__FRAME_HEARTBEATS);
	out = put64(out, from);
	out = put64(out, to);
	out = put32(out, n);
	for (uint32_t i = 0; i < n; i++) {
		out = put64(out, items[i].group);
		out = put8(out, (uint8_t)(items[i].type |
					  (items[i].quiet ? KQ__FRAME_HB_QUIET
							  : 0)));
		out = put64(out, items[i].term);
		out = put64(out, items[i].commit);
	}
}

size_t kq__frame_call_size(size_t len)
{
	if (len > KQ__FRAME_MAX - 9)
		return SIZE_MAX;
	return KQ__FRAME_HEAD + 9 + len;
}

void kq__frame_put_call(uint8_t *out, enum kq__frame_type type, uint64_t id,
			const void *body, size_t len)
{
	out = put32(out, (uint32_t)(9 + len));
	out = put8(out, (uint8_t)type);
	out = put64(out, id);
	put_bytes(out, body, len);
}
