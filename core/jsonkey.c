#include "jsonkey.h"

#include <string.h>

/* Deeper documents are rare in messages; jansson decides them. */
#define MAX_DEPTH 32

struct scan {
	const char *p, *end;
	int unsure;
};

static void ws(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' ||
				 *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

/* Consumes `c` (with the white space around it) when it comes next. */
static int accept(struct scan *s, char c)
{
	ws(s);
	if (s->p >= s->end || *s->p != c)
		return 0;
	s->p++;
	ws(s);
	return 1;
}

/* A string at s->p (at its opening quote).  On success *start and *n give the
 * raw bytes between the quotes and *escaped whether they hold escapes. */
static int string(struct scan *s, const char **start, size_t *n, int *escaped)
{
	const char *p = s->p + 1;

	*escaped = 0;
	for (; p < s->end; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"') {
			*start = s->p + 1;
			*n = (size_t)(p - *start);
			s->p = p + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			/* UTF-8 validity is jansson's call. */
			s->unsure = 1;
			continue;
		}
		if (c != '\\')
			continue;
		*escaped = 1;
		if (++p >= s->end)
			return -1;
		switch (*p) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't': break;
		case 'u':
			if (s->end - p < 5)
				return -1;
			for (int i = 1; i <= 4; i++) {
				char h = p[i];

				if (!((h >= '0' && h <= '9') ||
				      (h >= 'a' && h <= 'f') ||
				      (h >= 'A' && h <= 'F')))
					return -1;
			}
			/* Surrogates and \u0000 have rules of their own. */
			s->unsure = 1;
			p += 4;
			break;
		default: return -1;
		}
	}
	return -1;
}

static int number(struct scan *s)
{
	const char *p = s->p, *digits;

	if (p < s->end && *p == '-')
		p++;
	digits = p;
	if (p < s->end && *p == '0')
		p++;
	else if (p < s->end && *p >= '1' && *p <= '9')
		while (p < s->end && *p >= '0' && *p <= '9')
			p++;
	else
		return -1;
	/* Long integers may overflow jansson's json_int_t. */
	if (p - digits > 15)
		s->unsure = 1;
	if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E')) {
		/* Reals may overflow a double: leave them to jansson. */
		s->unsure = 1;
		if (*p == '.') {
			p++;
			if (p >= s->end || *p < '0' || *p > '9')
				return -1;
			while (p < s->end && *p >= '0' && *p <= '9')
				p++;
		}
		if (p < s->end && (*p == 'e' || *p == 'E')) {
			p++;
			if (p < s->end && (*p == '+' || *p == '-'))
				p++;
			if (p >= s->end || *p < '0' || *p > '9')
				return -1;
			while (p < s->end && *p >= '0' && *p <= '9')
				p++;
		}
	}
	s->p = p;
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

static int value(struct scan *s, int depth);

static int members(struct scan *s, int depth, const char **key, size_t *klen,
		   int *key_state)
{
	const char *name, *v;
	size_t nlen, vlen;
	int esc, vesc;

	s->p++; /* '{' */
	if (accept(s, '}'))
		return 0;
	for (;;) {
		if (s->p >= s->end || *s->p != '"' ||
		    string(s, &name, &nlen, &esc) != 0)
			return -1;
		if (!accept(s, ':'))
			return -1;
		if (key && !esc && nlen == 3 && memcmp(name, "Key", 3) == 0) {
			/* The last "Key" wins, as in jansson. */
			if (s->p < s->end && *s->p == '"') {
				if (string(s, &v, &vlen, &vesc) != 0)
					return -1;
				*key = v;
				*klen = vlen;
				*key_state = vesc   ? KQ__JSONKEY_UNSURE
					     : vlen ? KQ__JSONKEY_FOUND
						    : KQ__JSONKEY_NONE;
			} else {
				*key_state = KQ__JSONKEY_NONE;
				if (value(s, depth + 1) != 0)
					return -1;
			}
		} else {
			if (key && esc)
				s->unsure =
					1; /* an escaped name may be "Key" */
			if (value(s, depth + 1) != 0)
				return -1;
		}
		if (!accept(s, ','))
			return accept(s, '}') ? 0 : -1;
	}
}

static int elements(struct scan *s, int depth)
{
	s->p++; /* '[' */
	if (accept(s, ']'))
		return 0;
	for (;;) {
		if (value(s, depth + 1) != 0)
			return -1;
		if (!accept(s, ','))
			return accept(s, ']') ? 0 : -1;
	}
}

static int value(struct scan *s, int depth)
{
	const char *str;
	size_t n;
	int esc, state;

	if (depth > MAX_DEPTH) {
		s->unsure = 1;
		return -1;
	}
	if (s->p >= s->end)
		return -1;
	switch (*s->p) {
	case '{': return members(s, depth, NULL, NULL, &state);
	case '[': return elements(s, depth);
	case '"': return string(s, &str, &n, &esc);
	case 't': return literal(s, "true");
	case 'f': return literal(s, "false");
	case 'n': return literal(s, "null");
	default: return number(s);
	}
}

enum kq__jsonkey kq__json_key(const char *msg, size_t len, const char **key,
			      size_t *klen)
{
	struct scan s = {msg, msg + len, 0};
	int state = KQ__JSONKEY_NONE;

	enum kq__jsonkey r;

	*key = NULL;
	*klen = 0;
	ws(&s);
	if (s.p >= s.end || *s.p != '{')
		return KQ__JSONKEY_NONE;
	if (memchr(msg, '\0', len))
		return KQ__JSONKEY_UNSURE; /* jansson stops reading at NUL */
	if (members(&s, 1, key, klen, &state) == 0)
		ws(&s);
	else
		state = KQ__JSONKEY_NONE;
	if (s.p != s.end)
		state = KQ__JSONKEY_NONE;
	r = s.unsure ? KQ__JSONKEY_UNSURE : (enum kq__jsonkey)state;
	if (r != KQ__JSONKEY_FOUND) {
		*key = NULL;
		*klen = 0;
	}
	return r;
}
