/* notifier_alert.c - an alert message as cordon-notify reads it
 * (docs/alerts.md, "The message"), the names of its transitions and
 * languages, and route matching. Pure: no I/O. */
#include "notifier.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const transition_names[NTR_COUNT] = {
	[NTR_RAISED] = "raised",     [NTR_UPDATED] = "updated",	  [NTR_REMIND] = "remind",
	[NTR_ESCALATE] = "escalate", [NTR_RESOLVED] = "resolved",
};

const char *
notifier_transition_name(enum notifier_transition t)
{
	return (unsigned)t < NTR_COUNT ? transition_names[t] : "?";
}

int
notifier_transition_parse(const char *s, enum notifier_transition *ret)
{
	for (int t = 0; t < NTR_COUNT; t++)
		if (strcmp(s, transition_names[t]) == 0) {
			*ret = (enum notifier_transition)t;
			return 0;
		}
	return -EINVAL;
}

const char *
notifier_lang_name(enum notifier_lang l)
{
	return l == LANG_EN ? "en" : "zh-CN";
}

int
notifier_lang_parse(const char *s, enum notifier_lang *ret)
{
	if (strcasecmp(s, "zh-CN") == 0 || strcasecmp(s, "zh") == 0 ||
	    strcasecmp(s, "zh_CN") == 0) {
		*ret = LANG_ZH_CN;
		return 0;
	}
	if (strcasecmp(s, "en") == 0) {
		*ret = LANG_EN;
		return 0;
	}
	return -EINVAL;
}

static const char *
str_field(const json_t *msg, const char *name)
{
	const json_t *v = json_object_get(msg, name);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* "2020-02-16T10:32:00.123Z" (what cordond writes: UTC, milliseconds
 * optional) -> ms; 0 when absent or another shape. */
static int64_t
time_field(const json_t *msg, const char *name)
{
	const char *s = str_field(msg, name);
	struct tm tm = { 0 };
	int ms = 0, n = 0;

	if (!s ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
		return 0;
	s += n;
	if (*s == '.') {
		int scale = 100;

		for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10)
			ms += (*s - '0') * scale;
	}
	if (strcmp(s, "Z") != 0)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

int
notifier_alert_from_json(const json_t *msg, struct notifier_alert *a)
{
	const json_t *v;

	memset(a, 0, sizeof(*a));
	if (!json_is_object(msg))
		return -EINVAL;
	a->alert_id = str_field(msg, "alert_id");
	a->kind = str_field(msg, "kind");
	a->severity = str_field(msg, "severity");
	a->state = str_field(msg, "state");
	a->transition = str_field(msg, "transition");
	a->site = str_field(msg, "site");
	a->subject = str_field(msg, "subject");
	if (!a->alert_id || !a->kind || !a->severity || !a->state || !a->transition || !a->site ||
	    !a->subject)
		return -EINVAL;
	a->gate = str_field(msg, "gate");
	a->household = str_field(msg, "household");
	a->building = str_field(msg, "building");
	a->card = str_field(msg, "card");
	a->zone = str_field(msg, "zone");
	a->call_id = str_field(msg, "call_id");
	a->reason = str_field(msg, "reason");
	a->by = str_field(msg, "by");
	a->text = str_field(msg, "text");
	v = json_object_get(msg, "temp_c");
	if (json_is_number(v)) {
		a->temp_c = json_number_value(v);
		a->has_temp = true;
	}
	a->raised_at_ms = time_field(msg, "raised_at");
	a->resolved_at_ms = time_field(msg, "resolved_at");
	v = json_object_get(msg, "count");
	a->count = json_is_integer(v) ? json_integer_value(v) : 1;
	v = json_object_get(msg, "distinct");
	a->distinct = json_is_integer(v) ? json_integer_value(v) : 0;
	return 0;
}

static bool
list_matches(char *const *globs, const char *value)
{
	if (!globs)
		return true;
	for (; *globs; globs++)
		if (fnmatch(*globs, value, 0) == 0)
			return true;
	return false;
}

bool
notifier_route_matches(const struct route *r, const char *site, const char *kind,
		       const char *severity, const char *subject)
{
	return list_matches(r->sites, site) && list_matches(r->kinds, kind) &&
		list_matches(r->severities, severity) && list_matches(r->subjects, subject);
}
