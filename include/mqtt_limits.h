/* mqtt_limits.h - what an MQTT v5 broker says it takes, and the arithmetic
 * to obey it.
 *
 * The broker states its limits in the CONNACK properties (MQTT 5.0
 * §3.2.2.3: Maximum Packet Size, Maximum QoS, Retain Available, Receive
 * Maximum, Topic Alias Maximum). A client that sends a packet over the
 * Maximum Packet Size is disconnected (§3.1.2.11.4: the broker closes
 * with reason 0x95), a QoS over Maximum QoS or a retained message when
 * retain is not available is a protocol error (0x9B, 0x9A). Pure
 * functions: no Paho calls, no I/O. */
#ifndef CORDON_MQTT_LIMITS_H
#define CORDON_MQTT_LIMITS_H

#include <stddef.h>
#include <stdint.h>

struct mqtt_limits {
	uint32_t max_packet;	  /* bytes of a whole packet; 0: no limit stated */
	int max_qos;		  /* 0, 1 or 2 (2 when not stated) */
	int retain_available;	  /* 1 when not stated */
	uint32_t receive_max;	  /* QoS > 0 publishes in flight; 65535 when not stated */
	uint32_t topic_alias_max; /* 0 when not stated: no aliases */
};

/* The limits of a broker that stated none (MQTT 5.0 §3.2.2.3 defaults). */
#define MQTT_LIMITS_NONE ((struct mqtt_limits){ 0, 2, 1, 65535, 0 })

/* Words for a CONNACK reason code: an MQTT 5.0 code (§3.2.2.2, 0x00 and
 * 0x80..0x9F; the codes other packets share come from mqtt_reason_text())
 * or an MQTT 3.1.1 return code (§3.2.2.3, 1..5), e.g. 0x87 -> "not
 * authorized". A static string; "unknown reason code" for anything else
 * (negative codes are Paho's own errors: see MQTTAsync_strerror()). */
const char *mqtt_connack_reason(int code);

/* Bytes of an MQTT v5 PUBLISH packet: fixed header (1 byte + the
 * Remaining Length as a variable byte integer, §1.5.5), topic (2-byte
 * length + its bytes), packet identifier (2 bytes, QoS > 0 only),
 * properties (`props_len` bytes: their variable byte integer length
 * included), payload. SIZE_MAX when over the 268,435,455-byte maximum
 * Remaining Length. */
size_t mqtt_publish_size(size_t topic_len, size_t payload_len, int qos, size_t props_len);

/* A PUBLISH command as libpaho-mqtt3a 1.3.12 writes it to its persistence
 * under the keys "c-N" / "c5-N" (MQTTAsyncUtils.c, MQTTAsync_persistCommand
 * and MQTTAsync_restoreCommand): int type (3 = PUBLISH), int token, the
 * topic and its NUL, int payloadlen, the payload, int qos, int retained,
 * then for "c5-" the properties as on the wire (variable byte integer
 * length + properties). Native byte order and int size: the file is
 * written and read by the same machine. The pointers point into the
 * buffer that was parsed. */
struct mqtt_paho_publish {
	int token;
	const char *topic; /* NUL-terminated */
	size_t topic_len;
	const char *payload;
	size_t payload_len;
	int qos, retained;
	const char *props; /* props_len bytes; "\0" (empty) when none */
	size_t props_len;
};

#define MQTT_PAHO_PUBLISH 3 /* MQTTPacket.h: enum msgTypes, PUBLISH */

/* Parses `buf` (`len` bytes); returns 0, -ENOMSG when it is a command but
 * not a PUBLISH (a subscribe, ...), or -EBADMSG when it is not a Paho
 * command at all or is cut. */
int mqtt_paho_publish_parse(const char *buf, size_t len, struct mqtt_paho_publish *ret);
/* Writes `p` in that format into a buffer from `alloc` (Paho's
 * MQTTAsync_malloc when the buffer goes back to Paho); returns it and sets
 * *ret_len, or NULL when `alloc` fails or the sizes do not fit an int. */
char *mqtt_paho_publish_build(const struct mqtt_paho_publish *p, void *(*alloc)(size_t),
			      size_t *ret_len);

#endif
