/* web_live.c - cordon-web's own MQTT subscription (docs/web.md, "Live
 * alerts"; docs/architecture.md, "cordon-web").
 *
 *  - <root>/+/alerts/+: the retained state of the open alerts, kept in a
 *    map alert_id -> alert (an empty payload or a resolved state removes
 *    one). The map is dropped when the connection is lost; while it is
 *    empty the open alerts come from PostgreSQL.
 *  - <root>/+/alert/+: the transitions. Paho's thread only copies each
 *    into a bounded queue; the fan-out thread adds silenced and texts and
 *    hands the formatted event to every SSE client of that site. Each
 *    client has a bounded queue: a client that does not keep up is
 *    closed (its page reconnects and gets a snapshot), memory is not.
 *  - publishes (ack, need) at QoS 1, the caller waiting for the PUBACK.
 * Clean session: what happened while cordon-web was away is in the
 * snapshot the page gets when it reconnects. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "clocks.h"
#include "log.h"
#include "mqtt_broker.h"
#include "notifier_text.h"
#include "web.h"

#define DISPATCH_MAX 1024	/* transitions waiting for the fan-out */
#define PAYLOAD_MAX (64 * 1024) /* bytes of an alert message we take */
#define KEEPALIVE_MS 15000

/* One formatted SSE event, shared by the clients' queues. */
struct ev {
	atomic_int refs;
	size_t len;
	char data[];
};

struct web_sse {
	struct web_live *live;
	struct web_sse *next;
	json_t *sites; /* NULL or empty: every site */
	struct ev *q[WEB_SSE_QUEUE];
	unsigned head, count;
	struct ev *cur; /* being written */
	size_t off;
	bool dead;
	char session_key[WEB_SESSION_KEY_LEN];
	int64_t next_renew; /* monotonic ms */
	pthread_cond_t cond;
};

struct raw {
	char *payload;
	size_t len;
	char site[80]; /* the topic's */
};

struct web_live {
	const struct web_config *wc;
	struct web_db *db;
	MQTTAsync mqtt;
	char *password;
	/* The connect options of every (re)connect of ours, what they point
	 * to, and the reconnects (mqtt_broker.h). */
	struct mqtt_broker broker;
	MQTTAsync_connectOptions conn;
	MQTTAsync_SSLOptions ssl;
	struct mqtt_redial redial;
	char filter_state[160], filter_alert[160];
	atomic_int connected;
	pthread_mutex_t map_lock;
	json_t *map;	      /* alert_id -> alert */
	pthread_mutex_t lock; /* the dispatch queue and the clients */
	pthread_cond_t dispatch_cond;
	struct raw dq[DISPATCH_MAX];
	unsigned dq_head, dq_count;
	bool stopping;
	pthread_t thread;
	bool thread_started;
	struct web_sse *clients;
	unsigned nclients;
	struct log_ratelimit drop_rl;
};

static void
ev_unref(struct ev *e)
{
	if (e && atomic_fetch_sub(&e->refs, 1) == 1)
		free(e);
}

