/* ctl_silence.c - cordonctl's silences (issue 17): silence add, list and
 * expire, and gate maintain (a gate's maintenance window).
 *
 * A silence (table `silences`, sql/0010) holds the notifications that
 * cordon-notify would send for the alerts it matches, from its start to
 * its end or until it is expired; the alerts themselves are raised,
 * stored, published and listed as always (`alerts` shows them as
 * silenced). Whether a silence holds an alert is decided by one SQL
 * function, silence_match(site, kind, subject, at), which cordon-notify
 * asks too. Silences are not part of the register: no NOTIFY
 * cordon_register. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alert_state.h"
#include "ctl.h"
#include "normalize.h"

#define SILENCE_ADD                                                                 \
	"silence add S --kind K [--kind K2 ...] [--subject PATTERN] --for DURATION" \
	" --reason TEXT [--by NAME] [--start TIME]"
#define SILENCE_LIST "silence list [S] [--all] [--json]"
#define SILENCE_EXPIRE "silence expire ID"
#define GATE_MAINTAIN \
	"gate maintain S G --for DURATION [--reason TEXT] [--by NAME] | gate maintain S G --end"

/* The longest silence; the kind that is not an alert of cordond's but one
 * of cordon-notify's (docs/notify.md). */
#define SILENCE_MAX_S (30LL * 86400)
#define NOTIFY_FAILED "notify_failed"
#define MAX_KINDS 32
#define PATTERN_MAX 200
#define REASON_MAX 500
#define BY_MAX 128

/* The site's time zone, for the statements below: $TZ is the parameter
 * that holds [site] timezone. */
#define SITE_TZ(site, tz) "coalesce((SELECT timezone FROM sites WHERE site = " site "), " tz ")"

/* Whether s is 1 to max bytes without control characters. */
static int
valid_text(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Whether `site` is a site id or _daemon (the instance-level alerts). */
static int
check_site(const char *synopsis, const char *site)
{
	if (strcmp(site, "_daemon") == 0)
		return 0;
	return ctl_check_id(synopsis, "site", site);
}

/* 1 when `site` can be silenced (registered, _daemon, or the site of an
 * alert: cordond raises alerts for sites it has no register of), 0 when
 * not (an error is printed), -1 on error. */
static int
site_known(struct ctl *ctl, const char *site)
{
	PGresult *res;
	int found;

	if (strcmp(site, "_daemon") == 0)
		return 1;
	res = QUERY(ctl, "looking up the site",
		    "SELECT EXISTS (SELECT 1 FROM sites WHERE site = $1)"
		    "    OR EXISTS (SELECT 1 FROM alerts WHERE site = $1)",
		    site);
	if (!res)
		return -1;
	found = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!found)
		tool_err("unknown site %s (neither registered nor with alerts)", site);
	return found;
}

/* Whether `name` is a kind an alert can have. */
static int
known_kind(const char *name)
{
	return alert_state_kind_from_name(name) >= 0 || strcmp(name, NOTIFY_FAILED) == 0;
}

/* Takes every "--kind K" / "--kind=K" out of argv (up to "--"): the
 * values into kinds (at most MAX_KINDS), the rest into rest (argc
 * entries). Returns the number of kinds, or -1 after a usage error. */
static int
take_kinds(const char *synopsis, int argc, char **argv, const char **kinds, char **rest,
	   int *ret_nrest)
{
	int nk = 0, nrest = 0, done = 0;

	for (int i = 0; i < argc; i++) {
		const char *v = NULL;

		if (!done && strcmp(argv[i], "--") == 0)
			done = 1;
		if (!done && strcmp(argv[i], "--kind") == 0) {
			if (i + 1 >= argc) {
				tool_usage(synopsis, "option --kind needs a value");
				return -1;
			}
			v = argv[++i];
		} else if (!done && strncmp(argv[i], "--kind=", 7) == 0) {
			v = argv[i] + 7;
		} else {
			rest[nrest++] = argv[i];
			continue;
		}
		if (nk >= MAX_KINDS) {
			tool_usage(synopsis, "more than %d --kind", MAX_KINDS);
			return -1;
		}
		kinds[nk++] = v;
	}
	*ret_nrest = nrest;
	return nk;
}

