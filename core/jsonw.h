/* JSON text written straight into a growing buffer: for the metadata
 * snapshot, whose offsets and owners (groups x partitions of them) cost
 * a jansson value each to build and then to write, holding the loop for
 * seconds with a thousand groups of a thousand partitions. */
#ifndef KQ_CORE_JSONW_H
#define KQ_CORE_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* Caller-owned; zeroed to start.  `p` (malloc'd) is the caller's to free
 * once done; after a failed allocation `oom` is set and later writes do
 * nothing. */
struct kq__jsonw {
	char *p;
	size_t len, cap;
	int oom;
};

/* Appends `s` as it is: punctuation and keys the caller knows need no
 * escaping. */
void kq__jsonw_raw(struct kq__jsonw *w, const char *s);
void kq__jsonw_u64(struct kq__jsonw *w, uint64_t v);
void kq__jsonw_i64(struct kq__jsonw *w, int64_t v);
/* Appends `s` as a JSON string.  Returns 0, or -1 with `oom` set when
 * jansson cannot hold it (out of memory, or not UTF-8, which no name
 * is): a snapshot missing a group would be wrong, not short. */
int kq__jsonw_str(struct kq__jsonw *w, const char *s);
/* Appends jansson's compact text of v, and releases v (NULL: oom). */
void kq__jsonw_value(struct kq__jsonw *w, json_t *v);

#endif /* KQ_CORE_JSONW_H */
