/* Payload buffers and the outbox of the Raft core. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

/* The reference count sits in front of the payload, aligned for any
 * data the payload may hold. */
struct buf_hdr {
	size_t refs;
	max_align_t align[];
};

static struct buf_hdr *hdr(void *p)
{
	return (struct buf_hdr *)((char *)p - sizeof(struct buf_hdr));
}

void *kq__raft_buf_alloc(size_t len)
{
	struct buf_hdr *h = malloc(sizeof(*h) + (len ? len : 1));

	if (!h)
		return NULL;
	h->refs = 1;
	return h->align;
}

void *kq__raft_buf_copy(const void *p, size_t len)
{
	void *b;

	if (!p)
		return NULL;
	b = kq__raft_buf_alloc(len);
	if (b && len)
		memcpy(b, p, len);
	return b;
}

void kq__raft_buf_ref(void *p)
{
	if (p)
		hdr(p)->refs++;
}

void kq__raft_buf_unref(void *p)
{
	if (p && --hdr(p)->refs == 0)
		free(hdr(p));
}

const char *kq__raft_msg_name(enum kq__raft_msg_type t)
{
	switch (t) {
	case KQ__RAFT_MSG_APPEND: return "APPEND";
	case KQ__RAFT_MSG_APPEND_RESP: return "APPEND_RESP";
	case KQ__RAFT_MSG_VOTE: return "VOTE";
	case KQ__RAFT_MSG_VOTE_RESP: return "VOTE_RESP";
	case KQ__RAFT_MSG_PREVOTE: return "PREVOTE";
	case KQ__RAFT_MSG_PREVOTE_RESP: return "PREVOTE_RESP";
	case KQ__RAFT_MSG_HEARTBEAT: return "HEARTBEAT";
	case KQ__RAFT_MSG_HEARTBEAT_RESP: return "HEARTBEAT_RESP";
	case KQ__RAFT_MSG_SNAPSHOT: return "SNAPSHOT";
	case KQ__RAFT_MSG_TIMEOUT_NOW: return "TIMEOUT_NOW";
	}
	return "?";
}

void kq__raft_msg_release(struct kq__raft_msg *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		kq__raft_buf_unref(m->entries[i].data);
	free(m->entries);
	kq__raft_buf_unref(m->snap.data);
	m->entries = NULL;
	m->n_entries = 0;
	m->snap.data = NULL;
}

/* Queues m (whose entries array and payload references move into the
 * outbox).  On failure m is released. */
int kq__raft_send(struct kq__raft *r, struct kq__raft_msg *m)
{
	m->from = r->id;
	if (r->n_out == r->cap_out) {
		size_t cap = r->cap_out ? r->cap_out * 2 : 16;
		struct kq__raft_msg *o = realloc(r->out, cap * sizeof(*o));

		if (!o) {
			kq__raft_msg_release(m);
			r->fatal = -ENOMEM;
			return -ENOMEM;
		}
		r->out = o;
		r->cap_out = cap;
	}
	r->out[r->n_out++] = *m;
	return 0;
}
