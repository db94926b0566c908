/* Unit tests of the telnet transport's framer and word splitter. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <kafkaesque/error.h>

#include "../../plugins/telnet/parse.h"

/* Events rendered as text so a whole stream compares in one assertion. */
struct trace {
	char s[4096];
	size_t n;
};

static void trace_add(struct trace *t, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(t->s + t->n, sizeof(t->s) - t->n, fmt, ap);
	va_end(ap);
	assert_true(r >= 0 && (size_t)r < sizeof(t->s) - t->n);
	t->n += (size_t)r;
}

/* Feeds one chunk, appending every event to the trace. */
static void feed(struct kq__tn_framer *f, struct trace *t, const char *in,
		 size_t len)
{
	for (;;) {
		struct kq__tn_event ev;
		size_t used = 0, k;
		int r = kq__tn_framer_next(f, in, len, &used, &ev);

		assert_true(r >= 0);
		assert_true(used <= len);
		in += used;
		len -= used;
		switch (r) {
		case KQ__TN_EV_NONE: assert_int_equal(len, 0); return;
		case KQ__TN_EV_LINE:
			assert_int_equal(ev.line[ev.len], '\0');
			trace_add(t, "L:");
			for (k = 0; k < ev.len; k++) {
				unsigned char c = (unsigned char)ev.line[k];

				if (c >= 32 && c < 127)
					trace_add(t, "%c", c);
				else
					trace_add(t, "\\%d", c);
			}
			trace_add(t, "|");
			break;
		case KQ__TN_EV_TOOLONG: trace_add(t, "T|"); break;
		case KQ__TN_EV_OPTION:
			trace_add(t, "O%d,%d|", ev.cmd, ev.opt);
			break;
		default: fail();
		}
	}
}

/* The trace of `in` fed in chunks cut at the given offsets. */
static void run_split(size_t max, const char *in, size_t len,
		      const size_t *cuts, size_t ncuts, struct trace *t)
{
	struct kq__tn_framer f;
	size_t prev = 0, i;

	memset(t, 0, sizeof(*t));
	kq__tn_framer_init(&f, max);
	for (i = 0; i < ncuts; i++) {
		feed(&f, t, in + prev, cuts[i] - prev);
		prev = cuts[i];
	}
	feed(&f, t, in + prev, len - prev);
	kq__tn_framer_free(&f);
}

/* Checks that every way of cutting `in` into two and three chunks gives
 * the expected trace. */
static void check_all_splits(size_t max, const char *in, size_t len,
			     const char *want)
{
	struct trace t;
	size_t cuts[2];

	run_split(max, in, len, NULL, 0, &t);
	assert_string_equal(t.s, want);
	for (cuts[0] = 0; cuts[0] <= len; cuts[0]++) {
		run_split(max, in, len, cuts, 1, &t);
		assert_string_equal(t.s, want);
		for (cuts[1] = cuts[0]; cuts[1] <= len; cuts[1]++) {
			run_split(max, in, len, cuts, 2, &t);
			assert_string_equal(t.s, want);
		}
	}
}

static void test_lines(void **state)
{
	static const char in[] = "PING\r\nLIST\n\nA\rB\nC\r\r\n partial";

	check_all_splits(0, in, sizeof(in) - 1,
			 "L:PING|L:LIST|L:|L:A\\13B|L:C\\13|");
}

static void test_iac_sequences(void **state)
{
	/* IAC IAC inside a word, an option request before the CRLF, a
	 * subnegotiation holding an LF, a NOP, then a lone option. */
	static const char in[] = "PI\xff\xffNG\xff\xfd\x01\r\n"
				 "\xff\xfa\x18\x00x\n\xff\xff\xff\xf0"
				 "AB\xff\xf1"
				 "C\r\n"
				 "\xff\xfb\x03\n"
				 "\xff\xfc\x01\xff\xfe\x02Z\n";

	check_all_splits(0, in, sizeof(in) - 1,
			 "O253,1|L:PI\\255NG|L:ABC|O251,3|L:|O252,1|O254,2|"
			 "L:Z|");
}

static void test_cr_before_lf_only(void **state)
{
	static const char in[] = "\r\n\r\r\nx\r\xff\xf1\n";

	/* A command between the CR and the LF is no data: the CR is still
	 * right before the LF. */
	check_all_splits(0, in, sizeof(in) - 1, "L:|L:\\13|L:x|");
}

