/* web_api.c - the /api/ routes of docs/web.md, "HTTP API", and their
 * handlers: login, the alerts (list, search, one, ack, resolve, the live
 * stream), the sites, the volunteers and the needs' steps. The boards and
 * the report are web_views.c's. web_http.c has checked the session, the
 * CSRF token, the Origin, the content type and the role before a handler
 * runs. Every statement takes its input as parameters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <microhttpd.h>
#include <sodium.h>

#include "log.h"
#include "normalize.h"
#include "topics.h"
#include "web.h"

#define UTC(x) "to_char(" x " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* An alert row as its MQTT message gives it (docs/alerts.md, "The message"). */
#define ALERT_JSON                                                                                                                             \
	"json_build_object('alert_id', a.alert_id, 'kind', a.kind, 'severity', a.severity,"                                                    \
	" 'state', a.state, 'site', a.site, 'subject', a.subject,"                                                                             \
	" 'raised_at', " UTC("a.raised_at") ", 'updated_at', " UTC(                                                                            \
		"a.updated_at") ","                                                                                                            \
				" 'resolved_at', " UTC(                                                                                        \
					"a.resolved_at") ", 'count', a.count,"                                                                 \
							 " 'event_id', a.event_key, 'gate', a.gate, 'household', a.household, 'card', a.card," \
							 " 'zone', a.zone, 'call_id', a.call_id, 'temp_c', a.temp_c, 'reason', a.reason,"      \
							 " 'by', a.by_whom, 'distinct', a.distinct_subjects,"                                  \
							 " 'sample', string_to_array(a.sample, ' '))::text"

#define SEVERITY_ORDER "CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END"

/* ---- helpers ---- */

static json_t *
body_json(struct web_req *r)
{
	json_t *doc;

	if (!r->body_len)
		return json_object();
	doc = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(doc)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}

