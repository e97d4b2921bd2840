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
 * number; else header.messageId, which EZVIZ keeps on its retries of the
 * same message: the key is the messageId when body (or content) is one
 * event, "<messageId>:<i>" for element i of an array, so a retry of a
 * list maps each element to its first row; without a messageId, the
 * per-delivery key (message hash, receive time, index). A message with
 * no faceTime whose header.type is not ys.open.face (ys.onoffline: a
 * device going on or off line) is missing_time, the detail saying so.
 * header.deviceId is EZVIZ's device serial, not a cordon gate, and is
 * not compared with the topic. Names and picture URLs are not read.
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

static int
norm_ezviz_shape(json_t *root)
{
	return json_is_object(root) &&
		(json_is_string(json_object_get(root, "content")) ||
		 (json_is_object(json_object_get(root, "header")) &&
		  json_object_get(root, "body")));
}

/* One event (body, or an element of body or content) into *ev. `where`
 * names it in reject details ("body", "body[2]", "content[0]"); `type`
 * is header.type or NULL. Its "id", else `key` (header.messageId for a
 * lone event, "<messageId>:<i>" for element i; "" without a messageId),
 * is the record key. 0, or -1 with the reject set. */
static int
ezviz_event(const struct norm_msg *msg, json_t *e, const char *where, const char *type, size_t i,
	    const char *key, struct event *ev, struct norm_result *ret)
{
	char id[NORM_RECORD_MAX + 1] = "";
	enum temp_unit unit;
	json_t *temp, *v;
	double t;
	int who;

	if (!json_is_object(e))
		return norm_reject(ret, "not_object", "%s is not an object", where) - 1;
	norm_event_init(msg, ev, EVENT_GATE, "ezviz");

	v = json_object_get(e, "id");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "%s.id is not a short string", where) - 1;
	if (!id[0])
		snprintf(id, sizeof(id), "%s", key);

	v = json_object_get(e, "faceTime");
	if ((!v || json_is_null(v)) && type && strcmp(type, "ys.open.face") != 0) {
		char t40[41];

		snprintf(t40, sizeof(t40), "%s", type);
		normalize_utf8_trim(t40);
		return norm_reject(ret, "missing_time",
				   "%s has no faceTime: header.type %s is"
				   " not a face/temperature message (ys.open.face)",
				   where, t40) -
			1;
	}
	if (!v || json_is_null(v))
		return norm_reject(ret, "missing_time", "%s has no faceTime", where) - 1;
	if (norm_json_time(msg, v, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "%s.faceTime is not a time", where) - 1;

	temp = json_object_get(e, "temperature");
	if (temp && !json_is_null(temp) && !json_is_object(temp))
		return norm_reject(ret, "bad_temperature", "%s.temperature is not an object",
				   where) -
			1;
	v = json_object_get(temp, "currTemperature");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0 ||
		    norm_thermometry_unit(json_object_get(temp, "thermometryUnit"), &unit) < 0)
			return norm_reject(ret, "bad_temperature",
					   "%s.temperature is not a number in a known unit",
					   where) -
				1;
		if (norm_set_temp_unit(ev, t, unit) < 0)
			return norm_reject_temp(ret, t, "%s.temperature.currTemperature", where) -
				1;
		v = json_object_get(temp, "isAbnomalTemperature");
		if (!v)
			v = json_object_get(temp, "isAbnormalTemperature");
		if (norm_json_flag(v))
			ev->flags |= FLAG_DEVICE_ABNORMAL;
	}

	v = json_object_get(e, "cardNo");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "%s.cardNo is not a short string", where) - 1;
	who = norm_names_someone(v);
	v = json_object_get(e, "employeeNo");
	if (v && !json_is_null(v)) {
		char person[NORM_ID_MAX + 1];

		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field", "%s.employeeNo is not a short string",
					   where) -
				1;
		norm_set_person(msg, ev, person);
		who |= norm_names_someone(v);
	}
	if (norm_pass_without_reading(ev, who, 1, ret,
				      "%s has no temperature."
				      "currTemperature, and no cardNo or employeeNo: not a pass",
				      where) < 0)
		return -1;
	ev->mask = (int8_t)norm_json_mask(json_object_get(e, "mask"));

	return norm_finish_event(msg, ev, id, i, ret);
}

static int
norm_ezviz_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		struct norm_result *ret)
{
	char message_id[NORM_ID_MAX + 1] = "", key[NORM_RECORD_MAX + 1], where[32];
	json_t *content, *list, *header, *v;
	const char *name = "content", *type;
	json_error_t jerr;
	int owned = 0;
	size_t n;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	content = json_object_get(root, "content");
	if (!content) {
		content = json_object_get(root, "body");
		name = "body";
	}
	if (json_is_string(content)) {
		list = json_loadb(json_string_value(content), json_string_length(content),
				  JSON_REJECT_DUPLICATES, &jerr);
		if (!list)
			return norm_reject(ret, "not_json", "%s: %s at byte %d", name, jerr.text,
					   jerr.position);
		owned = 1;
	} else if (json_is_object(content) || json_is_array(content)) {
		list = content;
	} else {
		return norm_reject(ret, "bad_field", "content is not a string, body not an object");
	}
	header = json_object_get(root, "header");
	type = json_string_value(json_object_get(header, "type"));
	v = json_object_get(header, "messageId");
	if (v && !json_is_null(v) && norm_copy_id(message_id, v) < 0) {
		norm_reject(ret, "bad_field", "header.messageId is not a short string");
		goto out;
	}
	n = json_is_array(list) ? json_array_size(list) : 1;
	if (n > max) {
		norm_reject(ret, "too_many_events", "%s holds %zu events, at most %zu", name, n,
			    max);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_array(list) ? json_array_get(list, i) : list;

		/* The record key of an event without its own id: the message id
		 * EZVIZ keeps on its retries, with the element's index when the
		 * message holds a list, so that a retry maps each element to the
		 * row of its first delivery. */
		key[0] = '\0';
		if (message_id[0] && json_is_array(list))
			snprintf(key, sizeof(key), "%s:%zu", message_id, i);
		else if (message_id[0])
			snprintf(key, sizeof(key), "%s", message_id);
		if (json_is_array(list))
			snprintf(where, sizeof(where), "%s[%zu]", name, i);
		else
			snprintf(where, sizeof(where), "%s", name);
		if (ezviz_event(msg, e, where, type, i, key, &events[i], ret) < 0)
			goto out;
	}
	ret->nevents = n;
out:
	if (owned)
		json_decref(list);
	return 0;
}

const struct norm_format norm_format_ezviz = {
	.name = "ezviz",
	.shape = norm_ezviz_shape,
	.gate = norm_ezviz_gate,
	.sample = "{\"header\":{\"type\":\"ys.open.face\",\"messageId\":\"5e57f239\"},\"body\":{"
		  "\"faceTime\":\"2020-02-16 18:32:01.250\",\"employeeNo\":\"2405\","
		  "\"temperature\":{\"currTemperature\":37.55}}}",
	.sample_temp_dc = 376,
};
