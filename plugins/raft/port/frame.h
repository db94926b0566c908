/* The cluster port's wire format: frames between two brokers carrying the
 * Raft messages of every group they share.  Pure encoding and decoding,
 * no I/O, so the unit tests and the fuzz target use it directly.
 *
 * Every frame starts with a 4-byte big-endian length (the bytes after the
 * length field, at least 1, at most KQ__FRAME_MAX) and a 1-byte frame
 * type; docs/raft.md lists the rest byte by byte. */
#ifndef KQ_RAFT_FRAME_H
#define KQ_RAFT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "../core/raft.h"

/* The largest frame body accepted or produced (64 MiB). */
#define KQ__FRAME_MAX (64u << 20)
/* Bytes before a frame's body: the length field. */
#define KQ__FRAME_HEAD 4
/* "KQRF": the first field of a hello frame. */
#define KQ__FRAME_MAGIC 0x4b515246u
/* 3: CALL and REPLY frames, and heartbeats marked quiet; 2: the hello
 * carries a nonce and the AUTH frame exists (1 had neither).  A broker
 * of another version is refused with a clear reason. */
#define KQ__FRAME_VERSION 3
/* Bytes of a hello's nonce and of an AUTH frame's MAC (HMAC-SHA256). */
#define KQ__FRAME_NONCE 32
#define KQ__FRAME_MAC	32
/* Hello flags: bit 0, the sender holds a cluster secret and will prove
 * it with an AUTH frame. */
#define KQ__FRAME_HELLO_AUTH 1u
/* Body bytes of the two frames a connection may carry before it is
 * authenticated; a larger declared length is refused unread. */
#define KQ__FRAME_HELLO_BODY  (1 + 4 + 1 + 4 + 4 + 1 + KQ__FRAME_NONCE)
#define KQ__FRAME_AUTH_BODY   (1 + KQ__FRAME_MAC)
#define KQ__FRAME_PREAUTH_MAX KQ__FRAME_HELLO_BODY
/* Bytes of one coalesced heartbeat item. */
#define KQ__FRAME_HB_ITEM 25
/* In an item's type byte: a HEARTBEAT whose leader sleeps. */
#define KQ__FRAME_HB_QUIET 0x80

enum kq__frame_type {
	KQ__FRAME_HELLO = 1,	  /* magic, version, ids, flags, nonce */
	KQ__FRAME_MSG = 2,	  /* one Raft message of one group */
	KQ__FRAME_HEARTBEATS = 3, /* heartbeats and answers of many groups */
	KQ__FRAME_AUTH = 4,	  /* the MAC proving the sender's secret */
	KQ__FRAME_CALL = 5,  /* a request of one broker's core to another */
	KQ__FRAME_REPLY = 6, /* the answer to a CALL, by its id */
};

/* One item of a coalesced heartbeat frame. */
struct kq__frame_hb {
	uint64_t group;
	enum kq__raft_msg_type type; /* HEARTBEAT or HEARTBEAT_RESP */
	bool quiet;		     /* HEARTBEAT: kq__raft_msg.quiet */
	uint64_t term;
	uint64_t commit;
};

/* A decoded frame.  For KQ__FRAME_HELLO and KQ__FRAME_AUTH, nonce and
 * mac point into the caller's buffer.  For KQ__FRAME_MSG, msg.entries is an
 * array allocated by kq__frame_decode() (freed by kq__frame_release()) whose
 * payloads, like msg.snap.data, point into the caller's buffer: they are
 * borrowed from it and stay valid only as long as it does.  For
 * KQ__FRAME_HEARTBEATS, hb points into the buffer too; read the items
 * with kq__frame_hb_get(). */
