/* The wall clock, in the unit of record timestamps and retention.ms.
 * Header-only; nothing to link. */
#ifndef KAFKAESQUE_CLOCK_H
#define KAFKAESQUE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): what a record's
 * timestamp_ms holds when its producer gave none. */
static inline int64_t kq_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif /* KAFKAESQUE_CLOCK_H */