static struct ev *
ev_new(const char *data, size_t len)
{
	struct ev *e = malloc(sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	atomic_init(&e->refs, 1);
	e->len = len;
	memcpy(e->data, data, len);
	e->data[len] = '\0';
	return e;
}

static void
cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* ---- the clients ---- */

static bool
client_has_site(const struct web_sse *c, const char *site)
{
	size_t i;
	json_t *v;

	if (json_array_size(c->sites) == 0)
		return true;
	json_array_foreach(c->sites, i, v) if (strcmp(json_string_value(v), site) == 0) return true;
	return false;
}

/* Under live->lock. */
static void
client_kill(struct web_sse *c)
{
	c->dead = true;
	pthread_cond_signal(&c->cond);
}

void
web_live_close_clients(struct web_live *live)
{
	pthread_mutex_lock(&live->lock);
	for (struct web_sse *c = live->clients; c; c = c->next)
		client_kill(c);
	pthread_mutex_unlock(&live->lock);
}

void
web_live_refuse_clients(struct web_live *live)
{
	pthread_mutex_lock(&live->lock);
	live->stopping = true;
	for (struct web_sse *c = live->clients; c; c = c->next)
		client_kill(c);
	pthread_cond_signal(&live->dispatch_cond);
	pthread_mutex_unlock(&live->lock);
}

unsigned
web_live_clients(struct web_live *live)
{
	unsigned n;

	pthread_mutex_lock(&live->lock);
	n = live->nclients;
	pthread_mutex_unlock(&live->lock);
	return n;
}

struct web_sse *
web_sse_open(struct web_live *live, json_t *sites, const char *session_key, char *first)
{
	struct web_sse *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->cur = ev_new(first, strlen(first));
	if (!c->cur) {
		free(c);
		return NULL;
	}
	c->live = live;
	c->sites = json_incref(sites);
	snprintf(c->session_key, sizeof(c->session_key), "%s", session_key);
	c->next_renew = clocks_mono_ms() + KEEPALIVE_MS;
	cond_init_mono(&c->cond);
	pthread_mutex_lock(&live->lock);
	c->next = live->clients;
	live->clients = c;
	live->nclients++;
	if (live->stopping)
		c->dead = true;
	pthread_mutex_unlock(&live->lock);
	return c;
}

/* An open page is in use: its session is renewed every KEEPALIVE_MS,
 * and its stream ends once the session has (logout, its operator
 * removed). PostgreSQL away or busy: the stream goes on. */
static bool
session_lives(struct web_sse *c)
{
	PGconn *conn;
	int err;

	if (clocks_mono_ms() < c->next_renew)
		return true;
	c->next_renew = clocks_mono_ms() + KEEPALIVE_MS;
	if (web_db_acquire(c->live->db, 1000, &conn) < 0)
		return true;
	err = web_session_renew(conn, c->session_key);
	web_db_release(c->live->db, conn);
	return err != -ENOENT;
}

ssize_t
web_sse_read(struct web_sse *c, char *buf, size_t max)
{
	struct web_live *live = c->live;
	struct timespec until;
	ssize_t n = -1;

	if (!c->cur && !session_lives(c))
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += KEEPALIVE_MS / 1000;
	pthread_mutex_lock(&live->lock);
	for (;;) {
		if (c->dead)
			break;
		if (!c->cur && c->count) {
			c->cur = c->q[c->head];
			c->head = (c->head + 1) % WEB_SSE_QUEUE;
			c->count--;
			c->off = 0;
		}
		if (c->cur) {
			size_t left = c->cur->len - c->off;

			n = (ssize_t)(left < max ? left : max);
			memcpy(buf, c->cur->data + c->off, (size_t)n);
			c->off += (size_t)n;
			if (c->off == c->cur->len) {
				ev_unref(c->cur);
				c->cur = NULL;
			}
			break;
		}
		if (pthread_cond_timedwait(&c->cond, &live->lock, &until) == ETIMEDOUT) {
			static const char ka[] = ": keepalive\n\n";

			n = (ssize_t)(sizeof(ka) - 1 < max ? sizeof(ka) - 1 : max);
			memcpy(buf, ka, (size_t)n);
			break;
		}
	}
	pthread_mutex_unlock(&live->lock);
	return n;
}

void
web_sse_close(struct web_sse *c)
{
	struct web_live *live;

	if (!c)
		return;
	live = c->live;
	pthread_mutex_lock(&live->lock);
	for (struct web_sse **p = &live->clients; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			live->nclients--;
			break;
		}
	pthread_mutex_unlock(&live->lock);
	while (c->count) {
		ev_unref(c->q[c->head]);
		c->head = (c->head + 1) % WEB_SSE_QUEUE;
		c->count--;
	}
	ev_unref(c->cur);
	json_decref(c->sites);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Hands `e` to every client of `site`; a client whose queue is full is
 * closed. */
static void
fan_out(struct web_live *live, struct ev *e, const char *site)
{
	pthread_mutex_lock(&live->lock);
	for (struct web_sse *c = live->clients; c; c = c->next) {
		if (c->dead || !client_has_site(c, site))
			continue;
		if (c->count == WEB_SSE_QUEUE) {
			log_limited(&live->drop_rl, LOG_LEVEL_WARNING,
				    "live: an SSE client does not keep up (%d events waiting);"
				    " closing it (its page reconnects)",
				    WEB_SSE_QUEUE);
			client_kill(c);
			continue;
		}
		atomic_fetch_add(&e->refs, 1);
		c->q[(c->head + c->count) % WEB_SSE_QUEUE] = e;
		c->count++;
		pthread_cond_signal(&c->cond);
	}
	pthread_mutex_unlock(&live->lock);
}

/* ---- silenced and texts ---- */

int
web_alerts_enrich(PGconn *conn, json_t *alerts, const char *default_tz)
{
	json_t *keys = json_array(), *a;
	size_t i;
	int rc = 0;

	if (!keys)
		return -ENOMEM;
	json_array_foreach(alerts, i, a)
	{
		json_t *t = notifier_texts_json(a);

		json_object_set_new(a, "texts", t ? t : json_null());
		json_object_set_new(a, "silenced", json_null());
		json_object_set_new(a, "timezone", json_string(default_tz));
		json_array_append_new(
			keys,
			json_pack("[sss]", json_string_value(json_object_get(a, "site")) ?: "",
				  json_string_value(json_object_get(a, "kind")) ?: "",
				  json_string_value(json_object_get(a, "subject")) ?: ""));
	}
	if (conn && json_array_size(keys)) {
		char *param = json_dumps(keys, JSON_COMPACT);
		/* Per alert: the silence holding it now (sql/0010 silence_match,
		 * one call per alert: OFFSET 0) and its site's zone. */
		PGresult *res = param ?
			WEB_QUERY(
				conn, "silences of the alerts",
				"SELECT i.ord - 1, m.id,"
				"       to_char(m.ends_at AT TIME ZONE 'UTC',"
				"               'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
				"       coalesce(s.timezone, $2)"
				"  FROM json_array_elements($1::json) WITH ORDINALITY AS i(e, ord)"
				" CROSS JOIN LATERAL (SELECT silence_match(i.e->>0, i.e->>1, i.e->>2, now())"
				"                     AS id OFFSET 0) h"
				"  LEFT JOIN silences m ON m.id = h.id"
				"  LEFT JOIN sites s ON s.site = i.e->>0",
				param, default_tz) :
			NULL;

		free(param);
		if (!res)
			rc = -EIO;
		for (int r = 0; res && r < PQntuples(res); r++) {
			json_t *al = json_array_get(alerts, (size_t)atoll(PQgetvalue(res, r, 0)));

			if (!al)
				continue;
			json_object_set_new(al, "timezone", json_string(PQgetvalue(res, r, 3)));
			if (!PQgetisnull(res, r, 1))
				json_object_set_new(
					al, "silenced",
					json_pack("{s:I, s:s}", "id",
						  (json_int_t)atoll(PQgetvalue(res, r, 1)), "until",
						  PQgetvalue(res, r, 2)));
		}
		PQclear(res);
	}
	json_decref(keys);
	return rc;
}

/* ---- the fan-out thread ---- */

static void
dispatch_one(struct web_live *live, struct raw *m)
{
	json_t *alert = json_loadb(m->payload, m->len, 0, NULL), *arr;
	const char *site;
	PGconn *conn = NULL;
	char *data, *text;
	struct ev *e;

	/* Only the topic's site: a message on one site's topic reaches no
	 * other site's operators. */
	if (!json_is_object(alert) ||
	    strcmp(json_string_value(json_object_get(alert, "site")) ?: "", m->site) != 0) {
		json_decref(alert);
		return;
	}
	arr = json_pack("[O]", alert);
	if (arr && web_db_acquire(live->db, 1000, &conn) < 0)
		conn = NULL;
	if (arr && web_alerts_enrich(conn, arr, live->wc->base.site_timezone) < 0 && conn)
		log_debug("live: a transition goes out without its silence (PostgreSQL failed)");
	if (conn)
		web_db_release(live->db, conn);
	site = json_string_value(json_object_get(alert, "site"));
	data = arr ? json_dumps(json_array_get(arr, 0), JSON_COMPACT) : NULL;
	if (data && asprintf(&text, "event: alert\ndata: %s\n\n", data) >= 0) {
		e = ev_new(text, strlen(text));
		free(text);
		if (e) {
			fan_out(live, e, site);
			ev_unref(e);
		}
	}
	free(data);
	json_decref(arr);
	json_decref(alert);
}

static void *
dispatch_main(void *arg)
{
	struct web_live *live = arg;

	pthread_mutex_lock(&live->lock);
	for (;;) {
		struct raw m;

		while (!live->stopping && live->dq_count == 0)
			pthread_cond_wait(&live->dispatch_cond, &live->lock);
		if (live->stopping)
			break;
		m = live->dq[live->dq_head];
		live->dq_head = (live->dq_head + 1) % DISPATCH_MAX;
		live->dq_count--;
		pthread_mutex_unlock(&live->lock);
		dispatch_one(live, &m);
		free(m.payload);
		pthread_mutex_lock(&live->lock);
	}
	pthread_mutex_unlock(&live->lock);
	return NULL;
}

/* ---- Paho's thread: copy and return ---- */

/* The site and the last level of `topic` when it is <root>/<site>/<what>/<x>. */
static bool
split_topic(const struct web_live *live, const char *topic, const char *what, char *site,
	    size_t sitelen, const char **ret_last)
{
	const char *root = live->wc->base.topic_root;
	size_t rl = strlen(root), wl = strlen(what);
	const char *p, *slash;

	if (strncmp(topic, root, rl) != 0 || topic[rl] != '/')
		return false;
	p = topic + rl + 1;
	slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= sitelen || slash == p)
		return false;
	memcpy(site, p, (size_t)(slash - p));
	site[slash - p] = '\0';
	p = slash + 1;
	if (strncmp(p, what, wl) != 0 || p[wl] != '/' || !p[wl + 1] || strchr(p + wl + 1, '/'))
		return false;
	*ret_last = p + wl + 1;
	return true;
}

/* The retained state of alert `id` at `site` (the topic's levels): kept
 * when it is an open alert whose own alert_id and site are the topic's,
 * else the alert is dropped from the map (a resolved one, an empty
 * payload, or something else that a broker writer put there). */
static void
retained(struct web_live *live, const char *site, const char *id, const char *payload, size_t len)
{
	json_t *a = len ? json_loadb(payload, len, 0, NULL) : NULL;
	const char *state = json_string_value(json_object_get(a, "state"));
	const char *a_site = json_string_value(json_object_get(a, "site"));
	const char *a_id = json_string_value(json_object_get(a, "alert_id"));

	pthread_mutex_lock(&live->map_lock);
	if (!a || !state || strcmp(state, "resolved") == 0 || !a_site ||
	    strcmp(a_site, site) != 0 || !a_id || strcmp(a_id, id) != 0)
		json_object_del(live->map, id);
	else if (json_object_size(live->map) < WEB_RETAINED_MAX || json_object_get(live->map, id))
		json_object_set(live->map, id, a);
	pthread_mutex_unlock(&live->map_lock);
	json_decref(a);
}

static int
on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct web_live *live = context;
	char site[80];
	const char *last;

	(void)topic_len;
	if (m->payloadlen > PAYLOAD_MAX) {
		/* not an alert of ours */
	} else if (split_topic(live, topic, "alerts", site, sizeof(site), &last)) {
		retained(live, site, last, m->payload, (size_t)m->payloadlen);
	} else if (m->payloadlen > 0 &&
		   split_topic(live, topic, "alert", site, sizeof(site), &last)) {
		char *copy = malloc((size_t)m->payloadlen);

		pthread_mutex_lock(&live->lock);
		if (copy && live->dq_count < DISPATCH_MAX) {
			struct raw *slot =
				&live->dq[(live->dq_head + live->dq_count) % DISPATCH_MAX];

			memcpy(copy, m->payload, (size_t)m->payloadlen);
			slot->payload = copy;
			slot->len = (size_t)m->payloadlen;
			snprintf(slot->site, sizeof(slot->site), "%s", site);
			live->dq_count++;
			pthread_cond_signal(&live->dispatch_cond);
			copy = NULL;
		} else {
			log_limited(&live->drop_rl, LOG_LEVEL_WARNING,
				    "live: %d transitions wait for the fan-out; one is not shown"
				    " live (the pages' next snapshot has it)",
				    DISPATCH_MAX);
		}
		pthread_mutex_unlock(&live->lock);
		free(copy);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void
on_subscribed(void *context, MQTTAsync_successData *resp)
{
	struct web_live *live = context;

	(void)resp;
	log_info("MQTT: subscribed to %s and %s", live->filter_state, live->filter_alert);
	/* The pages reconnect and get a snapshot: what passed while the
	 * subscription was away is in it. */
	web_live_close_clients(live);
}

static void
on_subscribe_failed(void *context, MQTTAsync_failureData *resp)
{
	struct web_live *live = context;

	log_err("MQTT: subscription to %s and %s refused (%d): check the broker's ACL for %s",
		live->filter_state, live->filter_alert, resp ? resp->code : 0, live->wc->client_id);
}

static void
on_connected(void *context, char *cause)
{
	struct web_live *live = context;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	char *filters[2] = { live->filter_state, live->filter_alert };
	int qos[2] = { 1, 1 };

	(void)cause;
	atomic_store(&live->connected, 1);
	ro.context = live;
	ro.onSuccess = on_subscribed;
	ro.onFailure = on_subscribe_failed;
	if (MQTTAsync_subscribeMany(live->mqtt, 2, filters, qos, &ro) != MQTTASYNC_SUCCESS)
		log_err("MQTT: cannot subscribe to %s", live->filter_alert);
}

static void
on_connection_lost(void *context, char *cause)
{
	struct web_live *live = context;

	atomic_store(&live->connected, 0);
	pthread_mutex_lock(&live->map_lock);
	json_object_clear(live->map);
	pthread_mutex_unlock(&live->map_lock);
	web_live_close_clients(live);
	log_warn("MQTT: connection lost (%s); reconnecting; open alerts come from PostgreSQL"
		 " meanwhile",
		 cause ? cause : "no reason given");
	mqtt_redial_lost(&live->redial);
}

/* Paho's thread: our connect got in; the connected callback (above)
 * subscribes. */
static void
on_connect_success(void *context, MQTTAsync_successData *resp)
{
	struct web_live *live = context;

	const char *user = web_config_username(live->wc);

	log_info("MQTT: connected to %s as client %s, %s%s",
		 resp && resp->alt.connect.serverURI ? resp->alt.connect.serverURI : "the broker",
		 live->wc->client_id, user[0] ? "user " : "without a user name", user);
	mqtt_redial_up(&live->redial);
}

static void
on_connect_failed(void *context, MQTTAsync_failureData *resp)
{
	struct web_live *live = context;

	log_warn("MQTT: connect failed (%s); retrying",
		 resp && resp->message ? resp->message : "no answer");
	mqtt_redial_failed(&live->redial);
}

void
web_live_tick(struct web_live *live, int64_t now_ms)
{
	int rc;

	if (!live->mqtt || !mqtt_redial_due(&live->redial, now_ms))
		return;
	mqtt_broker_next(&live->broker); /* the next node, if a list */
	mqtt_broker_dial(&live->broker, &live->conn);
	rc = MQTTAsync_connect(live->mqtt, &live->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warn("MQTT: cannot start connecting: %s; retrying", MQTTAsync_strerror(rc));
		mqtt_redial_failed(&live->redial);
	}
}

/* ---- start, stop ---- */

int
web_live_start(const struct web_config *wc, struct web_db *db, struct web_live **ret)
{
	const struct config *c = &wc->base;
	struct web_live *live = calloc(1, sizeof(*live));
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer;
	int rc;

	if (!live || !(live->map = json_object())) {
		free(live);
		return -ENOMEM;
	}
	live->wc = wc;
	live->db = db;
	live->drop_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(5, 60);
	pthread_mutex_init(&live->map_lock, NULL);
	pthread_mutex_init(&live->lock, NULL);
	pthread_cond_init(&live->dispatch_cond, NULL);
	snprintf(live->filter_state, sizeof(live->filter_state), "%s/+/alerts/+", c->topic_root);
	snprintf(live->filter_alert, sizeof(live->filter_alert), "%s/+/alert/+", c->topic_root);
	*ret = live;
	if (pthread_create(&live->thread, NULL, dispatch_main, live) != 0)
		return -EAGAIN;
	live->thread_started = true;
	co.sendWhileDisconnected = 0;
	if (mqtt_broker_init(&live->broker, c) < 0)
		return -EINVAL;
	rc = MQTTAsync_createWithOptions(&live->mqtt, mqtt_broker_first(&live->broker),
					 wc->client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("MQTT: cannot create the client for %s (%d)", c->mqtt_uri, rc);
		live->mqtt = NULL;
		return -EINVAL;
	}
	MQTTAsync_setCallbacks(live->mqtt, live, on_connection_lost, on_message, NULL);
	MQTTAsync_setConnected(live->mqtt, live, on_connected);
	conn.keepAliveInterval = (int)(c->mqtt_keepalive / 1000);
	conn.cleansession = 1;
	/* Not MQTTVERSION_DEFAULT: Paho would then try 3.1 by itself after
	 * a lost 3.1.1 connection, racing our reconnect (mqtt_broker.c). */
	conn.MQTTVersion = MQTTVERSION_3_1_1;
	/* Our reconnects (web_live_tick), so that each walks the list of
	 * URIs from the first. */
	conn.automaticReconnect = 0;
	conn.connectTimeout = 10;
	conn.onSuccess = on_connect_success;
	conn.onFailure = on_connect_failed;
	conn.context = live;
	/* [web] username and password_file, else [mqtt]'s. */
	if (web_config_username(wc)[0])
		conn.username = web_config_username(wc);
	if (web_config_password_file(wc)[0]) {
		live->password = config_read_secret(web_config_password_file(wc));
		if (!live->password) {
			log_err("cannot read [%s] password_file %s",
				wc->username[0] ? "web" : "mqtt", web_config_password_file(wc));
			return -EINVAL;
		}
		conn.password = live->password;
	}
	mqtt_broker_async_options(&live->broker, &conn, &live->ssl);
	live->conn = conn;
	mqtt_redial_init(&live->redial);
	rc = MQTTAsync_connect(live->mqtt, &live->conn);
	if (rc != MQTTASYNC_SUCCESS) {
		log_err("MQTT: cannot start connecting to %s (%d)", c->mqtt_uri, rc);
		return -EIO;
	}
	return 0;
}

void
web_live_stop(struct web_live *live)
{
	if (!live)
		return;
	if (live->mqtt) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;

		d.timeout = 1000;
		if (MQTTAsync_isConnected(live->mqtt))
			MQTTAsync_disconnect(live->mqtt, &d);
		for (int i = 0; i < 20 && MQTTAsync_isConnected(live->mqtt); i++)
			usleep(50000);
		MQTTAsync_destroy(&live->mqtt);
	}
	pthread_mutex_lock(&live->lock);
	live->stopping = true;
	for (struct web_sse *c = live->clients; c; c = c->next)
		client_kill(c);
	pthread_cond_signal(&live->dispatch_cond);
	pthread_mutex_unlock(&live->lock);
	if (live->thread_started)
		pthread_join(live->thread, NULL);
	while (live->dq_count) {
		free(live->dq[live->dq_head].payload);
		live->dq_head = (live->dq_head + 1) % DISPATCH_MAX;
		live->dq_count--;
	}
	json_decref(live->map);
	config_free_secret(live->password);
	mqtt_broker_finish(&live->broker);
	/* The clients are freed by their connections (web_sse_close), which
	 * the HTTP server has ended before this. */
	free(live);
}

bool
web_live_is_connected(struct web_live *live)
{
	return atomic_load(&live->connected);
}

/* ---- the open alerts ---- */

static int
severity_rank(const json_t *a)
{
	const char *s = json_string_value(json_object_get(a, "severity"));

	return !s ? 3 : strcmp(s, "critical") == 0 ? 0 : strcmp(s, "warning") == 0 ? 1 : 2;
}

static int
cmp_alerts(const void *pa, const void *pb)
{
	const json_t *a = *(json_t *const *)pa, *b = *(json_t *const *)pb;
	const char *ra = json_string_value(json_object_get(a, "raised_at"));
	const char *rb = json_string_value(json_object_get(b, "raised_at"));
	int d = severity_rank(a) - severity_rank(b);

	if (d)
		return d;
	d = strcmp(rb ? rb : "", ra ? ra : ""); /* newest first: RFC 3339 UTC sorts as text */
	if (d)
		return d;
	return strcmp(json_string_value(json_object_get(a, "alert_id")) ?: "",
		      json_string_value(json_object_get(b, "alert_id")) ?: "");
}

void
web_live_sort_alerts(json_t *alerts)
{
	size_t n = json_array_size(alerts);
	json_t **list = n ? calloc(n, sizeof(*list)) : NULL;

	if (!list)
		return; /* out of memory: left in the order it has */
	for (size_t i = 0; i < n; i++)
		list[i] = json_incref(json_array_get(alerts, i));
	qsort(list, n, sizeof(*list), cmp_alerts);
	json_array_clear(alerts);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(alerts, list[i]);
	free(list);
}

json_t *
web_live_open_alerts(struct web_live *live, const struct web_session *sess)
{
	json_t **list = NULL, *out = NULL, *a;
	const char *id;
	size_t n = 0;

	pthread_mutex_lock(&live->map_lock);
	if (json_object_size(live->map) && atomic_load(&live->connected)) {
		list = calloc(json_object_size(live->map), sizeof(*list));
		out = list ? json_array() : NULL;
		if (out)
			json_object_foreach(
				live->map, id,
				a) if (web_session_has_site(sess,
							    json_string_value(
								    json_object_get(a, "site"))))
				list[n++] = json_deep_copy(a);
	}
	pthread_mutex_unlock(&live->map_lock);
	if (!out) {
		free(list);
		return NULL;
	}
	qsort(list, n, sizeof(*list), cmp_alerts);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(out, list[i]);
	free(list);
	return out;
}

json_t *
web_live_alert(struct web_live *live, const char *alert_id)
{
	json_t *a;

	pthread_mutex_lock(&live->map_lock);
	a = json_deep_copy(json_object_get(live->map, alert_id));
	pthread_mutex_unlock(&live->map_lock);
	return a;
}

/* ---- publishing ---- */

struct pubwait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int refs;
	bool done;
	int rc;
};

