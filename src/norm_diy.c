/* norm_diy.c - home-made sensors (SPEC 3): the smallest payloads.
 *
 *   98.9                               a bare reading
 *   {"temp":98.9}                      optional "ts", "id", "card"
 *   [36.6, {"temp":37.1,"ts":1581849120}]   a batch: one event each
 *
 * The unit is the gate's register entry (gates.unit), Celsius when the
 * gate is not registered. Without ts the receive time is the device time
 * (no clock_skew is possible then). "id" is the record number; without it
 * the key is per delivery (h:<message hash>:<receive time>:<index>,
 * normalize.c): two identical payloads without id are two events (two
 * people at 36.6), while a broker's replay of one delivery is dropped
 * before it is normalized (replay.h). A sensor that resends a reading
 * itself (its own retry) makes a second row unless it sends an "id".
 *
 * By shape: a number, an object with "temp" and no keys but temp, ts, id
 * and card, or a non-empty array of those. A gate pinned to diy may send
 * other keys; they are ignored. A gate pinned to diy may also send what
 * DIY firmwares publish as they are (never taken by shape: their keys are
 * too common to tell them from other payloads):
 *
 * - Tasmota's sensor telemetry, tele/<device>/SENSOR (Tasmota docs,
 *   MLX90614 page: {"Time":"2019-11-11T00:03:30","MLX90614":{"OBJTMP":23.8,
 *   "AMBTMP":22.7}}), with "TempUnit":"C|F" when the firmware adds it, and
 *   the same inside the answer to "Status 10" ({"StatusSNS":{...}}). The
 *   reading is the object temperature OBJTMP of the infrared sensor
 *   (never AMBTMP, the room); without one, the "Temperature" of the one
 *   sensor that reports it (DS18B20, SHT3X...; two such sensors are
 *   ambiguous: bad_temperature). The "ESP32" object is never a sensor:
 *   with SetOption146 Tasmota on any ESP32 (S2, S3, C3... too) adds the
 *   chip's internal temperature as "ESP32":{"Temperature":51.1} (Tasmota
 *   source xsns_127_esp32_sensors.ino, which writes that key for every
 *   ESP32 variant; the ESP8266 has no such sensor and Tasmota reports
 *   none for it); it is ignored, alone or next to a DS18B20.
 *   "Time" is local time (the site's zone)
 *   unless it carries an offset (SetOption52); TempUnit overrides the
 *   register's unit. Every SENSOR message is one reading: a periodic
 *   TelePeriod report with nobody at the gate is stored too (flagged
 *   implausible at room temperature), so such gates publish on presence.
 * - ESPHome's sensor state as its web server gives it (REST GET
 *   /sensor/<id> and the "state" events of /events, ESPHome Web Server
 *   API): {"id":"sensor-body_temp","value":36.9,"state":"36.9 \u00b0C"};
 *   "value" is the reading (null: not measured, missing_temperature), the
 *   unit from the end of "state" ("\u00b0F", "\u00b0C"), else the
 *   register's; {"state":36.9} (a number or a plain decimal string) too.
 *   ESPHome's MQTT state topics publish the bare value ("36.90"), which is
 *   the bare reading above. The receive time is the device time.
 *
 * An object whose temp is null (or absent, on a pinned gate) is a pass
 * without a reading when it has a card (a home-made card reader, a
 * sensor that failed to read); without a card it is no pass and no
 * reading: missing_temperature. Tasmota's and ESPHome's JSON name nobody:
 * without a reading they are missing_temperature. */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "normalize_internal.h"

static int
diy_object(json_t *o)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o) || !json_object_get(o, "temp"))
		return 0;
	json_object_foreach(o, k, v)
	{
		if (strcmp(k, "temp") != 0 && strcmp(k, "ts") != 0 && strcmp(k, "id") != 0 &&
		    strcmp(k, "card") != 0)
			return 0;
	}
	return 1;
}

