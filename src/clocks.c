/* clocks.c - the monotonic and the wall clock, read one way everywhere in
 * the daemon's modules. */
#include "clocks.h"

#include <time.h>

#include "log.h"

int64_t
clocks_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
clocks_mono_ms(void)
{
	return clocks_mono_us() / 1000;
}

int64_t
clocks_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Now for the rules: the wall clock for what they show and for the
 * calendar, the monotonic clock for every deadline (rules.h). */
struct rules_clock
clocks_rules_now(void)
{
	return (struct rules_clock){ .wall_us = clocks_wall_us(), .mono_us = clocks_mono_us() };
}

/* Logs a step of the wall clock: the offset between CLOCK_REALTIME and
 * CLOCK_MONOTONIC changed by more than WALL_STEP_US since the last look
 * (every tick). NTP slews by at most 500 ppm, 50 us per tick: only a step
 * (settimeofday, NTP setting the clock, `date -s`) gets here. Timers do
 * not move with it: they run on the monotonic clock. */
#define WALL_STEP_US 1000000

void
clocks_watch_wall(int64_t *offset_us)
{
	struct rules_clock now = clocks_rules_now();
	int64_t offset = now.wall_us - now.mono_us;
	int64_t step = offset - *offset_us;

	if (*offset_us && (step > WALL_STEP_US || step < -WALL_STEP_US))
		log_warn("wall clock stepped %s by %lld s; deadlines keep running on the"
			 " monotonic clock, the times shown and stored follow the wall clock",
			 step > 0 ? "forward" : "back",
			 (long long)((step > 0 ? step : -step) + 500000) / 1000000);
	*offset_us = offset;
}
