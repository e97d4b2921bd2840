/* alerts.c - the alert message (SPEC 4) and the reject notice. Outbound
 * messages carry household, building, gate and card ids only: never
 * names, phones or ID numbers. */
#include "alerts.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"
#include "topics.h"

void
alerts_topic(const char *root, const struct alert *a, char *buf, size_t len)
{
	topics_build(buf, len, root, TOPIC_ALERT, a->site, alert_state_kind_name(a->kind));
}

void
alerts_state_topic(const char *root, const struct alert *a, char *buf, size_t len)
{
	topics_build(buf, len, root, TOPIC_ALERT_STATE, a->site, a->alert_id);
}

/* " (household H, card C)" from what the alert has. */
static void
ids(const struct alert *a, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	if (a->household[0])
		n += (size_t)snprintf(buf + n, len - n, "%shousehold %s", n ? ", " : " (",
				      a->household);
	if (a->card[0] && n < len)
		n += (size_t)snprintf(buf + n, len - n, "%scard %s", n ? ", " : " (", a->card);
	if (n && n < len)
		snprintf(buf + n, len - n, ")");
}

static const char *
after_colon(const char *subject)
{
	const char *c = strchr(subject, ':');

	return c ? c + 1 : subject;
}

/* n with thousands separated by commas: "8,214". */
static void
format_count(uint32_t n, char *buf, size_t len)
{
	char digits[16];
	size_t nd = (size_t)snprintf(digits, sizeof(digits), "%u", n), o = 0;

	for (size_t i = 0; i < nd && o + 2 < len; i++) {
		if (i && (nd - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
}

/* The sample's subjects without their "card:" prefixes, ", "-separated. */
static void
sample_ids(const char *sample, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = '\0';
	while (*sample && o + 1 < len) {
		const char *end = strchr(sample, ' ');
		const char *colon = strchr(sample, ':');
		size_t n = end ? (size_t)(end - sample) : strlen(sample);

		if (colon && colon < sample + n) {
			n -= (size_t)(colon + 1 - sample);
			sample = colon + 1;
		}
		o += (size_t)snprintf(buf + o, len - o, "%s%.*s", o ? ", " : "", (int)n, sample);
		if (o >= len)
			break;
		sample += n;
		while (*sample == ' ')
			sample++;
	}
}

/* need_overdue: its reason while open is "<category> by HH:MM" or
 * "<category> unassigned <limit>" (rules.c); once resolved, the word. */
static void
need_text(const struct alert *a, char *buf, size_t len)
{
	const char *sp = strchr(a->reason, ' '), *what = sp ? sp + 1 : "";
	const char *id = after_colon(a->subject);
	char hh[NORM_ID_MAX + 16];

	snprintf(hh, sizeof(hh), "%s%s", a->household[0] ? ", household " : "", a->household);
	if (a->state == ALERT_RESOLVED || !sp)
		snprintf(buf, len, "Need %s (household %s) was overdue: %s", id,
			 a->household[0] ? a->household : "?", a->reason);
	else if (strncmp(what, "by ", 3) == 0)
		snprintf(buf, len, "Need %s (%.*s%s) not delivered %s", id, (int)(sp - a->reason),
			 a->reason, hh, what);
	else if (strncmp(what, "unassigned ", 11) == 0)
		snprintf(buf, len, "Need %s (%.*s%s) not assigned within %s", id,
			 (int)(sp - a->reason), a->reason, hh, what + 11);
	else
		snprintf(buf, len, "Need %s (%.*s%s) overdue: %s", id, (int)(sp - a->reason),
			 a->reason, hh, what);
}

void
alerts_text(const struct alert *a, char *buf, size_t len)
{
	char t[16], who[160];

	if (alert_state_is_aggregate(a)) {
		char n[16], ids[ALERT_SAMPLE_MAX];

		format_count(a->distinct, n, sizeof(n));
		sample_ids(a->sample, ids, sizeof(ids));
		snprintf(buf, len, "%s: %s distinct %s past the bound of open alerts (e.g. %s)",
			 alert_state_kind_name(a->kind), n, alert_state_kind(a->kind)->noun, ids);
		return;
	}
	ids(a, who, sizeof(who));
	if (a->temp_dc != TEMP_NONE)
		temp_format(a->temp_dc, t, sizeof(t));
	switch (a->kind) {
	case KIND_FEVER:
		if (a->gate[0])
			snprintf(buf, len, "Fever %s \u00b0C at gate %s%s", t, a->gate, who);
		else
			snprintf(buf, len, "Fever %s \u00b0C at the home check of household %s", t,
				 a->household);
		break;
	case KIND_ISOLATION_OVERDUE:
		snprintf(buf, len, "Isolation check overdue for %s of household %s",
			 strncmp(a->subject, "person:", 7) == 0 ? after_colon(a->subject) :
								  "everyone",
			 a->household);
		break;
	case KIND_ISOLATION_SYMPTOM:
		snprintf(buf, len, "Symptoms reported in isolation by household %s: %s",
			 a->household, a->reason);
		break;
	case KIND_ISOLATION_BREACH:
		snprintf(buf, len,
			 "Household %s is in isolation but its card %s went out at gate %s",
			 a->household, a->card, a->gate);
		break;
	case KIND_SEALED_GATE:
		snprintf(buf, len, "Traffic at sealed gate %s%s%s", a->gate,
			 a->reason[0] && !a->card[0] ? ": " : "", a->card[0] ? who : a->reason);
		break;
	case KIND_GATE_SILENT:
		snprintf(buf, len, "Gate %s terminal silent: no message for a while", a->gate);
		break;
	case KIND_UNKNOWN_CARD:
		snprintf(buf, len, "Unknown card %s at gate %s (%s)", a->card, a->gate,
			 a->reason[0] ? a->reason : "unregistered");
		break;
	case KIND_EXIT_QUOTA:
		snprintf(buf, len, "Household %s went out more often than its quota (gate %s)",
			 a->household, a->gate);
		break;
	case KIND_DISINFECTION_OVERDUE:
		snprintf(buf, len, "Zone %s not disinfected within its interval", a->zone);
		break;
	case KIND_HOTLINE_UNRESOLVED:
		snprintf(buf, len, "Urgent hotline call %s%s%s still unresolved", a->call_id,
			 a->household[0] ? " from household " : "", a->household);
		break;
	case KIND_BACKLOG:
		snprintf(buf, len, "cordond %s: %s", after_colon(a->subject), a->reason);
		break;
	case KIND_CLIENT_ID_CONFLICT:
		snprintf(buf, len, "Another MQTT client is using client id %s: %s",
			 after_colon(a->subject), a->reason);
		break;
	case KIND_CARD_EXCEPTION: {
		/* sample: "<n> <allowed> <card> ..." (rules.c; none when restored) */
		char cards[ALERT_SAMPLE_MAX];
		unsigned n, allowed;
		int off = 0;

		if (sscanf(a->sample, "%u %u %n", &n, &allowed, &off) == 2 && off > 0) {
			sample_ids(a->sample + off, cards, sizeof(cards));
			snprintf(buf, len, "Household %s holds %u ordinary cards (%u allowed): %s",
				 a->household, n, allowed, cards);
		} else
			snprintf(buf, len, "Household %s holds more ordinary cards than allowed",
				 a->household);
		break;
	}
	case KIND_NEED_OVERDUE: need_text(a, buf, len); break;
	case KIND_CALL_MISSED:
		if (a->state == ALERT_RESOLVED)
			snprintf(buf, len, "Household %s under isolation missed its daily call: %s",
				 a->household, a->reason);
		else
			snprintf(buf, len,
				 "Household %s under isolation not reached by today's %s call",
				 a->household, a->reason);
		break;
	case KIND_DROPOFF_UNCOLLECTED:
		if (a->state == ALERT_RESOLVED)
			snprintf(buf, len,
				 "Delivery for household %s was late at the drop-off point: %s",
				 a->household, a->reason);
		else
			snprintf(
				buf, len,
				"Delivery for household %s uncollected at the drop-off point for %s",
				a->household, a->reason);
		break;
	default: snprintf(buf, len, "%s %s", alert_state_kind_name(a->kind), a->subject);
	}
}

static json_t *
time_value(int64_t us)
{
	char buf[64];

	if (us == 0)
		return json_null();
	normalize_format_time(us, buf, sizeof(buf));
	/* "YYYY-MM-DD HH:MM:SS.ffffff+00" -> RFC 3339 with milliseconds */
	buf[10] = 'T';
	buf[23] = 'Z';
	buf[24] = '\0';
	return json_string(buf);
}

static json_t *
str_or_null(const char *s)
{
	return s[0] ? json_string(s) : json_null();
}

char *
alerts_render(const struct alert_transition *tr, const struct registry_snapshot *reg)
{
	const struct alert *a = &tr->a;
	struct reg_household hh;
	const struct reg_household *h =
		a->household[0] && reg ? registry_household(reg, a->site, a->household, &hh) : NULL;
	char text[384];
	json_t *o;
	char *s;

	alerts_text(a, text, sizeof(text));
	o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "alert_id", json_string(a->alert_id));
	json_object_set_new(o, "kind", json_string(alert_state_kind_name(a->kind)));
	json_object_set_new(o, "severity", json_string(alert_state_severity_name(a->severity)));
	json_object_set_new(o, "state", json_string(alert_state_name(a->state)));
	json_object_set_new(o, "transition", json_string(tr->what));
	json_object_set_new(o, "site", json_string(a->site));
	json_object_set_new(o, "subject", json_string(a->subject));
	json_object_set_new(o, "raised_at", time_value(a->raised_us));
	json_object_set_new(o, "updated_at", time_value(a->updated_us));
	json_object_set_new(o, "resolved_at", time_value(a->resolved_us));
	json_object_set_new(o, "count", json_integer(a->count));
	json_object_set_new(o, "event_id", json_string(a->event_key));
	json_object_set_new(o, "gate", str_or_null(a->gate));
	json_object_set_new(o, "household", str_or_null(a->household));
	json_object_set_new(o, "building", h ? json_string(h->building) : json_null());
	json_object_set_new(o, "card", str_or_null(a->card));
	json_object_set_new(o, "zone", str_or_null(a->zone));
	json_object_set_new(o, "call_id", str_or_null(a->call_id));
	json_object_set_new(o, "temp_c",
			    a->temp_dc == TEMP_NONE ? json_null() : json_real(a->temp_dc / 10.0));
	if (a->state == ALERT_RESOLVED)
		json_object_set_new(o, "reason", json_string(a->reason));
	if (a->by[0])
		json_object_set_new(o, "by", json_string(a->by));
	if (alert_state_is_aggregate(a)) {
		json_t *sample = json_array();
		const char *p = a->sample;

		while (sample && *p) {
			size_t n = strcspn(p, " ");

			json_array_append_new(sample, json_stringn(p, n));
			p += n;
			p += strspn(p, " ");
		}
		json_object_set_new(o, "distinct", json_integer(a->distinct));
		json_object_set_new(o, "sample", sample ? sample : json_null());
	}
	json_object_set_new(o, "text", json_string(text));
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4));
	json_decref(o);
	return s;
}

