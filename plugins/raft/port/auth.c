/* The cluster port's handshake (see auth.h and docs/raft.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <kafkaesque/bytes.h>
#include <kafkaesque/error.h>
#include <kafkaesque/secret.h>

#include "auth.h"

/* Labels keep the MACs of the two directions, and the derived key, apart:
 * a MAC an end computes can never pass for one the other end must send.
 * The NUL is part of each label, so no label is a prefix of another. */
static const char label_key[] = "kafkaesque/cluster/v2/key";
static const char label_dialer[] = "kafkaesque/cluster/v2/dialer";
static const char label_acceptor[] = "kafkaesque/cluster/v2/acceptor";

struct kq__auth_key {
	uint8_t k[crypto_auth_hmacsha256_KEYBYTES];
};

int kq__auth_global_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

int kq__auth_key_new(const void *secret, size_t len, struct kq__auth_key **out)
{
	struct kq__auth_key *key = malloc(sizeof(*key));
	crypto_auth_hmacsha256_state st;

	*out = NULL;
	if (!key)
		return -ENOMEM;
	/* HMAC takes a secret of any length as its key; the one-shot MACs
	 * below want exactly 32 bytes, so derive them. */
	crypto_auth_hmacsha256_init(&st, secret, len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)label_key,
				      sizeof(label_key));
	crypto_auth_hmacsha256_final(&st, key->k);
	sodium_memzero(&st, sizeof(st));
	*out = key;
	return 0;
}

void kq__auth_key_free(struct kq__auth_key *key)
{
	if (!key)
		return;
	sodium_memzero(key, sizeof(*key));
	free(key);
}

int kq__auth_key_load(const char *path, struct kq__auth_key **out, int *loose,
		      char *why, size_t whylen)
{
	uint8_t buf[KQ_CLUSTER_SECRET_MAX + 3];
	const char *wrong = NULL;
	size_t len = 0;
	mode_t mode = 0;
	int rv = KQ_ECONFIG;

	*out = NULL;
	*loose = 0;
	if (kq_secret_read(path, buf, sizeof(buf), &len, &mode, why, whylen) ==
	    0) {
		*loose = (mode & (S_IRGRP | S_IROTH)) != 0;
		wrong = kq_cluster_secret_refused(len);
		if (!wrong)
			rv = kq__auth_key_new(buf, len, out);
	}
	sodium_memzero(buf, sizeof(buf));
	if (wrong)
		snprintf(why, whylen, "%s", wrong);
	return rv;
}

/* The MAC the `from_dialer` end of this connection sends. */
static void mac_of(const struct kq__auth *a, bool from_dialer,
		   uint8_t out[KQ__FRAME_MAC])
{
	uint8_t msg[sizeof(label_acceptor) + 8 + 2 * KQ__FRAME_NONCE], *p = msg;
	const char *label = from_dialer ? label_dialer : label_acceptor;
	size_t label_len =
		from_dialer ? sizeof(label_dialer) : sizeof(label_acceptor);
	int dialer_id = a->dialer ? a->self : a->peer;
	int acceptor_id = a->dialer ? a->peer : a->self;
	const uint8_t *dialer_nonce = a->dialer ? a->nonce : a->peer_nonce;
	const uint8_t *acceptor_nonce = a->dialer ? a->peer_nonce : a->nonce;

	memcpy(p, label, label_len);
	p += label_len;
	kq_put32be(p, (uint32_t)dialer_id);
	kq_put32be(p + 4, (uint32_t)acceptor_id);
	p += 8;
	memcpy(p, dialer_nonce, KQ__FRAME_NONCE);
	p += KQ__FRAME_NONCE;
	memcpy(p, acceptor_nonce, KQ__FRAME_NONCE);
	p += KQ__FRAME_NONCE;
	crypto_auth_hmacsha256(out, msg, (unsigned long long)(p - msg),
			       a->key->k);
}

static void queue(struct kq__auth *a, const uint8_t *frame, size_t len)
{
	/* Only a hello and one AUTH are ever queued: out has room. */
	memcpy(a->out + a->out_len, frame, len);
	a->out_len += len;
}

void kq__auth_start(struct kq__auth *a, const struct kq__auth_key *key,
		    int self, int peer, bool dialer, kq__auth_accept_fn accept,
		    void *ctx)
{
	uint8_t hello[KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY];

	memset(a, 0, sizeof(*a));
	a->key = key;
	a->self = self;
	a->peer = dialer ? peer : 0;
	a->dialer = dialer;
	a->accept = accept;
	a->ctx = ctx;
	a->state = KQ__AUTH_WAIT_HELLO;
	randombytes_buf(a->nonce, sizeof(a->nonce));
	kq__frame_put_hello(hello, self, a->peer,
			    key ? KQ__FRAME_HELLO_AUTH : 0, a->nonce);
	queue(a, hello, sizeof(hello));
}

