/* Unit tests of the normalizer: canonical gate events, every reject
 * reason, time parsing, rounding, flags and event keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "normalize.h"

#define RECV_US 1581849120000000LL	/* 2020-02-16T10:32:00Z */

static const struct norm_context ctx = {
	.topic_root = "cordon",
	.max_clock_skew_us = 600LL * 1000000,
	.tz_offset_s = 8 * 3600,
};

static struct event evs[NORM_MAX_EVENTS];

static int
run(const char *topic, const char *payload, size_t len, size_t orig, struct norm_result *res)
{
	struct norm_input in = {
		.topic = topic, .topic_len = strlen(topic),
		.payload = (const uint8_t *)payload, .payload_len = len,
		.orig_len = orig ? orig : len, .received_us = RECV_US,
	};

	return normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, res);
}

static const char *
reason_of(const char *topic, const char *payload)
{
	struct norm_result res;

	assert_int_equal(run(topic, payload, strlen(payload), 0, &res), 0);
	return res.reason ? res.reason : "accepted";
}

#define GATE "cordon/s1/gate/G03/event"
#define GOOD "{\"id\":\"G03-000123\",\"ts\":\"2020-02-16T18:32:00.123+08:00\"," \
	"\"card\":\"C-0412\",\"person\":\"P-10233\",\"direction\":\"in\",\"temp_c\":36.6,\"mask\":true}"

static void
canonical_event(void **state)
{
	struct norm_result res;
	char ts[40];

	(void)state;
	assert_int_equal(run(GATE, GOOD, strlen(GOOD), 0, &res), 0);
	assert_null(res.reason);
	assert_int_equal(res.nevents, 1);
	assert_string_equal(evs[0].key, "s1/G03/G03-000123");
	assert_string_equal(evs[0].site, "s1");
	assert_string_equal(evs[0].gate, "G03");
	assert_string_equal(evs[0].card, "C-0412");
	assert_string_equal(evs[0].person, "P-10233");
	assert_int_equal(evs[0].direction, DIR_IN);
	assert_int_equal(evs[0].temp_dc, 366);
	assert_int_equal(evs[0].mask, 1);
	assert_int_equal(evs[0].flags, 0);
	assert_string_equal(evs[0].vendor, "canonical");
	normalize_format_time(evs[0].device_us, ts, sizeof(ts));
	assert_string_equal(ts, "2020-02-16 10:32:00.123000+00");
	assert_true(evs[0].rule_us == evs[0].device_us);
}

