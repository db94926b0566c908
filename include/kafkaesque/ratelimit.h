/* kafkaesque plugin SDK: a token bucket for log lines that something
 * outside may cause again and again (connections refused, failed
 * passwords), so that a flood of them cannot flood the log.  Header-only;
 * nothing to link. */
#ifndef KAFKAESQUE_RATELIMIT_H
#define KAFKAESQUE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* One kind of line: owned by the caller, zero-initialised. */
struct kq_ratelimit {
	uint64_t last_ms;   /* when it was last asked */
	uint64_t budget_ms; /* saved up, at most burst * every_ms */
	uint64_t held;	    /* refused since the last one allowed */
	bool started;	    /* asked before: a new one has a whole burst */
};

/* Whether one more line may go at `now_ms` (any millisecond clock that
 * only moves forward, e.g. uv_now()): at most `burst` at once, then one
 * per `every_ms`.  When it may, *held (if not NULL) receives how many
 * were refused since the last one that went, for the line to say so. */
static inline bool kq_ratelimit_allow(struct kq_ratelimit *r, uint64_t now_ms,
				      uint64_t every_ms, unsigned burst,
				      uint64_t *held)
{
	uint64_t cap = (uint64_t)burst * every_ms;

	if (!r->started) {
		r->started = true;
		r->last_ms = now_ms;
		r->budget_ms = cap;
	}
	r->budget_ms += now_ms - r->last_ms;
	r->last_ms = now_ms;
	if (r->budget_ms > cap)
		r->budget_ms = cap;
	if (r->budget_ms < every_ms) {
		r->held++;
		return false;
	}
	r->budget_ms -= every_ms;
	if (held != NULL)
		*held = r->held;
	r->held = 0;
	return true;
}

#endif /* KAFKAESQUE_RATELIMIT_H */
