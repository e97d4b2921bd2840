/* web_views.c - the boards, the household page and the daily report of
 * docs/web.md through include/views.h, the statements cordonctl uses too
 * (so the terminal and the console cannot disagree). This file only
 * checks the parameters, limits to the operator's sites and maps errors
 * to statuses. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "log.h"
#include "views.h"
#include "web.h"

#define ERRLEN 512

/* The session's sites as a NULL-terminated list (NULL: every site);
 * free() the array only (the strings are the session's). */
static const char **
sites_list(const struct web_session *s, bool *ret_oom)
{
	size_t n = json_array_size(s->sites), i;
	const char **list;
	json_t *v;

	*ret_oom = false;
	if (n == 0)
		return NULL;
	list = calloc(n + 1, sizeof(*list));
	if (!list) {
		*ret_oom = true;
		return NULL;
	}
	json_array_foreach(s->sites, i, v) list[i] = json_string_value(v);
	return list;
}

static int
answer(struct web_req *r, PGconn *conn, int err, json_t *doc, const char *what, const char *errbuf)
{
	web_db_release(r->w->db, conn);
	if (err == 0)
		return web_reply_json(r, 200, doc);
	if (err == -EIO)
		log_warn("%s: %s", what, errbuf);
	return web_reply_db_error(r, err);
}

enum board { GATES, ZONES, ISOLATION, NEEDS };

static int
board(struct web_req *r, enum board which)
{
	const char *site = web_arg(r, "site"), *date = web_arg(r, "date");
	const char *status = web_arg(r, "status");
	const char **sites;
	char errbuf[ERRLEN] = "";
	json_t *doc = NULL;
	PGconn *conn;
	bool oom;
	int err;

	if (!web_check_id(r, "site", site) || !web_check_site(r, site) ||
	    !web_check_date(r, "date", date))
		return MHD_YES;
	if (which == NEEDS && status && strcmp(status, "open") != 0 &&
	    strcmp(status, "assigned") != 0 && strcmp(status, "delivered") != 0 &&
	    strcmp(status, "cancelled") != 0 && strcmp(status, "all") != 0)
		return web_reply_error(
			r, 400, "bad_request",
			"status must be open, assigned, delivered, cancelled or all");
	sites = sites_list(&r->sess, &oom);
	if (oom)
		return web_reply_error(r, 500, "internal", "out of memory");
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0) {
		free(sites);
		return web_reply_db_error(r, err);
	}
	switch (which) {
	case GATES:
		err = views_gates_json(conn, sites, site, r->w->cfg.base.site_timezone, &doc,
				       errbuf, sizeof(errbuf));
		break;
	case ZONES:
		err = views_zones_json(conn, sites, site, date, r->w->cfg.base.site_timezone,
				       r->w->cfg.base.disinfection_interval / 1000, &doc, errbuf,
				       sizeof(errbuf));
		break;
	case ISOLATION:
		err = views_isolation_json(conn, sites, site, r->w->cfg.base.site_timezone, &doc,
					   errbuf, sizeof(errbuf));
		break;
	case NEEDS:
		err = views_needs_json(conn, sites, site, status, &doc, errbuf, sizeof(errbuf));
		break;
	}
	free(sites);
	return answer(r, conn, err, doc, "board", errbuf);
}

int
web_api_gates(struct web_req *r)
{
	return board(r, GATES);
}

int
web_api_zones(struct web_req *r)
{
	return board(r, ZONES);
}

int
web_api_isolation(struct web_req *r)
{
	return board(r, ISOLATION);
}

int
web_api_needs(struct web_req *r)
{
	return board(r, NEEDS);
}

int
web_api_household(struct web_req *r)
{
	const char *site = r->seg[1], *hh = r->seg[2];
	char errbuf[ERRLEN] = "";
	json_t *doc = NULL;
	PGconn *conn;
	int err;

	if (!web_check_id(r, "site", site) || !web_check_id(r, "household", hh) ||
	    !web_check_site(r, site))
		return MHD_YES;
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	err = views_household_json(conn, site, hh, r->w->cfg.base.site_timezone, 20, &doc, errbuf,
				   sizeof(errbuf));
	return answer(r, conn, err, doc, "household", errbuf);
}

/* What the report needs from the configuration (as cordonctl's report). */
static void
report_args(struct web_req *r, const char *site, const char *date, struct views_report_args *a,
	    char *fever, size_t fever_len)
{
	const struct config *c = &r->w->cfg.base;

	snprintf(fever, fever_len, "%.1f", c->fever_c);
	memset(a, 0, sizeof(*a));
	a->site = site;
	a->date = date;
	a->default_tz = c->site_timezone;
	a->fever = fever;
	a->topic_root = c->topic_root;
	a->check_interval_s = c->check_interval / 1000;
	a->disinfection_interval_s = c->disinfection_interval / 1000;
}

int
web_api_report(struct web_req *r)
{
	const char *site = web_arg(r, "site"), *date = web_arg(r, "date");
	struct views_report_args a;
	char errbuf[ERRLEN] = "", fever[16];
	json_t *doc = NULL;
	PGconn *conn;
	int err;

	if (!site)
		return web_reply_error(r, 400, "bad_request", "site is required");
	if (!web_check_id(r, "site", site) || !web_check_site(r, site) ||
	    !web_check_date(r, "date", date))
		return MHD_YES;
	report_args(r, site, date, &a, fever, sizeof(fever));
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	err = views_report_json(conn, &a, &doc, errbuf, sizeof(errbuf));
	return answer(r, conn, err, doc, "report", errbuf);
}

int
web_api_report_csv(struct web_req *r)
{
	const char *site = web_arg(r, "site"), *date = web_arg(r, "date");
	struct views_report_args a;
	char errbuf[ERRLEN] = "", fever[16], disp[160];
	char *text = NULL;
	size_t len = 0;
	FILE *out;
	PGconn *conn;
	int err, rc;

	if (!site)
		return web_reply_error(r, 400, "bad_request", "site is required");
	if (!web_check_id(r, "site", site) || !web_check_site(r, site) ||
	    !web_check_date(r, "date", date))
		return MHD_YES;
	report_args(r, site, date, &a, fever, sizeof(fever));
	out = open_memstream(&text, &len);
	if (!out)
		return web_reply_error(r, 500, "internal", "out of memory");
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0) {
		fclose(out);
		free(text);
		return web_reply_db_error(r, err);
	}
	err = views_report_csv(conn, &a, out, errbuf, sizeof(errbuf));
	web_db_release(r->w->db, conn);
	fclose(out);
	if (err < 0) {
		free(text);
		if (err == -EIO)
			log_warn("report csv: %s", errbuf);
		return web_reply_db_error(r, err);
	}
	snprintf(disp, sizeof(disp), "attachment; filename=\"report-%s-%s.csv\"", site,
		 date ? date : "today");
	rc = web_reply_raw(r, 200, "text/csv; charset=utf-8", text, len, disp);
	free(text);
	return rc;
}
