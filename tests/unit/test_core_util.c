/* Unit tests of the core's small pieces: the hash map, name rules, the
 * message-key scanner, the log and the choice of a replica to forward
 * to. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <kafkaesque/error.h>

#include "forward.h"
#include "idfloor.h"
#include "jsonkey.h"
#include "log.h"
#include "map.h"
#include "names.h"
#include "types.h"
#include "why.h"

#include "../nested_json.h"

static void test_map(void **state)
{
	struct kq__map m = {0};
	static int values[5000];
	char key[32];
	size_t seen = 0;
	struct kq__map_entry *e = NULL;

	assert_null(kq__map_get(&m, "x", 1));
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "topic-%d", i);
		assert_int_equal(kq__map_put(&m, key, strlen(key), &values[i]),
				 0);
	}
	assert_int_equal(m.count, 5000);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "topic-%d", i);
		assert_ptr_equal(kq__map_get(&m, key, strlen(key)), &values[i]);
	}
	/* Replacing keeps the count; keys are byte strings, so a prefix is
	 * another key. */
	assert_int_equal(kq__map_put(&m, "topic-1", 7, &values[2]), 0);
	assert_int_equal(m.count, 5000);
	assert_ptr_equal(kq__map_get(&m, "topic-1", 7), &values[2]);
	assert_null(kq__map_get(&m, "topic-1", 6));
	while ((e = kq__map_next(&m, e)))
		seen++;
	assert_int_equal(seen, 5000);
	for (int i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "topic-%d", i);
		assert_non_null(kq__map_del(&m, key, strlen(key)));
	}
	assert_int_equal(m.count, 2500);
	assert_null(kq__map_del(&m, "topic-0", 7));
	assert_null(kq__map_get(&m, "topic-4", 7));
	assert_ptr_equal(kq__map_get(&m, "topic-3", 7), &values[3]);
	/* Binary keys (subscription ids). */
	{
		uint64_t id = 1001;

		assert_int_equal(kq__map_put(&m, &id, sizeof(id), &values[0]),
				 0);
		assert_ptr_equal(kq__map_get(&m, &id, sizeof(id)), &values[0]);
	}
	kq__map_free(&m);
	assert_int_equal(m.count, 0);
}

static void test_names(void **state)
{
	char longest[KQ__NAME_MAX + 2];

	assert_true(kq__name_valid("orders"));
	assert_true(kq__name_valid("A.b_c-9"));
	assert_true(kq__name_valid("..."));
	assert_false(kq__name_valid(""));
	assert_false(kq__name_valid("."));
	assert_false(kq__name_valid(".."));
	assert_false(kq__name_valid("a b"));
	assert_false(kq__name_valid("a/b"));
	assert_false(kq__name_valid("caf\xc3\xa9"));
	memset(longest, 'x', KQ__NAME_MAX);
	longest[KQ__NAME_MAX] = '\0';
	assert_true(kq__name_valid(longest));
	longest[KQ__NAME_MAX] = 'x';
	longest[KQ__NAME_MAX + 1] = '\0';
	assert_false(kq__name_valid(longest));
}

/* Checks the scanner's answer and, decoded, the key. */
static void expect_keyn(const char *msg, size_t len, enum kq__jsonkey want,
			const char *want_key, size_t want_len)
{
	const char *key;
	size_t klen;
	char buf[256];

	if (kq__json_key(msg, len, &key, &klen) != want)
		fail_msg("%.*s: expected %d", (int)len, msg, (int)want);
	if (want == KQ__JSONKEY_NONE) {
		assert_null(key);
		assert_int_equal(klen, 0);
		return;
	}
	if (want == KQ__JSONKEY_ESCAPED) {
		assert_true(klen <= sizeof(buf));
		klen = kq__json_unescape(key, klen, buf);
		key = buf;
	}
	assert_int_equal(klen, want_len);
	assert_memory_equal(key, want_key, klen);
}

/* A message, the scanner's answer and the key (NULL for none). */
struct key_case {
	const char *msg;
	enum kq__jsonkey want;
	const char *key;
};

