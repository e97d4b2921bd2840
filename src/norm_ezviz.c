/* norm_ezviz.c - EZVIZ open-platform cloud messages (SPEC 3).
 *
 *   {"header":{"messageId":"...","type":"ys.open.face","deviceId":"E61923481",
 *              "channelNo":1,"messageTime":1581849120456},
 *    "content":"[{\"id\":\"...\",\"faceTime\":\"2020-02-16 18:32:00.123\",
 *                 \"employeeNo\":\"1042\",\"cardNo\":\"...\",\"mask\":\"yes\",
 *                 \"temperature\":{\"currTemperature\":36.6,
 *                   \"thermometryUnit\":\"celsius\",\"isAbnomalTemperature\":false}}]"}
 *
 * content is a JSON string holding an array of events (a single object is
 * taken as an array of one); each element becomes an event. faceTime is
 * naive local time (site zone) with milliseconds. employeeNo may be a
 * national ID number (hashed by norm_set_person). An element's "id" is its
 * record number; without one the key is the message hash and the index.
 * header.deviceId is EZVIZ's device serial, not a cordon gate, and is not
 * compared with the topic. Names and picture URLs are not read.
 *
 * An element without temperature.currTemperature (a face terminal with
 * thermometry off: EZVIZ forwards the device's access event, whose
 * temperature block is optional as in Hikvision's AcsEvent) is a pass
 * without a reading when it names who passed: a non-empty cardNo or
 * employeeNo; one that names nobody is missing_temperature, as before.
 * A temperature that is present but not an object is bad_temperature
 * (a reading in the wrong place is refused, never dropped). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "normalize_internal.h"

int
norm_ezviz_shape(json_t *root)
{
	return json_is_object(root) && json_is_string(json_object_get(root, "content"));
}

/* One element of content into *ev; 0, or -1 with the reject set. */
static int
ezviz_event(const struct norm_msg *msg, json_t *e, size_t i, struct event *ev,
	    struct norm_result *ret)
{
	char id[NORM_ID_MAX + 1] = "";
	enum temp_unit unit;
	json_t *temp, *v;
	const char *s;
	double t;
	int who;

	if (!json_is_object(e))
		return norm_reject(ret, "not_object", "content[%zu] is not an object", i) - 1;
	norm_event_init(msg, ev, EVENT_GATE, "ezviz");

	v = json_object_get(e, "id");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "content[%zu].id is not a short string", i) - 1;

	v = json_object_get(e, "faceTime");
	if (!v || json_is_null(v))
		return norm_reject(ret, "missing_time", "content[%zu] has no faceTime", i) - 1;
	if (norm_json_time(msg, v, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "content[%zu].faceTime is not a time", i) - 1;

	temp = json_object_get(e, "temperature");
	if (temp && !json_is_null(temp) && !json_is_object(temp))
		return norm_reject(ret, "bad_temperature",
				   "content[%zu].temperature is not an object", i) - 1;
	v = json_object_get(temp, "currTemperature");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0 ||
		    norm_thermometry_unit(json_object_get(temp, "thermometryUnit"), &unit) < 0)
			return norm_reject(ret, "bad_temperature",
					   "content[%zu].temperature is not a number in a known unit",
					   i) - 1;
		if (norm_set_temp_unit(ev, t, unit) < 0)
			return norm_reject_temp(ret, t, "content[%zu].temperature.currTemperature",
						i) - 1;
		v = json_object_get(temp, "isAbnomalTemperature");
		if (!v)
			v = json_object_get(temp, "isAbnormalTemperature");
		if (norm_json_flag(v))
			ev->flags |= FLAG_DEVICE_ABNORMAL;
	}

	v = json_object_get(e, "cardNo");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "content[%zu].cardNo is not a short string", i) - 1;
	who = norm_names_someone(v);
	v = json_object_get(e, "employeeNo");
	if (v && !json_is_null(v)) {
		char person[NORM_ID_MAX + 1];

		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field",
					   "content[%zu].employeeNo is not a short string", i) - 1;
		norm_set_person(msg, ev, person);
		who |= norm_names_someone(v);
	}
	if (norm_pass_without_reading(ev, who, 1, ret, "content[%zu] has no temperature."
				      "currTemperature, and no cardNo or employeeNo: not a pass",
				      i) < 0)
		return -1;
	v = json_object_get(e, "mask");
	s = json_string_value(v);
	if (json_is_boolean(v))
		ev->mask = json_is_true(v);
	else if (s && strcasecmp(s, "yes") == 0)
		ev->mask = 1;
	else if (s && strcasecmp(s, "no") == 0)
		ev->mask = 0;

	return norm_finish_event(msg, ev, id, i, ret);
}

int
norm_ezviz_gate(const struct norm_msg *msg, json_t *root, struct event *events,
		size_t max, struct norm_result *ret)
{
	json_t *content, *list;
	json_error_t jerr;
	size_t n;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	content = json_object_get(root, "content");
	if (!json_is_string(content))
		return norm_reject(ret, "bad_field", "content is not a string");
	list = json_loadb(json_string_value(content), json_string_length(content),
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!list)
		return norm_reject(ret, "not_json", "content: %s at byte %d", jerr.text,
				   jerr.position);
	n = json_is_array(list) ? json_array_size(list) : 1;
	if (n > max) {
		norm_reject(ret, "too_many_events", "content holds %zu events, at most %zu", n, max);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_array(list) ? json_array_get(list, i) : list;

		if (ezviz_event(msg, e, i, &events[i], ret) < 0)
			goto out;
	}
	ret->nevents = n;
out:
	json_decref(list);
	return 0;
}
