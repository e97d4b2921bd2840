/* ctl_register.c - cordonctl's register commands: site, gate, zone, card,
 * isolate, release.
 *
 * An `add` creates the object; when it already exists, the options given
 * on the command line are applied to it, and without any option it is an
 * error. Every change runs in one transaction that ends with
 * NOTIFY cordon_register; a failed check rolls it back and exits 1. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "ctl.h"
#include "normalize.h"
#include "tz.h"

void
ctl_format_seconds(long long s, char *buf, size_t len)
{
	if (s % 86400 == 0)
		snprintf(buf, len, "%lldd", s / 86400);
	else if (s % 3600 == 0)
		snprintf(buf, len, "%lldh", s / 3600);
	else if (s % 60 == 0)
		snprintf(buf, len, "%lldm", s / 60);
	else
		snprintf(buf, len, "%llds", s);
}

int
ctl_parse_seconds(const char *synopsis, const char *opt, const char *s, long long min_s,
		  long long max_s, long long *ret_s)
{
	char lo[32], hi[32];
	int64_t ms;

	ctl_format_seconds(min_s, lo, sizeof(lo));
	ctl_format_seconds(max_s, hi, sizeof(hi));
	if (config_parse_duration(s, &ms) < 0 || ms % 1000 != 0 || ms / 1000 < min_s ||
	    ms / 1000 > max_s) {
		tool_usage(synopsis,
			   "%s '%.40s': expected a duration from %s to %s in whole "
			   "seconds, such as 30m, 4h or 2d",
			   opt, s, lo, hi);
		return -1;
	}
	*ret_s = ms / 1000;
	return 0;
}

int
ctl_household_exists(struct ctl *ctl, const char *site, const char *household)
{
	PGresult *res = QUERY(ctl, "looking up the household",
			      "SELECT 1 FROM households WHERE site = $1 AND household = $2", site,
			      household);
	int found;

	if (!res)
		return -1;
	found = PQntuples(res) > 0;
	PQclear(res);
	if (!found)
		tool_err("unknown household %s at site %s", household, site);
	return found;
}

/* ---------------------------------------------------------------- site */

#define SITE_ADD "site add S [--timezone TZ]"

static int
site_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *tz = NULL;
	const struct ctl_opt opts[] = { { "--timezone", &tz, NULL }, { NULL, NULL, NULL } };
	PGresult *res;

	if (ctl_parse(SITE_ADD, argc, argv, opts, pos, 1, 1) < 0 ||
	    ctl_check_id(SITE_ADD, "site", pos[0]) < 0)
		return CTL_USAGE;
	if (tz && (!*tz || strlen(tz) > 64))
		return tool_usage(SITE_ADD, "bad time zone '%.80s'", tz);
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (tz) {
		struct tz *zone;
		int known;

		/* cordond reads the zone from the system's TZif files, and
		 * PostgreSQL formats times in it: both must know it. */
		if (tz_load(tz, &zone) < 0) {
			tool_err("unknown time zone '%s' (no such file under /usr/share/zoneinfo; "
				 "use a name such as Asia/Shanghai)",
				 tz);
			return CTL_FAIL;
		}
		tz_free(zone);

		res = QUERY(ctl, "checking the time zone",
			    "SELECT 1 FROM pg_timezone_names WHERE name = $1", tz);
		if (!res)
			return CTL_FAIL;
		known = PQntuples(res) > 0;
		PQclear(res);
		if (!known) {
			tool_err("time zone '%s' is unknown to PostgreSQL", tz);
			return CTL_FAIL;
		}
	}
	if (ctl_begin(ctl) < 0)
		return CTL_FAIL;
	/* Without --timezone the site has no zone of its own (NULL): cordond
	 * uses [site] timezone for it, also after a change and a SIGHUP. */
	res = QUERY(ctl, "adding the site",
		    "INSERT INTO sites (site, timezone) VALUES ($1, $2)"
		    " ON CONFLICT (site) DO NOTHING RETURNING timezone",
		    pos[0], tz);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 1) {
		if (tz)
			printf("site %s added (time zone %s)\n", pos[0], tz);
		else
			printf("site %s added (time zone %s, from [site] timezone)\n", pos[0],
			       ctl->default_tz);
		PQclear(res);
		return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
	}
	PQclear(res);
	if (!tz) {
		tool_err("site %s already exists (--timezone TZ changes its time zone)", pos[0]);
		return CTL_FAIL;
	}
	res = QUERY(ctl, "changing the time zone", "UPDATE sites SET timezone = $2 WHERE site = $1",
		    pos[0], tz);
	if (!res)
		return CTL_FAIL;
	PQclear(res);
	printf("site %s exists; time zone set to %s\n", pos[0], tz);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

