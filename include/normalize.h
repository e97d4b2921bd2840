/* normalize.h - raw MQTT message -> normalized events or a reject reason.
 *
 * Pure: no I/O, no clock reads, no logging above debug. json_t never
 * leaves this module. */
#ifndef CORDON_NORMALIZE_H
#define CORDON_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "temp.h"

#define NORM_ID_MAX 64 /* site, gate, card, person, record ids (bytes) */
/* The record part of an event key: a record id, or for a hotline step
 * "<call_id>/<id>" with '%' and '/' of the call id escaped as %25 and %2F
 * (3 bytes each), so that no two (call, step) pairs share a key. */
#define NORM_RECORD_MAX (3 * NORM_ID_MAX + 1 + NORM_ID_MAX)
/* An event key "<site>/<gate, zone or household>/<record id>" (at most
 * 64 + 1 + 64 + 1 + 64 bytes) or "<site>/hotline/<call_id>/<id>" (the
 * longest: 64 + 9 + NORM_RECORD_MAX = 330), and its NUL: room for every
 * key that ids within their limits can make, so no key is ever cut
 * (norm_finish_event() rejects rather than cut one; normalize.c asserts
 * the sizes at build time). */
#define NORM_KEY_MAX (NORM_ID_MAX + sizeof("/hotline/") - 1 + NORM_RECORD_MAX + 1)
/* A key that its device reused for a reading with other content is stored
 * as "<key>~<12 hex digits of the content hash>" (store.c, sql/0006): the
 * room for such a key as PostgreSQL may hand it back (alerts.event_key). */
#define NORM_STORED_KEY_MAX (NORM_KEY_MAX + 13)
#define NORM_HASH_LEN 16    /* struct event's content_hash: XXH3-128 */
#define NORM_MAX_EVENTS 256 /* events from one message (arrays) */

enum event_type {
	EVENT_GATE = 1,	    /* gate_events */
	EVENT_STATUS,	    /* gate_status */
	EVENT_DISINFECTION, /* disinfections */
	EVENT_HOTLINE,	    /* hotline_events (+ hotline_calls) */
	EVENT_CHECK,	    /* isolation_checks */
	EVENT_ACK,	    /* acks */
	EVENT_NEED,	    /* need_events (+ needs) */
	EVENT_CALL,	    /* welfare_calls: the daily call to an isolated household */
	EVENT_DROPOFF,	    /* dropoffs */
};
#define EVENT_TYPES 9

enum gate_state {
	STATE_NONE = 0,
	STATE_ONLINE,
	STATE_OFFLINE,
	STATE_OPEN,
	STATE_CLOSED,
	STATE_FORCED,
};

enum call_action {
	CALL_NONE = 0,
	CALL_OPEN,
	CALL_UPDATE,
	CALL_RESOLVE,
};

enum ack_action {
	ACK_NONE = 0,
	ACK_ACK,
	ACK_RESOLVE,
};

/* A step of a need (need_events.action). */
enum need_action {
	NEED_NONE = 0,
	NEED_OPEN,
	NEED_ASSIGN,
	NEED_DELIVER,
	NEED_CANCEL,
};

/* How a welfare call ended (welfare_calls.outcome). Every outcome but
 * NO_ANSWER reached the household. */
enum call_outcome {
	OUTCOME_NONE = 0,
	OUTCOME_REACHED,
	OUTCOME_NO_ANSWER,
	OUTCOME_NEEDS_HELP,
	OUTCOME_COUNSELLING,
};

/* What happened at the drop-off point (dropoffs.action). */
enum dropoff_action {
	DROPOFF_NONE = 0,
	DROPOFF_PLACED,
	DROPOFF_COLLECTED,
};

/* How a gate's terminal talks, from the register; AUTO: by shape. Every
 * other value is a format of the table (meson.build's gate_formats, in its
 * order from 1): normalize_format_from_name("hikvision") gives its value. */
enum gate_format {
	FORMAT_AUTO = 0,
};

enum temp_unit {
	UNIT_CELSIUS = 0,
	UNIT_FAHRENHEIT,
	UNIT_KELVIN,
};