/* Checks the kinds and writes them as a PostgreSQL array literal into buf
 * ("{fever,sealed_gate}"); "*" alone (every kind) gives NULL. Returns 0,
 * 1 for NULL, or -1 after a usage error. */
static int
kinds_literal(const char *synopsis, const char **kinds, int nk, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; i < nk; i++) {
		if (strcmp(kinds[i], "*") == 0) {
			if (nk > 1) {
				tool_usage(synopsis, "--kind '*' (every kind) goes alone");
				return -1;
			}
			return 1;
		}
		if (!known_kind(kinds[i])) {
			tool_usage(
				synopsis,
				"unknown kind '%.80s' (the kinds of docs/alerts.md, notify_failed,"
				" or '*' for every kind)",
				kinds[i]);
			return -1;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(kinds[i], kinds[j]) == 0) {
				tool_usage(synopsis, "kind %s given twice", kinds[i]);
				return -1;
			}
		/* Kind names are [a-z_]: nothing to quote in the literal. */
		used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? "," : "{", kinds[i]);
	}
	snprintf(buf + used, len - used, "}");
	return 0;
}

/* A --start value: "YYYY-MM-DD HH:MM[:SS]" (or with 'T'), in the site's
 * time zone, or followed by "Z" or "+HH[:MM]"/"-HH[:MM]" (that offset).
 * Returns 1 with a zone, 0 without, -1 when it is none of these. */
