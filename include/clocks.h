/* clocks.h - the two clocks cordond reads (docs/architecture.md, "Clocks"):
 * CLOCK_MONOTONIC for every deadline, CLOCK_REALTIME for what is shown,
 * stored or calendar-based. */
#ifndef CORDON_CLOCKS_H
#define CORDON_CLOCKS_H

#include <stdint.h>

#include "rules.h"

/* CLOCK_MONOTONIC in microseconds, in milliseconds. */
int64_t clocks_mono_us(void);
int64_t clocks_mono_ms(void);
/* CLOCK_REALTIME in microseconds. */
int64_t clocks_wall_us(void);
/* Now for the rules: both clocks, read together (rules.h). */
struct rules_clock clocks_rules_now(void);
/* Logs a step of the wall clock: the offset between CLOCK_REALTIME and
 * CLOCK_MONOTONIC moved by more than 1 s since the last call (every tick);
 * *offset_us keeps it between calls (0 at first). */
void clocks_watch_wall(int64_t *offset_us);

#endif
