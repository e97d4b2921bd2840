/* Unit tests of mqtt_subs.c: a client's set of sites, what a change of it
 * asks to SUBSCRIBE and UNSUBSCRIBE, and the SUBACK codes kept per filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt_subs.h"
#include "topics.h"

static void
assert_list(const struct mqtt_subs_list *l, const char *const *want, size_t n)
{
	assert_int_equal(l->n, n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(l->names[i], want[i]);
}

static void
changes(void **state)
{
	struct mqtt_subs *s;
	struct mqtt_subs_list add, rm;
	const char *first[] = { "S3", "S1", "S2", "S1" };
	const char *second[] = { "S4", "S2", "S0" };
	size_t skipped;

	(void)state;
	assert_int_equal(mqtt_subs_create("cordon", false, &s), 0);
	assert_int_equal(mqtt_subs_set(s, first, 4, &add, &rm, &skipped), 0);
	assert_list(&add, (const char *[]){ "S1", "S2", "S3" }, 3);
	assert_int_equal(rm.n, 0);
	assert_int_equal(skipped, 0);
	free(add.names);
	free(rm.names);
	assert_int_equal(mqtt_subs_sites(s), 3);
	assert_int_equal(mqtt_subs_filters(s), 3 * TOPIC_NINBOUND);

	assert_int_equal(mqtt_subs_set(s, second, 3, &add, &rm, NULL), 0);
	assert_list(&add, (const char *[]){ "S0", "S4" }, 2);
	assert_list(&rm, (const char *[]){ "S1", "S3" }, 2);
	free(add.names);
	free(rm.names);
	assert_int_equal(mqtt_subs_all(s, &add), 0);
	assert_list(&add, (const char *[]){ "S0", "S2", "S4" }, 3);
	free(add.names);

	/* The same set again: nothing to do. */
	assert_int_equal(mqtt_subs_set(s, second, 3, &add, &rm, NULL), 0);
	assert_int_equal(add.n, 0);
	assert_int_equal(rm.n, 0);
	free(add.names);
	free(rm.names);
	/* Empty. */
	assert_int_equal(mqtt_subs_set(s, NULL, 0, NULL, &rm, NULL), 0);
	assert_int_equal(rm.n, 3);
	free(rm.names);
	assert_int_equal(mqtt_subs_sites(s), 0);
	mqtt_subs_destroy(s);
}

static void
filters_and_bad_sites(void **state)
{
	struct mqtt_subs *s;
	char buf[TOPIC_MAX_BYTES], longsite[600];
	const char *bad[] = { "", "a+b", "a#", "a/b", longsite, "ok" };
	size_t skipped;
	int code;

	(void)state;
	memset(longsite, 'x', sizeof(longsite) - 1);
	longsite[sizeof(longsite) - 1] = '\0';
	assert_int_equal(mqtt_subs_create("cordon", false, &s), 0);
	assert_int_equal(mqtt_subs_set(s, bad, 6, NULL, NULL, &skipped), 0);
	assert_int_equal(skipped, 5);
	assert_int_equal(mqtt_subs_sites(s), 1);
	assert_true(mqtt_subs_filter(s, TOPIC_GATE_EVENT, buf, sizeof(buf), &code) > 0);
	assert_string_equal(buf, "cordon/ok/gate/+/event");
	assert_int_equal(code, MQTT_SUBS_PENDING);
	assert_true(mqtt_subs_filter(s, TOPIC_HOTLINE, buf, sizeof(buf), &code) > 0);
	assert_string_equal(buf, "cordon/ok/hotline");
	assert_int_equal(mqtt_subs_filter(s, TOPIC_NINBOUND, buf, sizeof(buf), &code), -1);

	/* "+": the wildcard filters, as topics_filter() writes them. */
	assert_int_equal(mqtt_subs_set(s, (const char *[]){ "+" }, 1, NULL, NULL, NULL), 0);
	for (int k = 0; k < TOPIC_NINBOUND; k++) {
		char want[TOPIC_MAX_BYTES];

		topics_filter(want, sizeof(want), "cordon", (enum topic_kind)k);
		assert_true(mqtt_subs_filter(s, (size_t)k, buf, sizeof(buf), &code) > 0);
		assert_string_equal(buf, want);
	}
	mqtt_subs_destroy(s);
}