static int
start_shape(const char *s)
{
	static const char pat[] = "dddd-dd-dd?dd:dd";
	size_t i, off, n = strlen(s);

	if (n < sizeof(pat) - 1)
		return -1;
	for (i = 0; pat[i]; i++) {
		int digit = s[i] >= '0' && s[i] <= '9';

		if (pat[i] == 'd'	  ? !digit :
			    pat[i] == '?' ? (s[i] != ' ' && s[i] != 'T') :
					    s[i] != pat[i])
			return -1;
	}
	if (s[i] == ':' && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' && s[i + 2] <= '9')
		i += 3;
	if (s[i] == '\0')
		return 0;
	if (strcmp(s + i, "Z") == 0)
		return 1;
	if (s[i] != '+' && s[i] != '-')
		return -1;
	off = ++i;
	for (; s[i]; i++)
		if (!(s[i] >= '0' && s[i] <= '9') && s[i] != ':')
			return -1;
	return i - off >= 2 && i - off <= 5 ? 1 : -1;
}

/* Inserts one silence and prints it. kinds: an array literal or NULL
 * (every kind); subject: a glob or NULL; start_zoned / start_local: the
 * start with or without its zone (at most one; neither: now). Returns the
 * exit code. */
static int
insert_silence(struct ctl *ctl, const char *site, const char *kinds, const char *subject,
	       long long secs, const char *reason, const char *by, const char *start_zoned,
	       const char *start_local, int maintenance, const char *gate)
{
	char secs_s[32];
	PGresult *res;

	snprintf(secs_s, sizeof(secs_s), "%lld", secs);
	res = QUERY(
		ctl, "adding the silence",
		"WITH z AS (SELECT " SITE_TZ(
			"$1",
			"$9") " AS tz),"
			      " st AS (SELECT coalesce($6::timestamptz, $7::timestamp AT TIME ZONE z.tz,"
			      "                        now()) AS t FROM z),"
			      " i AS (INSERT INTO silences"
			      "        (site, kinds, subject, starts_at, ends_at, reason, by_whom, maintenance)"
			      "       SELECT $1, $2::text[], $3, st.t, st.t + make_interval(secs => $4::bigint),"
			      "              $5, $8, $10::boolean"
			      "         FROM st WHERE st.t + make_interval(secs => $4::bigint) > now()"
			      "       RETURNING id, starts_at, ends_at)"
			      " SELECT i.id, to_char(i.starts_at AT TIME ZONE z.tz, 'YYYY-MM-DD HH24:MI'),"
			      "        to_char(i.ends_at AT TIME ZONE z.tz, 'YYYY-MM-DD HH24:MI'), z.tz"
			      "   FROM i, z",
		site, kinds, subject, secs_s, reason, start_zoned, start_local, by, ctl->default_tz,
		maintenance ? "true" : "false");
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err(
			"the silence would have ended already (--start plus --for is in the past)");
		return CTL_FAIL;
	}
	if (gate)
		printf("gate %s/%s under maintenance: silence %s from %s until %s (%s)\n", site,
		       gate, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
		       PQgetvalue(res, 0, 3));
	else
		/* The kinds without the literal's braces: "fever,unknown_card". */
		printf("silence %s at site %s: kinds %.*s, subject %s, from %s until %s (%s)\n",
		       PQgetvalue(res, 0, 0), site, kinds ? (int)strlen(kinds) - 2 : 1,
		       kinds ? kinds + 1 : "*", subject ? subject : "*", PQgetvalue(res, 0, 1),
		       PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
	PQclear(res);
	return CTL_OK;
}

/* ---------------------------------------------------------------- silence add */

static int
silence_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *subject = NULL, *dur = NULL, *reason = NULL, *by = NULL;
	const char *start = NULL, *kinds[MAX_KINDS];
	const struct ctl_opt opts[] = {
		{ "--subject", &subject, NULL }, { "--for", &dur, NULL },
		{ "--reason", &reason, NULL },	 { "--by", &by, NULL },
		{ "--start", &start, NULL },	 { NULL, NULL, NULL },
	};
	char **rest, literal[MAX_KINDS * 24 + 4];
	int nk, nrest, every = 0, zoned = 0;
	long long secs;

	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest) {
		tool_err("out of memory");
		return CTL_FAIL;
	}
	nk = take_kinds(SILENCE_ADD, argc, argv, kinds, rest, &nrest);
	if (nk < 0 || ctl_parse(SILENCE_ADD, nrest, rest, opts, pos, 1, 1) < 0) {
		free(rest);
		return CTL_USAGE;
	}
	free(rest);
	if (check_site(SILENCE_ADD, pos[0]) < 0)
		return CTL_USAGE;
	if (nk == 0 && !subject)
		return tool_usage(SILENCE_ADD,
				  "give --kind or --subject (--kind '*' silences every alert of "
				  "the site)");
	if (nk > 0 && (every = kinds_literal(SILENCE_ADD, kinds, nk, literal, sizeof(literal))) < 0)
		return CTL_USAGE;
	if (subject && !valid_text(subject, PATTERN_MAX))
		return tool_usage(SILENCE_ADD,
				  "bad --subject: 1 to %d bytes without control characters, "
				  "* and ? as wildcards",
				  PATTERN_MAX);
	if (!dur)
		return tool_usage(SILENCE_ADD, "--for is required (how long, such as 2h)");
	if (ctl_parse_seconds(SILENCE_ADD, "--for", dur, 60, SILENCE_MAX_S, &secs) < 0)
		return CTL_USAGE;
	if (!reason || !*reason)
		return tool_usage(SILENCE_ADD, "--reason is required (why, for the others)");
	if (!valid_text(reason, REASON_MAX))
		return tool_usage(SILENCE_ADD,
				  "bad --reason: at most %d bytes without control characters",
				  REASON_MAX);
	if (!by && !(by = ctl_whoami()))
		return tool_usage(SILENCE_ADD, "cannot tell who you are: give --by NAME");
	if (!valid_text(by, BY_MAX))
		return tool_usage(SILENCE_ADD, "bad --by '%.80s'", by);
	if (start && (zoned = start_shape(start)) < 0)
		return tool_usage(SILENCE_ADD,
				  "bad --start '%.80s': use YYYY-MM-DD HH:MM[:SS] (the site's "
				  "time) or with Z or +08:00",
				  start);
	if (ctl_open(ctl) < 0 || site_known(ctl, pos[0]) <= 0)
		return CTL_FAIL;
	return insert_silence(ctl, pos[0], nk == 0 || every ? NULL : literal, subject, secs, reason,
			      by, start && zoned ? start : NULL, start && !zoned ? start : NULL, 0,
			      NULL);
}

