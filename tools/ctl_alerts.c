/* ctl_alerts.c - cordonctl's operating commands: alerts, ack, resolve,
 * stats, report daily.
 *
 * They read PostgreSQL only; ack and resolve publish the operator's
 * message on <topic_root>/<site>/ack (docs/alerts.md) with the Paho
 * synchronous client and leave the state change to cordond, which owns
 * the alerts table; then they wait until cordond has made it (the
 * alert's retained state on <topic_root>/<site>/alerts/<id>). */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTClient.h>
#include <jansson.h>

#include "clocks.h"
#include "config.h"
#include "ctl.h"
#include "mqtt_broker.h"
#include "normalize.h"
#include "temp.h"
#include "topics.h"
#include "views.h"

#define QUERY(ctl, what, sql, ...)                                                       \
	ctl_query((ctl), (what), (sql),                                                  \
		  (int)(sizeof((const char *[]){ __VA_ARGS__ }) / sizeof(const char *)), \
		  (const char *const[]){ __VA_ARGS__ })

int
ctl_load_config(struct ctl *ctl, struct config *cfg)
{
	int rc = config_init(cfg);

	if (rc < 0) {
		tool_err("%s", config_init_strerror(rc));
		return -1;
	}
	if (config_load(cfg, ctl->config_path, stderr) < 0) {
		config_finish(cfg);
		tool_err("invalid configuration in %s", ctl->config_path);
		return -1;
	}
	if (ctl->mqtt_username &&
	    (config_set_string(&cfg->mqtt_username, ctl->mqtt_username) < 0 ||
	     config_set_string(&cfg->mqtt_password_file,
			       ctl->mqtt_password_file ? ctl->mqtt_password_file : "") < 0)) {
		config_finish(cfg);
		tool_err("out of memory");
		return -1;
	}
	return 0;
}

