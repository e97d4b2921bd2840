/* norm_dahua.c - Dahua access-control events bridged to MQTT (SPEC 3).
 *
 * The event of the eventManager stream (Code=AccessControl;action=Pulse;
 * data={...}) as JSON:
 *   {"Action":"Pulse","Code":"AccessControl","Index":0,
 *    "Data":{"RecNo":5127,"UTC":1581849120,"LocaleTime":"2020-02-16 18:32:00",
 *      "CardNo":"A1B2C3D4","UserID":"1042","Type":"Entry","Method":15,
 *      "ManTemperatureInfo":{"CurrentTemperature":36.5,"TemperatureUnit":0,
 *                            "IsOverTemperature":false}}}
 * The temperature keys are also read flat in Data. A bridge that splits
 * the HTTP attach stream's "Code=...;action=...;index=...;data={...}"
 * into keys as they are spelt there gives "action"/"data": read too.
 *
 * Or the notification of the RPC2 (JSON-RPC over HTTP/TCP) event stream
 * that a client gets after eventManager.attach, as bridges forward it:
 *   {"id":2,"method":"client.notifyEventStream","session":2147483638,
 *    "params":{"SID":513,"eventList":[{event},{event}]}}
 * Each eventList element is one event of the shape above. A client that
 * attached codes [All] gets every kind in the same list (VideoMotion,
 * Invite, ...): elements whose Code is not AccessControl are skipped, and
 * so are AccessControl elements that are not passes (no reading and no
 * CardNo or UserID: a door opened remotely or by its button; see below),
 * rather than rejecting the passes of the same notification with them; a
 * list with no element left, or an empty one, is the reject no_events (a
 * lone event of another code stays unknown_format, a lone AccessControl
 * event that is not a pass missing_temperature). An element that is kept
 * but malformed rejects the whole notification. The
 * shape is the one Dahua's RPC2 clients read (method
 * "client.notifyEventStream", params.eventList[]: the Home Assistant and
 * Homebridge Dahua integrations, DahuaVTO2MQTT).
 *
 * Time: RealUTC, else UTC (epoch seconds; some firmwares put the local
 * wall time in UTC and the true one in RealUTC - an UTC off by the zone
 * offset gets the clock_skew flag), else LocaleTime (naive: site zone).
 * TemperatureUnit: -1 unknown (taken as Celsius), 0 C, 1 F, 2 K.
 * Type "Entry"/"Exit" gives the direction. Name, snapshots and the
 * integer mask codes (which differ between firmwares) are not read.
 *
 * Without CurrentTemperature (no ManTemperatureInfo: a card reader, a
 * face terminal with thermometry off) an AccessControl event is a pass
 * without a reading when it names who passed: a non-empty CardNo or
 * UserID (a refused card too: Status 0 with an ErrorCode still names
 * the card). One that names nobody (a door opened remotely or by its
 * button: CardNo "" and no UserID) is not a pass: missing_temperature,
 * as before. Door alarms and door states are other Codes (DoorStatus,
 * BreakIn, ...) and stay unknown_format. Source: Dahua HTTP API,
 * eventManager.cgi?action=attach&codes=[AccessControl], whose data holds
 * CardNo, UserID, Method, Status, ErrorCode, Type, Door, ReaderID, UTC;
 * card readers and VTO intercoms send it without ManTemperatureInfo. */
#include <errno.h>
#include <string.h>

#include "normalize_internal.h"

/* The Data object of one event: "Data", or "data" as the HTTP attach
 * stream spells it; NULL when neither is there. */
static json_t *
data_of(json_t *e)
{
	json_t *d = json_object_get(e, "Data");

	return d ? d : json_object_get(e, "data");
}

static int
event_shape(json_t *e)
{
	return json_is_object(e) && json_is_object(data_of(e)) &&
		(json_object_get(e, "Action") || json_object_get(e, "action") ||
		 json_object_get(e, "Code"));
}

/* params.eventList of a client.notifyEventStream, or NULL. */
static json_t *
event_list(json_t *root)
{
	const char *method = json_string_value(json_object_get(root, "method"));
	json_t *list = json_object_get(json_object_get(root, "params"), "eventList");

	if (!json_is_array(list) || (method && strcmp(method, "client.notifyEventStream") != 0))
		return NULL;
	return list;
}