static void
now_rfc3339(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);

	snprintf(buf + n, len - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

static void
web_id(char *buf /* 21 */)
{
	unsigned char b[8];

	randombytes_buf(b, sizeof(b));
	memcpy(buf, "web-", 4);
	sodium_bin2hex(buf + 4, 17, b, sizeof(b));
}

/* Publishes `msg` (consumed) on <root>/<site>/<kind> and answers 202 with
 * `answer` (consumed) once the broker took it, 503 otherwise. */
static int
publish(struct web_req *r, enum topic_kind kind, const char *site, json_t *msg, json_t *answer)
{
	char topic[TOPIC_MAX_BYTES];
	char *payload = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	int err;

	json_decref(msg);
	if (!payload ||
	    topics_build(topic, sizeof(topic), r->w->cfg.base.topic_root, kind, site, NULL) < 0) {
		free(payload);
		json_decref(answer);
		return web_reply_error(r, 500, "internal", "cannot build the message");
	}
	err = web_live_publish(r->w->live, topic, payload, WEB_PUBACK_WAIT_MS);
	free(payload);
	if (err < 0) {
		json_decref(answer);
		log_warn("%s from %s: not published on %s (%s)", r->sess.name, r->addr, topic,
			 err == -ENOTCONN	   ? "broker not connected" :
				 err == -ETIMEDOUT ? "no PUBACK in time" :
						     "refused");
		return web_reply_error(r, 503, "unavailable",
				       "the broker did not take it; try again");
	}
	return web_reply_json(r, 202, answer);
}

static json_t *
session_json(const struct web_session *s)
{
	return json_pack("{s:s, s:s, s:O, s:s}", "name", s->name, "role", web_role_name(s->role),
			 "sites", s->sites, "csrf", s->csrf);
}

/* ---- login, logout, me ---- */

static int
api_login(struct web_req *r)
{
	json_t *b = body_json(r);
	const char *name = json_string_value(json_object_get(b, "name"));
	const char *password = json_string_value(json_object_get(b, "password"));
	enum web_login_result res;
	struct web_session s;
	char cookie[65], header[160], retry[24];
	long retry_s = 0;
	int err;

	if (!name || !password || strlen(name) > 256 || strlen(password) > 1024) {
		json_decref(b);
		return web_reply_error(r, 400, "bad_request",
				       "the body must be {\"name\":…,\"password\":…}");
	}
	memset(&s, 0, sizeof(s));
	err = web_login(r->w->db, &r->w->cfg, name, password, r->addr, &res, cookie, &s, &retry_s);
	if (err < 0) {
		json_decref(b);
		return web_reply_db_error(r, err);
	}
	if (res == WEB_LOGIN_LOCKED) {
		log_notice("login of '%.64s' from %s refused: locked out for %ld s more", name,
			   r->addr, retry_s);
		json_decref(b);
		snprintf(retry, sizeof(retry), "%ld", retry_s);
		return web_reply_json_with(r, 429,
					   json_pack("{s:s, s:s}", "error", "locked", "message",
						     "too many failed logins: try again later"),
					   (const char *const[]){ "Retry-After", retry, NULL });
	}
	if (res == WEB_LOGIN_BAD) {
		log_notice("login of '%.64s' from %s failed", web_name_is_valid(name) ? name : "?",
			   r->addr);
		json_decref(b);
		return web_reply_error(r, 401, "bad_login", "unknown name or wrong password");
	}
	log_notice("login of %s (%s) from %s", s.name, web_role_name(s.role), r->addr);
	json_decref(b);
	snprintf(header, sizeof(header), "cordon_session=%s; HttpOnly; SameSite=Strict; Path=/%s",
		 cookie, r->w->cfg.secure_cookies ? "; Secure" : "");
	sodium_memzero(cookie, sizeof(cookie));
	err = web_reply_json_with(r, 200, session_json(&s),
				  (const char *const[]){ "Set-Cookie", header, NULL });
	sodium_memzero(header, sizeof(header));
	web_session_clear(&s);
	return err;
}

static int
api_logout(struct web_req *r)
{
	const char *cookie =
		MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "cordon_session");
	char header[160];
	PGconn *conn;
	int err;

	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	err = web_session_end(conn, cookie ? cookie : "");
	web_db_release(r->w->db, conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	log_info("logout of %s from %s", r->sess.name, r->addr);
	snprintf(header, sizeof(header),
		 "cordon_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0%s",
		 r->w->cfg.secure_cookies ? "; Secure" : "");
	return web_reply_empty(r, 204, (const char *const[]){ "Set-Cookie", header, NULL });
}

static int
api_me(struct web_req *r)
{
	return web_reply_json(r, 200, session_json(&r->sess));
}

/* ---- alerts ---- */

/* The rows' first column (an alert as JSON text) as an array. */
static json_t *
alerts_from(PGresult *res)
{
	json_t *arr = json_array();

	for (int i = 0; arr && i < PQntuples(res); i++) {
		json_t *a = json_loads(PQgetvalue(res, i, 0), 0, NULL);

		if (a)
			json_array_append_new(arr, a);
	}
	return arr;
}

/* The open alerts in PostgreSQL of the session's sites (an array), or
 * NULL when the query failed. */
static json_t *
db_open_alerts(struct web_req *r, PGconn *conn, const char *sites)
{
	PGresult *res = WEB_QUERY(conn, "open alerts",
				  "SELECT " ALERT_JSON " FROM alerts a WHERE a.state <> 'resolved'"
				  "   AND ($1::json IS NULL OR a.site IN"
				  "        (SELECT json_array_elements_text($1::json)))"
				  " ORDER BY " SEVERITY_ORDER ", a.raised_at DESC, a.alert_id"
				  " LIMIT 10000",
				  sites);
	json_t *alerts;

	(void)r;
	if (!res)
		return NULL;
	alerts = alerts_from(res);
	PQclear(res);
	return alerts;
}

/* `db` with each alert of `broker` in place of the row of its id, or added
 * (both arrays are consumed): the broker's retained state is the newer, the
 * database has what a clustered broker keeps on another node (ejabberd
 * keeps a retained message on the node that received it:
 * docs/scaling.md). NULL when out of memory. */
static json_t *
merge_open(json_t *db, json_t *broker)
{
	json_t *by_id = json_object(), *out = json_array(), *a;
	const char *id;
	size_t i;

	if (!by_id || !out)
		goto fail;
	json_array_foreach(db, i, a)
	{
		if ((id = json_string_value(json_object_get(a, "alert_id"))))
			json_object_set(by_id, id, a);
	}
	json_array_foreach(broker, i, a)
	{
		if ((id = json_string_value(json_object_get(a, "alert_id"))))
			json_object_set(by_id, id, a);
	}
	for (void *it = json_object_iter(by_id); it; it = json_object_iter_next(by_id, it))
		json_array_append(out, json_object_iter_value(it));
	json_decref(by_id);
	json_decref(db);
	json_decref(broker);
	web_live_sort_alerts(out);
	return out;
fail:
	json_decref(by_id);
	json_decref(out);
	json_decref(db);
	json_decref(broker);
	return NULL;
}

/* The open alerts of the session: {"source","alerts"}; NULL with *ret_err.
 * Both the broker's retained state and PostgreSQL, merged: "broker" alone
 * while PostgreSQL is away, "database" alone while the broker is. */
static json_t *
open_alerts(struct web_req *r, const char *site, int *ret_err)
{
	json_t *broker = web_live_open_alerts(r->w->live, &r->sess), *alerts, *db = NULL, *kept;
	const char *source = "broker";
	PGconn *conn = NULL;
	char *sites = web_session_sites_param(&r->sess);
	int err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);

	if (err < 0)
		conn = NULL;
	else if (!(db = db_open_alerts(r, conn, sites)))
		err = -EIO;
	free(sites);
	if (!db && !broker) {
		if (conn)
			web_db_release(r->w->db, conn);
		*ret_err = err < 0 ? err : -ENOMEM;
		return NULL;
	}
	if (db && broker) {
		source = "broker+database";
		alerts = merge_open(db, broker);
	} else if (db) {
		source = "database";
		alerts = db;
	} else
		alerts = broker;
	if (site && alerts) {
		size_t i;
		json_t *a;

		kept = json_array();
		json_array_foreach(
			alerts, i,
			a) if (strcmp(json_string_value(json_object_get(a, "site")) ?: "", site) ==
			       0) json_array_append(kept, a);
		json_decref(alerts);
		alerts = kept;
	}
	if (alerts && web_alerts_enrich(conn, alerts, r->w->cfg.base.site_timezone) < 0)
		log_debug("open alerts: without their silences (PostgreSQL failed)");
	if (conn)
		web_db_release(r->w->db, conn);
	if (!alerts) {
		*ret_err = -ENOMEM;
		return NULL;
	}
	return json_pack("{s:s, s:o}", "source", source, "alerts", alerts);
}

