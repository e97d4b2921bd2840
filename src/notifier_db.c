/* notifier_db.c - cordon-notify's state in PostgreSQL (notifier_db.h).
 *
 * Routing (docs/notify.md, "Routing" and "Lifecycle"): an alert goes to
 * every route that matches it, or to [route.default] when none does. Per
 * alert and route, notify_alerts keeps where it stands. A raise queues one
 * notification per receiver of the route, unless a silence holds it; an
 * ack stops the clocks; a resolve queues a resolved notice to every
 * receiver that was told. Notifications of one route, receiver and
 * transition share a message: the first one of a quiet spell leaves at
 * once, the next ones wait until group_wait after the one before, and go
 * together.
 *
 * All SQL is parameterized. */
#include "notifier_db.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include <xxhash.h>
#include "strbuf.h"

#define ROUTE_BATCH 200
#define TIMER_BATCH 500

static void
set_error(PGconn *c, PGresult *res, const char *what, char *err)
{
	char text[200];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	db_error_text(c, res, text, sizeof(text));
	snprintf(err, NOTIFIER_ERR_LEN, "%s: %s%s%s%s", what, text, state ? " (SQLSTATE " : "",
		 state ? state : "", state ? ")" : "");
}

static PGresult *
vrun(PGconn *c, char *err, const char *what, const char *sql, int n, va_list ap)
{
	const char *params[12];
	PGresult *res;
	ExecStatusType st;

	for (int i = 0; i < n && i < 12; i++)
		params[i] = va_arg(ap, const char *);
	res = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
		return res;
	set_error(c, res, what, err);
	PQclear(res);
	return NULL;
}

/* Runs `sql` with `n` (at most 12) text parameters; returns the result
 * (tuples or command OK) or NULL with `err` set. */
static PGresult *
run(PGconn *c, char *err, const char *what, const char *sql, int n, ...)
{
	va_list ap;
	PGresult *res;

	va_start(ap, n);
	res = vrun(c, err, what, sql, n, ap);
	va_end(ap);
	return res;
}

/* run() for a statement whose result is not needed: 0 or -1. */
static int
run_ok(PGconn *c, char *err, const char *what, const char *sql, int n, ...)
{
	va_list ap;
	PGresult *res;

	va_start(ap, n);
	res = vrun(c, err, what, sql, n, ap);
	va_end(ap);
	PQclear(res);
	return res ? 0 : -1;
}

static void
rollback(PGconn *c)
{
	PQclear(PQexec(c, "ROLLBACK"));
}

int
notifier_db_inbox_add(PGconn *c, const char *payload, size_t len, const struct notifier_alert *a,
		      char *err)
{
	char count[24], *doc = strndup(payload, len);
	PGresult *res;
	int added;

	if (!doc) {
		snprintf(err, NOTIFIER_ERR_LEN, "out of memory");
		return -1;
	}
	snprintf(count, sizeof(count), "%" PRId64, a->count);
	res = run(c, err, "inbox",
		  "INSERT INTO notify_inbox (alert_id, transition, count, site, kind, alert)"
		  " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
		  6, a->alert_id, a->transition, count, a->site, a->kind, doc);
	free(doc);
	if (!res)
		return -1;
	added = atoi(PQcmdTuples(res)) == 1;
	PQclear(res);
	return added;
}

int
notifier_db_reject_add(PGconn *c, const char *topic, const char *payload, size_t len,
		       const char *why, char *err)
{
	XXH128_hash_t h;
	XXH3_state_t *st = XXH3_createState();
	char key[48], plen[24];
	size_t keep = len > NOTIFIER_REJECT_MAX ? NOTIFIER_REJECT_MAX : len;
	const char *params[6];
	const int lengths[6] = { 0, 0, 0, 0, (int)keep, 0 };
	const int formats[6] = { 0, 0, 0, 0, 1, 0 };
	PGresult *res;
	int rc = -1;

	if (!st) {
		snprintf(err, NOTIFIER_ERR_LEN, "out of memory");
		return -1;
	}
	XXH3_128bits_reset(st);
	XXH3_128bits_update(st, topic, strlen(topic) + 1);
	XXH3_128bits_update(st, payload, len);
	h = XXH3_128bits_digest(st);
	XXH3_freeState(st);
	snprintf(key, sizeof(key), "notify-%016" PRIx64 "%016" PRIx64, (uint64_t)h.high64,
		 (uint64_t)h.low64);
	snprintf(plen, sizeof(plen), "%zu", len);
	params[0] = key;
	params[1] = topic;
	params[2] = "not_alert";
	params[3] = why;
	params[4] = payload;
	params[5] = plen;
	res = PQexecParams(c,
			   "INSERT INTO rejects (reject_key, received_at, topic, reason, detail,"
			   " payload, payload_len) VALUES ($1, now(), $2, $3, $4, $5, $6)"
			   " ON CONFLICT DO NOTHING",
			   6, NULL, params, lengths, formats, 0);
	if (PQresultStatus(res) == PGRES_COMMAND_OK)
		rc = atoi(PQcmdTuples(res)) == 1;
	else
		set_error(c, res, "reject", err);
	PQclear(res);
	return rc;
}

