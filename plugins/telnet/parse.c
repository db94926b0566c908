/* telnet transport: line framing and word splitting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <kafkaesque/error.h>

#include "parse.h"

/* A line buffer grown past this is released once its line is used, so a
 * rare huge line does not pin memory for the connection's life. */
#define BUF_KEEP ((size_t)64 << 10)

/* Framer states: where we are inside a telnet command sequence. */
enum {
	ST_DATA = 0, /* ordinary data */
	ST_IAC,	     /* after IAC */
	ST_OPT,	     /* after IAC WILL/WONT/DO/DONT, before the option */
	ST_SB,	     /* inside a subnegotiation */
	ST_SB_IAC,   /* IAC inside a subnegotiation */
};

void kq__tn_framer_init(struct kq__tn_framer *f, size_t max_line)
{
	memset(f, 0, sizeof(*f));
	f->max_line = max_line ? max_line : KQ__TN_MAX_LINE_DEFAULT;
	f->state = ST_DATA;
}

void kq__tn_framer_free(struct kq__tn_framer *f)
{
	free(f->buf);
	f->buf = NULL;
	f->len = 0;
	f->cap = 0;
}

/* Makes room for `more` bytes plus the NUL that ends a line. */
static int reserve(struct kq__tn_framer *f, size_t more)
{
	size_t need = f->len + more + 1;
	size_t cap;
	char *p;

	if (need <= f->cap)
		return 0;
	cap = f->cap ? f->cap : 256;
	while (cap < need)
		cap *= 2;
	/* The longest line is max_line bytes and a CR before the LF. */
	if (cap > f->max_line + 2)
		cap = f->max_line + 2;
	if (cap < need)
		cap = need;
	p = realloc(f->buf, cap);
	if (!p)
		return -ENOMEM;
	f->buf = p;
	f->cap = cap;
	return 0;
}

/* The length of the run of bytes at `p` that are neither LF nor IAC. */
static size_t plain_run(const unsigned char *p, size_t n)
{
	/* memchr scans a word at a time; this runs over every byte in. */
	const unsigned char *nl = memchr(p, '\n', n);
	size_t end = nl ? (size_t)(nl - p) : n;
	const unsigned char *iac = memchr(p, KQ__TN_IAC, end);

	return iac ? (size_t)(iac - p) : end;
}

int kq__tn_framer_next(struct kq__tn_framer *f, const void *in, size_t len,
		       size_t *used, struct kq__tn_event *ev)
{
	const unsigned char *p = in;
	size_t i = 0;

	memset(ev, 0, sizeof(*ev));
	if (f->emitted) {
		f->len = 0;
		f->emitted = 0;
		if (f->cap > BUF_KEEP)
			kq__tn_framer_free(f);
	}
	while (i < len) {
		unsigned char c;

		/* Fast path: copy a run of plain bytes that fits the line. */
		if (f->state == ST_DATA && !f->discard &&
		    f->len < f->max_line) {
			size_t room = f->max_line - f->len;
			size_t run = plain_run(p + i,
					       len - i < room ? len - i : room);

			if (run > 0) {
				if (reserve(f, run) < 0)
					return -ENOMEM;
				memcpy(f->buf + f->len, p + i, run);
				f->len += run;
				i += run;
				continue;
			}
		}

		c = p[i++];
		switch (f->state) {
		case ST_DATA:
			if (c == KQ__TN_IAC) {
				f->state = ST_IAC;
				continue;
			}
			break;
		case ST_IAC:
			if (c == KQ__TN_IAC) {
				/* IAC IAC: a literal 255 data byte. */
				f->state = ST_DATA;
				break;
			}
			if (c >= KQ__TN_WILL && c <= KQ__TN_DONT) {
				f->cmd = c;
				f->state = ST_OPT;
			} else if (c == KQ__TN_SB) {
				f->state = ST_SB;
			} else {
				/* NOP, GA, AYT, ...: nothing to do. */
				f->state = ST_DATA;
			}
			continue;
		case ST_OPT:
			f->state = ST_DATA;
			ev->type = KQ__TN_EV_OPTION;
			ev->cmd = f->cmd;
			ev->opt = c;
			*used = i;
			return ev->type;
		case ST_SB:
			if (c == KQ__TN_IAC)
				f->state = ST_SB_IAC;
			continue;
		case ST_SB_IAC:
			f->state = c == KQ__TN_SE ? ST_DATA : ST_SB;
			continue;
		}

		/* A data byte. */
		if (c == '\n') {
			if (f->discard) {
				f->discard = 0;
				f->len = 0;
				continue;
			}
			if (f->len > 0 && f->buf[f->len - 1] == '\r')
				f->len--;
			if (reserve(f, 0) < 0)
				return -ENOMEM;
			f->buf[f->len] = '\0';
			f->emitted = 1;
			ev->type = KQ__TN_EV_LINE;
			ev->line = f->buf;
			ev->len = f->len;
			*used = i;
			return ev->type;
		}
		if (f->discard)
			continue;
		/* One byte past the maximum is allowed if it is a CR, which
		 * the LF after it then drops. */
		if (f->len > f->max_line ||
		    (f->len == f->max_line && c != '\r')) {
			f->discard = 1;
			kq__tn_framer_free(f);
			ev->type = KQ__TN_EV_TOOLONG;
			*used = i;
			return ev->type;
		}
		if (reserve(f, 1) < 0)
			return -ENOMEM;
		f->buf[f->len++] = (char)c;
	}
	*used = i;
	return KQ__TN_EV_NONE;
}

