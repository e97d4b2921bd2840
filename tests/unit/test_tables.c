/* Unit tests of tables.c's content hash (issue 14.7): what tells a
 * device's reused record id from a redelivery. Equal for every delivery of
 * one reading, whenever it is received and in whichever envelope; different
 * for other content under the same key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "normalize.h"
#include "tables.h"

#define RECV_US 1581849120000000LL /* 2020-02-16T10:32:00Z */

static const struct norm_context ctx = {
	.topic_root = "cordon",
	.max_clock_skew_us = 600LL * 1000000,
	.tz_offset_s = 8 * 3600,
};

/* Normalizes `payload` on `topic` received at `recv_us` into its event
 * number `index`, and returns that event's content hash as hex. */
static void
hash_of(const char *topic, const char *payload, int64_t recv_us, size_t index, char ret[33],
	struct event *ret_ev)
{
	static struct event evs[NORM_MAX_EVENTS];
	struct norm_input in = {
		.topic = topic,
		.topic_len = strlen(topic),
		.payload = (const uint8_t *)payload,
		.payload_len = strlen(payload),
		.orig_len = strlen(payload),
		.received_us = recv_us,
	};
	struct norm_result res;
	uint8_t h[NORM_HASH_LEN];

	assert_int_equal(normalize_message(&ctx, &in, evs, NORM_MAX_EVENTS, &res), 0);
	if (res.reason)
		fail_msg("%s rejected: %s (%s)", payload, res.reason, res.detail);
	assert_true(index < res.nevents);
	tables_content_hash(&evs[index], h);
	for (size_t i = 0; i < NORM_HASH_LEN; i++)
		snprintf(ret + 2 * i, 3, "%02x", h[i]);
	if (ret_ev)
		*ret_ev = evs[index];
}

#define GATE "cordon/s1/gate/G01/event"
#define HIK_ENV(serial, when, person, temp)                                   \
	"{\"ipAddress\":\"10.6.1.21\",\"dateTime\":\"" when "\","             \
	"\"eventType\":\"AccessControllerEvent\",\"AccessControllerEvent\":{" \
	"\"majorEventType\":5,\"subEventType\":75,\"serialNo\":" serial ","   \
	"\"employeeNoString\":\"" person "\",\"currTemperature\":" temp ","   \
	"\"thermometryUnit\":\"celsius\",\"mask\":\"yes\"}}"
/* The same record as /ISAPI/AccessControl/AcsEvent lists it (bare, its own
 * "time"), e.g. forwarded by a bridge that polls the terminal. */
#define HIK_BARE(serial, when, person, temp)                                       \
	"{\"major\":5,\"minor\":75,\"time\":\"" when "\",\"serialNo\":" serial "," \
	"\"employeeNoString\":\"" person "\",\"currTemperature\":" temp ","        \
	"\"thermometryUnit\":\"celsius\",\"mask\":\"yes\"}"

/* Two deliveries of one reading, an hour apart: the same content. */
static void
redelivery_same_hash(void **state)
{
	char a[33], b[33];
	const char *msg = HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-1", "36.5");

	(void)state;
	hash_of(GATE, msg, RECV_US, 0, a, NULL);
	hash_of(GATE, msg, RECV_US + 3600LL * 1000000, 0, b, NULL);
	assert_string_equal(a, b);
}

/* A delivery so late that the device's clock looks skewed (clock_skew is
 * set on the second only): still the same content. */
static void
skew_flag_not_content(void **state)
{
	struct event e1, e2;
	char a[33], b[33];
	const char *msg = HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-1", "36.5");

	(void)state;
	hash_of(GATE, msg, RECV_US, 0, a, &e1);
	hash_of(GATE, msg, RECV_US + 86400LL * 1000000, 0, b, &e2);
	assert_false(e1.flags & FLAG_CLOCK_SKEW);
	assert_true(e2.flags & FLAG_CLOCK_SKEW);
	assert_string_equal(a, b);
}

/* A keyed state without ts takes the receive time as its time: a
 * redelivery received later is still the same content. */
