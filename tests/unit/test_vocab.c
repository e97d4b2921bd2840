/* test_vocab.c - the small shared vocabularies: temperature text and
 * rounding (temp.c) and the capped exponential backoff (backoff.c). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backoff.h"
#include "temp.h"

static const char *
fmt(int16_t dc)
{
	static char buf[16];

	temp_format(dc, buf, sizeof(buf));
	return buf;
}

static const char *
fmt_c(double c)
{
	static char buf[16];

	temp_format_c(c, buf, sizeof(buf));
	return buf;
}

static void
temperature_text(void **state)
{
	(void)state;
	assert_string_equal(fmt(366), "36.6");
	assert_string_equal(fmt(-5), "-0.5"); /* -5 / 10 is 0: the sign apart */
	assert_string_equal(fmt(-1), "-0.1");
	assert_string_equal(fmt(-15), "-1.5");
	assert_string_equal(fmt(0), "0.0");
	assert_string_equal(fmt(5), "0.5");
	assert_string_equal(fmt(9999), "999.9");
	assert_string_equal(fmt(-9999), "-999.9");
	assert_string_equal(fmt(TEMP_NONE), "");
	{
		char small[4];

		temp_format(366, small, sizeof(small)); /* cut, NUL-terminated */
		assert_string_equal(small, "36.");
	}
}

static void
temperature_rounding(void **state)
{
	int16_t dc = 0;

	(void)state;
	assert_int_equal(temp_round(36.65, &dc), 0); /* 36.6499... in binary */
	assert_int_equal(dc, 367);
	assert_int_equal(temp_round(37.25, &dc), 0);
	assert_int_equal(dc, 373);
	assert_int_equal(temp_round(-0.05, &dc), 0); /* half away from zero */
	assert_int_equal(dc, -1);
	assert_int_equal(temp_round(-0.5, &dc), 0);
	assert_int_equal(dc, -5);
	assert_int_equal(temp_round(-0.04, &dc), 0);
	assert_int_equal(dc, 0);
	assert_int_equal(temp_round(999.94, &dc), 0);
	assert_int_equal(dc, 9999);
	dc = 1;
	assert_int_equal(temp_round(999.96, &dc), -ERANGE);
	assert_int_equal(temp_round(-999.96, &dc), -ERANGE);
	assert_int_equal(temp_round(NAN, &dc), -ERANGE);
	assert_int_equal(temp_round(INFINITY, &dc), -ERANGE);
	assert_int_equal(dc, 1); /* untouched on failure */

	/* Degrees as text round as the rules do: "%.1f" writes 37.25 as
	 * "37.2", while the rules' threshold is 37.3. */
	assert_string_equal(fmt_c(37.25), "37.3");
	assert_string_equal(fmt_c(37.3), "37.3");
	assert_string_equal(fmt_c(-0.5), "-0.5");
	assert_string_equal(fmt_c(-0.04), "0.0"); /* never "-0.0" */
	assert_string_equal(fmt_c(NAN), "");
	assert_string_equal(fmt_c(1e6), "");
}

static void
backoff_sequence(void **state)
{
	struct backoff b;
	static const int64_t pg[] = { 500, 1000, 2000, 4000, 8000, 15000, 15000 };
	static const int64_t mqtt[] = { 1000, 2000, 4000, 8000, 16000, 30000, 30000 };

	(void)state;
	backoff_init(&b, 500, 15000); /* store.c, registry.c */
	for (size_t i = 0; i < sizeof(pg) / sizeof(pg[0]); i++) {
		assert_int_equal(backoff_delay(&b), pg[i]);
		assert_int_equal(backoff_next(&b), pg[i]);
	}
	backoff_reset(&b);
	assert_int_equal(backoff_delay(&b), 500);
	backoff_init(&b, 1000, 30000); /* mqtt_client.c: 16 s, then 30 s */
	for (size_t i = 0; i < sizeof(mqtt) / sizeof(mqtt[0]); i++)
		assert_int_equal(backoff_next(&b), mqtt[i]);
	backoff_init(&b, 7, 7);
	assert_int_equal(backoff_next(&b), 7);
	assert_int_equal(backoff_next(&b), 7);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(temperature_text),
		cmocka_unit_test(temperature_rounding),
		cmocka_unit_test(backoff_sequence),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
