/* norm_hikvision.c - Hikvision ISAPI access-control events (SPEC 3).
 *
 * The push envelope of the HTTP listening / ISAPI alarm stream:
 *   {"ipAddress":"10.6.1.21","dateTime":"2020-02-16T18:32:00+08:00",
 *    "eventType":"AccessControllerEvent",
 *    "AccessControllerEvent":{"majorEventType":5,"subEventType":75,
 *      "cardNo":"3208841234","employeeNoString":"1042","serialNo":1234,
 *      "currTemperature":36.500000,"thermometryUnit":"celsius",
 *      "isAbnomalTemperature":false,"mask":"yes",...}}
 * the same envelope as XML->JSON bridges forward the XML form of
 * EventNotificationAlert, every value a string (the number rules take
 * them) and attributes ignored: xmltodict (attributes as "@version"),
 *   {"EventNotificationAlert":{"@version":"2.0","dateTime":"...",
 *    "eventType":"AccessControllerEvent","AccessControllerEvent":{...}}}
 * and Node-RED's xml node (xml2js) with its default explicitArray: true,
 * every child's value in an array of one, attributes under "$":
 *   {"EventNotificationAlert":{"$":{"version":"2.0"},"dateTime":["..."],
 *    "AccessControllerEvent":[{"majorEventType":["5"],"cardNo":["C9"],
 *    "currTemperature":["37.9"],...}]}}
 * (recognised by AccessControllerEvent being an array of one object; the
 * one-element arrays of the alert and of AccessControllerEvent are
 * unwrapped, for that envelope only). explicitArray: false gives the
 * first form without "@"; both are read.
 * a bare AcsEvent record as /ISAPI/AccessControl/AcsEvent lists them
 * (the same keys, "major"/"minor", and its own "time"), or the whole
 * answer of that search, as bridges that poll a terminal forward it
 * (ISAPI Developer Guide, Access Control on Person, 6.1.2 JSON_AcsEvent,
 * POST /ISAPI/AccessControl/AcsEvent?format=json):
 *   {"AcsEvent":{"searchID":"1","responseStatusStrg":"OK|MORE|NO MATCH",
 *    "numOfMatches":2,"totalMatches":2,"InfoList":[{record},{record}]}}
 * Each InfoList element is one event, read as a bare record ("time" is
 * documented as UTC with an offset, e.g. "2016-12-12T17:30:08+08:00";
 * "-00:00" is UTC too). Elements of another major type than 5 (events:
 * passes, invalid cards) are alarms, exceptions and operations of the
 * controller (door held open, remote login): not gate events, they are
 * skipped. So are major-5 elements that are not passes (no
 * currTemperature and no cardNo or employeeNo: door unlocked 5/21, exit
 * button 5/23; see below): a search answer lists the door's events
 * around the passes, and rejecting the whole answer for them would lose
 * its passes. An access element without currTemperature that names
 * someone is a pass without a reading. A list with no element left, or
 * an empty one ("NO MATCH"), is the reject no_events, with the search
 * status in the detail; an element that is kept but malformed rejects
 * the whole answer.
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

/* The only element of a one-element array, else v itself. */
static json_t *
only_element(json_t *v)
{
	return json_is_array(v) && json_array_size(v) == 1 ? json_array_get(v, 0) : v;
}

/* The EventNotificationAlert object of an XML->JSON bridge, or NULL:
 * AccessControllerEvent an object, or (xml2js explicitArray) an array
 * holding one object. */
static json_t *
xml_alert(json_t *root)
{
	json_t *alert = json_object_get(root, "EventNotificationAlert");

	return json_is_object(alert) &&
			json_is_object(
				only_element(json_object_get(alert, "AccessControllerEvent"))) ?
		alert :
		NULL;
}

/* A new object of o's members with each one-element array replaced by
 * its element and xml2js's attribute key "$" left out; NULL when out of
 * memory. xml2js (Node-RED's xml node) with its default explicitArray:
 * true puts every child element's value in an array. */