static void
receive_time_not_content(void **state)
{
	char a[33], b[33], c[33];
	struct event ev;

	(void)state;
	hash_of("cordon/s1/gate/G01/status", "{\"state\":\"open\",\"id\":\"ST-1\"}", RECV_US, 0, a,
		&ev);
	assert_true(ev.device_us == ev.received_us);
	hash_of("cordon/s1/gate/G01/status", "{\"state\":\"open\",\"id\":\"ST-1\"}",
		RECV_US + 5000000, 0, b, NULL);
	assert_string_equal(a, b);
	hash_of("cordon/s1/gate/G01/status", "{\"state\":\"closed\",\"id\":\"ST-1\"}", RECV_US, 0,
		c, NULL);
	assert_string_not_equal(a, c);
}

/* One reading through two envelopes (a push, and a polled record) is one
 * content: the hash is of the event, not of the message. */
static void
envelope_not_content(void **state)
{
	char a[33], b[33];

	(void)state;
	hash_of(GATE, HIK_ENV("7", "2020-02-16T18:31:00+08:00", "P-1", "36.5"), RECV_US, 0, a,
		NULL);
	hash_of(GATE, HIK_BARE("7", "2020-02-16T18:31:00+08:00", "P-1", "36.5"), RECV_US, 0, b,
		NULL);
	assert_string_equal(a, b);
}

/* Other content under the same serial: a reset terminal's next reading
 * (another time, person, temperature), or any one field changed. */
static void
reuse_other_hash(void **state)
{
	static const char *const others[] = {
		HIK_ENV("1", "2020-02-17T09:30:00+08:00", "P-2", "38.6"),
		HIK_ENV("1", "2020-02-16T18:31:01+08:00", "P-1", "36.5"),
		HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-2", "36.5"),
		HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-1", "36.6"),
	};
	struct event e0, e;
	char a[33], b[33];

	(void)state;
	hash_of(GATE, HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-1", "36.5"), RECV_US, 0, a, &e0);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		hash_of(GATE, others[i], RECV_US, 0, b, &e);
		assert_string_equal(e.key, e0.key);
		assert_string_not_equal(a, b);
	}
}

/* Every event type hashes its own fields: a change in each makes another
 * content; the key and the receive time never do. */
