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
	const char *site;	     /* NULL: every site (CSV only; JSON needs one) */
	const char *date;	     /* "YYYY-MM-DD" in the site's zone; NULL: today there */
	const char *default_tz;	     /* [site] timezone, for sites without their own */
	const char *fever;	     /* [rules] fever_c as text, "37.3" */
	const char *topic_root;	     /* [mqtt] topic_root, for rejects' topics */
	long long check_interval_s;  /* [rules] check_interval */
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
 * or NULL (open and assigned). */
int views_gates_json(PGconn *conn, const char *const *sites, const char *site,
		     const char *default_tz, json_t **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
int views_zones_json(PGconn *conn, const char *const *sites, const char *site, const char *date,
		     const char *default_tz, long long disinfection_interval_s, json_t **ret,
		     char *errbuf, size_t errlen) __attribute__((warn_unused_result));
int views_isolation_json(PGconn *conn, const char *const *sites, const char *site,
			 const char *default_tz, json_t **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));
int views_needs_json(PGconn *conn, const char *const *sites, const char *site,
		     const char *status, json_t **ret, char *errbuf, size_t errlen)
	__attribute__((warn_unused_result));

#endif
