/* CRC32C (Castagnoli), the checksum of every record and file header. */
#ifndef KQ_SEGMENT_CRC32C_H
#define KQ_SEGMENT_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 to start) over `len` bytes at `buf` and returns the new
 * value; kq__seg_crc32c(0, "123456789", 9) == 0xE3069283.  Uses the SSE4.2
 * crc32 instruction when the CPU has it, the table otherwise.  Thread-safe;
 * the caller owns `buf`. */
uint32_t kq__seg_crc32c(uint32_t crc, const void *buf, size_t len);

/* The same function computed with the slicing-by-8 table only, so tests
 * can compare both paths. */
uint32_t kq__seg_crc32c_table(uint32_t crc, const void *buf, size_t len);

#endif /* KQ_SEGMENT_CRC32C_H */