static const char *
interval(int64_t ms, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRId64 " milliseconds", ms);
	return buf;
}

/* Queues one notification: `alert` (its JSON text) in the grouping
 * message of (route, receiver, transition), or in a new message due at
 * once or group_wait after the previous one. */
static int
queue(PGconn *c, const struct route *rt, const struct receiver *r, const char *transition,
      const char *alert_id, const char *alert, char *err)
{
	char wait[40];
	PGresult *res;
	const char *id;
	int rc;

	res = run(c, err, "group",
		  "SELECT id FROM notify_messages WHERE route = $1 AND receiver = $2"
		  " AND transition = $3 AND status = 'pending' AND attempts = 0"
		  " AND send_after > clock_timestamp() ORDER BY id DESC LIMIT 1 FOR UPDATE",
		  3, rt->name, r->name, transition);
	if (!res)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = run(c, err, "message",
			  "INSERT INTO notify_messages (route, receiver, transition, send_after,"
			  " next_attempt_at) SELECT $1, $2, $3, t, t FROM (SELECT GREATEST("
			  "clock_timestamp(), (SELECT max(send_after) FROM notify_messages"
			  " WHERE route = $1 AND receiver = $2 AND transition = $3)"
			  " + $4::interval) AS t) x RETURNING id",
			  4, rt->name, r->name, transition,
			  interval(rt->group_wait, wait, sizeof(wait)));
		if (!res)
			return -1;
	}
	id = PQgetvalue(res, 0, 0);
	rc = run_ok(c, err, "item",
		    "INSERT INTO notify_items (message_id, alert_id, transition, alert)"
		    " VALUES ($1, $2, $3, $4) ON CONFLICT (message_id, alert_id)"
		    " DO UPDATE SET alert = EXCLUDED.alert",
		    4, id, alert_id, transition, alert);
	PQclear(res);
	return rc;
}

/* Queues to every receiver of a level: 0 the route's receivers, 1 also
 * its escalate_to. Returns how many, or -1. */
static int
queue_level(PGconn *c, const struct notifier_config *nc, const struct route *rt, int level,
	    const char *transition, const char *alert_id, const char *alert, char *err)
{
	int n = 0;

	for (size_t i = 0; i < rt->nreceivers; i++, n++)
		if (queue(c, rt, &nc->receivers[rt->receivers[i]], transition, alert_id, alert,
			  err) < 0)
			return -1;
	for (size_t i = 0; level > 0 && i < rt->nescalate_to; i++, n++)
		if (queue(c, rt, &nc->receivers[rt->escalate_to[i]], transition, alert_id, alert,
			  err) < 0)
			return -1;
	return n;
}

/* The resolved notice: to every receiver that got this alert's raise,
 * update, reminder or escalation on this route. */
static int
queue_resolved(PGconn *c, const struct notifier_config *nc, const struct route *rt,
	       const char *alert_id, const char *alert, char *err)
{
	PGresult *res = run(c, err, "told",
			    "SELECT DISTINCT m.receiver FROM notify_items i JOIN notify_messages m"
			    " ON m.id = i.message_id WHERE i.alert_id = $1 AND m.route = $2"
			    " AND m.transition <> 'resolved'",
			    2, alert_id, rt->name);
	int n = 0;

	if (!res)
		return -1;
	for (int row = 0; row < PQntuples(res); row++) {
		const char *name = PQgetvalue(res, row, 0);

		for (size_t i = 0; i < nc->nreceivers; i++)
			if (strcmp(nc->receivers[i].name, name) == 0) {
				if (queue(c, rt, &nc->receivers[i], "resolved", alert_id, alert,
					  err) < 0) {
					PQclear(res);
					return -1;
				}
				n++;
			}
	}
	PQclear(res);
	return n;
}

/* An ack or resolve takes the alert out of the reminders and escalations
 * still grouping (not yet taken by the sender: it skips the rows locked
 * here), and drops those left empty. */
static int
withdraw_reminders(PGconn *c, const struct route *rt, const char *alert_id, char *err)
{
	if (run_ok(c, err, "withdraw",
		   "DELETE FROM notify_items WHERE alert_id = $1 AND message_id IN"
		   " (SELECT id FROM notify_messages WHERE route = $2 AND status = 'pending'"
		   " AND attempts = 0 AND transition IN ('remind', 'escalate') FOR UPDATE)",
		   2, alert_id, rt->name) < 0)
		return -1;
	return run_ok(c, err, "withdraw empty",
		      "DELETE FROM notify_messages m WHERE route = $1 AND status = 'pending'"
		      " AND attempts = 0 AND transition IN ('remind', 'escalate')"
		      " AND NOT EXISTS (SELECT 1 FROM notify_items i WHERE i.message_id = m.id)",
		      1, rt->name);
}

