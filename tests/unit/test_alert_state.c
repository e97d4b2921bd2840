/* Unit tests of alert_state.c: the kinds table against its names and
 * docs/alerts.md, the names of severities and states, and the rows of the
 * rule state restored at start (the SQL's names against the table). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_state.h"

static const char *docs_path;

static void
kinds(void **state)
{
	(void)state;
	for (int k = 0; k < KIND_COUNT; k++) {
		const struct alert_kind_info *info = alert_state_kind((enum alert_kind)k);

		assert_non_null(info->name);
		assert_non_null(info->noun);
		assert_int_equal(alert_state_kind_from_name(info->name), k);
		assert_string_equal(alert_state_kind_name((enum alert_kind)k), info->name);
		/* a name is a topic level and an id (cordonctl --kind): [a-z_] */
		assert_int_equal(strspn(info->name, "abcdefghijklmnopqrstuvwxyz_"),
				 strlen(info->name));
		assert_true(strlen(info->name) > 0 && strlen(info->name) < 32);
	}
	assert_int_equal(alert_state_kind_from_name("plague"), -EINVAL);
	assert_string_equal(alert_state_kind_name(KIND_COUNT), "?");
	assert_string_equal(alert_state_kind_name(KIND_HOTLINE_UNRESOLVED), "hotline_unresolved");
	assert_int_equal(alert_state_kind(KIND_SEALED_GATE)->severity, SEVERITY_CRITICAL);
	assert_true(alert_state_kind(KIND_GATE_SILENT)->timer);
	assert_false(alert_state_kind(KIND_FEVER)->timer);
}

static void
names(void **state)
{
	(void)state;
	for (int s = SEVERITY_INFO; s <= SEVERITY_CRITICAL; s++)
		assert_int_equal(alert_state_severity_from_name(
					 alert_state_severity_name((enum alert_severity)s)),
				 s);
	for (int s = ALERT_RAISED; s <= ALERT_RESOLVED; s++)
		assert_int_equal(alert_state_from_name(alert_state_name((enum alert_state)s)), s);
	assert_string_equal(alert_state_severity_name(SEVERITY_CRITICAL), "critical");
	assert_string_equal(alert_state_name(ALERT_ACKED), "acked");
	assert_int_equal(alert_state_severity_from_name("dire"), -EINVAL);
	assert_int_equal(alert_state_from_name("open"), -EINVAL);
	for (int w = 0; w < SEEN_COUNT; w++)
		assert_int_equal(
			alert_state_seen_from_name(alert_state_seen_name((enum alert_seen_what)w)),
			w);
	assert_int_equal(alert_state_seen_from_name("bogus"), -EINVAL);
}

/* Every kind has its section "### `<name>`" in docs/alerts.md, and every
 * such section names a kind of the table. */
static void
documented(void **state)
{
	FILE *f = fopen(docs_path, "r");
	char line[512];
	int seen[KIND_COUNT] = { 0 };

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char name[64];
		int k;

		if (sscanf(line, "### `%63[a-z_]`", name) != 1)
			continue;
		k = alert_state_kind_from_name(name);
		if (k < 0)
			fail_msg("docs/alerts.md has a section for %s, not a kind", name);
		seen[k] = 1;
	}
	fclose(f);
	for (int k = 0; k < KIND_COUNT; k++)
		if (!seen[k])
			fail_msg("docs/alerts.md has no section \"### `%s`\"",
				 alert_state_kind_name((enum alert_kind)k));
}

/* The names `sql` selects (the literal after SELECT, THEN or ELSE) are the
 * table's, and every name of the table is selected. */
static void
seen_names(const char *sql)
{
	static const char *const before[] = { "SELECT '", "THEN '", "ELSE '" };
	int selected[SEEN_COUNT] = { 0 };
	int found = 0;

	for (size_t b = 0; b < sizeof(before) / sizeof(before[0]); b++) {
		for (const char *p = strstr(sql, before[b]); p; p = strstr(p + 1, before[b])) {
			const char *lit = p + strlen(before[b]);
			const char *end = strchr(lit, '\'');
			char name[32];
			int w;

			assert_non_null(end);
			snprintf(name, sizeof(name), "%.*s", (int)(end - lit), lit);
			w = alert_state_seen_from_name(name);
			if (w < 0)
				fail_msg("the seen SQL selects '%s', not in ALERT_SEEN", name);
			selected[w] = 1;
			found++;
		}
	}
	assert_true(found >= SEEN_COUNT);
	for (int w = 0; w < SEEN_COUNT; w++)
		if (!selected[w])
			fail_msg("the seen SQL never selects '%s'",
				 alert_state_seen_name((enum alert_seen_what)w));
}