static json_t *
xml_unwrap(json_t *o)
{
	json_t *ret = json_object(), *v;
	const char *k;

	if (!ret)
		return NULL;
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, "$") == 0)
			continue;
		if (json_object_set(ret, k, only_element(v)) < 0) {
			json_decref(ret);
			return NULL;
		}
	}
	return ret;
}

static int
norm_hikvision_shape(json_t *root)
{
	if (!json_is_object(root))
		return 0;
	if (json_is_object(json_object_get(root, "AcsEvent")) || xml_alert(root))
		return 1;
	if (json_is_object(json_object_get(root, "AccessControllerEvent")))
		return 1;
	if (json_object_get(root, "currTemperature"))
		return 1;
	return json_object_get(root, "serialNo") &&
		(json_object_get(root, "majorEventType") || json_object_get(root, "subEventType") ||
		 json_object_get(root, "major") || json_object_get(root, "minor") ||
		 json_object_get(root, "cardNo"));
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

/* The person field of a record: employeeNoString, else (absent, null or
 * "") employeeNo; NULL when neither. */
static json_t *
person_of(json_t *rec)
{
	json_t *v = json_object_get(rec, "employeeNoString");

	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		v = json_object_get(rec, "employeeNo");
	return v;
}

/* 1 when the record names who passed: a non-empty cardNo or person. */
static int
names_someone(json_t *rec)
{
	return norm_names_someone(json_object_get(rec, "cardNo")) ||
		norm_names_someone(person_of(rec));
}

/* One record `rec` into *ev: its own "time", else `when` (the envelope's
 * dateTime, or NULL). `where` names the record in reject details ("" or
 * "InfoList[3]: "). The event key is serialNo, else the message hash and
 * `index`. Without currTemperature the record is a pass without a
 * reading when it is an access event naming someone, else rejected
 * missing_temperature (see the top of the file). Returns 0, or -1 with
 * the reject set. */
static int
hik_record(const struct norm_msg *msg, json_t *rec, json_t *when, const char *where, size_t index,
	   struct event *ev, struct norm_result *ret)
{
	char id[NORM_ID_MAX + 1] = "";
	enum temp_unit unit;
	json_t *v;
	double t;
	int who;

	v = json_object_get(rec, "time");
	if (v && !json_is_null(v))
		when = v;
	norm_event_init(msg, ev, EVENT_GATE, "hikvision");

	v = json_object_get(rec, "serialNo");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "%sserialNo is not a short string or integer",
				   where) -
			1;

	if (!when || json_is_null(when))
		return norm_reject(ret, "missing_time", "%sno time or dateTime", where) - 1;
	if (norm_json_time(msg, when, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "%stime is not ISO 8601", where) - 1;

	v = json_object_get(rec, "currTemperature");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0)
			return norm_reject(ret, "bad_temperature",
					   "%scurrTemperature is not a number", where) -
				1;
		if (norm_thermometry_unit(json_object_get(rec, "thermometryUnit"), &unit) < 0)
			return norm_reject(
				       ret, "bad_temperature",
				       "%sthermometryUnit is not celsius, fahrenheit, kelvin or 0-2",
				       where) -
				1;
		if (norm_set_temp_unit(ev, t, unit) < 0)
			return norm_reject_temp(ret, t, "%scurrTemperature", where) - 1;
	}

	v = json_object_get(rec, "cardNo");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "%scardNo is not a short string", where) - 1;
	v = person_of(rec);
	if (v && !json_is_null(v)) {
		char person[NORM_ID_MAX + 1];

		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field",
					   "%semployeeNoString is not a short string", where) -
				1;
		norm_set_person(msg, ev, person);
	}
	who = names_someone(rec);
	if (norm_pass_without_reading(ev, who, is_access(rec), ret, "%sno currTemperature, and %s",
				      where,
				      who ? "the major event type is not 5 (access)" :
					    "no cardNo or employeeNo: not a pass") < 0)
		return -1;
	ev->mask = (int8_t)norm_json_mask(json_object_get(rec, "mask"));
	if (is_set(json_object_get(rec, "isAbnomalTemperature")) ||
	    is_set(json_object_get(rec, "isAbnormalTemperature")))
		ev->flags |= FLAG_DEVICE_ABNORMAL;

	return norm_finish_event(msg, ev, id, index, ret);
}

