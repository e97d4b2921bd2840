/* test_alerts.c - alerts_shorten: what an alert loses to fit a broker's
 * maximum packet size (SPEC 4 lists the fields that stay). */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alerts.h"

static const char ALERT[] =
	"{\"alert_id\":\"756d61fdd57a584f485f8d526296bb84\",\"kind\":\"fever\","
	"\"severity\":\"critical\",\"state\":\"raised\",\"transition\":\"raised\",\"site\":\"s1\","
	"\"subject\":\"person:P-1\",\"raised_at\":\"2026-11-30T11:02:08.491Z\","
	"\"updated_at\":\"2026-11-30T11:02:08.491Z\",\"resolved_at\":null,\"count\":1,"
	"\"event_id\":\"s1/G03/R-1\",\"gate\":\"G03\",\"household\":null,\"building\":null,"
	"\"card\":\"C-0412\",\"zone\":null,\"call_id\":null,\"temp_c\":38.6,"
	"\"text\":\"Fever 38.6 \xc2\xb0"
	"C at gate G03 (card C-0412) \xc2\xb0\xc2\xb0\xc2\xb0\xc2\xb0\"}";

static const char *const required[] = {
	"alert_id",   "kind",  "severity", "state", "site",	 "subject", "raised_at",
	"updated_at", "count", "event_id", "gate",  "household", "temp_c",  "text",
};

static json_t *
check_shortened(const char *s, size_t len, size_t max)
{
	json_t *o;

	assert_non_null(s);
	assert_int_equal(strlen(s), len);
	assert_true(len <= max);
	o = json_loads(s, 0, NULL);
	assert_non_null(o);
	assert_true(json_is_true(json_object_get(o, "shortened")));
	for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		assert_non_null(json_object_get(o, required[i]));
	return o;
}

static void
test_drops_optional_fields_first(void **state)
{
	size_t len, full = strlen(ALERT);
	char *s;
	json_t *o;

	(void)state;
	/* Room for all but a few bytes: the first optional fields go. */
	s = alerts_shorten(ALERT, full, full - 10, &len);
	o = check_shortened(s, len, full - 10);
	assert_null(json_object_get(o, "building"));
	assert_non_null(json_object_get(o, "card")); /* not needed yet */
	assert_string_equal(json_string_value(json_object_get(o, "text")),
			    "Fever 38.6 \xc2\xb0"
			    "C at gate G03 (card C-0412) \xc2\xb0\xc2\xb0\xc2\xb0\xc2\xb0");
	json_decref(o);
	free(s);
}

static void
test_cuts_text_last(void **state)
{
	size_t len, full = strlen(ALERT), max;
	char *s;
	json_t *o;
	const char *t;

	(void)state;
	assert_int_equal(full, 452); /* 369 without the optional fields, 323 with text "…" */
	/* Every optional field gone is not enough: the text is cut at a
	 * whole character, with an ellipsis. */
	for (max = 365; max >= 325; max--) {
		s = alerts_shorten(ALERT, full, max, &len);
		o = check_shortened(s, len, max);
		assert_null(json_object_get(o, "card"));
		assert_null(json_object_get(o, "transition"));
		t = json_string_value(json_object_get(o, "text"));
		assert_non_null(t); /* jansson refuses invalid UTF-8 */
		assert_true(strlen(t) >= 3 && strcmp(t + strlen(t) - 3, "\xe2\x80\xa6") == 0);
		json_decref(o);
		free(s);
	}
}

static void
test_cannot_fit(void **state)
{
	size_t len = 0;

	(void)state;
	/* The required fields alone are over 200 bytes. */
	assert_null(alerts_shorten(ALERT, strlen(ALERT), 200, &len));
	/* Not a JSON object: nothing to leave out. */
	assert_null(alerts_shorten("online", 6, 3, &len));
}

/* card_exception's text: from the counts and ids rules.c leaves in the
 * sample; a restored alert (no sample) says less. */
static void
test_card_exception_text(void **state)
{
	struct alert a;
	char text[256];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.kind = KIND_CARD_EXCEPTION;
	a.temp_dc = TEMP_NONE;
	strcpy(a.subject, "household:3-2-401");
	strcpy(a.household, "3-2-401");
	strcpy(a.sample, "2 1 C-0412 C-0413");
	alerts_text(&a, text, sizeof(text));
	assert_string_equal(text,
			    "Household 3-2-401 holds 2 ordinary cards (1 allowed): C-0412, C-0413");
	a.sample[0] = '\0';
	alerts_text(&a, text, sizeof(text));
	assert_string_equal(text, "Household 3-2-401 holds more ordinary cards than allowed");
}

/* The people work's sentences (issue 16): ids only, the details the rule
 * put in `reason` while open, the resolve's word once resolved. */
static void
test_people_texts(void **state)
{
	struct alert a;
	char buf[384];

	(void)state;
	memset(&a, 0, sizeof(a));
	a.temp_dc = TEMP_NONE;
	a.kind = KIND_NEED_OVERDUE;
	snprintf(a.subject, sizeof(a.subject), "need:N-12");
	snprintf(a.household, sizeof(a.household), "3-2-401");
	snprintf(a.reason, sizeof(a.reason), "groceries by 18:00");
	alerts_text(&a, buf, sizeof(buf));
	assert_string_equal(buf, "Need N-12 (groceries, household 3-2-401) not delivered by 18:00");
	snprintf(a.reason, sizeof(a.reason), "other unassigned 2 h");
	alerts_text(&a, buf, sizeof(buf));
	assert_string_equal(buf, "Need N-12 (other, household 3-2-401) not assigned within 2 h");
	a.state = ALERT_RESOLVED;
	snprintf(a.reason, sizeof(a.reason), "delivered");
	alerts_text(&a, buf, sizeof(buf));
	assert_string_equal(buf, "Need N-12 (household 3-2-401) was overdue: delivered");
	a.state = ALERT_RAISED;
	a.kind = KIND_CALL_MISSED;
	snprintf(a.subject, sizeof(a.subject), "household:3-2-401");
	snprintf(a.reason, sizeof(a.reason), "20:00");
	alerts_text(&a, buf, sizeof(buf));
	assert_string_equal(buf,
			    "Household 3-2-401 under isolation not reached by today's 20:00 call");
	a.kind = KIND_DROPOFF_UNCOLLECTED;
	snprintf(a.reason, sizeof(a.reason), "2 h");
	alerts_text(&a, buf, sizeof(buf));
	assert_string_equal(
		buf, "Delivery for household 3-2-401 uncollected at the drop-off point for 2 h");
}
int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drops_optional_fields_first),
		cmocka_unit_test(test_cuts_text_last),
		cmocka_unit_test(test_cannot_fit),
		cmocka_unit_test(test_card_exception_text),
		cmocka_unit_test(test_people_texts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
