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
#include "normalize_internal.h"

#define RECV_US 1581849120000000LL /* 2020-02-16T10:32:00Z */

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
		.topic = topic,
		.topic_len = strlen(topic),
		.payload = (const uint8_t *)payload,
		.payload_len = len,
		.orig_len = orig ? orig : len,
		.received_us = RECV_US,
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
#define GOOD                                                               \
	"{\"id\":\"G03-000123\",\"ts\":\"2020-02-16T18:32:00.123+08:00\"," \
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
	static const struct {
		const char *topic, *payload, *reason;
	} cases[] = {
		{ GATE, "", "empty_payload" },
		{ GATE, "card=C-0412 temp=36.6", "not_json" },
		{ GATE, "[1, \"garbage\"]", "not_object" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\"}", "missing_temperature" },
		/* no temp_c: a pass without a reading when it names a card or a
		 * person, else not a pass; temp_c null is kept whoever passed */
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"card\":\"C-1\"}", "accepted" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"person\":\"P-1\"}", "accepted" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"card\":\"\",\"person\":null}",
		  "missing_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"direction\":\"out\"}",
		  "missing_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":null}", "accepted" },
		{ GATE, "{\"ts\":1581849120,\"card\":[1]}", "bad_field" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":{\"v\":1}}",
		  "bad_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":\"36.6\"}", "accepted" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":\"\\t36.6\"}",
		  "accepted" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":\"36.6\\n\"}",
		  "bad_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":\"36.6 \\u00b0C\"}",
		  "bad_temperature" },
		{ GATE, "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":1e300}",
		  "temperature_out_of_range" },
		{ GATE, "{\"temp_c\":36.6}", "missing_time" },
		{ GATE, "{\"ts\":\"tuesday\",\"temp_c\":36.6}", "bad_time" },
		{ GATE, "{\"ts\":\"2020-02-30T18:32:00+08:00\",\"temp_c\":36.6}", "bad_time" },
		{ GATE, "{\"ts\":true,\"temp_c\":36.6}", "bad_time" },
		{ GATE, "{\"ts\":1581849120,\"temp_c\":36.6,\"direction\":\"up\"}",
		  "bad_direction" },
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
	static const char surrogate[] =
		"{\"ts\":1581849120,\"temp_c\":36.6,\"card\":\"\xed\xa0\x80\"}";
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
	static const struct {
		const char *temp;
		int16_t dc;
		unsigned flags;
	} cases[] = {
		{ "36.6", 366, 0 },
		{ "36.64", 366, 0 },
		{ "36.65", 367, 0 },
		{ "37.299999", 373, 0 },
		{ "98.9", 989, FLAG_IMPLAUSIBLE },
		{ "3.66", 37, FLAG_IMPLAUSIBLE },
		{ "29.9", 299, FLAG_IMPLAUSIBLE },
		{ "30.0", 300, 0 },
		{ "45.0", 450, 0 },
		{ "45.1", 451, FLAG_IMPLAUSIBLE },
		{ "null", TEMP_NONE, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char payload[128];
		struct norm_result res;

		snprintf(payload, sizeof(payload), "{\"ts\":1581849120,\"temp_c\":%s}",
			 cases[i].temp);
		assert_int_equal(run(GATE, payload, strlen(payload), 0, &res), 0);
		assert_null(res.reason);
		if (evs[0].temp_dc != cases[i].dc || evs[0].flags != cases[i].flags)
			fail_msg("temp %s: got %d flags %u", cases[i].temp, evs[0].temp_dc,
				 evs[0].flags);
	}
}

