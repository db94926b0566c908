/* Topic and group names: 1 to 249 characters of [A-Za-z0-9._-], and
 * neither "." nor "..". */
#ifndef KQ_CORE_NAMES_H
#define KQ_CORE_NAMES_H

#include <stddef.h>

#define KQ__NAME_MAX 249

/* 1 when `name` is a valid topic or group name. */
int kq__name_valid(const char *name);

#endif /* KQ_CORE_NAMES_H */
