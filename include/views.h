/* views.h - the read side of the people work and the compound, as JSON:
 * the household page, the daily report (and its charts and CSV), the
 * gates, zones, isolation and needs boards. One SQL per section, shared by
 * cordonctl (household, report daily) and cordon-web (docs/web.md, "HTTP
 * API"), so the terminal and the console cannot disagree.
 *
 * Privacy (SPEC 3, docs/topics.md "Event keys and privacy"): phones are
 * shown masked (180****1999), free-text notes with their digit runs
 * masked, names as their first character and one '*' per other one
 * (王五 -> 王*), ID numbers never, not even hashed.
 *
 * Every function takes a connection to a migrated database that the
 * caller owns and does not change it (read-only statements, parameters
 * only). Times in JSON are RFC 3339 UTC strings, temperatures numbers in
 * °C. Errors: -ENOENT (no such site / household), -EINVAL (a bad
 * argument: a date not YYYY-MM-DD), -EIO (PostgreSQL failed: the message
 * is in errbuf, the connection may be broken: PQstatus tells), -ENOMEM. */
#ifndef CORDON_VIEWS_H
#define CORDON_VIEWS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>

/* What the report's statements need from the configuration. */
struct views_report_args {
	const char *site;		   /* NULL: every site (CSV only; JSON needs one) */
	const char *date;		   /* "YYYY-MM-DD" in the site's zone; NULL: today there */
	const char *default_tz;		   /* [site] timezone, for sites without their own */
	const char *fever;		   /* [rules] fever_c as text, "37.3" */
	const char *topic_root;		   /* [mqtt] topic_root, for rejects' topics */
	long long check_interval_s;	   /* [rules] check_interval */
	long long disinfection_interval_s; /* [rules] disinfection_interval */
};

/* The household page: what `cordonctl household S H --json` prints
 * ({"site","household","building","unit","room","size","phone"
 * (masked),"timezone","residents":{"total","items"},"cards":…,
 * "isolation_orders":{"total","active","items"},"isolation_checks",
 * "welfare_calls","needs":{…,"open"},"dropoffs","passes","alerts":{…,
 * "open"}}), each list its newest `last` rows (1..1000). *ret_page is a
 * new reference. */
int views_household_json(PGconn *conn, const char *site, const char *household,
			 const char *default_tz, int last, json_t **ret_page, char *errbuf,
			 size_t errlen) __attribute__((warn_unused_result));

/* The daily report of one site (args->site required):
 * {"site","date","timezone","sections":[{"name","title","columns":[…],
 * "rows":[[…],…]}],"charts":{"passes_per_hour":[24 ints],
 * "fevers_per_hour":[24 ints],"temperatures":[{"temp_c","n"}] (one per
 * 0.1 °C that had readings, 30.0..45.0),"disinfections":[{"zone","done",
 * "due"}]}}. The sections are those of `cordonctl report daily`, in its
 * order, with its names and titles. */
int views_report_json(PGconn *conn, const struct views_report_args *args, json_t **ret_report,
		      char *errbuf, size_t errlen) __attribute__((warn_unused_result));

/* The daily report as CSV, written to `out` (every site when args->site
 * is NULL): byte for byte what `cordonctl report daily --csv` prints. */
int views_report_csv(PGconn *conn, const struct views_report_args *args, FILE *out, char *errbuf,
		     size_t errlen) __attribute__((warn_unused_result));

/* The boards of docs/web.md, each {"<name>":[…]} with the fields listed
 * there. `sites` limits them to those sites (NULL-terminated; NULL: every
 * site); `site` to one (NULL: all of `sites`); `date` as above (zones);
 * `status` of needs: "open", "assigned", "delivered", "cancelled", "all"
 * or NULL (open and assigned). What each field means, e.g. fevers_today
 * (the fever alerts raised that day at the gate: these take no threshold),
 * is in docs/web.md under the table. */
