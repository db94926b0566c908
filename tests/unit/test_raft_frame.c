/* The cluster port's frame codec: round trips of every message type,
 * coalesced heartbeats, and every truncation or corruption of a valid
 * frame rejected without a crash. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/bytes.h>

#include <kafkaesque/error.h>

#include "../../plugins/raft/port/frame.h"

/* Encodes m as a MSG frame into a new buffer; *len receives its size. */
static uint8_t *encode_msg(uint64_t group, const struct kq__raft_msg *m,
			   size_t *len)
{
	uint8_t *buf;

	*len = kq__frame_msg_size(m);
	assert_true(*len != SIZE_MAX);
	buf = malloc(*len);
	assert_non_null(buf);
	kq__frame_put_msg(buf, group, m);
	return buf;
}

static void assert_msg_equal(const struct kq__raft_msg *a,
			     const struct kq__raft_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->from, b->from);
	assert_int_equal(a->to, b->to);
	assert_int_equal(a->quiet, b->quiet);
	assert_int_equal(a->term, b->term);
	assert_int_equal(a->index, b->index);
	assert_int_equal(a->log_term, b->log_term);
	assert_int_equal(a->commit, b->commit);
	assert_int_equal(a->hint, b->hint);
	assert_int_equal(a->reject, b->reject);
	assert_int_equal(a->n_entries, b->n_entries);
	for (size_t i = 0; i < a->n_entries; i++) {
		assert_int_equal(a->entries[i].index, b->entries[i].index);
		assert_int_equal(a->entries[i].term, b->entries[i].term);
		assert_int_equal(a->entries[i].flags, b->entries[i].flags);
		assert_int_equal(a->entries[i].len, b->entries[i].len);
		if (a->entries[i].len)
			assert_memory_equal(a->entries[i].data,
					    b->entries[i].data,
					    a->entries[i].len);
		else
			assert_null(b->entries[i].data);
	}
	assert_int_equal(a->snap.index, b->snap.index);
	assert_int_equal(a->snap.term, b->snap.term);
	assert_int_equal(a->snap.data != NULL, b->snap.data != NULL);
	if (a->snap.data) {
		assert_int_equal(a->snap.len, b->snap.len);
		assert_memory_equal(a->snap.data, b->snap.data, a->snap.len);
	}
}

static char payload_a[] = "hello";
static char payload_b[] = "{\"Key\":\"k\",\"Body\":\"a longer payload\"}";
static char snap_data[] = "state-machine-snapshot";

static struct kq__raft_entry sample_entries[] = {
	{.index = 8, .term = 3, .flags = KQ__RAFT_ENTRY_CONTROL},
	{.index = 9, .term = 3, .len = 5, .data = payload_a},
	{.index = 10, .term = 4, .len = sizeof(payload_b), .data = payload_b},
};

/* One message of every type, with entries and snapshots where a type
 * carries them. */
static struct kq__raft_msg sample(enum kq__raft_msg_type t)
{
	struct kq__raft_msg m = {
		.type = t,
		.from = 2,
		.to = 3,
		.term = 0x0102030405060708ull,
		.index = 7,
		.log_term = 3,
		.commit = 6,
		/* A VOTE's hint is its transfer flag; PREVOTE and
		 * TIMEOUT_NOW carry none. */
		.hint = t == KQ__RAFT_MSG_VOTE ? 1
			: t == KQ__RAFT_MSG_PREVOTE ||
					t == KQ__RAFT_MSG_TIMEOUT_NOW
				? 0
				: 5,
		.reject = t == KQ__RAFT_MSG_APPEND_RESP ||
			  t == KQ__RAFT_MSG_VOTE_RESP,
		.quiet = t == KQ__RAFT_MSG_HEARTBEAT,
	};

	if (t == KQ__RAFT_MSG_APPEND) {
		m.entries = sample_entries;
		m.n_entries = 3;
	}
	if (t == KQ__RAFT_MSG_SNAPSHOT) {
		m.snap.index = 100;
		m.snap.term = 9;
		m.snap.data = snap_data;
		m.snap.len = sizeof(snap_data);
	}
	return m;
}