char *
alerts_reject_notice(const char *topic, size_t topic_len, const char *reason, const char *detail,
		     const void *payload, size_t len)
{
	size_t n = len > 256 ? 256 : len;
	json_t *o = json_object(), *ex;
	char buf[256];
	char *s;

	if (!o)
		return NULL;
	/* Phone and ID numbers masked (normalize_mask_digits). */
	memcpy(buf, payload, n);
	normalize_mask_digits(buf, n);
	/* Cut back to a character boundary; binary becomes null. */
	ex = json_stringn(buf, n);
	while (!ex && n > 0 && len > 256 && n > 252)
		ex = json_stringn(buf, --n);
	json_object_set_new(o, "topic", json_stringn(topic, topic_len));
	json_object_set_new(o, "reason", json_string(reason));
	json_object_set_new(o, "detail", json_string(detail));
	json_object_set_new(o, "excerpt", ex ? ex : json_null());
	json_object_set_new(o, "length", json_integer((json_int_t)len));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* What a shortened message may lose, first to last: fields the SPEC 4
 * message does not list (SPEC 4 names alert_id, kind, severity, state,
 * site, subject, raised_at, updated_at, count, event_id, gate, household,
 * temp_c and text), then a reject notice's excerpt and detail (SPEC 2:
 * topic and reason are what an integrator needs). */
