/* rules.c - the alert rules (pure). */
#include "rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

void
rules_config_from(struct rules_config *rc, double fever_c, double critical_c)
{
	rc->fever_dc = (int16_t)(fever_c * 10.0 + 0.5);
	rc->critical_dc = (int16_t)(critical_c * 10.0 + 0.5);
}

const char *
rules_severity_name(enum alert_severity s)
{
	return s == SEVERITY_CRITICAL ? "critical" : "warning";
}

void
rules_alert_id(const char *site, const char *kind, const char *subject,
	       const char *event_key, char ret_id[33])
{
	XXH3_state_t st;
	XXH128_hash_t h;
	const char *parts[] = { site, kind, subject, event_key };

	XXH3_128bits_reset(&st);
	for (size_t i = 0; i < 4; i++)
		XXH3_128bits_update(&st, parts[i], strlen(parts[i]) + 1);
	h = XXH3_128bits_digest(&st);
	snprintf(ret_id, 33, "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
}

/* Subject of a fever: the person, else the card, else the gate and event. */
static void
fever_subject(const struct event *ev, char *buf, size_t len)
{
	if (ev->person[0])
		snprintf(buf, len, "person:%s", ev->person);
	else if (ev->card[0])
		snprintf(buf, len, "card:%s", ev->card);
	else
		snprintf(buf, len, "gate:%s", ev->gate);
}

int
rules_gate_event(const struct rules_config *rc, const struct event *ev,
		 struct alert *ret)
{
	if (ev->type != EVENT_GATE || ev->temp_dc == TEMP_NONE || (ev->flags & FLAG_IMPLAUSIBLE) ||
	    ev->temp_dc < rc->fever_dc)
		return 0;
	memset(ret, 0, sizeof(*ret));
	ret->kind = "fever";
	ret->state = "raised";
	ret->severity = ev->temp_dc >= rc->critical_dc ? SEVERITY_CRITICAL : SEVERITY_WARNING;
	snprintf(ret->site, sizeof(ret->site), "%s", ev->site);
	fever_subject(ev, ret->subject, sizeof(ret->subject));
	snprintf(ret->gate, sizeof(ret->gate), "%s", ev->gate);
	snprintf(ret->card, sizeof(ret->card), "%s", ev->card);
	snprintf(ret->event_key, sizeof(ret->event_key), "%s", ev->key);
	ret->temp_dc = ev->temp_dc;
	ret->raised_us = ret->updated_us = ev->rule_us;
	ret->count = 1;
	rules_alert_id(ret->site, ret->kind, ret->subject, ret->event_key, ret->alert_id);
	return 1;
}
