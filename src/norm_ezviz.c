/* norm_ezviz.c - EZVIZ open-platform cloud messages (SPEC 3).
 *
 * The layout EZVIZ documents for its message push (open.ys7.com, 消息推送
 * / message push service; the same in its Kafka consumer SDKs): a header
 * naming the message and a body that is a JSON object:
 *   {"header":{"type":"ys.open.face","deviceId":"E61923481","channelNo":1,
 *              "messageId":"5e57f239793f2b007fecb0de",
 *              "messageTime":1581849120456},
 *    "body":{"id":"...","faceTime":"2020-02-16 18:32:00.123",
 *            "employeeNo":"1042","cardNo":"...","mask":"yes",
 *            "temperature":{"currTemperature":36.6,
 *              "thermometryUnit":"celsius","isAbnomalTemperature":false}}}
 * body may also be an array of such events, or a JSON string holding one
 * or an array (as bridges that re-serialise it forward it). The layout
 * cordon first read, a "content" key holding a JSON string of an array of
 * events next to the header, is still read:
 *   {"header":{...},"content":"[{\"id\":\"...\",\"faceTime\":...}]"}
 *
 * Each event becomes one event. faceTime is naive local time (site zone)
 * with milliseconds; it is required (header.messageTime is when EZVIZ
 * pushed, not when the person passed, and a message of another type -
 * ys.onoffline, ys.alarm - is not a pass). employeeNo may be a national
 * ID number (hashed by norm_set_person). An event's "id" is its record
 * number; else, when body holds one event, header.messageId (EZVIZ keeps
 * it on its retries of the same message); else the message hash and the
 * index. header.deviceId is EZVIZ's device serial, not a cordon gate, and
 * is not compared with the topic. Names and picture URLs are not read.
 *
 * An event without temperature.currTemperature (a face terminal with
 * thermometry off: EZVIZ forwards the device's access event, whose
 * temperature block is optional as in Hikvision's AcsEvent) is a pass
 * without a reading when it names who passed: a non-empty cardNo or
 * employeeNo; one that names nobody is missing_temperature, as before,
 * in either layout. A body or content array is not skipped through as
 * Hikvision's and Dahua's lists are: every element of a ys.open.face
 * message is a face event, so one that is no pass rejects the whole
 * message (missing_temperature). A temperature that is present but not
 * an object is bad_temperature (a reading in the wrong place is refused,
 * never dropped). */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "normalize_internal.h"

int
norm_ezviz_shape(json_t *root)
{
	return json_is_object(root) &&
	       (json_is_string(json_object_get(root, "content")) ||
		(json_is_object(json_object_get(root, "header")) && json_object_get(root, "body")));
}

/* One event (body, or an element of body or content) into *ev; its "id",
 * else message_id (non-NULL only for a lone event), is the record key.
 * 0, or -1 with the reject set. */
static int
ezviz_event(const struct norm_msg *msg, json_t *e, size_t i, const char *message_id,
	    struct event *ev, struct norm_result *ret)
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
	if (!id[0] && message_id)
		snprintf(id, sizeof(id), "%s", message_id);

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
	char message_id[NORM_ID_MAX + 1] = "";
	json_t *content, *list, *v;
	json_error_t jerr;
	int owned = 0;
	size_t n;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	content = json_object_get(root, "content");
	if (!content)
		content = json_object_get(root, "body");
	if (json_is_string(content)) {
		list = json_loadb(json_string_value(content), json_string_length(content),
				  JSON_REJECT_DUPLICATES, &jerr);
		if (!list)
			return norm_reject(ret, "not_json", "content: %s at byte %d", jerr.text,
					   jerr.position);
		owned = 1;
	} else if (json_is_object(content) || json_is_array(content)) {
		list = content;
	} else {
		return norm_reject(ret, "bad_field", "content is not a string, body not an object");
	}
	v = json_object_get(json_object_get(root, "header"), "messageId");
	if (v && !json_is_null(v) && norm_copy_id(message_id, v) < 0) {
		norm_reject(ret, "bad_field", "header.messageId is not a short string");
		goto out;
	}
	n = json_is_array(list) ? json_array_size(list) : 1;
	if (n > max) {
		norm_reject(ret, "too_many_events", "content holds %zu events, at most %zu", n, max);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_array(list) ? json_array_get(list, i) : list;

		if (ezviz_event(msg, e, i, json_is_array(list) || !message_id[0] ? NULL : message_id,
				&events[i], ret) < 0)
			goto out;
	}
	ret->nevents = n;
out:
	if (owned)
		json_decref(list);
	return 0;
}
