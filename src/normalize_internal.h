/* normalize_internal.h - shared between normalize.c and the format files.
 *
 * Each gate terminal format lives in its own file (norm_<vendor>.c) and
 * exports one struct norm_format (below), named in meson.build's
 * gate_formats, which makes the table of normalize.c.
 * A format file starts every event with norm_event_init(), fills what it
 * knows, and ends with norm_finish_event(), which sets the site, the
 * times, the skew flag and the event key. */
#ifndef CORDON_NORMALIZE_INTERNAL_H
#define CORDON_NORMALIZE_INTERNAL_H

#include <jansson.h>
#include <stdarg.h>

#include "norm_formats.h" /* NORM_FORMATS, generated from meson.build */
#include "normalize.h"

struct norm_level {
	const char *s;
	size_t len;
};

struct norm_msg {
	const struct norm_context *ctx;
	const struct norm_input *in;
	struct norm_level site;
	struct norm_level device; /* gate, zone or household from the topic */
	char site_id[NORM_ID_MAX + 1];
	char device_id[NORM_ID_MAX + 1];
	struct norm_gate_info gate; /* register entry of the gate (GATE) */
	int registered;		    /* the gate is in the register */
};

/* A gate terminal format (norm_<name>.c): how to recognize its payloads
 * and how to read them. */
struct norm_format {
	const char *name; /* the register's `format`, also the `vendor` column */
	/* 1 if the JSON looks like this format, else 0 */
	int (*shape)(json_t *root);
	/* 0; fills events (ret->nevents) or sets a reject through norm_reject() */
	int (*gate)(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		    struct norm_result *ret);
	/* One message of the format that its shape alone recognizes, and the
	 * temperature of its first event in tenths: test_formats reads it
	 * by shape and pinned, for every format of the table. */
	const char *sample;
	int16_t sample_temp_dc;
};

/* The table, in meson.build's order: the format of index i is
 * enum gate_format i + 1 (0 is FORMAT_AUTO). */
extern const struct norm_format *const norm_formats[];
extern const size_t norm_nformats;

