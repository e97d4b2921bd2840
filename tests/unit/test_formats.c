/* Unit tests of the terminal formats (SPEC 3): each fixture under
 * tests/fixtures/formats/ (directory given as argv[1]) with the exact
 * events it must give, then the broken variants and their reject
 * reasons, shape conflicts, pinned formats and the caps on arrays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "normalize.h"
#include "normalize_internal.h"

#define RECV_US 1581849120000000LL /* 2020-02-16T10:32:00Z */
#define RECV "2020-02-16 10:32:00.000000+00"

/* The key of a keyless event received at RECV_US: "h:<message hash>:
 * <receive time>:<index>" (normalize.c); `index` is the "#N" of a case. */
static void
keyless_key(char *buf, size_t len, const char *hex, const char *index)
{
	snprintf(buf, len, "h:%s:%lld:%s", hex, RECV_US, index);
}
#define ID_KEY "cordon-test-key"

static const char *fixture_dir = "tests/fixtures/formats";

/* The register of the tests: G21 is a DIY sensor in Fahrenheit, G22 is
 * pinned to diy, G23 to hikvision, G24 to dahua, G25 to wecom; other gates are not
 * registered. */
static int
gate_info(void *arg, const char *site, const char *gate, struct norm_gate_info *ret)
{
	static const struct {
		const char *gate;
		const char *format;
		enum temp_unit unit;
	} reg[] = {
		{ "G21", "auto", UNIT_FAHRENHEIT },   { "G22", "diy", UNIT_CELSIUS },
		{ "G23", "hikvision", UNIT_CELSIUS }, { "G24", "dahua", UNIT_CELSIUS },
		{ "G25", "wecom", UNIT_CELSIUS },
	};

	if (arg) { /* pinned_samples(): every gate pinned to the format arg names */
		*ret = (struct norm_gate_info){ (enum gate_format)normalize_format_from_name(arg),
						UNIT_CELSIUS };
		return 0;
	}
	if (strcmp(site, "s1") != 0)
		return -1;
	for (size_t i = 0; i < sizeof(reg) / sizeof(reg[0]); i++) {
		if (strcmp(reg[i].gate, gate) == 0) {
			*ret = (struct norm_gate_info){
				(enum gate_format)normalize_format_from_name(reg[i].format),
				reg[i].unit
			};
			return 0;
		}
	}
	return -1;
}

static struct norm_context ctx = {
	.topic_root = "cordon",
	.max_clock_skew_us = 600LL * 1000000,
	.tz_offset_s = 8 * 3600,
	.gate_info = gate_info,
	.id_key = (const uint8_t *)ID_KEY,
	.id_key_len = sizeof(ID_KEY) - 1,
};

static struct event evs[NORM_MAX_EVENTS];

static int
run_max(const char *topic, const char *payload, size_t len, size_t max, struct norm_result *res)
{
	struct norm_input in = {
		.topic = topic,
		.topic_len = strlen(topic),
		.payload = (const uint8_t *)payload,
		.payload_len = len,
		.orig_len = len,
		.received_us = RECV_US,
	};

	return normalize_message(&ctx, &in, evs, max, res);
}

static const char *
reason_max(const char *topic, const char *payload, size_t max)
{
	struct norm_result res;

	assert_int_equal(run_max(topic, payload, strlen(payload), max, &res), 0);
	return res.reason ? res.reason : "accepted";
}

/* The fixture's bytes, NUL-terminated; the caller frees. */
static char *
load(const char *name, size_t *ret_len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", fixture_dir, name);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

struct want {
	int16_t temp_dc;
	const char *time; /* device time, as normalize_format_time writes it */
	const char *card, *person;
	unsigned flags;
	const char *key; /* "#n": the message hash and index n */
	int mask;
	enum direction dir;
};

struct fixture_case {
	const char *file, *topic;
	const char *vendor; /* NULL: a reject with `reason` */
	const char *reason;
	size_t nevents;
	struct want ev[3];
};

#define T(gate) "cordon/s1/gate/" gate "/event"
#define ABN FLAG_DEVICE_ABNORMAL
#define HASH_ID1 "id:95ed01b5e5ed553be7a40ba1d951b2b4" /* 110101199003078515 */
#define HASH_ID2 "id:6f36b0adb9b14df7a4c64d293f9fa856" /* 11010519491231002X */

static const struct fixture_case fixture_cases[] = {
	/* Hikvision: push envelope, bare AcsEvent record, units, 6 decimals,
	 * the device's abnormal flag, an ID number as employee number. */
	{ "hikvision_envelope.json",
	  T("G03"),
	  "hikvision",
	  NULL,
	  1,
	  { { 365, "2020-02-16 10:32:00.000000+00", "3208841234", "1042", 0, "s1/G03/1234", 1,
	      DIR_NONE } } },
	{ "hikvision_bare.json",
	  T("G03"),
	  "hikvision",
	  NULL,
	  1,
	  { { 374, "2020-02-16 10:33:05.000000+00", "3208845678", "1077", ABN, "s1/G03/1235", 0,
	      DIR_NONE } } },
	{ "hikvision_fahrenheit_word.json",
	  T("G04"),
	  "hikvision",
	  NULL,
	  1,
	  { { 370, "2020-02-16 10:31:42.000000+00", "3208840017", "2210", 0, "s1/G04/88", 1,
	      DIR_NONE } } },
	{ "hikvision_fahrenheit_number.json",
	  T("G04"),
	  "hikvision",
	  NULL,
	  1,
	  { { 380, "2020-02-16 10:32:10.000000+00", "3208840018", "2211", ABN, "s1/G04/89", 1,
	      DIR_NONE } } },
	{ "hikvision_id_employee.json",
	  T("G03"),
	  "hikvision",
	  NULL,
	  1,
	  { { 365, "2020-02-16 10:34:27.000000+00", "", HASH_ID1, 0, "s1/G03/1240", -1,
	      DIR_NONE } } },
	/* Dahua: UTC, LocaleTime only (site zone +08:00), RealUTC over a
	 * local-time UTC, units -1/0/1/2, nested and flat temperature keys. */
	{ "dahua_utc.json",
	  T("G07"),
	  "dahua",
	  NULL,
	  1,
	  { { 365, "2020-02-16 10:32:00.000000+00", "A1B2C3D4", "1042", 0, "s1/G07/5127", -1,
	      DIR_IN } } },
	{ "dahua_localetime.json",
	  T("G07"),
	  "dahua",
	  NULL,
	  1,
	  { { 378, "2020-02-16 10:40:12.000000+00", "A1B2C3E9", "1088", ABN, "s1/G07/5128", -1,
	      DIR_IN } } },
	{ "dahua_fahrenheit_flat.json",
	  T("G08"),
	  "dahua",
	  NULL,
	  1,
	  { { 375, "2020-02-16 10:31:45.000000+00", "A1B2C411", "3301", 0, "s1/G08/731", -1,
	      DIR_OUT } } },
	{ "dahua_kelvin.json",
	  T("G08"),
	  "dahua",
	  NULL,
	  1,
	  { { 370, "2020-02-16 10:32:10.000000+00", "A1B2C412", "3302", 0, "s1/G08/732", -1,
	      DIR_IN } } },
	{ "dahua_realutc.json",
	  T("G08"),
	  "dahua",
	  NULL,
	  1,
	  { { 368, "2020-02-16 10:32:00.000000+00", "A1B2C413", "3303", 0, "s1/G08/733", -1,
	      DIR_IN } } },
	/* Envelopes that bridges forward as they are (issue 14.6): each
	 * element one event. Hikvision's AcsEvent search answer (numbers as
	 * strings, a Fahrenheit code, an operation record that is skipped, an
	 * element without serialNo keyed by its place in InfoList), its XML
	 * EventNotificationAlert through an XML->JSON bridge (every value a
	 * string); Dahua's RPC2 client.notifyEventStream with other codes in
	 * the list (skipped), and the attach stream's lowercase keys. */
	{ "hikvision_acsevent_search.json",
	  T("G03"),
	  "hikvision",
	  NULL,
	  2,
	  { { 368, "2020-02-16 10:31:20.000000+00", "3208840101", "2301", 0, "s1/G03/9001", -1,
	      DIR_NONE },
	    { 379, "2020-02-16 10:31:55.000000+00", "3208840102", "2302", ABN, "#2", 1,
	      DIR_NONE } } },
	{ "hikvision_xml_alert.json",
	  T("G03"),
	  "hikvision",
	  NULL,
	  1,
	  { { 376, "2020-02-16 10:32:06.000000+00", "3208840103", "2303", ABN, "s1/G03/1241", 1,
	      DIR_NONE } } },
	{ "dahua_rpc2_mixed.json",
	  T("G07"),
	  "dahua",
	  NULL,
	  2,
	  { { 364, "2020-02-16 10:32:01.000000+00", "C-0890", "3303", 0, "#1", -1, DIR_OUT },
	    { 375, "2020-02-16 10:32:05.000000+00", "C-0891", "3304", 0, "s1/G07/7730", -1,
	      DIR_IN } } },
	{ "dahua_attach_lowercase.json",
	  T("G07"),
	  "dahua",
	  NULL,
	  1,
	  { { 374, "2020-02-16 10:32:02.000000+00", "A1B2C3F0", "1043", ABN, "s1/G07/5130", -1,
	      DIR_IN } } },
	{ "hikvision_acsevent_search.json",
	  T("G23"),
	  "hikvision",
	  NULL,
	  2,
	  { { 368, "2020-02-16 10:31:20.000000+00", "3208840101", "2301", 0, "s1/G23/9001", -1,
	      DIR_NONE },
	    { 379, "2020-02-16 10:31:55.000000+00", "3208840102", "2302", ABN, "#2", 1,
	      DIR_NONE } } },
	{ "dahua_rpc2_mixed.json",
	  T("G24"),
	  "dahua",
	  NULL,
	  2,
	  { { 364, "2020-02-16 10:32:01.000000+00", "C-0890", "3303", 0, "#1", -1, DIR_OUT },
	    { 375, "2020-02-16 10:32:05.000000+00", "C-0891", "3304", 0, "s1/G24/7730", -1,
	      DIR_IN } } },
	{ "dahua_rpc2_mixed.json", T("G23"), NULL, "missing_time", 0, { { 0 } } },
	/* EZVIZ: two events in the content string, one with an id; the other
	 * is keyed by header.messageId and its index. */
	{ "ezviz_two_events.json",
	  T("G11"),
	  "ezviz",
	  NULL,
	  2,
	  { { 366, "2020-02-16 10:32:00.123000+00", "3208841234", "1042", 0,
	      "s1/G11/5e48f1a0c2b3401e", 1, DIR_NONE },
	    { 382, "2020-02-16 10:32:04.871000+00", "", HASH_ID2, ABN,
	      "s1/G11/7f1c2a9e0b3d4c5f8e6a1b2c3d4e5f60:1", 0, DIR_NONE } } },
	/* EZVIZ as its message push documents it: header + body object; the
	 * record key is header.messageId (kept on EZVIZ's retries). */
	{ "ezviz_body.json",
	  T("G11"),
	  "ezviz",
	  NULL,
	  1,
	  { { 376, "2020-02-16 10:32:01.250000+00", "3208841299", "2405", ABN,
	      "s1/G11/5e57f239793f2b007fecb0de", 0, DIR_NONE } } },
	/* WeCom: string temperatures, status 0/1/2. */
	{ "wecom_report.json",
	  T("G15"),
	  "wecom",
	  NULL,
	  3,
	  { { 366, "2020-02-16 10:32:00.000000+00", "", "zhangsan", 0,
	      "s1/G15/zhangsan@1581849120000", -1, DIR_NONE },
	    { 379, "2020-02-16 10:32:30.000000+00", "", "lisi", ABN, "s1/G15/lisi@1581849150000",
	      -1, DIR_NONE },
	    { 369, "2020-02-16 10:33:01.000000+00", "", "wangwu", 0, "s1/G15/wangwu@1581849181000",
	      -1, DIR_NONE } } },
	/* WeCom's get_temperature_data reply as a polling bridge forwards it:
	 * each element of temperature_data.items is a record. */
	{ "wecom_get_reply.json",
	  T("G15"),
	  "wecom",
	  NULL,
	  2,
	  { { 367, "2020-02-16 10:32:00.000000+00", "", "wo-userid1", 0,
	      "s1/G15/wo-userid1@1581849120000", -1, DIR_NONE },
	    { 381, "2020-02-16 10:32:30.000000+00", "", "wo-userid2", ABN,
	      "s1/G15/wo-userid2@1581849150000", -1, DIR_NONE } } },
	{ "wecom_get_reply.json",
	  T("G25"),
	  "wecom",
	  NULL,
	  2,
	  { { 367, "2020-02-16 10:32:00.000000+00", "", "wo-userid1", 0,
	      "s1/G25/wo-userid1@1581849120000", -1, DIR_NONE },
	    { 381, "2020-02-16 10:32:30.000000+00", "", "wo-userid2", ABN,
	      "s1/G25/wo-userid2@1581849150000", -1, DIR_NONE } } },
	/* The device_temperature_data_report callback through xmltodict: one
	 * Item (an object), several (an array); and through xml2js with
	 * explicitArray (every value in an array of one). All strings. */
	{ "wecom_xml_callback.json",
	  T("G15"),
	  "wecom",
	  NULL,
	  1,
	  { { 367, "2020-02-16 10:32:00.000000+00", "", "wo-userid1", 0,
	      "s1/G15/wo-userid1@1581849120000", -1, DIR_NONE } } },
	{ "wecom_xml_callback_array.json",
	  T("G15"),
	  "wecom",
	  NULL,
	  2,
	  { { 367, "2020-02-16 10:32:00.000000+00", "", "wo-userid1", 0,
	      "s1/G15/wo-userid1@1581849120000", -1, DIR_NONE },
	    { 379, "2020-02-16 10:33:01.000000+00", "", "wo-userid3", ABN,
	      "s1/G15/wo-userid3@1581849181000", -1, DIR_NONE } } },
	{ "wecom_xml_callback_items.json",
	  T("G25"),
	  "wecom",
	  NULL,
	  2,
	  { { 367, "2020-02-16 10:32:00.000000+00", "", "wo-userid1", 0,
	      "s1/G25/wo-userid1@1581849120000", -1, DIR_NONE },
	    { 379, "2020-02-16 10:33:01.000000+00", "", "wo-userid3", ABN,
	      "s1/G25/wo-userid3@1581849181000", -1, DIR_NONE } } },
	/* DIY: the unit from the register (G21: Fahrenheit; G09 is not
	 * registered: Celsius, so 98.9 is stored flagged implausible). */
	{ "diy_number.json",
	  T("G21"),
	  "diy",
	  NULL,
	  1,
	  { { 372, RECV, "", "", 0, "#0", -1, DIR_NONE } } },
	{ "diy_number.json",
	  T("G09"),
	  "diy",
	  NULL,
	  1,
	  { { 989, RECV, "", "", FLAG_IMPLAUSIBLE, "#0", -1, DIR_NONE } } },
	{ "diy_object.json",
	  T("G09"),
	  "diy",
	  NULL,
	  1,
	  { { 367, RECV, "", "", 0, "#0", -1, DIR_NONE } } },
	{ "diy_batch.json",
	  T("G09"),
	  "diy",
	  NULL,
	  3,
	  { { 366, RECV, "", "", 0, "#0", -1, DIR_NONE },
	    { 371, "2020-02-16 10:31:40.000000+00", "C-0412", "", 0, "s1/G09/r-88", -1, DIR_NONE },
	    { 384, RECV, "", "", 0, "#2", -1, DIR_NONE } } },
	/* {"temp":..,"ts":..} is DIY (canonical has no "temp"). */
	{ "diy_ts.json",
	  T("G09"),
	  "diy",
	  NULL,
	  1,
	  { { 370, "2020-02-16 10:32:00.000000+00", "", "", 0, "s1/G09/r-89", -1, DIR_NONE } } },
	{ "diy_ts.json",
	  T("G22"),
	  "diy",
	  NULL,
	  1,
	  { { 370, "2020-02-16 10:32:00.000000+00", "", "", 0, "s1/G22/r-89", -1, DIR_NONE } } },
	/* DIY firmwares' own JSON on a gate pinned to diy: Tasmota's SENSOR
	 * telemetry (the infrared OBJTMP, never AMBTMP; local Time; TempUnit
	 * over the register's unit), its Status 10 answer, a sensor with
	 * Temperature; ESPHome's web server state (its "id" names the sensor,
	 * it is not a record key). */
	{ "tasmota_sensor.json",
	  T("G22"),
	  "diy",
	  NULL,
	  1,
	  { { 369, "2020-02-16 10:32:00.000000+00", "", "", 0, "#0", -1, DIR_NONE } } },
	{ "tasmota_status10.json",
	  T("G22"),
	  "diy",
	  NULL,
	  1,
	  { { 373, "2020-02-16 10:31:30.000000+00", "", "", 0, "#0", -1, DIR_NONE } } },
	{ "tasmota_ds18b20.json",
	  T("G22"),
	  "diy",
	  NULL,
	  1,
	  { { 367, "2020-02-16 10:32:00.000000+00", "", "", 0, "#0", -1, DIR_NONE } } },
	{ "tasmota_two_sensors.json",
	  T("G22"),
	  "diy",
	  NULL,
	  1,
	  { { 375, "2020-02-16 10:32:00.000000+00", "", "", 0, "#0", -1, DIR_NONE } } },
	{ "esphome_state.json",
	  T("G22"),
	  "diy",
	  NULL,
	  1,
	  { { 369, RECV, "", "", 0, "#0", -1, DIR_NONE } } },
	/* Not taken by shape: their keys are too common. */
	{ "tasmota_sensor.json", T("G09"), NULL, "unknown_format", 0, { { 0 } } },
	{ "esphome_state.json", T("G09"), NULL, "unknown_format", 0, { { 0 } } },
	/* A pinned format wins over the shape. */
	{ "dahua_utc.json",
	  T("G24"),
	  "dahua",
	  NULL,
	  1,
	  { { 365, "2020-02-16 10:32:00.000000+00", "A1B2C3D4", "1042", 0, "s1/G24/5127", -1,
	      DIR_IN } } },
	{ "hikvision_envelope.json", T("G24"), NULL, "bad_field", 0, { { 0 } } },
	{ "dahua_utc.json", T("G23"), NULL, "missing_time", 0, { { 0 } } },
};

static void
check_fixture(const struct fixture_case *c)
{
	struct norm_input in = { .topic = c->topic, .topic_len = strlen(c->topic) };
	struct norm_result res;
	char hex[33];
	size_t len;
	char *buf = load(c->file, &len);

	assert_int_equal(run_max(c->topic, buf, len, NORM_MAX_EVENTS, &res), 0);
	if (!c->vendor) {
		if (!res.reason || strcmp(res.reason, c->reason) != 0)
			fail_msg("%s on %s: got %s, want %s", c->file, c->topic,
				 res.reason ? res.reason : "accepted", c->reason);
		free(buf);
		return;
	}
	if (res.reason)
		fail_msg("%s on %s: rejected %s (%s)", c->file, c->topic, res.reason, res.detail);
	if (res.nevents != c->nevents)
		fail_msg("%s: %zu events, want %zu", c->file, res.nevents, c->nevents);
	in.payload = (const uint8_t *)buf;
	in.payload_len = len;
	normalize_message_hash(&in, hex);
	for (size_t i = 0; i < c->nevents; i++) {
		const struct want *w = &c->ev[i];
		const struct event *ev = &evs[i];
		char ts[40], key[NORM_KEY_MAX];

		if (w->key[0] == '#')
			keyless_key(key, sizeof(key), hex, w->key + 1);
		else
			snprintf(key, sizeof(key), "%s", w->key);
		normalize_format_time(ev->device_us, ts, sizeof(ts));
		if (ev->type != EVENT_GATE || strcmp(ev->vendor, c->vendor) != 0 ||
		    ev->temp_dc != w->temp_dc || strcmp(ts, w->time) != 0 ||
		    strcmp(ev->card, w->card) != 0 || strcmp(ev->person, w->person) != 0 ||
		    (ev->flags & ~(unsigned)FLAG_TS_RECEIVED) != w->flags ||
		    strcmp(ev->key, key) != 0 || ev->mask != w->mask || ev->direction != w->dir)
			fail_msg("%s[%zu]: got %s temp %d time %s card '%s' person '%s' flags %u "
				 "key %s mask %d dir %d",
				 c->file, i, ev->vendor, ev->temp_dc, ts, ev->card, ev->person,
				 ev->flags, ev->key, ev->mask, ev->direction);
		assert_string_equal(ev->site, "s1");
		assert_memory_equal(ev->gate, c->topic + strlen("cordon/s1/gate/"), 3);
		assert_true(ev->received_us == RECV_US);
		assert_true(ev->rule_us == ev->device_us);
	}
	free(buf);
}

static void
fixtures(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fixture_cases) / sizeof(fixture_cases[0]); i++)
		check_fixture(&fixture_cases[i]);
}

