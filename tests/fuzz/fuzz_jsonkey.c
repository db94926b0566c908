/* libFuzzer target: the message-key scanner against jansson.  Whenever the
 * scanner answers FOUND or NONE, jansson must agree (same key bytes).
 *
 * Built on request: make fuzz-jsonkey && ./fuzz_jsonkey -max_total_time=60 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *key;
	size_t klen;
	enum kq__jsonkey r =
		kq__json_key((const char *)data, size, &key, &klen);
	json_t *doc, *k;
	int has;

	if (r != KQ__JSONKEY_FOUND && (key || klen))
		abort();
	if (r == KQ__JSONKEY_UNSURE)
		return 0;
	doc = json_loadb((const char *)data, size, 0, NULL);
	k = json_is_object(doc) ? json_object_get(doc, "Key") : NULL;
	has = json_is_string(k) && json_string_length(k) > 0;
	if (has != (r == KQ__JSONKEY_FOUND))
		abort();
	if (has && (json_string_length(k) != klen ||
		    memcmp(json_string_value(k), key, klen) != 0))
		abort();
	json_decref(doc);
	return 0;
}