static void
times(void **state)
{
	static const struct {
		const char *s;
		int64_t us;
	} ok[] = {
		{ "2020-02-16T18:32:00.123+08:00", 1581849120123000LL },
		{ "2020-02-16T10:32:00Z", 1581849120000000LL },
		{ "2020-02-16 10:32:00.5+0000", 1581849120500000LL },
		{ "2020-02-16T18:32:00", 1581849120000000LL }, /* naive: site zone +08:00 */
		{ "2020-02-16T18:32", 1581849120000000LL },
		{ "2020-02-29T00:00:00Z", 1582934400000000LL },
	};
	static const char *const bad[] = {
		"2020-02-16",
		"2020-13-01T00:00:00Z",
		"2019-02-29T00:00:00Z",
		"2020-02-16T25:00:00Z",
		"2020-02-16T10:32:00+25:00",
		"2020-02-16T10:32:00Zjunk",
		"",
	};
	int64_t us;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(normalize_parse_time_ctx(&ctx, "s1", ok[i].s, &us, NULL), 0);
		if (us != ok[i].us)
			fail_msg("%s: got %lld", ok[i].s, (long long)us);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (normalize_parse_time_ctx(&ctx, "s1", bad[i], &us, NULL) == 0)
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

/* Issue 14.2: without a record id, the same payload delivered again later
 * (a second person at 36.6, a second "offline" will) is another event;
 * the same delivery read again from the spool is the same one. */
static void
keyless_repeats_are_new_events(void **state)
{
	static const char *const cases[][2] = {
		{ GATE, "36.6" },
		{ GATE, "{\"ts\":1581849120,\"temp_c\":36.6}" },
		{ "cordon/s1/gate/G03/status", "offline" },
		{ "cordon/s1/gate/G03/status", "{\"state\":\"offline\"}" },
	};
	struct norm_input in = { .received_us = RECV_US };
	struct norm_result res;
	char k1[NORM_KEY_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		in.topic = cases[i][0];
		in.topic_len = strlen(cases[i][0]);
		in.payload = (const uint8_t *)cases[i][1];
		in.payload_len = in.orig_len = strlen(cases[i][1]);
		in.received_us = RECV_US;
		assert_int_equal(normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, &res), 0);
		if (res.reason)
			fail_msg("%s on %s: %s (%s)", cases[i][1], cases[i][0], res.reason,
				 res.detail);
		snprintf(k1, sizeof(k1), "%s", evs[0].key);
		assert_int_equal(normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, &res), 0);
		assert_string_equal(evs[0].key, k1);
		in.received_us = RECV_US + 1;
		assert_int_equal(normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, &res), 0);
		assert_string_not_equal(evs[0].key, k1);
	}
}

/* The temp_c columns are numeric(4,1): every reading that rounds into
 * -999.9..999.9 is stored (flagged implausible outside 30-45), and what
 * rounds beyond is a reject of its own, decided here and not by a
 * PostgreSQL error that sends the whole batch row by row. */
static void
temperatures_within_the_column(void **state)
{
	static const struct {
		const char *temp;
		int16_t dc;
	} stored[] = {
		{ "999.94", 9999 }, { "999.9", 9999 }, { "-999.94", -9999 }, { "-273.15", -2732 },
		{ "-0.04", 0 },	    { "-0.05", -1 },   { "100", 1000 },
	};
	static const char *const refused[] = {
		"999.96", "999.95", "-999.96", "1000", "-1000", "1e300", "-1e300",
	};
	struct norm_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]); i++) {
		char payload[128];

		snprintf(payload, sizeof(payload), "{\"ts\":1581849120,\"temp_c\":%s}",
			 stored[i].temp);
		assert_int_equal(run(GATE, payload, strlen(payload), 0, &res), 0);
		if (res.reason || evs[0].temp_dc != stored[i].dc ||
		    evs[0].flags != FLAG_IMPLAUSIBLE)
			fail_msg("temp %s: %s, %d flags %u", stored[i].temp,
				 res.reason ? res.reason : "accepted", evs[0].temp_dc,
				 evs[0].flags);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char payload[128];

		snprintf(payload, sizeof(payload), "{\"ts\":1581849120,\"temp_c\":%s}", refused[i]);
		assert_int_equal(run(GATE, payload, strlen(payload), 0, &res), 0);
		if (!res.reason || strcmp(res.reason, "temperature_out_of_range") != 0)
			fail_msg("temp %s: %s", refused[i], res.reason ? res.reason : "accepted");
	}
	/* The detail names the field and the value as sent. */
	assert_string_equal(reason_of(GATE, "{\"ts\":1581849120,\"temp_c\":999.96}"),
			    "temperature_out_of_range");
	{
		const char *p = "{\"ts\":1581849120,\"temp_c\":999.96}";

		assert_int_equal(run(GATE, p, strlen(p), 0, &res), 0);
		assert_string_equal(res.detail,
				    "temp_c 999.96 is beyond what temp_c holds"
				    " (-999.9 to 999.9 \u00b0C after conversion)");
	}
	/* The same bound for the home checks' temp_c. */
	assert_string_equal(reason_of("cordon/s1/isolation/H1/check",
				      "{\"ts\":1581849120,\"temp_c\":\"999.96\"}"),
			    "temperature_out_of_range");
	assert_string_equal(reason_of("cordon/s1/isolation/H1/check",
				      "{\"ts\":1581849120,\"temp_c\":-999.9}"),
			    "accepted");
	assert_int_equal(evs[0].temp_dc, -9999);
	assert_int_equal(evs[0].flags, FLAG_IMPLAUSIBLE);
}