/* The same fixture gives the same events and keys twice (redelivery). */
static void
redelivery_same_keys(void **state)
{
	static const char *const files[] = {
		"hikvision_envelope.json",
		"ezviz_two_events.json",
		"wecom_report.json",
		"diy_batch.json",
		"hikvision_acsevent_search.json",
		"dahua_rpc2_mixed.json",
		"ezviz_body.json",
		"wecom_get_reply.json",
		"wecom_xml_callback_items.json",
	};
	struct norm_result res;

	(void)state;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
		char keys[3][NORM_KEY_MAX];
		size_t len, n;
		char *buf = load(files[f], &len);

		assert_int_equal(run_max(T("G30"), buf, len, NORM_MAX_EVENTS, &res), 0);
		assert_null(res.reason);
		n = res.nevents;
		assert_in_range(n, 1, 3);
		for (size_t i = 0; i < n; i++)
			snprintf(keys[i], sizeof(keys[i]), "%s", evs[i].key);
		assert_int_equal(run_max(T("G30"), buf, len, NORM_MAX_EVENTS, &res), 0);
		assert_int_equal(res.nevents, n);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(evs[i].key, keys[i]);
			for (size_t j = 0; j < i; j++)
				assert_string_not_equal(keys[i], keys[j]);
		}
		free(buf);
	}
}

/* Without a key an ID number is dropped, never stored as it is. */
static void
id_number_without_key(void **state)
{
	struct norm_result res;
	size_t len;
	char *buf = load("hikvision_id_employee.json", &len);

	(void)state;
	ctx.id_key = NULL;
	ctx.id_key_len = 0;
	assert_int_equal(run_max(T("G03"), buf, len, NORM_MAX_EVENTS, &res), 0);
	ctx.id_key = (const uint8_t *)ID_KEY;
	ctx.id_key_len = sizeof(ID_KEY) - 1;
	assert_null(res.reason);
	assert_string_equal(evs[0].person, "");
	assert_int_equal(evs[0].temp_dc, 365);
	free(buf);
}

#define HIK_ENV(inner)                                                             \
	"{\"ipAddress\":\"10.6.1.21\",\"dateTime\":\"2020-02-16T18:32:00+08:00\"," \
	"\"eventType\":\"AccessControllerEvent\",\"AccessControllerEvent\":{" inner "}}"
#define HIK_REC "\"majorEventType\":5,\"subEventType\":75,\"serialNo\":7,\"cardNo\":\"1\""
#define DAHUA(data) "{\"Action\":\"Pulse\",\"Code\":\"AccessControl\",\"Data\":{" data "}}"
#define DH_TEMP "\"ManTemperatureInfo\":{\"CurrentTemperature\":36.5,\"TemperatureUnit\":0}"
#define EZVIZ(content) "{\"header\":{\"type\":\"ys.open.face\"},\"content\":\"" content "\"}"
#define EZ_T "\\\"temperature\\\":{\\\"currTemperature\\\":36.6}"
#define EZ_F "\\\"faceTime\\\":\\\"2020-02-16 18:32:00.123\\\""
#define WECOM(elems) "{\"errcode\":0,\"errmsg\":\"ok\",\"temperature_data\":[" elems "]}"
#define WECOM_ITEMS(elems)                                                               \
	"{\"errcode\":0,\"errmsg\":\"ok\",\"temperature_data\":{\"items\":[" elems "]}," \
	"\"next_cursor\":\"c1\"}"
#define WECOM_XML(list)                                                                    \
	"{\"xml\":{\"ToUserName\":\"ww1\",\"FromUserName\":\"sys\",\"MsgType\":\"event\"," \
	"\"Event\":\"device_temperature_data_report\",\"TimeStamp\":\"1581849125\","       \
	"\"TemperatureDataList\":" list ",\"DeviceSn\":\"SN1\"}}"
#define EZ_PUSH(body)                                                    \
	"{\"header\":{\"type\":\"ys.open.face\",\"messageId\":\"m-1\"}," \
	"\"body\":" body "}"
#define EZ_PF "\"faceTime\":\"2020-02-16 18:32:00.123\""
#define EZ_PT "\"temperature\":{\"currTemperature\":36.6}"
#define ACS(body) "{\"AcsEvent\":{\"searchID\":\"1\"," body "}}"
#define ACS_T "\"time\":\"2020-02-16T18:32:00+08:00\""
#define RPC2(elems)                                          \
	"{\"id\":2,\"method\":\"client.notifyEventStream\"," \
	"\"params\":{\"SID\":513,\"eventList\":[" elems "]},\"session\":1}"

