/* libFuzzer target for the cluster port's pre-auth receive path: any
 * bytes a stranger may send before it is authenticated, in any split,
 * to an accepting or a dialing end, with or without a secret.  The
 * first input byte picks the end, the mode and how the rest is cut into
 * reads; with a secret, a genuine hello of the other end may come first
 * so that the AUTH check itself is reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct kq__auth_key *key;

static int accept_lower(void *ctx, int id)
{
	return id >= 1 && id < 2;
}

/* Feeds the stream in reads of `chunk` bytes, keeping what was not
 * consumed the way a connection does; stops at the first verdict. */
static void feed(struct kq__auth *a, const uint8_t *data, size_t size,
		 size_t chunk)
{
	uint8_t *buf = malloc(size ? size : 1);
	size_t have = 0, off = 0;

	if (!buf)
		return;
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk, used = 0;
		const char *why = NULL;
		int rv;

		memcpy(buf + have, data + off, n);
		have += n;
		off += n;
		rv = kq__auth_feed(a, buf, have, &used, &why);
		if (used > have || (rv < 0 && !why))
			abort();
		if (rv != 0)
			break;
		memmove(buf, buf + used, have - used);
		have -= used;
		/* Never more buffered than a pre-auth frame's start. */
		if (have > KQ__FRAME_HEAD + KQ__FRAME_PREAUTH_MAX)
			abort();
		a->out_len = 0;
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kq__auth a, other;
	uint8_t mode;
	bool dialer, with_key, genuine;
	size_t chunk;

	if (size < 1)
		return 0;
	if (!key) {
		if (kq__auth_global_init() != 0 ||
		    kq__auth_key_new("fuzzing secret, 32 bytes long...", 32,
				     &key) != 0)
			abort();
	}
	mode = data[0];
	data++;
	size--;
	dialer = mode & 1;
	with_key = mode & 2;
	genuine = mode & 4;
	chunk = (size_t)(mode >> 3) + 1;
	if (dialer)
		kq__auth_start(&a, with_key ? key : NULL, 1, 2, true, NULL,
			       NULL);
	else
		kq__auth_start(&a, with_key ? key : NULL, 2, 0, false,
			       accept_lower, NULL);
	a.out_len = 0;
	if (genuine) {
		/* The other end's real hello first, then the fuzz bytes in
		 * place of its AUTH and whatever follows. */
		size_t used = 0;
		const char *why = NULL;

		if (dialer)
			kq__auth_start(&other, with_key ? key : NULL, 2, 0,
				       false, accept_lower, NULL);
		else
			kq__auth_start(&other, with_key ? key : NULL, 1, 2,
				       true, NULL, NULL);
		if (kq__auth_feed(&a, other.out, other.out_len, &used, &why) <
		    0)
			abort();
		a.out_len = 0;
	}
	feed(&a, data, size, chunk);
	kq__auth_clear(&a);
	return 0;
}
