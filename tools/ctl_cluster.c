/* ctl_cluster.c - cordonctl cluster: the instances, the shards' leases and
 * owners, and the lease history (docs/scaling.md, "Seeing it";
 * sql/0012_cluster.sql). Read only. The sites of a shard are counted here
 * with cluster_shard_of() (PostgreSQL has no XXH3), over the sites table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cluster.h"
#include "ctl.h"

#define CLUSTER_SYN "cluster [--json] | cluster --history [--shard N] [--last N] [--json]"
#define HISTORY_LAST 50
#define HISTORY_MAX 100000

/* The instances: name, host, state, since (UTC and how long ago), shards
 * held, metrics; then pid, version, since in UTC, seconds since, lease_ms.
 * The state from the heartbeat row: stopped, gone (no heartbeat within its
 * lease time), stopping or alive; since: when it stopped, went quiet (its
 * last heartbeat plus its lease), began stopping, or started. */
static const char instances_sql[] =
	"SELECT i.instance, i.host, st.state,"
	"       to_char(st.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"') || ' ('"
	"       || CASE WHEN a.secs < 120 THEN a.secs || ' s'"
	"               WHEN a.secs < 7200 THEN a.secs / 60 || ' min'"
	"               WHEN a.secs < 172800 THEN a.secs / 3600 || ' h'"
	"               ELSE a.secs / 86400 || ' d' END || ')' AS since,"
	"       (SELECT count(*) FROM shard_leases l WHERE l.owner = i.instance"
	"          AND l.shard < $1::int) AS shards,"
	"       CASE WHEN i.metrics = '' THEN '-' ELSE i.metrics END AS metrics,"
	"       i.pid, i.version,"
	"       to_char(st.since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	"       a.secs, i.lease_ms"
	"  FROM cluster_instances i"
	" CROSS JOIN LATERAL (SELECT i.seen_at <= clock_timestamp()"
	"                            - i.lease_ms * interval '1 millisecond' AS quiet) q"
	" CROSS JOIN LATERAL (SELECT"
	"       CASE WHEN i.stopped_at IS NOT NULL THEN 'stopped' WHEN q.quiet THEN 'gone'"
	"            WHEN i.stopping_at IS NOT NULL THEN 'stopping' ELSE 'alive' END AS state,"
	"       CASE WHEN i.stopped_at IS NOT NULL THEN i.stopped_at"
	"            WHEN q.quiet THEN i.seen_at + i.lease_ms * interval '1 millisecond'"
	"            WHEN i.stopping_at IS NOT NULL THEN i.stopping_at"
	"            ELSE i.started_at END AS since) st"
	" CROSS JOIN LATERAL (SELECT greatest(0, floor(extract(epoch FROM"
	"                            clock_timestamp() - st.since)))::bigint AS secs) a"
	" ORDER BY i.instance";

/* The shards: shard, owner ("-" free), epoch, expires, sites; then the
 * owner (NULL free) and the seconds left. $1 the site counts, $2 shards. */
static const char leases_sql[] =
	"SELECT l.shard, coalesce(l.owner, '-') AS owner, l.epoch,"
	"       CASE WHEN l.owner IS NULL THEN 'free'"
	"            WHEN l.expires_at >= clock_timestamp() THEN 'in '"
	"              || ceil(extract(epoch FROM l.expires_at - clock_timestamp()))::bigint"
	"              || ' s'"
	"            ELSE 'expired '"
	"              || floor(extract(epoch FROM clock_timestamp() - l.expires_at))::bigint"
	"              || ' s ago' END AS expires,"
	"       coalesce(c.n, 0) AS sites, l.owner,"
	"       round(extract(epoch FROM l.expires_at - clock_timestamp())::numeric, 1)"
	"  FROM shard_leases l"
	"  LEFT JOIN unnest($1::int[]) WITH ORDINALITY AS c(n, i) ON c.i = l.shard + 1"
	" WHERE l.shard < $2::int ORDER BY l.shard";

/* The history, newest first: shard, epoch, owner, acquired, ended, how,
 * held; then acquired_at and ended_at in UTC to the microsecond, how. $1
 * a shard or NULL, $2 how many. */
static const char history_sql[] =
	"SELECT h.shard, h.epoch, h.owner,"
	"       to_char(h.acquired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"')"
	"       AS acquired,"
	"       coalesce(to_char(h.ended_at AT TIME ZONE 'UTC',"
	"                        'YYYY-MM-DD HH24:MI:SS\"Z\"'), '-') AS ended,"
	"       coalesce(h.how, 'held') AS how,"
	"       round(extract(epoch FROM coalesce(h.ended_at, clock_timestamp())"
	"             - h.acquired_at)::numeric, 1) || ' s' AS held,"
	"       to_char(h.acquired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
	"       to_char(h.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
	"       h.how"
	"  FROM lease_history h WHERE $1::int IS NULL OR h.shard = $1::int"
	" ORDER BY h.acquired_at DESC, h.shard, h.epoch DESC LIMIT $2::int";

/* The number of shards in cluster_settings: > 0, 0 when no clustered
 * instance has run, -1 on error (printed). */
static int
read_shards(struct ctl *ctl)
{
	PGresult *res = ctl_query(ctl, "reading cluster_settings",
				  "SELECT shards FROM cluster_settings", 0, NULL);
	int n;

	if (!res)
		return -1;
	n = PQntuples(res) ? atoi(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	return n;
}

/* The registered sites of each shard, as "{n0,n1,...}" into buf (the
 * array cluster_shard_of() makes of the sites table). 0 or -1. */
static int
count_sites(struct ctl *ctl, int nshards, char *buf, size_t len)
{
	int count[CLUSTER_MAX_SHARDS] = { 0 };
	PGresult *res = ctl_query(ctl, "reading the sites", "SELECT site FROM sites", 0, NULL);
	size_t at = 0;

	if (!res)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		count[cluster_shard_of(PQgetvalue(res, i, 0), nshards)]++;
	PQclear(res);
	at += (size_t)snprintf(buf + at, len - at, "{");
	for (int s = 0; s < nshards && at < len; s++)
		at += (size_t)snprintf(buf + at, len - at, "%s%d", s ? "," : "", count[s]);
	if (at + 2 > len)
		return -1;
	snprintf(buf + at, len - at, "}");
	return 0;
}

static json_t *
text_or_null(PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

static int
show_cluster(struct ctl *ctl, int json)
{
	char counts[CLUSTER_MAX_SHARDS * 12 + 4], nshards_s[16];
	PGresult *inst = NULL, *leases = NULL;
	int nshards, alive = 0, rc = CTL_FAIL;

	nshards = read_shards(ctl);
	if (nshards < 0)
		return CTL_FAIL;
	if (nshards == 0) {
		if (json)
			return ctl_print_json(
				json_pack("{s:i, s:[], s:[]}", "shards", 0, "instances", "leases"));
		printf("not clustered: no instance with [cluster] shards > 0 has run against this"
		       " database\n");
		return CTL_OK;
	}
	if (count_sites(ctl, nshards, counts, sizeof(counts)) < 0)
		return CTL_FAIL;
	snprintf(nshards_s, sizeof(nshards_s), "%d", nshards);
	inst = ctl_query(ctl, "reading cluster_instances", instances_sql, 1,
			 (const char *const[]){ nshards_s });
	if (!inst)
		goto out;
	leases = ctl_query(ctl, "reading shard_leases", leases_sql, 2,
			   (const char *const[]){ counts, nshards_s });
	if (!leases)
		goto out;
	for (int i = 0; i < PQntuples(inst); i++)
		alive += strcmp(PQgetvalue(inst, i, 2), "alive") == 0;
	if (json) {
		json_t *doc = json_pack("{s:i, s:i, s:[], s:[]}", "shards", nshards,
					"instances_alive", alive, "instances", "leases");
		json_t *ai = json_object_get(doc, "instances"),
		       *al = json_object_get(doc, "leases");

		for (int i = 0; doc && i < PQntuples(inst); i++)
			json_array_append_new(
				ai,
				json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:I, s:I, s:s, s:I}",
					  "instance", PQgetvalue(inst, i, 0), "host",
					  PQgetvalue(inst, i, 1), "pid",
					  atoi(PQgetvalue(inst, i, 6)), "version",
					  PQgetvalue(inst, i, 7), "state", PQgetvalue(inst, i, 2),
					  "since", PQgetvalue(inst, i, 8), "since_s",
					  (json_int_t)atoll(PQgetvalue(inst, i, 9)), "shards",
					  (json_int_t)atoll(PQgetvalue(inst, i, 4)), "metrics",
					  PQgetvalue(inst, i, 5), "lease_ms",
					  (json_int_t)atoll(PQgetvalue(inst, i, 10))));
		for (int i = 0; doc && i < PQntuples(leases); i++)
			json_array_append_new(
				al,
				json_pack("{s:i, s:o, s:I, s:o, s:I}", "shard",
					  atoi(PQgetvalue(leases, i, 0)), "owner",
					  text_or_null(leases, i, 5), "epoch",
					  (json_int_t)atoll(PQgetvalue(leases, i, 2)),
					  "expires_in_s",
					  PQgetisnull(leases, i, 5) ?
						  json_null() :
						  json_real(atof(PQgetvalue(leases, i, 6))),
					  "sites", (json_int_t)atoll(PQgetvalue(leases, i, 4))));
		rc = ctl_print_json(doc);
		goto out;
	}
	printf("%d shards, %d instance%s alive\n\n", nshards, alive, alive == 1 ? "" : "s");
	if (PQntuples(inst))
		ctl_print_columns(inst, 6);
	else
		printf("no instance has run\n");
	printf("\n");
	ctl_print_columns(leases, 5);
	rc = CTL_OK;
out:
	PQclear(inst);
	PQclear(leases);
	return rc;
}

static int
show_history(struct ctl *ctl, const char *shard, long long last, int json)
{
	char last_s[24];
	PGresult *res;
	int rc = CTL_OK;

	snprintf(last_s, sizeof(last_s), "%lld", last);
	res = ctl_query(ctl, "reading lease_history", history_sql, 2,
			(const char *const[]){ shard, last_s });
	if (!res)
		return CTL_FAIL;
	if (json) {
		json_t *arr = json_array();

		for (int i = 0; arr && i < PQntuples(res); i++)
			json_array_append_new(arr,
					      json_pack("{s:i, s:I, s:s, s:s, s:o, s:o}", "shard",
							atoi(PQgetvalue(res, i, 0)), "epoch",
							(json_int_t)atoll(PQgetvalue(res, i, 1)),
							"owner", PQgetvalue(res, i, 2),
							"acquired_at", PQgetvalue(res, i, 7),
							"ended_at", text_or_null(res, i, 8), "how",
							text_or_null(res, i, 9)));
		rc = ctl_print_json(json_pack("{s:o}", "history", arr));
	} else if (PQntuples(res) == 0) {
		printf("no leases yet\n");
	} else {
		ctl_print_columns(res, 7);
	}
	PQclear(res);
	return rc;
}

int
ctl_cmd_cluster(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *shard = NULL, *last = NULL;
	int json = 0, history = 0;
	long long last_n = HISTORY_LAST;
	const struct ctl_opt opts[] = {
		{ "--json", NULL, &json },   { "--history", NULL, &history },
		{ "--shard", &shard, NULL }, { "--last", &last, NULL },
		{ NULL, NULL, NULL },
	};

	if (ctl_parse(CLUSTER_SYN, argc, argv, opts, pos, 0, 0) < 0)
		return CTL_USAGE;
	if ((shard || last) && !history)
		return tool_usage(CLUSTER_SYN, "--shard and --last go with --history");
	if (shard) {
		char *end;
		long v = strtol(shard, &end, 10);

		if (!*shard || *end || v < 0 || v >= CLUSTER_MAX_SHARDS)
			return tool_usage(CLUSTER_SYN, "--shard: a number from 0 to %d",
					  CLUSTER_MAX_SHARDS - 1);
	}
	if (last) {
		char *end;

		last_n = strtoll(last, &end, 10);
		if (!*last || *end || last_n < 1 || last_n > HISTORY_MAX)
			return tool_usage(CLUSTER_SYN, "--last: a number from 1 to %d",
					  HISTORY_MAX);
	}
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (history)
		return show_history(ctl, shard, last_n, json);
	return show_cluster(ctl, json);
}