static void
reject_reasons(void **state)
{
	static const struct {
		const char *topic, *payload, *reason;
	} cases[] = {
		/* Hikvision */
		{ T("G03"), HIK_ENV(HIK_REC ",\"currTemperature\":36.5"), "accepted" },
		{ T("G03"), "{" HIK_REC ",\"currTemperature\":36.5}", "missing_time" },
		{ T("G03"), "{" HIK_REC ",\"time\":null,\"currTemperature\":36.5}",
		  "missing_time" },
		{ T("G03"), "{" HIK_REC ",\"time\":\"yesterday\",\"currTemperature\":36.5}",
		  "bad_time" },
		/* no reading: a pass when it names a card or person (see
		 * passes_without_reading), else not a pass */
		{ T("G03"), HIK_ENV(HIK_REC), "accepted" },
		{ T("G03"), HIK_ENV(HIK_REC ",\"currTemperature\":null"), "accepted" },
		{ T("G03"), HIK_ENV("\"majorEventType\":5,\"subEventType\":21,\"serialNo\":7"),
		  "missing_temperature" },
		{ T("G03"),
		  HIK_ENV("\"majorEventType\":5,\"subEventType\":75,\"serialNo\":7,"
			  "\"cardNo\":\"\",\"employeeNoString\":\"\""),
		  "missing_temperature" },
		{ T("G03"),
		  HIK_ENV("\"majorEventType\":1,\"subEventType\":1024,\"serialNo\":7,"
			  "\"cardNo\":\"1\""),
		  "missing_temperature" },
		{ T("G03"),
		  HIK_ENV("\"majorEventType\":1,\"subEventType\":1024,\"serialNo\":7,"
			  "\"cardNo\":\"1\",\"currTemperature\":36.5"),
		  "accepted" },
		{ T("G03"), HIK_ENV(HIK_REC ",\"currTemperature\":\"hot\""), "bad_temperature" },
		{ T("G03"),
		  HIK_ENV(HIK_REC ",\"currTemperature\":36.5,\"thermometryUnit\":\"rankine\""),
		  "bad_temperature" },
		{ T("G03"), HIK_ENV(HIK_REC ",\"currTemperature\":36.5,\"thermometryUnit\":3"),
		  "bad_temperature" },
		{ T("G03"), HIK_ENV(HIK_REC ",\"currTemperature\":1e6"),
		  "temperature_out_of_range" },
		{ T("G03"), HIK_ENV("\"serialNo\":[7],\"currTemperature\":36.5"), "bad_field" },
		{ T("G03"), HIK_ENV("\"currTemperature\":36.5,\"employeeNoString\":{}"),
		  "bad_field" },
		{ T("G03"),
		  "{\"eventType\":\"AccessControllerEvent\",\"AccessControllerEvent\":\"x\"}",
		  "unknown_format" },
		/* Dahua */
		{ T("G07"), DAHUA("\"UTC\":1581849120," DH_TEMP), "accepted" },
		{ T("G07"), DAHUA("\"RecNo\":1," DH_TEMP), "missing_time" },
		{ T("G07"), DAHUA("\"LocaleTime\":\"16/02/2020 18:32\"," DH_TEMP), "bad_time" },
		{ T("G07"), DAHUA("\"LocaleTime\":1581849120," DH_TEMP), "bad_time" },
		{ T("G07"), DAHUA("\"UTC\":\"soon\"," DH_TEMP), "bad_time" },
		{ T("G07"), DAHUA("\"UTC\":1581849120,\"CardNo\":\"A1\""), "accepted" },
		{ T("G07"), DAHUA("\"UTC\":1581849120,\"CardNo\":\"\",\"Method\":6"),
		  "missing_temperature" },
		{ T("G07"),
		  DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":{\"TemperatureUnit\":0}"),
		  "missing_temperature" },
		{ T("G07"),
		  DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":"
			"{\"CurrentTemperature\":36.5,\"TemperatureUnit\":3}"),
		  "bad_temperature" },
		{ T("G07"),
		  DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":"
			"{\"CurrentTemperature\":5000,\"TemperatureUnit\":0}"),
		  "temperature_out_of_range" },
		{ T("G07"), DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":[36.5]"),
		  "bad_temperature" },
		{ T("G07"), DAHUA("\"UTC\":1581849120,\"RecNo\":{}," DH_TEMP), "bad_field" },
		{ T("G07"), "{\"Action\":\"Start\",\"Code\":\"VideoMotion\",\"Data\":{\"UTC\":1}}",
		  "unknown_format" },
		/* Hikvision AcsEvent search answers: an empty one ("NO MATCH") and
		 * one with no access event carry no event; one bad element rejects
		 * the whole answer (nothing of it is stored twice when resent). */
		{ T("G03"),
		  ACS("\"responseStatusStrg\":\"NO MATCH\",\"numOfMatches\":0,"
		      "\"totalMatches\":0"),
		  "no_events" },
		{ T("G03"), ACS("\"responseStatusStrg\":\"OK\",\"InfoList\":[]"), "no_events" },
		{ T("G03"), ACS("\"InfoList\":[{\"major\":2,\"minor\":39," ACS_T "}]"),
		  "no_events" },
		{ T("G03"), ACS("\"InfoList\":[{\"major\":5," ACS_T ",\"currTemperature\":36.5}]"),
		  "accepted" },
		{ T("G03"),
		  ACS("\"InfoList\":[{\"major\":\"5\"," ACS_T ",\"currTemperature\":36.5}]"),
		  "accepted" },
		{ T("G03"), ACS("\"InfoList\":[{\"major\":5,\"currTemperature\":36.5}]"),
		  "missing_time" },
		{ T("G03"),
		  ACS("\"InfoList\":[{\"major\":5," ACS_T ",\"currTemperature\":36.5},"
		      "{\"major\":5," ACS_T ",\"currTemperature\":\"hot\"}]"),
		  "bad_temperature" },
		{ T("G03"), ACS("\"InfoList\":{\"major\":5}"), "bad_field" },
		{ T("G03"), ACS("\"InfoList\":[7]"), "not_object" },
		{ T("G03"), "{\"AcsEvent\":\"NO MATCH\"}", "unknown_format" },
		{ T("G03"),
		  "{\"EventNotificationAlert\":{\"dateTime\":\"2020-02-16T18:32:00+08:00\","
		  "\"AccessControllerEvent\":{\"currTemperature\":\"36.5\"}}}",
		  "accepted" },
		{ T("G03"),
		  "{\"EventNotificationAlert\":{\"AccessControllerEvent\":"
		  "{\"currTemperature\":\"36.5\"}}}",
		  "missing_time" },
		/* Dahua client.notifyEventStream */
		{ T("G07"),
		  RPC2("{\"Code\":\"AccessControl\",\"Data\":{\"UTC\":1581849120," DH_TEMP "}}"),
		  "accepted" },
		{ T("G07"), RPC2(""), "no_events" },
		{ T("G07"), RPC2("{\"Code\":\"VideoMotion\",\"Action\":\"Start\",\"Data\":{}}"),
		  "no_events" },
		{ T("G07"), RPC2("5"), "not_object" },
		{ T("G07"), RPC2("{\"Code\":\"AccessControl\",\"Action\":\"Pulse\"}"),
		  "bad_field" },
		{ T("G07"),
		  RPC2("{\"Code\":\"AccessControl\",\"Data\":{\"UTC\":1581849120," DH_TEMP "}},"
		       "{\"Code\":\"AccessControl\",\"Data\":{" DH_TEMP "}}"),
		  "missing_time" },
		{ T("G07"),
		  "{\"method\":\"client.notifyConfigChange\",\"params\":{\"eventList\":[]}}",
		  "unknown_format" },
		{ T("G07"),
		  "{\"method\":\"client.notifyEventStream\",\"params\":{\"eventList\":{}}}",
		  "unknown_format" },
		{ T("G07"), "{\"action\":\"Pulse\",\"Code\":\"VideoMotion\",\"data\":{\"UTC\":1}}",
		  "unknown_format" },
		/* EZVIZ */
		{ T("G11"), EZVIZ("[{" EZ_F "," EZ_T "}]"), "accepted" },
		{ T("G11"), EZVIZ("{" EZ_F "," EZ_T "}"), "accepted" },
		{ T("G11"), EZVIZ("faceTime=2020-02-16 18:32:00"), "not_json" },
		{ T("G11"), EZVIZ("[{" EZ_F "," EZ_T ",\\\"id\\\":1,\\\"id\\\":2}]"), "not_json" },
		{ T("G11"), EZVIZ("[1]"), "not_object" },
		{ T("G11"), EZVIZ("[]"), "no_events" },
		{ T("G11"), EZVIZ("[{" EZ_T "}]"), "missing_time" },
		{ T("G11"), EZVIZ("[{\\\"faceTime\\\":\\\"02/16/2020\\\"," EZ_T "}]"), "bad_time" },
		{ T("G11"), EZVIZ("[{" EZ_F "," EZ_T "},{" EZ_F "}]"), "missing_temperature" },
		{ T("G11"), EZVIZ("[{" EZ_F ",\\\"temperature\\\":36.6}]"), "bad_temperature" },
		{ T("G11"),
		  EZVIZ("[{" EZ_F ",\\\"cardNo\\\":\\\"C-1\\\",\\\"temperature\\\":36.6}]"),
		  "bad_temperature" },
		{ T("G11"), EZVIZ("[{" EZ_F "," EZ_T "},{" EZ_F ",\\\"cardNo\\\":\\\"C-1\\\"}]"),
		  "accepted" },
		{ T("G11"),
		  EZVIZ("[{" EZ_F ",\\\"temperature\\\":{\\\"currTemperature\\\":\\\"n/a\\\"}}]"),
		  "bad_temperature" },
		/* EZVIZ message push: header + body */
		{ T("G11"), EZ_PUSH("{" EZ_PF "," EZ_PT "}"), "accepted" },
		{ T("G11"), EZ_PUSH("[{" EZ_PF "," EZ_PT "},{" EZ_PF "," EZ_PT "}]"), "accepted" },
		{ T("G11"), EZ_PUSH("\"[{" EZ_F "," EZ_T "}]\""), "accepted" },
		{ T("G11"), EZ_PUSH("[]"), "no_events" },
		{ T("G11"), EZ_PUSH("5"), "bad_field" },
		{ T("G11"), EZ_PUSH("\"{faceTime\""), "not_json" },
		{ T("G11"),
		  "{\"header\":{\"type\":\"ys.onoffline\",\"messageId\":\"m-2\","
		  "\"messageTime\":1581849120456},\"body\":{\"msgType\":\"ONLINE\"}}",
		  "missing_time" },
		{ T("G11"), "{\"header\":{\"messageId\":[1]},\"body\":{" EZ_PF "," EZ_PT "}}",
		  "bad_field" },
		/* WeCom */
		{ T("G15"),
		  WECOM("{\"userid\":\"a\",\"temperature\":\"36.6\",\"timestamp\":1581849120}"),
		  "accepted" },
		{ T("G15"), WECOM(""), "no_events" },
		{ T("G15"), WECOM("5"), "not_object" },
		{ T("G15"), WECOM("{\"temperature\":\"36.6\"}"), "missing_time" },
		{ T("G15"), WECOM("{\"temperature\":\"36.6\",\"timestamp\":\"yesterday\"}"),
		  "bad_time" },
		{ T("G15"), WECOM("{\"timestamp\":1581849120}"), "missing_temperature" },
		{ T("G15"), WECOM("{\"temperature\":\"\",\"timestamp\":1581849120}"),
		  "missing_temperature" },
		{ T("G15"), WECOM("{\"temperature\":\"36,6\",\"timestamp\":1581849120}"),
		  "bad_temperature" },
		{ T("G15"),
		  WECOM("{\"temperature\":\"36.6\",\"timestamp\":1581849120,\"userid\":[1]}"),
		  "bad_field" },
		/* WeCom get_temperature_data replies and callbacks */
		{ T("G15"), WECOM_ITEMS(""), "no_events" },
		{ T("G25"), WECOM_ITEMS(""), "no_events" },
		{ T("G15"), WECOM_ITEMS("5"), "not_object" },
		{ T("G15"), WECOM_ITEMS("{\"open_userid\":\"a\",\"temperature\":\"36.6\"}"),
		  "missing_time" },
		{ T("G15"), "{\"errcode\":0,\"errmsg\":\"ok\",\"temperature_data\":{\"items\":{}}}",
		  "bad_field" },
		{ T("G15"), "{\"errcode\":40014,\"errmsg\":\"invalid access_token\"}",
		  "vendor_error" },
		{ T("G25"), "{\"errcode\":40014,\"errmsg\":\"invalid access_token\"}",
		  "vendor_error" },
		{ T("G15"),
		  "{\"errcode\":301002,\"errmsg\":\"no privilege\","
		  "\"temperature_data\":{\"items\":[]}}",
		  "vendor_error" },
		{ T("G15"), "{\"errcode\":0,\"errmsg\":\"ok\"}", "unknown_format" },
		{ T("G15"), WECOM_XML("{\"Item\":[]}"), "no_events" },
		{ T("G15"), WECOM_XML("null"), "no_events" },
		{ T("G15"), WECOM_XML("[\"\"]"), "no_events" },
		{ T("G15"), WECOM_XML("{\"Item\":\"x\"}"), "not_object" },
		{ T("G15"),
		  WECOM_XML("{\"Item\":{\"OpenUserId\":\"a\",\"TimeStamp\":\"1581849120\"}}"),
		  "missing_temperature" },
		{ T("G15"), WECOM_XML("{\"Item\":{\"OpenUserId\":\"a\",\"Temperature\":\"36.6\"}}"),
		  "missing_time" },
		{ T("G15"),
		  "{\"xml\":{\"MsgType\":\"event\",\"Event\":\"device_data_report\","
		  "\"TemperatureDataList\":{}}}",
		  "unknown_format" },
		/* DIY */
		{ T("G09"), "36.6", "accepted" },
		{ T("G09"), "[]", "not_object" },
		{ T("G09"), "[36.6,\"x\"]", "not_object" },
		{ T("G22"), "[36.6,\"x\"]", "bad_temperature" },
		{ T("G22"), "\"36.6\"", "accepted" },
		{ T("G09"), "{\"temp\":\"hot\"}", "bad_temperature" },
		{ T("G09"), "{\"temp\":null}", "missing_temperature" },
		{ T("G09"), "{\"temp\":null,\"card\":\"\"}", "missing_temperature" },
		{ T("G09"), "{\"temp\":null,\"card\":\"C-1\"}", "accepted" },
		{ T("G22"), "{\"card\":\"C-1\",\"battery\":80}", "accepted" },
		{ T("G22"), "{\"battery\":80}", "missing_temperature" },
		{ T("G09"), "1e300", "temperature_out_of_range" },
		{ T("G09"), "{\"temperature\":36.6}", "unknown_format" },
		{ T("G09"), "{\"temp\":36.6,\"battery\":80}", "unknown_format" },
		{ T("G22"), "{\"temp\":36.6,\"battery\":80}", "accepted" },
		{ T("G22"), "{\"temp\":36.6,\"ts\":\"noon\"}", "bad_time" },
		{ T("G22"), "{\"temp\":36.6,\"id\":[1]}", "bad_field" },
		{ T("G22"), "{\"temp\":36.6,\"card\":{}}", "bad_field" },
		/* Tasmota and ESPHome on a gate pinned to diy */
		{ T("G22"), "{\"Time\":\"noon\",\"MLX90614\":{\"OBJTMP\":36.9}}", "bad_time" },
		{ T("G22"), "{\"Time\":\"2020-02-16T18:32:00\",\"MLX90614\":{\"AMBTMP\":24.1}}",
		  "missing_temperature" },
		{ T("G22"), "{\"MLX90614\":{\"OBJTMP\":null,\"AMBTMP\":24.1}}",
		  "missing_temperature" },
		{ T("G22"), "{\"MLX90614\":{\"OBJTMP\":36.9},\"TempUnit\":\"K\"}",
		  "bad_temperature" },
		{ T("G22"), "{\"MLX90614\":{\"OBJTMP\":\"hot\"}}", "bad_temperature" },
		{ T("G22"),
		  "{\"DS18B20-1\":{\"Temperature\":36.7},\"DS18B20-2\":{\"Temperature\":22.1}}",
		  "bad_temperature" },
		{ T("G22"),
		  "{\"SHT3X\":{\"Temperature\":22.1,\"Humidity\":40},"
		  "\"MLX90614\":{\"OBJTMP\":36.9,\"AMBTMP\":22.0}}",
		  "accepted" },
		{ T("G22"), "{\"StatusSNS\":{\"Time\":\"2020-02-16T18:32:00\"}}",
		  "missing_temperature" },
		{ T("G22"), "{\"id\":\"sensor-t\",\"value\":null,\"state\":\"NA\"}",
		  "missing_temperature" },
		{ T("G22"), "{\"state\":\"36.9 \u00b0C\"}", "bad_temperature" },
		{ T("G22"), "{\"state\":\"36.9\"}", "accepted" },
		{ T("G22"), "{\"state\":36.9}", "accepted" },
		/* Two vendors' keys at once: the shapes overlap, nothing is guessed. */
		{ T("G07"),
		  "{\"Action\":\"Pulse\",\"Data\":{\"UTC\":1581849120},\"currTemperature\":36.5}",
		  "ambiguous_format" },
		{ T("G07"), "{\"content\":\"[]\",\"temperature_data\":[]}", "ambiguous_format" },
		/* A pinned gate: a canonical event on a Hikvision gate has no time. */
		{ T("G23"), "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":36.6}",
		  "missing_time" },
		{ T("G03"), "{\"ts\":\"2020-02-16T18:32:00+08:00\",\"temp_c\":36.6}", "accepted" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *got = reason_max(cases[i].topic, cases[i].payload, NORM_MAX_EVENTS);

		if (strcmp(got, cases[i].reason) != 0)
			fail_msg("case %zu (%s): got %s, want %s", i, cases[i].payload, got,
				 cases[i].reason);
	}
}