int
ctl_cmd_site(struct ctl *ctl, int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "add") == 0)
		return site_add(ctl, argc - 1, argv + 1);
	return tool_usage(SITE_ADD, "site: expected 'add'");
}

/* ---------------------------------------------------------------- gate */

#define GATE_ADD "gate add S G [--sealed] [--format F] [--unit c|f|k]"
#define GATE_SET "gate seal S G | gate open S G"
#define GATE_LIST "gate list [S]"

static void
print_gate(const char *verb, const char *site, const char *gate, PGresult *res)
{
	printf("gate %s/%s %s: %s, format %s, unit %s\n", site, gate, verb, PQgetvalue(res, 0, 0),
	       PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
}

static int
gate_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *format = NULL, *unit = NULL, *state = NULL;
	int sealed = 0;
	const struct ctl_opt opts[] = {
		{ "--sealed", NULL, &sealed },
		{ "--format", &format, NULL },
		{ "--unit", &unit, NULL },
		{ NULL, NULL, NULL },
	};
	PGresult *res;

	if (ctl_parse(GATE_ADD, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(GATE_ADD, "site", pos[0]) < 0 ||
	    ctl_check_id(GATE_ADD, "gate", pos[1]) < 0)
		return CTL_USAGE;
	if (format && normalize_format_from_name(format) < 0) {
		char names[256];

		normalize_format_names(names, sizeof(names));
		return tool_usage(GATE_ADD, "unknown format '%.40s' (%s)", format, names);
	}
	if (unit && strcmp(unit, "c") != 0 && strcmp(unit, "f") != 0 && strcmp(unit, "k") != 0)
		return tool_usage(GATE_ADD, "unknown unit '%.40s' (c, f or k)", unit);
	if (sealed)
		state = "sealed";
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_ensure_site(ctl, pos[0]) < 0)
		return CTL_FAIL;
	res = QUERY(
		ctl, "adding the gate",
		"INSERT INTO gates (site, gate, state, format, unit)"
		" VALUES ($1, $2, coalesce($3, 'open'), coalesce($4, 'auto'), coalesce($5, 'c'))"
		" ON CONFLICT (site, gate) DO NOTHING RETURNING state, format, unit",
		pos[0], pos[1], state, format, unit);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 1) {
		print_gate("added", pos[0], pos[1], res);
		PQclear(res);
		return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
	}
	PQclear(res);
	if (!state && !format && !unit) {
		tool_err("gate %s already exists at site %s (gate seal/open changes its state)",
			 pos[1], pos[0]);
		return CTL_FAIL;
	}
	res = QUERY(ctl, "updating the gate",
		    "UPDATE gates SET state = coalesce($3, state), format = coalesce($4, format),"
		    " unit = coalesce($5, unit) WHERE site = $1 AND gate = $2"
		    " RETURNING state, format, unit",
		    pos[0], pos[1], state, format, unit);
	if (!res)
		return CTL_FAIL;
	print_gate("updated", pos[0], pos[1], res);
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

