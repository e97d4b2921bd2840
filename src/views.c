/* views.c - the read side as JSON (views.h): the household page, the
 * daily report with its charts and CSV, the gates, zones, isolation and
 * needs boards. cordonctl (household, report daily) and cordon-web run
 * the same statements.
 *
 * Every statement is parameterized (PQexecParams, types given): nothing a
 * caller passes is ever part of SQL text. A site list is one text[]
 * parameter. */
#include "views.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"

/* PostgreSQL type oids (server/catalog/pg_type_d.h, stable). */
#define BOOLOID 16
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define TEXTOID 25
#define JSONOID 114
#define TEXTARRAYOID 1009
#define NUMERICOID 1700

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- errors, queries */

/* Says in errbuf what failed and PostgreSQL's message; clears res.
 * -EINVAL for a data exception (class 22: a date or a time zone that is
 * no such thing), else -EIO. */
static int
pg_fail(PGconn *conn, PGresult *res, const char *what, char *errbuf, size_t errlen)
{
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *full = msg ? msg : PQerrorMessage(conn);
	size_t n = strlen(full);
	int rc = state && strncmp(state, "22", 2) == 0 ? -EINVAL : -EIO;

	while (n > 0 && (full[n - 1] == '\n' || full[n - 1] == ' '))
		n--;
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s: %.*s", what, (int)n, n ? full : "unknown error");
	PQclear(res);
	return rc;
}

static void
say(char *errbuf, size_t errlen, const char *msg)
{
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "%s", msg);
}

/* Runs one statement; *ret on success (PQclear it). */
static int
run(PGconn *conn, const char *what, const char *sql, int n, const Oid *types,
    const char *const *params, PGresult **ret, char *errbuf, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, types, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		return pg_fail(conn, res, what, errbuf, errlen);
	*ret = res;
	return 0;
}

/* `sites` as a text[] literal ({"s1","s2"}, quotes and backslashes
 * escaped) in *ret (malloc'ed), or NULL for NULL (every site). */
static int
sites_param(const char *const *sites, char **ret, char *errbuf, size_t errlen)
{
	size_t len = 3, n = 0;
	char *lit, *p;

	if (!sites) {
		*ret = NULL;
		return 0;
	}
	for (; sites[n]; n++) {
		if (n >= VIEWS_SITES_MAX || strlen(sites[n]) > VIEWS_SITE_MAX) {
			say(errbuf, errlen, "too many sites, or one too long");
			return -EINVAL;
		}
		len += 2 * strlen(sites[n]) + 3;
	}
	lit = malloc(len);
	if (!lit)
		return -ENOMEM;
	p = lit;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			*p++ = ',';
		*p++ = '"';
		for (const char *c = sites[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				*p++ = '\\';
			*p++ = *c;
		}
		*p++ = '"';
	}
	*p++ = '}';
	*p = '\0';
	*ret = lit;
	return 0;
}

/* ---------------------------------------------------------------- masking */

bool
views_is_date(const char *s)
{
	static const char pat[] = "dddd-dd-dd";

	if (!s || strlen(s) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; pat[i]; i++)
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return false;
	return true;
}

bool
views_is_masked_column(const char *name)
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

void
views_mask_text(char *s)
{
	normalize_mask_digits(s, strlen(s));
	mask_grouped_digits(s);
}

/* 王五 -> 王*, 欧阳娜娜 -> 欧***: the way Chinese registers mask names
 * (姓名脱敏), enough for the duty desk to tell residents apart. */
const char *
views_masked_name(const char *v, char *buf, size_t len)
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