static bool
parse_count(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	if (!s)
		return true;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static int
api_alerts(struct web_req *r)
{
	const char *state = web_arg(r, "state"), *site = web_arg(r, "site");
	const char *kind = web_arg(r, "kind"), *subject = web_arg(r, "subject");
	const char *from = web_arg(r, "from"), *to = web_arg(r, "to");
	long limit = 100, offset = 0;
	char lim[24], off[24];
	char *sites;
	PGconn *conn;
	PGresult *res;
	json_t *alerts, *doc;
	int err = 0;

	if (!web_check_id(r, "site", site) || !web_check_id(r, "kind", kind) ||
	    !web_check_date(r, "from", from) || !web_check_date(r, "to", to))
		return MHD_YES;
	if (!web_check_site(r, site))
		return MHD_YES;
	if (!state || strcmp(state, "open") == 0) {
		doc = open_alerts(r, site, &err);
		return doc ? web_reply_json(r, 200, doc) : web_reply_db_error(r, err);
	}
	if (strcmp(state, "all") != 0)
		return web_reply_error(r, 400, "bad_request", "state must be open or all");
	if (subject && strlen(subject) > 256)
		return web_reply_error(r, 400, "bad_request", "subject is longer than 256 bytes");
	if (subject) {
		/* PostgreSQL refuses a parameter that is not UTF-8 (22021):
		 * that is the caller's mistake, not an outage. jansson checks. */
		json_t *t = json_string(subject);

		if (!t)
			return web_reply_error(r, 400, "bad_request", "subject is not UTF-8");
		json_decref(t);
	}
	if (!parse_count(web_arg(r, "limit"), 1, 500, &limit) ||
	    !parse_count(web_arg(r, "offset"), 0, 1000000, &offset))
		return web_reply_error(r, 400, "bad_request",
				       "limit must be 1 to 500, offset 0 to 1000000");
	snprintf(lim, sizeof(lim), "%ld", limit);
	snprintf(off, sizeof(off), "%ld", offset);
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	sites = web_session_sites_param(&r->sess);
	/* Dates are days in the site's zone ([site] timezone for a site
	 * without its own). */
	res = WEB_QUERY(conn, "alerts search",
			"SELECT " ALERT_JSON ", count(*) OVER ()"
			"  FROM alerts a LEFT JOIN sites s ON s.site = a.site"
			" WHERE ($1::json IS NULL OR a.site IN"
			"        (SELECT json_array_elements_text($1::json)))"
			"   AND ($2::text IS NULL OR a.site = $2)"
			"   AND ($3::text IS NULL OR a.kind = $3)"
			"   AND ($4::text IS NULL OR strpos(a.subject, $4) > 0)"
			"   AND ($5::date IS NULL OR a.raised_at >="
			"        ($5::date)::timestamp AT TIME ZONE coalesce(s.timezone, $9))"
			"   AND ($6::date IS NULL OR a.raised_at <"
			"        ($6::date + 1)::timestamp AT TIME ZONE coalesce(s.timezone, $9))"
			" ORDER BY a.raised_at DESC, a.alert_id LIMIT $7::int OFFSET $8::int",
			sites, site, kind, subject, from, to, lim, off,
			r->w->cfg.base.site_timezone);
	free(sites);
	if (!res) {
		web_db_release(r->w->db, conn);
		return web_reply_db_error(r, -EIO);
	}
	alerts = alerts_from(res);
	doc = json_pack("{s:s, s:I, s:o}", "source", "database", "total",
			(json_int_t)(PQntuples(res) ? atoll(PQgetvalue(res, 0, 1)) : 0), "alerts",
			alerts);
	PQclear(res);
	if (alerts && web_alerts_enrich(conn, alerts, r->w->cfg.base.site_timezone) < 0)
		log_debug("alerts search: without their silences");
	web_db_release(r->w->db, conn);
	return web_reply_json(r, 200, doc);
}

static bool
check_alert_id(struct web_req *r, const char *id)
{
	size_t n = strlen(id);

	for (const char *p = id; *p; p++)
		if (!strchr("0123456789abcdefABCDEF_-:.", *p) &&
		    !((*p >= 'g' && *p <= 'z') || (*p >= 'G' && *p <= 'Z')))
			n = 0;
	if (n == 0 || n > 128) {
		web_reply_error(r, 404, "not_found", "no such alert");
		return false;
	}
	return true;
}

static int
api_alert(struct web_req *r)
{
	const char *id = r->seg[1];
	PGconn *conn;
	PGresult *res;
	json_t *alerts, *trans, *acks;
	int err;

	if (!check_alert_id(r, id))
		return MHD_YES;
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	res = WEB_QUERY(conn, "alert", "SELECT " ALERT_JSON " FROM alerts a WHERE a.alert_id = $1",
			id);
	if (!res)
		goto fail;
	alerts = alerts_from(res);
	PQclear(res);
	if (json_array_size(alerts) != 1) {
		json_decref(alerts);
		web_db_release(r->w->db, conn);
		return web_reply_error(r, 404, "not_found", "no such alert");
	}
	if (!web_session_has_site(
		    &r->sess,
		    json_string_value(json_object_get(json_array_get(alerts, 0), "site")))) {
		json_decref(alerts);
		web_db_release(r->w->db, conn);
		return web_reply_error(r, 403, "forbidden", "the alert's site is not yours");
	}
	if (web_alerts_enrich(conn, alerts, r->w->cfg.base.site_timezone) < 0) {
		json_decref(alerts);
		goto fail;
	}
	res = WEB_QUERY(
		conn, "alert transitions",
		"SELECT transition, count, " UTC(
			"at") ", severity, by_whom, reason"
			      "  FROM alert_transitions WHERE alert_id = $1 ORDER BY at, count LIMIT 1000",
		id);
	if (!res) {
		json_decref(alerts);
		goto fail;
	}
	trans = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(
			trans,
			json_pack("{s:s, s:I, s:s, s:s, s:o, s:o}", "transition",
				  PQgetvalue(res, i, 0), "count",
				  (json_int_t)atoll(PQgetvalue(res, i, 1)), "at",
				  PQgetvalue(res, i, 2), "severity", PQgetvalue(res, i, 3), "by",
				  PQgetisnull(res, i, 4) ? json_null() :
							   json_string(PQgetvalue(res, i, 4)),
				  "reason",
				  PQgetisnull(res, i, 5) ? json_null() :
							   json_string(PQgetvalue(res, i, 5))));
	PQclear(res);
	res = WEB_QUERY(
		conn, "alert acks",
		"SELECT by_whom, action, note, " UTC("ts") " FROM acks WHERE alert_id = $1"
							   " ORDER BY ts, received_at LIMIT 1000",
		id);
	if (!res) {
		json_decref(alerts);
		json_decref(trans);
		goto fail;
	}
	acks = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *note = json_null();

		if (!PQgetisnull(res, i, 2)) {
			/* Free text: a phone number in it is masked, as everywhere. */
			char *n = strdup(PQgetvalue(res, i, 2));

			if (n) {
				normalize_mask_digits(n, strlen(n));
				note = json_string(n);
				free(n);
			}
		}
		json_array_append_new(acks,
				      json_pack("{s:s, s:s, s:o, s:s}", "by", PQgetvalue(res, i, 0),
						"action", PQgetvalue(res, i, 1), "note", note, "ts",
						PQgetvalue(res, i, 3)));
	}
	PQclear(res);
	web_db_release(r->w->db, conn);
	{
		json_t *doc = json_pack("{s:O, s:o, s:o}", "alert", json_array_get(alerts, 0),
					"transitions", trans, "acks", acks);

		json_decref(alerts);
		return web_reply_json(r, 200, doc);
	}
fail:
	web_db_release(r->w->db, conn);
	return web_reply_db_error(r, -EIO);
}

