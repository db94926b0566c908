/* A segment's sparse index in memory: the first record of the segment and
 * then one record every index_interval_bytes, mapped to file positions. */
#ifndef KQ_SEGMENT_INDEX_H
#define KQ_SEGMENT_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <kafkaesque/plugin.h>

struct kq__seg_ientry {
	uint64_t offset; /* a record's offset */
	uint64_t pos;	 /* its byte position in the .log file */
};

/* Entries in increasing offset and position order.  Owned by its segment;
 * memory from the host allocator. */
struct kq__seg_index {
	struct kq__seg_ientry *e;
	size_t n, cap;
	size_t flushed; /* entries already written to the .index file */
};

/* Appends an entry.  Returns 0 or -ENOMEM. */
int kq__seg_index_push(const struct kq_host *host, struct kq__seg_index *ix,
		       uint64_t offset, uint64_t pos);

/* Makes room for `more` entries without reallocating later pushes.
 * Returns 0 or -ENOMEM. */
int kq__seg_index_reserve(const struct kq_host *host, struct kq__seg_index *ix,
			  size_t more);

/* Frees the entries and empties the index. */
void kq__seg_index_free(const struct kq_host *host, struct kq__seg_index *ix);

/* The position in ix->e of the last entry with offset <= `offset`, or -1
 * when every entry is above it (or there is none). */
ssize_t kq__seg_index_find(const struct kq__seg_index *ix, uint64_t offset);

/* Fills an empty `ix` from the bytes of an .index file.  The file must
 * hold a valid header for `base`, whole entries, offsets from `base` up,
 * strictly increasing positions below `log_size` starting with the first
 * record.  Returns 0, KQ_ECORRUPT (ix then holds the valid prefix) or
 * -ENOMEM. */
int kq__seg_index_parse(const struct kq_host *host, struct kq__seg_index *ix,
			const uint8_t *buf, size_t len, uint64_t base,
			uint64_t log_size);

/* Encodes entries [from, to) at `dst`, KQ__SEG_IENTRY_SIZE bytes each. */
void kq__seg_index_encode(const struct kq__seg_index *ix, size_t from,
			  size_t to, uint8_t *dst);

#endif /* KQ_SEGMENT_INDEX_H */