enum event_flag {
	FLAG_IMPLAUSIBLE = 1u << 0,	/* outside 30.0-45.0 degrees C */
	FLAG_CLOCK_SKEW = 1u << 1,	/* device clock off by > max_clock_skew */
	FLAG_DEVICE_ABNORMAL = 1u << 2, /* the device said abnormal temperature */
	/* Not stored: the message had no time of its own, device_us is the
	 * receive time (norm_time_received()); not part of the content. */
	FLAG_TS_RECEIVED = 1u << 3,
};

enum direction {
	DIR_NONE = 0,
	DIR_IN,
	DIR_OUT,
};

#define NORM_TEXT_MAX 255 /* notes, agents, symptom lists */

/* One normalized event. Strings are NUL-terminated, "" when absent; each
 * type uses the fields its table has (see sql/). */
struct event {
	enum event_type type;
	char key[NORM_KEY_MAX];
	char site[NORM_ID_MAX + 1];
	char gate[NORM_ID_MAX + 1];	 /* GATE, STATUS */
	char zone[NORM_ID_MAX + 1];	 /* DISINFECTION */
	char household[NORM_ID_MAX + 1]; /* CHECK, HOTLINE, NEED, CALL, DROPOFF */
	char card[NORM_ID_MAX + 1];	 /* GATE */
	char person[NORM_ID_MAX + 1];	 /* GATE (ID numbers only as keyed hash), CHECK */
	char crew[NORM_ID_MAX + 1];	 /* DISINFECTION */
	char call_id[NORM_ID_MAX + 1];	 /* HOTLINE; NEED: the call that opened it */
	char need_id[NORM_ID_MAX + 1];	 /* NEED */
	char category[NORM_ID_MAX + 1];	 /* HOTLINE, NEED; DROPOFF: the item */
	char alert_id[NORM_ID_MAX + 1];	 /* ACK */
	char by[NORM_ID_MAX + 1];	 /* ACK, NEED, CALL, DROPOFF: who */
	char text[NORM_TEXT_MAX + 1];	 /* DISINFECTION agent, HOTLINE/ACK note,
					 * CHECK symptoms (comma-separated) */
	int64_t device_us;		 /* the device's time */
	int64_t received_us;		 /* when cordond received the message */
	int64_t rule_us;		 /* the time rules use (received_us if skewed) */
	int64_t due_us;			 /* NEED: delivered by then (0: not given) */
	int16_t temp_dc;		 /* tenths of a degree C, or TEMP_NONE */
	int8_t mask;			 /* -1 unknown, 0, 1 */
	int8_t urgent;			 /* HOTLINE: -1 unknown, 0, 1 */
	enum direction direction;
	enum gate_state state;	     /* STATUS */
	enum call_action call;	     /* HOTLINE */
	enum ack_action ack;	     /* ACK */
	enum need_action need;	     /* NEED */
	enum call_outcome outcome;   /* CALL */
	enum dropoff_action dropoff; /* DROPOFF */
	unsigned flags;		     /* enum event_flag */
	const char *vendor;	     /* static string */
	/* What the reading says, for telling a device's reused record id from a
	 * redelivery: tables_content_hash(), set by the caller after
	 * normalize_message() (all zero until then). */
	uint8_t content_hash[NORM_HASH_LEN];
};

/* What the register says about a gate (all zero: not registered). */
struct norm_gate_info {
	enum gate_format format;
	enum temp_unit unit; /* of bare DIY readings */
};

/* What the normalizer needs to know beyond the message itself. The
 * callbacks are optional (NULL). */
struct norm_context {
	const char *topic_root;
	int64_t max_clock_skew_us;
	int64_t tz_offset_s; /* default zone offset for naive local times */
	/* Converts a naive local time of `site` (seconds as if UTC) to UTC
	 * seconds; without it, tz_offset_s is used. */
	int64_t (*local_to_utc)(void *arg, const char *site, int64_t naive_s);
	/* Fills what the register knows of a gate; returns 0 if registered. */
	int (*gate_info)(void *arg, const char *site, const char *gate, struct norm_gate_info *ret);
	void *arg;
	/* Key of the hash that replaces national ID numbers (HMAC-SHA256). */
	const uint8_t *id_key;
	size_t id_key_len;
};

