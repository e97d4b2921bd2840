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
 * third-party "获取温度检测原始数据" / "体温检测原始数据回调".
 *
 * Two more wrappers of the same records, as bridges forward them:
 *
 * The reply of get_temperature_data (获取温度检测原始数据,
 * developer.work.weixin.qq.com/document/path/96028), forwarded as it is
 * by a bridge that polls the API:
 *   {"errcode":0,"errmsg":"ok","temperature_data":{"items":[
 *     {"open_userid":"userid1","user_type":0,"timestamp":1662697304,
 *      "temperature":"36.7","status":0}, ...]},"next_cursor":"..."}
 * Each element of temperature_data.items is one record, read as above;
 * an empty items (a page with nothing new) is no_events.
 *
 * The callback device_temperature_data_report (体温检测原始数据回调,
 * document/path/97216) is XML; an XML->JSON bridge forwards it as
 * xmltodict does, every value a string:
 *   {"xml":{"ToUserName":"..","FromUserName":"sys","MsgType":"event",
 *    "Event":"device_temperature_data_report","TimeStamp":"1673943402",
 *    "TemperatureDataList":{"Item":{"OpenUserId":"..","UserType":"0",
 *      "TimeStamp":"1673943402","Temperature":"36.7","Status":"0"}},
 *    "DeviceSn":".."}}
 * Item is an object for one item, an array for several; xml2js (Node-RED's
 * xml node) with its default explicitArray: true puts every value in an
 * array of one (as for Hikvision's EventNotificationAlert): one-element
 * arrays are unwrapped. Each Item is one record: OpenUserId, Temperature,
 * TimeStamp, Status read as open_userid, temperature, timestamp, status
 * (UserType is not read). Only this Event is read; the envelope's own
 * TimeStamp (the callback's time) is not a measurement time. An empty
 * TemperatureDataList is no_events.
 *
 * A WeCom error reply (errcode an integer other than 0, errmsg a string:
 * the shape of every WeCom API's error, e.g. 40014 invalid access_token)
 * is no data: it is rejected vendor_error with errcode and errmsg in the
 * detail, whatever else it holds, so an operator sees why a polling
 * bridge gets nothing (unknown_format would hide it). */
#include <string.h>

#include <inttypes.h>

#include "normalize_internal.h"

/* The only element of a one-element array (xml2js explicitArray), else
 * v itself. */
static json_t *
only_element(json_t *v)
{
	return json_is_array(v) && json_array_size(v) == 1 ? json_array_get(v, 0) : v;
}

/* 1 when root is a WeCom error reply: errcode an integer other than 0
 * and errmsg a string. */
static int
error_reply(json_t *root)
{
	json_t *code = json_object_get(root, "errcode");

	return json_is_integer(code) && json_integer_value(code) != 0 &&
		json_is_string(json_object_get(root, "errmsg"));
}

/* The "xml" object of a device_temperature_data_report callback as an
 * XML->JSON bridge forwards it, or NULL. */
static json_t *
xml_callback(json_t *root)
{
	json_t *xml = only_element(json_object_get(root, "xml"));
	const char *event;

	if (!json_is_object(xml))
		return NULL;
	event = json_string_value(only_element(json_object_get(xml, "Event")));
	return event && strcmp(event, "device_temperature_data_report") == 0 ? xml : NULL;
}

/* 1 when temperature_data is get_temperature_data's object of items. */
static int
items_reply(json_t *root)
{
	json_t *data = json_object_get(root, "temperature_data");

	return json_is_object(data) && json_object_get(data, "items");
}

static int
norm_wecom_shape(json_t *root)
{
	return json_is_object(root) &&
		(json_is_array(json_object_get(root, "temperature_data")) || items_reply(root) ||
		 xml_callback(root) || error_reply(root));
}

/* The person's id, by precedence: the first present and non-empty. */
static const char *const id_keys[] = { "userid", "open_userid", "user_id" };

/* One element into *ev; `list` names the array in reject details
 * ("temperature_data", "temperature_data.items"). 0, or -1 with the
 * reject set. */
static int
wecom_event(const struct norm_msg *msg, json_t *e, const char *list, size_t i, struct event *ev,
	    struct norm_result *ret)
{
	json_int_t code;
	json_t *v;
	double t;

	if (!json_is_object(e))
		return norm_reject(ret, "not_object", "%s[%zu] is not an object", list, i) - 1;
	norm_event_init(msg, ev, EVENT_GATE, "wecom");

	v = json_object_get(e, "timestamp");
	if (!v || json_is_null(v))
		return norm_reject(ret, "missing_time", "%s[%zu] has no timestamp", list, i) - 1;
	if (norm_epoch(v, &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "%s[%zu].timestamp is not epoch time", list,
				   i) -
			1;

	v = json_object_get(e, "temperature");
	if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
		return norm_reject(ret, "missing_temperature", "%s[%zu] has no temperature", list,
				   i) -
			1;
	if (norm_json_number(v, &t) < 0)
		return norm_reject(ret, "bad_temperature", "%s[%zu].temperature is not a number",
				   list, i) -
			1;
	if (norm_set_temp_unit(ev, t, UNIT_CELSIUS) < 0)
		return norm_reject_temp(ret, t, "%s[%zu].temperature", list, i) - 1;

	v = json_object_get(e, "status");
	if (norm_json_int(v, &code) == 0 && code == 1)
		ev->flags |= FLAG_DEVICE_ABNORMAL;

	for (size_t k = 0; k < sizeof(id_keys) / sizeof(id_keys[0]); k++) {
		char person[NORM_ID_MAX + 1];

		v = json_object_get(e, id_keys[k]);
		if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
			continue;
		if (norm_copy_id(person, v) < 0)
			return norm_reject(ret, "bad_field", "%s[%zu].%s is not a short string",
					   list, i, id_keys[k]) -
				1;
		norm_set_person(msg, ev, person);
		break;
	}

	/* No record id in any of WeCom's forms, and its API "may return the
	 * same records again: the caller removes duplicates" (document path
	 * 96028): one person measured at one instant is one record. Another
	 * reading under the same key is stored as a reused id (store.c). */
	if (ev->person[0]) {
		char rec[NORM_ID_MAX + 32];

		snprintf(rec, sizeof(rec), "%s@%" PRId64, ev->person, ev->device_us / 1000);
		return norm_finish_event(msg, ev, rec, i, ret);
	}
	return norm_finish_event(msg, ev, NULL, i, ret);
}

/* The XML callback's Items as lower-case records: a new array of new
 * objects (OpenUserId, Temperature, TimeStamp, Status renamed as the
 * JSON records' keys, each value unwrapped from xml2js's array of one),
 * or NULL when out of memory. A non-object Item is kept as it is (the
 * reader rejects it not_object). */
static json_t *
xml_items(json_t *xml)
{
	static const char *const names[][2] = {
		{ "OpenUserId", "open_userid" },
		{ "Temperature", "temperature" },
		{ "TimeStamp", "timestamp" },
		{ "Status", "status" },
	};
	json_t *list = only_element(json_object_get(xml, "TemperatureDataList"));
	json_t *items = json_is_object(list) ? json_object_get(list, "Item") : NULL;
	json_t *ret = json_array(), *item, *rec;
	size_t i, n;

	if (!ret)
		return NULL;
	if (!items || json_is_null(items))
		return ret;
	n = json_is_array(items) ? json_array_size(items) : 1;
	for (i = 0; i < n; i++) {
		item = json_is_array(items) ? json_array_get(items, i) : items;
		item = only_element(item);
		if (!json_is_object(item)) {
			if (json_array_append(ret, item) < 0)
				goto oom;
			continue;
		}
		rec = json_object();
		if (!rec || json_array_append_new(ret, rec) < 0)
			goto oom;
		for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
			json_t *v = json_object_get(item, names[k][0]);

			if (v && json_object_set(rec, names[k][1], only_element(v)) < 0)
				goto oom;
		}
	}
	return ret;
oom:
	json_decref(ret);
	return NULL;
}

/* One event per element of list (named `name` in reject details); an
 * empty list is no_events. */
static int
wecom_list(const struct norm_msg *msg, json_t *list, const char *name, struct event *events,
	   size_t max, struct norm_result *ret)
{
	size_t n = json_array_size(list);

	if (n == 0)
		return norm_reject(ret, "no_events", "%s is empty", name);
	if (n > max)
		return norm_reject(ret, "too_many_events", "%s holds %zu events, at most %zu", name,
				   n, max);
	for (size_t i = 0; i < n; i++)
		if (wecom_event(msg, json_array_get(list, i), name, i, &events[i], ret) < 0)
			return 0;
	ret->nevents = n;
	return 0;
}

static int
norm_wecom_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		struct norm_result *ret)
{
	json_t *data, *xml;

	if (!json_is_object(root))
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	if (error_reply(root)) {
		char why[128];

		snprintf(why, sizeof(why), "%s",
			 json_string_value(json_object_get(root, "errmsg")));
		normalize_utf8_trim(why);
		return norm_reject(ret, "vendor_error",
				   "WeCom error reply: errcode %" JSON_INTEGER_FORMAT ", errmsg %s",
				   json_integer_value(json_object_get(root, "errcode")), why);
	}
	xml = xml_callback(root);
	if (xml && !json_object_get(root, "temperature_data")) {
		json_t *list = xml_items(xml);
		int r;

		if (!list)
			return norm_reject(ret, "not_json",
					   "out of memory reading the XML callback");
		r = wecom_list(msg, list, "TemperatureDataList.Item", events, max, ret);
		json_decref(list);
		return r;
	}
	data = json_object_get(root, "temperature_data");
	if (json_is_object(data)) {
		data = json_object_get(data, "items");
		if (!json_is_array(data))
			return norm_reject(ret, "bad_field",
					   "temperature_data.items is not an array");
		return wecom_list(msg, data, "temperature_data.items", events, max, ret);
	}
	if (!json_is_array(data))
		return norm_reject(ret, "bad_field", "temperature_data is not an array");
	return wecom_list(msg, data, "temperature_data", events, max, ret);
}

const struct norm_format norm_format_wecom = {
	.name = "wecom",
	.shape = norm_wecom_shape,
	.gate = norm_wecom_gate,
	.sample = "{\"errcode\":0,\"errmsg\":\"ok\",\"temperature_data\":[{\"userid\":\"zhangsan\","
		  "\"temperature\":\"36.6\",\"timestamp\":1581849120,\"status\":0}]}",
	.sample_temp_dc = 366,
};