/* Each format's largest valid values reach the event whole, and a reading
 * that converts beyond the numeric(4,1) column is the reject
 * temperature_out_of_range naming the field (never a PostgreSQL error). */
static void
vendor_bounds(void **state)
{
#define ID64 "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567-_/%"
	static const struct {
		const char *topic, *payload, *reason;
		int16_t temp_dc;	/* of the last event, when accepted */
		const char *time, *key; /* of the last event ("#n": hash and index n) */
	} cases[] = {
		/* Hikvision: Kelvin and Fahrenheit at the edge; the longest record ids. */
		{ T("G03"),
		  HIK_ENV("\"serialNo\":\"" ID64 "\",\"currTemperature\":1273.09,"
			  "\"thermometryUnit\":\"kelvin\""),
		  "accepted", 9999, "2020-02-16 10:32:00.000000+00", "s1/G03/" ID64 },
		{ T("G03"),
		  HIK_ENV("\"serialNo\":9223372036854775807,\"currTemperature\":1831.89,"
			  "\"thermometryUnit\":1"),
		  "accepted", 9999, "2020-02-16 10:32:00.000000+00", "s1/G03/9223372036854775807" },
		{ T("G03"),
		  HIK_ENV("\"serialNo\":-9223372036854775807,\"currTemperature\":-1767.85,"
			  "\"thermometryUnit\":\"fahrenheit\""),
		  "accepted", -9999, "2020-02-16 10:32:00.000000+00",
		  "s1/G03/-9223372036854775807" },
		{ T("G03"), HIK_ENV("\"currTemperature\":1273.15,\"thermometryUnit\":2"),
		  "temperature_out_of_range", 0, NULL, NULL },
		{ T("G03"), HIK_ENV("\"currTemperature\":1832,\"thermometryUnit\":1"),
		  "temperature_out_of_range", 0, NULL, NULL },
		/* Dahua: the largest epoch seconds, the longest RecNo. */
		{ T("G07"),
		  DAHUA("\"RecNo\":\"" ID64 "\",\"UTC\":99999999999,\"ManTemperatureInfo\":"
			"{\"CurrentTemperature\":-999.9,\"TemperatureUnit\":-1}"),
		  "accepted", -9999, "5138-11-16 09:46:39.000000+00", "s1/G07/" ID64 },
		{ T("G07"), DAHUA("\"UTC\":0,\"CurrentTemperature\":\"999.94\""), "accepted", 9999,
		  "1970-01-01 00:00:00.000000+00", "#0" },
		{ T("G07"),
		  DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":"
			"{\"CurrentTemperature\":1832,\"TemperatureUnit\":1}"),
		  "temperature_out_of_range", 0, NULL, NULL },
		/* EZVIZ: one element beyond the column rejects the message. */
		{ T("G11"),
		  EZVIZ("[{\\\"id\\\":\\\"" ID64 "\\\",\\\"faceTime\\\":"
			"\\\"9999-12-31 23:59:59.999\\\",\\\"temperature\\\":"
			"{\\\"currTemperature\\\":999.9}}]"),
		  "accepted", 9999, "9999-12-31 15:59:59.999000+00", "s1/G11/" ID64 },
		{ T("G11"),
		  EZVIZ("[{" EZ_F "," EZ_T "},{" EZ_F ",\\\"temperature\\\":"
			"{\\\"currTemperature\\\":1000}}]"),
		  "temperature_out_of_range", 0, NULL, NULL },
		/* WeCom: the largest epoch milliseconds, to the microsecond. */
		{ T("G15"), WECOM("{\"temperature\":\"-999.94\",\"timestamp\":99999999999999}"),
		  "accepted", -9999, "5138-11-16 09:46:39.999000+00", "#0" },
		{ T("G15"),
		  WECOM("{\"temperature\":\"36.6\",\"timestamp\":1581849120},"
			"{\"temperature\":\"-999.96\",\"timestamp\":1581849120}"),
		  "temperature_out_of_range", 0, NULL, NULL },
		/* DIY in a Fahrenheit gate. */
		{ T("G21"), "[36.6,{\"temp\":1831.8,\"id\":\"" ID64 "\"}]", "accepted", 9999, RECV,
		  "s1/G21/" ID64 },
		{ T("G21"), "[98.6,1832]", "temperature_out_of_range", 0, NULL, NULL },
	};
	static const char *const details[] = {
		"content[1].temperature.currTemperature 1000 is beyond",
		"temperature_data[1].temperature -999.96 is beyond",
		"reading 1 1832 is beyond",
		"CurrentTemperature 1832 is beyond",
		"currTemperature 1273.15 is beyond",
	};
	int seen[sizeof(details) / sizeof(details[0])] = { 0 };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;
		const struct event *ev;
		char ts[40], key[NORM_KEY_MAX], hex[33];
		struct norm_input in = {
			.topic = cases[i].topic,
			.topic_len = strlen(cases[i].topic),
			.payload = (const uint8_t *)cases[i].payload,
			.payload_len = strlen(cases[i].payload),
		};

		assert_int_equal(run_max(cases[i].topic, cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (strcmp(res.reason ? res.reason : "accepted", cases[i].reason) != 0)
			fail_msg("case %zu: got %s (%s), want %s", i,
				 res.reason ? res.reason : "accepted", res.detail, cases[i].reason);
		for (size_t d = 0; res.reason && d < sizeof(details) / sizeof(details[0]); d++)
			seen[d] |= strstr(res.detail, details[d]) != NULL;
		if (res.reason)
			continue;
		ev = &evs[res.nevents - 1];
		normalize_format_time(ev->device_us, ts, sizeof(ts));
		normalize_message_hash(&in, hex);
		if (cases[i].key[0] == '#')
			keyless_key(key, sizeof(key), hex, cases[i].key + 1);
		else
			snprintf(key, sizeof(key), "%s", cases[i].key);
		if (ev->temp_dc != cases[i].temp_dc || strcmp(ts, cases[i].time) != 0 ||
		    strcmp(ev->key, key) != 0 || !(ev->flags & FLAG_IMPLAUSIBLE))
			fail_msg("case %zu: temp %d time %s key %s flags %u", i, ev->temp_dc, ts,
				 ev->key, ev->flags);
	}
	for (size_t d = 0; d < sizeof(details) / sizeof(details[0]); d++)
		if (!seen[d])
			fail_msg("no reject detail says \"%s\"", details[d]);
#undef ID64
}

/* "[36.6,36.6,...]" with n readings; the caller frees. */
static char *
diy_batch(int n)
{
	char *s = malloc(5 * (size_t)n + 3);
	size_t len = 0;

	assert_non_null(s);
	s[len++] = '[';
	for (int i = 0; i < n; i++)
		len += (size_t)sprintf(s + len, "%s36.6", i ? "," : "");
	strcpy(s + len, "]");
	return s;
}

/* Every format honours the caller's cap on events. */
static void
event_caps(void **state)
{
	static const struct {
		const char *file, *topic;
		size_t max;
	} full[] = {
		{ "ezviz_two_events.json", T("G11"), 1 },
		{ "wecom_report.json", T("G15"), 2 },
		{ "wecom_get_reply.json", T("G15"), 1 },
		{ "wecom_xml_callback_array.json", T("G15"), 1 },
		{ "diy_batch.json", T("G09"), 2 },
		{ "hikvision_envelope.json", T("G03"), 0 },
		{ "dahua_utc.json", T("G07"), 0 },
		{ "diy_object.json", T("G09"), 0 },
		{ "hikvision_acsevent_search.json", T("G03"), 1 },
		{ "dahua_rpc2_mixed.json", T("G07"), 1 },
	};
	struct norm_result res;
	char *big;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(full) / sizeof(full[0]); i++) {
		char *buf = load(full[i].file, &len);

		assert_int_equal(run_max(full[i].topic, buf, len, full[i].max, &res), 0);
		if (!res.reason || strcmp(res.reason, "too_many_events") != 0)
			fail_msg("%s with max %zu: %s", full[i].file, full[i].max,
				 res.reason ? res.reason : "accepted");
		free(buf);
	}

	/* A DIY batch of NORM_MAX_EVENTS readings fits, one more does not. */
	big = diy_batch(NORM_MAX_EVENTS);
	assert_string_equal(reason_max(T("G09"), big, NORM_MAX_EVENTS), "accepted");
	assert_int_equal(evs[NORM_MAX_EVENTS - 1].temp_dc, 366);
	free(big);
	big = diy_batch(NORM_MAX_EVENTS + 1);
	assert_string_equal(reason_max(T("G09"), big, NORM_MAX_EVENTS), "too_many_events");
	free(big);

	/* So does a WeCom report. */
	big = malloc(64 * (NORM_MAX_EVENTS + 1) + 64);
	assert_non_null(big);
	len = (size_t)sprintf(big, "{\"temperature_data\":[");
	for (int i = 0; i <= NORM_MAX_EVENTS; i++)
		len += (size_t)sprintf(big + len, "%s{\"temperature\":\"36.6\",\"timestamp\":%d}",
				       i ? "," : "", 1581849120 + i);
	sprintf(big + len, "]}");
	assert_string_equal(reason_max(T("G15"), big, NORM_MAX_EVENTS), "too_many_events");
	free(big);
}

/* One rule for numbers written as strings (field case 20b: a check took
 * "37.8" while a gate event rejected it): every topic and format that
 * reads a temperature takes a plain decimal string as the number and
 * rejects any other string as bad_temperature. Each template has one %s
 * for the quoted value (EZVIZ's is inside a JSON string, hence \").
 * WeCom's "" is its documented "not measured" (missing_temperature). */
