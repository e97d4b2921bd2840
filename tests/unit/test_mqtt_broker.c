/* test_mqtt_broker.c - [mqtt] uri's list and TLS files as Paho's connect
 * options (copies that outlive the configuration), and when mqtt_redial
 * says to dial again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "config.h"
#include "mqtt_broker.h"

static void
list_as_connect_options(void **state)
{
	struct config cfg;
	struct mqtt_broker b;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl;
	MQTTClient_connectOptions sconn = MQTTClient_connectOptions_initializer;
	MQTTClient_SSLOptions sssl;

	(void)state;
	assert_int_equal(config_init(&cfg), 0);
	assert_int_equal(config_set_string(&cfg.mqtt_uri, "tcp://n1:1883, tcp://n2:1884"), 0);
	assert_int_equal(mqtt_broker_init(&b, &cfg), 0);
	config_finish(&cfg); /* a SIGHUP frees it: the broker's copies stay */
	assert_string_equal(mqtt_broker_first(&b), "tcp://n1:1883");
	/* MQTTAsync: one URI per connect, the next after mqtt_broker_next(),
	 * round and round. */
	mqtt_broker_async_options(&b, &conn, &ssl);
	assert_int_equal(conn.serverURIcount, 1);
	assert_string_equal(conn.serverURIs[0], "tcp://n1:1883");
	assert_null(conn.ssl);
	mqtt_broker_dial(&b, &conn);
	assert_string_equal(conn.serverURIs[0], "tcp://n1:1883");
	mqtt_broker_next(&b);
	mqtt_broker_dial(&b, &conn);
	assert_int_equal(conn.serverURIcount, 1);
	assert_string_equal(conn.serverURIs[0], "tcp://n2:1884");
	mqtt_broker_next(&b);
	mqtt_broker_dial(&b, &conn);
	assert_string_equal(conn.serverURIs[0], "tcp://n1:1883");
	/* MQTTClient: the whole list. */
	mqtt_broker_sync_options(&b, &sconn, &sssl);
	assert_int_equal(sconn.serverURIcount, 2);
	assert_string_equal(sconn.serverURIs[0], "tcp://n1:1883");
	assert_int_equal(sconn.serverURIcount, 2);
	assert_string_equal(sconn.serverURIs[1], "tcp://n2:1884");
	assert_null(sconn.ssl);
	mqtt_broker_finish(&b);
	mqtt_broker_finish(&b);

	assert_int_equal(config_init(&cfg), 0);
	assert_int_equal(config_set_string(&cfg.mqtt_uri, "ssl://n1:8883"), 0);
	assert_int_equal(config_set_string(&cfg.mqtt_ca_file, "/etc/ca.pem"), 0);
	assert_int_equal(mqtt_broker_init(&b, &cfg), 0);
	config_finish(&cfg);
	mqtt_broker_next(&b); /* one URI: stays */
	mqtt_broker_async_options(&b, &conn, &ssl);
	assert_int_equal(conn.serverURIcount, 1);
	assert_string_equal(conn.serverURIs[0], "ssl://n1:8883");
	assert_ptr_equal(conn.ssl, &ssl);
	assert_string_equal(ssl.trustStore, "/etc/ca.pem");
	assert_null(ssl.keyStore);
	assert_null(ssl.privateKey);
	assert_int_equal(ssl.enableServerCertAuth, 1);
	assert_int_equal(ssl.verify, 1);
	mqtt_broker_sync_options(&b, &sconn, &sssl);
	assert_ptr_equal(sconn.ssl, &sssl);
	assert_string_equal(sssl.trustStore, "/etc/ca.pem");
	assert_int_equal(sssl.verify, 1);
	mqtt_broker_finish(&b);

	/* A list config_load did not check (a caller that built its own). */
	assert_int_equal(config_init(&cfg), 0);
	assert_int_equal(config_set_string(&cfg.mqtt_uri, "tcp://n1:1883,ssl://n2:8883"), 0);
	assert_int_equal(mqtt_broker_init(&b, &cfg), -EINVAL);
	mqtt_broker_finish(&b);
	config_finish(&cfg);
}

static void
redial_after_backoff(void **state)
{
	struct mqtt_redial r;

	(void)state;
	mqtt_redial_init(&r);
	assert_false(mqtt_redial_due(&r, 0)); /* the first connect is under way */
	mqtt_redial_failed(&r);
	assert_false(mqtt_redial_due(&r, 10000));
	assert_false(mqtt_redial_due(&r, 10999));
	assert_true(mqtt_redial_due(&r, 11000));
	assert_false(mqtt_redial_due(&r, 11001)); /* under way again */
	mqtt_redial_failed(&r);
	assert_false(mqtt_redial_due(&r, 12000));
	assert_false(mqtt_redial_due(&r, 13999));
	assert_true(mqtt_redial_due(&r, 14000)); /* 2 s */
	mqtt_redial_up(&r);
	assert_false(mqtt_redial_due(&r, 15000));
	mqtt_redial_lost(&r); /* after a connection the loop saw up: 1 s */
	assert_false(mqtt_redial_due(&r, 20000));
	assert_true(mqtt_redial_due(&r, 21000));
	/* lost again at once, the loop never seeing it up: longer */
	mqtt_redial_lost(&r);
	assert_false(mqtt_redial_due(&r, 21000));
	assert_false(mqtt_redial_due(&r, 22999));
	assert_true(mqtt_redial_due(&r, 23000));
	/* at most 30 s */
	for (int i = 0; i < 10; i++) {
		mqtt_redial_failed(&r);
		assert_false(mqtt_redial_due(&r, 100000));
		assert_true(mqtt_redial_due(&r, 130000));
	}
	mqtt_redial_failed(&r);
	assert_false(mqtt_redial_due(&r, 200000));
	assert_false(mqtt_redial_due(&r, 229999));
	assert_true(mqtt_redial_due(&r, 230000));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(list_as_connect_options),
		cmocka_unit_test(redial_after_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
