/* telnet transport: line framing and word splitting of the text protocol.
 *
 * Pure code, no I/O and no libuv, so it can be unit tested and fuzzed on
 * its own.  The framer owns one growable line buffer; nothing else here
 * allocates. */
#ifndef KQ_TELNET_PARSE_H
#define KQ_TELNET_PARSE_H

#include <stddef.h>

/* Telnet command bytes (RFC 854). */
#define KQ__TN_SE   240
#define KQ__TN_SB   250
#define KQ__TN_WILL 251
#define KQ__TN_WONT 252
#define KQ__TN_DO   253
#define KQ__TN_DONT 254
#define KQ__TN_IAC  255

/* The protocol's default maximum line length (1 MiB). */
#define KQ__TN_MAX_LINE_DEFAULT ((size_t)1 << 20)

/* What kq__tn_framer_next() found. */
enum kq__tn_ev {
	KQ__TN_EV_NONE = 0, /* the input is used up; feed more */
	KQ__TN_EV_LINE,	    /* a complete line */
	KQ__TN_EV_TOOLONG,  /* the current line passed the maximum */
	KQ__TN_EV_OPTION,   /* a WILL/WONT/DO/DONT option request */
};

/* One event.  For LINE, `line` points into the framer's buffer: `len`
 * bytes without the LF (and without a CR right before it), followed by a
 * NUL.  The caller may modify those bytes; they stay valid until the next
 * kq__tn_framer_next() or kq__tn_framer_free() call.  For OPTION, `cmd` is
 * KQ__TN_WILL..KQ__TN_DONT and `opt` the option byte. */
struct kq__tn_event {
	enum kq__tn_ev type;
	char *line;
	size_t len;
	unsigned char cmd;
	unsigned char opt;
};

/* A streaming framer; caller-owned storage, contents private.  Zero bytes
 * are not a valid state: use kq__tn_framer_init(). */
struct kq__tn_framer {
	size_t max_line;   /* longest accepted line, in bytes */
	char *buf;	   /* current line, owned by the framer */
	size_t len;	   /* bytes of the current line so far */
	size_t cap;	   /* allocated size of buf */
	int state;	   /* position inside a telnet command sequence */
	unsigned char cmd; /* pending WILL/WONT/DO/DONT */
	int discard;	   /* dropping the rest of an over-long line */
	int emitted;	   /* buf holds a line handed out by the last call */
};

/* Prepares `f` for a new stream.  max_line 0 means the default.  Allocates
 * nothing; the line buffer grows on demand up to max_line + 2 bytes. */
void kq__tn_framer_init(struct kq__tn_framer *f, size_t max_line);

/* Releases the line buffer.  `f` may be initialized again afterwards. */
void kq__tn_framer_free(struct kq__tn_framer *f);

/* Consumes input from `in` (`len` bytes) until one event occurs or the
 * input is used up, and sets *used to the bytes consumed (all of them when
 * it returns KQ__TN_EV_NONE).  Call again with the rest of the input.
 * Chunks may split lines and telnet sequences at any byte.  Returns the
 * event type, or -ENOMEM when the line buffer cannot grow (the framer is
 * then only fit for kq__tn_framer_free()). */
int kq__tn_framer_next(struct kq__tn_framer *f, const void *in, size_t len,
		       size_t *used, struct kq__tn_event *ev);

/* One word of a line.  `p` points into the line; for a quoted word it is
 * the unescaped content, written in place over the word as typed.  `start`
 * and `end` are the offsets of the word as typed (quotes included), `end`
 * one past its last byte. */
struct kq__tn_word {
	char *p;
	size_t len;
	size_t start;
	size_t end;
	int quoted;
};

/* Finds the next word of `line` (`len` bytes) at or after offset *pos and
 * advances *pos past it.  Words are separated by runs of spaces and tabs;
 * a word starting with `"` runs to the next `"` that is not doubled, and
 * `""` inside it stands for one `"`.  Unescapes quoted words in place (only
 * bytes inside the word change).  Returns 1 with *w set, 0 when no word is
 * left, or KQ_ESYNTAX for an unterminated quote or a closing quote
 * followed by something other than a separator. */
int kq__tn_word_next(char *line, size_t len, size_t *pos,
		     struct kq__tn_word *w);

/* Splits a whole line: stores the first `maxw` words in `w` and returns
 * how many words the line has (which may exceed maxw), or KQ_ESYNTAX. */
int kq__tn_split(char *line, size_t len, struct kq__tn_word *w, size_t maxw);

/* The message of `PUBS <topic> <message>`: `pos` is the end offset of the
 * topic word.  If the text after the single separator that follows the
 * topic begins with `"`, the message is that quoted word, which must end
 * the line; otherwise it is the rest of the line exactly as typed.  Sets
 * *msg (pointing into `line`) and *mlen.  Returns 0, or KQ_ESYNTAX when
 * the message is missing (nothing or only blanks after the topic), its
 * quote is unterminated, or more follows a quoted message. */
int kq__tn_pubs_message(char *line, size_t len, size_t pos, char **msg,
			size_t *mlen);

/* Whether the line's first word, unquoted, equals `name` ignoring case.
 * Does not modify the line. */
int kq__tn_first_word_is(const char *line, size_t len, const char *name);

#endif /* KQ_TELNET_PARSE_H */
