/* ctl_people.c - cordonctl's commands of the people work (issue 16):
 * volunteer add|list, the household page, purge resident.
 *
 * Phones are shown masked (180****1999) and free-text notes with their
 * digit runs masked; ID numbers are never shown, not even hashed (a
 * person given by the hash of an ID number is shown as the resident it
 * belongs to). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "normalize.h"
#include "views.h"

/* PostgreSQL type oids (server/catalog/pg_type_d.h, stable). */
#define BOOLOID 16
#define TEXTOID 25
#define TEXTARRAYOID 1009

/* Bytes of a note shown in the text page (--json has it whole). */
#define TEXT_SHOWN 60

/* The value of (r, c) as shown: NULL as "-", booleans as yes/no, masked
 * columns masked, on one line and cut, into buf (len bytes). */
static const char *
shown_value(PGresult *res, int r, int c, char *buf, size_t len)
{
	const char *v = PQgetvalue(res, r, c);

	if (PQgetisnull(res, r, c))
		return "-";
	if (PQftype(res, c) == BOOLOID)
		return v[0] == 't' ? "yes" : "no";
	if (strcmp(PQfname(res, c), "name") == 0)
		return views_masked_name(v, buf, len);
	if (views_is_masked_column(PQfname(res, c))) {
		/* Masked whole, then cut: a number cut first would keep more of
		 * its digits. At most TEXT_SHOWN bytes on one line. */
		char *m = strdup(v);

		if (!m)
			return "?";
		views_mask_text(m);
		for (char *p = m; *p; p++)
			if ((unsigned char)*p < 0x20)
				*p = ' ';
		if (strlen(m) > TEXT_SHOWN && len > TEXT_SHOWN)
			snprintf(buf, len, "%.*s...", TEXT_SHOWN - 3, m);
		else
			snprintf(buf, len, "%s", m);
		free(m);
		normalize_utf8_trim(buf);
		return buf;
	}
	return v;
}

/* Columns a UTF-8 string takes on a terminal: 2 for the wide characters
 * of East Asian scripts (CJK, Hangul, fullwidth forms), 1 for others. */