static void test_round_trip_every_type(void **state)
{
	for (int t = KQ__RAFT_MSG_APPEND; t <= KQ__RAFT_MSG_TIMEOUT_NOW; t++) {
		struct kq__raft_msg m = sample((enum kq__raft_msg_type)t);
		struct kq__frame f;
		const char *why = NULL;
		size_t len, flen = 0;
		uint8_t *buf = encode_msg(0xfeedfacecafebeefull, &m, &len);

		assert_int_equal(kq__frame_peek(buf, len, &flen, &why), 1);
		assert_int_equal(flen, len);
		assert_int_equal(kq__frame_decode(buf, len, &f, &why), 0);
		assert_int_equal(f.type, KQ__FRAME_MSG);
		assert_int_equal(f.group, 0xfeedfacecafebeefull);
		assert_msg_equal(&m, &f.msg);
		kq__frame_release(&f);
		free(buf);
	}
}

static void test_retention_snapshot_without_data(void **state)
{
	struct kq__raft_msg m = sample(KQ__RAFT_MSG_SNAPSHOT);
	struct kq__frame f;
	const char *why;
	size_t len;
	uint8_t *buf;

	m.snap.data = NULL;
	m.snap.len = 0;
	buf = encode_msg(12, &m, &len);
	assert_int_equal(kq__frame_decode(buf, len, &f, &why), 0);
	assert_null(f.msg.snap.data);
	assert_int_equal(f.msg.snap.index, 100);
	kq__frame_release(&f);
	free(buf);
}

static const uint8_t nonce[KQ__FRAME_NONCE] = {1, 2, 3, 4, 5, 6, 7, 8, 9};

static void test_hello(void **state)
{
	uint8_t buf[64], mac[KQ__FRAME_MAC];
	struct kq__frame f;
	const char *why;
	size_t len = kq__frame_hello_size();

	kq__frame_put_hello(buf, 42, 7, KQ__FRAME_HELLO_AUTH, nonce);
	assert_int_equal(len, 4 + KQ__FRAME_HELLO_BODY);
	assert_int_equal(kq__frame_decode(buf, len, &f, &why), 0);
	assert_int_equal(f.type, KQ__FRAME_HELLO);
	assert_int_equal(f.broker_id, 42);
	assert_int_equal(f.hello_to, 7);
	assert_int_equal(f.hello_flags, KQ__FRAME_HELLO_AUTH);
	assert_memory_equal(f.nonce, nonce, KQ__FRAME_NONCE);
	assert_int_equal(f.version, KQ__FRAME_VERSION);

	memset(mac, 0xa5, sizeof(mac));
	kq__frame_put_auth(buf, mac);
	len = kq__frame_auth_size();
	assert_int_equal(kq__frame_decode(buf, len, &f, &why), 0);
	assert_int_equal(f.type, KQ__FRAME_AUTH);
	assert_memory_equal(f.mac, mac, KQ__FRAME_MAC);
}

/* A hello of version 1 (10 bytes of body) is named as such. */
static void test_hello_version_1(void **state)
{
	static const uint8_t v1[] = {0,	   0,	 0, 10, 1, 0x4b, 0x51,
				     0x52, 0x46, 1, 0,	0, 0,	 2};
	struct kq__frame f;
	const char *why = NULL;

	assert_int_equal(kq__frame_decode(v1, sizeof(v1), &f, &why),
			 KQ_ECORRUPT);
	assert_string_equal(why, "unsupported version");
}

/* Before authentication, a frame longer than a hello is refused from
 * its length field alone. */
static void test_preauth_cap(void **state)
{
	uint8_t big[4] = {0x03, 0x00, 0x00, 0x00}; /* 48 MiB */
	uint8_t hello[64];
	const char *why = NULL;
	size_t flen = 0;

	assert_int_equal(
		kq__frame_peek_max(big, 4, KQ__FRAME_PREAUTH_MAX, &flen, &why),
		KQ_ECORRUPT);
	assert_string_equal(why, "frame too long before authentication");
	/* Without the cap it would wait for 48 MiB. */
	assert_int_equal(kq__frame_peek(big, 4, &flen, &why), 0);
	kq__frame_put_hello(hello, 1, 2, 0, nonce);
	assert_int_equal(kq__frame_peek_max(hello, kq__frame_hello_size(),
					    KQ__FRAME_PREAUTH_MAX, &flen, &why),
			 1);
	assert_int_equal(flen, kq__frame_hello_size());
}

