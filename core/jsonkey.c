#include "jsonkey.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Open containers recorded without allocating; deeper documents borrow a
 * bit per byte of the message from the heap. */
#define LOCAL_DEPTH 4096

struct scan {
	const unsigned char *p, *end;
	size_t len;
	unsigned char *bits; /* one per open container: 1 for an object */
	unsigned char local[LOCAL_DEPTH / 8];
};

/* What a string held that matters here. */
struct str {
	const unsigned char *start; /* after the opening quote */
	size_t n;		    /* bytes up to the closing quote */
	int escaped;		    /* holds escapes */
	int lone;		    /* holds an unpaired surrogate escape */
	int is_key;		    /* decodes to exactly "Key" */
};

static void ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
				 *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int hex4(const unsigned char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		unsigned h = p[i];

		if (h >= '0' && h <= '9')
			h -= '0';
		else if (h >= 'a' && h <= 'f')
			h -= 'a' - 10;
		else if (h >= 'A' && h <= 'F')
			h -= 'A' - 10;
		else
			return -1;
		*v = *v << 4 | h;
	}
	return 0;
}

static int high_surrogate(unsigned v)
{
	return v >= 0xD800 && v <= 0xDBFF;
}

static int low_surrogate(unsigned v)
{
	return v >= 0xDC00 && v <= 0xDFFF;
}

/* Length of the UTF-8 sequence at p, 0 when it is not one: shortest form,
 * no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned v, c = p[0];
	size_t n;

	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0;
	if (c < 0xE0) {
		n = 2;
		v = c & 0x1F;
	} else if (c < 0xF0) {
		n = 3;
		v = c & 0x0F;
	} else if (c < 0xF5) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3F);
	}
	if (n == 3 && (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)))
		return 0;
	if (n == 4 && (v < 0x10000 || v > 0x10FFFF))
		return 0;
	return n;
}

/* A string at s->p (its opening quote). */
static int string(struct scan *s, struct str *out)
{
	static const char key[] = "Key";
	const unsigned char *p = s->p + 1;
	size_t matched = 0;
	int mismatch = 0;

	out->start = p;
	out->escaped = out->lone = 0;
	while (p < s->end) {
		unsigned c = *p, cp, lo;

		if (c == '"') {
			out->n = (size_t)(p - out->start);
			out->is_key = !mismatch && matched == 3;
			s->p = p + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			size_t n = utf8_len(p, s->end);

			if (!n)
				return -1;
			p += n;
			mismatch = 1; /* "Key" is ASCII */
			continue;
		}
		p++;
		if (c != '\\') {
			cp = c;
		} else {
			out->escaped = 1;
			if (p >= s->end)
				return -1;
			c = *p++;
			switch (c) {
			case '"':
			case '\\':
			case '/': cp = c; break;
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't': cp = 0; break; /* matches no letter */
			case 'u':
				if (s->end - p < 4 || hex4(p, &cp) != 0)
					return -1;
				p += 4;
				if (high_surrogate(cp) && s->end - p >= 6 &&
				    p[0] == '\\' && p[1] == 'u' &&
				    hex4(p + 2, &lo) == 0 &&
				    low_surrogate(lo)) {
					p += 6;
					cp = 0x10000;
				} else if (high_surrogate(cp) ||
					   low_surrogate(cp)) {
					out->lone = 1;
				}
				break;
			default: return -1;
			}
		}
		if (matched < 3 && cp == (unsigned char)key[matched])
			matched++;
		else
			mismatch = 1;
	}
	return -1;
}

static int digits(struct scan *s)
{
	const unsigned char *p = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > p ? 0 : -1;
}

/* A number by RFC 8259's grammar, of any length. */
static int number(struct scan *s)
{
	if (s->p < s->end && *s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || digits(s))
		return -1;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (digits(s))
			return -1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (digits(s))
			return -1;
	}
	return 0;
}

