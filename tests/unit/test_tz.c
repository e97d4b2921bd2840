/* Unit tests of tz.c against the system's zoneinfo files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>

#include "tz.h"

static void
shanghai(void **state)
{
	struct tz *tz;

	(void)state;
	assert_int_equal(tz_load("Asia/Shanghai", &tz), 0);
	assert_int_equal(tz_offset_at(tz, 1581849120), 8 * 3600);
	/* 2020-02-16 18:32:00 local is 10:32:00 UTC. */
	assert_true(tz_local_to_utc(tz, 1581849120 + 8 * 3600) == 1581849120);
	tz_free(tz);
}

static void
new_york_dst(void **state)
{
	struct tz *tz;

	(void)state;
	assert_int_equal(tz_load("America/New_York", &tz), 0);
	assert_int_equal(tz_offset_at(tz, 1581849120), -5 * 3600); /* February: EST */
	assert_int_equal(tz_offset_at(tz, 1594900000), -4 * 3600); /* July: EDT */
	/* 2020-07-16 12:00 local (EDT) is 16:00 UTC. */
	assert_true(tz_local_to_utc(tz, 1594900800) == 1594900800 + 4 * 3600);
	/* 2020-11-01 01:30 local happens twice: the earlier (EDT) is taken. */
	assert_true(tz_local_to_utc(tz, 1604194200) == 1604194200 + 4 * 3600);
	tz_free(tz);
}

static void
bad_names(void **state)
{
	struct tz *tz;

	(void)state;
	assert_int_equal(tz_load("Nowhere/Atlantis", &tz), -ENOENT);
	assert_int_equal(tz_load("../../etc/passwd", &tz), -EINVAL);
	assert_int_equal(tz_load("", &tz), -EINVAL);
	assert_int_equal(tz_load("UTC", &tz), 0);
	assert_int_equal(tz_offset_at(tz, 0), 0);
	tz_free(tz);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shanghai),
		cmocka_unit_test(new_york_dst),
		cmocka_unit_test(bad_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
