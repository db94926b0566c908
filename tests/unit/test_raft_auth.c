/* The cluster port's handshake state machine: a good handshake in both
 * modes, a wrong secret, tampered, replayed and reflected messages,
 * broker ids that may not connect, frames out of order, an oversized
 * pre-auth frame, every truncation, and the secret file's rules. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <kafkaesque/error.h>

#include "../../plugins/raft/port/auth.h"

static const char secret[] = "correct horse battery staple";
static const char other_secret[] = "incorrect horse battery staple";

/* One end of a simulated connection: its handshake, the bytes it
 * received and not consumed yet, and everything it ever sent. */
struct side {
	struct kq__auth a;
	uint8_t in[512];
	size_t in_len;
	uint8_t sent[512];
	size_t sent_len;
	int rv;
	const char *why;
};

static int accept_lower(void *ctx, int id)
{
	int self = *(int *)ctx;

	return id < self && id != 9; /* broker 9 is not configured */
}

static int two = 2;

static void start(struct side *s, const struct kq__auth_key *key, int self,
		  int peer, bool dialer)
{
	memset(s, 0, sizeof(*s));
	kq__auth_start(&s->a, key, self, peer, dialer,
		       dialer ? NULL : accept_lower, dialer ? NULL : &two);
}

/* Takes what `s` queued to send. */
static size_t take_out(struct side *s, uint8_t *out)
{
	size_t n = s->a.out_len;

	memcpy(out, s->a.out, n);
	memcpy(s->sent + s->sent_len, s->a.out, n);
	s->sent_len += n;
	s->a.out_len = 0;
	return n;
}

/* Gives `to` bytes as if they arrived, and feeds them. */
static int receive(struct side *to, const uint8_t *data, size_t len)
{
	size_t used = 0;

	memcpy(to->in + to->in_len, data, len);
	to->in_len += len;
	to->why = NULL;
	to->rv = kq__auth_feed(&to->a, to->in, to->in_len, &used, &to->why);
	assert_true(used <= to->in_len);
	if (to->rv < 0)
		assert_non_null(to->why);
	memmove(to->in, to->in + used, to->in_len - used);
	to->in_len -= used;
	return to->rv;
}

/* Sends what `from` queued to `to`. */
static int pass(struct side *from, struct side *to)
{
	uint8_t buf[KQ__AUTH_OUT_MAX];
	size_t n = take_out(from, buf);

	return receive(to, buf, n);
}

static struct kq__auth_key *key_of(const char *text)
{
	struct kq__auth_key *k;

	assert_int_equal(kq__auth_key_new(text, strlen(text), &k), 0);
	return k;
}

static int setup(void **state)
{
	return kq__auth_global_init();
}

/* Dialer 1 and acceptor 2 both prove the secret; neither is done before
 * it checked the other's MAC. */
static void handshake(struct side *d, struct side *acc,
		      const struct kq__auth_key *kd,
		      const struct kq__auth_key *ka)
{
	start(d, kd, 1, 2, true);
	start(acc, ka, 2, 0, false);
	/* Both hellos cross: each is on its way before the other lands. */
	{
		uint8_t hd[KQ__AUTH_OUT_MAX], ha[KQ__AUTH_OUT_MAX];
		size_t nd = take_out(d, hd), na = take_out(acc, ha);

		assert_int_equal(nd, KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY);
		assert_int_equal(receive(d, ha, na), kd ? 0 : 1);
		assert_int_equal(receive(acc, hd, nd), ka ? 0 : 1);
	}
}

static void test_good_handshake(void **state)
{
	struct kq__auth_key *k1 = key_of(secret), *k2 = key_of(secret);
	struct side d, acc;

	handshake(&d, &acc, k1, k2);
	assert_int_equal(d.a.state, KQ__AUTH_WAIT_MAC);
	assert_int_equal(acc.a.state, KQ__AUTH_WAIT_MAC);
	assert_int_equal(acc.a.peer, 1);
	/* The AUTH frames cross. */
	assert_int_equal(d.a.out_len, KQ__FRAME_HEAD + KQ__FRAME_AUTH_BODY);
	assert_int_equal(pass(&acc, &d), 1);
	assert_int_equal(pass(&d, &acc), 1);
	assert_int_equal(d.a.state, KQ__AUTH_DONE);
	assert_int_equal(acc.a.state, KQ__AUTH_DONE);
	assert_int_equal(d.a.peer, 2);
	assert_int_equal(acc.a.peer, 1);
	/* The nonces were fresh. */
	assert_memory_not_equal(d.sent + 4 + 15, acc.sent + 4 + 15,
				KQ__FRAME_NONCE);
	kq__auth_key_free(k1);
	kq__auth_key_free(k2);
}

