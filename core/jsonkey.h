/* Finding a message's key without building a JSON document: a strict,
 * allocation-free (but for very deep documents) RFC 8259 scanner that
 * decides every message itself. */
#ifndef KQ_CORE_JSONKEY_H
#define KQ_CORE_JSONKEY_H

#include <stddef.h>

enum kq__jsonkey {
	KQ__JSONKEY_NONE = 0, /* no key: not one JSON object, or its last
			       * top-level "Key" member is not a non-empty
			       * string of Unicode text */
	KQ__JSONKEY_FOUND,    /* *key (into msg) and *klen are the key */
	KQ__JSONKEY_ESCAPED,  /* *key (into msg) and *klen are the key as
			       * written between its quotes, with escapes:
			       * kq__json_unescape() gives its bytes */
};

/* Scans `msg` (len bytes, borrowed).  The message has a key when all of
 * it is one JSON text by RFC 8259 (strings valid UTF-8, any number of
 * digits, any depth) that is an object, and the last of its top-level
 * members named "Key" (after unescaping) is a non-empty string holding no
 * unpaired surrogate escape.  The key is that string's value in UTF-8,
 * "\u0000" giving a zero byte.  Whatever else the object holds does not
 * matter.  On NONE, *key is NULL and *klen 0. */
enum kq__jsonkey kq__json_key(const char *msg, size_t len, const char **key,
			      size_t *klen);

/* Decodes the `n` bytes of an ESCAPED key into `out`, which must hold n
 * bytes (a key never grows when decoded); returns the decoded length. */
size_t kq__json_unescape(const char *raw, size_t n, char *out);

#endif /* KQ_CORE_JSONKEY_H */