static int
gate_set_state(struct ctl *ctl, const char *state, int argc, char **argv)
{
	const char *pos[2];
	PGresult *res;

	if (ctl_parse(GATE_SET, argc, argv, NULL, pos, 2, 2) < 0 ||
	    ctl_check_id(GATE_SET, "site", pos[0]) < 0 ||
	    ctl_check_id(GATE_SET, "gate", pos[1]) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up the gate",
		    "SELECT state FROM gates WHERE site = $1 AND gate = $2 FOR UPDATE", pos[0],
		    pos[1]);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err("unknown gate %s at site %s (gate add creates it)", pos[1], pos[0]);
		return CTL_FAIL;
	}
	if (strcmp(PQgetvalue(res, 0, 0), state) == 0) {
		PQclear(res);
		printf("gate %s/%s is already %s\n", pos[0], pos[1], state);
		return CTL_OK;
	}
	PQclear(res);
	res = QUERY(ctl, "changing the gate's state",
		    "UPDATE gates SET state = $3 WHERE site = $1 AND gate = $2", pos[0], pos[1],
		    state);
	if (!res)
		return CTL_FAIL;
	PQclear(res);
	if (ctl_commit(ctl, pos[0]) < 0)
		return CTL_FAIL;
	printf("gate %s/%s is now %s\n", pos[0], pos[1], state);
	return CTL_OK;
}

/* Prints `sql` (one optional parameter: the site, NULL for all) as a table. */
static int
list(struct ctl *ctl, const char *synopsis, const char *what, const char *sql, int argc,
     char **argv)
{
	const char *pos[1] = { NULL };
	PGresult *res;
	int n = ctl_parse(synopsis, argc, argv, NULL, pos, 0, 1);

	if (n < 0 || (n == 1 && ctl_check_id(synopsis, "site", pos[0]) < 0))
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (pos[0] && ctl_site_exists(ctl, pos[0]) <= 0)
		return CTL_FAIL;
	res = QUERY(ctl, what, sql, pos[0]);
	if (!res)
		return CTL_FAIL;
	ctl_print_table(res);
	PQclear(res);
	return CTL_OK;
}

int
ctl_cmd_gate(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc >= 1 ? argv[0] : "";

	if (strcmp(sub, "add") == 0)
		return gate_add(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "seal") == 0)
		return gate_set_state(ctl, "sealed", argc - 1, argv + 1);
	if (strcmp(sub, "open") == 0)
		return gate_set_state(ctl, "open", argc - 1, argv + 1);
	if (strcmp(sub, "maintain") == 0)
		return ctl_gate_maintain(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return list(ctl, GATE_LIST, "listing gates",
			    "SELECT site, gate, state, format, unit FROM gates"
			    " WHERE $1::text IS NULL OR site = $1 ORDER BY site, gate",
			    argc - 1, argv + 1);
	return tool_usage(GATE_ADD "\n       " GATE_SET "\n       " GATE_LIST
				   "\n       gate maintain S G --for DURATION | --end",
			  "gate: expected add, seal, open, list or maintain");
}

/* ---------------------------------------------------------------- zone */

#define ZONE_ADD "zone add S Z [--interval 4h] [--per-day N]"
#define ZONE_LIST "zone list [S]"
/* The most disinfections a day --per-day takes: one a minute. */
#define ZONE_PER_DAY_MAX 1440

/* Adds a zone, or on an existing one sets what --interval and --per-day
 * give (zones.per_day: the disinfections a day the daily report expects;
 * without it, the 16 h day over the interval). */