static int on_hello(struct kq__auth *a, const struct kq__frame *f,
		    const char **why)
{
	bool theirs = (f->hello_flags & KQ__FRAME_HELLO_AUTH) != 0;

	if (a->dialer) {
		if (f->broker_id != a->peer) {
			*why = "hello from another broker id than the one "
			       "dialed";
			return -EPERM;
		}
		/* An acceptor cannot know who dials; it names no one. */
		if (f->hello_to != 0 && f->hello_to != a->self) {
			*why = "hello meant for another broker";
			return -EPERM;
		}
	} else {
		/* Kept even if refused: log lines name the claim. */
		a->peer = f->broker_id;
		if (f->hello_to != a->self) {
			*why = "hello meant for another broker";
			return -EPERM;
		}
		if (f->broker_id == a->self || !a->accept ||
		    !a->accept(a->ctx, f->broker_id)) {
			*why = "hello from a broker id that may not dial "
			       "here";
			return -EPERM;
		}
	}
	if (theirs != (a->key != NULL)) {
		*why = theirs ? "the other broker has a cluster secret and "
				"this one has none"
			      : "the other broker has no cluster secret";
		return -EPROTO;
	}
	memcpy(a->peer_nonce, f->nonce, KQ__FRAME_NONCE);
	/* Our own hello sent back: never let it count as the other end's. */
	if (sodium_memcmp(a->peer_nonce, a->nonce, KQ__FRAME_NONCE) == 0) {
		*why = "our own nonce came back";
		return -EACCES;
	}
	if (!a->key) {
		a->state = KQ__AUTH_DONE;
		return 1;
	}
	{
		uint8_t mac[KQ__FRAME_MAC];
		uint8_t frame[KQ__FRAME_HEAD + KQ__FRAME_AUTH_BODY];

		mac_of(a, a->dialer, mac);
		kq__frame_put_auth(frame, mac);
		queue(a, frame, sizeof(frame));
		sodium_memzero(mac, sizeof(mac));
	}
	a->state = KQ__AUTH_WAIT_MAC;
	return 0;
}

static int on_auth(struct kq__auth *a, const struct kq__frame *f,
		   const char **why)
{
	uint8_t want[KQ__FRAME_MAC];
	int bad;

	mac_of(a, !a->dialer, want);
	bad = crypto_verify_32(want, f->mac) != 0;
	sodium_memzero(want, sizeof(want));
	if (bad) {
		*why = "authentication failed (another cluster secret, or a "
		       "replayed or altered handshake)";
		return -EACCES;
	}
	a->state = KQ__AUTH_DONE;
	return 1;
}

/* One complete frame: 0 more needed, 1 done, < 0 failed. */
static int step(struct kq__auth *a, const uint8_t *buf, size_t len,
		const char **why)
{
	struct kq__frame f;
	int rv = kq__frame_decode(buf, len, &f, why);

	if (rv != 0)
		return rv == -ENOMEM ? KQ_ECORRUPT : rv;
	if (a->state == KQ__AUTH_WAIT_HELLO) {
		if (f.type != KQ__FRAME_HELLO) {
			kq__frame_release(&f);
			*why = "frame before hello";
			return -EPROTO;
		}
		return on_hello(a, &f, why);
	}
	if (f.type != KQ__FRAME_AUTH) {
		kq__frame_release(&f);
		*why = f.type == KQ__FRAME_HELLO
			       ? "second hello"
			       : "frame before authentication";
		return -EPROTO;
	}
	return on_auth(a, &f, why);
}

int kq__auth_feed(struct kq__auth *a, const uint8_t *buf, size_t len,
		  size_t *used, const char **why)
{
	size_t off = 0, flen = 0;
	int rv;

	*used = 0;
	if (a->state == KQ__AUTH_DONE)
		return 1;
	if (a->state == KQ__AUTH_FAILED) {
		*why = "handshake already failed";
		return -EPROTO;
	}
	for (;;) {
		rv = kq__frame_peek_max(buf + off, len - off,
					KQ__FRAME_PREAUTH_MAX, &flen, why);
		if (rv == 0) {
			*used = off;
			return 0;
		}
		if (rv > 0) {
			rv = step(a, buf + off, flen, why);
			off += flen;
			if (rv == 0)
				continue;
		}
		*used = off;
		if (rv < 0)
			a->state = KQ__AUTH_FAILED;
		return rv;
	}
}

void kq__auth_clear(struct kq__auth *a)
{
	sodium_memzero(a->nonce, sizeof(a->nonce));
	sodium_memzero(a->peer_nonce, sizeof(a->peer_nonce));
}