/* The message as the spool holds it. */
struct norm_input {
	const char *topic;
	size_t topic_len;
	const uint8_t *payload;
	size_t payload_len;
	size_t orig_len; /* > payload_len when truncated at max_payload */
	int64_t received_us;
};

struct norm_result {
	size_t nevents;
	const char *reason;	    /* a reject reason (static), or NULL */
	char detail[128];	    /* for the log: what exactly was wrong */
	char site[NORM_ID_MAX + 1]; /* "" when the topic had none */
};

/* Normalizes one message into events[0..max). Returns 0 and fills *ret:
 * either ret->nevents events, or ret->reason set (a reject). */
int normalize_message(const struct norm_context *ctx, const struct norm_input *in,
		      struct event *events, size_t max, struct norm_result *ret)
	__attribute__((warn_unused_result));

/* Hex of the 128-bit hash of topic and payload (33 bytes with NUL). */
void normalize_message_hash(const struct norm_input *in, char ret_hex[33]);

/* Parses ISO 8601 ("2020-02-16T18:32:00.123+08:00", "...Z", or naive local
 * time) into microseconds since the epoch; a naive time is converted
 * through ctx (the site's zone, else ctx->tz_offset_s). Sets *ret_naive
 * (when not NULL) when the string had no offset. */
int normalize_parse_time_ctx(const struct norm_context *ctx, const char *site, const char *s,
			     int64_t *ret_us, int *ret_naive) __attribute__((warn_unused_result));

const char *normalize_type_name(enum event_type t);
const char *normalize_state_name(enum gate_state s);
const char *normalize_format_name(enum gate_format f);
/* Writes the names a gate's format takes, "auto canonical hikvision ...". */
void normalize_format_names(char *buf, size_t len);
/* "hikvision" -> its enum gate_format, "auto" -> FORMAT_AUTO; -1 when unknown. */
int normalize_format_from_name(const char *name);

/* Writes "2020-02-16 10:32:00.123000+00" (UTC) into buf. */
void normalize_format_time(int64_t us, char *buf, size_t len);

const char *normalize_flag_name(unsigned flag);

/* Runs of 7 or more digits (phone and ID numbers) keep their first 3
 * and last 4 digits: 180****1999. In place, over s[0..len). */
void normalize_mask_digits(char *s, size_t len);
/* Cuts a NUL-terminated string that a bounded copy (snprintf's "%.31s", a
 * buffer too small) may have cut inside a UTF-8 sequence back to the end
 * of its last whole character, in place; a string that ends whole is left
 * as it is. Text cut mid-character is not valid UTF-8: jansson drops it
 * from an alert's JSON, PostgreSQL refuses it (22021). Inline: the rules,
 * the store and the daemon cut texts too. */
static inline void
normalize_utf8_trim(char *s)
{
	size_t n = 0, i, need;
	unsigned char c;

	while (s[n])
		n++;
	/* the lead byte of the last sequence: at most 3 continuation bytes back */
	for (i = n; i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xc0) == 0x80;)
		i--;
	if (i == 0)
		return;
	c = (unsigned char)s[i - 1];
	need = c < 0x80		   ? 1 :
		(c & 0xe0) == 0xc0 ? 2 :
		(c & 0xf0) == 0xe0 ? 3 :
		(c & 0xf8) == 0xf0 ? 4 :
				     0;
	if (n - (i - 1) < need)
		s[i - 1] = '\0';
}

/* 1 when s[0..len) is an id of SPEC 2 (site, gate, zone, household, card,
 * person, topic level): [A-Za-z0-9_-]{1,64}. Inline: config.c and the
 * tools use it without linking the normalizer. */
static inline int
normalize_valid_id(const char *s, size_t len)
{
	if (len == 0 || len > NORM_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

#endif
