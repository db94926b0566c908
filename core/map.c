#include "map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a: keys are short names and ids; no adversarial input reaches a
 * map without passing name validation first. */
static uint64_t hash_bytes(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 1469598103934665603ULL;

	while (len--) {
		h ^= *p++;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct kq__map_entry **find(const struct kq__map *m, const void *key,
				   size_t klen, uint64_t h)
{
	struct kq__map_entry **e;

	if (!m->nbuckets)
		return NULL;
	for (e = &m->buckets[h & (m->nbuckets - 1)]; *e; e = &(*e)->next)
		if ((*e)->hash == h && (*e)->klen == klen &&
		    memcmp((*e)->key, key, klen) == 0)
			return e;
	return NULL;
}

void *kq__map_get(const struct kq__map *m, const void *key, size_t klen)
{
	struct kq__map_entry **e = find(m, key, klen, hash_bytes(key, klen));

	return e ? (*e)->value : NULL;
}

static int grow(struct kq__map *m)
{
	size_t n = m->nbuckets ? m->nbuckets * 2 : 16, i;
	struct kq__map_entry **b = calloc(n, sizeof(*b)), *e, *next;

	if (!b)
		return -ENOMEM;
	for (i = 0; i < m->nbuckets; i++)
		for (e = m->buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
	return 0;
}

int kq__map_put(struct kq__map *m, const void *key, size_t klen, void *value)
{
	uint64_t h = hash_bytes(key, klen);
	struct kq__map_entry **slot = find(m, key, klen, h), *e;

	if (slot) {
		(*slot)->value = value;
		return 0;
	}
	if (m->count + 1 > m->nbuckets && grow(m) != 0)
		return -ENOMEM;
	e = malloc(sizeof(*e) + klen + 1);
	if (!e)
		return -ENOMEM;
	e->hash = h;
	e->klen = klen;
	e->value = value;
	memcpy(e->key, key, klen);
	e->key[klen] = '\0';
	e->next = m->buckets[h & (m->nbuckets - 1)];
	m->buckets[h & (m->nbuckets - 1)] = e;
	m->count++;
	return 0;
}

void *kq__map_del(struct kq__map *m, const void *key, size_t klen)
{
	struct kq__map_entry **slot = find(m, key, klen, hash_bytes(key, klen));
	struct kq__map_entry *e;
	void *v;

	if (!slot)
		return NULL;
	e = *slot;
	*slot = e->next;
	v = e->value;
	free(e);
	m->count--;
	return v;
}

struct kq__map_entry *kq__map_next(const struct kq__map *m,
				   struct kq__map_entry *it)
{
	size_t i = 0;

	if (it) {
		if (it->next)
			return it->next;
		i = (it->hash & (m->nbuckets - 1)) + 1;
	}
	for (; i < m->nbuckets; i++)
		if (m->buckets[i])
			return m->buckets[i];
	return NULL;
}

void kq__map_free(struct kq__map *m)
{
	struct kq__map_entry *e, *next;

	for (size_t i = 0; i < m->nbuckets; i++)
		for (e = m->buckets[i]; e; e = next) {
			next = e->next;
			free(e);
		}
	free(m->buckets);
	memset(m, 0, sizeof(*m));
}