/* Every time the normalizer accepts lies in 1969-12-31T06:00Z (1970 at
 * +18:00) .. 10000-01-01T18:00Z (9999 at -18:00): well inside what
 * timestamptz holds (4713 BC .. 294276 AD). Epoch values: seconds below
 * 1e11, milliseconds from 1e11 to below 1e14; anything else is bad_time. */
static void
times_at_the_edges(void **state)
{
	static const struct {
		const char *ts;
		const char *want;
	} ok[] = {
		{ "\"1970-01-01T00:00:00+18:00\"", "1969-12-31 06:00:00.000000+00" },
		{ "\"1970-01-01T00:00:00\"", "1969-12-31 16:00:00.000000+00" }, /* naive, +08:00 */
		{ "\"9999-12-31T23:59:60.999999-18:00\"", "10000-01-01 18:00:00.999999+00" },
		{ "\"9999-12-31T23:59:59.9999999\"", "9999-12-31 15:59:59.999999+00" },
		{ "0", "1970-01-01 00:00:00.000000+00" },
		{ "99999999999", "5138-11-16 09:46:39.000000+00" },
		{ "\"99999999999\"", "5138-11-16 09:46:39.000000+00" },
		{ "100000000000", "1973-03-03 09:46:40.000000+00" },
		{ "99999999999999", "5138-11-16 09:46:39.999000+00" },
	};
	static const char *const bad[] = {
		"100000000000000",
		"-1",
		"1e300",
		"\"1969-12-31T23:59:59Z\"",
		"\"10000-01-01T00:00:00Z\"",
		"\"9999-12-31T23:59:59+19:00\"",
		"\"9999-12-31T23:59:59-18:01\"",
		"\"1970-01-01T00:00:00+18:30\"",
	};
	struct norm_result res;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char payload[128], got[40];

		snprintf(payload, sizeof(payload), "{\"ts\":%s,\"temp_c\":36.6}", ok[i].ts);
		assert_int_equal(run(GATE, payload, strlen(payload), 0, &res), 0);
		if (res.reason)
			fail_msg("ts %s: %s", ok[i].ts, res.reason);
		normalize_format_time(evs[0].device_us, got, sizeof(got));
		if (strcmp(got, ok[i].want) != 0)
			fail_msg("ts %s: got %s, want %s", ok[i].ts, got, ok[i].want);
		assert_int_equal(evs[0].flags, FLAG_CLOCK_SKEW);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char payload[128];

		snprintf(payload, sizeof(payload), "{\"ts\":%s,\"temp_c\":36.6}", bad[i]);
		assert_string_equal(reason_of(GATE, payload), "bad_time");
	}
}

/* "x" repeated n times, in a static buffer (one at a time). */
static const char *
rep(const char *x, int n, char *buf, size_t len)
{
	size_t k = 0;

	for (int i = 0; i < n && k + strlen(x) < len; i++)
		k += (size_t)snprintf(buf + k, len - k, "%s", x);
	return buf;
}

/* Keys hold the longest ids every topic and field allows, whole: 64-byte
 * site and gate levels, 64-byte record ids (any printable UTF-8), and for
 * the hotline a 64-byte call id plus a 64-byte step id. A key cut at a
 * fixed size made steps that differ only at the end one row (2 of 3 steps
 * of a call silently gone). */