struct kq__frame {
	enum kq__frame_type type;
	/* HELLO */
	uint32_t version;
	int broker_id;	      /* the sender */
	int hello_to;	      /* the broker it means to reach; 0: unknown */
	uint32_t hello_flags; /* KQ__FRAME_HELLO_AUTH */
	const uint8_t *nonce; /* KQ__FRAME_NONCE bytes */
	/* AUTH */
	const uint8_t *mac; /* KQ__FRAME_MAC bytes */
	/* MSG */
	uint64_t group;
	struct kq__raft_msg msg;
	/* HEARTBEATS */
	uint64_t hb_from;
	uint64_t hb_to;
	uint32_t n_hb;
	const uint8_t *hb;
	/* CALL and REPLY: the caller's id for the request, and the body
	 * (pointing into the caller's buffer) */
	uint64_t call_id;
	const uint8_t *body;
	size_t body_len;
};

/* Looks at the start of a byte stream.  Returns 1 and sets *frame_len (the
 * whole frame, length field included) when a complete frame is there, 0
 * when more bytes are needed, or KQ_ECORRUPT when the length field is out
 * of range (then *why names the problem; a static string). */
int kq__frame_peek(const uint8_t *buf, size_t len, size_t *frame_len,
		   const char **why);

/* Same with a lower bound on the body: a length field above `max` is
 * KQ_ECORRUPT as soon as the 4 bytes of the field are there, so nothing
 * more of such a frame is ever buffered.  `max` is at most KQ__FRAME_MAX. */
int kq__frame_peek_max(const uint8_t *buf, size_t len, uint32_t max,
		       size_t *frame_len, const char **why);

/* Decodes one complete frame (as kq__frame_peek() delimited it) into f.
 * Returns 0, -ENOMEM, or KQ_ECORRUPT with *why set (a static string) for
 * anything malformed: unknown types, truncated or trailing bytes, counts
 * that do not fit the frame, flags or fields a message of its type never
 * carries.  Nothing is allocated on failure. */
int kq__frame_decode(const uint8_t *buf, size_t len, struct kq__frame *f,
		     const char **why);

/* Frees what kq__frame_decode() allocated in f (not the payloads). */
void kq__frame_release(struct kq__frame *f);

/* Item i (< f->n_hb) of a decoded HEARTBEATS frame. */
void kq__frame_hb_get(const struct kq__frame *f, uint32_t i,
		      struct kq__frame_hb *out);

/* Encoding.  Each *_size() gives the exact bytes the matching put writes,
 * length field included; the caller owns the buffer. */
size_t kq__frame_hello_size(void);
/* `to` is the broker the sender means to reach (0 when it does not know,
 * on an accepted connection), `flags` KQ__FRAME_HELLO_AUTH or 0, `nonce`
 * KQ__FRAME_NONCE bytes (borrowed, copied). */
void kq__frame_put_hello(uint8_t *out, int broker_id, int to, uint32_t flags,
			 const uint8_t *nonce);

/* An AUTH frame carrying `mac` (KQ__FRAME_MAC bytes, borrowed, copied). */
size_t kq__frame_auth_size(void);
void kq__frame_put_auth(uint8_t *out, const uint8_t *mac);

/* A MSG frame; SIZE_MAX when the message would exceed KQ__FRAME_MAX. */
size_t kq__frame_msg_size(const struct kq__raft_msg *m);
void kq__frame_put_msg(uint8_t *out, uint64_t group,
		       const struct kq__raft_msg *m);

/* A HEARTBEATS frame of n items (n may be 0: a keepalive). */
size_t kq__frame_hb_size(uint32_t n);
void kq__frame_put_hb(uint8_t *out, uint64_t from, uint64_t to,
		      const struct kq__frame_hb *items, uint32_t n);

/* A CALL or REPLY frame (`type`) of `len` body bytes (borrowed, copied);
 * SIZE_MAX from the size when the body would exceed KQ__FRAME_MAX. */
size_t kq__frame_call_size(size_t len);
void kq__frame_put_call(uint8_t *out, enum kq__frame_type type, uint64_t id,
			const void *body, size_t len);

#endif /* KQ_RAFT_FRAME_H */
