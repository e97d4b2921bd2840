/* Unit test of metrics.h's label value escaping (Prometheus "Exposition
 * formats", text format: a label value escapes backslash, double quote
 * and line feed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "metrics.h"

static void
label_value_escaped(void **state)
{
	char buf[64];
	char *end;

	(void)state;
	end = metrics_put_label_value(buf, "s-1_A");
	*end = '\0';
	assert_string_equal(buf, "s-1_A");
	/* the worst case: twice the length */
	end = metrics_put_label_value(buf, "a\"b\\c\nd\"\\\n");
	*end = '\0';
	assert_string_equal(buf, "a\\\"b\\\\c\\nd\\\"\\\\\\n");
	assert_int_equal(strlen(buf), 10 + 6); /* 10 bytes, 6 escaped */
	end = metrics_put_label_value(buf, "");
	assert_ptr_equal(end, buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(label_value_escaped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