int
ctl_check_mqtt_opts(const struct ctl *ctl, const char *synopsis)
{
	if (ctl->mqtt_username && (!ctl->mqtt_username[0] || strlen(ctl->mqtt_username) > 256)) {
		tool_usage(synopsis, "bad -u '%.80s': 1 to 256 bytes", ctl->mqtt_username);
		return -1;
	}
	if (ctl->mqtt_password_file && !ctl->mqtt_username) {
		tool_usage(synopsis, "--password-file needs -u USER");
		return -1;
	}
	if (ctl->mqtt_password_file && !ctl->mqtt_password_file[0]) {
		tool_usage(synopsis, "--password-file needs a file name");
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- alerts */

#define ALERTS                                                                              \
	"alerts [--follow [-u|--username USER [--password-file FILE]] | --json] [--kind K]" \
	" [--site S]"

PGresult *
ctl_open_alerts(struct ctl *ctl, const char *kind, const char *site)
{
	/* h, m: the silence holding the alert now (sql/0010 silence_match, the
	 * one definition cordon-notify uses too; OFFSET 0 keeps it one call
	 * per alert); z: the site's time zone. */
	return QUERY(
		ctl, "listing the open alerts",
		"SELECT to_char(a.raised_at AT TIME ZONE z.tz, 'YYYY-MM-DD\"T\"HH24:MI:SS') AS raised,"
		"       a.site, a.kind, a.severity,"
		"       a.state || coalesce(' (silenced #' || m.id || ' until ' || u.shown || ')', '')"
		"         AS state,"
		"       a.subject, a.count, a.alert_id,"
		"       floor(extract(epoch FROM a.raised_at))::bigint,"
		"       floor(extract(epoch FROM a.updated_at))::bigint,"
		"       concat_ws(', ', 'gate ' || a.gate, 'household ' || a.household,"
		"                 'card ' || a.card, 'zone ' || a.zone, 'call ' || a.call_id,"
		"                 a.temp_c || ' °C',"
		"                 a.distinct_subjects || ' distinct, e.g. '"
		"                 || replace(a.sample, ' ', ', ')),"
		"       a.state, coalesce(m.id::text, ''),"
		"       coalesce(to_char(m.ends_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
		"                ''),"
		"       coalesce(u.shown, ''), coalesce(m.reason, '')"
		"  FROM alerts a LEFT JOIN sites s ON s.site = a.site"
		" CROSS JOIN LATERAL (SELECT coalesce(s.timezone, $3) AS tz) z"
		" CROSS JOIN LATERAL (SELECT silence_match(a.site, a.kind, a.subject, now()) AS id"
		"                     OFFSET 0) h"
		"  LEFT JOIN silences m ON m.id = h.id"
		" CROSS JOIN LATERAL (SELECT to_char(m.ends_at AT TIME ZONE z.tz,"
		"        CASE WHEN (m.ends_at AT TIME ZONE z.tz)::date = (now() AT TIME ZONE z.tz)::date"
		"             THEN 'HH24:MI' ELSE 'YYYY-MM-DD HH24:MI' END) AS shown) u"
		" WHERE a.state <> 'resolved'"
		"   AND ($1::text IS NULL OR a.kind = $1)"
		"   AND ($2::text IS NULL OR a.site = $2)"
		" ORDER BY CASE a.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END,"
		"          a.raised_at DESC, a.alert_id",
		kind, site, ctl->default_tz);
}

/* Prints the open alerts as a JSON array (alerts --json): the listing's
 * fields, with count a number, state without the silence, detail, and
 * "silenced": {"id", "until" (UTC), "until_local", "reason"} or null. */
static int
print_alerts_json(PGresult *res)
{
	json_t *arr = json_array();

	for (int i = 0; arr && i < PQntuples(res); i++) {
		json_t *o = json_object(), *sil = json_null();
		char reason[512];

		/* The silence's reason is free text: a phone in it is masked. */
		snprintf(reason, sizeof(reason), "%s",
			 PQgetvalue(res, i, CTL_ALERT_SILENCE_REASON));
		normalize_mask_digits(reason, strlen(reason));
		if (*PQgetvalue(res, i, CTL_ALERT_SILENCE_ID))
			sil = json_pack("{s:I, s:s, s:s, s:s}", "id",
					(json_int_t)atoll(PQgetvalue(res, i, CTL_ALERT_SILENCE_ID)),
					"until", PQgetvalue(res, i, CTL_ALERT_SILENCE_UNTIL),
					"until_local", PQgetvalue(res, i, CTL_ALERT_SILENCE_SHOWN),
					"reason", reason);
		json_object_set_new(o, "alert_id", json_string(PQgetvalue(res, i, 7)));
		json_object_set_new(o, "raised", json_string(PQgetvalue(res, i, 0)));
		json_object_set_new(o, "site", json_string(PQgetvalue(res, i, 1)));
		json_object_set_new(o, "kind", json_string(PQgetvalue(res, i, 2)));
		json_object_set_new(o, "severity", json_string(PQgetvalue(res, i, 3)));
		json_object_set_new(o, "state", json_string(PQgetvalue(res, i, CTL_ALERT_STATE)));
		json_object_set_new(o, "subject", json_string(PQgetvalue(res, i, 5)));
		json_object_set_new(o, "count", json_integer(atoll(PQgetvalue(res, i, 6))));
		json_object_set_new(o, "detail", json_string(PQgetvalue(res, i, CTL_ALERT_DETAIL)));
		json_object_set_new(o, "silenced", sil);
		json_array_append_new(arr, o);
	}
	return ctl_print_json(arr);
}

int
ctl_cmd_alerts(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *kind = NULL, *site = NULL;
	int follow = 0, json = 0, rc;
	const struct ctl_opt opts[] = {
		{ "--follow", NULL, &follow }, { "--json", NULL, &json }, { "--kind", &kind, NULL },
		{ "--site", &site, NULL },     CTL_MQTT_OPTS(ctl),	  { NULL, NULL, NULL },
	};
	PGresult *res;

	if (ctl_parse(ALERTS, argc, argv, opts, pos, 0, 0) < 0)
		return CTL_USAGE;
	if (follow && json)
		return tool_usage(ALERTS, "--follow and --json exclude each other");
	if (ctl_check_mqtt_opts(ctl, ALERTS) < 0)
		return CTL_USAGE;
	if (!follow && ctl->mqtt_username)
		return tool_usage(ALERTS,
				  "-u and --password-file are for --follow (the list"
				  " alone reads PostgreSQL)");
	if (site && strcmp(site, "_daemon") != 0 && ctl_check_id(ALERTS, "site", site) < 0)
		return CTL_USAGE;
	/* A kind is a word such as isolation_overdue; --follow puts it in a topic filter. */
	if (kind && ctl_check_id(ALERTS, "kind", kind) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (follow)
		return ctl_follow_alerts(ctl, kind, site);
	res = ctl_open_alerts(ctl, kind, site);
	if (!res)
		return CTL_FAIL;
	rc = CTL_OK;
	if (json)
		rc = print_alerts_json(res);
	else if (PQntuples(res) == 0)
		printf("no open alerts\n");
	else
		ctl_print_columns(res, CTL_ALERTS_LISTED);
	PQclear(res);
	return rc;
}

const char *
ctl_whoami(void)
{
	const char *by = getenv("USER");
	struct passwd *pw;

	if (by && *by)
		return by;
	pw = getpwuid(getuid());
	return pw && pw->pw_name && *pw->pw_name ? pw->pw_name : NULL;
}

/* ---------------------------------------------------------------- ack, resolve */

#define ACK                                                                            \
	"ack ID [--by NAME] [--note TEXT] [--wait SECONDS | --no-wait] [-u|--username" \
	" USER [--password-file FILE]]"
#define RESOLVE                                                                            \
	"resolve ID [--by NAME] [--note TEXT] [--wait SECONDS | --no-wait] [-u|--username" \
	" USER [--password-file FILE]]"
/* How long ack and resolve wait for cordond's transition by default. */
#define ACK_WAIT_S 10

/* Reads the first line of a secret file into a malloc'd string. */
static char *
read_secret(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[1024];
	size_t n;

	if (!f)
		return NULL;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	return strdup(buf);
}

int
ctl_mqtt_connect(const struct config *cfg, const char *client_id, MQTTClient *ret_client)
{
	MQTTClient client;
	MQTTClient_connectOptions co = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions ssl;
	struct mqtt_broker broker;
	char *password = NULL;
	int rc;

	if (mqtt_broker_init(&broker, cfg) < 0) {
		tool_err("MQTT: [mqtt] uri '%s' is not a list of tcp:// or ssl:// URIs",
			 cfg->mqtt_uri);
		return -1;
	}
	rc = MQTTClient_create(&client, mqtt_broker_first(&broker), client_id,
			       MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTCLIENT_SUCCESS) {
		tool_err("MQTT: cannot create a client for %s: %s", cfg->mqtt_uri,
			 MQTTClient_strerror(rc));
		mqtt_broker_finish(&broker);
		return -1;
	}
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.connectTimeout = 10;
	if (cfg->mqtt_username[0])
		co.username = cfg->mqtt_username;
	if (cfg->mqtt_password_file[0]) {
		password = read_secret(cfg->mqtt_password_file);
		if (!password) {
			tool_err("cannot read the MQTT password file %s: %s",
				 cfg->mqtt_password_file, strerror(errno));
			MQTTClient_destroy(&client);
			mqtt_broker_finish(&broker);
			return -1;
		}
		co.password = password;
	}
	/* Each URI of the list in turn, the first that lets us in. */
	mqtt_broker_sync_options(&broker, &co, &ssl);
	rc = MQTTClient_connect(client, &co);
	mqtt_broker_finish(&broker);
	if (password) {
		memset(password, 0, strlen(password));
		free(password);
	}
	if (rc != MQTTCLIENT_SUCCESS) {
		tool_err("MQTT: cannot connect to %s: %s (%d)", cfg->mqtt_uri,
			 rc < 0 ? MQTTClient_strerror(rc) : "refused by the broker", rc);
		MQTTClient_destroy(&client);
		return -1;
	}
	*ret_client = client;
	return 0;
}

/* Whether the alert's retained state (payload of len bytes on
 * alerts/<id>; zero bytes: cleared, resolved) shows `action` done. */
static int
is_transition_done(const char *action, const void *payload, int len)
{
	json_t *o;
	const char *state;
	int done;

	if (len == 0)
		return 1;
	o = json_loadb(payload, (size_t)len, 0, NULL);
	state = json_string_value(json_object_get(o, "state"));
	done = state &&
		(strcmp(state, "resolved") == 0 ||
		 (strcmp(action, "ack") == 0 && strcmp(state, "acked") == 0));
	json_decref(o);
	return done;
}

/* Whether a reject notice (payload on <site>/reject) is cordond's answer
 * that alert `id` is not open. */
static int
is_refusal_of(const char *id, const void *payload, int len)
{
	json_t *o = json_loadb(payload, (size_t)len, 0, NULL);
	const char *detail = json_string_value(json_object_get(o, "detail"));
	char want[200];
	int yes;

	snprintf(want, sizeof(want), "no open alert %.40s ", id);
	yes = detail && strncmp(detail, want, strlen(want)) == 0;
	json_decref(o);
	return yes;
}

/* Publishes the operator's message (QoS 1, waiting for the broker's
 * PUBACK) and, when wait_s > 0, waits up to wait_s seconds for cordond's
 * transition: it subscribes to the alert's retained state and the site's
 * reject notices before publishing, so that neither can be missed.
 * Returns 0, or -1 after printing why (not published, not subscribed,
 * refused by cordond, or no transition in time). */
static int
publish_and_wait(const struct config *cfg, const char *site, const char *id, const char *action,
		 const char *by, const char *topic, const char *payload, long wait_s)
{
	MQTTClient client;
	MQTTClient_deliveryToken token;
	char client_id[64], *filters[2] = { NULL, NULL };
	int qos[2] = { 1, 1 }, rc, ret = -1;
	int64_t deadline;

	snprintf(client_id, sizeof(client_id), "cordonctl-%ld", (long)getpid());
	if (ctl_mqtt_connect(cfg, client_id, &client) < 0)
		return -1;
	if (wait_s > 0) {
		filters[0] = malloc(TOPIC_MAX_BYTES);
		filters[1] = malloc(TOPIC_MAX_BYTES);
		if (filters[0] && filters[1] &&
		    (topics_build(filters[0], TOPIC_MAX_BYTES, cfg->topic_root, TOPIC_ALERT_STATE,
				  site, id) < 0 ||
		     topics_build(filters[1], TOPIC_MAX_BYTES, cfg->topic_root, TOPIC_REJECT, site,
				  NULL) < 0)) {
			tool_err("alert id too long");
			goto out;
		}
		if (!filters[0] || !filters[1]) {
			tool_err("out of memory");
			goto out;
		}
		rc = MQTTClient_subscribeMany(client, 2, filters, qos);
		if (rc != MQTTCLIENT_SUCCESS || qos[0] >= 0x80 || qos[1] >= 0x80) {
			tool_err(
				"MQTT: the broker refused the subscription to %s: %s; cannot wait for"
				" the %s (give --no-wait to send it anyway)",
				filters[0],
				rc != MQTTCLIENT_SUCCESS ? MQTTClient_strerror(rc) :
							   "not authorized?",
				action);
			goto out;
		}
	}
	rc = MQTTClient_publish(client, topic, (int)strlen(payload), payload, 1, 0, &token);
	if (rc == MQTTCLIENT_SUCCESS)
		rc = MQTTClient_waitForCompletion(client, token, 10000);
	if (rc != MQTTCLIENT_SUCCESS) {
		tool_err("MQTT: publishing on %s: %s", topic, MQTTClient_strerror(rc));
		goto out;
	}
	printf("%s of alert %s (site %s) by %s sent on %s\n", action, id, site, by, topic);
	fflush(stdout);
	if (wait_s <= 0) {
		ret = 0;
		goto out;
	}
	deadline = clocks_mono_ms() + wait_s * 1000;
	while (ret < 0) {
		int64_t left = deadline - clocks_mono_ms();
		MQTTClient_message *m = NULL;
		char *t = NULL;
		int tlen = 0;

		if (left <= 0) {
			tool_err("no %s of alert %s within %ld s: is cordond running and subscribed"
				 " to %s/+/ack? (its log and /healthz say why not)",
				 strcmp(action, "ack") == 0 ? "acknowledgement" : "resolution", id,
				 wait_s, cfg->topic_root);
			break;
		}
		rc = MQTTClient_receive(client, &t, &tlen, &m,
					(unsigned long)(left < 500 ? left : 500));
		if ((rc == MQTTCLIENT_SUCCESS || rc == MQTTCLIENT_TOPICNAME_TRUNCATED) && m) {
			int done = 0, refused = 0;

			if (strcmp(t, filters[0]) == 0)
				done = is_transition_done(action, m->payload, m->payloadlen);
			else
				refused = is_refusal_of(id, m->payload, m->payloadlen);
			MQTTClient_freeMessage(&m);
			MQTTClient_free(t);
			if (done) {
				printf("alert %s is %s\n", id,
				       strcmp(action, "ack") == 0 ? "acknowledged" : "resolved");
				ret = 0;
			} else if (refused) {
				tool_err("cordond has no open alert %s (resolved meanwhile?)", id);
				break;
			}
			continue;
		}
		if (rc != MQTTCLIENT_SUCCESS || !MQTTClient_isConnected(client)) {
			tool_err("MQTT: connection to %s lost while waiting for the %s",
				 cfg->mqtt_uri, action);
			break;
		}
	}
out:
	free(filters[0]);
	free(filters[1]);
	if (MQTTClient_isConnected(client))
		MQTTClient_disconnect(client, 1000);
	MQTTClient_destroy(&client);
	return ret;
}

/* The site of open alert `id` from its retained state on the broker
 * (<root>/<site>/alerts/<id>, docs/alerts.md), for an alert PostgreSQL
 * has no row of: cordond publishes a raise as it judges it and stores it
 * with its next batch, so one seen live (alerts --follow) can be acked
 * before its row is committed. Waits up to 2 s for the retained message,
 * which the broker sends at the SUBSCRIBE. Returns 1 with site[len] set, 0
 * when the broker holds no open state of it (never raised, or resolved:
 * a zero-length retained message), -1 when the broker cannot be asked
 * (printed). */
static int
site_from_broker(const struct config *cfg, const char *id, char *site, size_t len)
{
	MQTTClient client;
	char client_id[64], filter[TOPIC_MAX_BYTES];
	int64_t deadline;
	int rc, found = 0;

	if (topics_build(filter, sizeof(filter), cfg->topic_root, TOPIC_ALERT_STATE, NULL, id) <
	    0) {
		tool_err("alert id too long");
		return -1;
	}
	snprintf(client_id, sizeof(client_id), "cordonctl-%ld", (long)getpid());
	if (ctl_mqtt_connect(cfg, client_id, &client) < 0)
		return -1;
	rc = MQTTClient_subscribe(client, filter, 1);
	if (rc != MQTTCLIENT_SUCCESS) {
		tool_err("MQTT: cannot subscribe to %s: %s", filter, MQTTClient_strerror(rc));
		found = -1;
	}
	deadline = clocks_mono_ms() + 2000;
	while (found == 0) {
		int64_t left = deadline - clocks_mono_ms();
		MQTTClient_message *m = NULL;
		char *t = NULL;
		int tlen = 0;

		if (left <= 0)
			break;
		rc = MQTTClient_receive(client, &t, &tlen, &m, (unsigned long)left);
		if ((rc == MQTTCLIENT_SUCCESS || rc == MQTTCLIENT_TOPICNAME_TRUNCATED) && m) {
			json_t *o = m->payloadlen > 0 ?
				json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL) :
				NULL;
			const char *s = json_string_value(json_object_get(o, "site"));
			const char *state = json_string_value(json_object_get(o, "state"));

			if (s && *s && strlen(s) < len && state && strcmp(state, "resolved") != 0) {
				snprintf(site, len, "%s", s);
				found = 1;
			}
			json_decref(o);
			MQTTClient_freeMessage(&m);
			MQTTClient_free(t);
			continue;
		}
		if (rc != MQTTCLIENT_SUCCESS || !MQTTClient_isConnected(client))
			break;
	}
	if (MQTTClient_isConnected(client))
		MQTTClient_disconnect(client, 1000);
	MQTTClient_destroy(&client);
	return found;
}

/* After cordond's transition was seen on MQTT: waits up to wait_s
 * seconds, polling every 100 ms, until PostgreSQL's `alerts` row shows
 * it too. cordond publishes a transition as it judges it and stores it
 * with its batch a few milliseconds later (docs/architecture.md), so
 * without this wait `cordonctl alerts` run straight after could still
 * list the alert as it was. Not seen in time (PostgreSQL down, cordond
 * holding its batch) is a warning only: cordond made the transition and
 * stores it once PostgreSQL takes its batch. */
static void
wait_stored(struct ctl *ctl, const char *id, const char *action, long wait_s)
{
	const char *sql = strcmp(action, "ack") == 0 ?
		"SELECT 1 FROM alerts WHERE alert_id = $1"
		" AND state IN ('acked', 'resolved')" :
		"SELECT 1 FROM alerts WHERE alert_id = $1 AND state = 'resolved'";
	int64_t deadline = clocks_mono_ms() + wait_s * 1000;

	for (;;) {
		PGresult *res = QUERY(ctl, "reading the alert back", sql, id);
		int seen = res && PQntuples(res) > 0;

		PQclear(res);
		if (seen)
			return;
		if (!res || clocks_mono_ms() >= deadline)
			break;
		usleep(100 * 1000);
	}
	tool_err("warning: cordond %s alert %s, but PostgreSQL does not show it yet; cordond"
		 " stores it once PostgreSQL takes its batch (its log and /healthz say why not)",
		 strcmp(action, "ack") == 0 ? "acknowledged" : "resolved", id);
}

static int
ack_or_resolve(struct ctl *ctl, const char *action, const char *synopsis, int argc, char **argv)
{
	const char *pos[1], *by = NULL, *note = NULL, *wait = NULL;
	int no_wait = 0;
	const struct ctl_opt opts[] = {
		{ "--by", &by, NULL },	   { "--note", &note, NULL },
		{ "--wait", &wait, NULL }, { "--no-wait", NULL, &no_wait },
		CTL_MQTT_OPTS(ctl),	   { NULL, NULL, NULL },
	};
	struct config cfg;
	PGresult *res;
	json_t *msg;
	char *payload, *topic = NULL, *site, *end;
	long wait_s = ACK_WAIT_S;
	int rc;

	if (ctl_parse(synopsis, argc, argv, opts, pos, 1, 1) < 0)
		return CTL_USAGE;
	if (wait && no_wait)
		return tool_usage(synopsis, "--wait and --no-wait exclude each other");
	if (ctl_check_mqtt_opts(ctl, synopsis) < 0)
		return CTL_USAGE;
	if (wait) {
		errno = 0;
		wait_s = strtol(wait, &end, 10);
		if (errno || end == wait || *end || wait_s < 1 || wait_s > 3600)
			return tool_usage(synopsis, "bad --wait '%.80s': whole seconds, 1 to 3600",
					  wait);
	}
	if (no_wait)
		wait_s = 0;
	if (!*pos[0] || strlen(pos[0]) > 128)
		return tool_usage(synopsis, "bad alert id '%.80s'", pos[0]);
	if (!by && !(by = ctl_whoami()))
		return tool_usage(synopsis, "cannot tell who you are: give --by NAME");
	if (!*by || strlen(by) > 128)
		return tool_usage(synopsis, "bad --by '%.80s'", by);
	if (note && strlen(note) > 1000)
		return tool_usage(synopsis, "--note is longer than 1000 bytes");
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	res = QUERY(ctl, "looking up the alert",
		    "SELECT site, state = 'resolved' FROM alerts WHERE alert_id = $1", pos[0]);
	if (!res)
		return CTL_FAIL;
	if (PQntuples(res) == 1 && PQgetvalue(res, 0, 1)[0] == 't') {
		PQclear(res);
		tool_err("no open alert %s (resolved)", pos[0]);
		return CTL_FAIL;
	}
	site = PQntuples(res) == 1 ? strdup(PQgetvalue(res, 0, 0)) : NULL;
	rc = PQntuples(res);
	PQclear(res);
	if ((rc == 1 && !site) || ctl_load_config(ctl, &cfg) < 0) {
		free(site);
		return CTL_FAIL;
	}
	if (!site) {
		/* No row (yet): the broker's retained state may name it. */
		char from_broker[NORM_ID_MAX + 1];
		int got = site_from_broker(&cfg, pos[0], from_broker, sizeof(from_broker));

		if (got <= 0 || !(site = strdup(from_broker))) {
			if (got == 0)
				tool_err("no open alert %s", pos[0]);
			config_finish(&cfg);
			return CTL_FAIL;
		}
	}
	msg = json_pack("{s:s, s:s, s:s}", "alert_id", pos[0], "by", by, "action", action);
	if (msg && note)
		json_object_set_new(msg, "note", json_string(note));
	payload = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	topic = malloc(TOPIC_MAX_BYTES);
	if (!payload || !topic ||
	    topics_build(topic, TOPIC_MAX_BYTES, cfg.topic_root, TOPIC_ACK, site, NULL) < 0) {
		tool_err("out of memory");
		rc = CTL_FAIL;
	} else if (publish_and_wait(&cfg, site, pos[0], action, by, topic, payload, wait_s) < 0) {
		rc = CTL_FAIL;
	} else {
		if (wait_s > 0)
			wait_stored(ctl, pos[0], action, wait_s);
		rc = CTL_OK;
	}
	free(payload);
	free(topic);
	free(site);
	config_finish(&cfg);
	return rc;
}

int
ctl_cmd_ack(struct ctl *ctl, int argc, char **argv)
{
	return ack_or_resolve(ctl, "ack", ACK, argc, argv);
}

int
ctl_cmd_resolve(struct ctl *ctl, int argc, char **argv)
{
	return ack_or_resolve(ctl, "resolve", RESOLVE, argc, argv);
}

/* ---------------------------------------------------------------- stats */

/* Prints a result as a table under a heading, "(none)" when empty. */
static void
print_titled(const char *title, PGresult *res)
{
	printf("%s\n", title);
	if (PQntuples(res) == 0)
		printf("(none)\n");
	else
		ctl_print_table(res);
	printf("\n");
}

/* Runs a query and prints it under a heading. */
static int
section(struct ctl *ctl, const char *title, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = ctl_query(ctl, title, sql, nparams, params);

	if (!res)
		return -1;
	print_titled(title, res);
	PQclear(res);
	return 0;
}

int
ctl_cmd_stats(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1];

	if (ctl_parse("stats", argc, argv, NULL, pos, 0, 0) < 0)
		return CTL_USAGE;
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (section(ctl, "rows per table",
		    "SELECT t AS table, last_hour, total FROM ("
		    " SELECT 1 AS o, 'gate_events' AS t,"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour') AS last_hour,"
		    "  count(*) AS total FROM gate_events"
		    " UNION ALL SELECT 2, 'gate_status',"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour'), count(*)"
		    "  FROM gate_status"
		    " UNION ALL SELECT 3, 'disinfections',"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour'), count(*)"
		    "  FROM disinfections"
		    " UNION ALL SELECT 4, 'hotline_events',"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour'), count(*)"
		    "  FROM hotline_events"
		    " UNION ALL SELECT 5, 'isolation_checks',"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour'), count(*)"
		    "  FROM isolation_checks"
		    " UNION ALL SELECT 6, 'acks',"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour'), count(*)"
		    "  FROM acks"
		    " UNION ALL SELECT 7, 'rejects',"
		    "  count(*) FILTER (WHERE received_at >= now() - interval '1 hour'), count(*)"
		    "  FROM rejects"
		    ") x ORDER BY o",
		    0, NULL) < 0 ||
	    section(ctl, "rejects by reason (last 24 h)",
		    "SELECT reason, count(*) AS rejects FROM rejects"
		    " WHERE received_at >= now() - interval '24 hours'"
		    " GROUP BY reason ORDER BY count(*) DESC, reason",
		    0, NULL) < 0 ||
	    section(ctl, "open alerts by kind",
		    "SELECT kind, count(*) AS open,"
		    "       count(*) FILTER (WHERE severity = 'critical') AS critical,"
		    "       count(*) FILTER (WHERE state = 'acked') AS acked"
		    "  FROM alerts WHERE state <> 'resolved' GROUP BY kind ORDER BY kind",
		    0, NULL) < 0 ||
	    section(ctl, "spool checkpoint",
		    "SELECT instance, spool_id, position,"
		    "       to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SSOF') AS updated_at"
		    "  FROM spool_checkpoint ORDER BY instance",
		    0, NULL) < 0)
		return CTL_FAIL;
	return CTL_OK;
}

/* ---------------------------------------------------------------- report daily */

#define REPORT "report daily [--date YYYY-MM-DD] [--site S] [--csv]"
/* The report's sections and days are views.c's (shared with cordon-web);
 * the text form prints each section under its title. */
int
ctl_cmd_report(struct ctl *ctl, int argc, char **argv)
{
	const char *pos[1], *date = NULL, *site = NULL;
	int csv = 0, rc = CTL_OK;
	const struct ctl_opt opts[] = {
		{ "--date", &date, NULL },
		{ "--site", &site, NULL },
		{ "--csv", NULL, &csv },
		{ NULL, NULL, NULL },
	};
	struct config cfg;
	struct views_report_args args;
	char fever[32], errbuf[512], *root;
	PGresult *days, *res;

	if (argc < 1 || strcmp(argv[0], "daily") != 0)
		return tool_usage(REPORT, "report what? (only 'daily' is known)");
	if (ctl_parse(REPORT, argc - 1, argv + 1, opts, pos, 0, 0) < 0)
		return CTL_USAGE;
	if (site && ctl_check_id(REPORT, "site", site) < 0)
		return CTL_USAGE;
	if (date && !views_is_date(date))
		return tool_usage(REPORT, "bad date '%.40s': use YYYY-MM-DD", date);
	if (ctl_open(ctl) < 0)
		return CTL_FAIL;
	if (site && ctl_site_exists(ctl, site) <= 0)
		return CTL_FAIL;
	if (ctl_load_config(ctl, &cfg) < 0)
		return CTL_FAIL;
	temp_format_c(cfg.fever_c, fever, sizeof(fever));
	root = strdup(cfg.topic_root);
	config_finish(&cfg);
	if (!root) {
		tool_err("out of memory");
		return CTL_FAIL;
	}
	args = (struct views_report_args){
		.site = site,
		.date = date,
		.default_tz = ctl->default_tz,
		.fever = fever,
		.topic_root = root,
		.check_interval_s = ctl->check_interval_s,
		.disinfection_interval_s = ctl->disinfection_interval_s,
	};
	if (csv) {
		if (views_report_csv(ctl->conn, &args, stdout, errbuf, sizeof(errbuf)) < 0) {
			fflush(stdout);
			tool_err("%s", errbuf);
			rc = CTL_FAIL;
		}
		free(root);
		return rc;
	}
	if (views_report_days(ctl->conn, &args, &days, errbuf, sizeof(errbuf)) < 0) {
		tool_err("%s", errbuf);
		free(root);
		return CTL_FAIL;
	}
	for (int i = 0; i < PQntuples(days) && rc == CTL_OK; i++) {
		printf("Daily report: site %s, %s (%s)\n\n", PQgetvalue(days, i, 0),
		       PQgetvalue(days, i, 2), PQgetvalue(days, i, 1));
		for (size_t s = 0; s < VIEWS_REPORT_NSECTIONS; s++) {
			if (views_report_section(ctl->conn, &args, days, i, s, &res, errbuf,
						 sizeof(errbuf)) < 0) {
				fflush(stdout);
				tool_err("%s", errbuf);
				rc = CTL_FAIL;
				break;
			}
			print_titled(views_report_sections[s].title, res);
			PQclear(res);
		}
	}
	if (rc == CTL_OK && PQntuples(days) == 0)
		printf("no sites\n");
	PQclear(days);
	free(root);
	return rc;
}
