/* Unit tests of notifier_send.c's pure parts (notifier_send_internal.h):
 * DingTalk's signature against vectors computed independently (Python's
 * hmac, hashlib.sha256, base64 and urllib.parse.quote_plus, as DingTalk's
 * own documentation computes it), the RFC 2047 subject, the escapes of the
 * SMS template and the answer excerpt. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "notifier_send_internal.h"
#include "notifier_text.h"

/* notifier_send.c calls the renderer; these tests never reach it, and link
 * only the module under test. */
int
notifier_render(const struct notifier_message *m, enum notifier_lang lang,
		enum notifier_style style, size_t max_bytes, notifier_zone_fn *zone, void *zarg,
		char **ret_title, char **ret_body)
{
	(void)m, (void)lang, (void)style, (void)max_bytes, (void)zone, (void)zarg;
	(void)ret_title, (void)ret_body;
	return -ENOSYS;
}

static void
dingtalk_sign_vectors(void **state)
{
	char *s;

	(void)state;
	/* python3: quote_plus(b64encode(hmac.new(secret, f"{ts}\n{secret}", sha256).digest())) */
	assert_int_equal(notifier_send_sign("SEC0123456789abcdef", 1581849120000, &s), 0);
	assert_string_equal(s, "QKBGQkTlBsge0rvrsVcF70wvEoMZ0dR8lwRNFc7nSHI%3D");
	free(s);
	/* '/' and '+' in the base64 are URL-encoded too. */
	assert_int_equal(notifier_send_sign("this is secret", 1700000000123, &s), 0);
	assert_string_equal(s, "W2RNhLVXZurCuMiewxzjoEaGqxhR%2FFQAkLiAHZh%2BPWY%3D");
	free(s);
}

static void
subject_plain_ascii_stays(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(notifier_send_subject("[s1] 3 fevers at gate G01", &s), 0);
	assert_string_equal(s, "[s1] 3 fevers at gate G01");
	free(s);
}

static void
subject_utf8_is_encoded(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(notifier_send_subject("[s1] 发热 38.6 °C", &s), 0);
	assert_string_equal(s, "=?UTF-8?B?W3MxXSDlj5Hng60gMzguNiDCsEM=?=");
	free(s);
}

static void
subject_long_is_split_on_characters(void **state)
{
	/* 60 characters of 3 bytes: four words of 15 whole characters, each
	 * 72 columns, folded. */
	static const char *const expect =
		"=?UTF-8?B?6Zeo5bKX5L2T5rip5byC5bi46Zeo5bKX5L2T5rip5byC5bi46Zeo5bKX5L2T?=\r\n"
		" =?UTF-8?B?5rip5byC5bi46Zeo5bKX5L2T5rip5byC5bi46Zeo5bKX5L2T5rip5byC5bi4?=\r\n"
		" =?UTF-8?B?6Zeo5bKX5L2T5rip5byC5bi46Zeo5bKX5L2T5rip5byC5bi46Zeo5bKX5L2T?=\r\n"
		" =?UTF-8?B?5rip5byC5bi46Zeo5bKX5L2T5rip5byC5bi46Zeo5bKX5L2T5rip5byC5bi4?=";
	char in[200] = "", *s;

	(void)state;
	for (int i = 0; i < 10; i++)
		strcat(in, "门岗体温异常");
	assert_int_equal(notifier_send_subject(in, &s), 0);
	assert_string_equal(s, expect);
	free(s);
}

static void
subject_never_carries_a_header_break(void **state)
{
	char *s;

	(void)state;
	/* A CR LF in a title would start a new header (Bcc:): it is encoded. */
	assert_int_equal(notifier_send_subject("line1\r\nBcc: x@y", &s), 0);
	assert_string_equal(s, "=?UTF-8?B?bGluZTENCkJjYzogeEB5?=");
	free(s);
	/* And ASCII that looks like an encoded word is encoded, not taken as one. */
	assert_int_equal(notifier_send_subject("=?UTF-8?B?eA==?=", &s), 0);
	assert_string_equal(s, "=?UTF-8?B?PT9VVEYtOD9CP2VBPT0/PQ==?=");
	free(s);
}

