/* telnet transport: growable byte buffers for answers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static int reserve(struct kq__tn_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int kq__tn_buf_append(struct kq__tn_buf *b, const void *data, size_t n)
{
	if (reserve(b, n) < 0)
		return -ENOMEM;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	return 0;
}

int kq__tn_buf_printf(struct kq__tn_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	/* Most answers fit the first try. */
	if (reserve(b, 64) < 0)
		return -ENOMEM;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return -ENOMEM;
	}
	if ((size_t)n >= b->cap - b->len) {
		if (reserve(b, (size_t)n + 1) < 0)
			return -ENOMEM;
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
	return 0;
}

int kq__tn_buf_append_text(struct kq__tn_buf *b, const char *s)
{
	size_t n = strlen(s), i;

	if (reserve(b, n) < 0)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		b->p[b->len++] = c < 32 || c == 127 ? ' ' : (char)c;
	}
	return 0;
}

void kq__tn_buf_free(struct kq__tn_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int kq__tn_buf_u64(struct kq__tn_buf *b, uint64_t v)
{
	char digits[20];
	size_t n = 0;

	do {
		digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return kq__tn_buf_append(b, digits + sizeof(digits) - n, n);
}
