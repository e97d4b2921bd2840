/* norm_dahua.c - Dahua access-control events bridged to MQTT (SPEC 3).
 *
 * The event of the eventManager stream (Code=AccessControl;action=Pulse;
 * data={...}) as JSON:
 *   {"Action":"Pulse","Code":"AccessControl","Index":0,
 *    "Data":{"RecNo":5127,"UTC":1581849120,"LocaleTime":"2020-02-16 18:32:00",
 *      "CardNo":"A1B2C3D4","UserID":"1042","Type":"Entry","Method":15,
 *      "ManTemperatureInfo":{"CurrentTemperature":36.5,"TemperatureUnit":0,
 *                            "IsOverTemperature":false}}}
 * The temperature keys are also read flat in Data.
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

int
norm_dahua_shape(json_t *root)
{
	return json_is_object(root) && json_is_object(json_object_get(root, "Data")) &&
	       (json_object_get(root, "Action") || json_object_get(root, "Code"));
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

int
norm_dahua_gate(const struct norm_msg *msg, json_t *root, struct event *events,
		size_t max, struct norm_result *ret)
{
	struct event *ev = &events[0];
	char id[NORM_ID_MAX + 1] = "";
	enum temp_unit unit;
	json_t *data, *temp, *v;
	const char *s;
	double t;
	int who;

	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	data = json_object_get(root, "Data");
	if (!json_is_object(data))
		return norm_reject(ret, "bad_field", "Data is not an object");
	s = json_string_value(json_object_get(root, "Code"));
	if (s && strcmp(s, "AccessControl") != 0) {
		char code[41];

		snprintf(code, sizeof(code), "%s", s);
		normalize_utf8_trim(code);
		return norm_reject(ret, "unknown_format", "Dahua event code %s is not AccessControl",
				   code);
	}
	norm_event_init(msg, ev, EVENT_GATE, "dahua");

	v = json_object_get(data, "RecNo");
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "RecNo is not a short string or integer");

	v = json_object_get(data, "RealUTC");
	if (!v || json_is_null(v))
		v = json_object_get(data, "UTC");
	if (v && !json_is_null(v)) {
		if (norm_epoch(v, &ev->device_us) < 0)
			return norm_reject(ret, "bad_time", "UTC is not epoch seconds");
	} else {
		v = json_object_get(data, "LocaleTime");
		if (!v || json_is_null(v))
			return norm_reject(ret, "missing_time", "no UTC or LocaleTime");
		if (!json_is_string(v) || norm_json_time(msg, v, &ev->device_us) < 0)
			return norm_reject(ret, "bad_time", "LocaleTime is not a local time");
	}

	temp = json_object_get(data, "ManTemperatureInfo");
	if (temp && !json_is_null(temp) && !json_is_object(temp))
		return norm_reject(ret, "bad_temperature", "ManTemperatureInfo is not an object");
	if (!json_is_object(temp))
		temp = data;
	v = json_object_get(temp, "CurrentTemperature");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0)
			return norm_reject(ret, "bad_temperature", "CurrentTemperature is not a number");
		if (temperature_unit(json_object_get(temp, "TemperatureUnit"), &unit) < 0)
			return norm_reject(ret, "bad_temperature",
					   "TemperatureUnit is not -1, 0, 1 or 2");
		if (norm_set_temp_unit(ev, t, unit) < 0)
			return norm_reject_temp(ret, t, "CurrentTemperature");
		if (is_set(json_object_get(temp, "IsOverTemperature")))
			ev->flags |= FLAG_DEVICE_ABNORMAL;
	}

	v = json_object_get(data, "CardNo");
	if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
		return norm_reject(ret, "bad_field", "CardNo is not a short string");
	who = norm_names_someone(v);
	v = json_object_get(data, "UserID");
	if (v && !json_is_null(v)) {
		char person[NORM_ID_MAX + 1];

		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field", "UserID is not a short string");
		norm_set_person(msg, ev, person);
		who |= norm_names_someone(v);
	}
	if (norm_pass_without_reading(ev, who, 1, ret,
				      "no CurrentTemperature, and no CardNo or UserID: not a pass") < 0)
		return 0;
	s = json_string_value(json_object_get(data, "Type"));
	if (s && strcmp(s, "Entry") == 0)
		ev->direction = DIR_IN;
	else if (s && strcmp(s, "Exit") == 0)
		ev->direction = DIR_OUT;

	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}