static int
ack_or_resolve(struct web_req *r, const char *action)
{
	const char *id = r->seg[1];
	json_t *b = body_json(r), *note = json_object_get(b, "note"), *msg;
	char site[80] = "", ts[40], mid[24];
	bool found = false, resolved = false;
	PGconn *conn;
	int err;

	if (!b || (note && !json_is_string(note) && !json_is_null(note))) {
		json_decref(b);
		return web_reply_error(r, 400, "bad_request", "the body must be {\"note\":\"…\"}");
	}
	if (json_is_string(note) && strlen(json_string_value(note)) > WEB_NOTE_MAX) {
		json_decref(b);
		return web_reply_error(r, 400, "bad_request", "the note is over %d bytes",
				       WEB_NOTE_MAX);
	}
	if (!check_alert_id(r, id)) {
		json_decref(b);
		return MHD_YES;
	}
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err == 0) {
		PGresult *res = WEB_QUERY(conn, "ack: the alert",
					  "SELECT site, state = 'resolved' FROM alerts"
					  " WHERE alert_id = $1",
					  id);

		if (!res)
			err = -EIO;
		else if (PQntuples(res) == 1) {
			snprintf(site, sizeof(site), "%s", PQgetvalue(res, 0, 0));
			resolved = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
			found = !resolved;
		}
		PQclear(res);
		web_db_release(r->w->db, conn);
	}
	if (resolved && web_session_has_site(&r->sess, site)) {
		json_decref(b);
		return web_reply_error(r, 404, "not_found", "alert %s is resolved already", id);
	}
	if (!found && !resolved) {
		/* Not in PostgreSQL: away, or not there yet (cordond publishes
		 * an alert as it raises it and stores it with its next batch,
		 * so a raise seen live can be acked before its row is
		 * committed). The broker's state knows the open alerts. */
		json_t *a = web_live_alert(r->w->live, id);

		if (a) {
			snprintf(site, sizeof(site), "%s",
				 json_string_value(json_object_get(a, "site")) ?: "");
			found = site[0] != '\0';
			json_decref(a);
		}
	}
	if (!found && err < 0 && !resolved) {
		/* Neither PostgreSQL nor the broker's state can say. */
		json_decref(b);
		return web_reply_db_error(r, err);
	}
	if (!found) {
		json_decref(b);
		return web_reply_error(r, 404, "not_found", "no open alert %s", id);
	}
	if (!web_check_site(r, site)) {
		json_decref(b);
		return MHD_YES;
	}
	now_rfc3339(ts, sizeof(ts));
	web_id(mid);
	msg = json_pack("{s:s, s:s, s:s, s:s, s:s}", "alert_id", id, "by", r->sess.name, "action",
			action, "id", mid, "ts", ts);
	if (msg && json_is_string(note))
		json_object_set(msg, "note", note);
	json_decref(b);
	log_notice("%s (%s) %s alert %s of site %s", r->sess.name, r->addr,
		   strcmp(action, "ack") == 0 ? "acknowledges" : "resolves", id, site);
	return publish(r, TOPIC_ACK, site, msg,
		       json_pack("{s:s, s:s}", "alert_id", id, "action", action));
}

