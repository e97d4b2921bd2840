/* mqtt_persist.h - Paho's outbound queue on disk, checksummed.
 *
 * Paho MQTT C keeps the messages it has not yet handed to the broker
 * (queued publishes, QoS 1 publishes in flight) in a persistence store so
 * that they survive a restart. Its default store writes one file per
 * message in place; a full disk or a power loss can leave a file cut
 * short, and libpaho 1.3.12 reads such a file past its end at the next
 * start (SIGSEGV). This store is a drop-in MQTTClient_persistence
 * (MQTTClientPersistence.h, MQTTCLIENT_PERSISTENCE_USER): each key is a
 * file written to a temporary name and renamed into place, framed by a
 * magic, a length and an XXH3-64 checksum. At open, every file is checked
 * and a damaged one is moved to broken/ and counted, so Paho only ever
 * reads whole entries. A write that fails (disk full) fails only that
 * entry: Paho keeps the message in memory and sends it; it is lost only
 * if cordond stops before the broker takes it, and that is counted.
 *
 * The store also keeps the broker's last Maximum Packet Size (a file
 * .max_packet beside the entries): a PUBLISH already sent and awaiting
 * its PUBACK ("s5-N") that is over it is moved to too_large/ at open,
 * before Paho reads it back, and counted. Paho sends such packets again
 * at each reconnect before we see the broker's CONNACK, and no call of
 * its API drops one: mqtt_client.c opens the store again (a new client) when
 * mqtt_persist_set_max_packet() finds one. */
#ifndef CORDON_MQTT_PERSIST_H
#define CORDON_MQTT_PERSIST_H

#include <MQTTClientPersistence.h>
#include <stdint.h>

struct mqtt_persist;

struct mqtt_persist_stats {
	uint64_t written;      /* entries written whole */
	uint64_t write_failed; /* entries Paho asked for that could not be written */
	uint64_t set_aside;    /* damaged entries found at open, moved to broken/ */
	uint64_t read_failed;  /* entries Paho wrote and could not read back */
	uint64_t too_large;    /* sent entries over the broker's maximum packet size, set aside */
	int last_errno;	       /* of the last failed write, 0 if none */
};

/* Creates a store rooted at `dir` (created at open if missing, mode
 * 0750) and fills *ret_paho with the callbacks to hand to
 * MQTTAsync_createWithOptions() as MQTTCLIENT_PERSISTENCE_USER; *ret_paho
 * must stay valid as long as the client. Returns 0 or -ENOMEM. */
int mqtt_persist_create(const char *dir, struct mqtt_persist **ret_persist,
			MQTTClient_persistence *ret_paho) __attribute__((warn_unused_result));
/* Frees the store; call after MQTTAsync_destroy(). Accepts NULL. */
void mqtt_persist_destroy(struct mqtt_persist *p);
/* Keeps the broker's Maximum Packet Size `max` (bytes of a whole packet,
 * MQTT 5.0 §3.2.2.3.6; 0: none stated) for the next open, in memory and
 * in the file (a write failure is logged). Returns how many PUBLISHes
 * awaiting their PUBACK are over it (0 when max is 0): the next open sets
 * them aside. Thread-safe; does file I/O. */
int mqtt_persist_set_max_packet(struct mqtt_persist *p, uint32_t max);
/* Counters; thread-safe. */
void mqtt_persist_get_stats(struct mqtt_persist *p, struct mqtt_persist_stats *ret_stats);

#endif
