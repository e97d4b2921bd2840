/* Unit tests of idhash.c: the hash of an ID number is the one cordond
 * gives gate events (test_formats.c's HASH_ID1/HASH_ID2 under the same
 * key), the key file's rules, and what is not an ID number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "idhash.h"

#define KEY "cordon-test-key"

static void
same_as_the_normalizer(void **state)
{
	char h[IDHASH_SIZE];

	(void)state;
	/* The values tests/unit/test_formats.c expects in gate events. */
	assert_int_equal(idhash_person((const uint8_t *)KEY, strlen(KEY), "110101199003078515", h),
			 0);
	assert_string_equal(h, "id:95ed01b5e5ed553be7a40ba1d951b2b4");
	assert_int_equal(idhash_person((const uint8_t *)KEY, strlen(KEY), "11010519491231002X", h),
			 0);
	assert_string_equal(h, "id:6f36b0adb9b14df7a4c64d293f9fa856");
	assert_int_equal(strlen(h), IDHASH_LEN);
}

static void
not_an_id_number(void **state)
{
	static const char *const bad[] = { "",
					   "P-10233",
					   "11010119900307851",
					   "1101011990030785151",
					   "11010119900307851Y",
					   "X10101199003078515" };
	char h[IDHASH_SIZE] = "untouched";

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(idhash_is_id_number(bad[i]));
		assert_int_equal(idhash_person((const uint8_t *)KEY, strlen(KEY), bad[i], h),
				 -EINVAL);
	}
	assert_true(idhash_is_id_number("11010519491231002x"));
	assert_int_equal(idhash_person(NULL, 0, "110101199003078515", h), -EINVAL);
	assert_string_equal(h, "untouched");
}

static void
key_file(void **state)
{
	char path[] = "/tmp/cordon-idhash-XXXXXX";
	uint8_t *key = NULL;
	size_t len = 0;
	FILE *f;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(KEY "-16\r\n", f);
	fclose(f);
	assert_int_equal(idhash_key_load(path, &key, &len), 0);
	assert_int_equal(len, strlen(KEY "-16"));
	assert_memory_equal(key, KEY "-16", len);
	free(key);

	f = fopen(path, "w");
	assert_non_null(f);
	fputs(KEY "\n", f); /* 15 bytes */
	fclose(f);
	assert_int_equal(idhash_key_load(path, &key, &len), -EINVAL);
	unlink(path);
	assert_int_equal(idhash_key_load(path, &key, &len), -ENOENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_as_the_normalizer),
		cmocka_unit_test(not_an_id_number),
		cmocka_unit_test(key_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