static int
api_ack(struct web_req *r)
{
	return ack_or_resolve(r, "ack");
}

static int
api_resolve(struct web_req *r)
{
	return ack_or_resolve(r, "resolve");
}

static int
api_events(struct web_req *r)
{
	int err = 0;
	json_t *snap = open_alerts(r, NULL, &err);
	const char *cookie =
		MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, "cordon_session");
	char *data, *first, key[WEB_SESSION_KEY_LEN];
	struct web_sse *c;

	if (!snap)
		return web_reply_db_error(r, err);
	web_session_key(cookie ? cookie : "", key);
	data = json_dumps(snap, JSON_COMPACT);
	json_decref(snap);
	if (!data || asprintf(&first, "retry: 3000\n\nevent: snapshot\ndata: %s\n\n", data) < 0) {
		free(data);
		return web_reply_error(r, 500, "internal", "out of memory");
	}
	free(data);
	c = web_sse_open(r->w->live, r->sess.sites, key, first);
	free(first);
	if (!c)
		return web_reply_error(r, 500, "internal", "out of memory");
	log_info("live: %s (%s) follows the alerts", r->sess.name, r->addr);
	return web_reply_stream(r, c);
}

/* ---- sites, volunteers, needs' steps ---- */

static int
api_sites(struct web_req *r)
{
	char *sites = web_session_sites_param(&r->sess);
	PGconn *conn;
	PGresult *res;
	json_t *arr;
	int err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);

	if (err < 0) {
		free(sites);
		return web_reply_db_error(r, err);
	}
	res = WEB_QUERY(
		conn, "sites",
		"SELECT site, coalesce(timezone, $2) FROM sites"
		" WHERE $1::json IS NULL OR site IN (SELECT json_array_elements_text($1::json))"
		" ORDER BY site",
		sites, r->w->cfg.base.site_timezone);
	free(sites);
	web_db_release(r->w->db, conn);
	if (!res)
		return web_reply_db_error(r, -EIO);
	arr = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr,
				      json_pack("{s:s, s:s}", "site", PQgetvalue(res, i, 0),
						"timezone", PQgetvalue(res, i, 1)));
	PQclear(res);
	return web_reply_json(r, 200, json_pack("{s:o}", "sites", arr));
}

