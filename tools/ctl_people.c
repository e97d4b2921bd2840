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

/* PostgreSQL type oids (server/catalog/pg_type_d.h, stable). */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define TEXTOID 25
#define TEXTARRAYOID 1009
#define JSONOID 114
#define NUMERICOID 1700

/* Bytes of a note shown in the text page (--json has it whole). */
#define TEXT_SHOWN 60

/* Columns shown masked: phones, and notes (free text that may quote one). */
static int
is_masked_column(const char *name)
{
	return strcmp(name, "phone") == 0 || strcmp(name, "note") == 0;
}

/* Masks what normalize_mask_digits() leaves of a number written with
 * separators (138-1234-5678, 138 1234 5678, 110105.1949...): a run of
 * digit groups joined by single '-', ' ' or '.' holding 7 digits or more
 * keeps its first 3 and last 4 digits, the others become '*' (the
 * separators stay). In place, s NUL-terminated. */
static void
mask_grouped_digits(char *s)
{
	for (size_t i = 0; s[i];) {
		size_t j = i, ndig = 0;

		while (s[j]) {
			if (s[j] >= '0' && s[j] <= '9') {
				ndig++;
				j++;
			} else if (j > i && (s[j] == '-' || s[j] == ' ' || s[j] == '.') &&
				   s[j + 1] >= '0' && s[j + 1] <= '9' && s[j - 1] >= '0' &&
				   s[j - 1] <= '9') {
				j++;
			} else {
				break;
			}
		}
		if (ndig >= 7) {
			size_t d = 0;

			for (size_t k = i; k < j; k++)
				if (s[k] >= '0' && s[k] <= '9' && d++ >= 3 && d <= ndig - 4)
					s[k] = '*';
		}
		i = j > i ? j : i + 1;
	}
}

/* A resident's name as shown: its first character and one '*' for each
 * other one (王五 -> 王*, 欧阳娜娜 -> 欧***), the way Chinese registers
 * mask names (姓名脱敏): enough for the duty desk to tell residents apart,
 * never the whole name. Written into buf (len bytes, cut at a whole
 * character). */