static void test_coalesced_heartbeats(void **state)
{
	struct kq__frame_hb items[1000], got;
	struct kq__frame f;
	const char *why;
	size_t len = kq__frame_hb_size(1000);
	uint8_t *buf = malloc(len);

	for (uint32_t i = 0; i < 1000; i++)
		items[i] = (struct kq__frame_hb){
			.group = ((uint64_t)i + 1) << 17,
			.type = i % 2 ? KQ__RAFT_MSG_HEARTBEAT_RESP
				      : KQ__RAFT_MSG_HEARTBEAT,
			.quiet = i % 4 == 0, /* a leader asleep */
			.term = 5 + i,
			.commit = 1000 - i,
		};
	kq__frame_put_hb(buf, 1, 2, items, 1000);
	/* One frame for a thousand groups, 25 bytes each. */
	assert_int_equal(len, 4 + 21 + 1000 * 25);
	assert_int_equal(kq__frame_decode(buf, len, &f, &why), 0);
	assert_int_equal(f.type, KQ__FRAME_HEARTBEATS);
	assert_int_equal(f.hb_from, 1);
	assert_int_equal(f.hb_to, 2);
	assert_int_equal(f.n_hb, 1000);
	for (uint32_t i = 0; i < 1000; i++) {
		kq__frame_hb_get(&f, i, &got);
		assert_int_equal(got.group, items[i].group);
		assert_int_equal(got.type, items[i].type);
		assert_int_equal(got.quiet, items[i].quiet);
		assert_int_equal(got.term, items[i].term);
		assert_int_equal(got.commit, items[i].commit);
	}
	free(buf);
}

static void test_keepalive_frame(void **state)
{
	uint8_t buf[64];
	struct kq__frame f;
	const char *why;

	kq__frame_put_hb(buf, 3, 1, NULL, 0);
	assert_int_equal(kq__frame_decode(buf, kq__frame_hb_size(0), &f, &why),
			 0);
	assert_int_equal(f.n_hb, 0);
}

static void test_stream_of_frames(void **state)
{
	struct kq__raft_msg m = sample(KQ__RAFT_MSG_APPEND);
	size_t l1, flen;
	uint8_t *one = encode_msg(1, &m, &l1);
	uint8_t *two = malloc(2 * l1);
	const char *why;

	memcpy(two, one, l1);
	memcpy(two + l1, one, l1);
	/* Every prefix shorter than a frame asks for more bytes. */
	for (size_t i = 0; i < l1; i++)
		assert_int_equal(kq__frame_peek(two, i, &flen, &why), 0);
	assert_int_equal(kq__frame_peek(two, 2 * l1, &flen, &why), 1);
	assert_int_equal(flen, l1);
	free(one);
	free(two);
}

static void test_bad_lengths(void **state)
{
	uint8_t zero[8] = {0, 0, 0, 0, 1};
	uint8_t huge[8] = {0x04, 0x00, 0x00, 0x01, 2};
	size_t flen;
	const char *why = NULL;
	struct kq__frame f;

	assert_int_equal(kq__frame_peek(zero, 5, &flen, &why), KQ_ECORRUPT);
	assert_non_null(why);
	assert_int_equal(kq__frame_peek(huge, 5, &flen, &why), KQ_ECORRUPT);
	assert_int_equal(kq__frame_decode(huge, 5, &f, &why), KQ_ECORRUPT);
}

/* Decodes a damaged copy; it must be refused (or, for changes a valid
 * frame may carry, decoded) without reading outside the buffer.  The
 * copy is exactly `len` bytes so the sanitizer sees any overrun. */
static int try_decode(const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	struct kq__frame f;
	const char *why = NULL;
	int rv;

	memcpy(copy, data, len);
	rv = kq__frame_decode(copy, len, &f, &why);
	if (rv == 0)
		kq__frame_release(&f);
	else
		assert_non_null(why);
	free(copy);
	return rv;
}

/* Every truncation with a consistent length field, and every shortened
 * buffer, is refused. */
static void check_truncations(const uint8_t *buf, size_t len)
{
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(len);
		uint32_t body = (uint32_t)(n >= 4 ? n - 4 : 0);

		assert_int_not_equal(try_decode(buf, n), 0);
		memcpy(cut, buf, len);
		kq_put32be(cut, body);
		if (n >= 4)
			assert_int_not_equal(try_decode(cut, n), 0);
		free(cut);
	}
}

