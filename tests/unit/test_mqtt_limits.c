/* test_mqtt_limits.c - CONNACK reason words, PUBLISH sizes, and Paho's
 * persisted PUBLISH command format. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqtt_limits.h"

static void
test_connack_reasons(void **state)
{
	(void)state;
	/* MQTT 5.0 §3.2.2.2, every refusal code. */
	assert_string_equal(mqtt_connack_reason(0x80), "unspecified error");
	assert_string_equal(mqtt_connack_reason(0x81), "malformed packet");
	assert_string_equal(mqtt_connack_reason(0x82), "protocol error");
	assert_string_equal(mqtt_connack_reason(0x83), "implementation specific error");
	assert_string_equal(mqtt_connack_reason(0x84), "unsupported protocol version");
	assert_string_equal(mqtt_connack_reason(0x85), "client identifier not valid");
	assert_string_equal(mqtt_connack_reason(0x86), "bad user name or password");
	assert_string_equal(mqtt_connack_reason(0x87), "not authorized");
	assert_string_equal(mqtt_connack_reason(0x88), "server unavailable");
	assert_string_equal(mqtt_connack_reason(0x89), "server busy");
	assert_string_equal(mqtt_connack_reason(0x8A), "banned");
	assert_string_equal(mqtt_connack_reason(0x8C), "bad authentication method");
	assert_string_equal(mqtt_connack_reason(0x90), "topic name invalid");
	assert_string_equal(mqtt_connack_reason(0x95), "packet too large");
	assert_string_equal(mqtt_connack_reason(0x97), "quota exceeded");
	assert_string_equal(mqtt_connack_reason(0x99), "payload format invalid");
	assert_string_equal(mqtt_connack_reason(0x9A), "retain not supported");
	assert_string_equal(mqtt_connack_reason(0x9B), "QoS not supported");
	assert_string_equal(mqtt_connack_reason(0x9C), "use another server");
	assert_string_equal(mqtt_connack_reason(0x9D), "server moved");
	assert_string_equal(mqtt_connack_reason(0x9F), "connection rate exceeded");
	/* MQTT 3.1.1 §3.2.2.3. */
	assert_string_equal(mqtt_connack_reason(1), "unacceptable protocol version");
	assert_string_equal(mqtt_connack_reason(2), "identifier rejected");
	assert_string_equal(mqtt_connack_reason(3), "server unavailable");
	assert_string_equal(mqtt_connack_reason(4), "bad user name or password");
	assert_string_equal(mqtt_connack_reason(5), "not authorized");
	/* Not a CONNACK code, but MQTT 5 words it: said as it is. */
	assert_string_equal(mqtt_connack_reason(0x8B), "server shutting down");
	assert_string_equal(mqtt_connack_reason(0x7F), "unknown reason code");
	assert_string_equal(mqtt_connack_reason(-1), "unknown reason code");
}

static void
test_publish_size(void **state)
{
	(void)state;
	/* "a/b", QoS 1, no properties (1 byte: length 0), 10 bytes:
	 * remaining 2+3+2+1+10 = 18, +1 fixed byte, +1 length byte. */
	assert_int_equal(mqtt_publish_size(3, 10, 1, 1), 20);
	assert_int_equal(mqtt_publish_size(3, 10, 0, 1), 18);
	/* Remaining length 127 takes one byte, 128 two (§1.5.5). */
	assert_int_equal(mqtt_publish_size(3, 127 - 8, 1, 1), 1 + 1 + 127);
	assert_int_equal(mqtt_publish_size(3, 128 - 8, 1, 1), 1 + 2 + 128);
	assert_int_equal(mqtt_publish_size(3, 16384 - 8, 1, 1), 1 + 3 + 16384);
	assert_true(mqtt_publish_size(3, 268435455, 1, 1) == SIZE_MAX);
	assert_true(mqtt_publish_size(65536, 1, 1, 1) == SIZE_MAX);
}

/* A buffer as libpaho 1.3.12's MQTTAsync_persistCommand writes it. */
static size_t
paho_buffer(char *buf, int type, int token, const char *topic, const char *payload, int qos,
	    int retained)
{
	int plen = (int)strlen(payload);
	size_t n = 0;

	memcpy(buf + n, &type, sizeof(int));
	n += sizeof(int);
	memcpy(buf + n, &token, sizeof(int));
	n += sizeof(int);
	memcpy(buf + n, topic, strlen(topic) + 1);
	n += strlen(topic) + 1;
	memcpy(buf + n, &plen, sizeof(int));
	n += sizeof(int);
	memcpy(buf + n, payload, (size_t)plen);
	n += (size_t)plen;
	memcpy(buf + n, &qos, sizeof(int));
	n += sizeof(int);
	memcpy(buf + n, &retained, sizeof(int));
	n += sizeof(int);
	buf[n++] = 0; /* v5 properties: length 0 */
	return n;
}

static void
test_paho_publish_roundtrip(void **state)
{
	char buf[256], *out;
	struct mqtt_paho_publish p, q;
	size_t n = paho_buffer(buf, 3, 42, "cordon/s1/alert/fever", "{\"a\":1}", 1, 1), len;

	(void)state;
	assert_int_equal(mqtt_paho_publish_parse(buf, n, &p), 0);
	assert_int_equal(p.token, 42);
	assert_int_equal(p.topic_len, strlen("cordon/s1/alert/fever"));
	assert_memory_equal(p.topic, "cordon/s1/alert/fever", p.topic_len);
	assert_int_equal(p.payload_len, 7);
	assert_memory_equal(p.payload, "{\"a\":1}", 7);
	assert_int_equal(p.qos, 1);
	assert_int_equal(p.retained, 1);
	assert_int_equal(p.props_len, 1);
	/* Built again unchanged: the same bytes. */
	out = mqtt_paho_publish_build(&p, malloc, &len);
	assert_non_null(out);
	assert_int_equal(len, n);
	assert_memory_equal(out, buf, n);
	free(out);
	/* Changed: Paho reads back what we wrote. */
	p.qos = 0;
	p.retained = 0;
	p.payload = "{}";
	p.payload_len = 2;
	out = mqtt_paho_publish_build(&p, malloc, &len);
	assert_int_equal(mqtt_paho_publish_parse(out, len, &q), 0);
	assert_int_equal(q.token, 42);
	assert_int_equal(q.qos, 0);
	assert_int_equal(q.retained, 0);
	assert_int_equal(q.payload_len, 2);
	assert_memory_equal(q.payload, "{}", 2);
	free(out);
}

static void
test_paho_publish_refused(void **state)
{
	char buf[256];
	struct mqtt_paho_publish p;
	size_t n = paho_buffer(buf, 3, 1, "t", "xyz", 1, 0);

	(void)state;
	/* A subscribe command: not ours to touch. */
	paho_buffer(buf, 8, 1, "t", "xyz", 1, 0);
	assert_int_equal(mqtt_paho_publish_parse(buf, n, &p), -ENOMSG);
	/* A persisted packet ("s5-N") starts with a fixed header byte. */
	buf[0] = 0x32;
	assert_int_equal(mqtt_paho_publish_parse(buf, n, &p), -EBADMSG);
	/* Cut anywhere: refused, never read past the end. */
	n = paho_buffer(buf, 3, 1, "t", "xyz", 1, 0);
	for (size_t cut = 0; cut < n - 1; cut++)
		assert_int_equal(mqtt_paho_publish_parse(buf, cut, &p), -EBADMSG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connack_reasons),
		cmocka_unit_test(test_publish_size),
		cmocka_unit_test(test_paho_publish_roundtrip),
		cmocka_unit_test(test_paho_publish_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
