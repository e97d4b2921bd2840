/* norm_wecom.c - WeCom (WeChat Work) temperature reports (SPEC 3).
 *
 *   {"errcode":0,"errmsg":"ok","temperature_data":[
 *     {"userid":"zhangsan","temperature":"36.6","timestamp":1581849120,"status":0},
 *     ...]}
 *
 * Each element of temperature_data becomes an event: temperature is a
 * string (a number is accepted too) in degrees C, timestamp epoch seconds
 * (or milliseconds). The person: userid (the device's direct-connection
 * API, report_user_temperature / async_batch_report_user_temperature),
 * else open_userid (the cloud API report_temperature_data, and what
 * get_temperature_data and the device_temperature_data_report callback
 * give third-party apps: an id of the person per app, stable for that
 * person, so a re-check of the same person has the same subject), else
 * user_id (seen from bridges). user_type (0 member, 1 visitor, 2
 * student) is not read. status: 0 normal, 1 fever (flag
 * device_abnormal), 2 temperature too low - no flag, as unknown values:
 * the site's threshold decides fever anyway. The report carries no
 * record number: the key is the message hash and the element's index.
 *
 * A temperature_data element is a temperature record: WeCom's passes
 * without a reading are a different report (access_data, with
 * pass_type and pass_method), not read here. An element without its
 * temperature ("" is WeCom's "not measured") is not a pass:
 * missing_temperature.
 *
 * Source: WeCom (developer.work.weixin.qq.com) smart hardware docs,
 * "上报体温检测记录" (report_temperature_data: temperature_data[] of
 * open_userid, user_type, temperature, timestamp, status), the
 * direct-connection report_user_temperature (userid), and the
 * third-party "获取温度检测原始数据" / "体温检测原始数据回调". */
#include <string.h>

#include "normalize_internal.h"

int
norm_wecom_shape(json_t *root)
{
	return json_is_object(root) && json_is_array(json_object_get(root, "temperature_data"));
}

/* The person's id, by precedence: the first present and non-empty. */
static const char *const id_keys[] = { "userid", "open_userid", "user_id" };

/* One element into *ev; 0, or -1 with the reject set. */
static int
wecom_event(const struct norm_msg *msg, json_t *e, size_t i, struct event *ev,
	    struct norm_result *ret)
{
	json_int_t code;
	json_t *v;
	double t;

	if (!json_is_object(e))
		return norm_reject(ret, "not_object", "temperature_data[%zu] is not an object", i) - 1;
	norm_event_init(msg, ev, EVENT_GATE, "wecom");

	v = json_object_get(e, "timestamp");
	if (!v || json_is_null(v))
		return norm_reject(ret, "missing_time", "temperature_data[%zu] has no timestamp", i) - 1;
	if (norm_epoch(v, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time",
				   "temperature_data[%zu].timestamp is not epoch time", i) - 1;

	v = json_object_get(e, "temperature");
	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		return norm_reject(ret, "missing_temperature",
				   "temperature_data[%zu] has no temperature", i) - 1;
	if (norm_json_number(v, &t) < 0)
		return norm_reject(ret, "bad_temperature",
				   "temperature_data[%zu].temperature is not a number", i) - 1;
	if (norm_set_temp_unit(ev, t, UNIT_CELSIUS) < 0)
		return norm_reject_temp(ret, t, "temperature_data[%zu].temperature", i) - 1;

	v = json_object_get(e, "status");
	if (norm_json_int(v, &code) == 0 && code == 1)
		ev->flags |= FLAG_DEVICE_ABNORMAL;

	for (size_t k = 0; k < sizeof(id_keys) / sizeof(id_keys[0]); k++) {
		char person[NORM_ID_MAX + 1];

		v = json_object_get(e, id_keys[k]);
		if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
			continue;
		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field",
					   "temperature_data[%zu].%s is not a short string", i,
					   id_keys[k]) - 1;
		norm_set_person(msg, ev, person);
		break;
	}

	return norm_finish_event(msg, ev, NULL, i, ret);
}

int
norm_wecom_gate(const struct norm_msg *msg, json_t *root, struct event *events,
		size_t max, struct norm_result *ret)
{
	json_t *list;
	size_t n;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	list = json_object_get(root, "temperature_data");
	if (!json_is_array(list))
		return norm_reject(ret, "bad_field", "temperature_data is not an array");
	n = json_array_size(list);
	if (n > max)
		return norm_reject(ret, "too_many_events",
				   "temperature_data holds %zu events, at most %zu", n, max);
	for (size_t i = 0; i < n; i++)
		if (wecom_event(msg, json_array_get(list, i), i, &events[i], ret) < 0)
			return 0;
	ret->nevents = n;
	return 0;
}