static int
norm_dahua_shape(json_t *root)
{
	return json_is_object(root) && (event_shape(root) || event_list(root));
}

/* TemperatureUnit -1/0/1/2 (an integer or a string of one); absent:
 * Celsius. Returns 0 or -EINVAL. */
static int
temperature_unit(const json_t *v, enum temp_unit *ret)
{
	json_int_t n;

	if (!v || json_is_null(v))
		n = 0;
	else if (norm_json_int(v, &n) < 0)
		return -EINVAL;
	switch (n) {
	case -1:
	case 0: *ret = UNIT_CELSIUS; return 0;
	case 1: *ret = UNIT_FAHRENHEIT; return 0;
	case 2: *ret = UNIT_KELVIN; return 0;
	default: return -EINVAL;
	}
}

static int
is_set(const json_t *v)
{
	return norm_json_flag(v);
}

/* 1 when the event's Code is AccessControl, or absent (a bridge that
 * forwards one code only may drop it). */
static int
is_access(json_t *e)
{
	const char *s = json_string_value(json_object_get(e, "Code"));

	return !s || strcmp(s, "AccessControl") == 0;
}

/* 1 when Data names who passed: a non-empty CardNo or UserID. */
static int
names_someone(json_t *data)
{
	return norm_names_someone(json_object_get(data, "CardNo")) ||
		norm_names_someone(json_object_get(data, "UserID"));
}

/* 1 when an event of an eventList is not a pass: an object whose Data
 * holds no reading (no CurrentTemperature in ManTemperatureInfo, nor
 * flat in Data; a ManTemperatureInfo that is not an object is read, and
 * refused, by dahua_event) and names nobody (a door opened remotely or
 * by its button). */
static int
not_a_pass(json_t *e)
{
	json_t *data = data_of(e), *temp, *v;

	if (!json_is_object(e) || !json_is_object(data) || names_someone(data))
		return 0;
	temp = json_object_get(data, "ManTemperatureInfo");
	if (temp && !json_is_null(temp) && !json_is_object(temp))
		return 0;
	if (!json_is_object(temp))
		temp = data;
	v = json_object_get(temp, "CurrentTemperature");
	return !v || json_is_null(v);
}

/* One event `e` into *ev; `where` names it in reject details ("" or
 * "eventList[2]: "), `index` is its place for a key without RecNo.
 * Without CurrentTemperature it is a pass without a reading when it
 * names someone, else rejected missing_temperature. Returns 0, or -1
 * with the reject set. */
static int
dahua_event(const struct norm_msg *msg, json_t *e, const char *where, size_t index,
	    struct event *ev, struct norm_result *ret)
{
	char id[NORM_ID_MAX + 1] = "";
	enum temp_unit unit;
	json_t *data, *temp, *v;
	const char *s;
	double t;

	if (!json_is_object(e))
		return norm_reject(ret, "not_object", "%sthe event is not an object", where) - 1;
	data = data_of(e);
	if (!json_is_object(data))
		return norm_reject(ret, "bad_field", "%sData is not an object", where) - 1;
	norm_event_init(msg, ev, EVENT_GATE, "dahua");

