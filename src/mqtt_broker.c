/* mqtt_broker.c - [mqtt] uri's list and TLS files as Paho's connect
 * options, the URI to dial next, and the reconnects of cordon-notify and
 * cordon-web (mqtt_broker.h).
 *
 * Paho 1.3.12 and serverURIs (MQTTAsync.c, MQTTAsyncUtils.c, MQTTClient.c):
 * the URI given to MQTTAsync_createWithOptions() names the persistence
 * and sets the client's TLS and WebSocket flags; a connect with
 * serverURIcount > 0 dials serverURIs[0], [1], ... until one lets it in.
 * A tcp:// entry does not clear the TLS flag an ssl:// one set: hence one
 * scheme per list (config_parse_uris). MQTTAsync also dials the next
 * entry by itself when an established connection is lost
 * (nextOrClose(): "more to try"), without the connect's callbacks, and a
 * connect of ours meanwhile replaces the options that attempt reads (the
 * trace then says "MQTT version is 0 in MQTTAsync_connecting"); with one
 * entry there is no next, so an MQTTAsync client gets one at a time. */
#include "mqtt_broker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

enum { REDIAL_CONNECTING, REDIAL_UP, REDIAL_LOST, REDIAL_FAILED };

static int
dup_file(const char *name, char **ret)
{
	*ret = NULL;
	if (!name[0])
		return 0;
	*ret = strdup(name);
	return *ret ? 0 : -ENOMEM;
}

int
mqtt_broker_init(struct mqtt_broker *b, const struct config *cfg)
{
	const char *why;

	memset(b, 0, sizeof(*b));
	why = config_parse_uris(cfg->mqtt_uri, &b->uris);
	if (why) {
		if (strcmp(why, "out of memory") == 0)
			return -ENOMEM;
		log_err("[mqtt] uri '%s': %s", cfg->mqtt_uri, why);
		return -EINVAL;
	}
	if (b->uris.tls &&
	    (dup_file(cfg->mqtt_ca_file, &b->ca_file) < 0 ||
	     dup_file(cfg->mqtt_cert_file, &b->cert_file) < 0 ||
	     dup_file(cfg->mqtt_key_file, &b->key_file) < 0)) {
		mqtt_broker_finish(b);
		return -ENOMEM;
	}
	return 0;
}

void
mqtt_broker_finish(struct mqtt_broker *b)
{
	if (!b)
		return;
	config_uris_free(&b->uris);
	free(b->ca_file);
	free(b->cert_file);
	free(b->key_file);
	b->ca_file = b->cert_file = b->key_file = NULL;
}

const char *
mqtt_broker_first(const struct mqtt_broker *b)
{
	return b->uris.uri[0];
}

void
mqtt_broker_dial(struct mqtt_broker *b, MQTTAsync_connectOptions *conn)
{
	int i = atomic_load(&b->current);

	conn->serverURIcount = 1;
	conn->serverURIs = &b->uris.uri[i >= 0 && i < b->uris.count ? i : 0];
}

void
mqtt_broker_next(struct mqtt_broker *b)
{
	int i = atomic_load(&b->current), next;

	do {
		next = b->uris.count > 0 ? (i + 1) % b->uris.count : 0;
	} while (!atomic_compare_exchange_weak(&b->current, &i, next));
}

void
mqtt_broker_async_options(struct mqtt_broker *b, MQTTAsync_connectOptions *conn,
			  MQTTAsync_SSLOptions *ssl)
{
	mqtt_broker_dial(b, conn);
	if (!b->uris.tls)
		return;
	*ssl = (MQTTAsync_SSLOptions)MQTTAsync_SSLOptions_initializer;
	ssl->trustStore = b->ca_file;
	ssl->keyStore = b->cert_file;
	ssl->privateKey = b->key_file;
	ssl->enableServerCertAuth = 1;
	ssl->verify = 1;
	conn->ssl = ssl;
}

void
mqtt_broker_sync_options(const struct mqtt_broker *b, MQTTClient_connectOptions *conn,
			 MQTTClient_SSLOptions *ssl)
{
	conn->serverURIcount = b->uris.count;
	conn->serverURIs = b->uris.uri;
	if (!b->uris.tls)
		return;
	*ssl = (MQTTClient_SSLOptions)MQTTClient_SSLOptions_initializer;
	ssl->trustStore = b->ca_file;
	ssl->keyStore = b->cert_file;
	ssl->privateKey = b->key_file;
	ssl->enableServerCertAuth = 1;
	ssl->verify = 1;
	conn->ssl = ssl;
}

void
mqtt_redial_init(struct mqtt_redial *r)
{
	atomic_store(&r->state, REDIAL_CONNECTING);
	r->at_ms = 0;
	backoff_init(&r->backoff, 1000, 30000);
}

void
mqtt_redial_up(struct mqtt_redial *r)
{
	atomic_store(&r->state, REDIAL_UP);
}

void
mqtt_redial_lost(struct mqtt_redial *r)
{
	atomic_store(&r->state, REDIAL_LOST);
}

void
mqtt_redial_failed(struct mqtt_redial *r)
{
	atomic_store(&r->state, REDIAL_FAILED);
}

bool
mqtt_redial_due(struct mqtt_redial *r, int64_t now_ms)
{
	int state = atomic_load(&r->state);

	switch (state) {
	case REDIAL_UP: backoff_reset(&r->backoff); return false;
	case REDIAL_CONNECTING: return false;
	case REDIAL_LOST:
	case REDIAL_FAILED:
		/* 1 s after a connection that lasted (the loop saw it up and
		 * reset the backoff); longer each time when it flaps. */
		if (r->at_ms == 0)
			r->at_ms = now_ms + backoff_next(&r->backoff);
		break;
	}
	if (now_ms < r->at_ms)
		return false;
	/* Paho's thread may have moved the state since: dial only from the
	 * state seen. */
	if (!atomic_compare_exchange_strong(&r->state, &state, REDIAL_CONNECTING))
		return false;
	r->at_ms = 0;
	return true;
}