int norm_valid_utf8(const uint8_t *s, size_t len);
void norm_copy_level(char *dst, const struct norm_level *lv);
/* Sets ret->reason and ret->detail; returns 0 (a reject is a result). */
int norm_reject(struct norm_result *ret, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The gate event formats: one `norm_format_<name>` per src/norm_<name>.c,
 * listed once, in meson.build's gate_formats (norm_formats.h). */
#define X(name) extern const struct norm_format norm_format_##name;
NORM_FORMATS
#undef X

/* The other inbound topics (norm_topics.c); root is any JSON value, or
 * NULL when the payload is not JSON (a bare word such as "offline"). */
int norm_status(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		struct norm_result *ret);
int norm_disinfection(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		      struct norm_result *ret);
int norm_hotline(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		 struct norm_result *ret);
int norm_check(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	       struct norm_result *ret);
int norm_ack(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	     struct norm_result *ret);
int norm_need(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	      struct norm_result *ret);
int norm_call(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	      struct norm_result *ret);
int norm_dropoff(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		 struct norm_result *ret);

/* ---- shared field helpers; each returns 0 or a negative errno ---- */

/* Zeroes *ev and sets type, vendor, mask/urgent unknown, no temperature,
 * and the topic's device as gate/zone/household by type. */
/* The event has no time of its own: the receive time stands for it
 * (device_us, FLAG_TS_RECEIVED). */
void norm_time_received(const struct norm_msg *msg, struct event *ev);
void norm_event_init(const struct norm_msg *msg, struct event *ev, enum event_type type,
		     const char *vendor);
/* An ISO 8601 string (naive: the site's zone) or epoch seconds or
 * milliseconds (by magnitude). */
int norm_json_time(const struct norm_msg *msg, const json_t *v, int64_t *ret_us);
/* Epoch seconds or milliseconds (by magnitude) as a number or a string
 * of digits. */
int norm_epoch(const json_t *v, int64_t *ret_us);
/* A string of at most NORM_ID_MAX printable bytes, or an integer. */
int norm_copy_id(char *dst, const json_t *v);
/* A string of at most NORM_TEXT_MAX bytes without control characters
 * (longer ones are cut at a character boundary). */
int norm_copy_text(char *dst, const json_t *v);
/* A JSON number, or a string holding a plain decimal number: the one
 * rule for numbers written as strings on every topic and format.
 * Accepted strings: -?[0-9]+(.[0-9]+)? with optional blanks (space, tab)
 * around it and at most 32 bytes ("36.6", " 37.8", "-1", "036.60").
 * Anything else is -EINVAL: "", "3.7e1", "0x25", "+36.6", "36,6",
 * "36.6C", ".5", "5.", "inf", "nan"; the caller rejects with its existing
 * reason (bad_temperature). Devices that write numbers as strings:
 * Hikvision's currTemperature, WeCom's temperature, DIY firmwares. */
int norm_json_number(const json_t *v, double *ret);
/* The same rule for integer-coded fields (units, status codes, flags): a
 * JSON integer, or a string -?[0-9]+ with blanks around it ("1", " 0").
 * Returns 0, or -EINVAL for anything else ("1.0", "0x1", "one"). */
int norm_json_int(const json_t *v, json_int_t *ret);
/* The one rule for the vendors' words (status words, mask, flags, unit
 * names): the `len` bytes at s are `word` (ASCII, lowercase) in any case,
 * with blanks (space, tab, CR, LF) around it allowed: "Yes ", " ONLINE\n".
 * 1 when they are, else 0. */
int norm_word(const char *s, size_t len, const char *word);
/* The same for a JSON value: 1 when v is a string that is `word` by
 * norm_word(), else 0 (other types, NULL). */
int norm_json_word(const json_t *v, const char *word);
/* A device's yes/no flag: true, "true" (by norm_word()), or an integer
 * other than 0 by norm_json_int() (1, "1"). 1 when set, else 0. */
int norm_json_flag(const json_t *v);
/* Hikvision's and EZVIZ's mask ("yes|no|unknown" in the ISAPI
 * AccessControllerEvent and EZVIZ's face message, or a boolean): 1 for
 * true or "yes", 0 for false or "no" (words by norm_word()), -1 (unknown)
 * for anything else, absent included; never a reject. */
int norm_json_mask(const json_t *v);
/* Converts `value` in `unit` to degrees C, rounds to 0.1 and sets
 * FLAG_IMPLAUSIBLE outside 30.0-45.0. Returns 0, or -ERANGE when the
 * rounded value is beyond +-999.9 (TEMP_DC_MAX tenths, what the numeric(4,1)
 * temp_c columns hold); the caller rejects with norm_reject_temp(). */
int norm_set_temp_unit(struct event *ev, double value, enum temp_unit unit);
int norm_set_temp(struct event *ev, double celsius);
/* Rejects as temperature_out_of_range a reading that norm_set_temp*()
 * refused: the detail names the field (printf format) and the value as
 * received. Returns 0, as norm_reject() does. */
int norm_reject_temp(struct norm_result *ret, double value, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Hikvision-style unit: "celsius|fahrenheit|kelvin" (words by
 * norm_word()) or 0/1/2 (also as a string); absent: celsius; anything
 * else -EINVAL. */
int norm_thermometry_unit(const json_t *v, enum temp_unit *ret);
/* 1 when v names someone: a non-empty string or an integer (a card or
 * person field of a pass); absent, null, "" and other types: 0. */
int norm_names_someone(const json_t *v);
/* Passes without a reading (issue 14.3). A gate event whose payload has
 * no temperature (ev->temp_dc still TEMP_NONE: a card reader, a terminal
 * with its thermal module off, a refused card) is a pass without a
 * reading when it names who passed (`who`: a card or person field for
 * which norm_names_someone() is 1) and the format says it is an access
 * (`access`): it is stored with temp_c NULL and the gate rules run on it
 * (sealed_gate, unknown_card, isolation_breach, exit_quota; never fever).
 * Anything else without a reading is not a pass (a door alarm, an exit
 * button, a reading-only record without its value): rejected
 * missing_temperature with the detail `fmt`. Returns 0 when ev is kept
 * (it has a reading, or is such a pass), or -1 after the reject. */
int norm_pass_without_reading(const struct event *ev, int who, int access, struct norm_result *ret,
			      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Stores a person id; an 18-character national ID number (17 digits and
 * a digit or X) is replaced by "id:" + a keyed hash of it. */
void norm_set_person(const struct norm_msg *msg, struct event *ev, const char *id);
/* The same from an optional JSON field (absent or null: nothing);
 * -EINVAL when it is not a short id. */
int norm_person_field(const struct norm_msg *msg, struct event *ev, const json_t *v);
/* Fills site, receive and rule times, skew flag and the event key (from
 * record_id, or from the message hash and `index`). Returns 0, or -1 after
 * rejecting the message as key_too_long: a key is never cut (cannot happen
 * while the ids keep to NORM_ID_MAX: NORM_KEY_MAX is sized for them). */
int norm_finish_event(const struct norm_msg *msg, struct event *ev, const char *record_id,
		      size_t index, struct norm_result *ret) __attribute__((warn_unused_result));
/* The record part of a hotline step's key, "<call_id>/<id>" with the call
 * id's '%' and '/' escaped (%25, %2F): "a/b" + "c" and "a" + "b/c" differ.
 * Returns 0, or -ENAMETOOLONG when it does not fit in len bytes. */
int norm_hotline_record(char *dst, size_t len, const char *call_id, const char *id)
	__attribute__((warn_unused_result));

#endif