/* Every single-byte change either decodes to a valid frame or is
 * refused; counts and lengths blown up are refused. */
static void check_corruptions(const uint8_t *buf, size_t len)
{
	static const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
	uint8_t *bad = malloc(len);

	for (size_t i = 0; i < len; i++)
		for (size_t v = 0; v < sizeof(values); v++) {
			memcpy(bad, buf, len);
			if (bad[i] == values[v])
				continue;
			bad[i] = values[v];
			(void)try_decode(bad, len);
		}
	/* A byte of trailing garbage inside the frame. */
	{
		uint8_t *longer = malloc(len + 1);
		uint32_t body = (uint32_t)(len + 1 - 4);

		memcpy(longer, buf, len);
		longer[len] = 0;
		kq_put32be(longer, body);
		assert_int_equal(try_decode(longer, len + 1), KQ_ECORRUPT);
		free(longer);
	}
	free(bad);
}

static void test_truncated_and_corrupted_messages(void **state)
{
	for (int t = KQ__RAFT_MSG_APPEND; t <= KQ__RAFT_MSG_SNAPSHOT; t++) {
		struct kq__raft_msg m = sample((enum kq__raft_msg_type)t);
		size_t len;
		uint8_t *buf = encode_msg(77, &m, &len);

		check_truncations(buf, len);
		check_corruptions(buf, len);
		free(buf);
	}
}

static void test_truncated_and_corrupted_heartbeats(void **state)
{
	struct kq__frame_hb items[3] = {
		{1, KQ__RAFT_MSG_HEARTBEAT, false, 2, 3},
		{2, KQ__RAFT_MSG_HEARTBEAT_RESP, false, 2, 0},
		{3, KQ__RAFT_MSG_HEARTBEAT, true, 9, 9},
	};
	uint8_t buf[256], hello[64], mac[KQ__FRAME_MAC] = {0};
	size_t len = kq__frame_hb_size(3);

	kq__frame_put_hb(buf, 1, 2, items, 3);
	check_truncations(buf, len);
	check_corruptions(buf, len);
	kq__frame_put_hello(hello, 7, 0, KQ__FRAME_HELLO_AUTH, nonce);
	check_truncations(hello, kq__frame_hello_size());
	check_corruptions(hello, kq__frame_hello_size());
	kq__frame_put_auth(hello, mac);
	check_truncations(hello, kq__frame_auth_size());
	check_corruptions(hello, kq__frame_auth_size());
}

/* Offsets of fields in a MSG frame: [len 4][type 1][group 8][msg type 1]
 * [flags 1][7 x 8][count 4][entries...]. */
#define OFF_MSGTYPE 13
#define OFF_FLAGS   14
#define OFF_COUNT   71
#define OFF_ENTRY   75

static void test_specific_corruptions(void **state)
{
	struct kq__raft_msg m = sample(KQ__RAFT_MSG_APPEND);
	size_t len;
	uint8_t *buf = encode_msg(1, &m, &len), *bad = malloc(len);

	/* Absurd entry count: refused before anything is allocated. */
	memcpy(bad, buf, len);
	kq_put32be(bad + OFF_COUNT, 0xffffffffu);
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	/* An entry length past the end of the frame. */
	memcpy(bad, buf, len);
	kq_put32be(bad + OFF_ENTRY + 20, 0x7fffffffu);
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	/* Unknown message type and flags. */
	memcpy(bad, buf, len);
	bad[OFF_MSGTYPE] = 0;
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	bad[OFF_MSGTYPE] = 11;
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	memcpy(bad, buf, len);
	bad[OFF_FLAGS] = 2;
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	/* Entries whose indexes do not follow the previous one. */
	memcpy(bad, buf, len);
	bad[OFF_ENTRY + 7] ^= 1;
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	/* Unknown frame type. */
	memcpy(bad, buf, len);
	bad[4] = 9;
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	/* Entries in a message type that carries none. */
	memcpy(bad, buf, len);
	bad[OFF_MSGTYPE] = KQ__RAFT_MSG_VOTE;
	assert_int_equal(try_decode(bad, len), KQ_ECORRUPT);
	free(bad);
	free(buf);
}