static void
every_type_every_field(void **state)
{
	static const struct {
		const char *topic, *a, *b;
	} cases[] = {
		{ "cordon/s1/disinfection/Z1",
		  "{\"id\":\"D-1\",\"ts\":1581849120,\"crew\":\"c-1\",\"agent\":\"x\"}",
		  "{\"id\":\"D-1\",\"ts\":1581849120,\"crew\":\"c-2\",\"agent\":\"x\"}" },
		{ "cordon/s1/disinfection/Z1",
		  "{\"id\":\"D-1\",\"ts\":1581849120,\"crew\":\"c-1\",\"agent\":\"x\"}",
		  "{\"id\":\"D-1\",\"ts\":1581849120,\"crew\":\"c-1\",\"agent\":\"y\"}" },
		{ "cordon/s1/isolation/H1/check",
		  "{\"id\":\"K-1\",\"ts\":1581849120,\"person\":\"P-1\",\"temp_c\":36.5}",
		  "{\"id\":\"K-1\",\"ts\":1581849120,\"person\":\"P-1\",\"temp_c\":38.5}" },
		{ "cordon/s1/isolation/H1/check",
		  "{\"id\":\"K-1\",\"ts\":1581849120,\"person\":\"P-1\",\"symptoms\":[\"cough\"]}",
		  "{\"id\":\"K-1\",\"ts\":1581849120,\"person\":\"P-1\",\"symptoms\":[\"fever\"]}" },
		{ "cordon/s1/hotline",
		  "{\"call_id\":\"H-1\",\"id\":\"1\",\"action\":\"open\",\"ts\":1581849120}",
		  "{\"call_id\":\"H-1\",\"id\":\"1\",\"action\":\"resolve\",\"ts\":1581849120}" },
		{ "cordon/s1/hotline",
		  "{\"call_id\":\"H-1\",\"id\":\"1\",\"action\":\"open\",\"ts\":1581849120,"
		  "\"urgent\":true}",
		  "{\"call_id\":\"H-1\",\"id\":\"1\",\"action\":\"open\",\"ts\":1581849120,"
		  "\"urgent\":false}" },
		{ "cordon/s1/gate/G01/event",
		  "{\"id\":\"E-1\",\"ts\":1581849120,\"card\":\"C-1\",\"temp_c\":36.5}",
		  "{\"id\":\"E-1\",\"ts\":1581849120,\"card\":\"C-2\",\"temp_c\":36.5}" },
		{ "cordon/s1/gate/G01/event",
		  "{\"id\":\"E-1\",\"ts\":1581849120,\"card\":\"C-1\",\"temp_c\":36.5,"
		  "\"direction\":\"in\"}",
		  "{\"id\":\"E-1\",\"ts\":1581849120,\"card\":\"C-1\",\"temp_c\":36.5,"
		  "\"direction\":\"out\"}" },
		{ "cordon/s1/gate/G01/event",
		  "{\"id\":\"E-1\",\"ts\":1581849120,\"card\":\"C-1\",\"temp_c\":36.5,\"mask\":true}",
		  "{\"id\":\"E-1\",\"ts\":1581849120,\"card\":\"C-1\",\"temp_c\":36.5,\"mask\":false}" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct event ea, eb;
		char a[33], a2[33], b[33];

		hash_of(cases[i].topic, cases[i].a, RECV_US, 0, a, &ea);
		hash_of(cases[i].topic, cases[i].a, RECV_US + 1000000, 0, a2, NULL);
		hash_of(cases[i].topic, cases[i].b, RECV_US, 0, b, &eb);
		assert_string_equal(ea.key, eb.key);
		assert_string_equal(a, a2);
		if (strcmp(a, b) == 0)
			fail_msg("case %zu: %s and %s hash alike", i, cases[i].a, cases[i].b);
	}
}

/* The hash is stored (content_hash columns): it may not change from one
 * build to the next, or redeliveries across an upgrade would look like
 * reused ids. This pins it for one event of each shape. */
static void
hash_is_stable(void **state)
{
	char a[33];

	(void)state;
	hash_of(GATE, HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-1", "36.5"), RECV_US, 0, a,
		NULL);
	assert_string_equal(a, "9d46cdc31bf31c210d397743dbe0055e");
	hash_of("cordon/s1/isolation/H1/check",
		"{\"id\":\"K-1\",\"ts\":1581849120,\"person\":\"P-1\",\"temp_c\":36.5,"
		"\"symptoms\":[\"cough\",\"fatigue\"]}",
		RECV_US, 0, a, NULL);
	assert_string_equal(a, "1a336f14ae95c375f64cb94bdd3ec14c");
}

/* The row's last column is the hash as bytea text. */
static void
row_carries_hash(void **state)
{
	struct event ev;
	struct table_row row;
	const struct table_desc *t;
	char a[33], want[40];

	(void)state;
	hash_of(GATE, HIK_ENV("1", "2020-02-16T18:31:00+08:00", "P-1", "36.5"), RECV_US, 0, a, &ev);
	tables_content_hash(&ev, ev.content_hash);
	tables_row(&ev, &row);
	t = tables_for(ev.type);
	snprintf(want, sizeof(want), "\\x%s", a);
	assert_string_equal(row.v[t->ncols - 1], want);
	assert_non_null(strstr(t->columns, ", content_hash"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(redelivery_same_hash),
		cmocka_unit_test(skew_flag_not_content),
		cmocka_unit_test(receive_time_not_content),
		cmocka_unit_test(envelope_not_content),
		cmocka_unit_test(reuse_other_hash),
		cmocka_unit_test(every_type_every_field),
		cmocka_unit_test(hash_is_stable),
		cmocka_unit_test(row_carries_hash),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