/* The answer of an AcsEvent search: one event per access record of
 * InfoList, in order. Records of another major type are skipped, and so
 * are access records without currTemperature that name nobody (door
 * unlocked, exit button: not passes); none left is no_events. */
static int
search_response(const struct norm_msg *msg, json_t *acs, struct event *events, size_t max,
		struct norm_result *ret)
{
	json_t *list = json_object_get(acs, "InfoList"), *rec, *v;
	const char *status = json_string_value(json_object_get(acs, "responseStatusStrg"));
	char where[48], st[24];
	size_t i, n = 0, nopass = 0;

	snprintf(st, sizeof(st), "%s", status ? status : "none");
	normalize_utf8_trim(st);
	if (list && !json_is_null(list) && !json_is_array(list))
		return norm_reject(ret, "bad_field", "AcsEvent.InfoList is not an array");
	json_array_foreach(list, i, rec)
	{
		if (!json_is_object(rec))
			return norm_reject(ret, "not_object",
					   "AcsEvent.InfoList[%zu] is not an object", i);
		if (!is_access(rec))
			continue;
		v = json_object_get(rec, "currTemperature");
		if ((!v || json_is_null(v)) && !names_someone(rec)) {
			nopass++;
			continue;
		}
		if (n == max)
			return norm_reject(ret, "too_many_events",
					   "AcsEvent.InfoList holds more than %zu access events",
					   max);
		snprintf(where, sizeof(where), "InfoList[%zu]: ", i);
		if (hik_record(msg, rec, NULL, where, i, &events[n], ret) < 0)
			return 0;
		n++;
	}
	if (n == 0)
		return norm_reject(ret, "no_events",
				   "AcsEvent search response with no pass or reading in InfoList"
				   " (%zu elements, %zu access events without a reading naming"
				   " nobody, responseStatusStrg %s)",
				   json_array_size(list), nopass, st);
	ret->nevents = n;
	return 0;
}

static int
norm_hikvision_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		    struct norm_result *ret)
{
	json_t *rec, *acs;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	acs = json_object_get(root, "AcsEvent");
	if (acs && !json_is_object(acs))
		return norm_reject(ret, "bad_field", "AcsEvent is not an object");
	if (acs)
		return search_response(msg, acs, events, max, ret);
	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	if (xml_alert(root) &&
	    json_is_array(json_object_get(xml_alert(root), "AccessControllerEvent"))) {
		json_t *alert, *inner;
		int r = -1;

		/* xml2js with explicitArray: every value in an array of one. */
		alert = xml_unwrap(xml_alert(root));
		inner = alert ? xml_unwrap(json_object_get(alert, "AccessControllerEvent")) : NULL;
		if (!inner)
			norm_reject(ret, "not_json", "out of memory unwrapping the XML alert");
		else
			r = hik_record(msg, inner, json_object_get(alert, "dateTime"), "", 0,
				       &events[0], ret);
		json_decref(inner);
		json_decref(alert);
		if (r == 0)
			ret->nevents = 1;
		return 0;
	}
	if (xml_alert(root))
		root = xml_alert(root);
	rec = json_object_get(root, "AccessControllerEvent");
	if (rec && !json_is_object(rec))
		return norm_reject(ret, "bad_field", "AccessControllerEvent is not an object");
	if (!rec)
		rec = root;
	if (hik_record(msg, rec, json_object_get(root, "dateTime"), "", 0, &events[0], ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

const struct norm_format norm_format_hikvision = {
	.name = "hikvision",
	.shape = norm_hikvision_shape,
	.gate = norm_hikvision_gate,
	.sample =
		"{\"major\":5,\"minor\":75,\"time\":\"2020-02-16T18:33:05+08:00\",\"cardNo\":\"C-1\","
		"\"serialNo\":1235,\"currTemperature\":37.35,\"thermometryUnit\":\"celsius\"}",
	.sample_temp_dc = 374,
};
