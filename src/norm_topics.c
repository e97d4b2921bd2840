/* norm_topics.c - the inbound topics other than gate events (SPEC 2):
 *
 * gate/<gate>/status   "online" | "offline" | "open" | "closed" | "forced"
 *                      (a bare word, e.g. the device's will; any case,
 *                      blanks around; "true"/"false" or JSON true/false
 *                      for online/offline), or {"state":"open","ts":...,
 *                      "id":...} whose state takes the same values (one
 *                      rule, state_of()); without ts the receive time is
 *                      used (a will carries none)
 * disinfection/<zone>  {"id":"D-1","ts":...,"crew":"crew-3","agent":"..."}
 * hotline              {"call_id":"H-12","action":"open|update|resolve",
 *                       "ts":...,"household":"3-2-401","category":"medical",
 *                       "urgent":true,"note":"..."}
 * isolation/<hh>/check {"id":...,"ts":...,"person":"P-1","temp_c":36.8,
 *                       "symptoms":["cough","fever"]}
 * ack                  {"alert_id":"...","by":"op-7","action":"ack|resolve",
 *                       "note":"..."}
 * need                 {"need_id":"N-12","id":"1","action":"open|assign|deliver|cancel",
 *                       "ts":...,"household":"3-2-401","category":"groceries",
 *                       "due":...,"by":"vol-07","call_id":"H-12","note":"..."}
 * call/<household>     {"id":...,"ts":...,"by":"op-3",
 *                       "outcome":"reached|no_answer|needs_help|counselling",
 *                       "category":"medicine","note":"..."}: needs_help also
 *                      opens a need (a second event, need_id "call-" + 16 hex)
 * dropoff              {"id":...,"ts":...,"household":"3-2-401","item":"groceries",
 *                       "action":"placed|collected","by":"vol-07","note":"..."}
 * Names and phone numbers that a hotline client may add are not read. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "normalize_internal.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

static int
first_slot(struct event *events, size_t max, struct norm_result *ret)
{
	if (max < 1)
		return norm_reject(ret, "too_many_events", "no room for an event");
	(void)events;
	return 1;
}

/* The start of each handler of a JSON object payload: room for one event,
 * an object, the event initialized as `type`. The event, or NULL after a
 * reject. */
static struct event *
begin_object(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	     enum event_type type, struct norm_result *ret)
{
	if (first_slot(events, max, ret) < 1)
		return NULL;
	if (!json_is_object(root)) {
		norm_reject(ret, "not_object", "the payload is JSON but not an object");
		return NULL;
	}
	norm_event_init(msg, &events[0], type, "canonical");
	return &events[0];
}

/* Optional record id; 0, or a reject. */
static int
record_id(json_t *root, char *id, struct norm_result *ret)
{
	json_t *v = json_object_get(root, "id");

	id[0] = '\0';
	if (v && !json_is_null(v) && norm_copy_id(id, v) < 0)
		return norm_reject(ret, "bad_field", "id is not a short string or integer") - 1;
	return 0;
}

/* Required ts, or the receive time when `optional`; 0 or -1 (rejected). */
static int
event_time(const struct norm_msg *msg, json_t *root, struct event *ev, int optional,
	   struct norm_result *ret)
{
	json_t *v = root ? json_object_get(root, "ts") : NULL;

	if (!v || json_is_null(v)) {
		if (optional) {
			norm_time_received(msg, ev);
			return 0;
		}
		norm_reject(ret, "missing_time", "no ts");
		return -1;
	}
	if (norm_json_time(msg, v, &ev->device_us) < 0) {
		norm_reject(ret, "bad_time", "ts is not ISO 8601 or epoch time");
		return -1;
	}
	return 0;
}

/* A status word: the canonical ones, case-insensitively, with blanks
 * (space, tab, CR, LF) around them; and the vendors' own words for the
 * same thing: Tasmota's default LWT "Online"/"Offline", ESPHome's and
 * Home Assistant's birth/will "online"/"offline", Shelly's online topic
 * "true"/"false" (Gen1 shellies/<id>/online, Gen2 <prefix>/online).
 * STATE_NONE for anything else. */
static enum gate_state
state_from(const char *s, size_t len)
{
	static const struct {
		const char *word;
		enum gate_state state;
	} words[] = {
		{ "online", STATE_ONLINE }, { "offline", STATE_OFFLINE }, { "open", STATE_OPEN },
		{ "closed", STATE_CLOSED }, { "forced", STATE_FORCED },	  { "true", STATE_ONLINE },
		{ "false", STATE_OFFLINE },
	};

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (norm_word(s, len, words[i].word))
			return words[i].state;
	return STATE_NONE;
}

