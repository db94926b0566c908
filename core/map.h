/* A small chained hash map from byte-string keys to pointers. */
#ifndef KQ_CORE_MAP_H
#define KQ_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

struct kq__map_entry {
	struct kq__map_entry *next;
	uint64_t hash;
	size_t klen;
	void *value;
	char key[]; /* klen bytes, then a NUL */
};

/* Zero-initialised storage is an empty map. The map owns its entries and
 * key copies, never the values. */
struct kq__map {
	struct kq__map_entry **buckets;
	size_t nbuckets;
	size_t count;
};

void *kq__map_get(const struct kq__map *m, const void *key, size_t klen);
/* Inserts or replaces; returns 0 or -ENOMEM. */
int kq__map_put(struct kq__map *m, const void *key, size_t klen, void *value);
/* Removes and returns the value (NULL when absent). */
void *kq__map_del(struct kq__map *m, const void *key, size_t klen);
void kq__map_free(struct kq__map *m);

/* Iteration: `it` starts NULL; returns the next entry or NULL. Entries must
 * not be added or removed while iterating. */
struct kq__map_entry *kq__map_next(const struct kq__map *m,
				   struct kq__map_entry *it);

#endif /* KQ_CORE_MAP_H */
