/* alerts.c - the alert message (SPEC section 4). Outbound messages carry
 * household, building, gate and card ids only: never names, phones or ID
 * numbers. */
#include "alerts.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "normalize.h"

void
alerts_topic(const char *root, const struct alert *a, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s/alert/%s", root, a->site, a->kind);
}

void
alerts_text(const struct alert *a, char *buf, size_t len)
{
	int t = a->temp_dc < 0 ? -a->temp_dc : a->temp_dc;

	snprintf(buf, len, "%sFever %s%d.%d \u00b0C at gate %s%s%s%s",
		 a->severity == SEVERITY_CRITICAL ? "Critical: " : "",
		 a->temp_dc < 0 ? "-" : "", t / 10, t % 10, a->gate,
		 a->card[0] ? " (card " : "", a->card, a->card[0] ? ")" : "");
}

static json_t *
time_value(int64_t us)
{
	char buf[64];

	normalize_format_time(us, buf, sizeof(buf));
	/* "YYYY-MM-DD HH:MM:SS.ffffff+00" -> RFC 3339 with milliseconds */
	buf[10] = 'T';
	buf[23] = 'Z';
	buf[24] = '\0';
	return json_string(buf);
}

char *
alerts_render(const struct alert *a)
{
	char text[256];
	json_t *o;
	char *s;

	alerts_text(a, text, sizeof(text));
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:s, s:s, s:s*, s:o, s:s}",
		      "alert_id", a->alert_id,
		      "kind", a->kind,
		      "severity", rules_severity_name(a->severity),
		      "state", a->state,
		      "site", a->site,
		      "subject", a->subject,
		      "raised_at", time_value(a->raised_us),
		      "updated_at", time_value(a->updated_us),
		      "count", (int)a->count,
		      "event_id", a->event_key,
		      "gate", a->gate,
		      "card", a->card[0] ? a->card : NULL,
		      "temp_c", a->temp_dc == TEMP_NONE ? json_null() : json_real(a->temp_dc / 10.0),
		      "text", text);
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(4));
	json_decref(o);
	return s;
}
