/* libFuzzer target: the message-key scanner against jansson.
 *
 * jansson decides what the key is, but it refuses some documents that RFC
 * 8259 allows and whose key the scanner still finds: integers over 64
 * bits, reals beyond a double, unpaired surrogate escapes, "\u0000" in a
 * member name, nesting deeper than 2048.  So each input is first
 * rewritten twice into documents jansson takes, with the same structure
 * and the same validity:
 *   - a number token (outside strings, matching the grammar) becomes 0;
 *   - an escape "\u0000" becomes "\u0001" in rewrite A, "\u0002" in B;
 *   - an unpaired surrogate escape becomes "\u0003" in A, "\u0004" in B.
 * Where the keys jansson finds in A and B differ, the pair of bytes says
 * what was there: 1/2 a zero byte, 3/4 an unpaired surrogate (then the
 * message has no key).  Only inputs nested beyond jansson's depth limit
 * are left out.  A raw zero byte is never valid JSON: no key.  Each input
 * is also checked as the value of a member beside "Key", and as the value
 * of "Key" itself.
 *
 * Built on request: make fuzz-jsonkey && ./fuzz_jsonkey -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int is_hex(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

/* The value of "\uXXXX" at p (at least 6 bytes), or -1. */
static long escape_at(const uint8_t *p, const uint8_t *end)
{
	if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !is_hex(p[2]) ||
	    !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
		return -1;
	return strtol((const char[]){(char)p[2], (char)p[3], (char)p[4],
				     (char)p[5], 0},
		      NULL, 16);
}

/* Whether [p, end) is exactly one number by RFC 8259's grammar. */
static int number_token(const uint8_t *p, const uint8_t *end)
{
	if (p < end && *p == '-')
		p++;
	if (p < end && *p == '0') {
		p++;
	} else if (p < end && *p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return 0;
	}
	if (p < end && *p == '.') {
		if (++p >= end || *p < '0' || *p > '9')
			return 0;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return 0;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	return p == end;
}

/* Rewrite `variant` (0 for A, 1 for B) of data into out (at least size
 * bytes); returns its length. */
static size_t rewrite(const uint8_t *data, size_t size, int variant, char *out)
{
	const uint8_t *p = data, *end = data + size;
	size_t o = 0;
	int in_string = 0;

	while (p < end) {
		if (!in_string) {
			const uint8_t *q = p;

			if (*p == '"') {
				in_string = 1;
				out[o++] = (char)*p++;
				continue;
			}
			if (*p != '-' && (*p < '0' || *p > '9')) {
				out[o++] = (char)*p++;
				continue;
			}
			while (q < end && ((*q >= '0' && *q <= '9') ||
					   *q == '-' || *q == '+' ||
					   *q == '.' || *q == 'e' || *q == 'E'))
				q++;
			if (number_token(p, q)) {
				out[o++] = '0';
			} else {
				memcpy(out + o, p, (size_t)(q - p));
				o += (size_t)(q - p);
			}
			p = q;
			continue;
		}
		if (*p == '"') {
			in_string = 0;
			out[o++] = (char)*p++;
			continue;
		}
		if (*p != '\\') {
			out[o++] = (char)*p++;
			continue;
		}
		long v = escape_at(p, end), lo;

		if (v < 0) {
			/* Another escape, or a broken one: kept as it is. */
			out[o++] = (char)*p++;
			if (p < end)
				out[o++] = (char)*p++;
			continue;
		}
		if (v >= 0xD800 && v <= 0xDBFF &&
		    (lo = escape_at(p + 6, end)) >= 0xDC00 && lo <= 0xDFFF) {
			memcpy(out + o, p, 12);
			o += 12;
			p += 12;
			continue;
		}
		if (v == 0 || (v >= 0xD800 && v <= 0xDFFF)) {
			memcpy(out + o, "\\u000", 5);
			out[o + 5] = (char)('1' + variant + (v ? 2 : 0));
			o += 6;
		} else {
			memcpy(out + o, p, 6);
			o += 6;
		}
		p += 6;
	}
	return o;
}

/* What the message's key is by the rewrites: -1 when it has none, else
 * its length, its bytes in key (at least size bytes).  -2: undecided. */
static long expected_key(const uint8_t *data, size_t size, char *key)
{
	char *a = malloc(size + 1), *b = malloc(size + 1);
	size_t na = rewrite(data, size, 0, a), nb = rewrite(data, size, 1, b);
	json_error_t ea, eb;
	json_t *da = json_loadb(a, na, JSON_ALLOW_NUL, &ea);
	json_t *db = json_loadb(b, nb, JSON_ALLOW_NUL, &eb);
	json_t *ka = json_is_object(da) ? json_object_get(da, "Key") : NULL;
	json_t *kb = json_is_object(db) ? json_object_get(db, "Key") : NULL;
	long r = -1;

	if (na != nb || !da != !db)
		abort(); /* the rewrites differ in byte values only */
	if (!da && json_error_code(&ea) == json_error_stack_overflow)
		r = -2;
	if (json_is_string(ka) != json_is_string(kb))
		abort();
	if (json_is_string(ka)) {
		const char *sa = json_string_value(ka);
		const char *sb = json_string_value(kb);
		size_t n = json_string_length(ka);

		if (json_string_length(kb) != n || n > size)
			abort();
		r = n ? (long)n : -1;
		for (size_t i = 0; i < n && r >= 0; i++) {
			if (sa[i] == sb[i])
				key[i] = sa[i];
			else if (sa[i] == 1 && sb[i] == 2)
				key[i] = 0;
			else if (sa[i] == 3 && sb[i] == 4)
				r = -1; /* an unpaired surrogate */
			else
				abort();
		}
	}
	json_decref(da);
	json_decref(db);
	free(a);
	free(b);
	return r;
}

/* Checks the scanner on one document. */
static void check(const uint8_t *data, size_t size)
{
	const char *key;
	size_t klen;
	enum kq__jsonkey r =
		kq__json_key((const char *)data, size, &key, &klen);
	char *want = malloc(size + 1), *got = malloc(size + 1);
	long wlen;

	if (r == KQ__JSONKEY_NONE && (key || klen))
		abort();
	if (r == KQ__JSONKEY_ESCAPED) {
		klen = kq__json_unescape(key, klen, got);
		key = got;
	}
	wlen = memchr(data, 0, size) ? -1 : expected_key(data, size, want);
	if (wlen == -2) {
		/* Beyond jansson's depth limit: nothing to compare with. */
	} else if (wlen < 0) {
		if (r != KQ__JSONKEY_NONE)
			abort();
	} else if (r == KQ__JSONKEY_NONE || klen != (size_t)wlen ||
		   memcmp(key, want, klen) != 0) {
		abort();
	}
	free(want);
	free(got);
}

/* Checks `before`, the input, `after` as one document. */
static void check_framed(const char *before, const uint8_t *data, size_t size,
			 const char *after)
{
	size_t nb = strlen(before), na = strlen(after);
	uint8_t *doc = malloc(nb + size + na + 1);

	memcpy(doc, before, nb);
	memcpy(doc + nb, data, size);
	memcpy(doc + nb + size, after, na);
	check(doc, nb + size + na);
	free(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check(data, size);
	/* The input as the value of another member, and as the key's value:
	 * most random inputs are no object, but many are a value. */
	check_framed("{\"x\":", data, size, ",\"Key\":\"k\"}");
	check_framed("{\"Key\":", data, size, "}");
	return 0;
}