static int
display_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int w = 0;

	while (*p) {
		unsigned cp = *p;
		int n = 0;

		if (cp >= 0xf0)
			n = 3, cp &= 0x07;
		else if (cp >= 0xe0)
			n = 2, cp &= 0x0f;
		else if (cp >= 0xc0)
			n = 1, cp &= 0x1f;
		p++;
		for (; n > 0 && (*p & 0xc0) == 0x80; n--, p++)
			cp = (cp << 6) | (*p & 0x3f);
		w += (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0xa4cf) ||
				(cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
				(cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
				(cp >= 0xffe0 && cp <= 0xffe6) || cp >= 0x20000 ?
			2 :
			1;
	}
	return w;
}

/* Prints the first ncols columns of res as a table, each line after
 * `indent`, with the values as shown_value() gives them. */
static void
print_rows(PGresult *res, int ncols, const char *indent)
{
	int nrows = PQntuples(res), width[16] = { 0 };
	char buf[256];

	if (ncols > 16)
		ncols = 16;
	for (int c = 0; c < ncols; c++) {
		width[c] = display_width(PQfname(res, c));
		for (int r = 0; r < nrows; r++) {
			int n = display_width(shown_value(res, r, c, buf, sizeof(buf)));

			if (n > width[c])
				width[c] = n;
		}
	}
	for (int r = -1; r < nrows; r++) {
		fputs(indent, stdout);
		for (int c = 0; c < ncols; c++) {
			const char *v = r < 0 ? PQfname(res, c) :
						shown_value(res, r, c, buf, sizeof(buf));

			if (c == ncols - 1)
				printf("%s\n", v);
			else
				printf("%s%*s  ", v, width[c] - display_width(v), "");
		}
	}
}

/* ---------------------------------------------------------------- volunteer */

#define VOLUNTEER_ADD "volunteer add S V [--team T] [--phone P]"
#define VOLUNTEER_LIST "volunteer list [S]"

static int
is_phone(const char *s)
{
	size_t n = strlen(s);

	if (n != 11)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* Prints "volunteer S/V <verb>: team T, phone 180****1999" from a row of
 * (team, phone). */
static void
print_volunteer(const char *verb, const char *site, const char *v, PGresult *res)
{
	char phone[32] = "-";

	if (!PQgetisnull(res, 0, 1)) {
		snprintf(phone, sizeof(phone), "%s", PQgetvalue(res, 0, 1));
		normalize_mask_digits(phone, strlen(phone));
	}
	printf("volunteer %s/%s %s: team %s, phone %s\n", site, v, verb,
	       PQgetisnull(res, 0, 0) ? "-" : PQgetvalue(res, 0, 0), phone);
}

static int
volunteer_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *team = NULL, *phone = NULL;
	const struct ctl_opt opts[] = {
		{ "--team", &team, NULL },
		{ "--phone", &phone, NULL },
		{ NULL, NULL, NULL },
	};
	PGresult *res;

	if (ctl_parse(VOLUNTEER_ADD, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(VOLUNTEER_ADD, "site", pos[0]) < 0 ||
	    ctl_check_id(VOLUNTEER_ADD, "volunteer", pos[1]) < 0 ||
	    (team && ctl_check_id(VOLUNTEER_ADD, "team", team) < 0))
		return CTL_USAGE;
	if (phone && !is_phone(phone)) /* the value is never shown */
		return tool_usage(VOLUNTEER_ADD, "--phone is not 11 digits");
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_site_exists(ctl, pos[0]) <= 0)
		return CTL_FAIL;
	res = QUERY(ctl, "adding the volunteer",
		    "INSERT INTO volunteers (site, volunteer, team, phone) VALUES ($1, $2, $3, $4)"
		    " ON CONFLICT (site, volunteer) DO NOTHING RETURNING team, phone",
		    pos[0], pos[1], team, phone);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 1) {
		print_volunteer("added", pos[0], pos[1], res);
		PQclear(res);
		return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
	}
	PQclear(res);
	if (!team && !phone) {
		tool_err("volunteer %s already exists at site %s (--team and --phone change it)",
			 pos[1], pos[0]);
		return CTL_FAIL;
	}
	res = QUERY(ctl, "updating the volunteer",
		    "UPDATE volunteers SET team = coalesce($3, team), phone = coalesce($4, phone),"
		    " active = true WHERE site = $1 AND volunteer = $2 RETURNING team, phone",
		    pos[0], pos[1], team, phone);
	if (!res)
		return CTL_FAIL;
	print_volunteer("updated", pos[0], pos[1], res);
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

static int
volunteer_list(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1] = { NULL };
	PGresult *res;
	int n = ctl_parse(VOLUNTEER_LIST, argc, argv, NULL, pos, 0, 1);

	if (n < 0 || (n == 1 && ctl_check_id(VOLUNTEER_LIST, "site", pos[0]) < 0))
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (pos[0] && ctl_site_exists(ctl, pos[0]) <= 0)
		return CTL_FAIL;
	res = QUERY(
		ctl, "listing volunteers",
		"SELECT site, volunteer, team, phone, active FROM volunteers"
		" WHERE $1::text IS NULL OR site = $1 ORDER BY site, team NULLS LAST, volunteer",
		pos[0]);
	if (!res)
		return CTL_FAIL;
	print_rows(res, PQnfields(res), "");
	PQclear(res);
	return CTL_OK;
}

