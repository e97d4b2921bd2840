/* notifier_main.c - cordon-notify: alerts reach people (issue 17,
 * docs/notify.md).
 *
 * Threads:
 *  - Paho's receive thread: each alert transition from cordon/+/alert/#
 *    (QoS 1, persistent session) goes into notify_inbox before our
 *    callback returns, i.e. before the PUBACK (docs/architecture.md, "When
 *    is a message acknowledged?"). While PostgreSQL is away the callback
 *    waits and retries: the broker keeps the rest.
 *  - the main thread: routes the inbox, runs the reminder, escalation and
 *    silence clocks, renders the metrics, handles signals.
 *  - one sender thread per receiver: takes its due messages one at a time,
 *    keeps the receiver's rate limit, records each answer, and raises (and
 *    resolves) notify_failed when the receiver fails for fail_after.
 * Each thread has its own PostgreSQL connection. cordond is never waited
 * for: cordon-notify only reads its topics. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>
#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <xxhash.h>

#include "backoff.h"
#include "clocks.h"
#include "db.h"
#include "log.h"
#include "metrics.h"
#include "mqtt_broker.h"
#include "notifier.h"
#include "notifier_config.h"
#include "notifier_db.h"
#include "notifier_send.h"
#include "procstat.h"
#include "tz.h"
#include "version.h"

#ifndef CORDON_VERSION
#define CORDON_VERSION "0"
#endif

#define RATE_WINDOW_MS 60000
#define RATE_MAX 1000 /* the largest rate_limit we keep a window for */

static const double latency_bounds[HIST_BUCKETS] = { 0.05, 0.1, 0.25, 0.5, 1,	2,
						     5,	   10,	30,   60,  300, 3600 };

struct sender {
	struct notify *n;
	const struct receiver *r;
	size_t index;
	pthread_t thread;
	bool started;
	PGconn *db;
	struct notifier_sender *http;
	int64_t window[RATE_MAX]; /* wall ms of recent accepted sends, a ring */
	int wstart, wlen;
	/* notify_failed: failing since (wall ms, 0 when fine), and the open alert. */
	int64_t failing_since;
	char failed_alert[40];
	int64_t failed_raised_ms;
	char last_answer[200];
	/* tz cache: site -> zone */
	struct {
		char site[65];
		struct tz *tz;
	} zones[32];
	int nzones;
	struct tz *default_tz;
	/* counters, read by the main thread */
	_Atomic uint64_t sent, retried, rate_limited, given_up;
	_Atomic int up;
	pthread_mutex_t hist_lock;
	struct histogram latency;
};

/* An answer a sender could not record before a reload stopped it (PostgreSQL
 * away): the next sender of that receiver records it before it takes
 * anything, so that the message is not sent again. */
struct held_answer {
	char receiver[65];
	int64_t id;
	struct send_result res;
	char *body;
	int64_t retry_ms;
};

struct notify {
	struct notifier_config cfg;
	const char *config_path;
	MQTTAsync mqtt;
	char *mqtt_password;
	/* The connect options every (re)connect of ours uses, and what they
	 * point to; the reconnects (mqtt_broker.h). */
	struct mqtt_broker broker;
	MQTTAsync_connectOptions conn;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties props;
	struct mqtt_redial redial;
	char topic_alerts[80];
	_Atomic int stopping;
	_Atomic int connected;
	/* The SUBACK of the alert filter on this connection: 0 none yet, 1
	 * granted, -1 refused (not by Mosquitto 2.0: it grants a filter its
	 * ACL does not let us read, and then delivers nothing). */
	_Atomic int subscribed;
	/* subscriptions granted since start: the main loop tells a new link
	 * (whose session's backlog comes first) from the one it knew */
	_Atomic uint64_t subscriptions;
	const char *mqtt_user; /* "" when none; points into cfg, kept on reload */
	_Atomic int callback_waiting;
	int wake_fd;
	PGconn *inbox_db; /* the receive thread's */
	PGconn *db;	  /* the main thread's */
	_Atomic int db_up;
	char db_err[256]; /* the last reason db_start() failed (main thread) */
	struct sender *senders;
	size_t nsenders;
	pthread_mutex_t lock; /* the senders' wake-up */
	pthread_cond_t cond;
	struct held_answer *held; /* under lock */
	size_t nheld;
	struct notifier_db_counts counts;
	_Atomic uint64_t inbox_new, inbox_dup, inbox_bad, inbox_waits;
	struct metrics *metrics;
	struct log_ratelimit bad_rl;
	struct log_ratelimit reconcile_rl;
};

static void
wake_main(struct notify *n)
{
	uint64_t one = 1;

	if (write(n->wake_fd, &one, sizeof(one)) < 0) {
		/* the counter is full: the loop is awake anyway */
	}
}

static void
wake_senders(struct notify *n)
{
	pthread_mutex_lock(&n->lock);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* Waits up to `ms` on the senders' condition (woken by new messages and
 * by stop). */
static void
sender_wait(struct notify *n, int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&n->lock);
	if (!atomic_load(&n->stopping))
		pthread_cond_timedwait(&n->cond, &n->lock, &ts);
	pthread_mutex_unlock(&n->lock);
}

/* (Re)connects `*c` when it is not usable; returns whether it is. */
static bool
db_ready(PGconn **c, const char *conninfo, const char *who)
{
	if (*c && PQstatus(*c) == CONNECTION_OK)
		return true;
	if (*c)
		PQfinish(*c);
	*c = db_connect(conninfo, who);
	if (*c && PQstatus(*c) == CONNECTION_OK)
		return true;
	return false;
}

/* ---- the receive thread ---- */

