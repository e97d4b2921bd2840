/* backoff.h - a capped exponential backoff: base, doubled after each
 * attempt, at most cap (PostgreSQL: 0.5 s to 15 s; the broker: 1 s to
 * 30 s). Plain data, no clock: the caller sleeps or schedules. */
#ifndef CORDON_BACKOFF_H
#define CORDON_BACKOFF_H

#include <stdint.h>

struct backoff {
	int64_t base_ms;
	int64_t cap_ms;
	int64_t delay_ms; /* the wait before the next attempt */
};

/* Starts at base_ms (> 0, <= cap_ms). */
void backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms);

/* The wait before the next attempt, unchanged. */
int64_t backoff_delay(const struct backoff *b);

/* Returns the wait before the next attempt and doubles it, at most to
 * cap, for the attempt after: base, 2 base, 4 base, ..., cap, cap. */
int64_t backoff_next(struct backoff *b);

/* Back to base (after a success). */
void backoff_reset(struct backoff *b);

#endif