static void test_toolong(void **state)
{
	static const char in[] = "123456789\nPING\n"
				 "12345678\r\n"
				 "12345678\rx\n"
				 "abcdefghijklmnopqrstuvwxyz\xff\xfd\x05z\r\n"
				 "OK\n";

	check_all_splits(8, in, sizeof(in) - 1,
			 "T|L:PING|L:12345678|T|T|O253,5|L:OK|");
}

static void test_toolong_byte_by_byte(void **state)
{
	struct kq__tn_framer f;
	struct trace t;
	char line[1000];
	size_t i;

	memset(&t, 0, sizeof(t));
	memset(line, 'a', sizeof(line));
	kq__tn_framer_init(&f, 100);
	for (i = 0; i < sizeof(line); i++)
		feed(&f, &t, line + i, 1);
	feed(&f, &t, "\nPING\n", 6);
	assert_string_equal(t.s, "T|L:PING|");
	/* The buffer never grows past the maximum and a CR. */
	assert_true(f.cap <= 102);
	kq__tn_framer_free(&f);
}

static void test_default_max(void **state)
{
	struct kq__tn_framer f;
	struct trace t;
	size_t n = KQ__TN_MAX_LINE_DEFAULT;
	char *big = malloc(n + 2);

	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\n';
	memset(&t, 0, sizeof(t));
	kq__tn_framer_init(&f, 0);
	assert_int_equal(f.max_line, n);
	/* Exactly the maximum is accepted... */
	{
		struct kq__tn_event ev;
		size_t used;

		assert_int_equal(kq__tn_framer_next(&f, big, n + 1, &used, &ev),
				 KQ__TN_EV_LINE);
		assert_int_equal(ev.len, n);
		assert_int_equal(used, n + 1);
	}
	/* ...one more byte is not. */
	big[n] = 'x';
	big[n + 1] = '\n';
	feed(&f, &t, big, n + 2);
	assert_string_equal(t.s, "T|");
	kq__tn_framer_free(&f);
	free(big);
}

/* Splits a copy of `s` and renders the words as [content] items. */
static int split_str(const char *s, char *out, size_t outlen)
{
	struct kq__tn_word w[16];
	char line[256];
	size_t len = strlen(s), off = 0;
	int n, i;

	memcpy(line, s, len + 1);
	n = kq__tn_split(line, len, w, 16);
	out[0] = '\0';
	for (i = 0; i < n && i < 16; i++)
		off += (size_t)snprintf(out + off, outlen - off, "[%.*s]",
					(int)w[i].len, w[i].p);
	return n;
}

/* A line, the status a parse of it returns, and what it renders (NULL:
 * nothing to compare, e.g. on an error). */
struct str_case {
	const char *in;
	int ret;
	const char *out;
};

/* Runs every case through `fn` (split_str or pubs). */
static void check_cases(int (*fn)(const char *, char *, size_t),
			const struct str_case *c, size_t n)
{
	char out[512];

	for (size_t i = 0; i < n; i++) {
		int r;

		out[0] = '\0';
		r = fn(c[i].in, out, sizeof(out));
		if (r != c[i].ret || (c[i].out && strcmp(out, c[i].out) != 0))
			fail_msg("%s: %d \"%s\", expected %d \"%s\"", c[i].in,
				 r, out, c[i].ret, c[i].out ? c[i].out : "");
	}
}

#define CHECK_CASES(fn, cases)                                                 \
	check_cases(fn, cases, sizeof(cases) / sizeof(*(cases)))

static void test_words(void **state)
{
	static const struct str_case cases[] = {
		{"", 0, NULL},
		{" \t ", 0, NULL},
		{"  CRTP \t t\t3  ", 3, "[CRTP][t][3]"},
		{"a \"b c\" \"\" d", 4, "[a][b c][][d]"},
		{"\"say \"\"hi\"\"\"", 1, "[say \"hi\"]"},
		{"\"\"\"\"", 1, "[\"]"},
		{"\"\"\"\"\"\"", 1, "[\"\"]"},
		/* A quote inside an unquoted word is an ordinary byte. */
		{"a\"b c\"", 2, "[a\"b][c\"]"},
		{"x \"open", KQ_ESYNTAX, NULL},
		{"x \"a\"\"", KQ_ESYNTAX, NULL},
		{"\"a\"b", KQ_ESYNTAX, NULL},
		{"\"", KQ_ESYNTAX, NULL},
	};

	CHECK_CASES(split_str, cases);
}