static int
zone_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *interval = NULL, *per_day_s = NULL;
	const struct ctl_opt opts[] = { { "--interval", &interval, NULL },
					{ "--per-day", &per_day_s, NULL },
					{ NULL, NULL, NULL } };
	char secs[32] = "", per_day[16] = "", shown[32], perday_note[48] = "";
	long long s = 0;
	PGresult *res;

	if (ctl_parse(ZONE_ADD, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(ZONE_ADD, "site", pos[0]) < 0 ||
	    ctl_check_id(ZONE_ADD, "zone", pos[1]) < 0 ||
	    (interval &&
	     ctl_parse_seconds(ZONE_ADD, "--interval", interval, 60, 30 * 86400, &s) < 0))
		return CTL_USAGE;
	if (per_day_s) {
		char *end;
		long n;

		errno = 0;
		n = strtol(per_day_s, &end, 10);
		if (end == per_day_s || *end || errno || n < 1 || n > ZONE_PER_DAY_MAX)
			return tool_usage(ZONE_ADD,
					  "--per-day '%.40s': expected a whole number from 1 to %d",
					  per_day_s, ZONE_PER_DAY_MAX);
		snprintf(per_day, sizeof(per_day), "%ld", n);
		snprintf(perday_note, sizeof(perday_note), ", %ld a day", n);
	}
	if (interval)
		snprintf(secs, sizeof(secs), "%lld", s);
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_ensure_site(ctl, pos[0]) < 0)
		return CTL_FAIL;
	/* Without --interval the zone has none of its own (NULL): cordond uses
	 * [rules] disinfection_interval for it, also after a SIGHUP. */
	res = QUERY(ctl, "adding the zone",
		    "INSERT INTO zones (site, zone, interval_s, per_day)"
		    " VALUES ($1, $2, $3::int, $4::int)"
		    " ON CONFLICT (site, zone) DO NOTHING RETURNING interval_s",
		    pos[0], pos[1], interval ? secs : NULL, per_day_s ? per_day : NULL);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		if (!interval && !per_day_s) {
			tool_err("zone %s already exists at site %s (--interval or --per-day"
				 " changes it)",
				 pos[1], pos[0]);
			return CTL_FAIL;
		}
		res = QUERY(ctl, "updating the zone",
			    "UPDATE zones SET interval_s = coalesce($3::int, interval_s),"
			    "                 per_day = coalesce($4::int, per_day)"
			    " WHERE site = $1 AND zone = $2 RETURNING interval_s, per_day",
			    pos[0], pos[1], interval ? secs : NULL, per_day_s ? per_day : NULL);
		if (!res)
			return CTL_FAIL;
		if (PQgetisnull(res, 0, 0))
			snprintf(shown, sizeof(shown), "[rules] disinfection_interval");
		else
			ctl_format_seconds(atoll(PQgetvalue(res, 0, 0)), shown, sizeof(shown));
		if (!PQgetisnull(res, 0, 1))
			snprintf(perday_note, sizeof(perday_note), ", %s a day",
				 PQgetvalue(res, 0, 1));
		printf("zone %s/%s updated: disinfection every %s%s\n", pos[0], pos[1], shown,
		       perday_note);
	} else if (interval) {
		ctl_format_seconds(s, shown, sizeof(shown));
		printf("zone %s/%s added: disinfection every %s%s\n", pos[0], pos[1], shown,
		       perday_note);
	} else {
		ctl_format_seconds(ctl->disinfection_interval_s, shown, sizeof(shown));
		printf("zone %s/%s added: disinfection every %s ([rules] disinfection_interval)%s\n",
		       pos[0], pos[1], shown, perday_note);
	}
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

/* site zone interval; a zone without an interval of its own shows the
 * configured one, marked "(default)". */
static int
zone_list(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1] = { NULL };
	char fallback[32];
	PGresult *res;
	int n = ctl_parse(ZONE_LIST, argc, argv, NULL, pos, 0, 1);

	if (n < 0 || (n == 1 && ctl_check_id(ZONE_LIST, "site", pos[0]) < 0))
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (pos[0] && ctl_site_exists(ctl, pos[0]) <= 0)
		return CTL_FAIL;
	ctl_format_seconds(ctl->disinfection_interval_s, fallback, sizeof(fallback));
	res = QUERY(ctl, "listing zones",
		    "SELECT site, zone, coalesce(CASE"
		    "  WHEN interval_s % 86400 = 0 THEN (interval_s / 86400) || 'd'"
		    "  WHEN interval_s % 3600 = 0 THEN (interval_s / 3600) || 'h'"
		    "  WHEN interval_s % 60 = 0 THEN (interval_s / 60) || 'm'"
		    "  ELSE interval_s || 's' END, $2 || ' (default)') AS interval"
		    " FROM zones WHERE $1::text IS NULL OR site = $1 ORDER BY site, zone",
		    pos[0], fallback);
	if (!res)
		return CTL_FAIL;
	ctl_print_table(res);
	PQclear(res);
	return CTL_OK;
}