/* Frames after the AUTH in the same read are left for Raft. */
static void test_bytes_after_handshake(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	struct side d, acc;
	uint8_t buf[KQ__AUTH_OUT_MAX + 8];
	size_t n, used = 0;
	const char *why = NULL;

	handshake(&d, &acc, k, k);
	assert_int_equal(pass(&acc, &d), 1);
	n = take_out(&d, buf);
	memset(buf + n, 0xee, 8); /* not a valid frame: never looked at */
	assert_int_equal(kq__auth_feed(&acc.a, buf, n + 8, &used, &why), 1);
	assert_int_equal(used, n);
	/* Done stays done, consuming nothing. */
	assert_int_equal(kq__auth_feed(&acc.a, buf + n, 8, &used, &why), 1);
	assert_int_equal(used, 0);
	kq__auth_key_free(k);
}

static void test_open_mode(void **state)
{
	struct side d, acc;

	handshake(&d, &acc, NULL, NULL);
	assert_int_equal(d.rv, 1);
	assert_int_equal(acc.rv, 1);
	assert_int_equal(acc.a.peer, 1);
	/* No AUTH frames without a secret. */
	assert_int_equal(d.a.out_len, 0);
	assert_int_equal(acc.a.out_len, 0);
}

static void test_modes_must_match(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	struct side d, acc;

	start(&d, k, 1, 2, true);
	start(&acc, NULL, 2, 0, false);
	assert_int_equal(pass(&acc, &d), -EPROTO);
	assert_int_equal(pass(&d, &acc), -EPROTO);
	assert_int_equal(acc.a.state, KQ__AUTH_FAILED);
	kq__auth_key_free(k);
}

static void test_wrong_secret(void **state)
{
	struct kq__auth_key *k1 = key_of(secret), *k2 = key_of(other_secret);
	struct side d, acc;

	handshake(&d, &acc, k1, k2);
	assert_int_equal(pass(&acc, &d), -EACCES);
	assert_int_equal(pass(&d, &acc), -EACCES);
	assert_int_equal(d.a.state, KQ__AUTH_FAILED);
	assert_int_equal(acc.a.state, KQ__AUTH_FAILED);
	/* Failed stays failed. */
	assert_int_equal(receive(&acc, (const uint8_t *)"", 0), -EPROTO);
	kq__auth_key_free(k1);
	kq__auth_key_free(k2);
}

/* Any bit flipped in an AUTH, or a nonce changed on the way, fails. */
static void test_tampered(void **state)
{
	struct kq__auth_key *k = key_of(secret);

	for (size_t byte = 4; byte < KQ__FRAME_HEAD + KQ__FRAME_AUTH_BODY;
	     byte++) {
		struct side d, acc;
		uint8_t buf[KQ__AUTH_OUT_MAX];
		size_t n;

		handshake(&d, &acc, k, k);
		assert_int_equal(pass(&acc, &d), 1);
		n = take_out(&d, buf);
		buf[byte] ^= 0x10;
		/* The type byte changed is another frame: still refused. */
		assert_true(receive(&acc, buf, n) < 0);
		assert_int_equal(acc.a.state, KQ__AUTH_FAILED);
	}
	/* The dialer's nonce replaced on its way to the acceptor. */
	{
		struct side d, acc;
		uint8_t buf[KQ__AUTH_OUT_MAX];
		size_t n;

		start(&d, k, 1, 2, true);
		start(&acc, k, 2, 0, false);
		n = take_out(&d, buf);
		buf[4 + 15] ^= 1;
		assert_int_equal(receive(&acc, buf, n), 0);
		assert_int_equal(pass(&acc, &d), -EACCES);
	}
	kq__auth_key_free(k);
}

/* A whole recorded handshake played to fresh ends fails: their nonces
 * are new. */
static void test_replayed(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	struct side d, acc, d2, acc2;

	handshake(&d, &acc, k, k);
	assert_int_equal(pass(&acc, &d), 1);
	assert_int_equal(pass(&d, &acc), 1);
	/* The dialer's side (hello, AUTH) replayed to a new acceptor. */
	start(&acc2, k, 2, 0, false);
	assert_int_equal(receive(&acc2, d.sent, d.sent_len), -EACCES);
	/* The acceptor's side replayed to a new dialer. */
	start(&d2, k, 1, 2, true);
	assert_int_equal(receive(&d2, acc.sent, acc.sent_len), -EACCES);
	kq__auth_key_free(k);
}