static int
diy_item(json_t *v)
{
	return json_is_number(v) || diy_object(v);
}

static int
norm_diy_shape(json_t *root)
{
	size_t i;
	json_t *v;

	if (!json_is_array(root))
		return diy_item(root);
	if (json_array_size(root) == 0)
		return 0;
	json_array_foreach(root, i, v) if (!diy_item(v)) return 0;
	return 1;
}

/* The unit word of Tasmota's TempUnit ("C", "F"); -EINVAL for others. */
static int
tasmota_unit(const json_t *v, enum temp_unit *ret)
{
	if (norm_json_word(v, "c"))
		*ret = UNIT_CELSIUS;
	else if (norm_json_word(v, "f"))
		*ret = UNIT_FAHRENHEIT;
	else
		return -EINVAL;
	return 0;
}

/* 1 when an object without "temp" looks like Tasmota telemetry: a "Time"
 * key or a sensor object with OBJTMP or Temperature. */
static int
is_tasmota(json_t *o)
{
	const char *k;
	json_t *v;

	if (json_is_object(json_object_get(o, "StatusSNS")) || json_object_get(o, "Time"))
		return 1;
	json_object_foreach(o, k, v) if (json_is_object(v) &&
					 (json_object_get(v, "OBJTMP") ||
					  json_object_get(v, "Temperature"))) return 1;
	return 0;
}

/* Tasmota telemetry `o` into *ev (time, unit, reading); *ret_temp is the
 * JSON value of the reading. 0, or -1 with the reject set. */
static int
tasmota_reading(const struct norm_msg *msg, json_t *o, size_t i, struct event *ev,
		enum temp_unit *unit, json_t **ret_temp, struct norm_result *ret)
{
	json_t *sns = json_object_get(o, "StatusSNS"), *v, *temp = NULL;
	const char *k, *sensor = NULL;
	int n = 0, chip = 0;

	if (json_is_object(sns))
		o = sns;
	v = json_object_get(o, "Time");
	if (v && !json_is_null(v) && norm_json_time(msg, v, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "reading %zu: Time is not a time", i) - 1;
	if (v && !json_is_null(v))
		ev->flags &= ~(unsigned)FLAG_TS_RECEIVED; /* a time of its own */
	v = json_object_get(o, "TempUnit");
	if (v && !json_is_null(v) && tasmota_unit(v, unit) < 0)
		return norm_reject(ret, "bad_temperature", "reading %zu: TempUnit is not C or F",
				   i) -
			1;
	json_object_foreach(o, k, v)
	{
		/* The chip's own temperature (SetOption146), never a body. */
		if (strcmp(k, "ESP32") == 0) {
			chip = 1;
			continue;
		}
		if (json_is_object(v) && json_object_get(v, "OBJTMP")) {
			temp = json_object_get(v, "OBJTMP");
			n = 1;
			break;
		}
		if (json_is_object(v) && json_object_get(v, "Temperature")) {
			if (n++ == 0) {
				temp = json_object_get(v, "Temperature");
				sensor = k;
			}
		}
	}
	if (n > 1)
		return norm_reject(ret, "bad_temperature",
				   "reading %zu: %d sensors report Temperature (%.40s, ...), "
				   "none an infrared OBJTMP",
				   i, n, sensor) -
			1;
	if (!temp || json_is_null(temp))
		return norm_reject(ret, "missing_temperature",
				   "reading %zu: no sensor reports OBJTMP or Temperature%s", i,
				   chip ? " (the ESP32 chip's own Temperature is not a reading)" :
					  "") -
			1;
	*ret_temp = temp;
	return 0;
}

/* ESPHome's {"id":..,"value":36.9,"state":"36.9 \u00b0C"} or {"state":36.9}
 * into *unit and *ret_temp (NULL: not measured). -1 when the object is
 * not of this shape. */
static int
esphome_reading(json_t *o, enum temp_unit *unit, json_t **ret_temp)
{
	json_t *value = json_object_get(o, "value"), *state = json_object_get(o, "state");
	const char *s = json_string_value(state);

	if (!value && !state)
		return -1;
	if (value) {
		if (s && strstr(s, "\u00b0F"))
			*unit = UNIT_FAHRENHEIT;
		else if (s && strstr(s, "\u00b0C"))
			*unit = UNIT_CELSIUS;
		*ret_temp = json_is_null(value) ? NULL : value;
		return 0;
	}
	*ret_temp = json_is_null(state) ? NULL : state;
	return 0;
}

/* One reading into *ev; 0, or -1 with the reject set. */
static int
diy_event(const struct norm_msg *msg, json_t *e, size_t i, struct event *ev,
	  struct norm_result *ret)
{
	enum temp_unit unit = msg->registered ? msg->gate.unit : UNIT_CELSIUS;
	char id[NORM_ID_MAX + 1] = "";
	json_t *temp = e, *v;
	double t;