/* ---------------------------------------------------------------- JSON of rows */

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

			return json_string(views_masked_name(v, buf, sizeof(buf)));
		}
		if (views_is_masked_column(PQfname(res, c))) {
			/* Whole (the text table cuts at 255 bytes). */
			char *m = strdup(v);
			json_t *j;

			if (!m)
				return NULL;
			views_mask_text(m);
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

/* Every row of res as an object, in an array; NULL when out of memory. */
static json_t *
json_rows(PGresult *res)
{
	json_t *a = json_array();

	for (int r = 0; a && r < PQntuples(res); r++)
		if (json_array_append_new(a, json_row(res, r, PQnfields(res))) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* ---------------------------------------------------------------- household */

/* Every section's query takes $1 site, $2 household, $3 time zone, $4
 * to_char() format of times, $5 how many rows (of the lists of events;
 * residents and cards are listed whole, up to 100). */
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

/* The SQL as SQL: clang-format would break its strings at each macro call. */
/* clang-format off */
const struct views_section views_household_sections[VIEWS_HOUSEHOLD_NSECTIONS] = {
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
	  " SELECT id, " PERSON("person") " AS person, " T("starts_at") " AS starts,"
	  " " T("ends_at") " AS ends, " T("released_at") " AS released,"
	  " CASE WHEN live THEN 'active' WHEN released_at IS NOT NULL THEN 'released'"
	  "  ELSE 'ended' END AS status,"
	  " count(*) OVER () AS total, count(*) FILTER (WHERE live) OVER () AS open"
	  " FROM o ORDER BY live DESC, starts_at DESC, id DESC LIMIT $5" },
	{ "isolation_checks", "health checks", 4, NULL,
	  "WITH " PERSONS " SELECT " T("ts") " AS ts, " PERSON("person") " AS person, temp_c,"
	  " to_json(symptoms) AS symptoms, count(*) OVER () AS total"
	  " FROM isolation_checks WHERE site = $1 AND household = $2"
	  " ORDER BY isolation_checks.ts DESC, event_key LIMIT $5" },
	{ "welfare_calls", "welfare calls", 4, NULL,
	  "SELECT " T("ts") " AS ts, outcome, by_whom AS by, note, count(*) OVER () AS total"
	  " FROM welfare_calls WHERE site = $1 AND household = $2"
	  " ORDER BY welfare_calls.ts DESC, event_key LIMIT $5" },
	{ "needs", "needs", 7, "open",
	  "SELECT need_id, category, status, " T("opened_at") " AS opened, " T("due") " AS due,"
	  " assigned_to, " T("delivered_at") " AS delivered, count(*) OVER () AS total,"
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
	  " SELECT " T("a.raised_at") " AS raised, a.kind, a.severity, a.state,"
	  " coalesce((SELECT min(shown) FROM subj WHERE s = a.subject),"
	  "  regexp_replace(a.subject, 'id:[0-9a-f]{32}', '(ID number)', 'g')) AS subject,"
	  " a.count, a.alert_id, count(*) OVER () AS total,"
	  " count(*) FILTER (WHERE a.state <> 'resolved') OVER () AS open"
	  " FROM alerts a WHERE a.site = $1 AND (a.household = $2"
	  "  OR a.subject IN (SELECT s FROM subj)"
	  "  OR a.card IN (SELECT card FROM cards WHERE site = $1 AND household = $2))"
	  " ORDER BY a.state <> 'resolved' DESC, a.raised_at DESC, a.alert_id LIMIT $5" },
};
/* clang-format on */

int
views_household_head(PGconn *conn, const char *site, const char *household, const char *default_tz,
		     PGresult **ret_head, char *errbuf, size_t errlen)
{
	static const Oid types[3] = { TEXTOID, TEXTOID, TEXTOID };
	const char *params[3] = { site, household, default_tz };
	PGresult *res;
	int rc;

	rc = run(conn, "reading the household",
		 "SELECT h.building, h.unit, h.room, h.size, h.phone,"
		 " coalesce(s.timezone, $3) AS timezone"
		 " FROM households h JOIN sites s USING (site)"
		 " WHERE h.site = $1 AND h.household = $2",
		 3, types, params, &res, errbuf, errlen);
	if (rc < 0)
		return rc;
	if (PQntuples(res) == 0) {
		PQclear(res);
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "unknown household %s at site %s", household,
				 site);
		return -ENOENT;
	}
	*ret_head = res;
	return 0;
}

int
views_household_section(PGconn *conn, const struct views_section *s, const char *site,
			const char *household, const char *tz, const char *timefmt, int last,
			PGresult **ret, char *errbuf, size_t errlen)
{
	static const Oid types[5] = { TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID };
	char what[64], last_s[16];
	const char *params[5] = { site, household, tz, timefmt, last_s };

	if (last < 1 || last > 1000) {
		say(errbuf, errlen, "last: expected 1 to 1000");
		return -EINVAL;
	}
	snprintf(last_s, sizeof(last_s), "%d", last);
	snprintf(what, sizeof(what), "reading the %s", s->title);
	return run(conn, what, s->sql, 5, types, params, ret, errbuf, errlen);
}

void
views_section_counts(const struct views_section *s, PGresult *res, long *ret_total, long *ret_open)
{
	int n = PQntuples(res);

	*ret_total = n ? atol(PQgetvalue(res, 0, s->ncols)) : 0;
	*ret_open = n && s->open_word ? atol(PQgetvalue(res, 0, s->ncols + 1)) : 0;
}

/* The section as {"total": N, ["open"|"active": K,] "items": [...]};
 * NULL when out of memory. */
static json_t *
json_section(const struct views_section *s, PGresult *res)
{
	json_t *o = json_object(), *items = json_array();
	long total, open;

	if (!o || !items)
		goto oom;
	views_section_counts(s, res, &total, &open);
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
views_household_json(PGconn *conn, const char *site, const char *household, const char *default_tz,
		     int last, json_t **ret_page, char *errbuf, size_t errlen)
{
	PGresult *res;
	json_t *page;
	int rc;

	if (!site || !household || last < 1 || last > 1000) {
		say(errbuf, errlen, "a site, a household and last 1 to 1000 are needed");
		return -EINVAL;
	}
	rc = views_household_head(conn, site, household, default_tz, &res, errbuf, errlen);
	if (rc < 0)
		return rc;
	page = json_pack("{s:s, s:s}", "site", site, "household", household);
	for (int c = 0; page && c < PQnfields(res); c++) {
		json_t *v = json_value(res, 0, c);

		if (!v || json_object_set_new(page, PQfname(res, c), v) < 0) {
			json_decref(page);
			page = NULL;
		}
	}
	PQclear(res);
	if (!page)
		return -ENOMEM;
	for (size_t i = 0; i < VIEWS_HOUSEHOLD_NSECTIONS; i++) {
		const struct views_section *s = &views_household_sections[i];

		/* Times in UTC, RFC 3339. */
		rc = views_household_section(conn, s, site, household, "UTC",
					     "YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"", last, &res,
					     errbuf, errlen);
		if (rc < 0) {
			json_decref(page);
			return rc;
		}
		rc = json_object_set_new(page, s->key, json_section(s, res));
		PQclear(res);
		if (rc < 0) {
			json_decref(page);
			return -ENOMEM;
		}
	}
	*ret_page = page;
	return 0;
}

/* ---------------------------------------------------------------- the daily report */

/* Every report statement's parameters are text: $1 site, $2 start of the
 * day, $3 its end, $4 the site's time zone, $5 fever threshold, $6 topic
 * root, $7 [rules] check_interval and $8 [rules] disinfection_interval in
 * seconds (what an order or a zone without an interval of its own
 * follows). */
#define REPORT_PARAMS 8

/* The isolation orders of site $1 active at some moment of the day [$2, $3)
 * up to now (today: what has been due so far, not the rest of the day;
 * released ones up to their release), each with the part of the day it
 * covers, [f, t). */
#define ORDERS_OF_THE_DAY                                                                  \
	"SELECT household, person, check_interval_s,"                                      \
	"       greatest(starts_at, $2::timestamptz) AS f,"                                \
	"       least(ends_at, coalesce(released_at, 'infinity'), $3::timestamptz, now())" \
	"         AS t"                                                                    \
	"  FROM isolation_orders"                                                          \
	" WHERE site = $1 AND starts_at < least($3::timestamptz, now())"                   \
	"   AND ends_at > $2::timestamptz"                                                 \
	"   AND (released_at IS NULL OR released_at > $2::timestamptz)"                    \
	"   AND starts_at < coalesce(released_at, 'infinity')"

/* The disinfections a zone is due in a day (grouped by zone, its register
 * row joined as r): the zone's per_day, else the 16 h day (06:00-22:00) in
 * whole intervals of its own or [rules] disinfection_interval (`dflt`, a
 * parameter). The report, its chart and the zones board all use it. */
#define ZONE_DUE(dflt) \
	"coalesce(min(r.per_day), 57600 / min(coalesce(r.interval_s, " dflt "::int)))"

/* Each section says what was done that day and, where the register says
 * what was due, what was expected beside it (docs/operations.md, "The
 * daily report"). */
const struct views_report_section views_report_sections[VIEWS_REPORT_NSECTIONS] = {
	{ "gates", "Gates",
	  "SELECT g.gate,"
	  "       count(e.event_key) AS passes,"
	  "       count(e.temp_c) AS screened,"
	  "       count(e.event_key) FILTER (WHERE e.temp_c >= $5::numeric"
	  "                                  AND NOT 'implausible' = ANY(e.flags)) AS fevers,"
	  "       count(e.event_key) FILTER (WHERE 'implausible' = ANY(e.flags)) AS implausible,"
	  "       count(e.event_key) FILTER (WHERE e.direction = 'out') AS out,"
	  "       count(e.event_key) FILTER (WHERE 'clock_skew' = ANY(e.flags)) AS clock_skew"
	  "  FROM (SELECT gate FROM gates WHERE site = $1"
	  "        UNION SELECT gate FROM gate_events"
	  "         WHERE site = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz) g"
	  "  LEFT JOIN gate_events e ON e.site = $1 AND e.gate = g.gate"
	  "       AND e.ts >= $2::timestamptz AND e.ts < $3::timestamptz"
	  " GROUP BY g.gate ORDER BY g.gate" },
	/* expected: ZONE_DUE; '-' for a zone not registered. */
	/* clang-format off */
	{ "zones", "Disinfection zones",
	  "SELECT z.zone, count(d.event_key) AS disinfections,"
	  "       coalesce(to_char(max(d.ts) AT TIME ZONE $4, 'HH24:MI'), '-') AS last,"
	  "       CASE WHEN min(r.zone) IS NULL THEN '-'"
	  "            ELSE " ZONE_DUE("$8") "::text"
	  "       END AS expected"
	  "  FROM (SELECT zone FROM zones WHERE site = $1"
	  "        UNION SELECT zone FROM disinfections"
	  "         WHERE site = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz) z"
	  "  LEFT JOIN zones r ON r.site = $1 AND r.zone = z.zone"
	  "  LEFT JOIN disinfections d ON d.site = $1 AND d.zone = z.zone"
	  "       AND d.ts >= $2::timestamptz AND d.ts < $3::timestamptz"
	  " GROUP BY z.zone ORDER BY z.zone" },
	/* clang-format on */
	{ "isolation", "Home isolation checks",
	  "SELECT h.household, count(c.event_key) AS checks,"
	  "       count(c.event_key) FILTER (WHERE c.temp_c >= $5::numeric) AS febrile,"
	  "       count(c.event_key) FILTER (WHERE cardinality(c.symptoms) > 0) AS with_symptoms"
	  "  FROM (SELECT household FROM isolation_orders WHERE site = $1"
	  "         AND starts_at < $3::timestamptz AND ends_at > $2::timestamptz"
	  "         AND (released_at IS NULL OR released_at > $2::timestamptz)"
	  "        UNION SELECT household FROM isolation_checks"
	  "         WHERE site = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz) h"
	  "  LEFT JOIN isolation_checks c ON c.site = $1 AND c.household = h.household"
	  "       AND c.ts >= $2::timestamptz AND c.ts < $3::timestamptz"
	  " GROUP BY h.household ORDER BY h.household" },
	/* One row per isolated person: the person of a person order, each
	 * registered resident of a household order, else the household itself
	 * (person '-'). hours: of the day under an order; due: whole check
	 * intervals in them (the order's, else [rules] check_interval), the
	 * largest of a person's orders; done: the day's checks naming the
	 * person (any check of the household for a row of the household). */
	{ "health_checks", "Health checks, due and done per isolated person",
	  "WITH o AS (" ORDERS_OF_THE_DAY "),"
	  " p AS (SELECT o.household, coalesce(o.person, r.person) AS person,"
	  "              max(extract(epoch FROM o.t - o.f)) AS secs,"
	  "              max(floor(extract(epoch FROM o.t - o.f)"
	  "                        / coalesce(o.check_interval_s, $7::int))) AS due"
	  "         FROM o LEFT JOIN residents r ON o.person IS NULL AND r.site = $1"
	  "              AND r.household = o.household"
	  "        GROUP BY 1, 2) "
	  "SELECT p.household, coalesce(p.person, '-') AS person,"
	  "       round((p.secs / 3600)::numeric, 1) AS hours, p.due::bigint AS due, c.done,"
	  "       greatest(p.due::bigint - c.done, 0) AS missing"
	  "  FROM p CROSS JOIN LATERAL (SELECT count(*) AS done FROM isolation_checks k"
	  "        WHERE k.site = $1 AND k.household = p.household"
	  "          AND k.ts >= $2::timestamptz AND k.ts < $3::timestamptz"
	  "          AND (p.person IS NULL OR k.person = p.person)) c"
	  " ORDER BY p.household, p.person NULLS FIRST" },
	/* Each household under isolation at some moment of the day is due one
	 * welfare call; reached: a call that day with an outcome other than
	 * no_answer (1 or 0). Households called but not isolated show due 0. */
	{ "welfare", "Welfare calls, due and reached per household",
	  "WITH h AS (SELECT DISTINCT household FROM (" ORDERS_OF_THE_DAY ") o),"
	  " c AS (SELECT household, count(*) AS calls,"
	  "              count(*) FILTER (WHERE outcome <> 'no_answer') AS answered,"
	  "              count(*) FILTER (WHERE outcome = 'needs_help') AS needs_help,"
	  "              count(*) FILTER (WHERE outcome = 'counselling') AS counselling"
	  "         FROM welfare_calls"
	  "        WHERE site = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz"
	  "        GROUP BY household) "
	  "SELECT household, (h.household IS NOT NULL)::int AS due, coalesce(c.calls, 0) AS calls,"
	  "       (coalesce(c.answered, 0) > 0)::int AS reached,"
	  "       coalesce(c.needs_help, 0) AS needs_help, coalesce(c.counselling, 0) AS counselling"
	  "  FROM h FULL JOIN c USING (household) ORDER BY household" },
	/* Per category: opened, delivered and cancelled that day; overdue:
	 * past due, neither delivered nor cancelled, at some moment of the day
	 * up to now
	 * (delivered late that day, or still open past due at its end); open:
	 * neither delivered nor cancelled at the day's end; the median time
	 * from open to delivery of those delivered that day. */
	{ "needs", "Needs",
	  "SELECT coalesce(category, '-') AS category,"
	  "       count(*) FILTER (WHERE opened_at >= $2::timestamptz"
	  "                          AND opened_at < $3::timestamptz) AS opened,"
	  "       count(*) FILTER (WHERE delivered_at >= $2::timestamptz"
	  "                          AND delivered_at < $3::timestamptz) AS delivered,"
	  "       count(*) FILTER (WHERE cancelled_at >= $2::timestamptz"
	  "                          AND cancelled_at < $3::timestamptz) AS cancelled,"
	  "       count(*) FILTER (WHERE due < least($3::timestamptz, now())"
	  "           AND coalesce(delivered_at, 'infinity') > greatest(due, $2::timestamptz)"
	  "           AND coalesce(cancelled_at, 'infinity') > greatest(due, $2::timestamptz))"
	  "         AS overdue,"
	  "       count(*) FILTER (WHERE coalesce(delivered_at, 'infinity') >= $3::timestamptz"
	  "           AND coalesce(cancelled_at, 'infinity') >= $3::timestamptz) AS open,"
	  "       coalesce(round((percentile_cont(0.5) WITHIN GROUP (ORDER BY"
	  "           extract(epoch FROM delivered_at - opened_at) / 60)"
	  "           FILTER (WHERE delivered_at >= $2::timestamptz"
	  "                     AND delivered_at < $3::timestamptz))::numeric, 1)::text, '-')"
	  "         AS median_min_to_deliver"
	  "  FROM needs"
	  " WHERE site = $1 AND coalesce(opened_at, '-infinity') < $3::timestamptz"
	  "   AND coalesce(delivered_at, 'infinity') >= $2::timestamptz"
	  "   AND coalesce(cancelled_at, 'infinity') >= $2::timestamptz"
	  " GROUP BY 1 ORDER BY 1" },
	/* Per household: placed and collected that day; uncollected: all
	 * placed minus all collected up to the day's end. */
	{ "dropoffs", "Drop-offs",
	  "SELECT household,"
	  "       count(*) FILTER (WHERE action = 'placed' AND ts >= $2::timestamptz) AS placed,"
	  "       count(*) FILTER (WHERE action = 'collected' AND ts >= $2::timestamptz)"
	  "         AS collected,"
	  "       greatest(count(*) FILTER (WHERE action = 'placed')"
	  "                - count(*) FILTER (WHERE action = 'collected'), 0) AS uncollected"
	  "  FROM dropoffs WHERE site = $1 AND ts < $3::timestamptz"
	  " GROUP BY household"
	  " HAVING count(*) FILTER (WHERE ts >= $2::timestamptz) > 0"
	  "     OR count(*) FILTER (WHERE action = 'placed')"
	  "        > count(*) FILTER (WHERE action = 'collected')"
	  " ORDER BY household" },
	/* The register's exception cards (cards.extra, e.g. a carer's second
	 * card: their passes count against no exit quota), by reason: how many
	 * cards and households hold them now, and their passes that day. One
	 * card at a time: cordonctl household. */
	{ "exception_cards", "Exception cards",
	  "SELECT coalesce(c.reason, '-') AS reason, count(DISTINCT c.card) AS cards,"
	  "       count(DISTINCT c.household) AS households,"
	  "       count(e.event_key) AS passes,"
	  "       count(e.event_key) FILTER (WHERE e.direction = 'out') AS out"
	  "  FROM cards c"
	  "  LEFT JOIN gate_events e ON e.site = $1 AND e.card = c.card"
	  "       AND e.ts >= $2::timestamptz AND e.ts < $3::timestamptz"
	  " WHERE c.site = $1 AND c.extra AND c.state = 'active'"
	  " GROUP BY 1 ORDER BY 1" },
	{ "hotline", "Hotline calls",
	  "SELECT coalesce(category, '-') AS category, count(*) AS calls,"
	  "       count(*) FILTER (WHERE urgent) AS urgent,"
	  "       count(resolved_at) AS resolved,"
	  "       coalesce(round((percentile_cont(0.5) WITHIN GROUP (ORDER BY"
	  "           extract(epoch FROM resolved_at - opened_at) / 60))::numeric, 1)::text, '-')"
	  "         AS median_min_to_resolve"
	  "  FROM hotline_calls"
	  " WHERE site = $1 AND opened_at >= $2::timestamptz AND opened_at < $3::timestamptz"
	  " GROUP BY 1 ORDER BY 1" },
	{ "alerts", "Alerts raised",
	  "SELECT kind, count(*) AS raised,"
	  "       count(*) FILTER (WHERE severity = 'critical') AS critical,"
	  "       count(*) FILTER (WHERE state <> 'resolved') AS open,"
	  "       sum(count) AS triggers"
	  "  FROM alerts"
	  " WHERE site = $1 AND raised_at >= $2::timestamptz AND raised_at < $3::timestamptz"
	  " GROUP BY kind ORDER BY kind" },
	/* rejects has no site column: its topic names the site. */
	{ "rejects", "Rejected payloads",
	  "SELECT reason, count(*) AS rejects"
	  "  FROM rejects"
	  " WHERE starts_with(topic, $6 || '/' || $1 || '/')"
	  "   AND received_at >= $2::timestamptz AND received_at < $3::timestamptz"
	  " GROUP BY reason ORDER BY count(*) DESC, reason" },
};

/* The report's charts, with the sections' parameters. Fevers and the
 * temperatures leave implausible readings out, as the gates section does. */
#define CHART_HOURS                                                                        \
	"SELECT extract(hour FROM e.ts AT TIME ZONE $4)::int AS hour, count(*) AS passes," \
	"       count(*) FILTER (WHERE e.temp_c >= $5::numeric"                            \
	"                          AND NOT 'implausible' = ANY(e.flags)) AS fevers"        \
	"  FROM gate_events e"                                                             \
	" WHERE e.site = $1 AND e.ts >= $2::timestamptz AND e.ts < $3::timestamptz"        \
	" GROUP BY 1 ORDER BY 1"
#define CHART_TEMPERATURES                                                           \
	"SELECT e.temp_c, count(*) AS n FROM gate_events e"                          \
	" WHERE e.site = $1 AND e.ts >= $2::timestamptz AND e.ts < $3::timestamptz"  \
	"   AND e.temp_c BETWEEN 30.0 AND 45.0 AND NOT 'implausible' = ANY(e.flags)" \
	" GROUP BY 1 ORDER BY 1"
/* clang-format off */
#define CHART_DISINFECTIONS \
	"SELECT z.zone, count(d.event_key) AS done," \
	"       CASE WHEN min(r.zone) IS NULL THEN NULL ELSE " ZONE_DUE("$8") " END" \
	"         AS due" \
	"  FROM (SELECT zone FROM zones WHERE site = $1" \
	"        UNION SELECT zone FROM disinfections" \
	"         WHERE site = $1 AND ts >= $2::timestamptz AND ts < $3::timestamptz) z" \
	"  LEFT JOIN zones r ON r.site = $1 AND r.zone = z.zone" \
	"  LEFT JOIN disinfections d ON d.site = $1 AND d.zone = z.zone" \
	"       AND d.ts >= $2::timestamptz AND d.ts < $3::timestamptz" \
	" GROUP BY z.zone ORDER BY z.zone"
/* clang-format on */

int
views_report_days(PGconn *conn, const struct views_report_args *args, PGresult **ret_days,
		  char *errbuf, size_t errlen)
{
	static const Oid types[3] = { TEXTOID, TEXTOID, TEXTOID };
	const char *params[3] = { args->site, args->date, args->default_tz };
	PGresult *res;
	int rc;

	if (args->date && !views_is_date(args->date)) {
		say(errbuf, errlen, "bad date: use YYYY-MM-DD");
		return -EINVAL;
	}
	/* Each site's day, in its own time zone. */
	rc = run(
		conn, "computing the day",
		"SELECT site, timezone, d::text,"
		"       (d::timestamp AT TIME ZONE timezone)::text,"
		"       ((d + 1)::timestamp AT TIME ZONE timezone)::text"
		"  FROM (SELECT site, coalesce(timezone, $3) AS timezone,"
		"               coalesce($2::date, (now() AT TIME ZONE coalesce(timezone, $3))::date)"
		"                 AS d"
		"          FROM sites WHERE $1::text IS NULL OR site = $1) s"
		" ORDER BY site",
		3, types, params, &res, errbuf, errlen);
	if (rc < 0)
		return rc;
	if (args->site && PQntuples(res) == 0) {
		PQclear(res);
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "unknown site %s", args->site);
		return -ENOENT;
	}
	*ret_days = res;
	return 0;
}

/* Runs a report statement for row `row` of days. */
static int
report_query(PGconn *conn, const struct views_report_args *args, PGresult *days, int row,
	     const char *what, const char *sql, PGresult **ret, char *errbuf, size_t errlen)
{
	static const Oid types[REPORT_PARAMS] = { TEXTOID, TEXTOID, TEXTOID, TEXTOID,
						  TEXTOID, TEXTOID, TEXTOID, TEXTOID };
	char check_s[32], disinfect_s[32];
	const char *params[REPORT_PARAMS] = {
		PQgetvalue(days, row, 0),
		PQgetvalue(days, row, 3),
		PQgetvalue(days, row, 4),
		PQgetvalue(days, row, 1),
		args->fever,
		args->topic_root,
		check_s,
		disinfect_s,
	};

	snprintf(check_s, sizeof(check_s), "%lld", args->check_interval_s);
	snprintf(disinfect_s, sizeof(disinfect_s), "%lld", args->disinfection_interval_s);
	return run(conn, what, sql, REPORT_PARAMS, types, params, ret, errbuf, errlen);
}

int
views_report_section(PGconn *conn, const struct views_report_args *args, PGresult *days, int row,
		     size_t i, PGresult **ret, char *errbuf, size_t errlen)
{
	if (i >= VIEWS_REPORT_NSECTIONS || row < 0 || row >= PQntuples(days)) {
		say(errbuf, errlen, "no such section or day");
		return -EINVAL;
	}
	return report_query(conn, args, days, row, views_report_sections[i].title,
			    views_report_sections[i].sql, ret, errbuf, errlen);
}

static void
csv_field(FILE *out, const char *v)
{
	if (strpbrk(v, ",\"\r\n")) {
		fputc('"', out);
		for (; *v; v++) {
			if (*v == '"')
				fputc('"', out);
			fputc(*v, out);
		}
		fputc('"', out);
	} else {
		fputs(v, out);
	}
}

int
views_report_csv(PGconn *conn, const struct views_report_args *args, FILE *out, char *errbuf,
		 size_t errlen)
{
	PGresult *days, *res;
	int rc;

	rc = views_report_days(conn, args, &days, errbuf, errlen);
	if (rc < 0)
		return rc;
	for (int i = 0; i < PQntuples(days); i++) {
		fprintf(out, "report,site,date,timezone\nreport,%s,%s,", PQgetvalue(days, i, 0),
			PQgetvalue(days, i, 2));
		csv_field(out, PQgetvalue(days, i, 1));
		fputc('\n', out);
		/* One section: CSV lines whose first field names it, a header
		 * line first. */
		for (size_t s = 0; s < VIEWS_REPORT_NSECTIONS; s++) {
			rc = views_report_section(conn, args, days, i, s, &res, errbuf, errlen);
			if (rc < 0) {
				PQclear(days);
				return rc;
			}
			for (int r = -1; r < PQntuples(res); r++) {
				fputs(views_report_sections[s].name, out);
				for (int c = 0; c < PQnfields(res); c++) {
					fputc(',', out);
					csv_field(out,
						  r < 0 ? PQfname(res, c) : PQgetvalue(res, r, c));
				}
				fputc('\n', out);
			}
			PQclear(res);
		}
	}
	if (PQntuples(days) == 0)
		fputs("no sites\n", out);
	PQclear(days);
	return 0;
}

/* {"name","title","columns":[…],"rows":[[…],…]} of a section's result;
 * NULL when out of memory. */
static json_t *
json_report_section(const struct views_report_section *s, PGresult *res)
{
	json_t *o = json_pack("{s:s, s:s, s:[], s:[]}", "name", s->name, "title", s->title,
			      "columns", "rows");
	json_t *cols = json_object_get(o, "columns"), *rows = json_object_get(o, "rows");

	for (int c = 0; o && c < PQnfields(res); c++)
		if (json_array_append_new(cols, json_string(PQfname(res, c))) < 0)
			goto oom;
	for (int r = 0; o && r < PQntuples(res); r++) {
		json_t *row = json_array();

		if (json_array_append_new(rows, row) < 0)
			goto oom;
		for (int c = 0; c < PQnfields(res); c++)
			if (json_array_append_new(row, json_value(res, r, c)) < 0)
				goto oom;
	}
	return o;
oom:
	json_decref(o);
	return NULL;
}

/* The charts of row 0 of days: {"passes_per_hour","fevers_per_hour",
 * "temperatures","disinfections"}. */
static int
report_charts(PGconn *conn, const struct views_report_args *args, PGresult *days,
	      json_t **ret_charts, char *errbuf, size_t errlen)
{
	long long passes[24] = { 0 }, fevers[24] = { 0 };
	json_t *charts, *pp, *fp, *temps, *dis;
	PGresult *res;
	int rc;

	rc = report_query(conn, args, days, 0, "charting passes per hour", CHART_HOURS, &res,
			  errbuf, errlen);
	if (rc < 0)
		return rc;
	for (int r = 0; r < PQntuples(res); r++) {
		int h = atoi(PQgetvalue(res, r, 0));

		if (h >= 0 && h < 24) {
			passes[h] += atoll(PQgetvalue(res, r, 1));
			fevers[h] += atoll(PQgetvalue(res, r, 2));
		}
	}
	PQclear(res);
	charts = json_pack("{s:[], s:[], s:[], s:[]}", "passes_per_hour", "fevers_per_hour",
			   "temperatures", "disinfections");
	if (!charts)
		return -ENOMEM;
	pp = json_object_get(charts, "passes_per_hour");
	fp = json_object_get(charts, "fevers_per_hour");
	temps = json_object_get(charts, "temperatures");
	dis = json_object_get(charts, "disinfections");
	for (int h = 0; h < 24; h++)
		if (json_array_append_new(pp, json_integer(passes[h])) < 0 ||
		    json_array_append_new(fp, json_integer(fevers[h])) < 0)
			goto oom;

	rc = report_query(conn, args, days, 0, "charting temperatures", CHART_TEMPERATURES, &res,
			  errbuf, errlen);
	if (rc < 0)
		goto fail;
	for (int r = 0; r < PQntuples(res); r++)
		if (json_array_append_new(temps, json_row(res, r, 2)) < 0) {
			PQclear(res);
			goto oom;
		}
	PQclear(res);

	rc = report_query(conn, args, days, 0, "charting disinfections", CHART_DISINFECTIONS, &res,
			  errbuf, errlen);
	if (rc < 0)
		goto fail;
	for (int r = 0; r < PQntuples(res); r++)
		if (json_array_append_new(dis, json_row(res, r, 3)) < 0) {
			PQclear(res);
			goto oom;
		}
	PQclear(res);
	*ret_charts = charts;
	return 0;
oom:
	rc = -ENOMEM;
fail:
	json_decref(charts);
	return rc;
}

int
views_report_json(PGconn *conn, const struct views_report_args *args, json_t **ret_report,
		  char *errbuf, size_t errlen)
{
	PGresult *days, *res;
	json_t *report, *sections, *charts;
	int rc;

	if (!args->site) {
		say(errbuf, errlen, "the report as JSON is of one site");
		return -EINVAL;
	}
	rc = views_report_days(conn, args, &days, errbuf, errlen);
	if (rc < 0)
		return rc;
	report = json_pack("{s:s, s:s, s:s, s:[]}", "site", PQgetvalue(days, 0, 0), "date",
			   PQgetvalue(days, 0, 2), "timezone", PQgetvalue(days, 0, 1), "sections");
	if (!report) {
		PQclear(days);
		return -ENOMEM;
	}
	sections = json_object_get(report, "sections");
	for (size_t s = 0; s < VIEWS_REPORT_NSECTIONS; s++) {
		rc = views_report_section(conn, args, days, 0, s, &res, errbuf, errlen);
		if (rc < 0)
			goto fail;
		rc = json_array_append_new(sections,
					   json_report_section(&views_report_sections[s], res));
		PQclear(res);
		if (rc < 0) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	rc = report_charts(conn, args, days, &charts, errbuf, errlen);
	if (rc < 0)
		goto fail;
	if (json_object_set_new(report, "charts", charts) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	PQclear(days);
	*ret_report = report;
	return 0;
fail:
	PQclear(days);
	json_decref(report);
	return rc;
}

/* ---------------------------------------------------------------- boards */

/* The SQL as SQL: clang-format would break its strings at each macro call. */
/* clang-format off */

/* A time as RFC 3339 in UTC. */
#define UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define LIMIT " LIMIT 5000" /* VIEWS_BOARD_MAX */

/* The boards' parameters: $1 the sites (text[], NULL: every one), $2 one
 * site (NULL: all of $1), $3 the date (NULL: today in each site's zone),
 * $4 [site] timezone, $5 the board's own. SITE_DAYS gives each site
 * chosen, its zone tz and its day [f, t). */
#define BOARD_PARAMS 5
#define SITE_DAYS \
	"SELECT site, tz, (day::timestamp AT TIME ZONE tz) AS f," \
	"       ((day + 1)::timestamp AT TIME ZONE tz) AS t" \
	"  FROM (SELECT site, tz, coalesce($3::date, (now() AT TIME ZONE tz)::date) AS day" \
	"          FROM (SELECT site, coalesce(timezone, $4::text) AS tz FROM sites" \
	"                 WHERE ($1::text[] IS NULL OR site = ANY ($1::text[]))" \
	"                   AND ($2::text IS NULL OR site = $2::text)) s) s2"
#define SITES_CHOSEN(col) \
	"($1::text[] IS NULL OR " col " = ANY ($1::text[])) AND ($2::text IS NULL OR " col " = $2)"

/* status: the latest gate_status by ts; last_heard: the latest
 * received_at of its events or status; fevers_today: fever alerts raised
 * that day at the gate (alerts.gate). */
#define GATES_SQL \
	"WITH b AS (" SITE_DAYS ")," \
	" p AS (SELECT e.site, e.gate, count(*) AS n FROM gate_events e" \
	"        JOIN b ON e.site = b.site AND e.ts >= b.f AND e.ts < b.t GROUP BY 1, 2)," \
	" f AS (SELECT a.site, a.gate, count(*) AS n FROM alerts a" \
	"        JOIN b ON a.site = b.site AND a.raised_at >= b.f AND a.raised_at < b.t" \
	"       WHERE a.kind = 'fever' AND a.gate IS NOT NULL GROUP BY 1, 2) " \
	"SELECT g.site, g.gate, g.state, g.active, g.format, st.state AS status," \
	"       " UTC("st.ts") " AS status_at," \
	"       " UTC("greatest((SELECT max(received_at) FROM gate_events e" \
	"                         WHERE e.site = g.site AND e.gate = g.gate)," \
	"                        (SELECT max(received_at) FROM gate_status s" \
	"                          WHERE s.site = g.site AND s.gate = g.gate))") " AS last_heard," \
	"       coalesce(p.n, 0) AS passes_today, coalesce(f.n, 0) AS fevers_today" \
	"  FROM gates g JOIN b ON b.site = g.site" \
	"  LEFT JOIN LATERAL (SELECT state, ts FROM gate_status s" \
	"        WHERE s.site = g.site AND s.gate = g.gate" \
	"        ORDER BY s.ts DESC, s.received_at DESC LIMIT 1) st ON true" \
	"  LEFT JOIN p ON p.site = g.site AND p.gate = g.gate" \
	"  LEFT JOIN f ON f.site = g.site AND f.gate = g.gate" \
	" ORDER BY g.site, g.gate" LIMIT

/* The registered zones and those disinfected that day. per_day: the
 * register's (null: none); done: that day's disinfections; due: ZONE_DUE
 * with $5 [rules] disinfection_interval (null for a zone not registered);
 * last_at: the day's last. */
#define ZONES_SQL \
	"WITH b AS (" SITE_DAYS ")," \
	" z AS (SELECT site, zone FROM zones WHERE site IN (SELECT site FROM b)" \
	"       UNION SELECT d.site, d.zone FROM disinfections d" \
	"        JOIN b ON d.site = b.site AND d.ts >= b.f AND d.ts < b.t) " \
	"SELECT z.site, z.zone, min(r.per_day) AS per_day, count(d.event_key) AS done," \
	"       CASE WHEN min(r.zone) IS NULL THEN NULL ELSE " ZONE_DUE("$5") " END AS due," \
	"       " UTC("max(d.ts)") " AS last_at" \
	"  FROM z JOIN b ON b.site = z.site" \
	"  LEFT JOIN zones r ON r.site = z.site AND r.zone = z.zone" \
	"  LEFT JOIN disinfections d ON d.site = z.site AND d.zone = z.zone" \
	"       AND d.ts >= b.f AND d.ts < b.t" \
	" GROUP BY z.site, z.zone ORDER BY z.site, z.zone" LIMIT

/* Households with an active order (not released, not ended). persons: the
 * named persons of their orders, or for a whole-household order its
 * registered residents (its size when none are); starts, ends: the
 * earliest start and the latest end of the active orders; the checks and
 * welfare calls of the site's day; the latest check; open needs. */
#define ISOLATION_SQL \
	"WITH b AS (" SITE_DAYS ")," \
	" o AS (SELECT o.site, o.household, bool_or(o.person IS NULL) AS whole," \
	"              count(DISTINCT o.person) AS named, min(o.starts_at) AS starts," \
	"              max(o.ends_at) AS ends" \
	"         FROM isolation_orders o JOIN b ON b.site = o.site" \
	"        WHERE o.released_at IS NULL AND o.ends_at > now() GROUP BY 1, 2) " \
	"SELECT o.site, o.household, h.building, h.unit, h.room," \
	"       CASE WHEN o.whole THEN coalesce(nullif((SELECT count(*) FROM residents r" \
	"            WHERE r.site = o.site AND r.household = o.household), 0), h.size)" \
	"            ELSE o.named END AS persons," \
	"       " UTC("o.starts") " AS starts, " UTC("o.ends") " AS ends," \
	"       (SELECT count(*) FROM isolation_checks c WHERE c.site = o.site" \
	"         AND c.household = o.household AND c.ts >= b.f AND c.ts < b.t)" \
	"         AS checks_today," \
	"       " UTC("lc.ts") " AS last_check_at, lc.temp_c AS last_temp_c," \
	"       w.calls AS calls_today, w.reached AS reached_today," \
	"       (SELECT count(*) FROM needs n WHERE n.site = o.site" \
	"         AND n.household = o.household AND n.status IN ('open', 'assigned'))" \
	"         AS open_needs" \
	"  FROM o JOIN b ON b.site = o.site" \
	"  JOIN households h ON h.site = o.site AND h.household = o.household" \
	"  LEFT JOIN LATERAL (SELECT ts, temp_c FROM isolation_checks c" \
	"        WHERE c.site = o.site AND c.household = o.household" \
	"        ORDER BY c.ts DESC LIMIT 1) lc ON true" \
	" CROSS JOIN LATERAL (SELECT count(*) AS calls," \
	"        coalesce(bool_or(outcome <> 'no_answer'), false) AS reached" \
	"        FROM welfare_calls w WHERE w.site = o.site AND w.household = o.household" \
	"         AND w.ts >= b.f AND w.ts < b.t) w" \
	" ORDER BY o.site, o.household" LIMIT

/* $5 the statuses (text[]). overdue: past due and open or assigned. The
 * overdue first, then the open and assigned, each by due. */
#define NEEDS_SQL \
	"SELECT n.site, n.need_id, n.household, n.category, n.status," \
	"       " UTC("n.opened_at") " AS opened_at, " UTC("n.due") " AS due," \
	"       n.assigned_to, " UTC("n.assigned_at") " AS assigned_at," \
	"       " UTC("n.delivered_at") " AS delivered_at, n.delivered_by, n.note," \
	"       coalesce(n.due < now(), false) AND n.status IN ('open', 'assigned')" \
	"         AS overdue" \
	"  FROM needs n" \
	" WHERE " SITES_CHOSEN("n.site") " AND n.status = ANY ($5::text[])" \
	" ORDER BY 13 DESC, n.status IN ('open', 'assigned') DESC, n.due NULLS LAST," \
	"          n.opened_at NULLS LAST, n.site, n.need_id" LIMIT
/* clang-format on */

/* Runs a board's statement and gives {"<name>": [rows]}. */
static int
board(PGconn *conn, const char *name, const char *sql, const char *const *sites, const char *site,
      const char *date, const char *default_tz, const char *extra, Oid extra_type, json_t **ret,
      char *errbuf, size_t errlen)
{
	const Oid types[BOARD_PARAMS] = { TEXTARRAYOID, TEXTOID, TEXTOID, TEXTOID, extra_type };
	const char *params[BOARD_PARAMS];
	char *lit, what[64];
	PGresult *res;
	json_t *rows;
	int rc;

	if (date && !views_is_date(date)) {
		say(errbuf, errlen, "bad date: use YYYY-MM-DD");
		return -EINVAL;
	}
	rc = sites_param(sites, &lit, errbuf, errlen);
	if (rc < 0)
		return rc;
	params[0] = lit;
	params[1] = site;
	params[2] = date;
	params[3] = default_tz ? default_tz : "UTC";
	params[4] = extra;
	snprintf(what, sizeof(what), "reading the %s", name);
	rc = run(conn, what, sql, BOARD_PARAMS, types, params, &res, errbuf, errlen);
	free(lit);
	if (rc < 0)
		return rc;
	rows = json_rows(res);
	PQclear(res);
	*ret = rows ? json_pack("{s:o}", name, rows) : NULL;
	return *ret ? 0 : -ENOMEM;
}

int
views_gates_json(PGconn *conn, const char *const *sites, const char *site, const char *default_tz,
		 json_t **ret, char *errbuf, size_t errlen)
{
	return board(conn, "gates", GATES_SQL, sites, site, NULL, default_tz, NULL, TEXTOID, ret,
		     errbuf, errlen);
}

int
views_zones_json(PGconn *conn, const char *const *sites, const char *site, const char *date,
		 const char *default_tz, long long disinfection_interval_s, json_t **ret,
		 char *errbuf, size_t errlen)
{
	char interval[32];

	if (disinfection_interval_s <= 0 || disinfection_interval_s > 86400 * 366LL) {
		say(errbuf, errlen, "disinfection_interval out of range");
		return -EINVAL;
	}
	snprintf(interval, sizeof(interval), "%lld", disinfection_interval_s);
	return board(conn, "zones", ZONES_SQL, sites, site, date, default_tz, interval, TEXTOID,
		     ret, errbuf, errlen);
}

int
views_isolation_json(PGconn *conn, const char *const *sites, const char *site,
		     const char *default_tz, json_t **ret, char *errbuf, size_t errlen)
{
	return board(conn, "households", ISOLATION_SQL, sites, site, NULL, default_tz, NULL,
		     TEXTOID, ret, errbuf, errlen);
}

int
views_needs_json(PGconn *conn, const char *const *sites, const char *site, const char *status,
		 json_t **ret, char *errbuf, size_t errlen)
{
	static const char *const known[] = { "open", "assigned", "delivered", "cancelled" };
	const char *statuses = NULL;

	if (!status)
		statuses = "{open,assigned}";
	else if (strcmp(status, "all") == 0)
		statuses = "{open,assigned,delivered,cancelled}";
	for (size_t i = 0; !statuses && i < N(known); i++)
		if (strcmp(status, known[i]) == 0)
			statuses = i == 0 ? "{open}" :
				i == 1	  ? "{assigned}" :
				i == 2	  ? "{delivered}" :
					    "{cancelled}";
	if (!statuses) {
		say(errbuf, errlen, "status: expected open, assigned, delivered, cancelled or all");
		return -EINVAL;
	}
	return board(conn, "needs", NEEDS_SQL, sites, site, NULL, NULL, statuses, TEXTARRAYOID, ret,
		     errbuf, errlen);
}