static const char *
masked_name(const char *v, char *buf, size_t len)
{
	size_t n = 0, chars = 0;

	for (const unsigned char *p = (const unsigned char *)v; *p && n + 5 < len; p++) {
		if ((*p & 0xc0) == 0x80) { /* a continuation byte */
			if (chars == 1)
				buf[n++] = (char)*p;
			continue;
		}
		chars++;
		buf[n++] = chars == 1 ? (char)*p : '*';
	}
	buf[n] = '\0';
	return buf;
}

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
		return masked_name(v, buf, len);
	if (is_masked_column(PQfname(res, c))) {
		/* Masked whole, then cut: a number cut first would keep more of
		 * its digits. At most TEXT_SHOWN bytes on one line. */
		char *m = strdup(v);

		if (!m)
			return "?";
		normalize_mask_digits(m, strlen(m));
		mask_grouped_digits(m);
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

/* The value of (r, c) as JSON: null, true/false, integers, numbers,
 * parsed JSON, masked text, or text. A new reference (NULL when out of
 * memory). */
static json_t *
json_value(PGresult *res, int r, int c)
{
	const char *v = PQgetvalue(res, r, c);

	if (PQgetisnull(res, r, c))
		return json_null();
	switch (PQftype(res, c)) {
	case BOOLOID: return json_boolean(v[0] == 't');
	case INT2OID:
	case INT4OID:
	case INT8OID: return json_integer(strtoll(v, NULL, 10));
	case NUMERICOID: return json_real(strtod(v, NULL));
	case JSONOID: return json_loads(v, JSON_DECODE_ANY, NULL);
	default:
		if (strcmp(PQfname(res, c), "name") == 0) {
			char buf[4 * NORM_TEXT_MAX];

			return json_string(masked_name(v, buf, sizeof(buf)));
		}
		if (is_masked_column(PQfname(res, c))) {
			/* Whole (the text table cuts at 255 bytes). */
			char *m = strdup(v);
			json_t *j;

			if (!m)
				return NULL;
			normalize_mask_digits(m, strlen(m));
			mask_grouped_digits(m);
			j = json_string(m);
			free(m);
			return j;
		}
		return json_string(v);
	}
}

/* Row r's first ncols columns as a JSON object; NULL when out of memory. */
static json_t *
json_row(PGresult *res, int r, int ncols)
{
	json_t *o = json_object();

	for (int c = 0; o && c < ncols; c++) {
		json_t *v = json_value(res, r, c);

		if (!v || json_object_set_new(o, PQfname(res, c), v) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
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

/* Every section's query takes $1 site, $2 household, $3 time zone, $4
 * to_char() format of times, $5 how many rows (of the lists of events;
 * residents and cards are listed whole, up to 100). Its columns: ncols
 * shown, then `total` (rows in all) and, for some, `open` (still open). */
#define T(col) "to_char(" col " AT TIME ZONE $3, $4)"
/* The household's person ids and the hashes of their ID numbers, each
 * with the person it stands for. */
#define PERSONS                                                     \
	"pmap AS (SELECT person AS k, person AS who FROM residents" \
	"  WHERE site = $1 AND household = $2"                      \
	" UNION ALL SELECT id_hash, person FROM residents"          \
	"  WHERE site = $1 AND household = $2 AND id_hash IS NOT NULL)"
/* A person column as shown: the resident, never the hash of an ID number.
 * (pmap's column is `who`, not `person`: inside the subquery an unqualified
 * `person` would name pmap's own column, not the outer row's.) */
#define PERSON(col)                                               \
	"coalesce((SELECT min(who) FROM pmap WHERE k = " col ")," \
	" CASE WHEN " col " LIKE 'id:%' THEN '(ID number)' ELSE " col " END)"

static const struct section {
	const char *key;   /* JSON member */
	const char *title; /* text heading */
	int ncols;
	const char *open_word; /* what `open` counts, NULL: no such column */
	const char *sql;
} sections[] = {
	{ "residents", "residents", 4, NULL,
	  "SELECT person, name, to_char(born, 'YYYY-MM-DD') AS born, phone,"
	  " count(*) OVER () AS total"
	  " FROM residents WHERE site = $1 AND household = $2 ORDER BY person LIMIT 100" },
	{ "cards", "cards", 4, NULL,
	  "SELECT card, state, extra, reason, count(*) OVER () AS total"
	  " FROM cards WHERE site = $1 AND household = $2 ORDER BY state, card LIMIT 100" },
	{ "isolation_orders", "isolation orders", 6, "active",
	  "WITH " PERSONS ", o AS (SELECT *, released_at IS NULL AND ends_at > now() AS live"
	  "  FROM isolation_orders WHERE site = $1 AND household = $2)"
	  " SELECT id, " PERSON("person") " AS person, " T(
		  "starts_at") " AS starts,"
			       " " T("ends_at") " AS ends, " T(
				       "released_at") " AS released,"
						      " CASE WHEN live THEN 'active' WHEN released_at IS NOT NULL THEN 'released'"
						      "  ELSE 'ended' END AS status,"
						      " count(*) OVER () AS total, count(*) FILTER (WHERE live) OVER () AS open"
						      " FROM o ORDER BY live DESC, starts_at DESC, id DESC LIMIT $5" },
	{ "isolation_checks", "health checks", 4, NULL,
	  "WITH " PERSONS " SELECT " T("ts") " AS ts, " PERSON(
		  "person") " AS person, temp_c,"
			    " to_json(symptoms) AS symptoms, count(*) OVER () AS total"
			    " FROM isolation_checks WHERE site = $1 AND household = $2"
			    " ORDER BY isolation_checks.ts DESC, event_key LIMIT $5" },
	{ "welfare_calls", "welfare calls", 4, NULL,
	  "SELECT " T("ts") " AS ts, outcome, by_whom AS by, note, count(*) OVER () AS total"
			    " FROM welfare_calls WHERE site = $1 AND household = $2"
			    " ORDER BY welfare_calls.ts DESC, event_key LIMIT $5" },
	{ "needs", "needs", 7, "open",
	  "SELECT need_id, category, status, " T("opened_at") " AS opened, " T(
		  "due") " AS due,"
			 " assigned_to, " T(
				 "delivered_at") " AS delivered, count(*) OVER () AS total,"
						 " count(*) FILTER (WHERE status IN ('open', 'assigned')) OVER () AS open"
						 " FROM needs WHERE site = $1 AND household = $2"
						 " ORDER BY status IN ('open', 'assigned') DESC, coalesce(opened_at, updated_at) DESC,"
						 " need_id LIMIT $5" },
	{ "dropoffs", "drop-offs", 4, NULL,
	  "SELECT " T("ts") " AS ts, action, item, by_whom AS by, count(*) OVER () AS total"
			    " FROM dropoffs WHERE site = $1 AND household = $2"
			    " ORDER BY dropoffs.ts DESC, event_key LIMIT $5" },
	{ "passes", "passes", 6, NULL,
	  "SELECT " T("e.ts") " AS ts, e.gate, e.card, e.direction, e.temp_c, e.mask,"
			      " count(*) OVER () AS total FROM gate_events e"
			      " WHERE e.site = $1 AND e.card IN (SELECT card FROM cards"
			      "  WHERE site = $1 AND household = $2)"
			      " ORDER BY e.ts DESC, e.event_key LIMIT $5" },
	{ "alerts", "alerts", 7, "open",
	  "WITH " PERSONS ", subj AS ("
	  "  SELECT 'person:' || k AS s, 'person:' || who AS shown FROM pmap"
	  "  UNION ALL SELECT 'card:' || card, 'card:' || card FROM cards"
	  "   WHERE site = $1 AND household = $2"
	  "  UNION ALL SELECT 'household:' || $2, 'household:' || $2)"
	  " SELECT " T(
		  "a.raised_at") " AS raised, a.kind, a.severity, a.state,"
				 " coalesce((SELECT min(shown) FROM subj WHERE s = a.subject),"
				 "  regexp_replace(a.subject, 'id:[0-9a-f]{32}', '(ID number)', 'g')) AS subject,"
				 " a.count, a.alert_id, count(*) OVER () AS total,"
				 " count(*) FILTER (WHERE a.state <> 'resolved') OVER () AS open"
				 " FROM alerts a WHERE a.site = $1 AND (a.household = $2"
				 "  OR a.subject IN (SELECT s FROM subj)"
				 "  OR a.card IN (SELECT card FROM cards WHERE site = $1 AND household = $2))"
				 " ORDER BY a.state <> 'resolved' DESC, a.raised_at DESC, a.alert_id LIMIT $5" },
};

/* Runs a section's query. NULL after printing why. */
static PGresult *
section_query(struct ctl *ctl, const struct section *s, const char *const params[5])
{
	static const Oid types[5] = { TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID };
	char what[64];

	snprintf(what, sizeof(what), "reading the %s", s->title);
	return ctl_query_typed(ctl, what, s->sql, 5, types, params);
}

/* total and open of a section's result (0 when it has no rows). */
static void
section_counts(const struct section *s, PGresult *res, long *ret_total, long *ret_open)
{
	int n = PQntuples(res);

	*ret_total = n ? atol(PQgetvalue(res, 0, s->ncols)) : 0;
	*ret_open = n && s->open_word ? atol(PQgetvalue(res, 0, s->ncols + 1)) : 0;
}

static void
print_section(const struct section *s, PGresult *res)
{
	long total, open;
	int n = PQntuples(res);

	section_counts(s, res, &total, &open);
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

/* The section as {"total": N, ["open"|"active": K,] "items": [...]};
 * NULL when out of memory. */
static json_t *
json_section(const struct section *s, PGresult *res)
{
	json_t *o = json_object(), *items = json_array();
	long total, open;

	if (!o || !items)
		goto oom;
	section_counts(s, res, &total, &open);
	if (json_object_set_new(o, "total", json_integer(total)) < 0 ||
	    (s->open_word && json_object_set_new(o, s->open_word, json_integer(open)) < 0))
		goto oom;
	for (int r = 0; r < PQntuples(res); r++)
		if (json_array_append_new(items, json_row(res, r, s->ncols)) < 0)
			goto oom;
	if (json_object_set_new(o, "items", items) < 0) {
		items = NULL;
		goto oom;
	}
	return o;
oom:
	json_decref(items);
	json_decref(o);
	return NULL;
}

int
ctl_cmd_household(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *last_s = NULL;
	int as_json = 0, ret = CTL_FAIL;
	const struct ctl_opt opts[] = {
		{ "--json", NULL, &as_json },
		{ "--last", &last_s, NULL },
		{ NULL, NULL, NULL },
	};
	const char *params[5];
	char last[16] = "10", tz[128];
	json_t *page = NULL;
	PGresult *res;

	if (ctl_parse(HOUSEHOLD, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(HOUSEHOLD, "site", pos[0]) < 0 ||
	    ctl_check_id(HOUSEHOLD, "household", pos[1]) < 0)
		return CTL_USAGE;
	if (last_s) {
		char *end;
		long n;

		errno = 0;
		n = strtol(last_s, &end, 10);
		if (end == last_s || *end || errno || n < 1 || n > 1000)
			return tool_usage(HOUSEHOLD, "--last '%.40s': expected 1 to 1000", last_s);
		snprintf(last, sizeof(last), "%ld", n);
	}
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "reading the household",
		    "SELECT h.building, h.unit, h.room, h.size, h.phone,"
		    " coalesce(s.timezone, $3) AS timezone"
		    " FROM households h JOIN sites s USING (site)"
		    " WHERE h.site = $1 AND h.household = $2",
		    pos[0], pos[1], ctl->default_tz);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err("unknown household %s at site %s", pos[1], pos[0]);
		return CTL_FAIL;
	}
	snprintf(tz, sizeof(tz), "%s", PQgetvalue(res, 0, 5));
	if (as_json) {
		page = json_pack("{s:s, s:s}", "site", pos[0], "household", pos[1]);
		for (int c = 0; page && c < PQnfields(res); c++) {
			json_t *v = json_value(res, 0, c);

			if (!v || json_object_set_new(page, PQfname(res, c), v) < 0) {
				json_decref(page);
				page = NULL;
			}
		}
		if (!page) {
			PQclear(res);
			tool_err("out of memory");
			return CTL_FAIL;
		}
		/* Times in UTC, RFC 3339. */
		params[2] = "UTC";
		params[3] = "YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"";
	} else {
		char phone[32] = "-";

		if (!PQgetisnull(res, 0, 4)) {
			snprintf(phone, sizeof(phone), "%s", PQgetvalue(res, 0, 4));
			normalize_mask_digits(phone, strlen(phone));
		}
		printf("household %s/%s: building %s, unit %s, room %s, size %s, phone %s"
		       " (times in %s)\n",
		       pos[0], pos[1], PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1),
		       PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), phone, tz);
		params[2] = tz;
		params[3] = "YYYY-MM-DD HH24:MI";
	}
	PQclear(res);
	params[0] = pos[0];
	params[1] = pos[1];
	params[4] = last;
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const struct section *s = &sections[i];

		res = section_query(ctl, s, params);
		if (!res)
			goto out;
		if (!page) {
			print_section(s, res);
		} else if (json_object_set_new(page, s->key, json_section(s, res)) < 0) {
			PQclear(res);
			tool_err("out of memory");
			goto out;
		}
		PQclear(res);
	}
	if (page) {
		ret = ctl_print_json(page);
		page = NULL;
		goto out;
	}
	ret = CTL_OK;
out:
	json_decref(page);
	return ret;
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
