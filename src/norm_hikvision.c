/* norm_hikvision.c - Hikvision ISAPI access-control events (SPEC 3).
 *
 * Either the push envelope of the HTTP listening / ISAPI alarm stream:
 *   {"ipAddress":"10.6.1.21","dateTime":"2020-02-16T18:32:00+08:00",
 *    "eventType":"AccessControllerEvent",
 *    "AccessControllerEvent":{"majorEventType":5,"subEventType":75,
 *      "cardNo":"3208841234","employeeNoString":"1042","serialNo":1234,
 *      "currTemperature":36.500000,"thermometryUnit":"celsius",
 *      "isAbnomalTemperature":false,"mask":"yes",...}}
 * or a bare AcsEvent record as /ISAPI/AccessControl/AcsEvent lists them
 * (the same keys, "major"/"minor", and its own "time").
 *
 * Read: time (the record's "time", else the envelope's "dateTime"),
 * serialNo (record number -> event key), cardNo, employeeNoString (else
 * employeeNo; an ID number is hashed), currTemperature, thermometryUnit
 * ("celsius|fahrenheit|kelvin" or 0/1/2), isAbnomalTemperature (sic; the
 * correct spelling is read too), mask ("yes|no|unknown" or a boolean).
 * Names, picture URLs and face data are never read. ipAddress, macAddress
 * and deviceID name the device in Hikvision's terms, not a cordon gate,
 * so they are not compared with the topic.
 *
 * Without currTemperature (a card reader, a face terminal with its
 * thermal module off, a refused card: "invalid card" is 5/9 and carries
 * cardNo but no reading) the event is a pass without a reading when it is
 * an access event and names who passed: majorEventType (or major) 5,
 * MAJOR_EVENT in Hikvision's list (1 alarm, 2 exception, 3 operation are
 * not passes), or absent; and a non-empty cardNo, employeeNoString or
 * employeeNo. A door event (5/21 door unlocked, 5/23 exit button), an
 * alarm or an exception names nobody, or is not major 5: rejected
 * missing_temperature as before. Sources: the ISAPI AccessControllerEvent
 * push (Hikvision ISAPI developer guide, access control: eventType
 * "AccessControllerEvent", majorEventType/subEventType, "mask"
 * unknown/yes/no) and the HCNetSDK major types (MAJOR_ALARM 0x1 ...
 * MAJOR_EVENT 0x5); captures of DS-K1T terminals show 5/9 with cardNo
 * and "mask":"unknown" and no temperature keys at all. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "normalize_internal.h"

int
norm_hikvision_shape(json_t *root)
{
	if (!json_is_object(root))
		return 0;
	if (json_is_object(json_object_get(root, "AccessControllerEvent")))
		return 1;
	if (json_object_get(root, "currTemperature"))
		return 1;
	return json_object_get(root, "serialNo") &&
	       (json_object_get(root, "majorEventType") || json_object_get(root, "subEventType") ||
		json_object_get(root, "major") || json_object_get(root, "minor") ||
		json_object_get(root, "cardNo"));
}

/* mask: "yes" / "no" / "unknown" or a boolean; anything else: unknown. */
static int
mask_of(const json_t *v)
{
	const char *s = json_string_value(v);

	if (json_is_boolean(v))
		return json_is_true(v);
	if (s && strcasecmp(s, "yes") == 0)
		return 1;
	if (s && strcasecmp(s, "no") == 0)
		return 0;
	return -1;
}

static int
is_set(const json_t *v)
{
	return norm_json_flag(v);
}

/* 1 when the record is an access event: majorEventType (push) or major
 * (AcsEvent list) is 5, MAJOR_EVENT, or absent (a bridge that drops it).
 * 1 alarm, 2 exception, 3 operation and anything unreadable: 0. */
static int
is_access(const json_t *rec)
{
	const json_t *v = json_object_get(rec, "majorEventType");
	json_int_t major;

	if (!v || json_is_null(v))
		v = json_object_get(rec, "major");
	if (!v || json_is_null(v))
		return 1;
	return norm_json_int(v, &major) == 0 && major == 5;
}

int
norm_hikvision_gate(const struct norm_msg *msg, json_t *root, struct event *events,
		    size_t max, struct norm_result *ret)
{
	struct event *ev = &events[0];
	char id[NORM_ID_MAX + 1] = "";
	enum temp_unit unit;
	json_t *rec, *when, *v;
	double t;
	int who;

	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	rec = json_object_get(root, "AccessControllerEvent");
	if (rec && !json_is_object(rec))
		return norm_reject(ret, "bad_field", "AccessControllerEvent is not an object");
	if (!rec)
		rec = root;
	when = json_object_get(rec, "time");
	if (!when || json_is_null(when))
		when = json_object_get(root, "dateTime");
	norm_event_init(msg, ev, EVENT_GATE, "hikvision");

	v = json_object_get(rec, "serialNo");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "serialNo is not a short string or integer");

	if (!when || json_is_null(when))
		return norm_reject(ret, "missing_time", "no time or dateTime");
	if (norm_json_time(msg, when, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "time is not ISO 8601");

	v = json_object_get(rec, "currTemperature");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0)
			return norm_reject(ret, "bad_temperature", "currTemperature is not a number");
		if (norm_thermometry_unit(json_object_get(rec, "thermometryUnit"), &unit) < 0)
			return norm_reject(ret, "bad_temperature",
					   "thermometryUnit is not celsius, fahrenheit, kelvin or 0-2");
		if (norm_set_temp_unit(ev, t, unit) < 0)
			return norm_reject_temp(ret, t, "currTemperature");
	}

	v = json_object_get(rec, "cardNo");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "cardNo is not a short string");
	who = norm_names_someone(v);
	v = json_object_get(rec, "employeeNoString");
	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		v = json_object_get(rec, "employeeNo");
	if (v && !json_is_null(v)) {
		char person[NORM_ID_MAX + 1];

		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field", "employeeNoString is not a short string");
		norm_set_person(msg, ev, person);
		who |= norm_names_someone(v);
	}
	if (norm_pass_without_reading(ev, who, is_access(rec), ret, "no currTemperature, and %s",
				      who ? "the major event type is not 5 (access)" :
				      "no cardNo or employeeNo: not a pass") < 0)
		return 0;
	ev->mask = (int8_t)mask_of(json_object_get(rec, "mask"));
	if (is_set(json_object_get(rec, "isAbnomalTemperature")) ||
	    is_set(json_object_get(rec, "isAbnormalTemperature")))
		ev->flags |= FLAG_DEVICE_ABNORMAL;

	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}