static void
longest_ids_make_whole_keys(void **state)
{
	char site[65], gate[65], call[65], topic[256], payload[1024], want[1024];
	char ids[3][65], keys[3][NORM_KEY_MAX], idbuf[200], x61[62];
	struct norm_result res;

	(void)state;
	rep("s", 64, site, sizeof(site));
	rep("G", 64, gate, sizeof(gate));
	/* Gate event: 64-byte id of 21 three-byte characters and a '/'. */
	snprintf(topic, sizeof(topic), "cordon/%s/gate/%s/event", site, gate);
	snprintf(payload, sizeof(payload),
		 "{\"id\":\"%s/\",\"ts\":1581849120,\"temp_c\":36.6,"
		 "\"card\":\"%s\",\"person\":\"%s\"}",
		 rep("\xe7\xbc\x96", 21, idbuf, sizeof(idbuf)),
		 rep("C", 64, ids[0], sizeof(ids[0])), rep("P", 64, ids[1], sizeof(ids[1])));
	assert_int_equal(run(topic, payload, strlen(payload), 0, &res), 0);
	assert_null(res.reason);
	snprintf(want, sizeof(want), "%s/%s/%s/", site, gate, idbuf);
	assert_string_equal(evs[0].key, want);
	assert_int_equal(strlen(evs[0].key), 64 + 1 + 64 + 1 + 64);
	assert_int_equal(strlen(evs[0].card), 64);
	assert_int_equal(strlen(evs[0].person), 64);
	/* A 65-byte id is not an id. */
	snprintf(payload, sizeof(payload), "{\"id\":\"%s\",\"ts\":1581849120,\"temp_c\":36.6}",
		 rep("i", 65, idbuf, sizeof(idbuf)));
	assert_string_equal(reason_of(topic, payload), "bad_field");

	/* Hotline: three steps of one 64-byte call, ids that differ only in
	 * their last bytes. */
	snprintf(topic, sizeof(topic), "cordon/%s/hotline", site);
	rep("c", 64, call, sizeof(call));
	for (int i = 0; i < 3; i++) {
		static const char *const actions[] = { "open", "update", "resolve" };

		snprintf(ids[i], sizeof(ids[i]), "%s-%02d", rep("x", 61, x61, sizeof(x61)), i);
		snprintf(payload, sizeof(payload),
			 "{\"call_id\":\"%s\",\"id\":\"%s\",\"action\":\"%s\","
			 "\"ts\":1581849120}",
			 call, ids[i], actions[i]);
		assert_int_equal(run(topic, payload, strlen(payload), 0, &res), 0);
		assert_null(res.reason);
		snprintf(keys[i], sizeof(keys[i]), "%s", evs[0].key);
		snprintf(want, sizeof(want), "%s/hotline/%s/%s", site, call, ids[i]);
		assert_string_equal(keys[i], want);
	}
	assert_string_not_equal(keys[0], keys[1]);
	assert_string_not_equal(keys[1], keys[2]);

	/* The longest key of all: a call id of 64 '/' (escaped, 192 bytes). */
	rep("/", 64, call, sizeof(call));
	snprintf(payload, sizeof(payload),
		 "{\"call_id\":\"%s\",\"id\":\"%s\",\"action\":\"open\","
		 "\"ts\":1581849120}",
		 call, ids[2]);
	assert_int_equal(run(topic, payload, strlen(payload), 0, &res), 0);
	assert_null(res.reason);
	snprintf(want, sizeof(want), "%s/hotline/%s/%s", site, rep("%2F", 64, idbuf, sizeof(idbuf)),
		 ids[2]);
	assert_string_equal(evs[0].key, want);
	assert_int_equal(strlen(evs[0].key), 64 + 1 + 7 + 1 + 3 * 64 + 1 + 64);
	assert_string_equal(evs[0].call_id, call);
}

