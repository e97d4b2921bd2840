/* norm_acme.c - ACME thermal gates (a throwaway example, issue 15):
 * {"acme":{"rec":"A-1","at":"2020-02-16T18:32:00+08:00","card":"C-1","deg":36.6}}
 * Required: at, deg. */
#include "normalize_internal.h"

static int
norm_acme_shape(json_t *root)
{
	return json_is_object(json_object_get(root, "acme"));
}

static int
norm_acme_gate(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	       struct norm_result *ret)
{
	json_t *rec = json_object_get(root, "acme");
	struct event *ev = &events[0];
	char id[NORM_ID_MAX + 1] = "";
	double t;

	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	if (!json_is_object(rec))
		return norm_reject(ret, "bad_field", "acme is not an object");
	norm_event_init(msg, ev, EVENT_GATE, "acme");
	if (!json_object_get(rec, "at"))
		return norm_reject(ret, "missing_time", "no at");
	if (norm_json_time(msg, json_object_get(rec, "at"), &ev->device_us) < 0)
		return norm_reject(ret, "bad_time", "at is not a time");
	if (norm_json_number(json_object_get(rec, "deg"), &t) < 0)
		return norm_reject(ret, "bad_temperature", "deg is not a number");
	if (norm_set_temp(ev, t) < 0)
		return norm_reject_temp(ret, t, "deg");
	if (norm_copy_id(ev->card, json_object_get(rec, "card")) < 0 ||
	    norm_copy_id(id, json_object_get(rec, "rec")) < 0)
		return norm_reject(ret, "bad_field", "card or rec is not an id");
	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

const struct norm_format norm_format_acme = {
	.name = "acme",
	.shape = norm_acme_shape,
	.gate = norm_acme_gate,
	.sample = "{\"acme\":{\"rec\":\"A-1\",\"at\":\"2020-02-16T18:32:00+08:00\",\"card\":\"C-1\","
		  "\"deg\":36.6}}",
	.sample_temp_dc = 366,
};