int
ctl_cmd_volunteer(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc >= 1 ? argv[0] : "";

	if (strcmp(sub, "add") == 0)
		return volunteer_add(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return volunteer_list(ctl, argc - 1, argv + 1);
	return tool_usage(VOLUNTEER_ADD "\n       " VOLUNTEER_LIST,
			  "volunteer: expected add or list");
}

/* ---------------------------------------------------------------- household */

#define HOUSEHOLD "household S H [--json] [--last N]"

/* The page's sections and their statements are views.c's (shared with
 * cordon-web); this prints them as text. */
static void
print_section(const struct views_section *s, PGresult *res)
{
	long total, open;
	int n = PQntuples(res);

	views_section_counts(s, res, &total, &open);
	if (total == 0) {
		printf("%s: none\n", s->title);
		return;
	}
	printf("%s: %ld", s->title, total);
	if (s->open_word)
		printf(" (%ld %s)", open, s->open_word);
	if (n < total)
		printf(", the last %d shown", n);
	printf("\n");
	print_rows(res, s->ncols, "  ");
}

/* The page as text, in the household's time zone. CTL_OK or CTL_FAIL
 * after printing why. */
static int
print_household(struct ctl *ctl, const char *site, const char *household, int last)
{
	char errbuf[512], phone[32] = "-", tz[128];
	PGresult *res;
	int rc;

	rc = views_household_head(ctl->conn, site, household, ctl->default_tz, &res, errbuf,
				  sizeof(errbuf));
	if (rc < 0) {
		tool_err("%s", errbuf);
		return CTL_FAIL;
	}
	snprintf(tz, sizeof(tz), "%s", PQgetvalue(res, 0, 5));
	if (!PQgetisnull(res, 0, 4)) {
		snprintf(phone, sizeof(phone), "%s", PQgetvalue(res, 0, 4));
		normalize_mask_digits(phone, strlen(phone));
	}
	printf("household %s/%s: building %s, unit %s, room %s, size %s, phone %s"
	       " (times in %s)\n",
	       site, household, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
	       PQgetvalue(res, 0, 3), phone, tz);
	PQclear(res);
	for (size_t i = 0; i < VIEWS_HOUSEHOLD_NSECTIONS; i++) {
		const struct views_section *s = &views_household_sections[i];

		rc = views_household_section(ctl->conn, s, site, household, tz,
					     "YYYY-MM-DD HH24:MI", last, &res, errbuf,
					     sizeof(errbuf));
		if (rc < 0) {
			tool_err("%s", errbuf);
			return CTL_FAIL;
		}
		print_section(s, res);
		PQclear(res);
	}
	return CTL_OK;
}

int
ctl_cmd_household(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *last_s = NULL;
	int as_json = 0, rc;
	const struct ctl_opt opts[] = {
		{ "--json", NULL, &as_json },
		{ "--last", &last_s, NULL },
		{ NULL, NULL, NULL },
	};
	long last = 10;
	char errbuf[512];
	json_t *page;

	if (ctl_parse(HOUSEHOLD, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(HOUSEHOLD, "site", pos[0]) < 0 ||
	    ctl_check_id(HOUSEHOLD, "household", pos[1]) < 0)
		return CTL_USAGE;
	if (last_s) {
		char *end;

		errno = 0;
		last = strtol(last_s, &end, 10);
		if (end == last_s || *end || errno || last < 1 || last > 1000)
			return tool_usage(HOUSEHOLD, "--last '%.40s': expected 1 to 1000", last_s);
	}
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (!as_json)
		return print_household(ctl, pos[0], pos[1], (int)last);
	rc = views_household_json(ctl->conn, pos[0], pos[1], ctl->default_tz, (int)last, &page,
				  errbuf, sizeof(errbuf));
	if (rc == -ENOMEM) {
		tool_err("out of memory");
		return CTL_FAIL;
	}
	if (rc < 0) {
		tool_err("%s", errbuf);
		return CTL_FAIL;
	}
	return ctl_print_json(page);
}

/* ---------------------------------------------------------------- purge */

#define PURGE "purge resident S P"

/* What purge deletes, in this order, each with $1 the site, $2 the
 * person's keys (its id and the hash of its ID number, text[]) and $3
 * the subjects alerts give it ('person:' || key). */
static const struct purge_step {
	const char *what;
	const char *sql;
} purge_steps[] = {
	{ "alert_transitions",
	  "DELETE FROM alert_transitions WHERE alert_id IN"
	  " (SELECT alert_id FROM alerts WHERE site = $1 AND subject = ANY ($3::text[]))" },
	{ "acks",
	  "DELETE FROM acks WHERE site = $1 AND alert_id IN"
	  " (SELECT alert_id FROM alerts WHERE site = $1 AND subject = ANY ($3::text[]))" },
	{ "alerts", "DELETE FROM alerts WHERE site = $1 AND subject = ANY ($3::text[])" },
	/* The sample of subjects an aggregate alert keeps (space-separated). */
	{ "alerts.sample",
	  "UPDATE alerts SET sample = (SELECT string_agg(w, ' ' ORDER BY i)"
	  "  FROM unnest(string_to_array(sample, ' ')) WITH ORDINALITY u (w, i)"
	  "  WHERE w <> ALL ($3::text[]))"
	  " WHERE site = $1 AND string_to_array(sample, ' ') && $3::text[]" },
	{ "event_keys_reused",
	  "DELETE FROM event_keys_reused WHERE (event_table = 'gate_events' AND derived_key IN"
	  "  (SELECT event_key FROM gate_events WHERE site = $1 AND person = ANY ($2::text[])))"
	  " OR (event_table = 'isolation_checks' AND derived_key IN (SELECT event_key"
	  "  FROM isolation_checks WHERE site = $1 AND person = ANY ($2::text[])))"
	  " OR $3::text[] IS NULL" },
	{ "gate_events", "DELETE FROM gate_events WHERE site = $1 AND person = ANY ($2::text[])" },
	{ "isolation_checks",
	  "DELETE FROM isolation_checks WHERE site = $1 AND person = ANY ($2::text[])" },
	{ "isolation_orders",
	  "DELETE FROM isolation_orders WHERE site = $1 AND person = ANY ($2::text[])" },
	/* Raw payloads of the site's topics that name the person ("P" as a
	 * JSON string); the hash is never in a payload. */
	{ "rejects",
	  "DELETE FROM rejects WHERE position('/' || $1 || '/' IN topic) > 0"
	  " AND position(convert_to('\"' || ($2::text[])[1] || '\"', 'UTF8')"
	  "  IN payload) > 0" },
	{ "residents", "DELETE FROM residents WHERE site = $1 AND person = ($2::text[])[1]" },
};

/* $1 text, $2 and $3 text[] (some statements use only some of them). */
static const Oid purge_types[3] = { TEXTOID, TEXTARRAYOID, TEXTARRAYOID };

static PGresult *
purge_query(struct ctl *ctl, const char *sql, const char *const params[3])
{
	return ctl_query_typed(ctl, "purging", sql, 3, purge_types, params);
}

/* Appends "  <what> <count>" to the report. */
static void
purge_line(char *report, size_t len, const char *what, const char *count)
{
	size_t n = strlen(report);

	if (n < len)
		snprintf(report + n, len - n, "  %-20s %s\n", what, count);
}

/* Deletes the person's rows from every other table with a `person`
 * column (one a later migration adds), printing each count. Adds the rows
 * to *total. 0 or -1. */
static int
purge_other_tables(struct ctl *ctl, const char *const params[3], long *total, char *report,
		   size_t len)
{
	static const char *const done[] = { "gate_events", "isolation_checks", "isolation_orders",
					    "residents" };
	PGresult *tabs =
		ctl_query(ctl, "finding tables with a person column",
			  "SELECT c.table_name, bool_or(s.column_name IS NOT NULL)"
			  " FROM information_schema.columns c"
			  " JOIN information_schema.tables t USING (table_schema, table_name)"
			  " LEFT JOIN information_schema.columns s ON s.table_schema ="
			  "  c.table_schema AND s.table_name = c.table_name"
			  "  AND s.column_name = 'site'"
			  " WHERE c.table_schema = current_schema() AND c.column_name = 'person'"
			  " AND t.table_type = 'BASE TABLE'"
			  " GROUP BY c.table_name ORDER BY c.table_name",
			  0, NULL);
	int rc = 0;

	if (!tabs)
		return -1;
	for (int i = 0; rc == 0 && i < PQntuples(tabs); i++) {
		const char *name = PQgetvalue(tabs, i, 0);
		int known = 0, has_site = PQgetvalue(tabs, i, 1)[0] == 't';
		char *ident, sql[512];
		PGresult *res;

		for (size_t j = 0; j < sizeof(done) / sizeof(done[0]); j++)
			known |= strcmp(name, done[j]) == 0;
		if (known)
			continue;
		ident = PQescapeIdentifier(ctl->conn, name, strlen(name));
		if (!ident) {
			tool_err("out of memory");
			rc = -1;
			break;
		}
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE person = ANY ($2::text[]) AND %s",
			 ident, has_site ? "site = $1" : "true");
		PQfreemem(ident);
		res = purge_query(ctl, sql, params);
		if (!res) {
			rc = -1;
			break;
		}
		purge_line(report, len, name, PQcmdTuples(res));
		*total += atol(PQcmdTuples(res));
		PQclear(res);
	}
	PQclear(tabs);
	return rc;
}

int
ctl_cmd_purge(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *params[3];
	char keys[256], subjects[256], hh[80] = "", report[4096] = "";
	long total = 0;
	PGresult *res;

	if (argc < 1 || strcmp(argv[0], "resident") != 0)
		return tool_usage(PURGE, "purge what? (only 'resident' is known)");
	if (ctl_parse(PURGE, argc - 1, argv + 1, NULL, pos, 2, 2) < 0 ||
	    ctl_check_id(PURGE, "site", pos[0]) < 0 || ctl_check_id(PURGE, "person", pos[1]) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_site_exists(ctl, pos[0]) <= 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up the resident",
		    "SELECT household, id_hash FROM residents WHERE site = $1 AND person = $2"
		    " FOR UPDATE",
		    pos[0], pos[1]);
	if (!res)
		return CTL_FAIL;
	/* Ids are [A-Za-z0-9_-], hashes "id:" and hex: quoted, so that a
	 * person called NULL stays a string, nothing needs escaping in these
	 * array literals. */
	if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 1)) {
		snprintf(keys, sizeof(keys), "{\"%s\",\"%s\"}", pos[1], PQgetvalue(res, 0, 1));
		snprintf(subjects, sizeof(subjects), "{\"person:%s\",\"person:%s\"}", pos[1],
			 PQgetvalue(res, 0, 1));
	} else {
		snprintf(keys, sizeof(keys), "{\"%s\"}", pos[1]);
		snprintf(subjects, sizeof(subjects), "{\"person:%s\"}", pos[1]);
	}
	if (PQntuples(res) == 1)
		snprintf(hh, sizeof(hh), " of household %s", PQgetvalue(res, 0, 0));
	PQclear(res);
	params[0] = pos[0];
	params[1] = keys;
	params[2] = subjects;

	/* cordond holds its open alerts and writes them again when they
	 * change: only resolved ones can go. */
	res = ctl_query_typed(
		ctl, "looking up open alerts",
		"SELECT alert_id, kind FROM alerts WHERE site = $1"
		" AND subject = ANY ($3::text[]) AND state <> 'resolved' ORDER BY raised_at",
		3, purge_types, params);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) > 0) {
		tool_err(
			"person %s at site %s has %d open alert%s (first: %s, %s): resolve %s first "
			"(cordonctl resolve ID); nothing purged",
			pos[1], pos[0], PQntuples(res), PQntuples(res) == 1 ? "" : "s",
			PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
			PQntuples(res) == 1 ? "it" : "them");
		PQclear(res);
		return CTL_FAIL;
	}
	PQclear(res);

	for (size_t i = 0; i < sizeof(purge_steps) / sizeof(purge_steps[0]); i++) {
		res = purge_query(ctl, purge_steps[i].sql, params);
		if (!res)
			return CTL_FAIL;
		purge_line(report, sizeof(report), purge_steps[i].what, PQcmdTuples(res));
		total += atol(PQcmdTuples(res));
		PQclear(res);
	}
	if (purge_other_tables(ctl, params, &total, report, sizeof(report)) < 0)
		return CTL_FAIL;
	if (total == 0) {
		tool_err("nothing of person %s at site %s", pos[1], pos[0]);
		return CTL_FAIL;
	}
	if (ctl_commit(ctl, pos[0]) < 0)
		return CTL_FAIL;
	printf("purged person %s%s at site %s: %ld row%s\n%s", pos[1], hh, pos[0], total,
	       total == 1 ? "" : "s", report);
	return CTL_OK;
}
