/* Unit tests of the configuration: defaults, values, FILE:LINE errors,
 * the printed effective config, and every key of the key table documented
 * in docs/config.md and config/cordond.conf (PgBouncer's optscan idea).
 * argv[1] = docs/config.md, argv[2] = config/cordond.conf. */
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

#include "config.h"
#include "spool.h"
#include "config_keys.h"

static const char *doc_path, *example_path;

static char *
write_tmp(const char *text)
{
	static char path[256];
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/tmp/cordon-config-test.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* Loads `text`; returns the rc and the error output in *errs (malloc'ed). */
static int
load(const char *text, struct config *cfg, char **errs)
{
	char *path = write_tmp(text);
	size_t len = 0;
	FILE *e = open_memstream(errs, &len);
	int rc;

	assert_int_equal(config_init(cfg), 0);
	rc = config_load(cfg, path, e);
	fclose(e);
	unlink(path);
	return rc;
}

static void
defaults_and_values(void **state)
{
	struct config cfg;
	char *errs;

	(void)state;
	assert_int_equal(load("[mqtt]\nuri = tcp://10.0.0.1:1883\n"
			      "[spool]\nmax_bytes = 2GiB\nsync = always\nsync_interval = 250ms\n"
			      "[rules]\nfever_c = 37.5 ; inline comment\n"
			      "[log]\nlevel = debug\n",
			      &cfg, &errs),
			 0);
	assert_string_equal(errs, "");
	assert_string_equal(cfg.mqtt_uri, "tcp://10.0.0.1:1883");
	assert_string_equal(cfg.mqtt_client_id, "cordond");
	assert_true(cfg.spool_max_bytes == 2LL << 30);
	assert_int_equal(cfg.spool_sync, SPOOL_SYNC_ALWAYS);
	assert_true(cfg.spool_sync_interval == 250);
	assert_true(cfg.fever_c > 37.49 && cfg.fever_c < 37.51);
	assert_true(cfg.critical_c > 38.49 && cfg.critical_c < 38.51);
	assert_true(cfg.max_clock_skew == 600000);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	free(errs);
	config_finish(&cfg);
}

static void
errors_name_file_and_line(void **state)
{
	struct config cfg;
	char *errs;

	(void)state;
	assert_int_equal(load("[mqtt]\n"
			      "bogus = 1\n"
			      "keepalive = soon\n"
			      "[spool]\n"
			      "sync = sometimes\n"
			      "max_bytes = 12 parsecs\n"
			      "[nosuch]\n"
			      "key = v\n"
			      "[rules]\n"
			      "fever_c = 50\n"
			      "fever_c = 37\n"
			      "this line is not ini\n",
			      &cfg, &errs),
			 -22);
	assert_non_null(strstr(errs, ":2: unknown key 'bogus' in section [mqtt]"));
	assert_non_null(strstr(errs, ":3: [mqtt] keepalive = 'soon': not a duration"));
	assert_non_null(strstr(errs, ":5: [spool] sync = 'sometimes'"));
	assert_non_null(strstr(errs, ":6: [spool] max_bytes = '12 parsecs': not a size"));
	assert_non_null(strstr(errs, ":8: unknown key 'key' in section [nosuch]"));
	assert_non_null(strstr(errs, ":10: [rules] fever_c = '50': out of range"));
	assert_non_null(strstr(errs, ":11: [rules] fever_c is set twice"));
	assert_non_null(strstr(errs, ":12: syntax error"));
	free(errs);
	config_finish(&cfg);
}

/* A section nobody reads is an error even with no keys (inih calls the
 * handler only for keys), once, at its own line; a known section with none
 * is fine, and an unknown one with keys is reported by its keys only. */
static void
empty_unknown_section(void **state)
{
	struct config cfg;
	char *errs;

	(void)state;
	assert_int_equal(load("[mqtt]\n"
			      "[nosuch]\n"
			      "; nothing\n"
			      "[spool]\n"
			      "[recever.x]\n"
			      "[receiver.x]\n"
			      "[other]\n"
			      "k = v\n"
			      "[last] ; a comment\n",
			      &cfg, &errs),
			 -22);
	assert_non_null(strstr(errs, ":2: unknown section [nosuch]\n"));
	assert_non_null(strstr(errs, ":5: unknown section [recever.x]\n"));
	assert_non_null(strstr(errs, ":8: unknown key 'k' in section [other]\n"));
	assert_null(strstr(errs, "unknown section [other]"));
	assert_non_null(strstr(errs, ":9: unknown section [last]\n"));
	assert_null(strstr(errs, "[mqtt]"));
	assert_null(strstr(errs, "[spool]"));
	assert_null(strstr(errs, "[receiver.x]"));
	free(errs);
	config_finish(&cfg);

	/* A byte order mark before the first line; a name longer than any. */
	assert_int_equal(
		load("\xEF\xBB\xBF[bogus]\n"
		     "[mqtt]\n"
		     "[a123456789b123456789c123456789d123456789e123456789f123456789g123456789]\n",
		     &cfg, &errs),
		-22);
	assert_non_null(strstr(errs, ":1: unknown section [bogus]\n"));
	assert_non_null(strstr(errs, ":3: unknown section [a123456789b123456789"));
	free(errs);
	config_finish(&cfg);
}

static void
missing_file(void **state)
{
	struct config cfg;
	FILE *e = fopen("/dev/null", "w");

	(void)state;
	assert_int_equal(config_init(&cfg), 0);
	assert_true(config_load(&cfg, "/nonexistent/cordond.conf", e) < 0);
	fclose(e);
	config_finish(&cfg);
}

static void
printed_config_reloads_identically(void **state)
{
	struct config a, b;
	char *out1, *out2, *errs;
	size_t l1 = 0, l2 = 0;
	FILE *f;

	(void)state;
	assert_int_equal(
		load("[spool]\nmax_bytes = 1536MiB\n[site]\nmax_clock_skew = 90s\n", &a, &errs), 0);
	free(errs);
	f = open_memstream(&out1, &l1);
	config_print(&a, f);
	fclose(f);
	assert_non_null(strstr(out1, "max_bytes = 1536MiB\n"));
	assert_non_null(strstr(out1, "max_clock_skew = 90s\n"));
	assert_non_null(strstr(out1, "sync_interval = 100ms\n"));
	assert_int_equal(load(out1, &b, &errs), 0);
	free(errs);
	f = open_memstream(&out2, &l2);
	config_print(&b, f);
	fclose(f);
	assert_string_equal(out1, out2);
	free(out1);
	free(out2);
	config_finish(&a);
	config_finish(&b);
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return buf;
}

/* The text of section `name` in `text`: from its header to the next one. */
static char *
section_of(const char *text, const char *header, const char *next_prefix)
{
	const char *start = strstr(text, header), *end;

	if (!start)
		return NULL;
	end = strstr(start + strlen(header), next_prefix);
	return strndup(start, end ? (size_t)(end - start) : strlen(start));
}

static void
every_key_documented(void **state)
{
	char *doc = slurp(doc_path), *example = slurp(example_path);
	int missing = 0;

	(void)state;
	for (const struct config_key *k = config_keys; k->section; k++) {
		char header[64], needle[96];
		char *sec;

		snprintf(header, sizeof(header), "## [%s]", k->section);
		sec = section_of(doc, header, "\n## ");
		snprintf(needle, sizeof(needle), "`%s`", k->name);
		if (!sec || !strstr(sec, needle)) {
			fprintf(stderr, "docs/config.md: [%s] %s is not documented\n", k->section,
				k->name);
			missing++;
		}
		free(sec);

		snprintf(header, sizeof(header), "\n[%s]\n", k->section);
		sec = section_of(example, header, "\n[");
		snprintf(needle, sizeof(needle), "\n;%s = ", k->name);
		if (!sec || (!strstr(sec, needle) && !strstr(sec, needle + 2))) {
			fprintf(stderr, "config/cordond.conf: [%s] %s is missing\n", k->section,
				k->name);
			missing++;
		}
		free(sec);
	}
	assert_int_equal(missing, 0);
	free(doc);
	free(example);
}

static void
example_config_is_valid(void **state)
{
	struct config cfg;
	FILE *e = fopen("/dev/null", "w");

	(void)state;
	assert_int_equal(config_init(&cfg), 0);
	assert_int_equal(config_load(&cfg, example_path, e), 0);
	fclose(e);
	config_finish(&cfg);
}

static void
times_of_day(void **state)
{
	static const struct {
		const char *in;
		int64_t s; /* -1: refused */
	} cases[] = {
		{ "20:00", 72000 },
		{ "00:00", 0 },
		{ "23:59", 86340 },
		{ "07:05:09", 25509 },
		{ "23:59:59", 86399 },
		{ "24:00", -1 },
		{ "12:60", -1 },
		{ "12:00:60", -1 },
		{ "8:00", -1 },
		{ "12:00:", -1 },
		{ "12-00", -1 },
		{ "12:0a", -1 },
		{ "", -1 },
		{ "12:00:00:00", -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = -2;
		int rc = config_parse_time_of_day(cases[i].in, &v);

		if (cases[i].s < 0) {
			assert_int_equal(rc, -EINVAL);
		} else {
			assert_int_equal(rc, 0);
			assert_int_equal(v, cases[i].s);
		}
	}
}

static void
uri_lists(void **state)
{
	static const struct {
		const char *in;
		int count; /* 0: refused */
		bool tls;
		const char *second; /* the second URI, as handed to Paho */
	} cases[] = {
		{ "tcp://127.0.0.1:1883", 1, false, NULL },
		{ "tcp://broker-1:1883,tcp://broker-2:1883", 2, false, "tcp://broker-2:1883" },
		{ "tcp://a:1883 , tcp://b", 2, false, "tcp://b" },
		{ "ssl://a.example:8883,ssl://[::1]:8883", 2, true, "ssl://[::1]:8883" },
		{ "tcp://[fe80::1]:1", 1, false, NULL },
		{ "tcp://a,tcp://b,tcp://c,tcp://d,tcp://e,tcp://f,tcp://g,tcp://h,"
		  "tcp://i,tcp://j,tcp://k,tcp://l,tcp://m,tcp://n,tcp://o,tcp://p",
		  16, false, "tcp://b" },
		{ "tcp://a,tcp://b,tcp://c,tcp://d,tcp://e,tcp://f,tcp://g,tcp://h,"
		  "tcp://i,tcp://j,tcp://k,tcp://l,tcp://m,tcp://n,tcp://o,tcp://p,tcp://q",
		  0, false, NULL },
		{ "tcp://a:1883,ssl://b:8883", 0, false, NULL },
		{ "ssl://a:8883,tcp://b:1883", 0, false, NULL },
		{ "tcp://a:1883,", 0, false, NULL },
		{ ",tcp://a:1883", 0, false, NULL },
		{ "tcp://a:1883,,tcp://b:1883", 0, false, NULL },
		{ "", 0, false, NULL },
		{ "mqtt://a:1883", 0, false, NULL },
		{ "ws://a:80", 0, false, NULL },
		{ "a:1883", 0, false, NULL },
		{ "tcp://:1883", 0, false, NULL },
		{ "tcp://a:0", 0, false, NULL },
		{ "tcp://a:65536", 0, false, NULL },
		{ "tcp://a:-1", 0, false, NULL },
		{ "tcp://a:", 0, false, NULL },
		{ "tcp://a:1883/x", 0, false, NULL },
		{ "tcp://a b:1883", 0, false, NULL },
		{ "tcp://user@a:1883", 0, false, NULL },
		{ "tcp://[::1:1883", 0, false, NULL },
		{ "tcp://a:1883 tcp://b:1883", 0, false, NULL },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct config_uris u;
		const char *why = config_parse_uris(cases[i].in, &u);

		if (cases[i].count == 0) {
			if (!why)
				fail_msg("'%s' was taken", cases[i].in);
			assert_null(u.buf);
			continue;
		}
		if (why)
			fail_msg("'%s' was refused: %s", cases[i].in, why);
		assert_int_equal(u.count, cases[i].count);
		assert_int_equal(u.tls, cases[i].tls);
		if (cases[i].second)
			assert_string_equal(u.uri[1], cases[i].second);
		config_uris_free(&u);
		config_uris_free(&u); /* zeroed: a second free is harmless */
	}
}

static void
uri_list_errors_name_file_and_line(void **state)
{
	struct config cfg;
	char *errs;

	(void)state;
	assert_int_equal(
		load("[mqtt]\nclient_id = x\nuri = tcp://a:1883,ssl://b:8883\n", &cfg, &errs), -22);
	assert_non_null(strstr(errs,
			       ":3: [mqtt] uri = 'tcp://a:1883,ssl://b:8883': all URIs"
			       " must use one scheme"));
	free(errs);
	config_finish(&cfg);
	assert_int_equal(load("[mqtt]\nuri = ssl://a:8883, ssl://b:8883\nca_file = /ca.pem\n", &cfg,
			      &errs),
			 0);
	assert_string_equal(cfg.mqtt_uri, "ssl://a:8883, ssl://b:8883");
	free(errs);
	config_finish(&cfg);
	assert_int_equal(load("[mqtt]\nuri = tcp://a:1883,tcp://b:1883\nca_file = /ca.pem\n", &cfg,
			      &errs),
			 -22);
	assert_non_null(strstr(errs, "is not ssl://"));
	free(errs);
	config_finish(&cfg);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_and_values),
		cmocka_unit_test(errors_name_file_and_line),
		cmocka_unit_test(empty_unknown_section),
		cmocka_unit_test(missing_file),
		cmocka_unit_test(printed_config_reloads_identically),
		cmocka_unit_test(every_key_documented),
		cmocka_unit_test(example_config_is_valid),
		cmocka_unit_test(times_of_day),
		cmocka_unit_test(uri_lists),
		cmocka_unit_test(uri_list_errors_name_file_and_line),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: test_config docs/config.md config/cordond.conf\n");
		return 2;
	}
	doc_path = argv[1];
	example_path = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
