/* normalize_internal.h - shared between normalize.c and the format files */
#ifndef CORDON_NORMALIZE_INTERNAL_H
#define CORDON_NORMALIZE_INTERNAL_H

#include <jansson.h>
#include <stdarg.h>

#include "normalize.h"

struct norm_level {
	const char *s;
	size_t len;
};

enum msg_kind {
	MSG_GATE_EVENT = 1,
};

struct norm_msg {
	const struct norm_context *ctx;
	const struct norm_input *in;
	enum msg_kind kind;
	struct norm_level site;
	struct norm_level device;	/* gate (or zone, household) from the topic */
};

int norm_valid_utf8(const uint8_t *s, size_t len);
void norm_copy_level(char *dst, const struct norm_level *lv);
/* Sets ret->reason and ret->detail; returns 0 (a reject is a result). */
int norm_reject(struct norm_result *ret, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int norm_canonical_gate(const struct norm_msg *msg, json_t *root,
			struct event *events, size_t max, struct norm_result *ret);


/* Shared field helpers; each returns 0 or a negative errno. */
/* An ISO 8601 string or epoch seconds/milliseconds (by magnitude). */
int norm_json_time(const json_t *v, int64_t tz_offset_s, int64_t *ret_us);
/* A string of at most NORM_ID_MAX printable bytes, or an integer. */
int norm_copy_id(char *dst, const json_t *v);
/* Rounds to 0.1 and sets FLAG_IMPLAUSIBLE outside 30.0-45.0. */
int norm_set_temp(struct event *ev, double celsius);
/* Fills site, receive and rule times, skew flag and the event key (from
 * record_id, or from the message hash and `index`). */
void norm_finish_event(const struct norm_msg *msg, struct event *ev,
		       const char *record_id, size_t index);

#endif
