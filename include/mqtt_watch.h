/* mqtt_watch.h - what the broker tells us about our session, in words,
 * and when it adds up to an alert. Pure: no I/O, no clock reads.
 *
 * Reason codes are MQTT 5.0's (OASIS, 7 March 2019, section 2.4, table
 * 2-6; SUBACK 3.9.3, DISCONNECT 3.14.2.1). */
#ifndef CORDON_MQTT_WATCH_H
#define CORDON_MQTT_WATCH_H

#include <stdint.h>

/* The words for an MQTT 5 reason code as a SUBACK or a DISCONNECT gives
 * it ("not authorized" for 0x87, "session taken over" for 0x8E); NULL for
 * a code MQTT 5 does not define. Codes 0x00-0x02 of a SUBACK are the
 * granted QoS, not reasons: NULL for them too. */
const char *mqtt_reason_text(int code);

/* The DISCONNECT reason codes mqtt_reason_text() knows, in a fixed
 * order, for a metric with one series per code; MQTT_REASONS of them.
 * mqtt_reason_index() gives a code's place in it, or -1. */
#define MQTT_REASONS 30
int mqtt_reason_code_at(int index);
int mqtt_reason_index(int code);

/* Another client taking our client id: raised once MQTT_CONFLICT_COUNT
 * takeovers fell within MQTT_CONFLICT_WINDOW_MS, over once none came for
 * MQTT_CONFLICT_QUIET_MS. Times are milliseconds of a monotonic clock. */
#define MQTT_CONFLICT_COUNT 3
#define MQTT_CONFLICT_WINDOW_MS (10 * 60 * 1000)
#define MQTT_CONFLICT_QUIET_MS (10 * 60 * 1000)

struct mqtt_conflict {
	int64_t at[MQTT_CONFLICT_COUNT]; /* the latest takeovers, a ring */
	unsigned next;			 /* where the next one goes */
	unsigned seen;			 /* takeovers so far */
	int64_t last_ms;		 /* the latest; at init: now */
	int active;
};

/* Starts with nothing seen. A conflict alert restored from PostgreSQL is
 * over MQTT_CONFLICT_QUIET_MS after now_ms unless takeovers come. */
void mqtt_conflict_init(struct mqtt_conflict *c, int64_t now_ms);
/* Notes `count` takeovers seen at now_ms (0: just the time passing).
 * Returns 1 while the alert should be open, 0 when not. */
int mqtt_conflict_update(struct mqtt_conflict *c, unsigned count, int64_t now_ms);
/* Takeovers within the window before now_ms (at most MQTT_CONFLICT_COUNT). */
unsigned mqtt_conflict_recent(const struct mqtt_conflict *c, int64_t now_ms);

#endif