int views_gates_json(PGconn *conn, const char *const *sites, const char *site,
		     const char *default_tz, json_t **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
int views_zones_json(PGconn *conn, const char *const *sites, const char *site, const char *date,
		     const char *default_tz, long long disinfection_interval_s, json_t **ret,
		     char *errbuf, size_t errlen) __attribute__((warn_unused_result));
int views_isolation_json(PGconn *conn, const char *const *sites, const char *site,
			 const char *default_tz, json_t **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
int views_needs_json(PGconn *conn, const char *const *sites, const char *site, const char *status,
		     json_t **ret, char *errbuf, size_t errlen) __attribute__((warn_unused_result));

/* ---- What cordonctl's text forms share (the JSON functions use them too). */

/* Rows a board gives at most (its newest or most urgent first). */
#define VIEWS_BOARD_MAX 5000
/* Sites a `sites` list may hold, and bytes of one (longer: -EINVAL). */
#define VIEWS_SITES_MAX 1000
#define VIEWS_SITE_MAX 256

/* Whether `s` is shaped YYYY-MM-DD (digits and dashes; PostgreSQL judges
 * the calendar: 2026-02-31 gives -EINVAL from the functions). */
bool views_is_date(const char *s);

/* Masking, as every view shows people (the comment at the top): a phone
 * or a note with its digit runs masked, 138-1234-5678 and 138 1234 5678
 * too (in place, s NUL-terminated); a name as its first character and a
 * '*' per other one, into buf (len bytes, cut at a whole character; buf
 * returned). */
void views_mask_text(char *s);
const char *views_masked_name(const char *name, char *buf, size_t len);
/* Columns shown masked by views_mask_text(): "phone" and "note". ("name"
 * is shown by views_masked_name().) */
bool views_is_masked_column(const char *column);

/* One section of the household page: its JSON member, its heading, how
 * many columns are shown, and what its `open` column counts (NULL: none).
 * Each result gives the ncols shown columns, then `total` (rows in all)
 * and, with open_word, `open`. */
struct views_section {
	const char *key;
	const char *title;
	int ncols;
	const char *open_word;
	const char *sql;
};
#define VIEWS_HOUSEHOLD_NSECTIONS 9
extern const struct views_section views_household_sections[VIEWS_HOUSEHOLD_NSECTIONS];

/* The household's row: building, unit, room, size, phone (unmasked: the
 * caller masks it), timezone (its site's, else default_tz). -ENOENT when
 * there is no such household. *ret_head: PQclear it. */
int views_household_head(PGconn *conn, const char *site, const char *household,
			 const char *default_tz, PGresult **ret_head, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
/* One section's rows: times in zone `tz` as to_char() format `timefmt`,
 * the newest `last` (1..1000) of the lists. *ret: PQclear it. */
int views_household_section(PGconn *conn, const struct views_section *section, const char *site,
			    const char *household, const char *tz, const char *timefmt, int last,
			    PGresult **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
/* The `total` and `open` of a section's result (0 when it has no rows). */
void views_section_counts(const struct views_section *section, PGresult *res, long *ret_total,
			  long *ret_open);

/* The daily report's sections, in order: name (CSV, JSON), title (text
 * heading, JSON). */
struct views_report_section {
	const char *name;
	const char *title;
	const char *sql;
};
#define VIEWS_REPORT_NSECTIONS 11
extern const struct views_report_section views_report_sections[VIEWS_REPORT_NSECTIONS];

/* The report's day of each site (args->site: that one; -ENOENT when it
 * does not exist), by site: columns site, timezone, date, start, end (the
 * day's bounds as timestamptz text). -EINVAL for a date not YYYY-MM-DD.
 * *ret_days: PQclear it. */
int views_report_days(PGconn *conn, const struct views_report_args *args, PGresult **ret_days,
		      char *errbuf, size_t errlen) __attribute__((warn_unused_result));
/* Section `i` of the report of row `row` of views_report_days()'s result.
 * *ret: PQclear it. */
int views_report_section(PGconn *conn, const struct views_report_args *args, PGresult *days,
			 int row, size_t i, PGresult **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));

#endif
