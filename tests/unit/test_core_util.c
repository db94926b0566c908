/* Unit tests of the core's small pieces: the hash map, name rules, the
 * message-key scanner and snapshot files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <kafkaesque/error.h>

#include "broker.h"
#include "jsonkey.h"
#include "map.h"
#include "names.h"

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

static void expect_key(const char *msg, enum kq__jsonkey want,
		       const char *want_key)
{
	const char *key;
	size_t klen;

	assert_int_equal(kq__json_key(msg, strlen(msg), &key, &klen), want);
	if (want == KQ__JSONKEY_FOUND) {
		assert_int_equal(klen, strlen(want_key));
		assert_memory_equal(key, want_key, klen);
	} else {
		assert_null(key);
		assert_int_equal(klen, 0);
	}
}

static void test_json_key(void **state)
{
	expect_key("{\"Header\":\"h\",\"Key\":\"124\",\"Body\":\"x\"}",
		   KQ__JSONKEY_FOUND, "124");
	expect_key(" \r\n{ \"Key\" : \"a b\" }\n", KQ__JSONKEY_FOUND, "a b");
	/* The last "Key" wins, and it must be a non-empty string. */
	expect_key("{\"Key\":\"a\",\"Key\":\"b\"}", KQ__JSONKEY_FOUND, "b");
	expect_key("{\"Key\":\"a\",\"Key\":1}", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"Key\":\"\"}", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"key\":\"a\"}", KQ__JSONKEY_NONE, NULL);
	/* Only a top-level member counts. */
	expect_key("{\"a\":{\"Key\":\"n\"}}", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"a\":[1,-0,true,false,null,\"s\",{}],\"Key\":\"k\"}",
		   KQ__JSONKEY_FOUND, "k");
	/* Not JSON objects. */
	expect_key("plain text", KQ__JSONKEY_NONE, NULL);
	expect_key("[\"Key\",\"a\"]", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"Key\":\"a\"", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"Key\":\"a\"} x", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"Key\":\"a\",}", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"a\":01,\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL);
	expect_key("{\"a\":\"\t\",\"Key\":\"a\"}", KQ__JSONKEY_NONE, NULL);
	/* Left to jansson. */
	expect_key("{\"Key\":\"a\\\"b\"}", KQ__JSONKEY_UNSURE, NULL);
	expect_key("{\"K\\u0065y\":\"a\"}", KQ__JSONKEY_UNSURE, NULL);
	expect_key("{\"a\":1.5,\"Key\":\"a\"}", KQ__JSONKEY_UNSURE, NULL);
	expect_key("{\"a\":12345678901234567890,\"Key\":\"a\"}",
		   KQ__JSONKEY_UNSURE, NULL);
	expect_key("{\"Key\":\"caf\xc3\xa9\"}", KQ__JSONKEY_UNSURE, NULL);
}

static void test_snapshot_file(void **state)
{
	char dir[] = "/tmp/kq-snapshot-XXXXXX", path[64], cmd[96];
	const char text[] = "{\"topics\": []}";
	uint64_t index = 0, term = 0;
	void *data = NULL;
	size_t len = 0;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(kq__snapshot_load(dir, &index, &term, &data, &len),
			 -ENOENT);
	assert_int_equal(kq__snapshot_save(dir, 41, 3, text, strlen(text)), 0);
	assert_int_equal(kq__snapshot_load(dir, &index, &term, &data, &len), 0);
	assert_int_equal(index, 41);
	assert_int_equal(term, 3);
	assert_int_equal(len, strlen(text));
	assert_memory_equal(data, text, len);
	free(data);
	/* A newer one replaces it whole. */
	assert_int_equal(kq__snapshot_save(dir, 99, 4, "x", 1), 0);
	assert_int_equal(kq__snapshot_load(dir, &index, &term, &data, &len), 0);
	assert_int_equal(index, 99);
	assert_int_equal(len, 1);
	free(data);
	/* One flipped bit, or a cut, is damage, never a partial state. */
	snprintf(path, sizeof(path), "%s/snapshot", dir);
	f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 40, SEEK_SET);
	fputc('y', f);
	fclose(f);
	assert_int_equal(kq__snapshot_load(dir, &index, &term, &data, &len),
			 KQ_ECORRUPT);
	assert_int_equal(truncate(path, 20), 0);
	assert_int_equal(kq__snapshot_load(dir, &index, &term, &data, &len),
			 KQ_ECORRUPT);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_json_key),
		cmocka_unit_test(test_snapshot_file),
	};

	return cmocka_run_group_tests_name("core utilities", tests, NULL, NULL);
}