/* A status value, bare or the "state" of the object form: one rule for
 * both. A JSON boolean (Shelly's online topic: true or false) or a
 * string by state_from(); STATE_NONE for anything else. */
static enum gate_state
state_of(const json_t *v)
{
	if (json_is_boolean(v))
		return json_is_true(v) ? STATE_ONLINE : STATE_OFFLINE;
	if (json_is_string(v))
		return state_from(json_string_value(v), json_string_length(v));
	return STATE_NONE;
}

int
norm_status(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	    struct norm_result *ret)
{
	struct event *ev = &events[0];
	char id[NORM_ID_MAX + 1] = "";
	json_t *v;

	if (first_slot(events, max, ret) < 1)
		return 0;
	norm_event_init(msg, ev, EVENT_STATUS, "canonical");
	if (!root) {
		/* A bare word without JSON quotes (a will, Tasmota's LWT). */
		ev->state = state_from((const char *)msg->in->payload, msg->in->payload_len);
		if (ev->state == STATE_NONE)
			return norm_reject(ret, "not_json",
					   "status is not online, offline, open, closed or forced");
		norm_time_received(msg, ev);
	} else if (json_is_boolean(root) || json_is_string(root)) {
		ev->state = state_of(root);
		if (ev->state == STATE_NONE)
			return norm_reject(ret, "bad_state",
					   "status is not online, offline, open, closed or forced");
		norm_time_received(msg, ev);
	} else {
		if (!json_is_object(root))
			return norm_reject(ret, "not_object",
					   "the payload is JSON but not an object");
		v = json_object_get(root, "state");
		if (!json_is_string(v) && !json_is_boolean(v))
			return norm_reject(ret, "bad_state", "no state");
		ev->state = state_of(v);
		if (ev->state == STATE_NONE)
			return norm_reject(ret, "bad_state",
					   "state is not online, offline, open, closed or forced");
		if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 1, ret) < 0)
			return 0;
	}
	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

int
norm_disinfection(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
		  struct norm_result *ret)
{
	struct event *ev;
	char id[NORM_ID_MAX + 1];
	json_t *v;

	if ((ev = begin_object(msg, root, events, max, EVENT_DISINFECTION, ret)) == NULL)
		return 0;
	if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 0, ret) < 0)
		return 0;
	v = json_object_get(root, "crew");
	if (v && !json_is_null(v) && norm_copy_id(ev->crew, v) < 0)
		return norm_reject(ret, "bad_field", "crew is not a short string");
	v = json_object_get(root, "agent");
	if (v && !json_is_null(v) && norm_copy_text(ev->text, v) < 0)
		return norm_reject(ret, "bad_field", "agent is not a string");
	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

