/* sim_mqtt.c - the simulator's publisher: one Paho MQTTAsync client, a
 * bounded in-flight window, and counters of what the broker acknowledged.
 *
 * The main thread publishes; Paho's threads call on_published()/on_publish_failed() when
 * a PUBACK arrives (QoS 1) or the message was written (QoS 0). A message
 * counts as published only then. The window is ours (Paho would queue
 * without bound): pub_send() waits while `inflight` messages are
 * unacknowledged. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "config.h"
#include "sim.h"

struct pub {
	MQTTAsync client;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inflight;
	int waiting;	 /* the main thread waits on cond ... */
	uint64_t resume; /* ... until at most this many are unacknowledged */
	int connected;	 /* 1 connected, -1 refused or lost */
	char why[160];
	uint64_t sent;	       /* main thread only */
	_Atomic uint64_t done; /* acked + failed */
	struct pub_counts c;   /* under lock, but for c.sent */
};

/* Wakes the main thread once the window has drained to p->resume: one
 * wake-up per batch of acknowledgements, not one per message (while it
 * waits, p->sent does not change). */
static void
wake(struct pub *p)
{
	if (p->waiting &&
	    p->sent - atomic_load_explicit(&p->done, memory_order_relaxed) <= p->resume)
		pthread_cond_signal(&p->cond);
}

