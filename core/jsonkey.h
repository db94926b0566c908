/* Finding a message's key without building a JSON document: a strict
 * scanner for the common case, with jansson as the arbiter of the rest. */
#ifndef KQ_CORE_JSONKEY_H
#define KQ_CORE_JSONKEY_H

#include <stddef.h>

enum kq__jsonkey {
	KQ__JSONKEY_NONE = 0, /* not a JSON object, or no non-empty "Key" */
	KQ__JSONKEY_FOUND,    /* *key (into msg) and *klen are the key */
	KQ__JSONKEY_UNSURE,   /* something the scanner leaves to jansson:
			       * escapes in the key, \u0000, long numbers,
			       * deep nesting, bytes above 0x7f */
};

/* Scans `msg` (len bytes, borrowed) as RFC 8259 JSON.  A FOUND or NONE
 * answer is the one jansson's json_loadb() would lead to: the message is
 * a JSON object whose last top-level "Key" member is a non-empty string
 * (FOUND), or it is not (NONE). */
enum kq__jsonkey kq__json_key(const char *msg, size_t len, const char **key,
			      size_t *klen);

#endif /* KQ_CORE_JSONKEY_H */