int
norm_hotline(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	     struct norm_result *ret)
{
	static const char *const actions[] = { "open", "update", "resolve" };
	struct event *ev;
	char id[NORM_ID_MAX + 1], rec[NORM_RECORD_MAX + 1];
	const char *a;
	json_t *v;

	if ((ev = begin_object(msg, root, events, max, EVENT_HOTLINE, ret)) == NULL)
		return 0;
	v = json_object_get(root, "call_id");
	if (!v || norm_copy_id(ev->call_id, v) < 0 || !ev->call_id[0])
		return norm_reject(ret, "bad_field", "no call_id");
	a = json_string_value(json_object_get(root, "action"));
	for (size_t i = 0; a && i < 3; i++)
		if (strcmp(a, actions[i]) == 0)
			ev->call = (enum call_action)(i + 1);
	if (ev->call == CALL_NONE)
		return norm_reject(ret, "bad_field", "action is not open, update or resolve");
	if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 0, ret) < 0)
		return 0;
	v = json_object_get(root, "household");
	if (v && !json_is_null(v) && norm_copy_id(ev->household, v) < 0)
		return norm_reject(ret, "bad_field", "household is not a short string");
	v = json_object_get(root, "category");
	if (v && !json_is_null(v) && norm_copy_id(ev->category, v) < 0)
		return norm_reject(ret, "bad_field", "category is not a short string");
	v = json_object_get(root, "urgent");
	if (json_is_boolean(v))
		ev->urgent = json_is_true(v);
	v = json_object_get(root, "note");
	if (v && !json_is_null(v) && norm_copy_text(ev->text, v) < 0)
		return norm_reject(ret, "bad_field", "note is not a string");
	/* One call has many events: the record is the call and its step. */
	rec[0] = '\0';
	if (id[0] && norm_hotline_record(rec, sizeof(rec), ev->call_id, id) < 0)
		return norm_reject(ret, "key_too_long", "call_id and id do not fit in a key");
	if (norm_finish_event(msg, ev, rec, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

int
norm_check(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	   struct norm_result *ret)
{
	struct event *ev;
	char id[NORM_ID_MAX + 1];
	json_t *v;
	double t;

	if ((ev = begin_object(msg, root, events, max, EVENT_CHECK, ret)) == NULL)
		return 0;
	if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 0, ret) < 0)
		return 0;
	if (norm_person_field(msg, ev, json_object_get(root, "person")) < 0)
		return norm_reject(ret, "bad_field", "person is not a short string");
	v = json_object_get(root, "temp_c");
	if (v && !json_is_null(v)) {
		if (norm_json_number(v, &t) < 0)
			return norm_reject(ret, "bad_temperature", "temp_c is not a number");
		if (norm_set_temp(ev, t) < 0)
			return norm_reject_temp(ret, t, "temp_c");
	}
	v = json_object_get(root, "symptoms");
	if (v && !json_is_null(v)) {
		size_t i, n = 0;
		json_t *sym;

		if (!json_is_array(v))
			return norm_reject(ret, "bad_field", "symptoms is not an array of strings");
		json_array_foreach(v, i, sym)
		{
			char one[NORM_ID_MAX + 1];

			if (norm_copy_id(one, sym) < 0 || strchr(one, ','))
				return norm_reject(ret, "bad_field",
						   "symptom %zu is not a short word", i);
			if (n + strlen(one) + 2 > sizeof(ev->text))
				break;
			n += (size_t)snprintf(ev->text + n, sizeof(ev->text) - n, "%s%s",
					      n ? "," : "", one);
		}
	}
	if (ev->temp_dc == TEMP_NONE && !v)
		return norm_reject(ret, "missing_temperature", "a check needs temp_c or symptoms");
	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

int
norm_ack(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	 struct norm_result *ret)
{
	struct event *ev;
	const char *a;
	json_t *v;

	if ((ev = begin_object(msg, root, events, max, EVENT_ACK, ret)) == NULL)
		return 0;
	v = json_object_get(root, "alert_id");
	if (!v || norm_copy_id(ev->alert_id, v) < 0 || !ev->alert_id[0])
		return norm_reject(ret, "bad_field", "no alert_id");
	v = json_object_get(root, "by");
	if (!v || norm_copy_id(ev->by, v) < 0 || !ev->by[0])
		return norm_reject(ret, "bad_field", "no by (who acknowledges)");
	a = json_string_value(json_object_get(root, "action"));
	if (a && strcmp(a, "ack") == 0)
		ev->ack = ACK_ACK;
	else if (a && strcmp(a, "resolve") == 0)
		ev->ack = ACK_RESOLVE;
	else
		return norm_reject(ret, "bad_field", "action is not ack or resolve");
	v = json_object_get(root, "note");
	if (v && !json_is_null(v) && norm_copy_text(ev->text, v) < 0)
		return norm_reject(ret, "bad_field", "note is not a string");
	if (event_time(msg, root, ev, 1, ret) < 0)
		return 0;
	if (norm_finish_event(msg, ev, NULL, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

/* The index + 1 of `word` in `names` (n of them), in any case and with
 * blanks around it (as the status words, "Words" in docs/topics.md), or 0. */
static int
word_index(const char *word, const char *const *names, int n)
{
	for (int i = 0; word && i < n; i++)
		if (norm_word(word, strlen(word), names[i]))
			return i + 1;
	return 0;
}

/* The needs ledger's categories (issue 16). */
static const char *const need_categories[] = { "groceries", "medicine", "elderly_care",
					       "counselling", "other" };
#define NCATEGORIES (int)(sizeof(need_categories) / sizeof(need_categories[0]))

/* An optional short-string field into dst; 0, or -1 after a reject. */
static int
opt_id(json_t *root, const char *name, char *dst, struct norm_result *ret)
{
	json_t *v = json_object_get(root, name);

	if (v && !json_is_null(v) && norm_copy_id(dst, v) < 0) {
		norm_reject(ret, "bad_field", "%s is not a short string", name);
		return -1;
	}
	return 0;
}

/* An optional household: an id of the register's shape ([A-Za-z0-9_-],
 * 1-64 bytes), or it could never meet an isolation order; 0, or -1 after
 * a reject. */
static int
opt_household(json_t *root, struct event *ev, struct norm_result *ret)
{
	if (opt_id(root, "household", ev->household, ret) < 0)
		return -1;
	if (ev->household[0] && !normalize_valid_id(ev->household, strlen(ev->household))) {
		norm_reject(ret, "bad_field", "household is not an id of A-Z a-z 0-9 _ -");
		return -1;
	}
	return 0;
}

/* An optional note; 0, or -1 after a reject. */
static int
opt_note(json_t *root, struct event *ev, struct norm_result *ret)
{
	json_t *v = json_object_get(root, "note");

	if (v && !json_is_null(v) && norm_copy_text(ev->text, v) < 0) {
		norm_reject(ret, "bad_field", "note is not a string");
		return -1;
	}
	return 0;
}

/* An optional category of the needs ledger; 0, or -1 after a reject. */
static int
opt_category(json_t *root, struct event *ev, struct norm_result *ret)
{
	if (opt_id(root, "category", ev->category, ret) < 0)
		return -1;
	if (ev->category[0]) {
		int i = word_index(ev->category, need_categories, NCATEGORIES);

		if (!i) {
			norm_reject(ret, "bad_field",
				    "category is not groceries, medicine, elderly_care, counselling"
				    " or other");
			return -1;
		}
		snprintf(ev->category, sizeof(ev->category), "%s", need_categories[i - 1]);
	}
	return 0;
}

int
norm_need(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	  struct norm_result *ret)
{
	static const char *const actions[] = { "open", "assign", "deliver", "cancel" };
	struct event *ev;
	char id[NORM_ID_MAX + 1], rec[NORM_RECORD_MAX + 1];
	json_t *v;

	if ((ev = begin_object(msg, root, events, max, EVENT_NEED, ret)) == NULL)
		return 0;
	v = json_object_get(root, "need_id");
	if (!v || norm_copy_id(ev->need_id, v) < 0 || !ev->need_id[0])
		return norm_reject(ret, "bad_field", "no need_id");
	ev->need = (enum need_action)word_index(json_string_value(json_object_get(root, "action")),
						actions, 4);
	if (ev->need == NEED_NONE)
		return norm_reject(ret, "bad_field",
				   "action is not open, assign, deliver or cancel");
	if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 0, ret) < 0)
		return 0;
	if (opt_household(root, ev, ret) < 0 || opt_category(root, ev, ret) < 0 ||
	    opt_id(root, "by", ev->by, ret) < 0 || opt_id(root, "call_id", ev->call_id, ret) < 0 ||
	    opt_note(root, ev, ret) < 0)
		return 0;
	v = json_object_get(root, "due");
	if (v && !json_is_null(v) && norm_json_time(msg, v, &ev->due_us) < 0)
		return norm_reject(ret, "bad_time", "due is not ISO 8601 or epoch time");
	if (ev->need == NEED_OPEN && !ev->household[0])
		return norm_reject(ret, "bad_field", "an open step needs the household");
	if (ev->need == NEED_ASSIGN && !ev->by[0])
		return norm_reject(ret, "bad_field", "an assign step needs by (the volunteer)");
	/* One need has many steps: the record is the need and its step. */
	rec[0] = '\0';
	if (id[0] && norm_hotline_record(rec, sizeof(rec), ev->need_id, id) < 0)
		return norm_reject(ret, "key_too_long", "need_id and id do not fit in a key");
	if (norm_finish_event(msg, ev, rec, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}

/* The need that a needs_help call opens: its id is "call-" and 16 hex
 * digits of XXH3-64 of the call's event key, so every delivery of the call
 * opens the same need. */
static int
need_from_call(const struct norm_msg *msg, const struct event *call, struct event *ev,
	       struct norm_result *ret)
{
	char rec[NORM_RECORD_MAX + 1];

	norm_event_init(msg, ev, EVENT_NEED, "canonical");
	snprintf(ev->need_id, sizeof(ev->need_id), "call-%016llx",
		 (unsigned long long)XXH3_64bits(call->key, strlen(call->key)));
	ev->need = NEED_OPEN;
	ev->device_us = call->device_us;
	ev->flags = call->flags & FLAG_TS_RECEIVED;
	memcpy(ev->household, call->household, sizeof(ev->household));
	snprintf(ev->category, sizeof(ev->category), "%s",
		 call->category[0] ? call->category : "other");
	memcpy(ev->by, call->by, sizeof(ev->by));
	memcpy(ev->text, call->text, sizeof(ev->text));
	if (norm_hotline_record(rec, sizeof(rec), ev->need_id, "open") < 0)
		return norm_reject(ret, "key_too_long", "need_id does not fit in a key") - 1;
	return norm_finish_event(msg, ev, rec, 1, ret);
}

int
norm_call(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	  struct norm_result *ret)
{
	static const char *const outcomes[] = { "reached", "no_answer", "needs_help",
						"counselling" };
	struct event *ev;
	char id[NORM_ID_MAX + 1];

	if ((ev = begin_object(msg, root, events, max, EVENT_CALL, ret)) == NULL)
		return 0;
	snprintf(ev->household, sizeof(ev->household), "%s", msg->device_id);
	ev->outcome = (enum call_outcome)word_index(
		json_string_value(json_object_get(root, "outcome")), outcomes, 4);
	if (ev->outcome == OUTCOME_NONE)
		return norm_reject(ret, "bad_field",
				   "outcome is not reached, no_answer, needs_help or counselling");
	/* Not a health check: no temperature is read or required. */
	if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 0, ret) < 0)
		return 0;
	if (opt_id(root, "by", ev->by, ret) < 0 || opt_note(root, ev, ret) < 0)
		return 0;
	/* A call's category only names the need a needs_help call opens: one
	 * of the ledger's, else none (the need's is then "other"); never a
	 * reason to lose the call (the hotline says "medical"). */
	{
		int i = word_index(json_string_value(json_object_get(root, "category")),
				   need_categories, NCATEGORIES);

		if (i)
			snprintf(ev->category, sizeof(ev->category), "%s", need_categories[i - 1]);
	}
	if (norm_finish_event(msg, ev, id, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	if (ev->outcome == OUTCOME_NEEDS_HELP) {
		if (max < 2)
			return norm_reject(ret, "too_many_events", "no room for the call's need");
		if (need_from_call(msg, ev, &events[1], ret) < 0)
			return 0;
		ret->nevents = 2;
	}
	return 0;
}

/* The optional item of a drop-off: free text (a string, or an array of
 * strings joined by ", "), kept to its first 64 bytes (NORM_ID_MAX, cut at
 * a whole character); 0, or -1 after a reject. */
static int
opt_item(json_t *root, struct event *ev, struct norm_result *ret)
{
	json_t *v = json_object_get(root, "item"), *one;
	char text[NORM_TEXT_MAX + 1], all[NORM_TEXT_MAX + 1] = "";
	size_t i, n = 0;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		(void)norm_copy_text(all, v);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, one)
		{
			if (norm_copy_text(text, one) < 0) {
				norm_reject(ret, "bad_field", "item %zu is not a string", i);
				return -1;
			}
			if (n < sizeof(all) - 1)
				n += (size_t)snprintf(all + n, sizeof(all) - n, "%s%s",
						      n ? ", " : "", text);
		}
	} else {
		norm_reject(ret, "bad_field", "item is not a string or an array of strings");
		return -1;
	}
	snprintf(ev->category, sizeof(ev->category), "%.*s", NORM_ID_MAX, all);
	normalize_utf8_trim(ev->category);
	return 0;
}

int
norm_dropoff(const struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	     struct norm_result *ret)
{
	static const char *const actions[] = { "placed", "collected" };
	struct event *ev;
	char id[NORM_ID_MAX + 1], rec[NORM_RECORD_MAX + 1];

	if ((ev = begin_object(msg, root, events, max, EVENT_DROPOFF, ret)) == NULL)
		return 0;
	ev->dropoff = (enum dropoff_action)word_index(
		json_string_value(json_object_get(root, "action")), actions, 2);
	if (ev->dropoff == DROPOFF_NONE)
		return norm_reject(ret, "bad_field", "action is not placed or collected");
	if (record_id(root, id, ret) < 0 || event_time(msg, root, ev, 0, ret) < 0)
		return 0;
	if (opt_household(root, ev, ret) < 0 || opt_item(root, ev, ret) < 0 ||
	    opt_id(root, "by", ev->by, ret) < 0 || opt_note(root, ev, ret) < 0)
		return 0;
	if (!ev->household[0])
		return norm_reject(ret, "bad_field", "no household");
	/* A delivery's id may name both its steps (placed, then collected):
	 * the record is the id and the step. */
	rec[0] = '\0';
	if (id[0] && norm_hotline_record(rec, sizeof(rec), id, actions[ev->dropoff - 1]) < 0)
		return norm_reject(ret, "key_too_long", "id does not fit in a key");
	if (norm_finish_event(msg, ev, rec, 0, ret) < 0)
		return 0;
	ret->nevents = 1;
	return 0;
}