	norm_event_init(msg, ev, EVENT_GATE, "diy");
	norm_time_received(msg, ev);
	if (json_is_object(e) && !json_object_get(e, "temp") && is_tasmota(e)) {
		if (tasmota_reading(msg, e, i, ev, &unit, &temp, ret) < 0)
			return -1;
	} else if (json_is_object(e) && !json_object_get(e, "temp") &&
		   esphome_reading(e, &unit, &temp) == 0) {
		/* ESPHome's "id" names the sensor, not the reading: not a key. */
		if (!temp)
			return norm_reject(ret, "missing_temperature", "reading %zu: value is null",
					   i) -
				1;
	} else if (json_is_object(e)) {
		v = json_object_get(e, "id");
		if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
			return norm_reject(ret, "bad_field",
					   "reading %zu: id is not a short string", i) -
				1;
		v = json_object_get(e, "ts");
		if (v && !json_is_null(v) && norm_json_time(msg, v, &ev->device_us) < 0)
			return norm_reject(ret, "bad_time", "reading %zu: ts is not a time", i) - 1;
		if (v && !json_is_null(v))
			ev->flags &= ~(unsigned)FLAG_TS_RECEIVED; /* a time of its own */
		v = json_object_get(e, "card");
		if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
			return norm_reject(ret, "bad_field",
					   "reading %zu: card is not a short string", i) -
				1;
		temp = json_object_get(e, "temp");
		if (!temp || json_is_null(temp)) {
			if (norm_pass_without_reading(
				    ev, norm_names_someone(v), 1, ret,
				    "reading %zu has no temp, and no card: not a pass", i) < 0)
				return -1;
			return norm_finish_event(msg, ev, id, i, ret);
		}
	} else if (!json_is_number(e) && !json_is_string(e)) {
		return norm_reject(ret, "bad_temperature",
				   "reading %zu is neither a number nor an object", i) -
			1;
	}
	if (norm_json_number(temp, &t) < 0)
		return norm_reject(ret, "bad_temperature", "reading %zu is not a number", i) - 1;
	if (norm_set_temp_unit(ev, t, unit) < 0)
		return norm_reject_temp(ret, t, "reading %zu", i) - 1;
	return norm_finish_event(msg, ev, id, i, ret);
}

static int
norm_diy_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	      struct norm_result *ret)
{
	size_t n = json_is_array(root) ? json_array_size(root) : 1;

	if (n > max)
		return norm_reject(ret, "too_many_events", "%zu readings, at most %zu", n, max);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_is_array(root) ? json_array_get(root, i) : root;

		if (diy_event(msg, e, i, &events[i], ret) < 0)
			return 0;
	}
	ret->nevents = n;
	return 0;
}

const struct norm_format norm_format_diy = {
	.name = "diy",
	.shape = norm_diy_shape,
	.gate = norm_diy_gate,
	.sample = "{\"temp\":36.7}",
	.sample_temp_dc = 367,
};