static int
on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct notify *n = context;
	json_t *doc = json_loadb(m->payload, (size_t)m->payloadlen, 0, NULL);
	struct notifier_alert a;
	struct backoff b;
	char err[NOTIFIER_ERR_LEN];
	const char *bad;
	int rc;

	(void)topic_len;
	bad = !doc ? "not JSON" :
		notifier_alert_from_json(doc, &a) < 0 ?
		     "not an alert message (docs/alerts.md, \"The message\")" :
		     NULL;
	if (bad) {
		atomic_fetch_add(&n->inbox_bad, 1);
		log_limited(&n->bad_rl, LOG_LEVEL_WARNING,
			    "%s: %s (%d bytes): stored in rejects as not_alert", topic, bad,
			    m->payloadlen);
	}
	backoff_init(&b, 500, 15000);
	for (;;) {
		rc = -1;
		if (!db_ready(&n->inbox_db, n->cfg.base.pg_conninfo, "cordon-notify inbox"))
			db_error_text(n->inbox_db, NULL, err, sizeof(err));
		else if (bad)
			rc = notifier_db_reject_add(n->inbox_db, topic, m->payload,
						    (size_t)m->payloadlen, bad, err);
		else
			rc = notifier_db_inbox_add(n->inbox_db, m->payload, (size_t)m->payloadlen,
						   &a, err);
		if (rc >= 0)
			break;
		/* No PUBACK for what is not stored: wait, the broker keeps the rest. */
		if (!atomic_exchange(&n->callback_waiting, 1))
			log_warn(
				"inbox: cannot store a message of %s: %s; holding it (and the broker"
				" the ones after it) and retrying",
				topic, err);
		atomic_fetch_add(&n->inbox_waits, 1);
		usleep((useconds_t)backoff_next(&b) * 1000);
	}
	if (atomic_exchange(&n->callback_waiting, 0))
		log_notice("inbox: PostgreSQL takes alerts again");
	if (!bad)
		atomic_fetch_add(rc == 1 ? &n->inbox_new : &n->inbox_dup, 1);
	if (rc == 1 && !bad)
		log_debug("inbox: alert %s %s %s %s", a.alert_id, a.kind, a.transition, a.subject);
	json_decref(doc);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	wake_main(n);
	return 1;
}

static void
on_subscribed(void *context, MQTTAsync_successData5 *resp)
{
	struct notify *n = context;
	/* Paho: one filter's reason code is in reasonCode; reasonCodes holds
	 * them only for several (MQTTAsync_subscribeMany). */
	int granted = resp->alt.sub.reasonCodeCount > 1 && resp->alt.sub.reasonCodes ?
		resp->alt.sub.reasonCodes[0] :
		resp->reasonCode;

	if (granted < 0x80)
		atomic_fetch_add(&n->subscriptions, 1);
	atomic_store(&n->subscribed, granted >= 0x80 ? -1 : 1);
	if (granted >= 0x80)
		log_err("MQTT: subscription to %s refused (reason 0x%02x): check the broker's ACL"
			" for user %s",
			n->topic_alerts, granted, n->mqtt_user[0] ? n->mqtt_user : "(none)");
	else
		log_info("MQTT: subscribed to %s", n->topic_alerts);
}

static void
on_subscribe_failed(void *context, MQTTAsync_failureData5 *resp)
{
	struct notify *n = context;

	atomic_store(&n->subscribed, -1);
	log_err("MQTT: subscription to %s failed (reason 0x%02x): check the broker's ACL for"
		" user %s",
		n->topic_alerts, resp ? resp->reasonCode : 0,
		n->mqtt_user[0] ? n->mqtt_user : "(none)");
}

static void
on_connected(void *context, char *cause)
{
	struct notify *n = context;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;

	(void)cause;
	atomic_store(&n->connected, 1);
	ro.context = n;
	ro.onSuccess5 = on_subscribed;
	ro.onFailure5 = on_subscribe_failed;
	if (MQTTAsync_subscribe(n->mqtt, n->topic_alerts, 1, &ro) != MQTTASYNC_SUCCESS)
		log_err("MQTT: cannot subscribe to %s", n->topic_alerts);
	wake_main(n);
}

static void
on_connection_lost(void *context, char *cause)
{
	struct notify *n = context;

	atomic_store(&n->connected, 0);
	atomic_store(&n->subscribed, 0);
	log_warn("MQTT: connection lost (%s); reconnecting", cause ? cause : "no reason given");
	mqtt_redial_lost(&n->redial);
}

/* Paho's thread: our connect got in; the connected callback (above)
 * subscribes. */
static void
on_connect_success(void *context, MQTTAsync_successData5 *resp)
{
	struct notify *n = context;

	const char *user = n->mqtt_user;

	/* The user says which ACL block applies: a broker that may not let it
	 * read the alert topics grants the SUBSCRIBE all the same (Mosquitto
	 * 2.0) and then delivers nothing (docs/notify.md, "Troubleshooting"). */
	if (user[0])
		log_info("MQTT: connected to %s as client %s, user %s",
			 resp->alt.connect.serverURI ? resp->alt.connect.serverURI : "the broker",
			 n->cfg.client_id, user);
	else
		log_info("MQTT: connected to %s as client %s, without a user name",
			 resp->alt.connect.serverURI ? resp->alt.connect.serverURI : "the broker",
			 n->cfg.client_id);
	mqtt_redial_up(&n->redial);
}

static void
on_connect_failed(void *context, MQTTAsync_failureData5 *resp)
{
	struct notify *n = context;

	log_warn("MQTT: connect failed (%s); retrying",
		 resp && resp->message ? resp->message : "no answer");
	mqtt_redial_failed(&n->redial);
}

/* The main loop: connects again when mqtt_redial says so. */
static void
mqtt_tick(struct notify *n, int64_t now_ms)
{
	int rc;

	if (!mqtt_redial_due(&n->redial, now_ms))
		return;
	mqtt_broker_next(&n->broker); /* the next node, if a list */
	mqtt_broker_dial(&n->broker, &n->conn);
	rc = MQTTAsync_connect(n->mqtt, &n->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warn("MQTT: cannot start connecting: %s; retrying", MQTTAsync_strerror(rc));
		mqtt_redial_failed(&n->redial);
	}
}