struct told {
	int n;
	char last[TOPIC_MAX_BYTES];
	int code, was;
};

static void
tell(void *arg, const char *filter, int code, int was)
{
	struct told *t = arg;

	t->n++;
	snprintf(t->last, sizeof(t->last), "%s", filter);
	t->code = code;
	t->was = was;
}

static void
subacks(void **state)
{
	struct mqtt_subs *s;
	struct mqtt_subs_counts c;
	const char *sites[] = { "A", "B" };
	int codes[2 * TOPIC_NINBOUND];
	struct told t = { 0 };
	uint64_t gen;

	(void)state;
	assert_int_equal(mqtt_subs_create("r", false, &s), 0);
	assert_int_equal(mqtt_subs_set(s, sites, 2, NULL, NULL, NULL), 0);
	mqtt_subs_reset(s);
	gen = mqtt_subs_generation(s);
	mqtt_subs_count(s, &c);
	assert_int_equal(c.pending, 2 * TOPIC_NINBOUND);
	for (int i = 0; i < 2 * TOPIC_NINBOUND; i++)
		codes[i] = 1;
	codes[TOPIC_NINBOUND + TOPIC_ACK] = 0x87; /* B's ack: not authorized */
	codes[1] = 0;				  /* A's second filter: QoS 0 */
	mqtt_subs_suback(s, gen, sites, 2, codes, 2 * TOPIC_NINBOUND);
	mqtt_subs_count(s, &c);
	assert_int_equal(c.pending, 0);
	assert_int_equal(c.refused, 1);
	assert_int_equal(c.downgraded, 1);
	assert_int_equal(c.granted, 2 * TOPIC_NINBOUND - 2);
	assert_string_equal(c.first_refused, "r/B/ack");
	assert_int_equal(c.first_refused_code, 0x87);

	/* News: each change once (a first grant is none: 2 of 18 here), at
	 * most `max` told. */
	assert_int_equal(mqtt_subs_news(s, tell, &t, 1), 1);
	assert_int_equal(t.n, 1);
	assert_int_equal(mqtt_subs_news(s, tell, &t, 100), 0);
	assert_int_equal(t.n, 1);

	/* A new connection: pending; the old connection's SUBACK ignored. */
	mqtt_subs_reset(s);
	mqtt_subs_suback(s, gen, sites, 2, codes, 2 * TOPIC_NINBOUND);
	mqtt_subs_count(s, &c);
	assert_int_equal(c.pending, 2 * TOPIC_NINBOUND);
	/* The broker grants B's ack now: news of it alone. */
	codes[TOPIC_NINBOUND + TOPIC_ACK] = 1;
	mqtt_subs_suback(s, mqtt_subs_generation(s), sites, 2, codes, 2 * TOPIC_NINBOUND);
	t.n = 0;
	assert_int_equal(mqtt_subs_news(s, tell, &t, 100), 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.last, "r/B/ack");
	assert_int_equal(t.code, 1);
	assert_int_equal(t.was, 0x87);

	/* A SUBACK short of codes: the rest refused (unspecified). */
	mqtt_subs_reset(s);
	mqtt_subs_suback(s, mqtt_subs_generation(s), (const char *[]){ "B", "gone" }, 2, codes, 1);
	mqtt_subs_count(s, &c);
	assert_int_equal(c.refused, TOPIC_NINBOUND - 1);
	assert_int_equal(c.pending, TOPIC_NINBOUND);
	mqtt_subs_destroy(s);
}