static const char *const optional_keys[] = {
	"building",    "zone",	 "call_id",    "card",	  "by",
	"resolved_at", "reason", "transition", "excerpt", "detail",
};

/* The compact JSON of `o` when it fits in `max` bytes, else NULL. */
static char *
dump_if_fits(json_t *o, size_t max, size_t *ret_len)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4));

	if (s && strlen(s) <= max) {
		*ret_len = strlen(s);
		return s;
	}
	free(s);
	return NULL;
}

char *
alerts_shorten(const void *payload, size_t len, size_t max, size_t *ret_len)
{
	json_t *o = json_loadb(payload, len, JSON_REJECT_DUPLICATES, NULL), *text;
	char *s = NULL;

	if (!json_is_object(o))
		goto out;
	json_object_set_new(o, "shortened", json_true());
	for (size_t i = 0; i < sizeof(optional_keys) / sizeof(optional_keys[0]); i++) {
		if (json_object_del(o, optional_keys[i]) == 0 &&
		    (s = dump_if_fits(o, max, ret_len)) != NULL)
			goto out;
	}
	if ((s = dump_if_fits(o, max, ret_len)) != NULL)
		goto out;
	/* Last, the sentence for people: cut at a character boundary, with
	 * an ellipsis, as far as needed (the ids stay whole). */
	text = json_object_get(o, "text");
	if (json_is_string(text)) {
		char buf[512];
		size_t have = json_string_length(text), n, over;

		s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4));
		over = s ? strlen(s) - max : 0;
		free(s);
		s = NULL;
		if (have > sizeof(buf) - 4)
			have = sizeof(buf) - 4;
		memcpy(buf, json_string_value(text), have);
		buf[have] = '\0';
		/* JSON escapes can make the cut worth more than `over`: cut
		 * further until it fits or the text is only the ellipsis. */
		for (n = have > over + 3 ? have - over - 3 : 0;; n = n > 8 ? n - 8 : 0) {
			while (n > 0 && ((unsigned char)buf[n] & 0xC0) == 0x80)
				n--;
			memcpy(buf + n, "\xe2\x80\xa6", 4); /* U+2026 and the NUL */
			json_object_set_new(o, "text", json_string(buf));
			if ((s = dump_if_fits(o, max, ret_len)) != NULL || n == 0)
				break;
		}
	}
out:
	json_decref(o);
	return s;
}