static int
mqtt_start(struct notify *n)
{
	const struct config *c = &n->cfg.base;
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
	MQTTProperty p;
	const char *user, *pwfile;
	int rc;

	snprintf(n->topic_alerts, sizeof(n->topic_alerts), "%s/+/alert/#", c->topic_root);
	if (mqtt_broker_init(&n->broker, c) < 0)
		return -1;
	co.sendWhileDisconnected = 1;
	co.maxBufferedMessages = 1000;
	rc = MQTTAsync_createWithOptions(&n->mqtt, mqtt_broker_first(&n->broker), n->cfg.client_id,
					 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("MQTT: cannot create the client for %s (%d)", c->mqtt_uri, rc);
		return -1;
	}
	MQTTAsync_setCallbacks(n->mqtt, n, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(n->mqtt, n, on_connected);
	conn.keepAliveInterval = (int)(c->mqtt_keepalive / 1000);
	conn.cleanstart = 0; /* our session, and what it queued while we were away */
	/* Our reconnects (mqtt_tick), so that each walks the list of URIs
	 * from the first. */
	conn.automaticReconnect = 0;
	conn.connectTimeout = 10;
	conn.onSuccess5 = on_connect_success;
	conn.onFailure5 = on_connect_failed;
	conn.context = n;
	n->props = (MQTTProperties)MQTTProperties_initializer;
	p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
	p.value.integer4 = (unsigned)(c->mqtt_session_expiry / 1000);
	MQTTProperties_add(&n->props, &p);
	conn.connectProperties = &n->props;
	/* [notify] username and password_file, else [mqtt]'s; the strings
	 * stay in n->cfg (a reload keeps them) for the reconnects. */
	user = notifier_config_username(&n->cfg);
	pwfile = notifier_config_password_file(&n->cfg);
	n->mqtt_user = user;
	if (user[0])
		conn.username = user;
	if (pwfile[0]) {
		n->mqtt_password = config_read_secret(pwfile);
		if (!n->mqtt_password) {
			log_err("cannot read [%s] password_file %s",
				n->cfg.username[0] ? "notify" : "mqtt", pwfile);
			return -1;
		}
		conn.password = n->mqtt_password;
	}
	mqtt_broker_async_options(&n->broker, &conn, &n->ssl);
	n->conn = conn;
	mqtt_redial_init(&n->redial);
	rc = MQTTAsync_connect(n->mqtt, &n->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("MQTT: cannot start connecting to %s (%d)", c->mqtt_uri, rc);
		return -1;
	}
	return 0;
}

/* ---- notify_failed: cordon-notify's own alert ---- */

static void
iso_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	char sec[32];

	gmtime_r(&t, &tm);
	strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03dZ", sec, (int)(ms % 1000));
}

/* Raises (resolve false) or resolves s's notify_failed: the alert row and
 * its transition (cordonctl alerts shows it), our inbox (routed to the
 * other receivers), and the alert topics as cordond publishes them
 * (docs/alerts.md). Returns 0, or -1 when PostgreSQL did not take it. */
static int
failed_alert(struct sender *s, bool resolve)
{
	struct notify *n = s->n;
	int64_t now = clocks_wall_us() / 1000;
	char raised[64], at[64], subject[80], text[800], topic[160], err[NOTIFIER_ERR_LEN];
	json_t *doc;
	char *payload;
	struct notifier_alert a;
	PGresult *res;
	int rc = -1;

	if (!resolve) {
		XXH64_hash_t h;
		char key[160];

		snprintf(key, sizeof(key), "notify_failed/%s/%" PRId64, s->r->name, now);
		h = XXH3_64bits(key, strlen(key));
		snprintf(s->failed_alert, sizeof(s->failed_alert), "%016" PRIx64 "%016" PRIx64,
			 (uint64_t)h, (uint64_t)XXH3_64bits_withSeed(key, strlen(key), 1));
		s->failed_raised_ms = now;
	}
	iso_time(s->failed_raised_ms, raised, sizeof(raised));
	iso_time(now, at, sizeof(at));
	snprintf(subject, sizeof(subject), "receiver:%s", s->r->name);
	snprintf(text, sizeof(text), "Receiver %s (%s) %s: %s", s->r->name,
		 notifier_receiver_type_name(s->r->type),
		 resolve ? "accepts messages again" : "has not accepted a message for a while",
		 s->last_answer);
	doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:n, s:s}",
			"alert_id", s->failed_alert, "kind", "notify_failed", "severity",
			"critical", "state", resolve ? "resolved" : "raised", "transition",
			resolve ? "resolved" : "raised", "site", "_daemon", "subject", subject,
			"raised_at", raised, "updated_at", at, "resolved_at",
			resolve ? json_string(at) : json_null(), "count", 1, "event_id", "text",
			text);
	if (!doc)
		return -1;
	if (resolve)
		json_object_set_new(doc, "reason", json_string("receiver recovered"));
	payload = json_dumps(doc, JSON_COMPACT);
	if (!payload || notifier_alert_from_json(doc, &a) < 0)
		goto out;
	res = PQexecParams(
		s->db,
		"WITH a AS (INSERT INTO alerts (alert_id, site, kind, severity, state, subject,"
		" event_key, raised_at, updated_at, resolved_at, count, reason)"
		" VALUES ($1, '_daemon', 'notify_failed', 'critical', $2, $3, $1, $4::timestamptz,"
		" $5::timestamptz, CASE WHEN $2 = 'resolved' THEN $5::timestamptz END, 1,"
		" CASE WHEN $2 = 'resolved' THEN 'receiver recovered' END)"
		" ON CONFLICT (alert_id) DO UPDATE SET state = EXCLUDED.state,"
		" updated_at = EXCLUDED.updated_at, resolved_at = EXCLUDED.resolved_at,"
		" reason = EXCLUDED.reason RETURNING 1)"
		" INSERT INTO alert_transitions (alert_id, transition, count, at, severity, reason)"
		" SELECT $1, $2, 1, $5::timestamptz, 'critical',"
		" CASE WHEN $2 = 'resolved' THEN 'receiver recovered' END FROM a"
		" ON CONFLICT DO NOTHING",
		5, NULL,
		(const char *[]){ s->failed_alert, resolve ? "resolved" : "raised", subject, raised,
				  at },
		NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_error_text(s->db, res, err, sizeof(err));
		log_err("notify_failed of receiver %s: not stored: %s", s->r->name, err);
		PQclear(res);
		goto out;
	}
	PQclear(res);
	if (notifier_db_inbox_add(s->db, payload, strlen(payload), &a, err) < 0) {
		log_err("notify_failed of receiver %s: not queued: %s", s->r->name, err);
		goto out;
	}
	snprintf(topic, sizeof(topic), "%s/_daemon/alert/notify_failed", n->cfg.base.topic_root);
	MQTTAsync_send(n->mqtt, topic, (int)strlen(payload), payload, 1, 0, NULL);
	snprintf(topic, sizeof(topic), "%s/_daemon/alerts/%s", n->cfg.base.topic_root,
		 s->failed_alert);
	if (resolve)
		MQTTAsync_send(n->mqtt, topic, 0, "", 1, 1, NULL);
	else
		MQTTAsync_send(n->mqtt, topic, (int)strlen(payload), payload, 1, 1, NULL);
	log_msg(resolve ? LOG_LEVEL_NOTICE : LOG_LEVEL_ERR, "alert notify_failed %s (receiver %s)",
		resolve ? "resolved" : "raised", s->r->name);
	if (resolve)
		s->failed_alert[0] = '\0';
	wake_main(n);
	rc = 0;