/* Many sites: the bound, and a change of a few among thousands. */
static void
bound(void **state)
{
	size_t n = MQTT_SUBS_MAX_SITES + 10;
	char **names = malloc(n * sizeof(*names));
	struct mqtt_subs *s;
	struct mqtt_subs_list add, rm;
	size_t skipped;

	(void)state;
	assert_non_null(names);
	for (size_t i = 0; i < n; i++) {
		names[i] = malloc(16);
		snprintf(names[i], 16, "S%06zu", i);
	}
	assert_int_equal(mqtt_subs_create("cordon", false, &s), 0);
	assert_int_equal(mqtt_subs_set(s, (const char *const *)names, n, &add, NULL, &skipped), 0);
	assert_int_equal(skipped, 10);
	assert_int_equal(add.n, MQTT_SUBS_MAX_SITES);
	free(add.names);
	snprintf(names[5], 16, "S9");
	assert_int_equal(mqtt_subs_set(s, (const char *const *)names, 1000, &add, &rm, NULL), 0);
	assert_list(&add, (const char *[]){ "S9" }, 1);
	assert_int_equal(rm.n, MQTT_SUBS_MAX_SITES - 999);
	assert_string_equal(rm.names[0], "S000005");
	free(add.names);
	free(rm.names);
	mqtt_subs_destroy(s);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* With the hand-over marker's filter (clustered with discovery): one more
 * per site, last, in the SUBACK order too; the wildcard has it as well. */
static void
handover_filters(void **state)
{
	struct mqtt_subs *s;
	struct mqtt_subs_counts c;
	const char *sites[] = { "S1" };
	int codes[MQTT_SUBS_MAX_KINDS];
	char buf[TOPIC_MAX_BYTES];
	int code;

	(void)state;
	assert_int_equal(mqtt_subs_create("cordon", true, &s), 0);
	assert_int_equal(mqtt_subs_kinds(s), TOPIC_NINBOUND + 1);
	assert_int_equal(mqtt_subs_set(s, sites, 1, NULL, NULL, NULL), 0);
	assert_int_equal(mqtt_subs_filters(s), TOPIC_NINBOUND + 1);
	assert_int_equal(mqtt_subs_filter(s, 0, buf, sizeof(buf), &code) > 0, 1);
	assert_string_equal(buf, "cordon/S1/gate/+/event");
	assert_int_equal(mqtt_subs_filter(s, TOPIC_NINBOUND, buf, sizeof(buf), &code) > 0, 1);
	assert_string_equal(buf, "cordon/S1/_handover");
	assert_int_equal(code, MQTT_SUBS_PENDING);
	assert_int_equal(mqtt_subs_filter(s, TOPIC_NINBOUND + 1, buf, sizeof(buf), &code), -1);
	for (int k = 0; k < MQTT_SUBS_MAX_KINDS; k++)
		codes[k] = 1;
	codes[TOPIC_NINBOUND] = 0x87;
	assert_false(mqtt_subs_site_granted(s, "S1")); /* pending */
	mqtt_subs_suback(s, mqtt_subs_generation(s), sites, 1, codes, MQTT_SUBS_MAX_KINDS);
	assert_false(mqtt_subs_site_granted(s, "S1")); /* the marker's refused */
	assert_false(mqtt_subs_site_granted(s, "S2")); /* not in the set */
	mqtt_subs_count(s, &c);
	assert_int_equal(c.granted, TOPIC_NINBOUND);
	assert_int_equal(c.refused, 1);
	assert_string_equal(c.first_refused, "cordon/S1/_handover");
	codes[TOPIC_NINBOUND] = 0; /* granted at QoS 0 is granted */
	mqtt_subs_suback(s, mqtt_subs_generation(s), sites, 1, codes, MQTT_SUBS_MAX_KINDS);
	assert_true(mqtt_subs_site_granted(s, "S1"));
	mqtt_subs_reset(s); /* a new connection: pending again */
	assert_false(mqtt_subs_site_granted(s, "S1"));
	assert_int_equal(mqtt_subs_build(s, "+", TOPIC_NINBOUND, buf, sizeof(buf)) > 0, 1);
	assert_string_equal(buf, "cordon/+/_handover");
	mqtt_subs_destroy(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(changes),
		cmocka_unit_test(handover_filters),
		cmocka_unit_test(filters_and_bad_sites),
		cmocka_unit_test(subacks),
		cmocka_unit_test(bound),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