static int
severity_rank(const char *s)
{
	return strcmp(s, "critical") == 0 ? 2 : strcmp(s, "warning") == 0 ? 1 : 0;
}

/* One alert transition on one route. */
static int
route_one(PGconn *c, const struct notifier_config *nc, const struct route *rt,
	  const struct notifier_alert *a, const char *alert, struct notifier_db_counts *counts,
	  char *err)
{
	char remind[40], esc[40];
	PGresult *res;
	bool exists, told = false;
	int level = 0, n = 0;
	char old_sev[16] = "", old_state[16] = "";
	const char *state = a->state;

	res = run(c, err, "alert state",
		  "SELECT told, level, severity, state FROM notify_alerts"
		  " WHERE alert_id = $1 AND route = $2 FOR UPDATE",
		  2, a->alert_id, rt->name);
	if (!res)
		return -1;
	exists = PQntuples(res) == 1;
	if (exists) {
		told = PQgetvalue(res, 0, 0)[0] == 't';
		level = atoi(PQgetvalue(res, 0, 1));
		snprintf(old_sev, sizeof(old_sev), "%s", PQgetvalue(res, 0, 2));
		snprintf(old_state, sizeof(old_state), "%s", PQgetvalue(res, 0, 3));
	}
	PQclear(res);
	interval(rt->remind_every, remind, sizeof(remind));
	interval(rt->escalate_after, esc, sizeof(esc));

	if (!exists) {
		/* A raise; or the first we hear of an alert raised before we
		 * ran (an update or ack): told as a raise while it is open. */
		bool open = strcmp(a->state, "raised") == 0;

		res = run(
			c, err, "alert",
			"INSERT INTO notify_alerts (alert_id, route, site, kind, subject, severity,"
			" state, alert, first_at, told, silence_id, next_remind_at, escalate_at)"
			" SELECT $1, $2, $3, $4, $5, $6, $7, $8, now(), $9 AND s IS NULL, s,"
			" CASE WHEN $9 AND s IS NULL AND $7 = 'raised' AND $10::interval > '0'"
			" THEN now() + $10::interval END,"
			" CASE WHEN $9 AND s IS NULL AND $7 = 'raised' AND $11::interval > '0'"
			" THEN now() + $11::interval END"
			" FROM (SELECT silence_match($3, $4, $5, now()) AS s) x"
			" RETURNING told, silence_id IS NOT NULL",
			11, a->alert_id, rt->name, a->site, a->kind, a->subject, a->severity,
			a->state, alert, open ? "true" : "false", remind, esc);
		if (!res)
			return -1;
		told = PQgetvalue(res, 0, 0)[0] == 't';
		if (PQgetvalue(res, 0, 1)[0] == 't')
			counts->held++;
		PQclear(res);
		if (told) {
			n = queue_level(c, nc, rt, 0, "raised", a->alert_id, alert, err);
			if (n < 0)
				return -1;
		}
		counts->queued += (uint64_t)n;
		return 0;
	}
	if (strcmp(old_state, "resolved") == 0)
		return 0; /* nothing follows a resolve */
	/* Nothing undoes an ack: an update that left cordond before it (a
	 * broker's late delivery, or one taken from PostgreSQL first) is
	 * applied as acked. */
	if (strcmp(old_state, "acked") == 0 && strcmp(state, "raised") == 0)
		state = "acked";
	if (run_ok(c, err, "alert update",
		   "UPDATE notify_alerts SET alert = $3, severity = $4, state = $5,"
		   " next_remind_at = CASE WHEN $5 = 'raised' THEN next_remind_at END,"
		   " escalate_at = CASE WHEN $5 = 'raised' THEN escalate_at END"
		   " WHERE alert_id = $1 AND route = $2",
		   5, a->alert_id, rt->name, alert,
		   severity_rank(a->severity) > severity_rank(old_sev) ? a->severity : old_sev,
		   state) < 0)
		return -1;
	if (strcmp(state, "raised") != 0 && withdraw_reminders(c, rt, a->alert_id, err) < 0)
		return -1;
	if (strcmp(a->transition, "resolved") == 0 && told)
		n = queue_resolved(c, nc, rt, a->alert_id, alert, err);
	else if (strcmp(a->transition, "updated") == 0 && told && strcmp(state, "raised") == 0 &&
		 severity_rank(a->severity) > severity_rank(old_sev))
		n = queue_level(c, nc, rt, level, "updated", a->alert_id, alert, err);
	if (n < 0)
		return -1;
	counts->queued += (uint64_t)n;
	return 0;
}