static void
on_connected(void *ctx, MQTTAsync_successData *resp)
{
	struct pub *p = ctx;

	(void)resp;
	pthread_mutex_lock(&p->lock);
	p->connected = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void
on_connect_failed(void *ctx, MQTTAsync_failureData *resp)
{
	struct pub *p = ctx;

	pthread_mutex_lock(&p->lock);
	p->connected = -1;
	snprintf(p->why, sizeof(p->why), "%s (rc %d)",
		 resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : -1),
		 resp ? resp->code : -1);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void
on_connection_lost(void *ctx, char *cause)
{
	struct pub *p = ctx;

	pthread_mutex_lock(&p->lock);
	p->connected = -1;
	snprintf(p->why, sizeof(p->why), "connection lost%s%s", cause ? ": " : "",
		 cause ? cause : "");
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static int
on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)ctx;
	(void)topic_len;
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* The context of a publish is its tag (no allocation per message), so
 * the callbacks find the publisher here: one per process. */
static struct pub *the_pub;

static void
count(uint32_t tag, bool ok)
{
	struct pub *p = the_pub;
	unsigned kind = tag & 0xf, rows = (tag >> 4) & 0xff, label = (tag >> 12) & 0xf;

	pthread_mutex_lock(&p->lock);
	if (ok) {
		p->c.acked++;
		p->c.msgs[kind % PUB_KINDS]++;
		p->c.rows[kind % PUB_KINDS] += rows;
		if (label)
			p->c.labels[label]++;
	} else {
		p->c.failed++;
	}
	atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
	wake(p);
	pthread_mutex_unlock(&p->lock);
}

static void
on_published(void *ctx, MQTTAsync_successData *resp)
{
	(void)resp;
	count((uint32_t)(uintptr_t)ctx, true);
}

static void
on_publish_failed(void *ctx, MQTTAsync_failureData *resp)
{
	(void)resp;
	count((uint32_t)(uintptr_t)ctx, false);
}

int
pub_login_check(const struct pub_login *login, const char *synopsis)
{
	if (login->username && (!login->username[0] || strlen(login->username) > 256))
		return tool_usage(synopsis, "-u: a user name of 1 to 256 bytes: '%.80s'",
				  login->username);
	if (login->password_file && !login->username)
		return tool_usage(synopsis, "--password-file needs -u USER");
	return 0;
}

int
pub_create(const char *uri, const struct pub_login *login, const char *client_prefix, int inflight,
	   struct pub **ret_pub)
{
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	char client_id[64], *password = NULL;
	struct timespec until;
	struct pub *p;
	int rc;

	if (the_pub) {
		tool_err("one publisher per process");
		return -1;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		tool_err("out of memory");
		return -1;
	}
	pthread_mutex_init(&p->lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&p->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	p->inflight = inflight;
	the_pub = p;
	snprintf(client_id, sizeof(client_id), "%s-%d", client_prefix, (int)getpid());
	rc = MQTTAsync_create(&p->client, uri, client_id, MQTTCLIENT_PERSISTENCE_NONE, NULL);
	if (rc != MQTTASYNC_SUCCESS) {
		tool_err("MQTT: %s: %s", uri, MQTTAsync_strerror(rc));
		goto fail;
	}
	MQTTAsync_setCallbacks(p->client, p, on_connection_lost, on_message, NULL);
	co.keepAliveInterval = 30;
	co.cleansession = 1;
	co.maxInflight = inflight;
	co.connectTimeout = 10;
	co.onSuccess = on_connected;
	co.onFailure = on_connect_failed;
	co.context = p;
	if (login && login->username)
		co.username = login->username;
	if (login && login->password_file) {
		password = config_read_secret(login->password_file);
		if (!password) {
			tool_err("cannot read --password-file %s: %s", login->password_file,
				 errno == EINVAL ? "empty, or its first line is over 1 KiB" :
						   strerror(errno));
			goto fail;
		}
		co.password = password;
	}
	rc = MQTTAsync_connect(p->client, &co);
	if (password) { /* Paho has copied it */
		memset(password, 0, strlen(password));
		free(password);
	}
	if (rc != MQTTASYNC_SUCCESS) {
		tool_err("MQTT: cannot connect to %s: %s", uri, MQTTAsync_strerror(rc));
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 30;
	pthread_mutex_lock(&p->lock);
	while (p->connected == 0)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT)
			break;
	rc = p->connected;
	pthread_mutex_unlock(&p->lock);
	if (rc != 1) {
		tool_err("MQTT: cannot connect to %s: %s", uri, rc ? p->why : "timed out");
		goto fail;
	}
	*ret_pub = p;
	return 0;
fail:
	pub_destroy(p);
	return -1;
}

bool
pub_ready(struct pub *p)
{
	int state;

	if (p->sent - atomic_load_explicit(&p->done, memory_order_acquire) <
		    (uint64_t)p->inflight &&
	    p->connected == 1)
		return true;
	pthread_mutex_lock(&p->lock);
	p->waiting = 1;
	p->resume = (uint64_t)(p->inflight - 1 - p->inflight / 8);
	while (p->connected == 1 &&
	       p->sent - atomic_load_explicit(&p->done, memory_order_acquire) > p->resume)
		pthread_cond_wait(&p->cond, &p->lock);
	p->waiting = 0;
	state = p->connected;
	pthread_mutex_unlock(&p->lock);
	if (state != 1) {
		tool_err("MQTT: %s", p->why);
		return false;
	}
	return true;
}

int
pub_send(struct pub *p, const char *topic, const void *payload, size_t len, int qos, uint32_t tag)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (!pub_ready(p))
		return -1;
	ro.onSuccess = on_published;
	ro.onFailure = on_publish_failed;
	ro.context = (void *)(uintptr_t)tag;
	rc = MQTTAsync_send(p->client, topic, (int)len, payload, qos, 0, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		tool_err("MQTT: publishing on %s: %s", topic, MQTTAsync_strerror(rc));
		return -1;
	}
	p->sent++;
	return 0;
}

bool
pub_drain(struct pub *p, double timeout)
{
	struct timespec until;
	bool all;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += (time_t)timeout;
	until.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	p->waiting = 1;
	p->resume = 0;
	while (p->connected == 1 && atomic_load(&p->done) < p->sent)
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT)
			break;
	p->waiting = 0;
	all = atomic_load(&p->done) >= p->sent;
	pthread_mutex_unlock(&p->lock);
	return all;
}

void
pub_counts(struct pub *p, struct pub_counts *ret)
{
	pthread_mutex_lock(&p->lock);
	*ret = p->c;
	pthread_mutex_unlock(&p->lock);
	ret->sent = p->sent;
}

void
pub_destroy(struct pub *p)
{
	if (!p)
		return;
	if (p->client) {
		MQTTAsync_disconnectOptions dc = MQTTAsync_disconnectOptions_initializer;

		dc.timeout = 1000;
		if (MQTTAsync_isConnected(p->client))
			(void)MQTTAsync_disconnect(p->client, &dc);
		/* disconnect is asynchronous; destroy waits for Paho's threads */
		for (int i = 0; i < 100 && MQTTAsync_isConnected(p->client); i++)
			usleep(10000);
		MQTTAsync_destroy(&p->client);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	if (the_pub == p)
		the_pub = NULL;
	free(p);
}