static void test_json_key(void **state)
{
	static const struct key_case cases[] = {
		{"{\"Header\":\"h\",\"Key\":\"124\",\"Body\":\"x\"}",
		 KQ__JSONKEY_FOUND, "124"},
		{" \r\n{ \"Key\" : \"a b\" }\n", KQ__JSONKEY_FOUND, "a b"},
		/* The last "Key" wins, and it must be a non-empty string. */
		{"{\"Key\":\"a\",\"Key\":\"b\"}", KQ__JSONKEY_FOUND, "b"},
		{"{\"Key\":\"a\",\"Key\":1}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\",\"Key\":{\"Key\":\"b\"}}", KQ__JSONKEY_NONE,
		 NULL},
		{"{\"Key\":[],\"Key\":\"b\"}", KQ__JSONKEY_FOUND, "b"},
		{"{\"Key\":\"\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Keys\":\"a\",\"Ke\":\"b\"}", KQ__JSONKEY_NONE, NULL},
		/* Only a top-level member counts. */
		{"{\"a\":{\"Key\":\"n\"}}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":[{\"Key\":\"n\"}],\"b\":1}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":[1,-0,true,false,null,\"s\",{}],\"Key\":\"k\"}",
		 KQ__JSONKEY_FOUND, "k"},
		/* Not JSON objects, or not JSON. */
		{"plain text", KQ__JSONKEY_NONE, NULL},
		{"", KQ__JSONKEY_NONE, NULL},
		{"[\"Key\",\"a\"]", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\"", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\"} x", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\"}{}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\",}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\",\"b\":[1,]}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\",\"b\":[1}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":01,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":1.,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":-,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":1e,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":+1,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":tru,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":\"\t\",\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":\"\\x\",\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":\"\\u12G4\",\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"\xef\xbb\xbf{\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\"}\f", KQ__JSONKEY_NONE, NULL},
		/* UTF-8 must be valid: no overlong forms, surrogates or values
		 * above U+10FFFF. */
		{"{\"Key\":\"caf\xc3\xa9\"}", KQ__JSONKEY_FOUND, "caf\xc3\xa9"},
		{"{\"Key\":\"\xf0\x9f\x98\x80\"}", KQ__JSONKEY_FOUND,
		 "\xf0\x9f\x98\x80"},
		{"{\"Key\":\"\xc0\xaf\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"\xe0\x80\xaf\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"\xed\xa0\x80\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"\xf4\x90\x80\x80\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"\xc3\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"a\":\"\xff\",\"Key\":\"k\"}", KQ__JSONKEY_NONE, NULL},

		/* What jansson refuses whole but RFC 8259 allows does not make
		 * a message keyless: integers over 64 bits, reals beyond a
		 * double, unpaired surrogate escapes and \u0000 elsewhere, deep
		 * nesting. */
		{"{\"a\":123456789012345678901234567890,\"Key\":\"k\"}",
		 KQ__JSONKEY_FOUND, "k"},
		{"{\"a\":1e400,\"b\":-1.5E-400,\"Key\":\"k\"}",
		 KQ__JSONKEY_FOUND, "k"},
		{"{\"a\":\"\\ud800\",\"Key\":\"k\"}", KQ__JSONKEY_FOUND, "k"},
		{"{\"a\\u0000\":\"\\udc00x\\ud800\",\"Key\":\"k\"}",
		 KQ__JSONKEY_FOUND, "k"},
		/* Escapes are decoded, in names too. */
		{"{\"Key\":\"a\\\"b\\\\c\\/\\n\"}", KQ__JSONKEY_ESCAPED,
		 "a\"b\\c/\n"},
		{"{\"K\\u0065y\":\"a\"}", KQ__JSONKEY_FOUND, "a"},
		{"{\"Key\":\"\\u00e9\\u20ac\\ud83d\\ude00\"}",
		 KQ__JSONKEY_ESCAPED, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
		{"{\"K\\u0065y\\u0000\":\"a\"}", KQ__JSONKEY_NONE, NULL},
		/* An unpaired surrogate is no Unicode text: no key. */
		{"{\"Key\":\"\\ud800\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"a\\udfff\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"\\ud800\\u0041\"}", KQ__JSONKEY_NONE, NULL},
		{"{\"Key\":\"\\ud800\",\"Key\":\"b\"}", KQ__JSONKEY_FOUND, "b"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		const struct key_case *c = &cases[i];

		expect_keyn(c->msg, strlen(c->msg), c->want, c->key,
			    c->key ? strlen(c->key) : 0);
	}
	/* A NUL after the object, or raw in a string, is not JSON. */
	expect_keyn("{\"Key\":\"a\"}\0", 12, KQ__JSONKEY_NONE, NULL, 0);
	expect_keyn("{\"Key\":\"a\0\"}", 12, KQ__JSONKEY_NONE, NULL, 0);
	/* An escaped one is decoded. */
	expect_keyn("{\"Key\":\"a\\u0000b\"}", 18, KQ__JSONKEY_ESCAPED, "a\0b",
		    3);
}

/* Nesting far deeper than jansson's limit, or any C stack's. */
static void test_json_key_deep(void **state)
{
	size_t depth = 1000000, n;
	char *m = kq__test_nested_json("{\"a\":", depth, ",\"Key\":\"deep\"}",
				       &n);

	assert_non_null(m);
	expect_keyn(m, n, KQ__JSONKEY_FOUND, "deep", 4);
	/* One bracket of the wrong kind, deep inside. */
	m[5 + depth + 10] = '}';
	expect_keyn(m, n, KQ__JSONKEY_NONE, NULL, 0);
	m[5 + depth + 10] = ']';
	m[5 + depth - 1] = '{';
	expect_keyn(m, n, KQ__JSONKEY_NONE, NULL, 0);
	free(m);
}

/* Lines written to stderr while fn runs with the log at `level`. */
static long logged_bytes(int level, void (*fn)(void))
{
	char path[] = "/tmp/kq-log-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	off_t n;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	assert_int_equal(dup2(fd, 2), 2);
	kq__log_set_level((enum kq_log_level)level);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	n = lseek(fd, 0, SEEK_END);
	close(fd);
	unlink(path);
	kq__log_set_level(KQ_LOG_INFO);
	return (long)n;
}

static void log_an_error(void)
{
	kq__log(KQ_LOG_ERROR, "test", "an error");
}

/* A level below every level (-1, what the fuzz targets use) silences the
 * log, errors included; the error level keeps errors. */
static void test_log_levels(void **state)
{
	(void)state;
	assert_int_equal(logged_bytes(-1, log_an_error), 0);
	assert_true(logged_bytes(KQ_LOG_ERROR, log_an_error) > 0);
}

static unsigned up_mask; /* bit id: broker id is up */

static int up(void *ctx, int id)
{
	(void)ctx;
	return (up_mask >> id) & 1;
}

/* Which replica a broker with none of a partition asks: its turn among
 * those up, not itself, one that did not just refuse if any; and the one
 * that refused when it is the only one left (a partition of one replica
 * that had not elected itself yet is asked again, not given up on). */
static void test_fwd_pick(void **state)
{
	const int one[] = {2}, three[] = {1, 2, 3};

	(void)state;
	up_mask = 1u << 1 | 1u << 2 | 1u << 3;
	assert_int_equal(kq__fwd_pick(one, 1, 0, 1, 0, up, NULL), 2);
	assert_int_equal(kq__fwd_pick(one, 1, 0, 1, 2, up, NULL), 2);
	assert_int_equal(kq__fwd_pick(one, 1, 0, 2, 0, up, NULL), 0);
	/* Partition 1 starts its turn at its second replica. */
	assert_int_equal(kq__fwd_pick(three, 3, 1, 1, 0, up, NULL), 2);
	assert_int_equal(kq__fwd_pick(three, 3, 1, 1, 2, up, NULL), 3);
	assert_int_equal(kq__fwd_pick(three, 3, 0, 1, 2, up, NULL), 3);
	assert_int_equal(kq__fwd_pick(three, 3, 2, 2, 3, up, NULL), 1);
	up_mask = 1u << 1 | 1u << 3;
	assert_int_equal(kq__fwd_pick(three, 3, 1, 1, 3, up, NULL), 3);
	assert_int_equal(kq__fwd_pick(three, 3, 1, 3, 0, up, NULL), 1);
	up_mask = 1u << 1;
	assert_int_equal(kq__fwd_pick(three, 3, 1, 1, 0, up, NULL), 0);
	assert_int_equal(kq__fwd_pick(one, 1, 0, 1, 2, up, NULL), 0);
}

/* A lack of descriptors names the limit that was hit and what raises
 * it; other errors read as kq_strerror() has them. */
static void test_why(void **state)
{
	struct rlimit rl;
	char limit[32];

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	snprintf(limit, sizeof(limit), "may have %llu open",
		 (unsigned long long)rl.rlim_cur);
	assert_non_null(strstr(kq__why(-EMFILE), limit));
	assert_non_null(strstr(kq__why(-EMFILE), "ulimit -n"));
	assert_non_null(strstr(kq__why(-ENFILE), "fs.file-max"));
	assert_string_equal(kq__why(KQ_EBADARG), kq_strerror(KQ_EBADARG));
	assert_string_equal(kq__why(-ENOSPC), kq_strerror(-ENOSPC));
}

/* fsync() as libc has it, counting the folders synced: the core's calls
 * come here, the executable's definition coming first. */
static int folder_syncs;

int fsync(int fd)
{
	static int (*real)(int);
	struct stat st;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "fsync");
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		folder_syncs++;
	return real(fd);
}

/* The subscription-id floor survives a crash: the file is replaced by a
 * rename, and the folder holding it synced so that the rename is
 * durable too.  A folder that cannot be written refuses, and the floor
 * read back is what was stored last. */
static void test_idfloor(void **state)
{
	char dir[] = "/tmp/kq-idfloor-XXXXXX", cmd[64];

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(kq__idfloor_load(dir), 0);
	folder_syncs = 0;
	assert_int_equal(kq__idfloor_save(dir, 4096), 0);
	assert_int_equal(folder_syncs, 1);
	assert_int_equal(kq__idfloor_load(dir), 4096);
	assert_int_equal(kq__idfloor_save(dir, 8192), 0);
	assert_int_equal(kq__idfloor_load(dir), 8192);
	if (geteuid() != 0) { /* root writes anyway */
		assert_int_equal(chmod(dir, 0500), 0);
		assert_true(kq__idfloor_save(dir, 9000) < 0);
		assert_int_equal(kq__idfloor_load(dir), 8192);
		assert_int_equal(chmod(dir, 0700), 0);
	}
	assert_true(kq__idfloor_save("/nonexistent/kq", 1) < 0);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_json_key),
		cmocka_unit_test(test_json_key_deep),
		cmocka_unit_test(test_log_levels),
		cmocka_unit_test(test_fwd_pick),
		cmocka_unit_test(test_why),
		cmocka_unit_test(test_idfloor),
	};

	return cmocka_run_group_tests_name("core utilities", tests, NULL, NULL);
}