static const struct route *route_named(const struct notifier_config *nc, const char *name);

/* A route that took an alert follows it to its end, whatever it matches
 * now: the alert's rows of routes that did not match this transition
 * (an alert a `severities = warning` route took, critical since; a route
 * whose filters a SIGHUP changed) or that are no longer in the
 * configuration (renamed or removed) get it too, so an ack or resolve
 * stops their clocks, and a resolve is told to the receivers they told.
 * matched[nc->nroutes]: the routes that took it already. */
static int
route_held(PGconn *c, const struct notifier_config *nc, const bool *matched,
	   const struct notifier_alert *a, const char *alert, struct notifier_db_counts *counts,
	   char *err)
{
	PGresult *res = run(c, err, "routes holding the alert",
			    "SELECT route FROM notify_alerts WHERE alert_id = $1"
			    " AND state <> 'resolved'",
			    1, a->alert_id);

	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++) {
		struct route gone = { .name = PQgetvalue(res, i, 0) };
		const struct route *rt = route_named(nc, gone.name);

		if (rt && matched[rt - nc->routes])
			continue;
		if (route_one(c, nc, rt ? rt : &gone, a, alert, counts, err) < 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return 0;
}

int
notifier_db_route(PGconn *c, const struct notifier_config *nc, struct notifier_db_counts *counts,
		  int *ret_more, char *err)
{
	struct notifier_db_counts k = { 0 };
	PGresult *rows;
	int nrows;
	/* the routes that took the alert of the row at hand */
	bool *took = calloc(nc->nroutes ? nc->nroutes : 1, sizeof(*took));

	*ret_more = 0;
	if (!took) {
		snprintf(err, NOTIFIER_ERR_LEN, "out of memory");
		return -1;
	}
	if (run_ok(c, err, "begin", "BEGIN", 0) < 0) {
		free(took);
		return -1;
	}
	rows = run(c, err, "inbox",
		   "SELECT seq, alert::text FROM notify_inbox WHERE routed_at IS NULL"
		   " ORDER BY seq LIMIT 200 FOR UPDATE SKIP LOCKED",
		   0);
	if (!rows)
		goto fail;
	nrows = PQntuples(rows);
	for (int i = 0; i < nrows; i++) {
		const char *seq = PQgetvalue(rows, i, 0), *alert = PQgetvalue(rows, i, 1);
		json_t *doc = json_loads(alert, 0, NULL);
		struct notifier_alert a;
		bool matched = false;

		memset(took, 0, (nc->nroutes ? nc->nroutes : 1) * sizeof(*took));

		if (!doc || notifier_alert_from_json(doc, &a) < 0) {
			k.bad++; /* checked on the way in: cannot happen but by hand */
		} else {
			for (size_t r = 0; r < nc->nroutes; r++) {
				const struct route *rt = &nc->routes[r];

				if (strcmp(rt->name, "default") == 0 && matched)
					continue;
				if (!notifier_route_matches(rt, a.site, a.kind, a.severity,
							    a.subject))
					continue;
				matched = true;
				took[r] = true;
				if (route_one(c, nc, rt, &a, alert, &k, err) < 0) {
					json_decref(doc);
					PQclear(rows);
					goto fail;
				}
			}
			if (!matched)
				k.unrouted++;
			if (strcmp(a.transition, "raised") != 0 &&
			    route_held(c, nc, took, &a, alert, &k, err) < 0) {
				json_decref(doc);
				PQclear(rows);
				goto fail;
			}
		}
		json_decref(doc);
		if (run_ok(c, err, "routed",
			   "UPDATE notify_inbox SET routed_at = now() WHERE seq = $1", 1,
			   seq) < 0) {
			PQclear(rows);
			goto fail;
		}
		k.routed++;
	}
	PQclear(rows);
	if (run_ok(c, err, "commit", "COMMIT", 0) < 0)
		goto fail;
	counts->routed += k.routed;
	counts->unrouted += k.unrouted;
	counts->queued += k.queued;
	counts->held += k.held;
	counts->bad += k.bad;
	*ret_more = nrows == ROUTE_BATCH;
	free(took);
	return 0;
fail:
	free(took);
	rollback(c);
	return -1;
}

/* The transitions reconciled, in counts->reconciled's order. */
static const char *const reconciled_names[4] = { "raised", "acked", "updated", "resolved" };

/* How far back an open alert unknown here is looked for: less than the
 * shortest retention ([site] retention_days = 1), which removes the inbox
 * rows that say we had it. */
#define RECONCILE_HORIZON "12 hours"

#define SEVERITY_RANK(x) "CASE " x " WHEN 'critical' THEN 2 WHEN 'warning' THEN 1 ELSE 0 END"

int
notifier_db_reconcile(PGconn *c, int64_t after_ms, struct notifier_db_counts *counts, char *first,
		      size_t len, char *err)
{
	char after[40];
	PGresult *res;
	int n;

	first[0] = '\0';
	interval(after_ms, after, sizeof(after));
	/* One statement, one snapshot: `lost` is what is missing now; the
	 * ones missing since a pass at least after_ms ago (notify_lost, as
	 * that snapshot sees it) go into the inbox; notify_lost becomes
	 * `lost`. Times are PostgreSQL's now(), never an alert's own times,
	 * which are rule times: an update held by repeat_interval is stored
	 * with the time of its trigger, a minute before it is published.
	 * notify_lost is keyed without the count, which grows while an alert
	 * keeps triggering; the inbox key takes the count of cordond's own
	 * transition (alert_transitions: what its message carried), so that
	 * message, come late, is a duplicate. */
	res = run(
		c, err, "reconcile",
		"WITH lost AS ("
		/* open, raised since our first start, never heard of */
		" SELECT a, 'raised' AS tr FROM alerts a"
		"  WHERE a.state <> 'resolved'"
		/* no `since` (its INSERT refused): nothing of this kind */
		"    AND a.raised_at >= (SELECT since FROM notify_reconcile)"
		"    AND a.raised_at >= now() - '" RECONCILE_HORIZON "'::interval"
		"    AND NOT EXISTS (SELECT 1 FROM notify_inbox i WHERE i.alert_id = a.alert_id)"
		" UNION ALL"
		/* held open here (driven by the index of those, never a scan
		   * of `alerts`), moved on there, nothing of it waiting */
		" SELECT a, tr FROM (SELECT DISTINCT ON (a.alert_id) a,"
		"   CASE a.state WHEN 'resolved' THEN 'resolved' WHEN 'acked' THEN 'acked'"
		"   ELSE 'updated' END AS tr"
		"  FROM notify_alerts na JOIN alerts a ON a.alert_id = na.alert_id"
		"  WHERE na.state <> 'resolved'"
		"    AND (a.state = 'resolved' OR (a.state = 'acked' AND na.state = 'raised')"
		"     OR (a.state = 'raised' AND na.state = 'raised'"
		"      AND " SEVERITY_RANK("a.severity") " > " SEVERITY_RANK(
			"na.severity") "))"
				       "    AND NOT EXISTS (SELECT 1 FROM notify_inbox i WHERE i.alert_id = a.alert_id"
				       "     AND i.routed_at IS NULL)"
				       "  ORDER BY a.alert_id) moved),"
				       " gone AS (DELETE FROM notify_lost l WHERE NOT EXISTS (SELECT 1 FROM lost"
				       "   WHERE (a).alert_id = l.alert_id AND tr = l.transition)),"
				       " seen AS (INSERT INTO notify_lost (alert_id, transition, seen_at)"
				       "   SELECT (a).alert_id, tr, now() FROM lost ON CONFLICT DO NOTHING)"
				       " INSERT INTO notify_inbox (alert_id, transition, count, site, kind, alert)"
				       " SELECT (a).alert_id, tr, coalesce((SELECT max(t.count) FROM alert_transitions t"
				       "   WHERE t.alert_id = (a).alert_id AND t.transition = tr), (a).count),"
				       "   (a).site, (a).kind, alert_message(a, tr)"
				       "   FROM lost JOIN notify_lost l ON (a).alert_id = l.alert_id AND tr = l.transition"
				       "  WHERE l.seen_at <= now() - $1::interval"
				       " ORDER BY l.seen_at"
				       " ON CONFLICT DO NOTHING RETURNING alert_id, transition",
		1, after);
	if (!res)
		return -1;
	n = PQntuples(res);
	for (int i = 0; i < n; i++) {
		const char *tr = PQgetvalue(res, i, 1);

		for (int t = 0; t < 4; t++)
			if (strcmp(tr, reconciled_names[t]) == 0)
				counts->reconciled[t]++;
		if (i == 0)
			snprintf(first, len, "%s %s", PQgetvalue(res, i, 0), tr);
	}
	PQclear(res);
	return n;
}

int
notifier_db_reconcile_since(PGconn *c, char *err)
{
	return run_ok(c, err, "reconcile start",
		      "INSERT INTO notify_reconcile DEFAULT VALUES ON CONFLICT DO NOTHING", 0);
}

static const struct route *
route_named(const struct notifier_config *nc, const char *name)
{
	for (size_t i = 0; i < nc->nroutes; i++)
		if (strcmp(nc->routes[i].name, name) == 0)
			return &nc->routes[i];
	return NULL;
}

int
notifier_db_timers(PGconn *c, const struct notifier_config *nc, struct notifier_db_counts *counts,
		   char *err)
{
	PGresult *rows;
	char remind[40], esc[40], give_up[40];
	struct strbuf names = { 0 };
	char *list;

	/* Messages of a receiver removed from the file (SIGHUP): no sender
	 * takes them, so give_up_after is applied here. Receiver names are
	 * [A-Za-z0-9_-] (notifier_config.c), safe in an array literal. */
	strbuf_puts(&names, "{");
	for (size_t i = 0; i < nc->nreceivers; i++)
		strbuf_printf(&names, "%s\"%s\"", i ? "," : "", nc->receivers[i].name);
	strbuf_puts(&names, "}");
	if (strbuf_take(&names, &list) < 0) {
		snprintf(err, NOTIFIER_ERR_LEN, "out of memory");
		return -1;
	}
	rows = run(c, err, "give up orphans",
		   "UPDATE notify_messages SET status = 'failed' WHERE status IN ('pending',"
		   " 'sending') AND created_at < now() - $2::interval"
		   " AND NOT (receiver = ANY ($1::text[]))",
		   2, list, interval(nc->give_up_after, give_up, sizeof(give_up)));
	free(list);
	if (!rows)
		return -1;
	counts->orphans_given_up += (uint64_t)atoll(PQcmdTuples(rows));
	PQclear(rows);

	if (run_ok(c, err, "begin", "BEGIN", 0) < 0)
		return -1;
	/* Raises held by a silence that no longer holds them. */
	rows = run(c, err, "held",
		   "SELECT alert_id, route, alert::text FROM notify_alerts"
		   " WHERE state = 'raised' AND NOT told AND silence_id IS NOT NULL"
		   " AND silence_match(site, kind, subject, now()) IS NULL"
		   " LIMIT 500 FOR UPDATE SKIP LOCKED",
		   0);
	if (!rows)
		goto fail;
	for (int i = 0; i < PQntuples(rows); i++) {
		const char *id = PQgetvalue(rows, i, 0), *alert = PQgetvalue(rows, i, 2);
		const struct route *rt = route_named(nc, PQgetvalue(rows, i, 1));
		int n;

		if (!rt)
			continue; /* a route gone from the config: its alerts wait for it */
		if (run_ok(c, err, "release",
			   "UPDATE notify_alerts SET told = true, silence_id = NULL, first_at = now(),"
			   " next_remind_at = CASE WHEN $3::interval > '0' THEN now() + $3::interval END,"
			   " escalate_at = CASE WHEN $4::interval > '0' THEN now() + $4::interval END"
			   " WHERE alert_id = $1 AND route = $2",
			   4, id, rt->name, interval(rt->remind_every, remind, sizeof(remind)),
			   interval(rt->escalate_after, esc, sizeof(esc))) < 0)
			goto fail_rows;
		n = queue_level(c, nc, rt, 0, "raised", id, alert, err);
		if (n < 0)
			goto fail_rows;
		counts->queued += (uint64_t)n;
		counts->released++;
	}
	PQclear(rows);

	/* Reminders and escalations due; a silence postpones them. */
	rows = run(
		c, err, "due",
		"SELECT alert_id, route, alert::text, level,"
		" coalesce(next_remind_at <= now(), false), coalesce(escalate_at <= now(), false),"
		" (SELECT ends_at FROM silences WHERE id = silence_match(site, kind, subject,"
		" now()))::text FROM notify_alerts WHERE state = 'raised' AND told"
		" AND (next_remind_at <= now() OR escalate_at <= now())"
		" LIMIT 500 FOR UPDATE SKIP LOCKED",
		0);
	if (!rows)
		goto fail;
	for (int i = 0; i < PQntuples(rows); i++) {
		const char *id = PQgetvalue(rows, i, 0), *alert = PQgetvalue(rows, i, 2);
		const struct route *rt = route_named(nc, PQgetvalue(rows, i, 1));
		int level = atoi(PQgetvalue(rows, i, 3));
		bool remind_due = PQgetvalue(rows, i, 4)[0] == 't';
		bool esc_due = PQgetvalue(rows, i, 5)[0] == 't';
		int n;

		if (!rt || !PQgetisnull(rows, i, 6)) {
			/* Route gone, or silenced: look again in a minute (or at
			 * the silence's end). */
			if (run_ok(c, err, "postpone",
				   "UPDATE notify_alerts SET"
				   " next_remind_at = CASE WHEN next_remind_at <= now() THEN"
				   " LEAST(now() + interval '1 minute', coalesce($3::timestamptz,"
				   " 'infinity')) ELSE next_remind_at END,"
				   " escalate_at = CASE WHEN escalate_at <= now() THEN"
				   " LEAST(now() + interval '1 minute', coalesce($3::timestamptz,"
				   " 'infinity')) ELSE escalate_at END"
				   " WHERE alert_id = $1 AND route = $2",
				   3, id, PQgetvalue(rows, i, 1),
				   PQgetisnull(rows, i, 6) ? NULL : PQgetvalue(rows, i, 6)) < 0)
				goto fail_rows;
			continue;
		}
		if (esc_due && rt->nescalate_to) {
			for (size_t e = 0; e < rt->nescalate_to; e++)
				if (queue(c, rt, &nc->receivers[rt->escalate_to[e]], "escalate", id,
					  alert, err) < 0)
					goto fail_rows;
			counts->queued += rt->nescalate_to;
			counts->escalations++;
			level = 1;
		}
		if (remind_due && rt->remind_every > 0) {
			n = queue_level(c, nc, rt, level, "remind", id, alert, err);
			if (n < 0)
				goto fail_rows;
			counts->queued += (uint64_t)n;
			counts->reminders++;
		}
		if (run_ok(c, err, "clocks",
			   "UPDATE notify_alerts SET level = $3,"
			   " escalate_at = CASE WHEN escalate_at <= now() THEN NULL ELSE escalate_at END,"
			   " reminders = reminders + CASE WHEN $5 THEN 1 ELSE 0 END,"
			   " next_remind_at = CASE WHEN $5 AND $4::interval > '0'"
			   " THEN now() + $4::interval WHEN $5 THEN NULL ELSE next_remind_at END"
			   " WHERE alert_id = $1 AND route = $2",
			   5, id, rt->name, level ? "1" : "0",
			   interval(rt->remind_every, remind, sizeof(remind)),
			   remind_due ? "true" : "false") < 0)
			goto fail_rows;
	}
	PQclear(rows);
	if (run_ok(c, err, "commit", "COMMIT", 0) < 0)
		goto fail;
	return 0;
fail_rows:
	PQclear(rows);
fail:
	rollback(c);
	return -1;
}

void
notifier_attempt_free(struct notifier_attempt *at)
{
	for (size_t i = 0; at->docs && i < at->msg.nitems; i++)
		json_decref(at->docs[i]);
	free(at->docs);
	free(at->items);
	memset(at, 0, sizeof(*at));
}

int
notifier_db_take(PGconn *c, const char *receiver, int64_t give_up_ms, struct notifier_attempt *at,
		 int64_t *ret_wait_ms, uint64_t *ret_given_up, char *err)
{
	char give_up[40], id_copy[24];
	PGresult *res;
	const char *id;
	int n;

	memset(at, 0, sizeof(*at));
	*ret_wait_ms = 1000;
	interval(give_up_ms, give_up, sizeof(give_up));
	res = run(c, err, "give up",
		  "UPDATE notify_messages SET status = 'failed' WHERE receiver = $1"
		  " AND status IN ('pending', 'sending') AND created_at < now() - $2::interval",
		  2, receiver, give_up);
	if (!res)
		return -1;
	*ret_given_up += (uint64_t)atoll(PQcmdTuples(res));
	PQclear(res);

	/* The due message first tried longest ago (a failing one goes to
	 * the back), taken for this attempt in its own commit. */
	res = run(c, err, "take",
		  "UPDATE notify_messages SET status = 'sending', attempts = attempts + 1,"
		  " last_attempt_at = now(), first_attempt_at = coalesce(first_attempt_at, now())"
		  " WHERE id = (SELECT id FROM notify_messages WHERE receiver = $1"
		  " AND status IN ('pending', 'sending') AND send_after <= now()"
		  " AND next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT 1"
		  " FOR UPDATE SKIP LOCKED)"
		  " RETURNING id, route, transition, attempts,"
		  " (extract(epoch FROM now() - created_at) * 1000)::bigint",
		  1, receiver);
	if (!res)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = run(c, err, "next due",
			  "SELECT (extract(epoch FROM min(GREATEST(send_after, next_attempt_at))"
			  " - now()) * 1000)::bigint FROM notify_messages WHERE receiver = $1"
			  " AND status IN ('pending', 'sending')",
			  1, receiver);
		if (!res)
			return -1;
		if (!PQgetisnull(res, 0, 0)) {
			int64_t w = atoll(PQgetvalue(res, 0, 0));

			*ret_wait_ms = w < 0 ? 0 : w > 1000 ? 1000 : w;
		}
		PQclear(res);
		return 0;
	}
	at->msg.id = atoll(PQgetvalue(res, 0, 0));
	snprintf(at->route, sizeof(at->route), "%s", PQgetvalue(res, 0, 1));
	at->msg.route = at->route;
	if (notifier_transition_parse(PQgetvalue(res, 0, 2), &at->msg.transition) < 0)
		at->msg.transition = NTR_RAISED;
	at->attempts = atoi(PQgetvalue(res, 0, 3));
	at->age_ms = atoll(PQgetvalue(res, 0, 4));
	snprintf(id_copy, sizeof(id_copy), "%s", PQgetvalue(res, 0, 0));
	id = id_copy;
	{
		PGresult *items = run(c, err, "items",
				      "SELECT alert::text FROM notify_items WHERE message_id = $1"
				      " ORDER BY alert->>'raised_at', alert_id",
				      1, id);

		PQclear(res);
		if (!items)
			return -1;
		n = PQntuples(items);
		at->items = calloc(n ? (size_t)n : 1, sizeof(*at->items));
		at->docs = calloc(n ? (size_t)n : 1, sizeof(*at->docs));
		if (!at->items || !at->docs) {
			PQclear(items);
			notifier_attempt_free(at);
			snprintf(err, NOTIFIER_ERR_LEN, "out of memory");
			return -1;
		}
		for (int i = 0; i < n; i++) {
			json_t *doc = json_loads(PQgetvalue(items, i, 0), 0, NULL);
			struct notifier_item *it = &at->items[at->msg.nitems];

			if (!doc)
				continue;
			if (notifier_alert_from_json(doc, &it->alert) < 0) {
				json_decref(doc);
				continue;
			}
			it->transition = at->msg.transition;
			at->docs[at->msg.nitems++] = doc;
			if (it->alert.raised_at_ms &&
			    (!at->first_raised_ms || it->alert.raised_at_ms < at->first_raised_ms))
				at->first_raised_ms = it->alert.raised_at_ms;
		}
		PQclear(items);
	}
	at->msg.items = at->items;
	if (at->msg.nitems == 0) {
		/* Nothing left to tell (its alerts' rows unreadable): on record as
		 * failed, never sent empty. */
		notifier_attempt_free(at);
		return run_ok(c, err, "empty",
			      "UPDATE notify_messages SET status = 'failed',"
			      " answer = 'no alert in the message' WHERE id = $1",
			      1, id_copy) < 0 ?
			-1 :
			0;
	}
	return 1;
}