int
ctl_cmd_zone(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc >= 1 ? argv[0] : "";

	if (strcmp(sub, "add") == 0)
		return zone_add(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "list") == 0)
		return zone_list(ctl, argc - 1, argv + 1);
	return tool_usage(ZONE_ADD "\n       " ZONE_LIST, "zone: expected add or list");
}

/* ---------------------------------------------------------------- card */

#define CARD_ADD "card add S CARD --household H [--extra [--reason WORD]]"
#define CARD_REVOKE "card revoke S CARD"

/* " (extra)" or " (extra: carer)" into buf. */
static const char *
extra_text(int extra, const char *reason, char *buf, size_t len)
{
	if (!extra)
		snprintf(buf, len, "%s", "");
	else if (reason && *reason)
		snprintf(buf, len, " (extra: %s)", reason);
	else
		snprintf(buf, len, "%s", " (extra)");
	return buf;
}

static int
card_add(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2], *hh = NULL, *owner, *state, *why = NULL, *was_why;
	int extra = 0, was_extra;
	const struct ctl_opt opts[] = {
		{ "--household", &hh, NULL },
		{ "--extra", NULL, &extra },
		{ "--reason", &why, NULL },
		{ NULL, NULL, NULL },
	};
	char shown[96];
	PGresult *res;

	if (ctl_parse(CARD_ADD, argc, argv, opts, pos, 2, 2) < 0 ||
	    ctl_check_id(CARD_ADD, "site", pos[0]) < 0 ||
	    ctl_check_id(CARD_ADD, "card", pos[1]) < 0)
		return CTL_USAGE;
	if (!hh)
		return tool_usage(CARD_ADD, "--household is required");
	if (ctl_check_id(CARD_ADD, "household", hh) < 0)
		return CTL_USAGE;
	if (why && !extra)
		return tool_usage(CARD_ADD,
				  "--reason is the reason of an exception: it needs --extra");
	if (why && !tool_valid_id(why))
		return tool_usage(CARD_ADD,
				  "bad reason '%.80s': one word of 1 to 64 of A-Z a-z 0-9 _ - "
				  "(such as carer)",
				  why);
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_household_exists(ctl, pos[0], hh) <= 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up the card",
		    "SELECT household, state, extra, coalesce(reason, '') FROM cards"
		    " WHERE site = $1 AND card = $2 FOR UPDATE",
		    pos[0], pos[1]);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		res = QUERY(ctl, "adding the card",
			    "INSERT INTO cards (site, card, household, extra, reason)"
			    " VALUES ($1, $2, $3, $4, $5)",
			    pos[0], pos[1], hh, extra ? "true" : "false", why);
		if (!res)
			return CTL_FAIL;
		PQclear(res);
		printf("card %s/%s added to household %s%s\n", pos[0], pos[1], hh,
		       extra_text(extra, why, shown, sizeof(shown)));
		return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
	}
	owner = PQgetvalue(res, 0, 0);
	state = PQgetvalue(res, 0, 1);
	was_extra = PQgetvalue(res, 0, 2)[0] == 't';
	was_why = PQgetvalue(res, 0, 3);
	if (strcmp(owner, hh) != 0) {
		tool_err("card %s at site %s belongs to household %s (%s)", pos[1], pos[0], owner,
			 state);
		PQclear(res);
		return CTL_FAIL;
	}
	if (strcmp(state, "active") == 0 && (was_extra || !extra) &&
	    (!why || strcmp(why, was_why) == 0)) {
		tool_err("card %s is already registered to household %s at site %s%s", pos[1], hh,
			 pos[0], extra_text(was_extra, was_why, shown, sizeof(shown)));
		PQclear(res);
		return CTL_FAIL;
	}
	printf("card %s/%s of household %s %s%s\n", pos[0], pos[1], hh,
	       strcmp(state, "active") == 0 ? "marked" : "reactivated",
	       extra_text(extra || was_extra, why ? why : was_why, shown, sizeof(shown)));
	PQclear(res);
	res = QUERY(ctl, "updating the card",
		    "UPDATE cards SET state = 'active', extra = extra OR $3::boolean,"
		    " reason = coalesce($4, reason) WHERE site = $1 AND card = $2",
		    pos[0], pos[1], extra ? "true" : "false", why);
	if (!res)
		return CTL_FAIL;
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