static void test_word_offsets(void **state)
{
	char line[] = "ab  \"c\"\"d\"\te";
	struct kq__tn_word w;
	size_t pos = 0;

	assert_int_equal(kq__tn_word_next(line, strlen(line), &pos, &w), 1);
	assert_int_equal(w.start, 0);
	assert_int_equal(w.end, 2);
	assert_false(w.quoted);
	assert_int_equal(kq__tn_word_next(line, 12, &pos, &w), 1);
	assert_int_equal(w.start, 4);
	assert_int_equal(w.end, 10);
	assert_true(w.quoted);
	assert_int_equal(w.len, 3);
	assert_memory_equal(w.p, "c\"d", 3);
	/* Unescaping stays inside the word as typed. */
	assert_int_equal(line[10], '\t');
	assert_int_equal(kq__tn_word_next(line, 12, &pos, &w), 1);
	assert_int_equal(w.start, 11);
	assert_int_equal(w.len, 1);
	assert_int_equal(kq__tn_word_next(line, 12, &pos, &w), 0);
	assert_int_equal(pos, 12);
}

static void test_split_counts_beyond_max(void **state)
{
	char line[] = "a b c d e";
	struct kq__tn_word w[2];

	assert_int_equal(kq__tn_split(line, strlen(line), w, 2), 5);
	assert_memory_equal(w[1].p, "b", 1);
}

/* Runs the PUBS message extraction on `s`; returns the status and copies
 * the message into `msg`. */
static int pubs(const char *s, char *msg, size_t msglen)
{
	char line[512];
	size_t len = strlen(s), pos = 0;
	struct kq__tn_word w;
	char *m;
	size_t mlen;
	int r;

	memcpy(line, s, len + 1);
	assert_int_equal(kq__tn_word_next(line, len, &pos, &w), 1);
	r = kq__tn_word_next(line, len, &pos, &w);
	if (r <= 0)
		return r < 0 ? r : KQ_ESYNTAX;
	r = kq__tn_pubs_message(line, len, pos, &m, &mlen);
	if (r == 0) {
		assert_true(mlen < msglen);
		memcpy(msg, m, mlen);
		msg[mlen] = '\0';
	}
	return r;
}

static void test_pubs_forms(void **state)
{
	static const char want[] =
		"{\"Header\":\"h\",\"Key\":\"124\",\"Body\":\"Hello World!\"}";
	static const struct str_case cases[] = {
		{"PUBS orders \"{\"\"Header\"\":\"\"h\"\","
		 "\"\"Key\"\":\"\"124\"\",\"\"Body\"\":"
		 "\"\"Hello World!\"\"}\"",
		 0, want},
		{"PUBS orders {\"Header\":\"h\",\"Key\":\"124\","
		 "\"Body\":\"Hello World!\"}",
		 0, want},

		/* The raw form keeps every byte after the single separator. */
		{"PUBS t  two  spaces \t", 0, " two  spaces \t"},
		{"PUBS\tt\thello \"x", 0, "hello \"x"},
		{"PUBS \"t\" x", 0, "x"},

		/* Quoted: may be empty, may be followed by blanks only. */
		{"PUBS t \"\"", 0, ""},
		{"PUBS t \"a b\"  ", 0, "a b"},
		{"PUBS t \"a\" b", KQ_ESYNTAX, NULL},
		{"PUBS t \"a", KQ_ESYNTAX, NULL},

		/* Missing. */
		{"PUBS t", KQ_ESYNTAX, NULL},
		{"PUBS t ", KQ_ESYNTAX, NULL},
		{"PUBS t \t ", KQ_ESYNTAX, NULL},
		{"PUBS", KQ_ESYNTAX, NULL},
	};

	CHECK_CASES(pubs, cases);
}

static void test_first_word(void **state)
{
	assert_true(kq__tn_first_word_is("pubs t x", 8, "PUBS"));
	assert_true(kq__tn_first_word_is(" \tPuBs", 6, "PUBS"));
	assert_true(kq__tn_first_word_is("PUBS\tx", 6, "PUBS"));
	assert_false(kq__tn_first_word_is("PUBSX t", 7, "PUBS"));
	assert_false(kq__tn_first_word_is("PUB", 3, "PUBS"));
	assert_false(kq__tn_first_word_is("\"PUBS\"", 6, "PUBS"));
	assert_false(kq__tn_first_word_is("", 0, "PUBS"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_iac_sequences),
		cmocka_unit_test(test_cr_before_lf_only),
		cmocka_unit_test(test_toolong),
		cmocka_unit_test(test_toolong_byte_by_byte),
		cmocka_unit_test(test_default_max),
		cmocka_unit_test(test_words),
		cmocka_unit_test(test_word_offsets),
		cmocka_unit_test(test_split_counts_beyond_max),
		cmocka_unit_test(test_pubs_forms),
		cmocka_unit_test(test_first_word),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