static void
pubwait_unref(struct pubwait *pw)
{
	bool last;

	pthread_mutex_lock(&pw->lock);
	last = --pw->refs == 0;
	pthread_mutex_unlock(&pw->lock);
	if (last) {
		pthread_mutex_destroy(&pw->lock);
		pthread_cond_destroy(&pw->cond);
		free(pw);
	}
}

static void
pubwait_done(struct pubwait *pw, int rc)
{
	pthread_mutex_lock(&pw->lock);
	pw->done = true;
	pw->rc = rc;
	pthread_cond_signal(&pw->cond);
	pthread_mutex_unlock(&pw->lock);
	pubwait_unref(pw);
}

static void
on_published(void *context, MQTTAsync_successData *resp)
{
	(void)resp;
	pubwait_done(context, 0);
}

static void
on_publish_failed(void *context, MQTTAsync_failureData *resp)
{
	(void)resp;
	pubwait_done(context, -EIO);
}

int
web_live_publish(struct web_live *live, const char *topic, const char *payload, int wait_ms)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	struct pubwait *pw;
	struct timespec until;
	int rc;

	if (!atomic_load(&live->connected))
		return -ENOTCONN;
	pw = calloc(1, sizeof(*pw));
	if (!pw)
		return -ENOMEM;
	pthread_mutex_init(&pw->lock, NULL);
	cond_init_mono(&pw->cond);
	pw->refs = 2;
	ro.context = pw;
	ro.onSuccess = on_published;
	ro.onFailure = on_publish_failed;
	rc = MQTTAsync_send(live->mqtt, topic, (int)strlen(payload), payload, 1, 0, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		pw->refs = 1;
		pubwait_unref(pw);
		return rc == MQTTASYNC_DISCONNECTED ? -ENOTCONN : -EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&pw->lock);
	while (!pw->done)
		if (pthread_cond_timedwait(&pw->cond, &pw->lock, &until) == ETIMEDOUT)
			break;
	rc = pw->done ? pw->rc : -ETIMEDOUT;
	pthread_mutex_unlock(&pw->lock);
	pubwait_unref(pw);
	return rc;
}
