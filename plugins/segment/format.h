/* The on-disk format of segment files (docs/storage-format.md): file
 * headers, records and index entries, all little-endian. */
#ifndef KQ_SEGMENT_FORMAT_H
#define KQ_SEGMENT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <kafkaesque/bytes.h>
#include <kafkaesque/storage.h>

#define KQ__SEG_FORMAT_VERSION 1
#define KQ__SEG_HDR_SIZE       24 /* header of .log and .index files */
#define KQ__SEG_REC_FIXED      44 /* record bytes besides key and value */
#define KQ__SEG_REC_MAX	       ((uint64_t)1 << 30) /* largest record, all included */
#define KQ__SEG_IENTRY_SIZE    16		   /* one index entry */

/* A log's durable Raft term and vote (state.c). */
#define KQ__SEG_STATE_FILE "raft.state"

enum kq__seg_file_kind {
	KQ__SEG_FILE_LOG,
	KQ__SEG_FILE_INDEX,
};

/* Writes the KQ__SEG_HDR_SIZE-byte header of a file of `kind` holding the
 * segment that starts at `base` into `dst` (caller-owned). */
void kq__seg_header_encode(uint8_t *dst, enum kq__seg_file_kind kind,
			   uint64_t base);

/* Checks a header read from disk: magic, version, checksum and base.
 * Returns 0 or KQ_ECORRUPT. */
int kq__seg_header_check(const uint8_t *src, enum kq__seg_file_kind kind,
			 uint64_t base);

/* The encoded size of `rec`, header included. */
static inline uint64_t kq__seg_record_size(const struct kq_record *rec)
{
	uint64_t k = rec->key != NULL ? rec->key_len : 0;
	uint64_t v = rec->value != NULL ? rec->value_len : 0;

	return KQ__SEG_REC_FIXED + k + v;
}

/* Encodes `rec` at `dst`, which has room for kq__seg_record_size(rec) bytes. */
void kq__seg_record_encode(uint8_t *dst, const struct kq_record *rec);

enum {
	KQ__SEG_REC_OK = 0,
	KQ__SEG_REC_SHORT = 1, /* fewer bytes than the record needs */
	KQ__SEG_REC_BAD = 2,   /* impossible lengths */
	KQ__SEG_REC_CRC = 3,   /* checksum mismatch */
};

/* Decodes the record at `buf`, of which `avail` bytes are readable.
 * Returns KQ__SEG_REC_OK with *rec pointing into `buf` and *size its encoded
 * size; KQ__SEG_REC_SHORT with *size the bytes needed to go on; KQ__SEG_REC_BAD
 * or KQ__SEG_REC_CRC for a damaged record. */
int kq__seg_record_decode(const uint8_t *buf, size_t avail,
			  struct kq_record *rec, uint64_t *size);

#endif /* KQ_SEGMENT_FORMAT_H */