static void
seen_sql(void **state)
{
	(void)state;
	seen_names(alert_state_seen_sql);
	seen_names(alert_state_seen_sites_sql);
}

static size_t
count_of(const char *text, const char *what)
{
	size_t n = 0;

	for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

/* The statements for a list of sites filter every branch by the list (a
 * shard taken over reads its own sites' rows, never all), and the ones
 * for every site filter none. */
static void
sites_sql(void **state)
{
	size_t branches = count_of(alert_state_seen_sql, "UNION ALL") + 1;

	(void)state;
	assert_int_equal(count_of(alert_state_seen_sites_sql, "UNION ALL") + 1, branches);
	assert_int_equal(count_of(alert_state_seen_sites_sql, " = ANY($1::text[])"), branches);
	assert_int_equal(count_of(alert_state_seen_sql, "::text[]"), 0);
	assert_int_equal(count_of(alert_state_alerts_sites_sql, " = ANY($2::text[])"), 1);
	assert_int_equal(count_of(alert_state_alerts_sql, "::text[]"), 0);
}

static void
parse_alert(void **state)
{
	const char *v[ALERT_STATE_ALERT_COLS] = {
		"0f3c9e0d5b1a47c2a8e1f6d4c3b2a190",
		"s1",
		"fever",
		"critical",
		"acked",
		"person:P-1",
		"s1/G03/G03-000123",
		"G03",
		"3-2-401",
		"C-0412",
		"",
		"",
		"386",
		"1581849120000000",
		"1581849180000000",
		"3",
		"",
		"op1",
		"0",
		"",
		"1",
	};
	struct alert a;
	bool more = false;

	(void)state;
	assert_int_equal(alert_state_parse_alert(v, ALERT_STATE_ALERT_COLS, &a, &more), 0);
	assert_string_equal(a.alert_id, v[0]);
	assert_int_equal(a.kind, KIND_FEVER);
	assert_int_equal(a.severity, SEVERITY_CRITICAL);
	assert_int_equal(a.state, ALERT_ACKED);
	assert_string_equal(a.subject, "person:P-1");
	assert_string_equal(a.card, "C-0412");
	assert_int_equal(a.temp_dc, 386);
	assert_int_equal(a.raised_us, 1581849120000000LL);
	assert_int_equal(a.updated_us, 1581849180000000LL);
	assert_int_equal(a.count, 3);
	assert_string_equal(a.by, "op1");
	assert_true(more);

	/* a kind, severity or state this build does not know; a wrong shape */
	v[2] = "plague";
	assert_int_equal(alert_state_parse_alert(v, ALERT_STATE_ALERT_COLS, &a, &more), -EINVAL);
	v[2] = "fever";
	v[3] = "dire";
	assert_int_equal(alert_state_parse_alert(v, ALERT_STATE_ALERT_COLS, &a, &more), -EINVAL);
	v[3] = "warning";
	v[4] = "resolved";
	assert_int_equal(alert_state_parse_alert(v, ALERT_STATE_ALERT_COLS, &a, &more), -EINVAL);
	v[4] = "raised";
	assert_int_equal(alert_state_parse_alert(v, ALERT_STATE_ALERT_COLS - 1, &a, &more),
			 -EINVAL);
	assert_int_equal(alert_state_parse_alert(v, ALERT_STATE_ALERT_COLS, &a, &more), 0);
	assert_int_equal(a.state, ALERT_RAISED);
}

static void
parse_seen(void **state)
{
	const char *v[ALERT_STATE_SEEN_COLS] = { "seal_breach", "s1", "G09", "",
						 "1581849120000000" };
	struct alert_seen x;

	(void)state;
	assert_int_equal(alert_state_parse_seen(v, ALERT_STATE_SEEN_COLS, &x), 0);
	assert_int_equal(x.what, SEEN_SEAL_BREACH);
	assert_string_equal(x.id, "G09");
	assert_int_equal(x.at_us, 1581849120000000LL);
	v[0] = "bogus";
	assert_int_equal(alert_state_parse_seen(v, ALERT_STATE_SEEN_COLS, &x), -EINVAL);
	v[0] = "gate";
	assert_int_equal(alert_state_parse_seen(v, 4, &x), -EINVAL);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kinds),      cmocka_unit_test(names),
		cmocka_unit_test(documented), cmocka_unit_test(seen_sql),
		cmocka_unit_test(sites_sql),  cmocka_unit_test(parse_alert),
		cmocka_unit_test(parse_seen),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: %s docs/alerts.md\n", argv[0]);
		return 2;
	}
	docs_path = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