static void
escape_json(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(notifier_send_escape("a\"b\\c\nd\te\x01 发热", ESC_JSON, &s), 0);
	assert_string_equal(s, "a\\\"b\\\\c\\nd\\te\\u0001 发热");
	free(s);
	/* Bytes that are not UTF-8 cannot go into JSON. */
	assert_int_equal(notifier_send_escape("a\xff", ESC_JSON, &s), -EINVAL);
}

static void
escape_form(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(notifier_send_escape("a b&c=d/é+~-._", ESC_FORM, &s), 0);
	assert_string_equal(s, "a%20b%26c%3Dd%2F%C3%A9%2B~-._");
	free(s);
	assert_int_equal(notifier_send_escape("a\"b", ESC_RAW, &s), 0);
	assert_string_equal(s, "a\"b");
	free(s);
}

static void
escape_for_content_type(void **state)
{
	(void)state;
	assert_int_equal(notifier_send_escape_for("application/json"), ESC_JSON);
	assert_int_equal(notifier_send_escape_for("application/json; charset=utf-8"), ESC_JSON);
	assert_int_equal(notifier_send_escape_for("application/vnd.api+json"), ESC_JSON);
	assert_int_equal(notifier_send_escape_for("application/x-www-form-urlencoded"), ESC_FORM);
	assert_int_equal(notifier_send_escape_for("text/plain"), ESC_RAW);
	assert_int_equal(notifier_send_escape_for(NULL), ESC_RAW);
}

static void
fill_template(void **state)
{
	char *s;

	(void)state;
	assert_int_equal(notifier_send_fill("{\"to\":\"{to}\",\"cc\":\"{to}\",\"text\":\"{text}\","
					    "\"x\":\"{other}\"}",
					    "180\"1", "a\nb", ESC_JSON, &s),
			 0);
	assert_string_equal(s,
			    "{\"to\":\"180\\\"1\",\"cc\":\"180\\\"1\",\"text\":\"a\\nb\","
			    "\"x\":\"{other}\"}");
	free(s);
	assert_int_equal(notifier_send_fill("to={to}&m={text}", "1 2", "x&y", ESC_FORM, &s), 0);
	assert_string_equal(s, "to=1%202&m=x%26y");
	free(s);
	/* A value holding "{text}" is not filled again. */
	assert_int_equal(notifier_send_fill("{to}:{text}", "{text}", "T", ESC_RAW, &s), 0);
	assert_string_equal(s, "{text}:T");
	free(s);
	assert_int_equal(notifier_send_fill("", "a", "b", ESC_RAW, &s), 0);
	assert_string_equal(s, "");
	free(s);
}

static void
excerpt(void **state)
{
	char out[64];
	const char *cn = "发热发热"; /* 12 bytes */

	(void)state;
	notifier_send_excerpt(out, sizeof(out), "a\r\nb\tc", 6, 400);
	assert_string_equal(out, "a  b c");
	notifier_send_excerpt(out, sizeof(out),
			      "a\xff"
			      "b",
			      3, 400);
	assert_string_equal(out, "a?b");
	/* A cut inside a character drops it whole. */
	notifier_send_excerpt(out, sizeof(out), cn, strlen(cn), 7);
	assert_string_equal(out, "发热");
	notifier_send_excerpt(out, 5, cn, strlen(cn), 400);
	assert_string_equal(out, "发");
	notifier_send_excerpt(out, sizeof(out), "", 0, 400);
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dingtalk_sign_vectors),
		cmocka_unit_test(subject_plain_ascii_stays),
		cmocka_unit_test(subject_utf8_is_encoded),
		cmocka_unit_test(subject_long_is_split_on_characters),
		cmocka_unit_test(subject_never_carries_a_header_break),
		cmocka_unit_test(escape_json),
		cmocka_unit_test(escape_form),
		cmocka_unit_test(escape_for_content_type),
		cmocka_unit_test(fill_template),
		cmocka_unit_test(excerpt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
