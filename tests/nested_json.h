/* Deeply nested JSON, for the tests of the message-key scanner and of a
 * broker given such a message. */
#ifndef KQ_TEST_NESTED_JSON_H
#define KQ_TEST_NESTED_JSON_H

#include <stdlib.h>
#include <string.h>

/* `head`, then `depth` times '[' and as many ']', then `tail`: a new
 * NUL-terminated string (NULL when out of memory), its length in *len. */
static inline char *kq__test_nested_json(const char *head, size_t depth,
					 const char *tail, size_t *len)
{
	size_t h = strlen(head), t = strlen(tail);
	char *m = malloc(h + 2 * depth + t + 1);

	if (!m)
		return NULL;
	memcpy(m, head, h);
	memset(m + h, '[', depth);
	memset(m + h + depth, ']', depth);
	memcpy(m + h + 2 * depth, tail, t + 1);
	*len = h + 2 * depth + t;
	return m;
}

#endif /* KQ_TEST_NESTED_JSON_H */
