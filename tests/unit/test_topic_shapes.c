/* test_topic_shapes.c - the table of topic shapes (topics.c): every kind built
 * is parsed back to the same kind, site and id; the subscription filters
 * are the shapes under the root; what no shape has is told apart from
 * what is not under the root; a topic that does not fit is not cut. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "topics.h"

static void
round_trip(void **state)
{
	(void)state;
	for (int k = 0; k < TOPIC_NKINDS; k++) {
		char buf[TOPIC_MAX_BYTES];
		struct topic_parts tp;
		int has_id = strchr(topics_shape((enum topic_kind)k) + 1, '+') != NULL;
		int n = topics_build(buf, sizeof(buf), "cordon", (enum topic_kind)k, "s-1", "G_07");

		assert_true(n > 0);
		assert_int_equal(topics_parse(buf, (size_t)n, "cordon", &tp), 0);
		assert_int_equal(tp.kind, k);
		if (k == TOPIC_DAEMON_STATE || k == TOPIC_DAEMON_SET_ASIDE ||
		    k == TOPIC_DAEMON_STATS) {
			assert_int_equal(tp.site_len, 7); /* "_daemon" in the site's place */
			assert_memory_equal(tp.site, "_daemon", 7);
		} else {
			assert_int_equal(tp.site_len, 3);
			assert_memory_equal(tp.site, "s-1", 3);
		}
		if (has_id) {
			assert_int_equal(tp.id_len, 4);
			assert_memory_equal(tp.id, "G_07", 4);
		} else {
			assert_null(tp.id);
		}
	}
}

static void
shapes(void **state)
{
	char buf[TOPIC_MAX_BYTES];

	(void)state;
	topics_build(buf, sizeof(buf), "cordon", TOPIC_GATE_EVENT, "s1", "G03");
	assert_string_equal(buf, "cordon/s1/gate/G03/event");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_GATE_STATUS, "s1", "G03");
	assert_string_equal(buf, "cordon/s1/gate/G03/status");
	topics_build(buf, sizeof(buf), "root", TOPIC_DISINFECTION, "s1", "Z1");
	assert_string_equal(buf, "root/s1/disinfection/Z1");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_HOTLINE, "s1", "ignored");
	assert_string_equal(buf, "cordon/s1/hotline");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_CHECK, "s1", "3-2-401");
	assert_string_equal(buf, "cordon/s1/isolation/3-2-401/check");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_ACK, "s1", NULL);
	assert_string_equal(buf, "cordon/s1/ack");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_ALERT, "s1", "fever");
	assert_string_equal(buf, "cordon/s1/alert/fever");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_ALERT_STATE, "s1", "5f0c");
	assert_string_equal(buf, "cordon/s1/alerts/5f0c");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_REJECT, "s1", NULL);
	assert_string_equal(buf, "cordon/s1/reject");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_DAEMON_STATE, "s1", "cordond-1");
	assert_string_equal(buf, "cordon/_daemon/cordond-1/state");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_DAEMON_SET_ASIDE, NULL, "cordond-1");
	assert_string_equal(buf, "cordon/_daemon/cordond-1/set_aside");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_DAEMON_STATS, NULL, "cordond-1");
	assert_string_equal(buf, "cordon/_daemon/cordond-1/stats");
	topics_build(buf, sizeof(buf), "cordon", TOPIC_ALERT, NULL, "#");
	assert_string_equal(buf, "cordon/+/alert/#");
}

static void
filters(void **state)
{
	static const char *const want[TOPIC_NINBOUND] = {
		"cordon/+/gate/+/event",
		"cordon/+/gate/+/status",
		"cordon/+/disinfection/+",
		"cordon/+/hotline",
		"cordon/+/isolation/+/check",
		"cordon/+/ack",
		"cordon/+/need",
		"cordon/+/call/+",
		"cordon/+/dropoff",
	};
	char buf[TOPIC_MAX_BYTES];

	(void)state;
	for (int k = 0; k < TOPIC_NINBOUND; k++) {
		assert_int_equal(topics_filter(buf, sizeof(buf), "cordon", (enum topic_kind)k),
				 (int)strlen(want[k]));
		assert_string_equal(buf, want[k]);
	}
}

static int
parse(const char *topic, struct topic_parts *tp)
{
	return topics_parse(topic, strlen(topic), "cordon", tp);
}

static void
no_shape(void **state)
{
	struct topic_parts tp;

	(void)state;
	assert_int_equal(parse("cordon/s1", &tp), -ENOENT);
	assert_int_equal(parse("other/s1/ack", &tp), -ENOENT);
	assert_int_equal(parse("cordonx/s1/ack", &tp), -ENOENT);
	assert_int_equal(parse("cordon/s/a/b/c/d/e/f/g", &tp), -ENOENT); /* 9 levels */
	assert_int_equal(parse("cordon/s1/gate/G1", &tp), -EINVAL);
	assert_int_equal(tp.site_len, 2);
	assert_memory_equal(tp.site, "s1", 2);
	assert_int_equal(parse("cordon/s1/gate/G1/event/x", &tp), -EINVAL);
	assert_int_equal(parse("cordon/s1/gate/G1/events", &tp), -EINVAL);
	assert_int_equal(parse("cordon/s1/hotline/x", &tp), -EINVAL);
	assert_int_equal(parse("cordon/s1/isolation/H/checks", &tp), -EINVAL);
	assert_int_equal(parse("cordon/_daemon/x/state", &tp), 0);
	assert_int_equal(tp.kind, TOPIC_DAEMON_STATE);
	/* empty levels are words like any other: the caller judges them */
	assert_int_equal(parse("cordon//gate//event", &tp), 0);
	assert_int_equal(tp.kind, TOPIC_GATE_EVENT);
	assert_int_equal(tp.site_len, 0);
	assert_int_equal(tp.id_len, 0);
}

static void
too_long(void **state)
{
	char buf[25];

	(void)state;
	assert_int_equal(topics_build(buf, sizeof(buf), "cordon", TOPIC_GATE_EVENT, "s1", "G03"),
			 24);
	assert_int_equal(topics_build(buf, sizeof(buf), "cordon", TOPIC_GATE_EVENT, "s1", "G034"),
			 -1);
	assert_string_equal(buf, "");
	assert_int_equal(topics_build(buf, 4, "cordon", TOPIC_ACK, "s1", NULL), -1);
	assert_string_equal(buf, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip), cmocka_unit_test(shapes),	  cmocka_unit_test(filters),
		cmocka_unit_test(no_shape),   cmocka_unit_test(too_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