static void
reject_reasons(void **state)
{
	static const struct { const char *topic, *payload, *reason; } cases[] = {
		{ GATE, "", "empty_payload" },
		{ GATE, "card=C-0412 temp=36.6", "not_json" },
		{ GATE, "[1, \"garbage\"]", "not_object" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\"}", "missing_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":{\"v\":1}}", "bad_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":\"36.6\"}", "bad_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":1e300}", "bad_temperature" },
		{ GATE, "{\"temp_c\":36.6}", "missing_time" },
		{ GATE, "{\"ts\":\"tuesday\",\"temp_c\":36.6}", "bad_time" },
		{ GATE, "{\"ts\":\"2020-02-30T18:32:00+08:00\",\"temp_c\":36.6}", "bad_time" },
		{ GATE, "{\"ts\":true,\"temp_c\":36.6}", "bad_time" },
		{ GATE, "{\"ts\":1581849120,\"temp_c\":36.6,\"direction\":\"up\"}", "bad_direction" },
		{ GATE, "{\"ts\":1581849120,\"temp_c\":36.6,\"gate\":\"G04\"}", "device_mismatch" },
		{ GATE, "{\"ts\":1581849120,\"temp_c\":36.6,\"card\":[1]}", "bad_field" },
		{ GATE, "{\"ts\":1581849120,\"temp_c\":36.6,\"ts\":1}", "not_json" },
		{ "cordon/s1/gate/G03", "{}", "unknown_topic" },
		{ "other/s1/gate/G03/event", "{}", "unknown_topic" },
		{ "cordon/s 1/gate/G03/event", "{}", "unknown_topic" },
		{ "cordon/s1/gate/G+3/event", "{}", "unknown_topic" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = reason_of(cases[i].topic, cases[i].payload);

		if (strcmp(got, cases[i].reason) != 0)
			fail_msg("case %zu (%s): got %s, want %s", i, cases[i].payload, got,
				 cases[i].reason);
	}
}

static void
invalid_utf8_and_oversize(void **state)
{
	static const char bad[] = "{\"ts\":1581849120,\"temp_c\":36.6,\"card\":\"C-\xff\xfe\"}";
	static const char overlong[] = "{\"ts\":1581849120,\"temp_c\":36.6,\"card\":\"\xc0\xaf\"}";
	static const char surrogate[] = "{\"ts\":1581849120,\"temp_c\":36.6,\"card\":\"\xed\xa0\x80\"}";
	struct norm_result res;

	(void)state;
	assert_string_equal(reason_of(GATE, bad), "invalid_utf8");
	assert_string_equal(reason_of(GATE, overlong), "invalid_utf8");
	assert_string_equal(reason_of(GATE, surrogate), "invalid_utf8");
	assert_int_equal(run(GATE, GOOD, strlen(GOOD), 1 << 20, &res), 0);
	assert_string_equal(res.reason, "payload_too_large");
}

static void
temperatures(void **state)
{
	static const struct { const char *temp; int16_t dc; unsigned flags; } cases[] = {
		{ "36.6", 366, 0 }, { "36.64", 366, 0 }, { "36.65", 367, 0 },
		{ "37.299999", 373, 0 }, { "98.9", 989, FLAG_IMPLAUSIBLE },
		{ "3.66", 37, FLAG_IMPLAUSIBLE }, { "29.9", 299, FLAG_IMPLAUSIBLE },
		{ "30.0", 300, 0 }, { "45.0", 450, 0 }, { "45.1", 451, FLAG_IMPLAUSIBLE },
		{ "null", TEMP_NONE, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char payload[128];
		struct norm_result res;

		snprintf(payload, sizeof(payload), "{\"ts\":1581849120,\"temp_c\":%s}", cases[i].temp);
		assert_int_equal(run(GATE, payload, strlen(payload), 0, &res), 0);
		assert_null(res.reason);
		if (evs[0].temp_dc != cases[i].dc || evs[0].flags != cases[i].flags)
			fail_msg("temp %s: got %d flags %u", cases[i].temp, evs[0].temp_dc, evs[0].flags);
	}
}

static void
times(void **state)
{
	static const struct { const char *s; int64_t us; } ok[] = {
		{ "2020-02-16T18:32:00.123+08:00", 1581849120123000LL },
		{ "2020-02-16T10:32:00Z", 1581849120000000LL },
		{ "2020-02-16 10:32:00.5+0000", 1581849120500000LL },
		{ "2020-02-16T18:32:00", 1581849120000000LL },	/* naive: site zone +08:00 */
		{ "2020-02-16T18:32", 1581849120000000LL },
		{ "2020-02-29T00:00:00Z", 1582934400000000LL },
	};
	static const char *const bad[] = {
		"2020-02-16", "2020-13-01T00:00:00Z", "2019-02-29T00:00:00Z",
		"2020-02-16T25:00:00Z", "2020-02-16T10:32:00+25:00", "2020-02-16T10:32:00Zjunk", "",
	};
	int64_t us;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(normalize_parse_time(ok[i].s, 8 * 3600, &us), 0);
		if (us != ok[i].us)
			fail_msg("%s: got %lld", ok[i].s, (long long)us);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (normalize_parse_time(bad[i], 0, &us) == 0)
			fail_msg("%s parsed", bad[i]);
}

static void
epoch_seconds_millis_and_skew(void **state)
{
	struct norm_result res;
	const char *ms = "{\"ts\":1581849120123,\"temp_c\":36.6}";
	const char *skewed = "{\"ts\":\"2020-02-16T11:32:00Z\",\"temp_c\":38.6}";

	(void)state;
	assert_int_equal(run(GATE, ms, strlen(ms), 0, &res), 0);
	assert_true(evs[0].device_us == 1581849120123000LL);
	assert_int_equal(evs[0].flags, 0);

	/* One hour ahead of the receive time: flagged, rules use receive time. */
	assert_int_equal(run(GATE, skewed, strlen(skewed), 0, &res), 0);
	assert_int_equal(evs[0].flags, FLAG_CLOCK_SKEW);
	assert_true(evs[0].rule_us == RECV_US);
	assert_true(evs[0].device_us == RECV_US + 3600LL * 1000000);
}

static void
hash_keys_are_stable(void **state)
{
	const char *p = "{\"ts\":1581849120,\"temp_c\":36.6}";
	const char *q = "{\"ts\":1581849120,\"temp_c\":36.7}";
	struct norm_result res;
	char k1[NORM_KEY_MAX], k2[NORM_KEY_MAX];

	(void)state;
	assert_int_equal(run(GATE, p, strlen(p), 0, &res), 0);
	snprintf(k1, sizeof(k1), "%s", evs[0].key);
	assert_true(strncmp(k1, "h:", 2) == 0);
	assert_int_equal(run(GATE, p, strlen(p), 0, &res), 0);
	assert_string_equal(evs[0].key, k1);
	assert_int_equal(run(GATE, q, strlen(q), 0, &res), 0);
	snprintf(k2, sizeof(k2), "%s", evs[0].key);
	assert_string_not_equal(k1, k2);
	assert_int_equal(run("cordon/s1/gate/G04/event", p, strlen(p), 0, &res), 0);
	assert_string_not_equal(evs[0].key, k1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(canonical_event),
		cmocka_unit_test(reject_reasons),
		cmocka_unit_test(invalid_utf8_and_oversize),
		cmocka_unit_test(temperatures),
		cmocka_unit_test(times),
		cmocka_unit_test(epoch_seconds_millis_and_skew),
		cmocka_unit_test(hash_keys_are_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