	v = json_object_get(data, "RecNo");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "%sRecNo is not a short string or integer",
				   where) -
			1;

	v = json_object_get(data, "RealUTC");
	if (!v || json_is_null(v))
		v = json_object_get(data, "UTC");
	if (v && !json_is_null(v)) {
		if (norm_epoch(v, &ev->device_us) < 0)
			return norm_reject(ret, "bad_time", "%sUTC is not epoch seconds", where) -
				1;
	} else {
		v = json_object_get(data, "LocaleTime");
		if (!v || json_is_null(v))
			return norm_reject(ret, "missing_time", "%sno UTC or LocaleTime", where) -
				1;
		if (!json_is_string(v) || norm_json_time(msg, v, &ev->device_us) < 0)
			return norm_reject(ret, "bad_time", "%sLocaleTime is not a local time",
					   where) -
				1;
	}

	temp = json_object_get(data, "ManTemperatureInfo");
	if (temp && !json_is_null(temp) && !json_is_object(temp))
		return norm_reject(ret, "bad_temperature", "%sManTemperatureInfo is not an object",
				   where) -
			1;
	if (!json_is_object(temp))
		temp = data;
	v = json_object_get(temp, "CurrentTemperature");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0)
			return norm_reject(ret, "bad_temperature",
					   "%sCurrentTemperature is not a number", where) -
				1;
		if (temperature_unit(json_object_get(temp, "TemperatureUnit"), &unit) < 0)
			return norm_reject(ret, "bad_temperature",
					   "%sTemperatureUnit is not -1, 0, 1 or 2", where) -
				1;
		if (norm_set_temp_unit(ev, t, unit) < 0)
			return norm_reject_temp(ret, t, "%sCurrentTemperature", where) - 1;
		if (is_set(json_object_get(temp, "IsOverTemperature")))
			ev->flags |= FLAG_DEVICE_ABNORMAL;
	}

	v = json_object_get(data, "CardNo");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "%sCardNo is not a short string", where) - 1;
	v = json_object_get(data, "UserID");
	if (v && !json_is_null(v)) {
		char person[NORM_ID_MAX + 1];

		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field", "%sUserID is not a short string",
					   where) -
				1;
		norm_set_person(msg, ev, person);
	}
	if (norm_pass_without_reading(
		    ev, names_someone(data), 1, ret,
		    "%sno CurrentTemperature, and no CardNo or UserID: not a pass", where) < 0)
		return -1;
	s = json_string_value(json_object_get(data, "Type"));
	if (s && strcmp(s, "Entry") == 0)
		ev->direction = DIR_IN;
	else if (s && strcmp(s, "Exit") == 0)
		ev->direction = DIR_OUT;

	return norm_finish_event(msg, ev, id, index, ret);
}

/* A client.notifyEventStream: one event per AccessControl element;
 * other codes, and AccessControl elements without a reading that name
 * nobody (not passes), are skipped. */
static int
notify_stream(const struct norm_msg *msg, json_t *list, struct event *events, size_t max,
	      struct norm_result *ret)
{
	char where[48];
	size_t i, n = 0, nopass = 0;
	json_t *e;

	json_array_foreach(list, i, e)
	{
		if (json_is_object(e) && !is_access(e))
			continue;
		if (not_a_pass(e)) {
			nopass++;
			continue;
		}
		if (n == max)
			return norm_reject(ret, "too_many_events",
					   "params.eventList holds more than %zu access events",
					   max);
		snprintf(where, sizeof(where), "eventList[%zu]: ", i);
		if (dahua_event(msg, e, where, i, &events[n], ret) < 0)
			return 0;
		n++;
	}
	if (n == 0)
		return norm_reject(ret, "no_events",
				   "client.notifyEventStream with no AccessControl pass or reading"
				   " (%zu elements in params.eventList, %zu AccessControl without a"
				   " reading naming nobody)",
				   json_array_size(list), nopass);
	ret->nevents = n;
	return 0;
}

static int
norm_dahua_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		struct norm_result *ret)
{
	const char *s;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	if (event_list(root))
		return notify_stream(msg, event_list(root), events, max, ret);
	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	if (!json_is_object(data_of(root)))
		return norm_reject(ret, "bad_field", "Data is not an object");
	s = json_string_value(json_object_get(root, "Code"));
	if (!is_access(root)) {
		char code[41];

		snprintf(code, sizeof(code), "%s", s);
		normalize_utf8_trim(code);
		return norm_reject(ret, "unknown_format",
				   "Dahua event code %s is not AccessControl", code);
	}
	if (dahua_event(msg, root, "", 0, &events[0], ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

const struct norm_format norm_format_dahua = {
	.name = "dahua",
	.shape = norm_dahua_shape,
	.gate = norm_dahua_gate,
	.sample = "{\"Code\":\"AccessControl\",\"Data\":{\"CardNo\":\"A1B2C3D4\",\"RecNo\":5127,"
		  "\"UTC\":1581849120,\"ManTemperatureInfo\":{\"CurrentTemperature\":36.5}}}",
	.sample_temp_dc = 365,
};