out:
	free(payload);
	json_decref(doc);
	return rc;
}

/* At start: an open notify_failed of this receiver from before. */
static void
failed_restore(struct sender *s)
{
	char subject[80];
	const char *params[1] = { subject };
	PGresult *res;

	snprintf(subject, sizeof(subject), "receiver:%s", s->r->name);
	res = PQexecParams(
		s->db,
		"SELECT alert_id, (extract(epoch FROM raised_at) * 1000)::bigint"
		" FROM alerts WHERE site = '_daemon' AND kind = 'notify_failed'"
		" AND subject = $1 AND state <> 'resolved' ORDER BY raised_at DESC LIMIT 1",
		1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
		snprintf(s->failed_alert, sizeof(s->failed_alert), "%s", PQgetvalue(res, 0, 0));
		s->failed_raised_ms = atoll(PQgetvalue(res, 0, 1));
		s->failing_since = clocks_wall_us() / 1000;
	}
	PQclear(res);
}

/* ---- sender threads ---- */

/* Keeps s's unrecorded answer for message `id` for the next sender of the
 * receiver; takes `body`. Returns 0, or -1 (out of memory: the message
 * stays 'sending' and is sent again). */
static int
answer_hold(struct sender *s, int64_t id, const struct send_result *res, char *body,
	    int64_t retry_ms)
{
	struct notify *n = s->n;
	struct held_answer *h;

	pthread_mutex_lock(&n->lock);
	h = realloc(n->held, (n->nheld + 1) * sizeof(*n->held));
	if (h) {
		n->held = h;
		h = &n->held[n->nheld++];
		snprintf(h->receiver, sizeof(h->receiver), "%s", s->r->name);
		h->id = id;
		h->res = *res;
		h->body = body;
		h->retry_ms = retry_ms;
	}
	pthread_mutex_unlock(&n->lock);
	return h ? 0 : -1;
}

/* Records the answers held for s's receiver by answer_hold(). Returns 0
 * when none is left, -1 when PostgreSQL refused (they stay held). */
static int
answers_record(struct sender *s)
{
	struct notify *n = s->n;
	char err[NOTIFIER_ERR_LEN];

	for (;;) {
		struct held_answer h;
		bool found = false;

		pthread_mutex_lock(&n->lock);
		for (size_t i = 0; i < n->nheld && !found; i++)
			if (strcmp(n->held[i].receiver, s->r->name) == 0) {
				h = n->held[i];
				n->held[i] = n->held[--n->nheld];
				found = true;
			}
		pthread_mutex_unlock(&n->lock);
		if (!found)
			return 0;
		if (notifier_db_finish(s->db, h.id, &h.res, h.body, h.retry_ms, err) < 0) {
			log_warn("receiver %s: cannot record message %" PRId64 ": %s; retrying",
				 s->r->name, h.id, err);
			if (answer_hold(s, h.id, &h.res, h.body, h.retry_ms) < 0)
				free(h.body);
			return -1;
		}
		log_info("receiver %s: message %" PRId64 "'s answer recorded after the reload",
			 s->r->name, h.id);
		free(h.body);
	}
}

static const struct tz *
zone_of(void *arg, const char *site)
{
	struct sender *s = arg;
	const char *params[1] = { site };
	struct tz *tz = NULL;
	PGresult *res;

	for (int i = 0; i < s->nzones; i++)
		if (strcmp(s->zones[i].site, site) == 0)
			return s->zones[i].tz ? s->zones[i].tz : s->default_tz;
	res = PQexecParams(s->db, "SELECT timezone FROM sites WHERE site = $1", 1, NULL, params,
			   NULL, NULL, 0);
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
	    tz_load(PQgetvalue(res, 0, 0), &tz) < 0)
		tz = NULL;
	PQclear(res);
	if (s->nzones < (int)(sizeof(s->zones) / sizeof(s->zones[0]))) {
		snprintf(s->zones[s->nzones].site, sizeof(s->zones[0].site), "%s", site);
		s->zones[s->nzones++].tz = tz;
	} else {
		tz_free(tz);
		tz = NULL;
	}
	return tz ? tz : s->default_tz;
}

/* ms to wait before the next send keeps the rate limit; 0: now. */
static int64_t
rate_wait(struct sender *s, int64_t now)
{
	int64_t limit = s->r->rate_limit;

	while (s->wlen > 0 && s->window[s->wstart] <= now - RATE_WINDOW_MS) {
		s->wstart = (s->wstart + 1) % RATE_MAX;
		s->wlen--;
	}
	if (limit <= 0)
		return 0;
	if (limit > RATE_MAX)
		limit = RATE_MAX;
	if (s->wlen < limit)
		return 0;
	return s->window[s->wstart] + RATE_WINDOW_MS - now;
}

static void
rate_note(struct sender *s, int64_t now)
{
	if (s->wlen == RATE_MAX) {
		s->wstart = (s->wstart + 1) % RATE_MAX;
		s->wlen--;
	}
	s->window[(s->wstart + s->wlen) % RATE_MAX] = now;
	s->wlen++;
}

static void
sender_restore(struct sender *s)
{
	int64_t recent[RATE_MAX];
	char err[NOTIFIER_ERR_LEN];
	int k = notifier_db_recent_sends(s->db, s->r->name, recent, RATE_MAX, err);

	s->wstart = s->wlen = 0;
	for (int i = 0; i < k; i++)
		rate_note(s, recent[i]);
	failed_restore(s);
}