/* A VOTE's hint is 0 or 1 (a transfer); PREVOTE and TIMEOUT_NOW carry
 * none: anything else is refused. */
static void test_hints(void **state)
{
	static const struct {
		enum kq__raft_msg_type type;
		uint64_t hint;
		int ok;
	} cases[] = {
		{KQ__RAFT_MSG_VOTE, 0, 1},
		{KQ__RAFT_MSG_VOTE, 1, 1},
		{KQ__RAFT_MSG_VOTE, 2, 0},
		{KQ__RAFT_MSG_PREVOTE, 0, 1},
		{KQ__RAFT_MSG_PREVOTE, 1, 0},
		{KQ__RAFT_MSG_TIMEOUT_NOW, 0, 1},
		{KQ__RAFT_MSG_TIMEOUT_NOW, 1, 0},
		{KQ__RAFT_MSG_APPEND_RESP, 9, 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kq__raft_msg m = sample(cases[i].type);
		struct kq__frame f;
		size_t len;
		uint8_t *buf;

		m.hint = cases[i].hint;
		buf = encode_msg(1, &m, &len);
		if (cases[i].ok) {
			assert_int_equal(try_decode(buf, len), 0);
		} else {
			const char *why = "";

			assert_int_equal(kq__frame_decode(buf, len, &f, &why),
					 KQ_ECORRUPT);
			assert_string_equal(why, "hint a message of its type "
						 "never carries");
		}
		free(buf);
	}
}

/* CALL and REPLY carry an id and any body, empty included; a frame
 * too short for the id is refused. */
static void test_call_and_reply(void **state)
{
	static const char body[] = "a request of the core";
	uint8_t buf[128];
	struct kq__frame f;
	const char *why = "";
	size_t n;

	(void)state;
	n = kq__frame_call_size(sizeof(body));
	assert_int_equal(n, KQ__FRAME_HEAD + 9 + sizeof(body));
	kq__frame_put_call(buf, KQ__FRAME_CALL, 0x0102030405060708ull, body,
			   sizeof(body));
	assert_int_equal(kq__frame_decode(buf, n, &f, &why), 0);
	assert_int_equal(f.type, KQ__FRAME_CALL);
	assert_true(f.call_id == 0x0102030405060708ull);
	assert_int_equal(f.body_len, sizeof(body));
	assert_memory_equal(f.body, body, sizeof(body));
	kq__frame_release(&f);

	n = kq__frame_call_size(0);
	kq__frame_put_call(buf, KQ__FRAME_REPLY, 7, NULL, 0);
	assert_int_equal(kq__frame_decode(buf, n, &f, &why), 0);
	assert_int_equal(f.type, KQ__FRAME_REPLY);
	assert_true(f.call_id == 7);
	assert_int_equal(f.body_len, 0);

	/* Length 5: the type and 4 of the id's 8 bytes. */
	memcpy(buf, "\0\0\0\5\5\0\0\0\0", 9);
	assert_int_equal(kq__frame_decode(buf, 9, &f, &why), KQ_ECORRUPT);
	assert_string_equal(why, "truncated call");
	assert_true(kq__frame_call_size(KQ__FRAME_MAX) == SIZE_MAX);
}

static void test_oversized_message_not_encoded(void **state)
{
	struct kq__raft_entry e = {
		.index = 1, .term = 1, .len = KQ__FRAME_MAX, .data = payload_a};
	struct kq__raft_msg m = sample(KQ__RAFT_MSG_APPEND);

	m.index = 0;
	m.entries = &e;
	m.n_entries = 1;
	assert_true(kq__frame_msg_size(&m) == SIZE_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_retention_snapshot_without_data),
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_hello_version_1),
		cmocka_unit_test(test_preauth_cap),
		cmocka_unit_test(test_coalesced_heartbeats),
		cmocka_unit_test(test_keepalive_frame),
		cmocka_unit_test(test_stream_of_frames),
		cmocka_unit_test(test_bad_lengths),
		cmocka_unit_test(test_truncated_and_corrupted_messages),
		cmocka_unit_test(test_truncated_and_corrupted_heartbeats),
		cmocka_unit_test(test_specific_corruptions),
		cmocka_unit_test(test_oversized_message_not_encoded),
		cmocka_unit_test(test_call_and_reply),
		cmocka_unit_test(test_hints),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