/* An end's own messages sent back to it never pass. */
static void test_reflected(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	struct side d, acc;
	uint8_t hello[KQ__AUTH_OUT_MAX], mac[KQ__AUTH_OUT_MAX];

	/* The acceptor's own hello: it names the acceptor itself. */
	start(&acc, k, 2, 0, false);
	take_out(&acc, hello);
	assert_int_equal(
		receive(&acc, hello, KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY),
		-EPERM);
	/* The dialer's own hello: not the broker it dialed. */
	start(&d, k, 1, 2, true);
	take_out(&d, hello);
	assert_int_equal(
		receive(&d, hello, KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY),
		-EPERM);
	/* The dialer's own AUTH after a real hello: the label differs. */
	handshake(&d, &acc, k, k);
	take_out(&d, mac);
	assert_int_equal(receive(&d, mac, KQ__FRAME_HEAD + KQ__FRAME_AUTH_BODY),
			 -EACCES);
	kq__auth_key_free(k);
}

/* A hello claiming a broker that may not dial here, meant for another
 * broker, or from another broker than the one dialed. */
static void test_ids(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	uint8_t nonce[KQ__FRAME_NONCE] = {7};
	uint8_t hello[KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY];
	struct side s;

	start(&s, k, 2, 0, false);
	kq__frame_put_hello(hello, 9, 2, KQ__FRAME_HELLO_AUTH, nonce);
	assert_int_equal(receive(&s, hello, sizeof(hello)), -EPERM);
	assert_int_equal(s.a.peer, 9); /* for the log line */
	/* A higher id must be dialed by us, never dial here. */
	start(&s, k, 2, 0, false);
	kq__frame_put_hello(hello, 3, 2, KQ__FRAME_HELLO_AUTH, nonce);
	assert_int_equal(receive(&s, hello, sizeof(hello)), -EPERM);
	start(&s, k, 2, 0, false);
	kq__frame_put_hello(hello, 1, 3, KQ__FRAME_HELLO_AUTH, nonce);
	assert_int_equal(receive(&s, hello, sizeof(hello)), -EPERM);
	/* Nothing was queued in answer to a refused hello. */
	assert_int_equal(s.a.out_len, KQ__FRAME_HEAD + KQ__FRAME_HELLO_BODY);
	start(&s, k, 1, 2, true);
	kq__frame_put_hello(hello, 3, 0, KQ__FRAME_HELLO_AUTH, nonce);
	assert_int_equal(receive(&s, hello, sizeof(hello)), -EPERM);
	kq__auth_key_free(k);
}

static void test_out_of_order(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	uint8_t mac[KQ__FRAME_MAC] = {0}, frame[64];
	struct side d, acc;

	/* AUTH before the hello. */
	start(&acc, k, 2, 0, false);
	kq__frame_put_auth(frame, mac);
	assert_int_equal(receive(&acc, frame, kq__frame_auth_size()), -EPROTO);
	/* A keepalive (small enough) before the hello. */
	start(&acc, k, 2, 0, false);
	kq__frame_put_hb(frame, 1, 2, NULL, 0);
	assert_int_equal(receive(&acc, frame, kq__frame_hb_size(0)), -EPROTO);
	/* A second hello instead of the AUTH. */
	start(&d, k, 1, 2, true);
	start(&acc, k, 2, 0, false);
	{
		uint8_t hello[KQ__AUTH_OUT_MAX];
		size_t n = take_out(&d, hello);

		assert_int_equal(receive(&acc, hello, n), 0);
		assert_int_equal(receive(&acc, hello, n), -EPROTO);
	}
	kq__auth_key_free(k);
}

/* A length field above the hello's is refused from its 4 bytes alone. */
static void test_oversized(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	static const uint8_t huge[4] = {0x03, 0x00, 0x00, 0x00}; /* 48 MiB */
	uint8_t just[4] = {0, 0, 0, KQ__FRAME_PREAUTH_MAX + 1};
	struct side s;

	start(&s, k, 2, 0, false);
	assert_int_equal(receive(&s, huge, 2), 0);
	assert_int_equal(receive(&s, huge + 2, 2), KQ_ECORRUPT);
	assert_string_equal(s.why, "frame too long before authentication");
	start(&s, k, 2, 0, false);
	assert_int_equal(receive(&s, just, 4), KQ_ECORRUPT);
	start(&s, NULL, 2, 0, false);
	assert_int_equal(receive(&s, just, 4), KQ_ECORRUPT);
	kq__auth_key_free(k);
}

/* The dialer's bytes given to the acceptor one at a time: nothing fails
 * and nothing completes early. */