static int is_sep(char c)
{
	return c == ' ' || c == '\t';
}

int kq__tn_word_next(char *line, size_t len, size_t *pos, struct kq__tn_word *w)
{
	size_t i = *pos;
	size_t j, n = 0;
	char *dst;

	while (i < len && is_sep(line[i]))
		i++;
	if (i >= len) {
		*pos = len;
		return 0;
	}
	w->start = i;
	if (line[i] != '"') {
		j = i;
		while (j < len && !is_sep(line[j]))
			j++;
		w->p = line + i;
		w->len = j - i;
		w->end = j;
		w->quoted = 0;
		*pos = j;
		return 1;
	}

	/* Quoted: move each run between quotes down over the doubled
	 * quotes already read; the content never outruns the input. */
	dst = line + i + 1;
	j = i + 1;
	for (;;) {
		char *q = j < len ? memchr(line + j, '"', len - j) : NULL;
		size_t k;

		if (!q)
			return KQ_ESYNTAX;
		k = (size_t)(q - line);
		memmove(dst + n, line + j, k - j);
		n += k - j;
		if (k + 1 < len && line[k + 1] == '"') {
			dst[n++] = '"';
			j = k + 2;
			continue;
		}
		j = k + 1;
		break;
	}
	if (j < len && !is_sep(line[j]))
		return KQ_ESYNTAX;
	w->p = dst;
	w->len = n;
	w->end = j;
	w->quoted = 1;
	*pos = j;
	return 1;
}

int kq__tn_split(char *line, size_t len, struct kq__tn_word *w, size_t maxw)
{
	size_t pos = 0;
	int n = 0;

	for (;;) {
		struct kq__tn_word tmp;
		int r = kq__tn_word_next(line, len, &pos,
					 (size_t)n < maxw ? &w[n] : &tmp);

		if (r < 0)
			return r;
		if (r == 0)
			return n;
		n++;
	}
}

int kq__tn_pubs_message(char *line, size_t len, size_t pos, char **msg,
			size_t *mlen)
{
	struct kq__tn_word w;
	size_t rest, k;
	int r;

	/* pos sits on the separator after the topic, or at the end. */
	if (pos >= len)
		return KQ_ESYNTAX;
	rest = pos + 1;
	if (rest < len && line[rest] == '"') {
		k = rest;
		r = kq__tn_word_next(line, len, &k, &w);
		if (r < 0)
			return r;
		for (; k < len; k++)
			if (!is_sep(line[k]))
				return KQ_ESYNTAX;
		*msg = w.p;
		*mlen = w.len;
		return 0;
	}
	for (k = rest; k < len && is_sep(line[k]); k++)
		;
	if (k == len)
		return KQ_ESYNTAX;
	*msg = line + rest;
	*mlen = len - rest;
	return 0;
}

int kq__tn_first_word_is(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);
	size_t i = 0;

	while (i < len && is_sep(line[i]))
		i++;
	if (len - i < n || strncasecmp(line + i, name, n) != 0)
		return 0;
	return i + n == len || is_sep(line[i + n]);
}
