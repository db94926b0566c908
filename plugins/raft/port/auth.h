/* The cluster port's handshake: before any frame of a connection reaches
 * Raft, each end proves to the other that it holds the cluster secret.
 *
 * Both ends send a hello at once (their broker id and a fresh random
 * nonce).  On the other's hello each answers with an AUTH frame: the
 * HMAC-SHA256, under a key derived from the secret, of a label naming the
 * sender's role (dialer or acceptor), both broker ids and both nonces.  A
 * connection is authenticated at an end once the other's AUTH checks.
 * Without a secret (open mode) the hellos alone establish it.
 *
 * Pure: no sockets and no clock, so the unit tests and the fuzz target
 * drive it directly.  Randomness and HMAC come from libsodium;
 * kq__auth_global_init() must have succeeded first. */
#ifndef KQ_RAFT_AUTH_H
#define KQ_RAFT_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

/* Room for what one end sends during the handshake: a hello, an AUTH. */
#define KQ__AUTH_OUT_MAX                                                       \
	(KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY + KQ__FRAME_HEAD +              \
	 KQ__FRAME_AUTH_BODY)

/* The key derived from the cluster secret; opaque. */
struct kq__auth_key;

/* Initialises libsodium.  0, or -1 when it cannot start (no entropy). */
int kq__auth_global_init(void);

/* Reads the secret in `path` (a regular file of KQ_CLUSTER_SECRET_MIN to
 * KQ_CLUSTER_SECRET_MAX bytes once one trailing newline, LF or CRLF, is
 * stripped) and derives the key.  On success *out is owned by the caller
 * (kq__auth_key_free()) and *loose is 1 when the file is readable by its
 * group or by others.  On failure returns KQ_ECONFIG (or -ENOMEM) with a
 * reason in why, which never holds any byte of the secret. */
int kq__auth_key_load(const char *path, struct kq__auth_key **out, int *loose,
		      char *why, size_t whylen);

/* Derives the key from `len` bytes of secret (borrowed).  *out is owned by
 * the caller.  0 or -ENOMEM. */
int kq__auth_key_new(const void *secret, size_t len, struct kq__auth_key **out);

/* Zeroes and frees a key; NULL is fine. */
void kq__auth_key_free(struct kq__auth_key *key);

/* Asked by an accepting end whether broker `id`, named by a hello, may
 * dial here at all (a configured peer with a lower id).  1 yes, 0 no. */
typedef int (*kq__auth_accept_fn)(void *ctx, int id);

enum kq__auth_state {
	KQ__AUTH_WAIT_HELLO, /* our hello is out, theirs has not come */
	KQ__AUTH_WAIT_MAC,   /* our AUTH is out, theirs has not come */
	KQ__AUTH_DONE,	     /* the other end is who it claims */
	KQ__AUTH_FAILED,
};

/* One connection's handshake, embedded in the connection.  Everything is
 * owned by the embedding struct except `key` and `ctx`, borrowed for the
 * handshake's life. */
struct kq__auth {
	const struct kq__auth_key *key; /* NULL: open mode */
	int self;
	/* The dialed broker; an acceptor learns it from the hello (after a
	 * refused hello, the id it claimed). */
	int peer;
	bool dialer;
	kq__auth_accept_fn accept;
	void *ctx;
	enum kq__auth_state state;
	uint8_t nonce[KQ__FRAME_NONCE];
	uint8_t peer_nonce[KQ__FRAME_NONCE];
	/* Frames to send, in order; the caller sends and clears them
	 * (out_len = 0) after kq__auth_start() and each kq__auth_feed(). */
	uint8_t out[KQ__AUTH_OUT_MAX];
	size_t out_len;
};

/* Starts a handshake: picks a fresh nonce and puts our hello in a->out.
 * A dialer passes the broker it dials as `peer`; an acceptor passes 0 and
 * an `accept` check (ctx is passed to it). */
void kq__auth_start(struct kq__auth *a, const struct kq__auth_key *key,
		    int self, int peer, bool dialer, kq__auth_accept_fn accept,
		    void *ctx);

/* Feeds the bytes received so far that were not consumed yet (borrowed).
 * Complete frames are handled one by one; a length field above
 * KQ__FRAME_PREAUTH_MAX fails at once.  *used is set to the bytes
 * consumed.  Returns:
 *   0  more bytes are needed (*used may be less than len: a frame's
 *      start);
 *   1  authenticated (a->peer is the other end): the bytes after *used
 *      are the other end's first frames after the handshake;
 *   <0 failed, *why set (a static string; a->state is KQ__AUTH_FAILED
 *      and every later call fails too): KQ_ECORRUPT a malformed or too
 *      long frame, -EPROTO a frame out of order or a mismatch of modes
 *      or versions, -EPERM a broker id that may not connect here, -EACCES
 *      a MAC that does not check (another secret, a replay, tampering).
 * A reply to send may be in a->out afterwards, on success or not. */
int kq__auth_feed(struct kq__auth *a, const uint8_t *buf, size_t len,
		  size_t *used, const char **why);

/* Forgets the nonces (zeroed); call when the connection goes. */
void kq__auth_clear(struct kq__auth *a);

#endif /* KQ_RAFT_AUTH_H */