/* ---------------------------------------------------------------- silence list */

/* $1 site or NULL, $2 [site] timezone, $3 'true' for every silence. held:
 * the silence of each open alert now (one silence_match() per alert). */
static const char list_sql[] =
	"WITH held AS (SELECT h.id, count(*) AS n FROM"
	"   (SELECT silence_match(a.site, a.kind, a.subject, now()) AS id FROM alerts a"
	"     WHERE a.state <> 'resolved' AND ($1::text IS NULL OR a.site = $1)) h"
	"   WHERE h.id IS NOT NULL GROUP BY h.id)"
	"SELECT m.id, m.site, coalesce(array_to_string(m.kinds, ','), '*') AS kinds,"
	"       coalesce(m.subject, '*') AS subject,"
	"       to_char(m.starts_at AT TIME ZONE z.tz, 'YYYY-MM-DD HH24:MI') AS starts,"
	"       to_char(m.ends_at AT TIME ZONE z.tz, 'YYYY-MM-DD HH24:MI') AS ends,"
	"       CASE WHEN m.expired_at IS NOT NULL THEN 'expired'"
	"            WHEN m.ends_at <= now() THEN 'ended'"
	"            WHEN m.starts_at > now() THEN 'pending'"
	"            ELSE 'active' END AS state,"
	"       coalesce(m.by_whom, '-') AS by, CASE WHEN m.maintenance THEN 'yes' ELSE 'no' END"
	"         AS maintenance,"
	"       coalesce(held.n, 0) AS alerts,"
	"       m.reason,"
	"       to_char(m.starts_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	"       to_char(m.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	"       coalesce(to_char(m.expired_at AT TIME ZONE 'UTC',"
	"                        'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''),"
	"       z.tz, m.kinds IS NULL, m.subject IS NULL"
	"  FROM silences m LEFT JOIN sites s ON s.site = m.site"
	"  LEFT JOIN held ON held.id = m.id"
	" CROSS JOIN LATERAL (SELECT coalesce(s.timezone, $2) AS tz) z"
	" WHERE ($1::text IS NULL OR m.site = $1)"
	"   AND ($3::boolean OR (m.expired_at IS NULL AND m.ends_at > now()))"
	" ORDER BY m.site, m.starts_at, m.id";
#define LIST_SHOWN 11 /* id .. reason */
#define LIST_REASON 10

/* The reason with digit runs of 7 or more masked (a phone quoted in it),
 * into buf. */
static const char *
masked(const char *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s", s);
	normalize_mask_digits(buf, strlen(buf));
	return buf;
}

static int
print_list_json(PGresult *res)
{
	json_t *arr = json_array();
	char reason[REASON_MAX + 1];

	for (int i = 0; arr && i < PQntuples(res); i++) {
		json_t *o = json_object(), *kinds = json_null();
		const char *expired = PQgetvalue(res, i, 13);

		if (strcmp(PQgetvalue(res, i, 15), "f") == 0) {
			char *list = strdup(PQgetvalue(res, i, 2)), *save = NULL;

			kinds = json_array();
			for (char *k = list ? strtok_r(list, ",", &save) : NULL; k;
			     k = strtok_r(NULL, ",", &save))
				json_array_append_new(kinds, json_string(k));
			free(list);
		}
		json_object_set_new(o, "id", json_integer(atoll(PQgetvalue(res, i, 0))));
		json_object_set_new(o, "site", json_string(PQgetvalue(res, i, 1)));
		json_object_set_new(o, "kinds", kinds);
		json_object_set_new(o, "subject",
				    strcmp(PQgetvalue(res, i, 16), "t") == 0 ?
					    json_null() :
					    json_string(PQgetvalue(res, i, 3)));
		json_object_set_new(o, "starts", json_string(PQgetvalue(res, i, 4)));
		json_object_set_new(o, "ends", json_string(PQgetvalue(res, i, 5)));
		json_object_set_new(o, "timezone", json_string(PQgetvalue(res, i, 14)));
		json_object_set_new(o, "starts_at", json_string(PQgetvalue(res, i, 11)));
		json_object_set_new(o, "ends_at", json_string(PQgetvalue(res, i, 12)));
		json_object_set_new(o, "expired_at", *expired ? json_string(expired) : json_null());
		json_object_set_new(o, "state", json_string(PQgetvalue(res, i, 6)));
		json_object_set_new(o, "reason",
				    json_string(masked(PQgetvalue(res, i, LIST_REASON), reason,
						       sizeof(reason))));
		json_object_set_new(o, "by", json_string(PQgetvalue(res, i, 7)));
		json_object_set_new(o, "maintenance",
				    json_boolean(strcmp(PQgetvalue(res, i, 8), "yes") == 0));
		json_object_set_new(o, "alerts", json_integer(atoll(PQgetvalue(res, i, 9))));
		json_array_append_new(arr, o);
	}
	return ctl_print_json(arr);
}

static int
silence_list(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1] = { NULL };
	int all = 0, json = 0, n, rc = CTL_OK;
	const struct ctl_opt opts[] = {
		{ "--all", NULL, &all },
		{ "--json", NULL, &json },
		{ NULL, NULL, NULL },
	};
	PGresult *res;

	n = ctl_parse(SILENCE_LIST, argc, argv, opts, pos, 0, 1);
	if (n < 0 || (n == 1 && check_site(SILENCE_LIST, pos[0]) < 0))
		return CTL_USAGE;
	if (ctl_open(ctl) < 0 || (pos[0] && site_known(ctl, pos[0]) <= 0))
		return CTL_FAIL;
	res = QUERY(ctl, "listing the silences", list_sql, pos[0], ctl->default_tz,
		    all ? "true" : "false");
	if (!res)
		return CTL_FAIL;
	if (json) {
		rc = print_list_json(res);
	} else if (PQntuples(res) == 0) {
		printf(all ? "no silences\n" : "no active silences\n");
	} else {
		char reason[REASON_MAX + 1];

		/* The reasons masked in place: libpq's values are writable. */
		for (int i = 0; i < PQntuples(res); i++) {
			char *v = PQgetvalue(res, i, LIST_REASON);

			masked(v, reason, sizeof(reason));
			memcpy(v, reason, strlen(reason));
		}
		ctl_print_columns(res, LIST_SHOWN);
	}
	PQclear(res);
	return rc;
}

