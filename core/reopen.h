#ifndef KQ_CORE_REOPEN_H
#define KQ_CORE_REOPEN_H

#include "types.h"

/* reopen.c: b->reopen_timer's callback (b->reopen_cb). */
void kq__reopen_on_timer(uv_timer_t *tm);

#endif /* KQ_CORE_REOPEN_H */
