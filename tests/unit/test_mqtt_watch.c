/* Unit tests of mqtt_watch.c: reason codes in words, and the window of
 * the client_id_conflict alert. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mqtt_watch.h"

#define MIN (60 * 1000)

static void
reason_words(void **state)
{
	(void)state;
	/* The codes a SUBACK refuses with, and the DISCONNECTs we explain. */
	assert_string_equal(mqtt_reason_text(0x80), "unspecified error");
	assert_string_equal(mqtt_reason_text(0x83), "implementation specific error");
	assert_string_equal(mqtt_reason_text(0x87), "not authorized");
	assert_string_equal(mqtt_reason_text(0x8F), "topic filter invalid");
	assert_string_equal(mqtt_reason_text(0x91), "packet identifier in use");
	assert_string_equal(mqtt_reason_text(0x97), "quota exceeded");
	assert_string_equal(mqtt_reason_text(0x9E), "shared subscriptions not supported");
	assert_string_equal(mqtt_reason_text(0xA1), "subscription identifiers not supported");
	assert_string_equal(mqtt_reason_text(0xA2), "wildcard subscriptions not supported");
	assert_string_equal(mqtt_reason_text(0x8E), "session taken over");
	assert_string_equal(mqtt_reason_text(0x8B), "server shutting down");
	assert_string_equal(mqtt_reason_text(0x9C), "use another server");
	assert_string_equal(mqtt_reason_text(0x9D), "server moved");
	assert_string_equal(mqtt_reason_text(0x89), "server busy");
	assert_string_equal(mqtt_reason_text(0x8D), "keep alive timeout");
	assert_string_equal(mqtt_reason_text(0x98), "administrative action");
	/* Granted QoS and undefined codes have no words. */
	assert_null(mqtt_reason_text(0x01));
	assert_null(mqtt_reason_text(0x02));
	assert_null(mqtt_reason_text(0x7F));
	assert_null(mqtt_reason_text(0xFF));
	/* The metric's series: every index maps back to its code. */
	for (int i = 0; i < MQTT_REASONS; i++) {
		int code = mqtt_reason_code_at(i);

		assert_int_equal(mqtt_reason_index(code), i);
		assert_non_null(mqtt_reason_text(code));
		assert_null(strchr(mqtt_reason_text(code), '"'));
	}
	assert_int_equal(mqtt_reason_code_at(MQTT_REASONS), -1);
	assert_int_equal(mqtt_reason_index(0x7F), -1);
}

static void
conflict_needs_three_in_ten_minutes(void **state)
{
	struct mqtt_conflict c;
	int64_t t = 1000000;

	(void)state;
	mqtt_conflict_init(&c, t);
	assert_int_equal(mqtt_conflict_update(&c, 0, t), 0);
	/* Two, then the third 11 minutes after the first: not yet. */
	assert_int_equal(mqtt_conflict_update(&c, 1, t), 0);
	assert_int_equal(mqtt_conflict_update(&c, 1, t + 5 * MIN), 0);
	assert_int_equal(mqtt_conflict_update(&c, 1, t + 11 * MIN), 0);
	assert_int_equal(mqtt_conflict_recent(&c, t + 11 * MIN), 2);
	/* A fourth within ten minutes of the second: raised. */
	assert_int_equal(mqtt_conflict_update(&c, 1, t + 12 * MIN), 1);
	assert_int_equal(mqtt_conflict_recent(&c, t + 12 * MIN), 3);
	/* Stays while takeovers come, and for the quiet period after the last. */
	assert_int_equal(mqtt_conflict_update(&c, 0, t + 21 * MIN), 1);
	assert_int_equal(mqtt_conflict_update(&c, 0, t + 22 * MIN - 1), 1);
	assert_int_equal(mqtt_conflict_update(&c, 0, t + 22 * MIN), 0);
	assert_int_equal(c.seen, 4);
}

static void
conflict_several_at_once(void **state)
{
	struct mqtt_conflict c;
	int64_t t = 5;

	(void)state;
	/* Three noted in one look (a burst between two ticks). */
	mqtt_conflict_init(&c, t);
	assert_int_equal(mqtt_conflict_update(&c, 3, t + 1), 1);
	assert_int_equal(mqtt_conflict_update(&c, 2, t + 2 * MIN), 1);
	assert_int_equal(mqtt_conflict_update(&c, 0, t + 12 * MIN - 1), 1);
	assert_int_equal(mqtt_conflict_update(&c, 0, t + 12 * MIN), 0);
}

static void
conflict_restored_alert_ends_after_quiet(void **state)
{
	struct mqtt_conflict c;

	(void)state;
	/* Nothing seen since the start: over once the quiet period has passed. */
	mqtt_conflict_init(&c, 1000);
	c.active = 1; /* as if restored open */
	assert_int_equal(mqtt_conflict_update(&c, 0, 1000 + MQTT_CONFLICT_QUIET_MS - 1), 1);
	assert_int_equal(mqtt_conflict_update(&c, 0, 1000 + MQTT_CONFLICT_QUIET_MS), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reason_words),
		cmocka_unit_test(conflict_needs_three_in_ten_minutes),
		cmocka_unit_test(conflict_several_at_once),
		cmocka_unit_test(conflict_restored_alert_ends_after_quiet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
