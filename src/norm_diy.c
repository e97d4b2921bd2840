/* norm_diy.c - home-made sensors (SPEC 3): the smallest payloads.
 *
 *   98.9                               a bare reading
 *   {"temp":98.9}                      optional "ts", "id", "card"
 *   [36.6, {"temp":37.1,"ts":1581849120}]   a batch: one event each
 *
 * The unit is the gate's register entry (gates.unit), Celsius when the
 * gate is not registered. Without ts the receive time is the device time
 * (no clock_skew is possible then). "id" is the record number; without it
 * the key is the message hash and the index, so two identical payloads
 * without ts or id are one event (a redelivery) - such sensors should send
 * ts or id.
 *
 * By shape: a number, an object with "temp" and no keys but temp, ts, id
 * and card, or a non-empty array of those. A gate pinned to diy may send
 * other keys; they are ignored. */
#include <string.h>

#include "normalize_internal.h"

static int
diy_object(json_t *o)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o) || !json_object_get(o, "temp"))
		return 0;
	json_object_foreach(o, k, v) {
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

int
norm_diy_shape(json_t *root)
{
	size_t i;
	json_t *v;

	if (!json_is_array(root))
		return diy_item(root);
	if (json_array_size(root) == 0)
		return 0;
	json_array_foreach(root, i, v)
		if (!diy_item(v))
			return 0;
	return 1;
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
	if (json_is_object(e)) {
		v = json_object_get(e, "id");
		if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
			return norm_reject(ret, "bad_field", "reading %zu: id is not a short string", i) - 1;
		v = json_object_get(e, "ts");
		if (v && !json_is_null(v) && norm_json_time(msg, v, &ev->device_us) < 0)
			return norm_reject(ret, "bad_time", "reading %zu: ts is not a time", i) - 1;
		if (v && !json_is_null(v))
			ev->flags &= ~(unsigned)FLAG_TS_RECEIVED;	/* a time of its own */
		v = json_object_get(e, "card");
		if (v && !json_is_null(v) && norm_copy_id(ev->card, v) < 0)
			return norm_reject(ret, "bad_field", "reading %zu: card is not a short string",
					   i) - 1;
		temp = json_object_get(e, "temp");
		if (!temp || json_is_null(temp))
			return norm_reject(ret, "missing_temperature", "reading %zu has no temp", i) - 1;
	} else if (!json_is_number(e) && !json_is_string(e)) {
		return norm_reject(ret, "bad_temperature",
				   "reading %zu is neither a number nor an object", i) - 1;
	}
	if (norm_json_number(temp, &t) < 0)
		return norm_reject(ret, "bad_temperature", "reading %zu is not a number", i) - 1;
	if (norm_set_temp_unit(ev, t, unit) < 0)
		return norm_reject_temp(ret, t, "reading %zu", i) - 1;
	return norm_finish_event(msg, ev, id, i, ret);
}

int
norm_diy_gate(const struct norm_msg *msg, json_t *root, struct event *events,
	      size_t max, struct norm_result *ret)
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