static int
api_volunteers(struct web_req *r)
{
	const char *site = web_arg(r, "site");
	char *sites;
	PGconn *conn;
	PGresult *res;
	json_t *arr;
	int err;

	if (!web_check_id(r, "site", site) || !web_check_site(r, site))
		return MHD_YES;
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0)
		return web_reply_db_error(r, err);
	sites = web_session_sites_param(&r->sess);
	res = WEB_QUERY(conn, "volunteers",
			"SELECT site, volunteer, team FROM volunteers WHERE active"
			"   AND ($1::json IS NULL OR site IN"
			"        (SELECT json_array_elements_text($1::json)))"
			"   AND ($2::text IS NULL OR site = $2)"
			" ORDER BY site, volunteer LIMIT 10000",
			sites, site);
	free(sites);
	web_db_release(r->w->db, conn);
	if (!res)
		return web_reply_db_error(r, -EIO);
	arr = json_array();
	for (int i = 0; i < PQntuples(res); i++)
		json_array_append_new(arr,
				      json_pack("{s:s, s:s, s:o}", "site", PQgetvalue(res, i, 0),
						"volunteer", PQgetvalue(res, i, 1), "team",
						PQgetisnull(res, i, 2) ?
							json_null() :
							json_string(PQgetvalue(res, i, 2))));
	PQclear(res);
	return web_reply_json(r, 200, json_pack("{s:o}", "volunteers", arr));
}