static void *
sender_main(void *arg)
{
	struct sender *s = arg;
	struct notify *n = s->n;
	struct backoff db_b, fail_b;
	bool restored = false;
	char err[NOTIFIER_ERR_LEN];

	backoff_init(&db_b, 500, 15000);
	backoff_init(&fail_b, 1000, n->cfg.retry_max);
	while (!atomic_load(&n->stopping)) {
		struct notifier_attempt at;
		struct send_result res;
		uint64_t given_up = 0;
		int64_t wait_ms = 0, now, retry_ms = 0;
		char *body = NULL;
		int rc;

		if (!db_ready(&s->db, n->cfg.base.pg_conninfo, "cordon-notify sender")) {
			sender_wait(n, backoff_next(&db_b));
			continue;
		}
		if (answers_record(s) < 0) {
			sender_wait(n, backoff_next(&db_b));
			continue;
		}
		if (!restored) {
			sender_restore(s);
			restored = true;
		}
		now = clocks_wall_us() / 1000;
		wait_ms = rate_wait(s, now);
		if (wait_ms > 0) {
			sender_wait(n, wait_ms);
			continue;
		}
		rc = notifier_db_take(s->db, s->r->name, n->cfg.give_up_after, &at, &wait_ms,
				      &given_up, err);
		if (given_up) {
			atomic_fetch_add(&s->given_up, given_up);
			log_err("receiver %s: %" PRIu64 " message(s) given up after %" PRId64
				" s of failures (status 'failed' in notify_messages)",
				s->r->name, given_up, n->cfg.give_up_after / 1000);
		}
		if (rc < 0) {
			log_warn("receiver %s: %s", s->r->name, err);
			sender_wait(n, backoff_next(&db_b));
			continue;
		}
		backoff_reset(&db_b);
		if (rc == 0) {
			if (s->failed_alert[0] && !s->failing_since && failed_alert(s, true) < 0)
				wait_ms = 1000;
			sender_wait(n, wait_ms);
			continue;
		}
		if (notifier_send(s->http, s->r, &at.msg, zone_of, s, &res, &body) < 0) {
			memset(&res, 0, sizeof(res));
			res.outcome = SEND_RETRY;
			snprintf(res.answer, sizeof(res.answer), "out of memory");
		}
		now = clocks_wall_us() / 1000;
		switch (res.outcome) {
		case SEND_OK:
			atomic_fetch_add(&s->sent, 1);
			rate_note(s, now);
			backoff_reset(&fail_b);
			s->failing_since = 0;
			atomic_store(&s->up, 1);
			if (at.first_raised_ms && at.msg.transition == NTR_RAISED &&
			    at.attempts == 1) {
				pthread_mutex_lock(&s->hist_lock);
				histogram_observe(&s->latency,
						  (double)(now - at.first_raised_ms) / 1e3);
				pthread_mutex_unlock(&s->hist_lock);
			}
			log_info("receiver %s: message %" PRId64
				 " (%s, %zu alert(s), route %s) sent%s",
				 s->r->name, at.msg.id, notifier_transition_name(at.msg.transition),
				 at.msg.nitems, at.route, at.attempts > 1 ? " after retries" : "");
			break;
		case SEND_RATE_LIMITED:
			atomic_fetch_add(&s->rate_limited, 1);
			retry_ms = res.retry_after_ms > 0 ? res.retry_after_ms : RATE_WINDOW_MS;
			if (retry_ms > n->cfg.retry_max)
				retry_ms = n->cfg.retry_max;
			log_notice("receiver %s: rate limited (%s); message %" PRId64
				   " waits %" PRId64 " s",
				   s->r->name, res.answer, at.msg.id, retry_ms / 1000);
			break;
		case SEND_RETRY:
			atomic_fetch_add(&s->retried, 1);
			retry_ms = backoff_next(&fail_b);
			if (!s->failing_since)
				s->failing_since = now;
			atomic_store(&s->up, 0);
			snprintf(s->last_answer, sizeof(s->last_answer), "%.199s", res.answer);
			log_warn("receiver %s: message %" PRId64 " not accepted (attempt %d): %s;"
				 " retrying in %" PRId64 " ms",
				 s->r->name, at.msg.id, at.attempts, res.answer, retry_ms);
			break;
		}
		/* The answer is recorded before anything else is sent: while
		 * PostgreSQL is away, keep trying, so that a message the
		 * receiver took is not sent again (docs/notify.md, "Delivery"). */
		while (notifier_db_finish(s->db, at.msg.id, &res, body, retry_ms, err) < 0) {
			log_warn("receiver %s: cannot record message %" PRId64 ": %s; retrying",
				 s->r->name, at.msg.id, err);
			if (atomic_load(&n->stopping)) {
				/* A reload: the next sender records it; at exit
				 * it is the documented window. */
				if (answer_hold(s, at.msg.id, &res, body, retry_ms) == 0)
					body = NULL;
				break;
			}
			sender_wait(n, backoff_next(&db_b));
			db_ready(&s->db, n->cfg.base.pg_conninfo, "cordon-notify sender");
		}
		free(body);
		notifier_attempt_free(&at);
		if (res.outcome == SEND_OK && s->failed_alert[0])
			failed_alert(s, true);
		if (res.outcome == SEND_RETRY && s->failing_since && !s->failed_alert[0] &&
		    now - s->failing_since >= n->cfg.fail_after)
			failed_alert(s, false);
		/* The receiver's pause: a failing or busy receiver is tried
		 * again when its wait is over, whichever message is next. */
		if (retry_ms > 0)
			sender_wait(n, retry_ms);
	}
	return NULL;
}

static int
senders_start(struct notify *n)
{
	n->nsenders = n->cfg.nreceivers;
	n->senders = calloc(n->nsenders ? n->nsenders : 1, sizeof(*n->senders));
	if (!n->senders)
		return -ENOMEM;
	for (size_t i = 0; i < n->nsenders; i++) {
		struct sender *s = &n->senders[i];

		s->n = n;
		s->r = &n->cfg.receivers[i];
		s->index = i;
		s->latency.bounds = latency_bounds;
		atomic_store(&s->up, 1);
		pthread_mutex_init(&s->hist_lock, NULL);
		if (tz_load(n->cfg.base.site_timezone, &s->default_tz) < 0)
			s->default_tz = NULL;
		if (notifier_sender_create(&s->http) < 0)
			return -ENOMEM;
		if (pthread_create(&s->thread, NULL, sender_main, s) != 0)
			return -EAGAIN;
		s->started = true;
	}
	return 0;
}

static void
senders_stop(struct notify *n)
{
	atomic_store(&n->stopping, 1);
	wake_senders(n);
	for (size_t i = 0; i < n->nsenders; i++) {
		struct sender *s = &n->senders[i];

		if (s->started)
			pthread_join(s->thread, NULL);
		notifier_sender_free(s->http);
		if (s->db)
			PQfinish(s->db);
		for (int z = 0; z < s->nzones; z++)
			tz_free(s->zones[z].tz);
		tz_free(s->default_tz);
		pthread_mutex_destroy(&s->hist_lock);
	}
	free(n->senders);
	n->senders = NULL;
	n->nsenders = 0;
}

