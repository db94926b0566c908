/* Encoding and checking of records and file headers. */
#include <string.h>

#include "crc32c.h"
#include "format.h"

static const char magic[2][4] = {
	[KQ__SEG_FILE_LOG] = {'K', 'Q', 'L', 'G'},
	[KQ__SEG_FILE_INDEX] = {'K', 'Q', 'I', 'X'},
};

void kq__seg_header_encode(uint8_t *dst, enum kq__seg_file_kind kind,
			   uint64_t base)
{
	memcpy(dst, magic[kind], 4);
	kq_put32le(dst + 4, KQ__SEG_FORMAT_VERSION);
	kq_put64le(dst + 8, base);
	kq_put32le(dst + 16, 0);
	kq_put32le(dst + 20, kq__seg_crc32c(0, dst, 20));
}

int kq__seg_header_check(const uint8_t *src, enum kq__seg_file_kind kind,
			 uint64_t base)
{
	if (memcmp(src, magic[kind], 4) != 0 ||
	    kq_get32le(src + 20) != kq__seg_crc32c(0, src, 20) ||
	    kq_get32le(src + 4) != KQ__SEG_FORMAT_VERSION ||
	    kq_get64le(src + 8) != base)
		return KQ_ECORRUPT;
	return 0;
}

void kq__seg_record_encode(uint8_t *dst, const struct kq_record *rec)
{
	uint32_t k = rec->key != NULL ? rec->key_len : 0;
	uint32_t v = rec->value != NULL ? rec->value_len : 0;
	uint64_t total = KQ__SEG_REC_FIXED + (uint64_t)k + v;

	kq_put32le(dst, (uint32_t)(total - 4));
	kq_put64le(dst + 8, rec->offset);
	kq_put64le(dst + 16, rec->term);
	kq_put64le(dst + 24, (uint64_t)rec->timestamp_ms);
	kq_put32le(dst + 32, rec->flags);
	kq_put32le(dst + 36, k);
	if (k > 0)
		memcpy(dst + 40, rec->key, k);
	kq_put32le(dst + 40 + k, v);
	if (v > 0)
		memcpy(dst + 44 + k, rec->value, v);
	kq_put32le(dst + 4, kq__seg_crc32c(0, dst + 8, total - 8));
}

int kq__seg_record_decode(const uint8_t *buf, size_t avail,
			  struct kq_record *rec, uint64_t *size)
{
	uint64_t total;
	uint32_t k, v;

	if (avail < 4) {
		*size = KQ__SEG_REC_FIXED;
		return KQ__SEG_REC_SHORT;
	}
	total = (uint64_t)kq_get32le(buf) + 4;
	if (total < KQ__SEG_REC_FIXED || total > KQ__SEG_REC_MAX)
		return KQ__SEG_REC_BAD;
	*size = total;
	if (avail < total)
		return KQ__SEG_REC_SHORT;
	if (kq_get32le(buf + 4) != kq__seg_crc32c(0, buf + 8, total - 8))
		return KQ__SEG_REC_CRC;
	k = kq_get32le(buf + 36);
	if (k > total - KQ__SEG_REC_FIXED)
		return KQ__SEG_REC_BAD;
	v = kq_get32le(buf + 40 + k);
	if ((uint64_t)k + v + KQ__SEG_REC_FIXED != total)
		return KQ__SEG_REC_BAD;
	rec->offset = kq_get64le(buf + 8);
	rec->term = kq_get64le(buf + 16);
	rec->timestamp_ms = (int64_t)kq_get64le(buf + 24);
	rec->flags = kq_get32le(buf + 32);
	rec->key_len = k;
	rec->key = k > 0 ? buf + 40 : NULL;
	rec->value_len = v;
	rec->value = buf + 44 + k;
	return KQ__SEG_REC_OK;
}