static int
need_step(struct web_req *r, const char *action)
{
	const char *site = r->seg[1], *need = r->seg[2];
	json_t *b = body_json(r), *msg;
	const char *vol = json_string_value(json_object_get(b, "volunteer"));
	char by[80] = "", ts[40], mid[24], note[100];
	PGconn *conn;
	PGresult *res;
	int err;

	if (!b) {
		return web_reply_error(r, 400, "bad_request", "the body must be a JSON object");
	}
	if (!web_check_id(r, "site", site) || !web_check_id(r, "need", need) ||
	    !web_check_site(r, site)) {
		json_decref(b);
		return MHD_YES;
	}
	if (strcmp(action, "assign") == 0 && (!vol || !web_check_id(r, "volunteer", vol))) {
		if (!vol)
			web_reply_error(r, 400, "bad_request",
					"the body must be {\"volunteer\":\"vol-07\"}");
		json_decref(b);
		return MHD_YES;
	}
	err = web_db_acquire(r->w->db, WEB_DB_WAIT_MS, &conn);
	if (err < 0) {
		json_decref(b);
		return web_reply_db_error(r, err);
	}
	res = WEB_QUERY(conn, "need",
			"SELECT assigned_to FROM needs WHERE site = $1 AND need_id = $2", site,
			need);
	if (res && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		snprintf(by, sizeof(by), "%s", PQgetvalue(res, 0, 0));
	err = !res ? -EIO : PQntuples(res) == 1 ? 0 : -ENOENT;
	PQclear(res);
	if (err == 0 && vol) {
		res = WEB_QUERY(conn, "volunteer",
				"SELECT 1 FROM volunteers WHERE site = $1 AND volunteer = $2"
				"   AND active",
				site, vol);
		err = !res ? -EIO : PQntuples(res) == 1 ? 0 : -EINVAL;
		PQclear(res);
	}
	web_db_release(r->w->db, conn);
	if (err == -EINVAL) {
		int rc = web_reply_error(r, 400, "bad_request", "no active volunteer %s at %s", vol,
					 site);

		json_decref(b);
		return rc;
	}
	if (err < 0) {
		json_decref(b);
		return err == -ENOENT ?
			web_reply_error(r, 404, "not_found", "no need %s at %s", need, site) :
			web_reply_db_error(r, err);
	}
	if (vol)
		snprintf(by, sizeof(by), "%s", vol);
	else if (!by[0])
		snprintf(by, sizeof(by), "%s", r->sess.name);
	now_rfc3339(ts, sizeof(ts));
	web_id(mid);
	snprintf(note, sizeof(note), "by %s", r->sess.name);
	msg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "need_id", need, "id", mid, "action",
			action, "ts", ts, "by", by, "note", note);
	json_decref(b);
	log_notice("%s (%s): need %s of site %s: %s (by %s)", r->sess.name, r->addr, need, site,
		   action, by);
	return publish(r, TOPIC_NEED, site, msg,
		       json_pack("{s:s, s:s}", "need_id", need, "action", action));
}

static int
api_need_assign(struct web_req *r)
{
	return need_step(r, "assign");
}

static int
api_need_deliver(struct web_req *r)
{
	return need_step(r, "deliver");
}

/* The routes (docs/web.md, "HTTP API"; tests/integration/test_web_api.py
 * reads this table and checks it against the document). */
const struct web_route web_routes[] = {
	{ "POST", "/api/login", WEB_ROUTE_PUBLIC | WEB_ROUTE_CHANGE, api_login },
	{ "POST", "/api/logout", WEB_ROUTE_CHANGE, api_logout },
	{ "GET", "/api/me", 0, api_me },
	{ "GET", "/api/alerts", 0, api_alerts },
	{ "GET", "/api/alerts/*", 0, api_alert },
	{ "POST", "/api/alerts/*/ack", WEB_ROUTE_CHANGE | WEB_ROUTE_OPERATOR, api_ack },
	{ "POST", "/api/alerts/*/resolve", WEB_ROUTE_CHANGE | WEB_ROUTE_OPERATOR, api_resolve },
	{ "GET", "/api/events", WEB_ROUTE_STREAM, api_events },
	{ "GET", "/api/sites", 0, api_sites },
	{ "GET", "/api/gates", 0, web_api_gates },
	{ "GET", "/api/zones", 0, web_api_zones },
	{ "GET", "/api/isolation", 0, web_api_isolation },
	{ "GET", "/api/needs", 0, web_api_needs },
	{ "GET", "/api/volunteers", 0, api_volunteers },
	{ "POST", "/api/needs/*/*/assign", WEB_ROUTE_CHANGE | WEB_ROUTE_OPERATOR, api_need_assign },
	{ "POST", "/api/needs/*/*/deliver", WEB_ROUTE_CHANGE | WEB_ROUTE_OPERATOR,
	  api_need_deliver },
	{ "GET", "/api/households/*/*", 0, web_api_household },
	{ "GET", "/api/report", 0, web_api_report },
	{ "GET", "/api/report.csv", 0, web_api_report_csv },
	{ NULL, NULL, 0, NULL },
};
