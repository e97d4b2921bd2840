/* Unit tests of version.c: the text of the version numbers, and which
 * libraries --version names. This program links libpq and jansson, and
 * not Paho, libmicrohttpd, libcurl or libsodium: those must not be named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "version.h"

static void
numbers(void **state)
{
	char buf[32];

	(void)state;
	assert_string_equal(version_pq_text(150018, buf, sizeof(buf)), "15.18");
	assert_string_equal(version_pq_text(100000, buf, sizeof(buf)), "10.0");
	assert_string_equal(version_pq_text(170002, buf, sizeof(buf)), "17.2");
	assert_string_equal(version_pq_text(90624, buf, sizeof(buf)), "9.6.24");
	assert_string_equal(version_xxh_text(801, buf, sizeof(buf)), "0.8.1");
	assert_string_equal(version_xxh_text(10203, buf, sizeof(buf)), "1.2.3");
}

/* Which libraries: those loaded, each with its own call's answer. */
static void
loaded(void **state)
{
	struct version_lib l[VERSION_LIBS_MAX];
	size_t n = version_libs(l);
	char pq[32];
	int have_pq = 0, have_jansson = 0;

	(void)state;
	version_pq_text(PQlibVersion(), pq, sizeof(pq));
	for (size_t i = 0; i < n; i++) {
		assert_true(strcmp(l[i].name, "paho-mqtt") != 0);
		assert_true(strcmp(l[i].name, "libmicrohttpd") != 0);
		assert_true(strcmp(l[i].name, "libcurl") != 0);
		assert_true(strcmp(l[i].name, "libsodium") != 0);
		if (strcmp(l[i].name, "libpq") == 0) {
			assert_string_equal(l[i].version, pq);
			have_pq = 1;
		}
		if (strcmp(l[i].name, "jansson") == 0) {
			assert_string_equal(l[i].version, jansson_version_str());
			assert_string_equal(l[i].label, "jansson");
			have_jansson = 1;
		}
	}
	assert_true(have_pq && have_jansson);
}

/* --version: "PROGRAM VERSION", then "  NAME VERSION" lines; the metric:
 * one sample with a label per library. */
static void
printed(void **state)
{
	char *text = NULL, want[96];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	assert_non_null(f);
	version_print(f, "cordond");
	fclose(f);
	snprintf(want, sizeof(want), "cordond %s\n", version_cordon());
	assert_memory_equal(text, want, strlen(want));
	snprintf(want, sizeof(want), "\n  jansson %s\n", jansson_version_str());
	assert_non_null(strstr(text, want));
	free(text);

	text = NULL;
	f = open_memstream(&text, &len);
	assert_non_null(f);
	version_print_build_info(f, "cordon-notify");
	fclose(f);
	assert_non_null(strstr(text, "# TYPE cordon_build_info gauge\n"));
	snprintf(want, sizeof(want),
		 "\ncordon_build_info{program=\"cordon-notify\",version=\"%s\",", version_cordon());
	assert_non_null(strstr(text, want));
	snprintf(want, sizeof(want), ",jansson=\"%s\"", jansson_version_str());
	assert_non_null(strstr(text, want));
	assert_non_null(strstr(text, "} 1\n"));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(numbers),
		cmocka_unit_test(loaded),
		cmocka_unit_test(printed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