static void test_byte_at_a_time(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	struct side d, acc;
	uint8_t hello[KQ__AUTH_OUT_MAX], rest[KQ__AUTH_OUT_MAX];
	size_t n, m;

	start(&d, k, 1, 2, true);
	start(&acc, k, 2, 0, false);
	n = take_out(&d, hello);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(receive(&acc, hello + i, 1), 0);
	assert_int_equal(acc.a.state, KQ__AUTH_WAIT_MAC);
	assert_int_equal(pass(&acc, &d), 1);
	m = take_out(&d, rest);
	for (size_t i = 0; i + 1 < m; i++)
		assert_int_equal(receive(&acc, rest + i, 1), 0);
	assert_int_equal(receive(&acc, rest + m - 1, 1), 1);
	kq__auth_key_free(k);
}

/* Every shortening of the hello and of the AUTH, with a length field
 * that agrees with it, is refused; so is every longer one. */
static void test_truncations(void **state)
{
	struct kq__auth_key *k = key_of(secret);
	struct side d, acc, s;
	uint8_t hello[KQ__AUTH_OUT_MAX], mac[KQ__AUTH_OUT_MAX], cut[128];
	size_t hn, mn;

	start(&d, k, 1, 2, true);
	start(&acc, k, 2, 0, false);
	hn = take_out(&d, hello);
	for (size_t body = 1; body < hn - 4; body++) {
		memcpy(cut, hello, hn);
		cut[0] = cut[1] = cut[2] = 0;
		cut[3] = (uint8_t)body;
		start(&s, k, 2, 0, false);
		assert_true(receive(&s, cut, 4 + body) < 0);
	}
	/* One byte too many: a longer body than a hello's. */
	memcpy(cut, hello, hn);
	cut[3]++;
	cut[hn] = 0;
	start(&s, k, 2, 0, false);
	assert_true(receive(&s, cut, hn + 1) < 0);

	assert_int_equal(receive(&acc, hello, hn), 0);
	assert_int_equal(pass(&acc, &d), 1);
	mn = take_out(&d, mac);
	for (size_t body = 1; body < mn - 4; body++) {
		struct side a2;

		start(&a2, k, 2, 0, false);
		/* The same state as acc: its nonce, the dialer's hello. */
		a2.a = acc.a;
		a2.a.state = KQ__AUTH_WAIT_MAC;
		memcpy(cut, mac, mn);
		cut[3] = (uint8_t)body;
		assert_true(receive(&a2, cut, 4 + body) < 0);
	}
	/* The intact AUTH still passes on that state. */
	assert_int_equal(receive(&acc, mac, mn), 1);
	kq__auth_key_free(k);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void test_secret_file(void **state)
{
	char dir[] = "/tmp/kq-auth-XXXXXX", path[128], why[256];
	struct kq__auth_key *k1, *k2;
	struct side d, acc;
	int loose = -1;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/secret", dir);
	assert_int_equal(kq__auth_key_load(path, &k1, &loose, why, sizeof(why)),
			 KQ_ECONFIG);
	assert_non_null(strstr(why, "cannot open"));
	write_file(path, "", 0600);
	assert_int_equal(kq__auth_key_load(path, &k1, &loose, why, sizeof(why)),
			 KQ_ECONFIG);
	assert_string_equal(why, "empty");
	write_file(path, "fifteen-bytes..\n", 0600);
	assert_int_equal(kq__auth_key_load(path, &k1, &loose, why, sizeof(why)),
			 KQ_ECONFIG);
	assert_string_equal(why, "shorter than 16 bytes");
	assert_int_equal(kq__auth_key_load(dir, &k1, &loose, why, sizeof(why)),
			 KQ_ECONFIG);
	/* A trailing newline (LF or CRLF) is not part of the secret. */
	write_file(path, "correct horse battery staple\r\n", 0600);
	assert_int_equal(kq__auth_key_load(path, &k1, &loose, why, sizeof(why)),
			 0);
	assert_int_equal(loose, 0);
	write_file(path, "correct horse battery staple", 0644);
	assert_int_equal(kq__auth_key_load(path, &k2, &loose, why, sizeof(why)),
			 0);
	assert_int_equal(loose, 1);
	handshake(&d, &acc, k1, k2);
	assert_int_equal(pass(&acc, &d), 1);
	assert_int_equal(pass(&d, &acc), 1);
	kq__auth_key_free(k1);
	kq__auth_key_free(k2);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_handshake),
		cmocka_unit_test(test_bytes_after_handshake),
		cmocka_unit_test(test_open_mode),
		cmocka_unit_test(test_modes_must_match),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_replayed),
		cmocka_unit_test(test_reflected),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_truncations),
		cmocka_unit_test(test_secret_file),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
