/* idfloor.c: the subscription-id floor of a standalone broker, kept in
 * <dir>/sub_ids beside the metadata log. */
#ifndef KQ_CORE_IDFLOOR_H
#define KQ_CORE_IDFLOOR_H

#include <stdint.h>

/* The floor stored in `dir`, or 0 when there is none (or it cannot be
 * read). */
uint64_t kq__idfloor_load(const char *dir);

/* Stores `floor` in `dir`, replacing the file atomically and durably: the
 * new file synced, renamed over the old one, and the folder synced.  0,
 * or -errno (the old file stays). */
int kq__idfloor_save(const char *dir, uint64_t floor);

#endif /* KQ_CORE_IDFLOOR_H */