/* ---------------------------------------------------------------- silence expire */

static int
silence_expire(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1];
	PGresult *res;
	size_t n;

	if (ctl_parse(SILENCE_EXPIRE, argc, argv, NULL, pos, 1, 1) < 0)
		return CTL_USAGE;
	n = strlen(pos[0]);
	if (n == 0 || n > 18 || strspn(pos[0], "0123456789") != n)
		return tool_usage(SILENCE_EXPIRE, "bad silence id '%.80s': a number", pos[0]);
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "expiring the silence",
		    "UPDATE silences SET expired_at = now()"
		    " WHERE id = $1::bigint AND expired_at IS NULL AND ends_at > now()"
		    " RETURNING site",
		    pos[0]);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 1) {
		printf("silence %s at site %s expired\n", pos[0], PQgetvalue(res, 0, 0));
		PQclear(res);
		return CTL_OK;
	}
	PQclear(res);
	res = QUERY(ctl, "looking up the silence",
		    "SELECT expired_at IS NOT NULL,"
		    "       to_char(coalesce(expired_at, ends_at) AT TIME ZONE"
		    "               " SITE_TZ("m.site",
					      "$2") ", 'YYYY-MM-DD HH24:MI')"
						    "  FROM silences m WHERE id = $1::bigint",
		    pos[0], ctl->default_tz);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0)
		tool_err("no silence %s", pos[0]);
	else if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		tool_err("silence %s was already expired at %s", pos[0], PQgetvalue(res, 0, 1));
	else
		tool_err("silence %s already ended at %s", pos[0], PQgetvalue(res, 0, 1));
	PQclear(res);
	return CTL_FAIL;
}