static int
card_revoke(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[2];
	PGresult *res;

	if (ctl_parse(CARD_REVOKE, argc, argv, NULL, pos, 2, 2) < 0 ||
	    ctl_check_id(CARD_REVOKE, "site", pos[0]) < 0 ||
	    ctl_check_id(CARD_REVOKE, "card", pos[1]) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up the card",
		    "SELECT state, household FROM cards WHERE site = $1 AND card = $2 FOR UPDATE",
		    pos[0], pos[1]);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err("unknown card %s at site %s", pos[1], pos[0]);
		return CTL_FAIL;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "revoked") == 0) {
		printf("card %s/%s (household %s) is already revoked\n", pos[0], pos[1],
		       PQgetvalue(res, 0, 1));
		PQclear(res);
		return CTL_OK;
	}
	printf("card %s/%s (household %s) revoked\n", pos[0], pos[1], PQgetvalue(res, 0, 1));
	PQclear(res);
	res = QUERY(ctl, "revoking the card",
		    "UPDATE cards SET state = 'revoked' WHERE site = $1 AND card = $2", pos[0],
		    pos[1]);
	if (!res)
		return CTL_FAIL;
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

int
ctl_cmd_card(struct ctl *ctl, int argc, char **argv)
{
	const char *sub = argc >= 1 ? argv[0] : "";

	if (strcmp(sub, "add") == 0)
		return card_add(ctl, argc - 1, argv + 1);
	if (strcmp(sub, "revoke") == 0)
		return card_revoke(ctl, argc - 1, argv + 1);
	return tool_usage(CARD_ADD "\n       " CARD_REVOKE, "card: expected add or revoke");
}

/* ---------------------------------------------------------------- isolation */

#define ISOLATE "isolate S --household H [--person P] [--days N] [--check-interval 12h]"
#define RELEASE "release S --household H"

