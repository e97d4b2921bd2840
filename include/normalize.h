/* normalize.h - raw MQTT message -> normalized events or a reject reason.
 *
 * Pure: no I/O, no clock reads, no logging above debug. json_t never
 * leaves this module. */
#ifndef CORDON_NORMALIZE_H
#define CORDON_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#define NORM_ID_MAX 64		/* site, gate, card, person, record ids */
#define NORM_KEY_MAX 200	/* event key */
#define NORM_MAX_EVENTS 256	/* events from one message (arrays) */
#define TEMP_NONE INT16_MIN	/* no temperature reading */

enum event_type {
	EVENT_GATE = 1,
};

enum event_flag {
	FLAG_IMPLAUSIBLE = 1u << 0,	/* outside 30.0-45.0 degrees C */
	FLAG_CLOCK_SKEW = 1u << 1,	/* device clock off by > max_clock_skew */
	FLAG_DEVICE_ABNORMAL = 1u << 2,	/* the device said abnormal temperature */
};

enum direction {
	DIR_NONE = 0,
	DIR_IN,
	DIR_OUT,
};

/* One normalized event. Strings are NUL-terminated, "" when absent. */
struct event {
	enum event_type type;
	char key[NORM_KEY_MAX];
	char site[NORM_ID_MAX + 1];
	char gate[NORM_ID_MAX + 1];
	char card[NORM_ID_MAX + 1];
	char person[NORM_ID_MAX + 1];
	int64_t device_us;	/* the device's time */
	int64_t received_us;	/* when cordond received the message */
	int64_t rule_us;	/* the time rules use (received_us if skewed) */
	int16_t temp_dc;	/* tenths of a degree C, or TEMP_NONE */
	int8_t mask;		/* -1 unknown, 0, 1 */
	enum direction direction;
	unsigned flags;		/* enum event_flag */
	const char *vendor;	/* static string */
};

/* What the normalizer needs to know beyond the message itself. */
struct norm_context {
	const char *topic_root;
	int64_t max_clock_skew_us;
	int64_t tz_offset_s;	/* site time zone offset for naive local times */
};

/* The message as the spool holds it. */
struct norm_input {
	const char *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	size_t orig_len;	/* > payload_len when truncated at max_payload */
	int64_t received_us;
};

struct norm_result {
	size_t nevents;
	const char *reason;	/* a reject reason (static), or NULL */
	char detail[128];	/* for the log: what exactly was wrong */
	char site[NORM_ID_MAX + 1];	/* "" when the topic had none */
};

/* Normalizes one message into events[0..max). Returns 0 and fills *ret:
 * either ret->nevents events, or ret->reason set (a reject). */
int normalize_message(const struct norm_context *ctx, const struct norm_input *in,
		      struct event *events, size_t max, struct norm_result *ret)
	__attribute__((warn_unused_result));

/* Hex of the 128-bit hash of topic and payload (33 bytes with NUL). */
void normalize_message_hash(const struct norm_input *in, char ret_hex[33]);

/* Parses ISO 8601 ("2020-02-16T18:32:00.123+08:00", "...Z", or naive local
 * time interpreted at tz_offset_s) into microseconds since the epoch. */
int normalize_parse_time(const char *s, int64_t tz_offset_s, int64_t *ret_us)
	__attribute__((warn_unused_result));

/* Writes "2020-02-16 10:32:00.123000+00" (UTC) into buf. */
void normalize_format_time(int64_t us, char *buf, size_t len);

const char *normalize_flag_name(unsigned flag);

#endif
