/* An in-memory file system behind the segment module's I/O table, so that
 * fuzz targets open, recover and write logs without touching the disk.
 * Single-threaded; paths are compared as strings (no "." or ".."). */
#ifndef KQ_FUZZ_MEMFS_H
#define KQ_FUZZ_MEMFS_H

#include <stddef.h>
#include <stdint.h>

/* Points kq__seg_io at the memory file system (once per process). */
void kq__memfs_install(void);

/* Forgets every file, folder and descriptor; returns how many
 * descriptors were still open (a leak of the code under test). */
int kq__memfs_reset(void);

/* Creates folder `path` (and its parents) when missing. */
void kq__memfs_mkdir(const char *path);

/* Creates or replaces file `path` with `len` bytes. */
void kq__memfs_put(const char *path, const void *data, size_t len);

/* After `n` more calls that change a file (write, truncate, sync, rename,
 * create), every such call fails with `err`; n < 0 never fails. */
void kq__memfs_fail_after(long n, int err);

/* Bytes held by all files: writes past `limit` fail with ENOSPC. */
size_t kq__memfs_used(void);
void kq__memfs_set_limit(size_t limit);

#endif /* KQ_FUZZ_MEMFS_H */
