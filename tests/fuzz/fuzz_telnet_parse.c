/* libFuzzer target for the telnet transport's framer and word splitter.
 *
 * Not built by make check.  Build and run with (from the top of the tree):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
 *       tests/fuzz/fuzz_telnet_parse.c plugins/telnet/parse.c \
 *       -o fuzz_telnet_parse
 *   ./fuzz_telnet_parse -max_total_time=60
 *
 * The first input byte picks the chunk size and the second the maximum
 * line length, so chunk boundaries and over-long lines are explored too.
 * Besides memory errors it checks the framer's promises: lines never hold
 * an LF, never exceed the maximum, and end with a NUL. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kafkaesque/error.h>

#include "../../plugins/telnet/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void words(char *line, size_t len)
{
	struct kq__tn_word w[8];
	size_t pos = 0;
	char *msg;
	size_t mlen;
	int n, i;

	n = kq__tn_split(line, len, w, 8);
	if (n == KQ_ESYNTAX)
		return;
	if (n < 0)
		abort();
	for (i = 0; i < n && i < 8; i++) {
		if (w[i].p < line || w[i].p + w[i].len > line + len ||
		    w[i].start >= w[i].end || w[i].end > len)
			abort();
	}
	/* The splitter ran in place; split again from scratch only as far
	 * as PUBS needs, the way the transport does. */
	if (n >= 2 && !w[0].quoted && !w[1].quoted) {
		struct kq__tn_word t;

		pos = 0;
		if (kq__tn_word_next(line, len, &pos, &t) != 1 ||
		    kq__tn_word_next(line, len, &pos, &t) != 1)
			abort();
		if (kq__tn_pubs_message(line, len, pos, &msg, &mlen) == 0 &&
		    (msg < line || msg + mlen > line + len))
			abort();
	}
	(void)kq__tn_first_word_is(line, len, "PUBS");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kq__tn_framer f;
	size_t chunk, max;

	if (size < 2)
		return 0;
	chunk = (size_t)data[0] + 1;
	max = (size_t)data[1] * 4 + 1;
	data += 2;
	size -= 2;

	kq__tn_framer_init(&f, max);
	while (size > 0) {
		size_t n = size < chunk ? size : chunk;
		const uint8_t *p = data;
		size_t left = n;

		while (left > 0) {
			struct kq__tn_event ev;
			size_t used = 0;
			int r = kq__tn_framer_next(&f, p, left, &used, &ev);

			if (r < 0 || used > left)
				abort();
			p += used;
			left -= used;
			if (r == KQ__TN_EV_NONE) {
				if (left != 0)
					abort();
				break;
			}
			if (r == KQ__TN_EV_LINE) {
				if (ev.len > max || ev.line[ev.len] != '\0' ||
				    memchr(ev.line, '\n', ev.len))
					abort();
				words(ev.line, ev.len);
			}
		}
		data += n;
		size -= n;
	}
	kq__tn_framer_free(&f);
	return 0;
}