int
notifier_db_finish(PGconn *c, int64_t id, const struct send_result *res, const char *body,
		   int64_t retry_ms, char *err)
{
	char sid[24], status[16], retry[40];

	snprintf(sid, sizeof(sid), "%" PRId64, id);
	snprintf(status, sizeof(status), "%ld", res->http_status);
	interval(retry_ms, retry, sizeof(retry));
	if (res->outcome == SEND_OK)
		return run_ok(c, err, "sent",
			      "UPDATE notify_messages SET status = 'sent', sent_at = now(),"
			      " http_status = NULLIF($2::int, 0), answer = $3, body = $4"
			      " WHERE id = $1",
			      4, sid, status, res->answer, body);
	return run_ok(c, err, "retry",
		      "UPDATE notify_messages SET status = 'pending',"
		      " next_attempt_at = now() + $5::interval,"
		      " http_status = NULLIF($2::int, 0), answer = $3, body = $4 WHERE id = $1",
		      5, sid, status, res->answer, body, retry);
}

int
notifier_db_recent_sends(PGconn *c, const char *receiver, int64_t *ms, int max, char *err)
{
	char limit[16];
	PGresult *res;
	int n;

	snprintf(limit, sizeof(limit), "%d", max);
	res = run(c, err, "recent",
		  "SELECT t FROM (SELECT (extract(epoch FROM sent_at) * 1000)::bigint AS t"
		  " FROM notify_messages WHERE receiver = $1"
		  " AND sent_at > now() - interval '60 seconds' ORDER BY sent_at DESC LIMIT $2) x"
		  " ORDER BY t",
		  2, receiver, limit);
	if (!res)
		return -1;
	n = PQntuples(res);
	for (int i = 0; i < n; i++)
		ms[i] = atoll(PQgetvalue(res, i, 0));
	PQclear(res);
	return n;
}

int
notifier_db_backlog(PGconn *c, const struct notifier_config *nc, int64_t *counts, char *err)
{
	PGresult *res = run(c, err, "backlog",
			    "SELECT receiver, count(*) FROM notify_messages"
			    " WHERE status IN ('pending', 'sending') GROUP BY receiver",
			    0);

	if (!res)
		return -1;
	for (size_t i = 0; i < nc->nreceivers; i++)
		counts[i] = 0;
	for (int row = 0; row < PQntuples(res); row++)
		for (size_t i = 0; i < nc->nreceivers; i++)
			if (strcmp(nc->receivers[i].name, PQgetvalue(res, row, 0)) == 0)
				counts[i] = atoll(PQgetvalue(res, row, 1));
	PQclear(res);
	return 0;
}