static void
numbers_as_strings(void **state)
{
	static const struct {
		const char *topic, *fmt;
		int nested;
	} where[] = {
		{ T("G03"), "{\"ts\":1581849120,\"temp_c\":%s}", 0 },
		{ "cordon/s1/isolation/H1/check",
		  "{\"ts\":1581849120,\"person\":\"P-1\",\"temp_c\":%s}", 0 },
		{ T("G03"), HIK_ENV(HIK_REC ",\"currTemperature\":%s"), 0 },
		{ T("G07"),
		  DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":"
			"{\"CurrentTemperature\":%s,\"TemperatureUnit\":0}"),
		  0 },
		{ T("G11"), EZVIZ("[{" EZ_F ",\\\"temperature\\\":{\\\"currTemperature\\\":%s}}]"),
		  1 },
		{ T("G12"),
		  WECOM("{\"userid\":\"u1\",\"temperature\":%s,\"timestamp\":1581849120,"
			"\"status\":0}"),
		  0 },
		{ T("G22"), "{\"temp\":%s}", 0 },
		{ T("G22"), "[%s]", 0 },
	};
	static const struct {
		const char *s;
		int16_t dc;
	} good[] = {
		{ "37.8", 378 }, { " 37.8 ", 378 },    { "037.80", 378 },
		{ "37", 370 },	 { "36.650000", 367 }, { "-1.5", -15 },
	};
	static const char *const bad[] = {
		"",	  " ",
		"3.78e1", "0x25",
		"+37.8",  "37,8",
		"37.8C",  "37.8 C",
		".5",	  "37.",
		"inf",	  "nan",
		"37.8.1", "- 37.8",
		"--1",	  "hot",
		"37..8",  "000000000000000000000000000000037.8", /* 35 bytes: over the cap */
	};

	(void)state;
	for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
		const char *q = where[w].nested ? "\\\"" : "\"";

		size_t ngood = sizeof(good) / sizeof(good[0]);

		for (size_t i = 0; i < ngood + sizeof(bad) / sizeof(bad[0]); i++) {
			int ok = i < ngood;
			size_t j = ok ? i : i - ngood;
			const char *want = "bad_temperature";
			char val[64], payload[512];
			struct norm_result res;

			if (!ok && bad[j][0] == '\0' && strstr(where[w].fmt, "userid"))
				want = "missing_temperature";
			snprintf(val, sizeof(val), "%s%s%s", q, ok ? good[j].s : bad[j], q);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			snprintf(payload, sizeof(payload), where[w].fmt, val);
#pragma GCC diagnostic pop
			assert_int_equal(run_max(where[w].topic, payload, strlen(payload),
						 NORM_MAX_EVENTS, &res),
					 0);
			if (ok && (res.reason || res.nevents != 1 || evs[0].temp_dc != good[j].dc))
				fail_msg("%s: got %s, temp %d, want %d", payload,
					 res.reason ? res.reason : "accepted", evs[0].temp_dc,
					 good[j].dc);
			if (!ok && (!res.reason || strcmp(res.reason, want) != 0))
				fail_msg("%s: got %s, want %s", payload,
					 res.reason ? res.reason : "accepted", want);
		}
	}
}

/* The same rule for integer-coded fields written as strings: units and
 * the devices' abnormal flags and status codes take "1" and " 1 " as 1,
 * and refuse "1.0", "0x1", "+1" (a unit: bad_temperature; a flag: not
 * set). */
static void
integer_codes_as_strings(void **state)
{
#define HIK_U(u) HIK_ENV(HIK_REC ",\"currTemperature\":98.6,\"thermometryUnit\":" u)
#define DH_U(u)                                            \
	DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":" \
	      "{\"CurrentTemperature\":98.6,\"TemperatureUnit\":" u "}")
#define EZ_U(u)                                                               \
	EZVIZ("[{" EZ_F ",\\\"temperature\\\":{\\\"currTemperature\\\":98.6," \
	      "\\\"thermometryUnit\\\":" u "}}]")
#define HIK_A(a) HIK_ENV(HIK_REC ",\"currTemperature\":38.2,\"isAbnomalTemperature\":" a)
#define DH_A(a)                                            \
	DAHUA("\"UTC\":1581849120,\"ManTemperatureInfo\":" \
	      "{\"CurrentTemperature\":38.2,\"IsOverTemperature\":" a "}")
#define EZ_A(a)                                                               \
	EZVIZ("[{" EZ_F ",\\\"temperature\\\":{\\\"currTemperature\\\":38.2," \
	      "\\\"isAbnormalTemperature\\\":" a "}}]")
#define WC_S(st)                                                                      \
	WECOM("{\"userid\":\"u1\",\"temperature\":\"38.2\",\"timestamp\":1581849120," \
	      "\"status\":" st "}")
	static const struct {
		const char *topic, *payload, *reason;
		int16_t temp_dc;
		unsigned flags;
	} cases[] = {
		{ T("G03"), HIK_U("1"), "accepted", 370, 0 },
		{ T("G03"), HIK_U("\"1\""), "accepted", 370, 0 },
		{ T("G03"), HIK_U("\" 1 \""), "accepted", 370, 0 },
		{ T("G03"), HIK_U("\"1.0\""), "bad_temperature", 0, 0 },
		{ T("G03"), HIK_U("\"0x1\""), "bad_temperature", 0, 0 },
		{ T("G03"), HIK_U("\"+1\""), "bad_temperature", 0, 0 },
		{ T("G07"), DH_U("\"1\""), "accepted", 370, 0 },
		{ T("G07"), DH_U("\" 1\""), "accepted", 370, 0 },
		{ T("G07"), DH_U("\"01\""), "accepted", 370, 0 },
		{ T("G07"), DH_U("\"1.0\""), "bad_temperature", 0, 0 },
		{ T("G07"), DH_U("\"one\""), "bad_temperature", 0, 0 },
		{ T("G11"), EZ_U("\\\" 1\\\""), "accepted", 370, 0 },
		{ T("G11"), EZ_U("\\\"1.0\\\""), "bad_temperature", 0, 0 },
		{ T("G03"), HIK_A("\"1\""), "accepted", 382, ABN },
		{ T("G03"), HIK_A("\"true\""), "accepted", 382, ABN },
		{ T("G03"), HIK_A("\"0\""), "accepted", 382, 0 },
		{ T("G03"), HIK_A("\"yes\""), "accepted", 382, 0 },
		{ T("G07"), DH_A("\"1\""), "accepted", 382, ABN },
		{ T("G07"), DH_A("true"), "accepted", 382, ABN },
		{ T("G07"), DH_A("\"0\""), "accepted", 382, 0 },
		{ T("G07"), DH_A("\"1.0\""), "accepted", 382, 0 },
		{ T("G11"), EZ_A("\\\"1\\\""), "accepted", 382, ABN },
		{ T("G11"), EZ_A("1"), "accepted", 382, ABN },
		{ T("G11"), EZ_A("\\\"0\\\""), "accepted", 382, 0 },
		{ T("G12"), WC_S("1"), "accepted", 382, ABN },
		{ T("G12"), WC_S("\" 1 \""), "accepted", 382, ABN },
		{ T("G12"), WC_S("\"2\""), "accepted", 382, 0 },
		{ T("G12"), WC_S("\"1.0\""), "accepted", 382, 0 },
	};
#undef HIK_U
#undef DH_U
#undef EZ_U
#undef HIK_A
#undef DH_A
#undef EZ_A
#undef WC_S

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;
		const char *got;

		assert_int_equal(run_max(cases[i].topic, cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		got = res.reason ? res.reason : "accepted";
		if (strcmp(got, cases[i].reason) != 0)
			fail_msg("case %zu (%s): got %s, want %s", i, cases[i].payload, got,
				 cases[i].reason);
		if (res.reason)
			continue;
		if (evs[0].temp_dc != cases[i].temp_dc || (evs[0].flags & ABN) != cases[i].flags)
			fail_msg("case %zu (%s): temp %d flags %#x, want %d %#x", i,
				 cases[i].payload, evs[0].temp_dc, evs[0].flags, cases[i].temp_dc,
				 cases[i].flags);
	}
}

/* Passes without a reading (issue 14.3, field case 03): an access event
 * without its temperature block that names a card or a person is a gate
 * event with temp_dc TEMP_NONE, in every format that can carry one; the
 * gate rules then run on it (test_rules.c). Each case also names the
 * vendor documentation or capture it follows (comments in norm_*.c). */
static void
passes_without_reading(void **state)
{
	static const struct {
		const char *file; /* a field case under ../field-cases, or NULL */
		const char *topic, *payload, *vendor, *card, *person, *key;
		int mask;
		enum direction dir;
		unsigned flags;
	} cases[] = {
		/* Field case 03: a DS-K1T341 refusing an unknown card (5/9), no
		 * thermometry keys at all; its 2024 clock is skewed against RECV. */
		{ "03-hik-unknown-card-no-temperature.json", T("G03"), NULL, "hikvision", "C-9901",
		  "", "s1/G03/5531", -1, DIR_NONE, FLAG_CLOCK_SKEW },
		/* An element of an AcsEvent search (major/minor, its own time). */
		{ NULL, T("G03"),
		  "{\"major\":5,\"minor\":1,\"time\":\"2020-02-16T18:32:00+08:00\","
		  "\"cardNo\":\"3308812528\",\"cardType\":1,\"cardReaderNo\":1,\"doorNo\":1,"
		  "\"employeeNoString\":\"31\",\"serialNo\":10455,\"userType\":\"normal\","
		  "\"currentVerifyMode\":\"faceOrFpOrCardOrPw\",\"mask\":\"unknown\"}",
		  "hikvision", "3308812528", "31", "s1/G03/10455", -1, DIR_NONE, 0 },
		/* A face pass with the thermal module off: the person only. */
		{ NULL, T("G03"),
		  HIK_ENV("\"majorEventType\":5,\"subEventType\":75,"
			  "\"employeeNoString\":\"1042\",\"serialNo\":1300,\"mask\":\"no\""),
		  "hikvision", "", "1042", "s1/G03/1300", 0, DIR_NONE, 0 },
		/* An ID number as the person, hashed; "" card: the person counts. */
		{ NULL, T("G03"),
		  HIK_ENV("\"majorEventType\":\"5\",\"cardNo\":\"\","
			  "\"employeeNoString\":\"110101199003078515\",\"serialNo\":1301"),
		  "hikvision", "", HASH_ID1, "s1/G03/1301", -1, DIR_NONE, 0 },
		/* Dahua card reader: Code AccessControl, no ManTemperatureInfo. */
		{ NULL, T("G07"),
		  "{\"Action\":\"Pulse\",\"Code\":\"AccessControl\",\"Index\":0,"
		  "\"Data\":{\"RecNo\":5200,\"UTC\":1581849120,\"CardNo\":\"AABB1122\",\"Door\":0,"
		  "\"ErrorCode\":0,\"Method\":1,\"ReaderID\":\"1\",\"Status\":1,\"Type\":\"Exit\","
		  "\"UserID\":\"1042\",\"UserType\":0}}",
		  "dahua", "AABB1122", "1042", "s1/G07/5200", -1, DIR_OUT, 0 },
		/* Dahua VTO intercom: a user id only, no record number. */
		{ NULL, T("G07"),
		  "{\"Code\":\"AccessControl\",\"Action\":\"Pulse\","
		  "\"Data\":{\"UTC\":1581849120,\"Method\":6,\"UserID\":\"1011\"}}",
		  "dahua", "", "1011", "#0", -1, DIR_NONE, 0 },
		/* EZVIZ: an element without its temperature object. */
		{ NULL, T("G11"),
		  EZVIZ("[{\\\"id\\\":\\\"e-1\\\"," EZ_F ",\\\"cardNo\\\":\\\"C-5\\\","
			"\\\"mask\\\":\\\"yes\\\"}]"),
		  "ezviz", "C-5", "", "s1/G11/e-1", 1, DIR_NONE, 0 },
		/* Canonical: a card reader sends no temp_c at all. */
		{ NULL, T("G05"),
		  "{\"id\":\"C-77\",\"ts\":\"2020-02-16T18:32:00+08:00\","
		  "\"card\":\"C-0412\",\"direction\":\"out\"}",
		  "canonical", "C-0412", "", "s1/G05/C-77", -1, DIR_OUT, 0 },
		{ NULL, T("G05"), "{\"ts\":1581849120,\"person\":\"P-1\"}", "canonical", "", "P-1",
		  "#0", -1, DIR_NONE, 0 },
		/* DIY: a sensor that read nothing, with a card. */
		{ NULL, T("G09"),
		  "{\"temp\":null,\"card\":\"C-0412\",\"id\":\"r-90\","
		  "\"ts\":1581849120}",
		  "diy", "C-0412", "", "s1/G09/r-90", -1, DIR_NONE, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_input in = { .topic = cases[i].topic,
					 .topic_len = strlen(cases[i].topic) };
		struct norm_result res;
		const struct event *ev = &evs[0];
		char key[NORM_KEY_MAX], hex[33], name[128];
		char *buf = NULL;
		const char *payload = cases[i].payload;
		size_t len;

		if (cases[i].file) {
			snprintf(name, sizeof(name), "../field-cases/%s", cases[i].file);
			buf = load(name, &len);
			payload = buf;
		} else {
			len = strlen(payload);
		}
		assert_int_equal(run_max(cases[i].topic, payload, len, NORM_MAX_EVENTS, &res), 0);
		if (res.reason || res.nevents != 1)
			fail_msg("case %zu: %s (%s), %zu events", i,
				 res.reason ? res.reason : "accepted", res.detail, res.nevents);
		in.payload = (const uint8_t *)payload;
		in.payload_len = len;
		normalize_message_hash(&in, hex);
		if (cases[i].key[0] == '#')
			keyless_key(key, sizeof(key), hex, cases[i].key + 1);
		else
			snprintf(key, sizeof(key), "%s", cases[i].key);
		if (ev->type != EVENT_GATE || ev->temp_dc != TEMP_NONE ||
		    strcmp(ev->vendor, cases[i].vendor) != 0 ||
		    strcmp(ev->card, cases[i].card) != 0 ||
		    strcmp(ev->person, cases[i].person) != 0 || strcmp(ev->key, key) != 0 ||
		    ev->mask != cases[i].mask || ev->direction != cases[i].dir ||
		    ev->flags != cases[i].flags)
			fail_msg("case %zu: %s temp %d card '%s' person '%s' key %s mask %d dir %d "
				 "flags %u",
				 i, ev->vendor, ev->temp_dc, ev->card, ev->person, ev->key,
				 ev->mask, ev->direction, ev->flags);
		free(buf);
	}
}

/* Field cases 01 and 05 (tests/fixtures/field-cases/, byte for byte):
 * a Hikvision AcsEvent search answer and a Dahua RPC2
 * client.notifyEventStream give one event per element, at the right UTC
 * time ("-00:00" is UTC) and temperature, each keyed by its record id. */
static void
field_case_envelopes(void **state)
{
	static const struct {
		const char *file, *topic;
		int64_t received_us;
		size_t nevents;
		struct {
			int16_t temp_dc;
			const char *time, *person, *card, *key;
			unsigned flags;
			int mask;
		} ev[2];
	} cases[] = {
		{ "01-hik-acsevent-search-response.json",
		  T("G03"),
		  1704819200000000LL,
		  2,
		  { { 379, "2024-01-09 16:51:51.000000+00", "7001", "", "s1/G03/4101", ABN, 1 },
		    { 364, "2024-01-09 16:52:10.000000+00", "7002", "", "s1/G03/4102", 0, 0 } } },
		{ "05-dahua-rpc2-notify-eventlist.json",
		  T("G07"),
		  1585587600000000LL,
		  1,
		  { { 380, "2020-03-30 16:58:45.000000+00", "3302", "C-0889", "s1/G07/7722", ABN,
		      -1 } } },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		char name[128];
		struct norm_result res;
		size_t len;
		char *buf;
		struct norm_input in = {
			.topic = cases[c].topic,
			.topic_len = strlen(cases[c].topic),
			.received_us = cases[c].received_us,
		};

		snprintf(name, sizeof(name), "../field-cases/%s", cases[c].file);
		buf = load(name, &len);
		in.payload = (const uint8_t *)buf;
		in.payload_len = in.orig_len = len;
		assert_int_equal(normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, &res), 0);
		if (res.reason)
			fail_msg("%s: rejected %s (%s)", cases[c].file, res.reason, res.detail);
		assert_int_equal(res.nevents, cases[c].nevents);
		for (size_t i = 0; i < res.nevents; i++) {
			char ts[40];

			normalize_format_time(evs[i].device_us, ts, sizeof(ts));
			if (evs[i].temp_dc != cases[c].ev[i].temp_dc ||
			    strcmp(ts, cases[c].ev[i].time) != 0 ||
			    strcmp(evs[i].person, cases[c].ev[i].person) != 0 ||
			    strcmp(evs[i].card, cases[c].ev[i].card) != 0 ||
			    strcmp(evs[i].key, cases[c].ev[i].key) != 0 ||
			    evs[i].flags != cases[c].ev[i].flags ||
			    evs[i].mask != cases[c].ev[i].mask)
				fail_msg("%s[%zu]: temp %d time %s person '%s' card '%s' key %s "
					 "flags %u mask %d",
					 cases[c].file, i, evs[i].temp_dc, ts, evs[i].person,
					 evs[i].card, evs[i].key, evs[i].flags, evs[i].mask);
			assert_true(evs[i].rule_us == evs[i].device_us);
		}
		free(buf);
	}
}