/* A '/' in a call id or a step id cannot make two steps one key. */
static void
hotline_keys_are_unambiguous(void **state)
{
	static const struct {
		const char *call, *id, *key;
	} cases[] = {
		{ "a/b", "c", "s1/hotline/a%2Fb/c" },
		{ "a", "b/c", "s1/hotline/a/b/c" },
		{ "a%2Fb", "c", "s1/hotline/a%252Fb/c" },
		{ "H-7", "1", "s1/hotline/H-7/1" }, /* the usual ids: as before */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char payload[256];
		struct norm_result res;

		snprintf(payload, sizeof(payload),
			 "{\"call_id\":\"%s\",\"id\":\"%s\","
			 "\"action\":\"open\",\"ts\":1581849120}",
			 cases[i].call, cases[i].id);
		assert_int_equal(run("cordon/s1/hotline", payload, strlen(payload), 0, &res), 0);
		assert_null(res.reason);
		assert_string_equal(evs[0].key, cases[i].key);
		assert_string_equal(evs[0].call_id, cases[i].call);
	}
}

/* The people work's topics (issue 16): their keys, a need's step escaped
 * as a hotline step's, and the need a needs_help call opens, the same for
 * every delivery of the call and another for another call. */
static void
people_topics(void **state)
{
	static const char need[] =
		"{\"need_id\":\"N/1\",\"id\":\"2\",\"action\":\"open\","
		"\"ts\":1581849120,\"household\":\"3-2-401\","
		"\"category\":\"medicine\",\"due\":\"2020-02-16T18:00:00+08:00\"}";
	static const char help[] = "{\"id\":\"W-1\",\"ts\":1581849120,\"outcome\":\"needs_help\","
				   "\"by\":\"op-3\",\"note\":\"stairs\"}";
	static const char help2[] = "{\"id\":\"W-2\",\"ts\":1581849120,\"outcome\":\"needs_help\"}";
	static const char drop[] = "{\"id\":\"DP-1\",\"ts\":1581849120,\"household\":\"3-2-401\","
				   "\"item\":\"groceries\",\"action\":\"collected\"}";
	struct norm_result res;
	char first[NORM_ID_MAX + 1];

	(void)state;
	assert_int_equal(run("cordon/s1/need", need, strlen(need), 0, &res), 0);
	assert_null(res.reason);
	assert_int_equal(res.nevents, 1);
	assert_int_equal(evs[0].type, EVENT_NEED);
	assert_string_equal(evs[0].key, "s1/need/N%2F1/2");
	assert_int_equal(evs[0].need, NEED_OPEN);
	assert_string_equal(evs[0].category, "medicine");
	/* 18:00 +08:00 is 10:00 UTC, 32 minutes before ts (10:32 UTC) */
	assert_true(evs[0].due_us == (1581849120LL - 32 * 60) * 1000000);

	assert_int_equal(run("cordon/s1/call/3-2-401", help, strlen(help), 0, &res), 0);
	assert_null(res.reason);
	assert_int_equal(res.nevents, 2);
	assert_int_equal(evs[0].type, EVENT_CALL);
	assert_string_equal(evs[0].key, "s1/3-2-401/W-1");
	assert_string_equal(evs[0].household, "3-2-401");
	assert_int_equal(evs[0].outcome, OUTCOME_NEEDS_HELP);
	assert_int_equal(evs[0].temp_dc, TEMP_NONE);
	assert_int_equal(evs[1].type, EVENT_NEED);
	assert_int_equal(evs[1].need, NEED_OPEN);
	assert_int_equal(strlen(evs[1].need_id), strlen("call-") + 16);
	assert_string_equal(evs[1].household, "3-2-401");
	assert_string_equal(evs[1].category, "other");
	assert_string_equal(evs[1].by, "op-3");
	assert_string_equal(evs[1].text, "stairs");
	assert_true(evs[1].device_us == evs[0].device_us);
	snprintf(first, sizeof(first), "%s", evs[1].need_id);
	assert_int_equal(run("cordon/s1/call/3-2-401", help, strlen(help), 0, &res), 0);
	assert_string_equal(evs[1].need_id, first);
	assert_int_equal(run("cordon/s1/call/3-2-401", help2, strlen(help2), 0, &res), 0);
	assert_int_equal(res.nevents, 2);
	assert_string_not_equal(evs[1].need_id, first);

	assert_int_equal(run("cordon/s1/dropoff", drop, strlen(drop), 0, &res), 0);
	assert_null(res.reason);
	assert_string_equal(evs[0].key, "s1/dropoff/DP-1/collected");
	assert_int_equal(evs[0].dropoff, DROPOFF_COLLECTED);
	assert_string_equal(evs[0].category, "groceries");

	/* words in any case; a call's category outside the ledger loses
	 * nothing (its need is "other"); a long item kept to 64 bytes; a
	 * household that is not an id refused */
	{
		static const char mixed[] = "{\"need_id\":\"N-2\",\"action\":\" Open\","
					    "\"ts\":1581849120,\"household\":\"1-1-101\","
					    "\"category\":\"Medicine\"}";
		static const char medical[] =
			"{\"id\":\"W-9\",\"ts\":1581849120,"
			"\"outcome\":\"NEEDS_HELP\",\"category\":\"medical\"}";
		char longitem[300], want[NORM_ID_MAX + 1];

		assert_int_equal(run("cordon/s1/need", mixed, strlen(mixed), 0, &res), 0);
		assert_null(res.reason);
		assert_int_equal(evs[0].need, NEED_OPEN);
		assert_string_equal(evs[0].category, "medicine");
		assert_int_equal(run("cordon/s1/call/1-1-101", medical, strlen(medical), 0, &res),
				 0);
		assert_null(res.reason);
		assert_int_equal(res.nevents, 2);
		assert_string_equal(evs[1].category, "other");
		snprintf(longitem, sizeof(longitem),
			 "{\"id\":\"DP-2\",\"ts\":1581849120,\"household\":\"1-1-101\","
			 "\"action\":\"placed\",\"item\":\"%0100d\"}",
			 0);
		assert_int_equal(run("cordon/s1/dropoff", longitem, strlen(longitem), 0, &res), 0);
		assert_null(res.reason);
		memset(want, '0', NORM_ID_MAX);
		want[NORM_ID_MAX] = '\0';
		assert_string_equal(evs[0].category, want);
		assert_string_equal(reason_of("cordon/s1/dropoff",
					      "{\"ts\":1581849120,\"household\":\"3/2/401\","
					      "\"action\":\"placed\"}"),
				    "bad_field");
	}
}