/* ---- the main thread ---- */

static void
render_metrics(struct notify *n)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int64_t backlog[256] = { 0 };
	bool have_backlog = false;
	char err[NOTIFIER_ERR_LEN];
	const struct notifier_db_counts *k = &n->counts;
	bool healthy;

	if (!f)
		return;
	if (atomic_load(&n->db_up) && n->cfg.nreceivers <= 256)
		have_backlog = notifier_db_backlog(n->db, &n->cfg, backlog, err) == 0;
	version_print_build_info(f, "cordon-notify");
	procstat_print(f);
	fprintf(f,
		"# HELP cordon_notify_inbox_total Alert transitions received, by result.\n"
		"# TYPE cordon_notify_inbox_total counter\n"
		"cordon_notify_inbox_total{result=\"new\"} %" PRIu64 "\n"
		"cordon_notify_inbox_total{result=\"duplicate\"} %" PRIu64 "\n"
		"cordon_notify_inbox_total{result=\"bad\"} %" PRIu64 "\n"
		"# HELP cordon_notify_inbox_waits_total Times the receive callback waited for"
		" PostgreSQL.\n# TYPE cordon_notify_inbox_waits_total counter\n"
		"cordon_notify_inbox_waits_total %" PRIu64 "\n",
		atomic_load(&n->inbox_new), atomic_load(&n->inbox_dup), atomic_load(&n->inbox_bad),
		atomic_load(&n->inbox_waits));
	fprintf(f,
		"# HELP cordon_notify_routed_total Alert transitions routed (unrouted: no route"
		" took them).\n# TYPE cordon_notify_routed_total counter\n"
		"cordon_notify_routed_total %" PRIu64 "\ncordon_notify_unrouted_total %" PRIu64 "\n"
		"# HELP cordon_notify_queued_total Notifications queued (alert x receiver).\n"
		"# TYPE cordon_notify_queued_total counter\ncordon_notify_queued_total %" PRIu64
		"\n"
		"# HELP cordon_notify_silenced_total Raises held by a silence, and let go when it"
		" ended.\n# TYPE cordon_notify_silenced_total counter\n"
		"cordon_notify_silenced_total{what=\"held\"} %" PRIu64 "\n"
		"cordon_notify_silenced_total{what=\"released\"} %" PRIu64 "\n"
		"# HELP cordon_notify_reminders_total Reminders queued.\n"
		"# TYPE cordon_notify_reminders_total counter\n"
		"cordon_notify_reminders_total %" PRIu64 "\n"
		"# HELP cordon_notify_escalations_total Escalations queued.\n"
		"# TYPE cordon_notify_escalations_total counter\n"
		"cordon_notify_escalations_total %" PRIu64 "\n",
		k->routed, k->unrouted, k->queued, k->held, k->released, k->reminders,
		k->escalations);
	fprintf(f,
		"# HELP cordon_notify_reconciled_total Alert transitions stored by cordond that"
		" never came on MQTT, taken from PostgreSQL.\n"
		"# TYPE cordon_notify_reconciled_total counter\n"
		"cordon_notify_reconciled_total{transition=\"raised\"} %" PRIu64 "\n"
		"cordon_notify_reconciled_total{transition=\"acked\"} %" PRIu64 "\n"
		"cordon_notify_reconciled_total{transition=\"updated\"} %" PRIu64 "\n"
		"cordon_notify_reconciled_total{transition=\"resolved\"} %" PRIu64 "\n",
		k->reconciled[0], k->reconciled[1], k->reconciled[2], k->reconciled[3]);
	fputs("# HELP cordon_notify_attempts_total Sends by receiver and outcome.\n"
	      "# TYPE cordon_notify_attempts_total counter\n",
	      f);
	for (size_t i = 0; i < n->nsenders; i++) {
		struct sender *s = &n->senders[i];

		fprintf(f,
			"cordon_notify_attempts_total{receiver=\"%s\",result=\"ok\"} %" PRIu64 "\n"
			"cordon_notify_attempts_total{receiver=\"%s\",result=\"retry\"} %" PRIu64
			"\ncordon_notify_attempts_total{receiver=\"%s\",result=\"rate_limited\"} %" PRIu64
			"\n",
			s->r->name, atomic_load(&s->sent), s->r->name, atomic_load(&s->retried),
			s->r->name, atomic_load(&s->rate_limited));
	}
	fputs("# HELP cordon_notify_given_up_total Messages marked failed after give_up_after.\n"
	      "# TYPE cordon_notify_given_up_total counter\n",
	      f);
	for (size_t i = 0; i < n->nsenders; i++)
		fprintf(f, "cordon_notify_given_up_total{receiver=\"%s\"} %" PRIu64 "\n",
			n->senders[i].r->name, atomic_load(&n->senders[i].given_up));
	fputs("# HELP cordon_notify_receiver_up 0 while the receiver's last attempt failed.\n"
	      "# TYPE cordon_notify_receiver_up gauge\n",
	      f);
	for (size_t i = 0; i < n->nsenders; i++)
		fprintf(f, "cordon_notify_receiver_up{receiver=\"%s\"} %d\n", n->senders[i].r->name,
			atomic_load(&n->senders[i].up));
	if (have_backlog) {
		fputs("# HELP cordon_notify_backlog Messages waiting to be sent, by receiver.\n"
		      "# TYPE cordon_notify_backlog gauge\n",
		      f);
		for (size_t i = 0; i < n->nsenders; i++)
			fprintf(f, "cordon_notify_backlog{receiver=\"%s\"} %" PRId64 "\n",
				n->senders[i].r->name, backlog[i]);
	}
	fputs("# HELP cordon_notify_latency_seconds From an alert's raise to its receiver's"
	      " acceptance (first attempts of raise messages).\n"
	      "# TYPE cordon_notify_latency_seconds histogram\n",
	      f);
	for (size_t i = 0; i < n->nsenders; i++) {
		struct sender *s = &n->senders[i];
		char labels[100];

		snprintf(labels, sizeof(labels), "receiver=\"%s\"", s->r->name);
		pthread_mutex_lock(&s->hist_lock);
		histogram_print(&s->latency, "cordon_notify_latency_seconds", labels, f);
		pthread_mutex_unlock(&s->hist_lock);
	}
	fprintf(f,
		"# HELP cordon_notify_mqtt_connected 1 while connected to the broker.\n"
		"# TYPE cordon_notify_mqtt_connected gauge\ncordon_notify_mqtt_connected %d\n"
		"# HELP cordon_notify_mqtt_subscription The broker's answer to the subscription"
		" of the alert topics on this connection: 1 granted, -1 refused, 0 none yet.\n"
		"# TYPE cordon_notify_mqtt_subscription gauge\n"
		"cordon_notify_mqtt_subscription %d\n"
		"# HELP cordon_notify_postgres_up 1 while PostgreSQL answers.\n"
		"# TYPE cordon_notify_postgres_up gauge\ncordon_notify_postgres_up %d\n",
		atomic_load(&n->connected), atomic_load(&n->subscribed), atomic_load(&n->db_up));
	fclose(f);
	healthy = atomic_load(&n->connected) && atomic_load(&n->db_up);
	metrics_publish(n->metrics, text, len, NULL, 0, healthy,
			healthy				    ? "ok" :
				!atomic_load(&n->connected) ? "broker not connected" :
							      "PostgreSQL unreachable");
	free(text);
}