/* WeCom's person ids (field cases 07a/07b): userid (direct connection),
 * open_userid (cloud API, third-party data), user_id (bridges), the first
 * present and non-empty; status 1 is the device's fever verdict, 2 (too
 * low) sets nothing. An element without its temperature is no pass,
 * whoever it names. */
static void
wecom_person_ids(void **state)
{
	static const struct {
		const char *payload, *reason, *person;
		int16_t temp_dc;
		unsigned flags;
	} cases[] = {
		{ WECOM("{\"open_userid\":\"wo-1\",\"temperature\":\"36.6\",\"timestamp\":1581849120}"),
		  "accepted", "wo-1", 366, 0 },
		{ WECOM("{\"userid\":\"zhangsan\",\"open_userid\":\"wo-1\",\"temperature\":\"36.6\","
			"\"timestamp\":1581849120}"),
		  "accepted", "zhangsan", 366, 0 },
		{ WECOM("{\"userid\":\"\",\"open_userid\":\"wo-1\",\"temperature\":\"36.6\","
			"\"timestamp\":1581849120}"),
		  "accepted", "wo-1", 366, 0 },
		{ WECOM("{\"user_id\":\"u-9\",\"temperature\":\"36.6\",\"timestamp\":1581849120}"),
		  "accepted", "u-9", 366, 0 },
		{ WECOM("{\"open_userid\":\"wo-1\",\"temperature\":\"35.1\",\"timestamp\":1581849120,"
			"\"status\":2}"),
		  "accepted", "wo-1", 351, 0 },
		{ WECOM("{\"open_userid\":\"110101199003078515\",\"temperature\":\"38.2\","
			"\"timestamp\":1581849120,\"status\":1}"),
		  "accepted", HASH_ID1, 382, ABN },
		{ WECOM("{\"open_userid\":[1],\"temperature\":\"36.6\",\"timestamp\":1581849120}"),
		  "bad_field", NULL, 0, 0 },
		{ WECOM("{\"open_userid\":\"wo-1\",\"timestamp\":1581849120}"),
		  "missing_temperature", NULL, 0, 0 },
		{ WECOM("{\"open_userid\":\"wo-1\",\"temperature\":\"\",\"timestamp\":1581849120}"),
		  "missing_temperature", NULL, 0, 0 },
	};
	static const struct {
		const char *file;
		int16_t temp_dc;
		unsigned flags;
	} field[] = {
		{ "../field-cases/07a-wecom-open-userid-fever.json", 381, ABN | FLAG_CLOCK_SKEW },
		{ "../field-cases/07b-wecom-open-userid-recheck.json", 366, FLAG_CLOCK_SKEW },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;

		assert_int_equal(run_max(T("G15"), cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (strcmp(res.reason ? res.reason : "accepted", cases[i].reason) != 0)
			fail_msg("case %zu (%s): got %s, want %s", i, cases[i].payload,
				 res.reason ? res.reason : "accepted", cases[i].reason);
		if (res.reason)
			continue;
		if (strcmp(evs[0].person, cases[i].person) != 0 ||
		    evs[0].temp_dc != cases[i].temp_dc || evs[0].flags != cases[i].flags)
			fail_msg("case %zu: person '%s' temp %d flags %u", i, evs[0].person,
				 evs[0].temp_dc, evs[0].flags);
	}
	for (size_t i = 0; i < sizeof(field) / sizeof(field[0]); i++) {
		struct norm_result res;
		size_t len;
		char *buf = load(field[i].file, &len);

		assert_int_equal(run_max(T("G15"), buf, len, NORM_MAX_EVENTS, &res), 0);
		if (res.reason)
			fail_msg("%s: %s (%s)", field[i].file, res.reason, res.detail);
		assert_int_equal(res.nevents, 1);
		assert_string_equal(evs[0].vendor, "wecom");
		assert_string_equal(evs[0].person, "wo-7Hq2xK");
		assert_int_equal(evs[0].temp_dc, field[i].temp_dc);
		assert_int_equal(evs[0].flags, field[i].flags);
		free(buf);
	}
}

/* Hikvision's mask as documented (ISAPI AcsEvent / AccessControllerEvent:
 * "unknown", "yes", "no"; read in any case) or a boolean; EZVIZ's the same
 * without "unknown" in its docs. Anything else is unknown (-1), never a
 * reject: a mask is not what the gate rules judge. */
static void
mask_spellings(void **state)
{
	static const struct {
		const char *mask;
		int want;
	} words[] = {
		{ "\"yes\"", 1 },
		{ "\"no\"", 0 },
		{ "\"unknown\"", -1 },
		{ "\"YES\"", 1 },
		{ "\"No\"", 0 },
		{ "true", 1 },
		{ "false", 0 },
		{ "\"maybe\"", -1 },
		{ "null", -1 },
		{ "2", -1 },
		/* blanks around the word, as around status words: one rule */
		{ "\"Yes \"", 1 },
		{ "\" no\"", 0 },
		{ "\"\\tYES\\r\\n\"", 1 },
		{ "\" Unknown \"", -1 },
		{ "\"y es\"", -1 },
		{ "\"\"", -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		char hik[512], bare[512], ez[512];
		struct norm_result res;

		snprintf(hik, sizeof(hik), HIK_ENV(HIK_REC ",\"currTemperature\":36.5,\"mask\":%s"),
			 words[i].mask);
		snprintf(bare, sizeof(bare),
			 "{\"major\":5,\"minor\":75,\"time\":\"2020-02-16T18:32:00"
			 "+08:00\",\"serialNo\":4101,\"cardNo\":\"1\",\"mask\":%s}",
			 words[i].mask);
		assert_int_equal(run_max(T("G03"), hik, strlen(hik), NORM_MAX_EVENTS, &res), 0);
		if (res.reason || evs[0].mask != words[i].want)
			fail_msg("push mask %s: %s, mask %d, want %d", words[i].mask,
				 res.reason ? res.reason : "accepted", evs[0].mask, words[i].want);
		assert_int_equal(run_max(T("G03"), bare, strlen(bare), NORM_MAX_EVENTS, &res), 0);
		if (res.reason || evs[0].mask != words[i].want)
			fail_msg("record mask %s: %s, mask %d, want %d", words[i].mask,
				 res.reason ? res.reason : "accepted", evs[0].mask, words[i].want);
		snprintf(ez, sizeof(ez), EZ_PUSH("{" EZ_PF "," EZ_PT ",\"mask\":%s}"),
			 words[i].mask);
		assert_int_equal(run_max(T("G11"), ez, strlen(ez), NORM_MAX_EVENTS, &res), 0);
		if (res.reason || evs[0].mask != words[i].want)
			fail_msg("EZVIZ mask %s: %s, mask %d, want %d", words[i].mask,
				 res.reason ? res.reason : "accepted", evs[0].mask, words[i].want);
	}
}

/* Passes without a reading inside envelopes (issue 14.3 and 14.6 together):
 * an element of an AcsEvent search answer, an RPC2 eventList, an EZVIZ
 * body or an XML alert without a reading that names a card or person is a
 * pass without a reading (temp_dc TEMP_NONE) next to the elements with
 * readings. In Hikvision's and Dahua's lists an access element that names
 * nobody and has no reading (a door unlocked, an exit button, a door
 * opened remotely) is skipped as the non-access records are; nothing left
 * is no_events. An EZVIZ body element naming nobody rejects the message
 * missing_temperature. Sources: ISAPI JSON_AcsEvent (major 5 minors 1
 * valid card, 21 door unlocked, 23 exit button), Dahua RPC2
 * client.notifyEventStream with AccessControl data of a card reader (no
 * ManTemperatureInfo; Method 4 remote open with CardNo ""). */
#define ACS_REC(serial, rest)                                           \
	"{\"major\":5,\"time\":\"2020-02-16T18:3" serial ":00+08:00\"," \
	"\"serialNo\":90" serial rest "}"
#define RPC2_AC(recno, data)                                            \
	"{\"Action\":\"Pulse\",\"Code\":\"AccessControl\",\"Index\":0," \
	"\"Data\":{\"RecNo\":" recno ",\"UTC\":1581849120" data "}}"
static void
envelope_passes_without_reading(void **state)
{
	static const struct {
		const char *topic, *payload, *reason;
		size_t nevents;
		struct {
			int16_t temp_dc;
			const char *card, *person, *key;
		} ev[3];
	} cases[] = {
		/* A polled answer: a reading, a card pass without one (5/1), a
		 * door unlocked (5/21) and an exit button (5/23) naming nobody, a
		 * remote login (3/112). */
		{ T("G03"),
		  ACS("\"responseStatusStrg\":\"OK\",\"InfoList\":[" ACS_REC("1", ",\"minor\":75,\"employeeNoString\":\"31\",\"currTemperature\":36.8") "," ACS_REC(
			  "2",
			  ",\"minor\":1,\"cardNo\":\"3308812528\",\"employeeNoString\":\"32\","
			  "\"cardType\":1,\"mask\":\"unknown\"") "," ACS_REC("3",
									     ",\"minor\":21,\"doorNo\":1") "," ACS_REC("4",
														       ",\"minor\":23,\"cardNo\":\"\",\"currTemperature\":null") ","
																						 "{\"major\":3,\"minor\":112,\"time\":\"2020-02-16T18:35:00+08:00\",\"serialNo\":9005}"
																						 "]"),
		  "accepted",
		  2,
		  { { 368, "", "31", "s1/G03/901" },
		    { TEMP_NONE, "3308812528", "32", "s1/G03/902" } } },
		/* No major (a trimmed record), the person as an integer employeeNo. */
		{ T("G03"),
		  ACS("\"InfoList\":[{" ACS_T ",\"serialNo\":9010,\"employeeNo\":2302}]"),
		  "accepted",
		  1,
		  { { TEMP_NONE, "", "2302", "s1/G03/9010" } } },
		/* Only door events: no pass and no reading in the answer. */
		{ T("G03"),
		  ACS("\"responseStatusStrg\":\"OK\",\"InfoList\":[" ACS_REC(
			  "3", ",\"minor\":21") "," ACS_REC("4",
							    ",\"minor\":23,\"cardNo\":\"\"") "]"),
		  "no_events",
		  0,
		  { { 0 } } },
		/* A kept element that is malformed still rejects the answer; a
		 * skipped door event is not read. */
		{ T("G03"),
		  ACS("\"InfoList\":[" ACS_REC(
			  "1",
			  ",\"currTemperature\":36.8") ","
						       "{\"major\":5,\"time\":\"soon\",\"serialNo\":9002,\"cardNo\":\"C-1\"}]"),
		  "bad_time",
		  0,
		  { { 0 } } },
		{ T("G03"),
		  ACS("\"InfoList\":[" ACS_REC(
			  "1",
			  ",\"currTemperature\":36.8") ","
						       "{\"major\":5,\"minor\":21,\"time\":\"soon\",\"serialNo\":9002}]"),
		  "accepted",
		  1,
		  { { 368, "", "", "s1/G03/901" } } },
		/* The XML alert through a bridge, thermometry off: a card. */
		{ T("G03"),
		  "{\"EventNotificationAlert\":{\"@version\":\"2.0\",\"dateTime\":"
		  "\"2020-02-16T18:32:00+08:00\",\"eventType\":\"AccessControllerEvent\","
		  "\"AccessControllerEvent\":{\"majorEventType\":\"5\",\"subEventType\":\"9\","
		  "\"cardNo\":\"C-9902\",\"serialNo\":\"1400\"}}}",
		  "accepted",
		  1,
		  { { TEMP_NONE, "C-9902", "", "s1/G03/1400" } } },
		/* RPC2 [All]: a reading, a card reader's pass (no
		 * ManTemperatureInfo), a remote open naming nobody, a motion event. */
		{ T("G07"),
		  RPC2(RPC2_AC("7801", ",\"CardNo\":\"C-0890\",\"UserID\":\"3303\"," DH_TEMP) "," RPC2_AC(
			  "7802",
			  ",\"CardNo\":\"C-0892\",\"UserID\":\"3305\",\"Method\":1,"
			  "\"Status\":1,\"Type\":\"Entry\"") "," RPC2_AC("7803",
									 ",\"CardNo\":\"\",\"Method\":4,\"Status\":1") ","
														       "{\"Action\":\"Start\",\"Code\":\"VideoMotion\",\"Data\":{\"UTC\":1581849121}}"),
		  "accepted",
		  2,
		  { { 365, "C-0890", "3303", "s1/G07/7801" },
		    { TEMP_NONE, "C-0892", "3305", "s1/G07/7802" } } },
		/* A user id only; ManTemperatureInfo without CurrentTemperature. */
		{ T("G07"),
		  RPC2(RPC2_AC("7804",
			       ",\"UserID\":\"1011\","
			       "\"ManTemperatureInfo\":{\"TemperatureUnit\":0}")),
		  "accepted",
		  1,
		  { { TEMP_NONE, "", "1011", "s1/G07/7804" } } },
		/* Only a remote open and an exit button: no_events. */
		{ T("G07"),
		  RPC2(RPC2_AC("7803", ",\"CardNo\":\"\",\"Method\":4") "," RPC2_AC(
			  "7805", ",\"Method\":6")),
		  "no_events",
		  0,
		  { { 0 } } },
		/* EZVIZ's documented body, thermometry off: the person. */
		{ T("G11"),
		  EZ_PUSH("{" EZ_PF ",\"employeeNo\":\"2405\",\"mask\":\"no\"}"),
		  "accepted",
		  1,
		  { { TEMP_NONE, "", "2405", "s1/G11/m-1" } } },
		{ T("G11"),
		  EZ_PUSH("[{" EZ_PF "," EZ_PT "},{" EZ_PF ",\"cardNo\":\"C-6\"}]"),
		  "accepted",
		  2,
		  { { 366, "", "", "s1/G11/m-1:0" }, { TEMP_NONE, "C-6", "", "s1/G11/m-1:1" } } },
		/* An EZVIZ element naming nobody rejects the message. */
		{ T("G11"),
		  EZ_PUSH("[{" EZ_PF "," EZ_PT "},{" EZ_PF ",\"cardNo\":\"\"}]"),
		  "missing_temperature",
		  0,
		  { { 0 } } },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct norm_input in = { .topic = cases[c].topic,
					 .topic_len = strlen(cases[c].topic),
					 .payload = (const uint8_t *)cases[c].payload,
					 .payload_len = strlen(cases[c].payload) };
		struct norm_result res;
		char hex[33];

		assert_int_equal(run_max(cases[c].topic, cases[c].payload, strlen(cases[c].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (strcmp(res.reason ? res.reason : "accepted", cases[c].reason) != 0)
			fail_msg("case %zu: got %s (%s), want %s", c,
				 res.reason ? res.reason : "accepted", res.reason ? res.detail : "",
				 cases[c].reason);
		if (res.reason)
			continue;
		if (res.nevents != cases[c].nevents)
			fail_msg("case %zu: %zu events, want %zu", c, res.nevents,
				 cases[c].nevents);
		normalize_message_hash(&in, hex);
		for (size_t i = 0; i < res.nevents; i++) {
			char key[NORM_KEY_MAX];

			if (cases[c].ev[i].key[0] == '#')
				keyless_key(key, sizeof(key), hex, cases[c].ev[i].key + 1);
			else
				snprintf(key, sizeof(key), "%s", cases[c].ev[i].key);
			if (evs[i].type != EVENT_GATE || evs[i].temp_dc != cases[c].ev[i].temp_dc ||
			    strcmp(evs[i].card, cases[c].ev[i].card) != 0 ||
			    strcmp(evs[i].person, cases[c].ev[i].person) != 0 ||
			    strcmp(evs[i].key, key) != 0)
				fail_msg("case %zu[%zu]: temp %d card '%s' person '%s' key %s", c,
					 i, evs[i].temp_dc, evs[i].card, evs[i].person, evs[i].key);
		}
	}
}

/* The other vendor words follow the mask's rule (any case, blanks
 * around): the abnormal flag, the thermometry unit, Tasmota's TempUnit. */
static void
vendor_words_with_blanks(void **state)
{
	static const struct {
		const char *topic, *payload;
		int16_t temp_dc;
		unsigned flags;
	} cases[] = {
		{ T("G03"),
		  HIK_ENV(HIK_REC ",\"currTemperature\":99.5,\"thermometryUnit\":\" Fahrenheit \""),
		  375, 0 },
		{ T("G03"),
		  HIK_ENV(HIK_REC ",\"currTemperature\":38.0,\"isAbnomalTemperature\":\"True \""),
		  380, FLAG_DEVICE_ABNORMAL },
		{ T("G11"),
		  EZ_PUSH("{" EZ_PF ",\"temperature\":{\"currTemperature\":38.0,"
			  "\"thermometryUnit\":\"CELSIUS\\n\",\"isAbnomalTemperature\":\" true\"}}"),
		  380, FLAG_DEVICE_ABNORMAL },
		{ T("G22"), "{\"MLX90614\":{\"OBJTMP\":99.5},\"TempUnit\":\"f \"}", 375, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;

		assert_int_equal(run_max(cases[i].topic, cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (res.reason || evs[0].temp_dc != cases[i].temp_dc ||
		    (evs[0].flags & FLAG_DEVICE_ABNORMAL) != cases[i].flags)
			fail_msg("case %zu: %s (%s), temp %d flags %u", i,
				 res.reason ? res.reason : "accepted", res.reason ? res.detail : "",
				 evs[0].temp_dc, evs[0].flags);
	}
}

/* EZVIZ retries a message with the same header.messageId: a body or
 * content array is keyed "<messageId>:<i>" per element (an element's own
 * id wins), so the retry, received later, gives the same keys as the
 * first delivery and stores nothing twice. Without a messageId the keys
 * are per delivery. */
static void
ezviz_retry_keys(void **state)
{
	static const struct {
		const char *payload;
		const char *keys[3];
	} cases[] = {
		{ EZ_PUSH("[{" EZ_PF "," EZ_PT "},{" EZ_PF ",\"cardNo\":\"C-6\"}]"),
		  { "s1/G11/m-1:0", "s1/G11/m-1:1" } },
		{ EZ_PUSH("[{" EZ_PF "," EZ_PT ",\"id\":\"r-7\"},{" EZ_PF "," EZ_PT "},"
			  "{" EZ_PF "," EZ_PT ",\"id\":null}]"),
		  { "s1/G11/r-7", "s1/G11/m-1:1", "s1/G11/m-1:2" } },
		/* body as a JSON string of an array, as bridges re-serialise it */
		{ EZ_PUSH("\"[{" EZ_F "," EZ_T "},{" EZ_F "," EZ_T "}]\""),
		  { "s1/G11/m-1:0", "s1/G11/m-1:1" } },
		/* a lone event, in body or as a string: the messageId itself */
		{ EZ_PUSH("{" EZ_PF "," EZ_PT "}"), { "s1/G11/m-1" } },
		{ EZ_PUSH("\"{" EZ_F "," EZ_T "}\""), { "s1/G11/m-1" } },
		/* the content layout, with a messageId */
		{ "{\"header\":{\"type\":\"ys.open.face\",\"messageId\":\"m-9\"},\"content\":"
		  "\"[{" EZ_F "," EZ_T "},{" EZ_F "," EZ_T "}]\"}",
		  { "s1/G11/m-9:0", "s1/G11/m-9:1" } },
		/* the longest messageId and index still make a whole key */
		{ "{\"header\":{\"messageId\":\""
		  "0123456789012345678901234567890123456789"
		  "012345678901234567890123\"},\"body\":[{" EZ_PF "," EZ_PT "}]}",
		  { "s1/G11/0123456789012345678901234567890123456789012345678901234567890123:0" } },
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int delivery = 0; delivery < 2; delivery++) {
			struct norm_input in = {
				.topic = T("G11"),
				.topic_len = strlen(T("G11")),
				.payload = (const uint8_t *)cases[c].payload,
				.payload_len = strlen(cases[c].payload),
				.orig_len = strlen(cases[c].payload),
				/* the retry comes a minute later */
				.received_us = RECV_US + delivery * 60000000LL,
			};
			struct norm_result res;
			size_t n = 0;

			while (n < 3 && cases[c].keys[n])
				n++;
			assert_int_equal(normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, &res),
					 0);
			if (res.reason || res.nevents != n)
				fail_msg("case %zu: %s (%s), %zu events, want %zu", c,
					 res.reason ? res.reason : "accepted",
					 res.reason ? res.detail : "", res.nevents, n);
			for (size_t i = 0; i < n; i++)
				if (strcmp(evs[i].key, cases[c].keys[i]) != 0)
					fail_msg("case %zu delivery %d [%zu]: key %s, want %s", c,
						 delivery, i, evs[i].key, cases[c].keys[i]);
		}
	}
	/* Without a messageId: per delivery, as every keyless event. */
	{
		const char *p = "{\"header\":{\"type\":\"ys.open.face\"},\"body\":[{" EZ_PF
				"," EZ_PT "}]}";
		struct norm_result res;

		assert_int_equal(run_max(T("G11"), p, strlen(p), NORM_MAX_EVENTS, &res), 0);
		assert_null(res.reason);
		assert_true(strncmp(evs[0].key, "h:", 2) == 0);
	}
}

/* A reject's detail names where the fault is in the layout the message
 * used (body, body[i], content[i]), and says when header.type is not a
 * face message (ys.onoffline: a device going off line). */
static void
ezviz_reject_details(void **state)
{
	static const struct {
		const char *payload, *reason, *detail;
	} cases[] = {
		{ "{\"header\":{\"type\":\"ys.onoffline\",\"messageId\":\"m-2\","
		  "\"messageTime\":1581849120456},\"body\":{\"msgType\":\"ONLINE\"}}",
		  "missing_time",
		  "body has no faceTime: header.type ys.onoffline is not a face/"
		  "temperature message" },
		{ "{\"header\":{\"type\":\"ys.alarm\"},\"body\":[{\"alarmType\":\"x\"}]}",
		  "missing_time", "body[0] has no faceTime: header.type ys.alarm is not a face" },
		{ EZ_PUSH("{" EZ_PT "}"), "missing_time", "body has no faceTime" },
		{ EZ_PUSH("[{" EZ_PF "," EZ_PT "},{" EZ_PF ",\"temperature\":5}]"),
		  "bad_temperature", "body[1].temperature is not an object" },
		{ EZ_PUSH("\"{" EZ_F ",\\\"cardNo\\\":[1]}\""), "bad_field", "body.cardNo is not" },
		{ EZ_PUSH("[{" EZ_PF "},5]"), "missing_temperature", "body[0] has no temperature" },
		{ EZ_PUSH("[5]"), "not_object", "body[0] is not an object" },
		{ EZ_PUSH("\"[{\""), "not_json", "body: " },
		{ EZVIZ("[{" EZ_F "," EZ_T "},{" EZ_T "}]"), "missing_time",
		  "content[1] has no faceTime" },
		/* a long type is cut at a whole character (39 bytes, then a
		 * 2-byte one across the 40th) */
		{ "{\"header\":{\"type\":\"ys.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\u00e9\"},"
		  "\"body\":{}}",
		  "missing_time",
		  "body has no faceTime: header.type ys.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx is not" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;

		assert_int_equal(run_max(T("G11"), cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (!res.reason || strcmp(res.reason, cases[i].reason) != 0 ||
		    strncmp(res.detail, cases[i].detail, strlen(cases[i].detail)) != 0 ||
		    !norm_valid_utf8((const uint8_t *)res.detail, strlen(res.detail)))
			fail_msg("case %zu: %s (%s), want %s (%s...)", i,
				 res.reason ? res.reason : "accepted", res.reason ? res.detail : "",
				 cases[i].reason, cases[i].detail);
	}
}

/* Tasmota on an ESP32 with SetOption146 adds the chip's own temperature,
 * "ESP32":{"Temperature":51.1} (Tasmota xsns_127_esp32_sensors.ino), to
 * SENSOR and Status 10: never a body reading, alone or next to a body
 * sensor. */
static void
tasmota_chip_temperature(void **state)
{
	static const struct {
		const char *payload, *reason;
		int16_t temp_dc;
	} cases[] = {
		{ "{\"Time\":\"2024-05-01T10:00:00\",\"ESP32\":{\"Temperature\":51.1},"
		  "\"TempUnit\":\"C\"}",
		  "missing_temperature", 0 },
		{ "{\"Time\":\"2024-05-01T10:00:00\",\"DS18B20\":{\"Id\":\"01144A0CB1AA\","
		  "\"Temperature\":36.7},\"ESP32\":{\"Temperature\":51.1},\"TempUnit\":\"C\"}",
		  "accepted", 367 },
		{ "{\"Time\":\"2024-05-01T10:00:00\",\"ESP32\":{\"Temperature\":51.1},"
		  "\"DS18B20\":{\"Temperature\":36.7}}",
		  "accepted", 367 },
		{ "{\"StatusSNS\":{\"Time\":\"2024-05-01T10:00:00\",\"ESP32\":{\"Temperature\":"
		  "124.0},\"MLX90614\":{\"OBJTMP\":36.9,\"AMBTMP\":24.0},\"TempUnit\":\"C\"}}",
		  "accepted", 369 },
		{ "{\"Time\":\"2024-05-01T10:00:00\",\"ESP32\":{\"Temperature\":51.1,"
		  "\"HallEffect\":12},\"SHT3X\":{\"Temperature\":36.4,\"Humidity\":40}}",
		  "accepted", 364 },
		{ "{\"ESP32\":{\"Temperature\":51.1}}", "missing_temperature", 0 },
		/* two body sensors are still ambiguous */
		{ "{\"ESP32\":{\"Temperature\":51.1},\"DS18B20-1\":{\"Temperature\":36.7},"
		  "\"DS18B20-2\":{\"Temperature\":22.1}}",
		  "bad_temperature", 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;

		assert_int_equal(run_max(T("G22"), cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (strcmp(res.reason ? res.reason : "accepted", cases[i].reason) != 0 ||
		    (!res.reason && evs[0].temp_dc != cases[i].temp_dc))
			fail_msg("case %zu: %s (%s), temp %d, want %s %d", i,
				 res.reason ? res.reason : "accepted", res.reason ? res.detail : "",
				 res.reason ? 0 : evs[0].temp_dc, cases[i].reason,
				 cases[i].temp_dc);
	}
}

/* Hikvision's XML EventNotificationAlert through Node-RED's xml node with
 * xml2js's default explicitArray: true (every child's value in an array
 * of one, attributes under "$"): read as the same alert. */
#define XML2JS(inner)                                                                \
	"{\"EventNotificationAlert\":{\"$\":{\"version\":\"2.0\"},"                  \
	"\"ipAddress\":[\"10.0.0.1\"],\"dateTime\":[\"2024-08-26T12:32:28+08:00\"]," \
	"\"eventType\":[\"AccessControllerEvent\"],\"AccessControllerEvent\":[{" inner "}]}}"
static void
xml2js_explicit_array(void **state)
{
	static const struct {
		const char *payload, *reason;
		int16_t temp_dc;
		const char *card, *key, *time;
	} cases[] = {
		{ XML2JS("\"majorEventType\":[\"5\"],\"subEventType\":[\"75\"],\"cardNo\":[\"C9\"],"
			 "\"serialNo\":[\"1235\"],\"currTemperature\":[\"37.9\"]"),
		  "accepted", 379, "C9", "s1/G03/1235", "2024-08-26 04:32:28.000000+00" },
		/* thermometry off: a pass without a reading; mask, unit, flag */
		{ XML2JS("\"majorEventType\":[\"5\"],\"subEventType\":[\"9\"],\"cardNo\":[\"C10\"],"
			 "\"serialNo\":[\"1236\"],\"mask\":[\"yes\"]"),
		  "accepted", TEMP_NONE, "C10", "s1/G03/1236", "2024-08-26 04:32:28.000000+00" },
		{ XML2JS("\"serialNo\":[\"1237\"],\"currTemperature\":[\"99.5\"],"
			 "\"thermometryUnit\":[\"fahrenheit\"],\"isAbnomalTemperature\":[\"true\"]"),
		  "accepted", 375, "", "s1/G03/1237", "2024-08-26 04:32:28.000000+00" },
		/* a repeated element is not one value */
		{ XML2JS("\"serialNo\":[\"1238\"],\"cardNo\":[\"C9\",\"C10\"],"
			 "\"currTemperature\":[\"36.5\"]"),
		  "bad_field", 0, NULL, NULL, NULL },
		{ XML2JS("\"serialNo\":[\"1238\"],\"currTemperature\":[]"), "bad_temperature", 0,
		  NULL, NULL, NULL },
		{ "{\"EventNotificationAlert\":{\"AccessControllerEvent\":[{\"currTemperature\":"
		  "[\"36.5\"]}]}}",
		  "missing_time", 0, NULL, NULL, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct norm_result res;
		char ts[64];

		assert_int_equal(run_max(T("G03"), cases[i].payload, strlen(cases[i].payload),
					 NORM_MAX_EVENTS, &res),
				 0);
		if (strcmp(res.reason ? res.reason : "accepted", cases[i].reason) != 0)
			fail_msg("case %zu: %s (%s), want %s", i,
				 res.reason ? res.reason : "accepted", res.reason ? res.detail : "",
				 cases[i].reason);
		if (res.reason)
			continue;
		normalize_format_time(evs[0].device_us, ts, sizeof(ts));
		if (res.nevents != 1 || evs[0].temp_dc != cases[i].temp_dc ||
		    strcmp(evs[0].card, cases[i].card) != 0 ||
		    strcmp(evs[0].key, cases[i].key) != 0 || strcmp(ts, cases[i].time) != 0 ||
		    strcmp(evs[0].vendor, "hikvision") != 0)
			fail_msg("case %zu: temp %d card '%s' key %s time %s", i, evs[0].temp_dc,
				 evs[0].card, evs[0].key, ts);
	}
	/* mask and the abnormal flag come through the arrays too */
	assert_int_equal(run_max(T("G03"), cases[1].payload, strlen(cases[1].payload),
				 NORM_MAX_EVENTS, &(struct norm_result){ 0 }),
			 0);
	assert_int_equal(evs[0].mask, 1);
	assert_int_equal(run_max(T("G03"), cases[2].payload, strlen(cases[2].payload),
				 NORM_MAX_EVENTS, &(struct norm_result){ 0 }),
			 0);
	assert_true(evs[0].flags & FLAG_DEVICE_ABNORMAL);
}

/* Every format of the table (meson.build's gate_formats): its name maps
 * to its value and back, and its sample is read by its shape alone (on
 * a gate not in the register: no other format claims it) and on a gate
 * pinned to it, to the temperature it names, under its name as vendor.
 * What a new format must hold to join (HACKING.md). */
static void
format_table(void **state)
{
	(void)state;
	assert_true(norm_nformats >= 6);
	assert_string_equal(normalize_format_name(FORMAT_AUTO), "auto");
	for (size_t i = 0; i < norm_nformats; i++) {
		const struct norm_format *f = norm_formats[i];
		struct norm_result res;
		struct norm_context pinned = ctx;

		assert_int_equal(normalize_format_from_name(f->name), (int)i + 1);
		assert_string_equal(normalize_format_name((enum gate_format)(i + 1)), f->name);
		assert_non_null(f->sample);
		assert_int_equal(run_max("cordon/s9/gate/G01/event", f->sample, strlen(f->sample),
					 8, &res),
				 0);
		if (res.reason)
			fail_msg("%s: its sample by shape is %s (%s)", f->name, res.reason,
				 res.detail);
		assert_true(res.nevents >= 1);
		assert_string_equal(evs[0].vendor, f->name);
		assert_int_equal(evs[0].temp_dc, f->sample_temp_dc);

		pinned.arg = (void *)(uintptr_t)f->name;
		{
			struct norm_input in = {
				.topic = "cordon/s9/gate/G01/event",
				.topic_len = strlen("cordon/s9/gate/G01/event"),
				.payload = (const uint8_t *)f->sample,
				.payload_len = strlen(f->sample),
				.orig_len = strlen(f->sample),
				.received_us = RECV_US,
			};

			assert_int_equal(normalize_message(&pinned, &in, evs, 8, &res), 0);
		}
		if (res.reason)
			fail_msg("%s: its sample pinned is %s (%s)", f->name, res.reason,
				 res.detail);
		assert_string_equal(evs[0].vendor, f->name);
		assert_int_equal(evs[0].temp_dc, f->sample_temp_dc);
	}
	assert_int_equal(normalize_format_from_name("no-such-format"), -1);
	assert_string_equal(normalize_format_name((enum gate_format)(norm_nformats + 1)), "auto");
}

static const char *topics_md = "docs/topics.md";

/* docs/topics.md's "Terminal formats" names every format of the table in
 * backquotes, and each of its headings "### ... (`name`)" is one of them. */
static void
formats_documented(void **state)
{
	FILE *f = fopen(topics_md, "r");
	char line[4096];
	int in_section = 0;
	int named[64] = { 0 };

	(void)state;
	if (!f)
		fail_msg("cannot open %s", topics_md);
	assert_true(norm_nformats <= 64);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "## ", 3) == 0)
			in_section = strncmp(line, "## Terminal formats", 19) == 0;
		if (!in_section)
			continue;
		for (size_t i = 0; i < norm_nformats; i++) {
			char word[80];

			snprintf(word, sizeof(word), "`%s`", norm_formats[i]->name);
			if (strstr(line, word))
				named[i] = 1;
		}
		if (strncmp(line, "### ", 4) == 0) {
			char *open = strstr(line, "(`"), *close = open ? strstr(open, "`)") : NULL;

			if (!open || !close)
				fail_msg("%s: a format heading without (`name`): %s", topics_md,
					 line);
			*close = '\0';
			if (normalize_format_from_name(open + 2) <= 0)
				fail_msg("%s names format `%s`, which the table does not have",
					 topics_md, open + 2);
		}
	}
	fclose(f);
	for (size_t i = 0; i < norm_nformats; i++)
		if (!named[i])
			fail_msg("%s: \"## Terminal formats\" does not name `%s`", topics_md,
				 norm_formats[i]->name);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fixtures),
		cmocka_unit_test(redelivery_same_keys),
		cmocka_unit_test(id_number_without_key),
		cmocka_unit_test(reject_reasons),
		cmocka_unit_test(event_caps),
		cmocka_unit_test(vendor_bounds),
		cmocka_unit_test(numbers_as_strings),
		cmocka_unit_test(integer_codes_as_strings),
		cmocka_unit_test(passes_without_reading),
		cmocka_unit_test(wecom_person_ids),
		cmocka_unit_test(mask_spellings),
		cmocka_unit_test(field_case_envelopes),
		cmocka_unit_test(envelope_passes_without_reading),
		cmocka_unit_test(vendor_words_with_blanks),
		cmocka_unit_test(ezviz_retry_keys),
		cmocka_unit_test(ezviz_reject_details),
		cmocka_unit_test(tasmota_chip_temperature),
		cmocka_unit_test(xml2js_explicit_array),
		cmocka_unit_test(format_table),
		cmocka_unit_test(formats_documented),
	};

	if (argc > 1)
		fixture_dir = argv[1];
	if (argc > 2)
		topics_md = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