/* A text cut by a bounded copy never ends inside a UTF-8 character: the
 * helper itself, and a reject detail that quotes 40 bytes of Chinese text
 * (13 characters and a third: the Dahua event code). */
static void
texts_cut_at_whole_characters(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "" },
		{ "abc", "abc" },
		{ "\xe4\xbd\x93\xe6\xb8\xa9", "\xe4\xbd\x93\xe6\xb8\xa9" }, /* whole */
		{ "\xe4\xbd\x93\xe6\xb8", "\xe4\xbd\x93" },		    /* 2 of 3 bytes */
		{ "\xe4\xbd\x93\xe6", "\xe4\xbd\x93" },			    /* 1 of 3 */
		{ "a\xf0\x9f\x98", "a" },				    /* 3 of 4 */
		{ "a\xf0\x9f\x98\x80", "a\xf0\x9f\x98\x80" },		    /* whole */
		{ "\xc3", "" },
		{ "x\xc3\xa9", "x\xc3\xa9" },
	};
	char buf[64];
	struct norm_result res;
	char payload[512];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(buf, sizeof(buf), "%s", cases[i].in);
		normalize_utf8_trim(buf);
		if (strcmp(buf, cases[i].out) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf, cases[i].out);
	}
	/* "门禁事件门禁事件门禁事件门禁" as the Dahua Code: 42 bytes */
	n = (size_t)snprintf(payload, sizeof(payload),
			     "{\"Code\":\"\xe9\x97\xa8\xe7\xa6\x81\xe4\xba\x8b\xe4\xbb\xb6"
			     "\xe9\x97\xa8\xe7\xa6\x81\xe4\xba\x8b\xe4\xbb\xb6"
			     "\xe9\x97\xa8\xe7\xa6\x81\xe4\xba\x8b\xe4\xbb\xb6"
			     "\xe9\x97\xa8\xe7\xa6\x81\",\"Action\":\"Pulse\",\"Data\":{}}");
	assert_int_equal(run(GATE, payload, n, 0, &res), 0);
	assert_string_equal(res.reason, "unknown_format");
	assert_true(norm_valid_utf8((const uint8_t *)res.detail, strlen(res.detail)));
}