static int literal(struct scan *s, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

/* Records container `depth` (0 for the outermost) as an object or not. */
static int push(struct scan *s, size_t depth, int object)
{
	unsigned char bit = (unsigned char)(1u << (depth & 7));

	if (depth == LOCAL_DEPTH) {
		/* Every container opens with a byte: len bits are enough. */
		unsigned char *bits = malloc(s->len / 8 + 1);

		if (!bits)
			return -1;
		memcpy(bits, s->local, sizeof(s->local));
		s->bits = bits;
	}
	if (object)
		s->bits[depth >> 3] |= bit;
	else
		s->bits[depth >> 3] &= (unsigned char)~bit;
	return 0;
}

static int is_object(const struct scan *s, size_t depth)
{
	return s->bits[depth >> 3] >> (depth & 7) & 1;
}

enum kq__jsonkey kq__json_key(const char *msg, size_t len, const char **key,
			      size_t *klen)
{
	struct scan s;
	struct str str;
	enum kq__jsonkey state = KQ__JSONKEY_NONE;
	const unsigned char *kp = NULL;
	size_t depth = 0, kn = 0;
	int key_member = 0, object, valid = 0;

	*key = NULL;
	*klen = 0;
	s.p = (const unsigned char *)msg;
	s.end = s.p + len;
	s.len = len;
	s.bits = s.local;
	ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return KQ__JSONKEY_NONE;
	/* A goto per grammar state keeps any depth off the C stack. */
	goto open;

value: /* at a value, white space skipped */
	if (s.p >= s.end)
		goto done;
	if (*s.p == '{' || *s.p == '[') {
		if (key_member)
			state = KQ__JSONKEY_NONE;
		goto open;
	}
	if (*s.p == '"') {
		if (string(&s, &str) != 0)
			goto done;
		if (key_member) {
			/* The last "Key" wins, as in jansson. */
			kp = str.start;
			kn = str.n;
			state = str.lone || !str.n ? KQ__JSONKEY_NONE
				: str.escaped	   ? KQ__JSONKEY_ESCAPED
						   : KQ__JSONKEY_FOUND;
		}
		goto after;
	}
	if (key_member)
		state = KQ__JSONKEY_NONE;
	if ((*s.p == 't'   ? literal(&s, "true")
	     : *s.p == 'f' ? literal(&s, "false")
	     : *s.p == 'n' ? literal(&s, "null")
			   : number(&s)) != 0)
		goto done;
	goto after;

open: /* at '{' or '[' */
	object = *s.p == '{';
	if (push(&s, depth, object) != 0)
		goto done;
	depth++;
	s.p++;
	ws(&s);
	if (s.p < s.end && *s.p == (object ? '}' : ']')) {
		s.p++;
		depth--;
		goto after;
	}
	if (object)
		goto member;
	key_member = 0;
	goto value;

member: /* at a member's name, white space skipped */
	if (s.p >= s.end || *s.p != '"' || string(&s, &str) != 0)
		goto done;
	key_member = depth == 1 && str.is_key;
	ws(&s);
	if (s.p >= s.end || *s.p != ':')
		goto done;
	s.p++;
	ws(&s);
	goto value;

after: /* a value ended */
	ws(&s);
	if (depth == 0) {
		valid = s.p == s.end;
		goto done;
	}
	if (s.p >= s.end)
		goto done;
	object = is_object(&s, depth - 1);
	if (*s.p == ',') {
		s.p++;
		ws(&s);
		if (object)
			goto member;
		key_member = 0;
		goto value;
	}
	if (*s.p != (object ? '}' : ']'))
		goto done;
	s.p++;
	depth--;
	goto after;

done:
	if (s.bits != s.local)
		free(s.bits);
	if (!valid || state == KQ__JSONKEY_NONE)
		return KQ__JSONKEY_NONE;
	*key = (const char *)kp;
	*klen = kn;
	return state;
}

/* Appends code point v as UTF-8. */
static size_t put_utf8(unsigned v, char *out)
{
	if (v < 0x80) {
		out[0] = (char)v;
		return 1;
	}
	if (v < 0x800) {
		out[0] = (char)(0xC0 | v >> 6);
		out[1] = (char)(0x80 | (v & 0x3F));
		return 2;
	}
	if (v < 0x10000) {
		out[0] = (char)(0xE0 | v >> 12);
		out[1] = (char)(0x80 | (v >> 6 & 0x3F));
		out[2] = (char)(0x80 | (v & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | v >> 18);
	out[1] = (char)(0x80 | (v >> 12 & 0x3F));
	out[2] = (char)(0x80 | (v >> 6 & 0x3F));
	out[3] = (char)(0x80 | (v & 0x3F));
	return 4;
}

size_t kq__json_unescape(const char *raw, size_t n, char *out)
{
	const unsigned char *p = (const unsigned char *)raw, *end = p + n;
	size_t o = 0;
	unsigned v, lo;

	while (p < end) {
		if (*p != '\\') {
			out[o++] = (char)*p++;
			continue;
		}
		if (end - p < 2)
			break; /* not from the scanner */
		p += 2;
		switch (p[-1]) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u':
			if (end - p < 4 || hex4(p, &v) != 0)
				return o;
			p += 4;
			if (high_surrogate(v) && end - p >= 6 && p[0] == '\\' &&
			    p[1] == 'u' && hex4(p + 2, &lo) == 0 &&
			    low_surrogate(lo)) {
				v = 0x10000 + ((v - 0xD800) << 10) +
				    (lo - 0xDC00);
				p += 6;
			}
			o += put_utf8(v, out + o);
			break;
		default: out[o++] = (char)p[-1]; break;
		}
	}
	return o;
}