/* One pass: route the inbox, run the clocks. Returns 0, or -1 when
 * PostgreSQL failed (logged). */
static int
work(struct notify *n, bool clocks)
{
	char err[NOTIFIER_ERR_LEN];
	uint64_t queued = n->counts.queued, orphans = n->counts.orphans_given_up;
	int more = 1;

	while (more && !atomic_load(&n->stopping))
		if (notifier_db_route(n->db, &n->cfg, &n->counts, &more, err) < 0)
			goto fail;
	if (clocks && notifier_db_timers(n->db, &n->cfg, &n->counts, err) < 0)
		goto fail;
	if (n->counts.orphans_given_up != orphans)
		log_err("%" PRIu64 " message(s) of a removed receiver given up after %" PRId64
			" s (status 'failed' in notify_messages)",
			n->counts.orphans_given_up - orphans, n->cfg.give_up_after / 1000);
	if (n->counts.queued != queued)
		wake_senders(n);
	return 0;
fail:
	log_warn("routing: %s", err);
	return -1;
}

/* The alert transitions cordond stored that the broker never brought
 * us, into the inbox (notifier_db_reconcile); logged when there are any.
 * Returns 0, or -1 when PostgreSQL failed (logged). */
static int
reconcile(struct notify *n)
{
	char err[NOTIFIER_ERR_LEN], first[80];
	int got = notifier_db_reconcile(n->db, n->cfg.reconcile_after, &n->counts, first,
					sizeof(first), err);

	if (got < 0) {
		log_limited(&n->reconcile_rl, LOG_LEVEL_WARNING,
			    "reconciling with PostgreSQL's alerts: %s", err);
		return -1;
	}
	if (got > 0)
		log_warn("%d alert transition(s) in PostgreSQL never came on MQTT within %" PRId64
			 " s (lost by the broker?): taken from PostgreSQL and routed (first: %s)",
			 got, n->cfg.reconcile_after / 1000, first);
	return 0;
}

static int
db_start(struct notify *n)
{
	char err[256], state[DB_SQLSTATE_LEN];

	if (!db_ready(&n->db, n->cfg.base.pg_conninfo, "cordon-notify")) {
		db_error_text(n->db, NULL, err, sizeof(err));
		goto down;
	}
	if (db_migrate(n->db, err, sizeof(err), state) < 0)
		goto down;
	/* Reconciling only (a role without INSERT on notify_reconcile):
	 * routing and sending go on without it. */
	if (notifier_db_reconcile_since(n->db, err) < 0)
		log_warn("PostgreSQL: %s: transitions the broker lost are not taken from"
			 " PostgreSQL (docs/notify.md, \"Transitions the broker lost\")",
			 err);
	if (!atomic_exchange(&n->db_up, 1))
		log_info("PostgreSQL: connected, schema version %d", db_latest_version());
	n->db_err[0] = '\0';
	return 0;
down:
	/* Once per outage, and again when the reason changes (a server that
	 * answers and then refuses the migration is not "unreachable"). */
	if (atomic_exchange(&n->db_up, 0) || strcmp(err, n->db_err) != 0)
		log_warn("PostgreSQL unreachable, retrying with backoff: %s", err);
	snprintf(n->db_err, sizeof(n->db_err), "%s", err);
	if (n->db) {
		PQfinish(n->db);
		n->db = NULL;
	}
	return -1;
}

static int
reload(struct notify *n)
{
	struct notifier_config next;

	if (notifier_config_init(&next) < 0)
		return -1;
	if (notifier_config_load(&next, n->config_path, stderr) < 0) {
		log_err("SIGHUP: %s has errors (above); the configuration in use stays",
			n->config_path);
		notifier_config_finish(&next);
		return -1;
	}
	if (strcmp(next.base.mqtt_uri, n->cfg.base.mqtt_uri) != 0 ||
	    strcmp(next.client_id, n->cfg.client_id) != 0 ||
	    strcmp(notifier_config_username(&next), notifier_config_username(&n->cfg)) != 0 ||
	    strcmp(notifier_config_password_file(&next), notifier_config_password_file(&n->cfg)) !=
		    0 ||
	    strcmp(next.base.pg_conninfo, n->cfg.base.pg_conninfo) != 0)
		log_warn("SIGHUP: [mqtt] and [postgres] changes and [notify] client_id, username"
			 " and password_file need a restart; receivers, routes and [notify]"
			 " timings are applied now");
	senders_stop(n);
	log_set_level((enum log_level)next.base.log_level);
	{
		/* Keep what the running MQTT client, connections and metrics
		 * listener were made with; the rest is the new file's. */
		struct notifier_config old = n->cfg;
		struct config base = next.base;
		char *id = next.client_id, *listen = next.metrics_listen;
		char *user = next.username, *pwfile = next.password_file;

		next.base = old.base;
		next.client_id = old.client_id;
		next.username = old.username;
		next.password_file = old.password_file;
		next.metrics_listen = old.metrics_listen;
		old.base = base;
		old.client_id = id;
		old.username = user;
		old.password_file = pwfile;
		old.metrics_listen = listen;
		n->cfg = next;
		notifier_config_finish(&old);
	}
	atomic_store(&n->stopping, 0);
	if (senders_start(n) < 0)
		fatal("cannot start the sender threads");
	log_info("SIGHUP: %zu receiver(s), %zu route(s)", n->cfg.nreceivers, n->cfg.nroutes);
	return 0;
}

