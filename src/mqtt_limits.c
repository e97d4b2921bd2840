/* mqtt_limits.c - CONNACK reason words, PUBLISH sizes, Paho's persisted
 * PUBLISH commands (see mqtt_limits.h for the formats' sources). */
#include "mqtt_limits.h"
#include "mqtt_watch.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

const char *
mqtt_connack_reason(int code)
{
	/* MQTT 5.0 §3.2.2.2, Table 3-1 (CONNACK reason codes): those only a
	 * CONNACK gives; the others are in mqtt_watch.c's table. */
	static const struct {
		int code;
		const char *words;
	} v5[] = {
		{ 0x00, "success" },
		{ 0x84, "unsupported protocol version" },
		{ 0x85, "client identifier not valid" },
		{ 0x86, "bad user name or password" },
		{ 0x88, "server unavailable" },
		{ 0x8A, "banned" },
		{ 0x8C, "bad authentication method" },
	};
	/* MQTT 3.1.1 §3.2.2.3, Table 3.1 (CONNACK return codes). */
	static const char *const v311[] = {
		"connection accepted", "unacceptable protocol version", "identifier rejected",
		"server unavailable",  "bad user name or password",	"not authorized",
	};

	if (code >= 1 && code <= 5)
		return v311[code];
	for (size_t i = 0; i < sizeof(v5) / sizeof(v5[0]); i++)
		if (v5[i].code == code)
			return v5[i].words;
	return mqtt_reason_text(code) ? mqtt_reason_text(code) : "unknown reason code";
}

/* Bytes of `n` as a variable byte integer (MQTT 5.0 §1.5.5); 0 when over
 * the 4-byte maximum. */
static size_t
vbi_len(size_t n)
{
	if (n < 128)
		return 1;
	if (n < 16384)
		return 2;
	if (n < 2097152)
		return 3;
	if (n < 268435456)
		return 4;
	return 0;
}

size_t
mqtt_publish_size(size_t topic_len, size_t payload_len, int qos, size_t props_len)
{
	size_t rem, v;

	if (topic_len > 65535 || payload_len > 268435455 || props_len > 268435455)
		return SIZE_MAX;
	rem = 2 + topic_len + (qos > 0 ? 2 : 0) + props_len + payload_len;
	v = vbi_len(rem);
	return v ? 1 + v + rem : SIZE_MAX;
}

/* Reads a native int at *pos, advancing it; -1 when cut. */
static int
take_int(const char *buf, size_t len, size_t *pos, int *ret)
{
	if (len - *pos < sizeof(int))
		return -1;
	memcpy(ret, buf + *pos, sizeof(int));
	*pos += sizeof(int);
	return 0;
}

int
mqtt_paho_publish_parse(const char *buf, size_t len, struct mqtt_paho_publish *ret)
{
	size_t pos = 0;
	const char *nul;
	int type, plen;

	memset(ret, 0, sizeof(*ret));
	if (take_int(buf, len, &pos, &type) < 0 || take_int(buf, len, &pos, &ret->token) < 0)
		return -EBADMSG;
	/* Paho's command types are small (MQTTPacket.h msgTypes 1..15); a
	 * persisted packet ("s5-N") starts with a fixed header byte instead. */
	if (type < 1 || type > 15)
		return -EBADMSG;
	if (type != MQTT_PAHO_PUBLISH)
		return -ENOMSG;
	nul = memchr(buf + pos, '\0', len - pos);
	if (!nul)
		return -EBADMSG;
	ret->topic = buf + pos;
	ret->topic_len = (size_t)(nul - ret->topic);
	pos += ret->topic_len + 1;
	if (take_int(buf, len, &pos, &plen) < 0 || plen < 0 || (size_t)plen > len - pos)
		return -EBADMSG;
	ret->payload = buf + pos;
	ret->payload_len = (size_t)plen;
	pos += (size_t)plen;
	if (take_int(buf, len, &pos, &ret->qos) < 0 || take_int(buf, len, &pos, &ret->retained) < 0)
		return -EBADMSG;
	if (ret->qos < 0 || ret->qos > 2)
		return -EBADMSG;
	ret->props = pos < len ? buf + pos : "";
	ret->props_len = pos < len ? len - pos : 0;
	return 0;
}

char *
mqtt_paho_publish_build(const struct mqtt_paho_publish *p, void *(*alloc)(size_t), size_t *ret_len)
{
	int type = MQTT_PAHO_PUBLISH, plen = (int)p->payload_len;
	size_t len;
	char *buf, *w;

	if (p->payload_len > INT_MAX || p->topic_len > INT_MAX / 2)
		return NULL;
	len = 5 * sizeof(int) + p->topic_len + 1 + p->payload_len + p->props_len;
	buf = alloc(len);
	if (!buf)
		return NULL;
	w = buf;
	memcpy(w, &type, sizeof(int));
	w += sizeof(int);
	memcpy(w, &p->token, sizeof(int));
	w += sizeof(int);
	memcpy(w, p->topic, p->topic_len);
	w += p->topic_len;
	*w++ = '\0';
	memcpy(w, &plen, sizeof(int));
	w += sizeof(int);
	memcpy(w, p->payload, p->payload_len);
	w += p->payload_len;
	memcpy(w, &p->qos, sizeof(int));
	w += sizeof(int);
	memcpy(w, &p->retained, sizeof(int));
	w += sizeof(int);
	memcpy(w, p->props, p->props_len);
	*ret_len = len;
	return buf;
}
