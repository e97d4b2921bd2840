/* mqtt_broker.h - where the broker is, for every program's Paho client:
 * [mqtt] uri's list of URIs (a clustered broker's nodes) and the TLS
 * files, as connect options; which URI an MQTTAsync client dials next;
 * and the reconnects of cordon-notify's and cordon-web's clients. cordond
 * (mqtt_client.c), cordon-notify, cordon-web and cordonctl use it.
 *
 * An MQTTAsync client dials one URI per connect, the next one of the list
 * after a failed connect or a lost connection, round and round: handed
 * the whole list (serverURIs), Paho 1.3.12 tries the next URI by itself
 * the moment a connection is lost (MQTTAsyncUtils.c, nextOrClose), with
 * none of our callbacks and racing the reconnect of ours that replaces
 * its options; and its automatic reconnect never goes back to the first
 * URI (eclipse-paho/paho.mqtt.c#1661). The synchronous client (cordonctl:
 * one connect, no reconnects of Paho's) gets the whole list. */
#ifndef CORDON_MQTT_BROKER_H
#define CORDON_MQTT_BROKER_H

#include <MQTTAsync.h>
#include <MQTTClient.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"
#include "config.h"

/* Our own copies (a SIGHUP frees the configuration; every connect reads
 * them again): the URIs, and the TLS files of ssl:// (NULL: none). */
struct mqtt_broker {
	struct config_uris uris;
	char *ca_file, *cert_file, *key_file;
	_Atomic int current; /* the URI the next MQTTAsync connect dials */
};

/* Fills *b from cfg's [mqtt] uri (checked already by config_load; checked
 * again here), ca_file, cert_file and key_file. Returns 0, -EINVAL (the
 * list is not valid: logged) or -ENOMEM; on error *b needs no finish. */
int mqtt_broker_init(struct mqtt_broker *b, const struct config *cfg)
	__attribute__((warn_unused_result));
/* Frees what mqtt_broker_init() made; accepts a zeroed struct. */
void mqtt_broker_finish(struct mqtt_broker *b);

/* The URI to hand MQTTAsync_create()/MQTTClient_create(): the first one.
 * Paho connects to the URIs of the connect options and uses this one only
 * to name the client's persistence (and its first TLS setting). */
const char *mqtt_broker_first(const struct mqtt_broker *b);

/* Fills conn for MQTTAsync_connect(): the URI to dial (as
 * mqtt_broker_dial) and, for ssl://, *ssl (the broker's certificate
 * verified against ca_file, or the system's CAs, and its host name; our
 * certificate and key when set), conn->ssl pointing at it; *ssl must live
 * until the connect call returns (Paho copies it). Otherwise conn->ssl is
 * left alone. */
void mqtt_broker_async_options(struct mqtt_broker *b, MQTTAsync_connectOptions *conn,
			       MQTTAsync_SSLOptions *ssl);
/* Points conn at the one URI to dial now (serverURIs, serverURIcount 1;
 * Paho copies it): before every MQTTAsync_connect(). The connect's
 * success data names it (alt.connect.serverURI). */
void mqtt_broker_dial(struct mqtt_broker *b, MQTTAsync_connectOptions *conn);
/* After a failed connect or a lost connection: the next dial takes the
 * next URI of the list, after the last the first. Any thread. */
void mqtt_broker_next(struct mqtt_broker *b);
/* Paho's synchronous client (cordonctl): the whole list (MQTTClient_connect
 * tries each in turn and keeps the first that lets it in), TLS as above. */
void mqtt_broker_sync_options(const struct mqtt_broker *b, MQTTClient_connectOptions *conn,
			      MQTTClient_SSLOptions *ssl);

/* The reconnects of an MQTTAsync client, made by its owner's loop
 * (cordon-notify, cordon-web; cordond has its own, in mqtt_client.c): not
 * Paho's automatic reconnect, which would dial the same URI for good.
 * Paho's threads report what happened (mqtt_redial_up, _lost, _failed);
 * the owner's loop asks mqtt_redial_due() at least once a second and,
 * when it says so, calls mqtt_broker_next(), mqtt_broker_dial() and
 * MQTTAsync_connect(): after a backoff of 1 s, doubled at each failed
 * connect or connection lost without the loop seeing it up in between,
 * to at most 30 s. */
struct mqtt_redial {
	_Atomic int state; /* enum in mqtt_broker.c */
	int64_t at_ms;	   /* the loop's: when to dial (monotonic ms), 0: not planned */
	struct backoff backoff;
};
/* A client whose first connect is under way. */
void mqtt_redial_init(struct mqtt_redial *r);
/* Paho's threads: connected; the connection lost; the connect failed. */
void mqtt_redial_up(struct mqtt_redial *r);
void mqtt_redial_lost(struct mqtt_redial *r);
void mqtt_redial_failed(struct mqtt_redial *r);
/* The loop (one thread): whether to call MQTTAsync_connect() now
 * (monotonic `now_ms`); when true, the connect counts as under way. When
 * that call fails at once, report mqtt_redial_failed(). */
bool mqtt_redial_due(struct mqtt_redial *r, int64_t now_ms);

#endif