int
ctl_cmd_isolate(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *hh = NULL, *person = NULL, *days_s = NULL, *check = NULL;
	const struct ctl_opt opts[] = {
		{ "--household", &hh, NULL }, { "--person", &person, NULL },
		{ "--days", &days_s, NULL },  { "--check-interval", &check, NULL },
		{ NULL, NULL, NULL },
	};
	char days[16] = "14", secs[32], shown[48];
	long long check_s = 0;
	PGresult *res;

	if (ctl_parse(ISOLATE, argc, argv, opts, pos, 1, 1) < 0 ||
	    ctl_check_id(ISOLATE, "site", pos[0]) < 0)
		return CTL_USAGE;
	if (!hh)
		return tool_usage(ISOLATE, "--household is required");
	if (ctl_check_id(ISOLATE, "household", hh) < 0 ||
	    (person && ctl_check_id(ISOLATE, "person", person) < 0) ||
	    (check &&
	     ctl_parse_seconds(ISOLATE, "--check-interval", check, 60, 7 * 86400, &check_s) < 0))
		return CTL_USAGE;
	if (days_s) {
		char *end;
		long d;

		errno = 0;
		d = strtol(days_s, &end, 10);
		if (end == days_s || *end || errno || d < 1 || d > 365)
			return tool_usage(ISOLATE,
					  "--days '%.40s': expected a whole number of days "
					  "from 1 to 365",
					  days_s);
		snprintf(days, sizeof(days), "%ld", d);
	}
	snprintf(secs, sizeof(secs), "%lld", check_s);
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_household_exists(ctl, pos[0], hh) <= 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up isolation orders",
		    "SELECT o.id, to_char(o.ends_at AT TIME ZONE coalesce(s.timezone, $4),"
		    " 'YYYY-MM-DD HH24:MI')"
		    " FROM isolation_orders o JOIN sites s USING (site)"
		    " WHERE o.site = $1 AND o.household = $2 AND o.person IS NOT DISTINCT FROM $3"
		    " AND o.released_at IS NULL AND o.ends_at > now() FOR UPDATE OF o",
		    pos[0], hh, person, ctl->default_tz);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) > 0) {
		tool_err("household %s%s%s at site %s is already under isolation order %s until %s "
			 "(release it first)",
			 hh, person ? ", person " : " (all)", person ? person : "", pos[0],
			 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		PQclear(res);
		return CTL_FAIL;
	}
	PQclear(res);
	/* Without --check-interval the order has none of its own (NULL):
	 * cordond uses [rules] check_interval for it, also after a SIGHUP. */
	res = QUERY(
		ctl, "adding the isolation order",
		"WITH o AS (INSERT INTO isolation_orders"
		"   (site, household, person, ends_at, check_interval_s)"
		"   VALUES ($1, $2, $3, now() + make_interval(days => $4::int), $5::int)"
		"   RETURNING id, starts_at, ends_at)"
		" SELECT o.id,"
		"  to_char(o.starts_at AT TIME ZONE coalesce(s.timezone, $6), 'YYYY-MM-DD HH24:MI'),"
		"  to_char(o.ends_at AT TIME ZONE coalesce(s.timezone, $6), 'YYYY-MM-DD HH24:MI'),"
		"  coalesce(s.timezone, $6)"
		" FROM o, sites s WHERE s.site = $1",
		pos[0], hh, person, days, check ? secs : NULL, ctl->default_tz);
	if (!res)
		return CTL_FAIL;
	if (check) {
		ctl_format_seconds(check_s, shown, sizeof(shown));
	} else {
		ctl_format_seconds(ctl->check_interval_s, shown, sizeof(shown));
		strncat(shown, " ([rules] check_interval)", sizeof(shown) - strlen(shown) - 1);
	}
	printf("isolation order %s: household %s%s%s at site %s, from %s until %s (%s), "
	       "a check every %s\n",
	       PQgetvalue(res, 0, 0), hh, person ? ", person " : " (all)", person ? person : "",
	       pos[0], PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3), shown);
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}

int
ctl_cmd_release(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *hh = NULL;
	const struct ctl_opt opts[] = { { "--household", &hh, NULL }, { NULL, NULL, NULL } };
	PGresult *res;

	if (ctl_parse(RELEASE, argc, argv, opts, pos, 1, 1) < 0 ||
	    ctl_check_id(RELEASE, "site", pos[0]) < 0)
		return CTL_USAGE;
	if (!hh)
		return tool_usage(RELEASE, "--household is required");
	if (ctl_check_id(RELEASE, "household", hh) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0 || ctl_begin(ctl) < 0 || ctl_household_exists(ctl, pos[0], hh) <= 0)
		return CTL_FAIL;
	res = QUERY(
		ctl, "releasing isolation orders",
		"UPDATE isolation_orders SET released_at = now()"
		" WHERE site = $1 AND household = $2 AND released_at IS NULL AND ends_at > now()"
		" RETURNING id, coalesce(person, '')",
		pos[0], hh);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		tool_err("household %s at site %s has no active isolation order", hh, pos[0]);
		return CTL_FAIL;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *p = PQgetvalue(res, i, 1);

		printf("isolation order %s released: household %s%s%s at site %s\n",
		       PQgetvalue(res, i, 0), hh, *p ? ", person " : " (all)", p, pos[0]);
	}
	PQclear(res);
	return ctl_commit(ctl, pos[0]) < 0 ? CTL_FAIL : CTL_OK;
}
