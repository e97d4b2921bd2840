/* backoff.c - a capped exponential backoff (backoff.h) */
#include "backoff.h"

void
backoff_init(struct backoff *b, int64_t base_ms, int64_t cap_ms)
{
	b->base_ms = base_ms;
	b->cap_ms = cap_ms;
	b->delay_ms = base_ms;
}

int64_t
backoff_delay(const struct backoff *b)
{
	return b->delay_ms;
}

int64_t
backoff_next(struct backoff *b)
{
	int64_t d = b->delay_ms;

	b->delay_ms = d > b->cap_ms / 2 ? b->cap_ms : d * 2;
	return d;
}

void
backoff_reset(struct backoff *b)
{
	b->delay_ms = b->base_ms;
}