int
ctl_cmd_silence(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc >= 1 ? argv[0] : "";

	if (strcmp(sub, "add") == 0)
		return silence_add(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return silence_list(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "expire") == 0)
		return silence_expire(ctl, argc - 1, argv + 1);
	return tool_usage(SILENCE_ADD "\n       " SILENCE_LIST "\n       " SILENCE_EXPIRE,
			  "silence: expected add, list or expire");
}

/* ---------------------------------------------------------------- gate maintain */

int
ctl_gate_maintain(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *dur = NULL, *reason = NULL, *by = NULL;
	int end = 0;
	const struct ctl_opt opts[] = {
		{ "--for", &dur, NULL }, { "--reason", &reason, NULL }, { "--by", &by, NULL },
		{ "--end", NULL, &end }, { NULL, NULL, NULL },
	};
	char subject[80];
	long long secs = 0;
	PGresult *res;

	if (ctl_parse(GATE_MAINTAIN, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(GATE_MAINTAIN, "site", pos[0]) < 0 ||
	    ctl_check_id(GATE_MAINTAIN, "gate", pos[1]) < 0)
		return CTL_USAGE;
	if (end && (dur || reason || by))
		return tool_usage(GATE_MAINTAIN, "--end takes no --for, --reason or --by");
	if (!end && !dur)
		return tool_usage(GATE_MAINTAIN, "give --for DURATION (or --end)");
	if (dur && ctl_parse_seconds(GATE_MAINTAIN, "--for", dur, 60, SILENCE_MAX_S, &secs) < 0)
		return CTL_USAGE;
	if (!reason)
		reason = "maintenance";
	if (!valid_text(reason, REASON_MAX))
		return tool_usage(GATE_MAINTAIN,
				  "bad --reason: 1 to %d bytes without control characters",
				  REASON_MAX);
	if (!end && !by && !(by = ctl_whoami()))
		return tool_usage(GATE_MAINTAIN, "cannot tell who you are: give --by NAME");
	if (by && !valid_text(by, BY_MAX))
		return tool_usage(GATE_MAINTAIN, "bad --by '%.80s'", by);
	/* The subject of the gate's gate_silent and sealed_gate alerts
	 * (docs/alerts.md); a gate id has no * or ?, and silence_match takes
	 * its _ literally. */
	snprintf(subject, sizeof(subject), "gate:%s", pos[1]);
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up the gate", "SELECT 1 FROM gates WHERE site = $1 AND gate = $2",
		    pos[0], pos[1]);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err("unknown gate %s at site %s (gate add creates it)", pos[1], pos[0]);
		return CTL_FAIL;
	}
	PQclear(res);
	if (!end)
		return insert_silence(ctl, pos[0], "{gate_silent,sealed_gate}", subject, secs,
				      reason, by, NULL, NULL, 1, pos[1]);
	res = QUERY(ctl, "ending the maintenance",
		    "UPDATE silences SET expired_at = now()"
		    " WHERE site = $1 AND maintenance AND subject = $2 AND expired_at IS NULL"
		    "   AND ends_at > now() RETURNING id",
		    pos[0], subject);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err("gate %s/%s has no maintenance window in force or to come", pos[0],
			 pos[1]);
		return CTL_FAIL;
	}
	for (int i = 0; i < PQntuples(res); i++)
		printf("gate %s/%s maintenance ended: silence %s expired\n", pos[0], pos[1],
		       PQgetvalue(res, i, 0));
	PQclear(res);
	return CTL_OK;
}