static int
run(struct notify *n)
{
	sigset_t mask;
	int sfd;
	struct backoff db_b;
	int64_t next_db = 0, next_clocks = 0, next_metrics = 0, next_dog = 0, next_reconcile = 0;
	int64_t link_since = -1; /* since when subscribed on the present link */
	uint64_t link_subs = 0;
	bool ready = false;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	n->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sfd < 0 || n->wake_fd < 0)
		fatal("signalfd/eventfd: %s", strerror(errno));
	backoff_init(&db_b, 500, 15000);
	if (metrics_start(n->cfg.metrics_listen, &n->metrics) < 0)
		fatal("cannot listen on [notify] metrics_listen %s", n->cfg.metrics_listen);
	if (senders_start(n) < 0)
		fatal("cannot start the sender threads");
	if (mqtt_start(n) < 0)
		fatal("cannot start the MQTT client");
	for (;;) {
		struct pollfd pfd[2] = { { sfd, POLLIN, 0 }, { n->wake_fd, POLLIN, 0 } };
		int64_t now = clocks_mono_ms();
		bool clocks = false;

		mqtt_tick(n, now);
		if (!atomic_load(&n->connected) || atomic_load(&n->subscribed) != 1) {
			link_since = -1;
		} else if (link_since < 0 || atomic_load(&n->subscriptions) != link_subs) {
			link_subs = atomic_load(&n->subscriptions);
			link_since = now;
		}

		if (!atomic_load(&n->db_up) && now >= next_db) {
			if (db_start(n) < 0) {
				next_db = now + backoff_next(&db_b);
			} else {
				backoff_reset(&db_b);
				/* what the broker kept for our session comes first */
				next_reconcile = now + n->cfg.reconcile_after;
			}
		}
		if (atomic_load(&n->db_up)) {
			int rc = 0;

			if (now >= next_clocks) {
				clocks = true;
				next_clocks = now + 500;
			}
			/* Only on a link subscribed reconcile_after ago: what the
			 * broker kept for our session, and what it had in flight,
			 * comes first. */
			if (now >= next_reconcile && link_since >= 0 &&
			    now - link_since >= n->cfg.reconcile_after) {
				rc = reconcile(n);
				next_reconcile = now +
					(n->cfg.reconcile_after / 2 > 500 ?
						 n->cfg.reconcile_after / 2 :
						 500);
			}
			if (rc == 0)
				rc = work(n, clocks);
			if (rc < 0 && PQstatus(n->db) != CONNECTION_OK) {
				atomic_store(&n->db_up, 0);
				log_warn("PostgreSQL connection lost; reconnecting");
				PQfinish(n->db);
				n->db = NULL;
			}
		}
		if (!ready && atomic_load(&n->connected) && atomic_load(&n->db_up)) {
			ready = true;
			render_metrics(n); /* /healthz says so before READY does */
			sd_notify(0, "READY=1\nSTATUS=connected to the broker and PostgreSQL");
			log_notice("cordon-notify %s ready: %zu receiver(s), %zu route(s)",
				   CORDON_VERSION, n->cfg.nreceivers, n->cfg.nroutes);
		}
		if (now >= next_metrics) {
			render_metrics(n);
			next_metrics = now + 1000;
		}
		if (now >= next_dog) {
			sd_notify(0, "WATCHDOG=1");
			next_dog = now + 5000;
		}
		if (poll(pfd, 2, 250) > 0) {
			if (pfd[1].revents & POLLIN) {
				uint64_t v;

				if (read(n->wake_fd, &v, sizeof(v)) < 0) {
					/* nothing to read: fine */
				}
			}
			if (pfd[0].revents & POLLIN) {
				struct signalfd_siginfo si;

				if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) {
						sd_notify(0, "RELOADING=1");
						reload(n);
						sd_notify(0, "READY=1");
					} else {
						break;
					}
				}
			}
		}
	}
	sd_notify(0, "STOPPING=1");
	log_info("stopping");
	senders_stop(n);
	if (!atomic_load(&n->callback_waiting)) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;

		d.timeout = 2000;
		MQTTAsync_disconnect(n->mqtt, &d);
		for (int i = 0; i < 40 && MQTTAsync_isConnected(n->mqtt); i++)
			usleep(50000);
		MQTTAsync_destroy(&n->mqtt);
	} /* else the receive thread waits for PostgreSQL: leave, unacknowledged */
	for (size_t i = 0; i < n->nheld; i++) {
		log_warn("receiver %s: message %" PRId64 "'s answer not recorded: it is sent again"
			 " at the next start",
			 n->held[i].receiver, n->held[i].id);
		free(n->held[i].body);
	}
	free(n->held);
	metrics_stop(n->metrics);
	close(sfd);
	close(n->wake_fd);
	return 0;
}

static void
usage(FILE *out)
{
	fprintf(out,
		"usage: cordon-notify [-c FILE] [--check-config]\n"
		"  -c, --config FILE   configuration file (default /etc/cordon/cordond.conf)\n"
		"  -n, --check-config  validate FILE, print cordon-notify's configuration, exit\n"
		"  -V, --version       print the version and those of the libraries\n"
		"  -h, --help          this text\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'n' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct notify n = { .bad_rl = LOG_RATELIMIT_INIT(5, 60),
				   .reconcile_rl = LOG_RATELIMIT_INIT(1, 600) };
	const char *path = "/etc/cordon/cordond.conf";
	int check = 0, c, rc;

	while ((c = getopt_long(argc, argv, "c:nVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': check = 1; break;
		case 'V': version_print(stdout, "cordon-notify"); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init();
	if ((rc = notifier_config_init(&n.cfg)) < 0)
		fatal("%s", config_init_strerror(rc));
	rc = notifier_config_load(&n.cfg, path, stderr);
	if (check) {
		if (rc == 0)
			notifier_config_print(&n.cfg, stdout);
		notifier_config_finish(&n.cfg);
		return rc == 0 ? 0 : 1;
	}
	if (rc < 0)
		fatal("invalid configuration in %s", path);
	log_set_level((enum log_level)n.cfg.base.log_level);
	n.config_path = path;
	pthread_mutex_init(&n.lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&n.cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatal("curl_global_init failed");
	rc = run(&n);
	if (n.db)
		PQfinish(n.db);
	config_free_secret(n.mqtt_password);
	MQTTProperties_free(&n.props);
	mqtt_broker_finish(&n.broker);
	notifier_config_finish(&n.cfg);
	curl_global_cleanup();
	return rc;
}
