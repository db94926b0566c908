#include "jsonw.h"

#include <stdlib.h>
#include <string.h>

static void put(struct kq__jsonw *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (w->cap - w->len < n + 1) {
		size_t cap = w->cap ? w->cap : 4096;
		char *p;

		while (cap - w->len < n + 1)
			cap *= 2;
		p = realloc(w->p, cap);
		if (!p) {
			w->oom = 1;
			return;
		}
		w->p = p;
		w->cap = cap;
	}
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = 0;
}

void kq__jsonw_raw(struct kq__jsonw *w, const char *s)
{
	put(w, s, strlen(s));
}

void kq__jsonw_u64(struct kq__jsonw *w, uint64_t v)
{
	char buf[24];
	size_t at = sizeof(buf);

	do {
		buf[--at] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put(w, buf + at, sizeof(buf) - at);
}

void kq__jsonw_i64(struct kq__jsonw *w, int64_t v)
{
	if (v < 0) {
		put(w, "-", 1);
		kq__jsonw_u64(w, (uint64_t)0 - (uint64_t)v);
		return;
	}
	kq__jsonw_u64(w, (uint64_t)v);
}

int kq__jsonw_str(struct kq__jsonw *w, const char *s)
{
	json_t *v = json_string(s);
	char *text;

	if (!v) { /* out of memory, or not UTF-8: the text would be wrong */
		w->oom = 1;
		return -1;
	}
	text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	json_decref(v);
	if (!text) {
		w->oom = 1;
		return -1;
	}
	kq__jsonw_raw(w, text);
	free(text);
	return 0;
}

void kq__jsonw_value(struct kq__jsonw *w, json_t *v)
{
	char *text = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;

	json_decref(v);
	if (!text) {
		w->oom = 1;
		return;
	}
	kq__jsonw_raw(w, text);
	free(text);
}