/* Status words as real firmwares send them (field cases 09a/09b:
 * Tasmota's default LWT "Offline"/"Online"): any case, blanks around,
 * bare or JSON-quoted or in {"state":...}; Shelly's true/false, bare or
 * as the state. */
static void
status_words(void **state)
{
	static const struct {
		const char *payload;
		enum gate_state state;
	} ok[] = {
		{ "Offline", STATE_OFFLINE },
		{ "Online", STATE_ONLINE },
		{ "online", STATE_ONLINE },
		{ "OFFLINE", STATE_OFFLINE },
		{ " Online\r\n", STATE_ONLINE },
		{ "\tforced ", STATE_FORCED },
		{ "Open", STATE_OPEN },
		{ "CLOSED\n", STATE_CLOSED },
		{ "\"Offline\"", STATE_OFFLINE },
		{ "\" Online \"", STATE_ONLINE },
		{ "{\"state\":\"Online\"}", STATE_ONLINE },
		{ "{\"state\":\"FORCED\"}", STATE_FORCED },
		{ "true", STATE_ONLINE },
		{ "false", STATE_OFFLINE },
		{ "True", STATE_ONLINE },
		{ "\"false\"", STATE_OFFLINE },
		{ " true\n", STATE_ONLINE },
		/* the state object takes what the bare form takes: one rule */
		{ "{\"state\":true}", STATE_ONLINE },
		{ "{\"state\":false}", STATE_OFFLINE },
		{ "{\"state\":\" Offline\\n\"}", STATE_OFFLINE },
		{ "{\"state\":\"True\"}", STATE_ONLINE },
	};
	static const struct {
		const char *payload, *reason;
	} bad[] = {
		{ "Onlin", "not_json" },
		{ "on line", "not_json" },
		{ "Online!", "not_json" },
		{ "", "empty_payload" },
		{ " ", "not_json" },
		{ "onlineoffline", "not_json" },
		{ "\"Exploded\"", "bad_state" },
		{ "{\"state\":\"Onlin\"}", "bad_state" },
		{ "{\"state\":1}", "bad_state" },
		{ "{\"state\":null}", "bad_state" },
		{ "{\"state\":[\"online\"]}", "bad_state" },
		{ "{\"state\":\"yes\"}", "bad_state" },
		{ "1", "not_object" },
		{ "yes", "not_json" },
	};
	const char *topic = "cordon/s1/gate/G03/status";

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		const char *got = reason_of(topic, ok[i].payload);

		if (strcmp(got, "accepted") != 0 || evs[0].state != ok[i].state)
			fail_msg("case %zu (%s): got %s, state %d, want %d", i, ok[i].payload, got,
				 (int)evs[0].state, (int)ok[i].state);
		assert_int_equal(evs[0].type, EVENT_STATUS);
	}
	/* An embedded NUL is not a blank: "online\0" is not a word. */
	{
		struct norm_result res;

		assert_int_equal(run(topic, "online\0", 7, 0, &res), 0);
		assert_non_null(res.reason);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *got = reason_of(topic, bad[i].payload);

		if (strcmp(got, bad[i].reason) != 0)
			fail_msg("case %zu (%s): got %s, want %s", i, bad[i].payload, got,
				 bad[i].reason);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(canonical_event),
		cmocka_unit_test(reject_reasons),
		cmocka_unit_test(status_words),
		cmocka_unit_test(invalid_utf8_and_oversize),
		cmocka_unit_test(temperatures),
		cmocka_unit_test(times),
		cmocka_unit_test(epoch_seconds_millis_and_skew),
		cmocka_unit_test(hash_keys_are_stable),
		cmocka_unit_test(keyless_repeats_are_new_events),
		cmocka_unit_test(temperatures_within_the_column),
		cmocka_unit_test(times_at_the_edges),
		cmocka_unit_test(longest_ids_make_whole_keys),
		cmocka_unit_test(hotline_keys_are_unambiguous),
		cmocka_unit_test(people_topics),
		cmocka_unit_test(texts_cut_at_whole_characters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
