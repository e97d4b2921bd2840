/* norm_canonical.c - cordon's own gate event format (SPEC section 3):
 * {"id":"G03-000123","ts":"2020-02-16T18:32:00.123+08:00","card":"C-0412",
 *  "person":"P-10233","direction":"in","temp_c":36.6,"mask":true}
 * Required: ts. temp_c: a reading; an explicit null means "not screened".
 * Without temp_c the event is a pass without a reading when it names who
 * passed (a non-empty card or person: a card reader), as a vendor's access
 * event without its temperature block is; a payload with neither temp_c
 * nor card nor person is not a pass (missing_temperature). Optional: id,
 * card, person, direction, mask, gate (must match the topic's gate),
 * abnormal (the device's own verdict). */
#include <string.h>

#include "normalize_internal.h"

/* Ours: a temp_c or ts key, and not DIY's "temp" (a DIY reading may
 * carry a ts too). */
static int
norm_canonical_shape(json_t *root)
{
	return json_is_object(root) && !json_object_get(root, "temp") &&
		(json_object_get(root, "temp_c") || json_object_get(root, "ts"));
}

static int
norm_canonical_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		    struct norm_result *ret)
{
	struct event *ev = &events[0];
	char id[NORM_ID_MAX + 1] = "";
	json_t *v, *temp;
	double t;
	int who;

	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	norm_event_init(msg, ev, EVENT_GATE, "canonical");

	v = json_object_get(root, "gate");
	if (v) {
		char gate[NORM_ID_MAX + 1];

		if (norm_copy_id(gate, v) < 0 || strcmp(gate, ev->gate) != 0)
			return norm_reject(ret, "device_mismatch",
					   "payload gate differs from the topic's %s", ev->gate);
	}
	v = json_object_get(root, "id");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "id is not a short string or integer");

	v = json_object_get(root, "ts");
	if (!v || json_is_null(v))
		return norm_reject(ret, "missing_time", "no ts");
	if (norm_json_time(msg, v, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "ts is not ISO 8601 or epoch time");

	temp = json_object_get(root, "temp_c");
	if (temp && !json_is_null(temp)) {
		if (norm_json_number(temp, &t) < 0)
			return norm_reject(ret, "bad_temperature", "temp_c is not a number");
		if (norm_set_temp(ev, t) < 0)
			return norm_reject_temp(ret, t, "temp_c");
	}

	v = json_object_get(root, "direction");
	if (v && !json_is_null(v)) {
		const char *d = json_string_value(v);

		if (d && strcmp(d, "in") == 0)
			ev->direction = DIR_IN;
		else if (d && strcmp(d, "out") == 0)
			ev->direction = DIR_OUT;
		else
			return norm_reject(ret, "bad_direction", "direction is not in or out");
	}
	v = json_object_get(root, "card");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "card is not a short string");
	who = norm_names_someone(v);
	v = json_object_get(root, "person");
	if (norm_person_field(msg, ev, v) < 0)
		return norm_reject(ret, "bad_field", "person is not a short string");
	who |= norm_names_someone(v);
	/* temp_c null ("not screened") is kept whoever passed, as before. */
	if (!temp &&
	    norm_pass_without_reading(ev, who, 1, ret,
				      "no temp_c, and no card or person: not a pass") < 0)
		return 0;
	v = json_object_get(root, "mask");
	if (json_is_boolean(v))
		ev->mask = json_is_true(v);
	v = json_object_get(root, "abnormal");
	if (json_is_true(v))
		ev->flags |= FLAG_DEVICE_ABNORMAL;

	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

const struct norm_format norm_format_canonical = {
	.name = "canonical",
	.shape = norm_canonical_shape,
	.gate = norm_canonical_gate,
	.sample =
		"{\"id\":\"G03-000123\",\"ts\":\"2020-02-16T18:32:00.123+08:00\",\"card\":\"C-0412\","
		"\"temp_c\":36.6}",
	.sample_temp_dc = 366,
};
