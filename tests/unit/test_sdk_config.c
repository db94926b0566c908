/* The SDK's typed config readers (include/kafkaesque/config.h): values in
 * range are read over the defaults, absent keys keep them, and every bad
 * value or stray key gets one line naming its JSON path.  Also the SDK's
 * rate limit for log lines (include/kafkaesque/ratelimit.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/config.h>
#include <kafkaesque/ratelimit.h>

#include "../fake_host.h"

/* A host for module "mod" over `text` (NULL: no section). */
static struct kq_host host_for(const char *text, json_t **owned)
{
	*owned = text ? json_loads(text, 0, NULL) : NULL;
	assert_true(!text || *owned);
	return kq__test_host("mod", *owned);
}

static void test_reads_and_defaults(void **state)
{
	static const char *const keys[] = {"n", "b", "s", "c", NULL};
	static const char *const choices[] = {"one", "two", NULL};
	json_t *cfg;
	struct kq_host h =
		host_for("{\"n\": 7, \"b\": false, \"s\": \"x\"}", &cfg);
	int64_t n = 1, m = 2;
	bool b = true;
	const char *s = "default";
	int c = 1;

	(void)state;
	assert_int_equal(kq_config_keys(&h, keys), 0);
	assert_int_equal(kq_config_int(&h, "n", 0, 10, &n), 0);
	assert_int_equal(kq_config_int(&h, "m", 0, 10, &m), 0);
	assert_int_equal(kq_config_bool(&h, "b", &b), 0);
	assert_int_equal(kq_config_string(&h, "s", &s), 0);
	assert_int_equal(kq_config_choice(&h, "c", choices, &c), 0);
	assert_int_equal(n, 7);
	assert_int_equal(m, 2); /* absent: the default stays */
	assert_false(b);
	assert_string_equal(s, "x");
	assert_int_equal(c, 1);
	assert_string_equal(kq__test_logbuf, "");
	json_decref(cfg);

	h = host_for(NULL, &cfg);
	assert_int_equal(kq_config_keys(&h, keys), 0);
	assert_int_equal(kq_config_int(&h, "n", 0, 10, &n), 0);
	assert_int_equal(n, 7);
}

static void test_errors_name_the_path(void **state)
{
	static const char *const keys[] = {"n", "c", NULL};
	static const char *const choices[] = {"one", "two", NULL};
	json_t *cfg;
	struct kq_host h = host_for(
		"{\"n\": 11, \"c\": \"three\", \"x\": 1, \"y\": 2}", &cfg);
	int64_t n = 0;
	int c = 0;
	bool b = false;
	const char *s = NULL;

	(void)state;
	assert_int_equal(kq_config_keys(&h, keys), KQ_ECONFIG);
	/* Every stray key, not only the first. */
	assert_string_equal(kq__test_logbuf,
			    "mod.x: unknown key (known: n, c)\n"
			    "mod.y: unknown key (known: n, c)\n");
	kq__test_log_clear();
	assert_int_equal(kq_config_int(&h, "n", 0, 10, &n), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf,
			    "mod.n: expected an integer 0..10\n");
	assert_int_equal(n, 0);
	kq__test_log_clear();
	assert_int_equal(kq_config_int(&h, "n", 12, INT64_MAX, &n), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf,
			    "mod.n: expected an integer of at least 12\n");
	kq__test_log_clear();
	assert_int_equal(kq_config_choice(&h, "c", choices, &c), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf,
			    "mod.c: expected one of one, two\n");
	kq__test_log_clear();
	assert_int_equal(kq_config_bool(&h, "n", &b), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf, "mod.n: expected true or false\n");
	kq__test_log_clear();
	assert_int_equal(kq_config_string(&h, "n", &s), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf,
			    "mod.n: expected a non-empty string\n");
	json_decref(cfg);

	h = host_for("{\"z\": 1}", &cfg);
	assert_int_equal(kq_config_keys(&h, NULL), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf,
			    "mod.z: unknown key (mod takes no options)\n");
	json_decref(cfg);

	h = host_for("[1]", &cfg);
	assert_int_equal(kq_config_keys(&h, keys), KQ_ECONFIG);
	assert_string_equal(kq__test_logbuf, "mod: expected an object\n");
	json_decref(cfg);
}

/* A burst goes at once, then one line per period; the line that goes
 * after a pause counts the ones held back, and the budget never saves
 * up past the burst. */
static void test_ratelimit(void **state)
{
	struct kq_ratelimit r = {0};
	uint64_t held = 99, now = 0; /* a clock just started */

	(void)state;
	for (int i = 0; i < 3; i++) {
		assert_true(kq_ratelimit_allow(&r, now, 1000, 3, &held));
		assert_int_equal(held, 0);
	}
	assert_false(kq_ratelimit_allow(&r, now, 1000, 3, &held));
	assert_false(kq_ratelimit_allow(&r, now + 999, 1000, 3, &held));
	assert_true(kq_ratelimit_allow(&r, now + 1000, 1000, 3, &held));
	assert_int_equal(held, 2);
	assert_false(kq_ratelimit_allow(&r, now + 1500, 1000, 3, NULL));
	/* An hour later: a burst of three again, not of 3600. */
	now += 3600 * 1000;
	for (int i = 0; i < 3; i++)
		assert_true(kq_ratelimit_allow(&r, now, 1000, 3, &held));
	assert_int_equal(held, 0);
	assert_false(kq_ratelimit_allow(&r, now, 1000, 3, &held));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_and_defaults),
		cmocka_unit_test(test_errors_name_the_path),
		cmocka_unit_test(test_ratelimit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
