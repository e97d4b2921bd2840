/* Unit tests of the outbound-queue persistence (mqtt_persist.c), driven
 * through the MQTTClient_persistence callbacks as Paho drives them:
 * entries round-trip, a cut or damaged entry is set aside at open and
 * never handed to Paho, a failed write leaves the previous state and is
 * counted, leftovers of an interrupted write are removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "mqtt_persist.h"

static char dir[256], qdir[300];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/persisttest.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(qdir, sizeof(qdir), "%s/q", dir);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Opens a store on qdir as Paho does: create, then popen. */
static struct mqtt_persist *
open_store(MQTTClient_persistence *paho, void **ret_handle)
{
	struct mqtt_persist *p;

	assert_int_equal(mqtt_persist_create(qdir, &p, paho), 0);
	assert_int_equal(paho->popen(ret_handle, "client", "tcp://localhost:1883", paho->context),
			 0);
	return p;
}

static void
put(MQTTClient_persistence *paho, void *h, const char *key, const char *a, const char *b)
{
	char *bufs[2] = { (char *)a, (char *)b };
	int lens[2] = { (int)strlen(a), (int)strlen(b) };

	assert_int_equal(paho->pput(h, (char *)key, 2, bufs, lens), 0);
}

static void
expect_entry(MQTTClient_persistence *paho, void *h, const char *key, const char *want)
{
	char *buf = NULL;
	int len = 0;

	assert_int_equal(paho->pget(h, (char *)key, &buf, &len), 0);
	assert_int_equal(len, (int)strlen(want));
	assert_memory_equal(buf, want, (size_t)len);
	MQTTAsync_free(buf);
}

static int
nkeys(MQTTClient_persistence *paho, void *h)
{
	char **keys;
	int n;

	assert_int_equal(paho->pkeys(h, &keys, &n), 0);
	for (int i = 0; i < n; i++)
		MQTTAsync_free(keys[i]);
	MQTTAsync_free(keys);
	return n;
}

static void
test_round_trip(void **state)
{
	MQTTClient_persistence paho;
	void *h;
	struct mqtt_persist *p = open_store(&paho, &h);
	struct mqtt_persist_stats st;

	(void)state;
	put(&paho, h, "c5-1", "head", "payload one");
	put(&paho, h, "c5-2", "head", "payload two");
	put(&paho, h, "c5-2", "head", "payload two, again"); /* overwrite */
	assert_int_equal(nkeys(&paho, h), 2);
	assert_int_equal(paho.pcontainskey(h, "c5-1"), 0);
	assert_int_not_equal(paho.pcontainskey(h, "c5-9"), 0);
	expect_entry(&paho, h, "c5-2", "headpayload two, again");
	assert_int_equal(paho.premove(h, "c5-1"), 0);
	assert_int_equal(nkeys(&paho, h), 1);
	assert_int_equal(paho.pclose(h), 0);
	mqtt_persist_destroy(p);

	/* reopened: what was there is there */
	p = open_store(&paho, &h);
	expect_entry(&paho, h, "c5-2", "headpayload two, again");
	mqtt_persist_get_stats(p, &st);
	assert_int_equal(st.set_aside, 0);
	assert_int_equal(paho.pclear(h), 0);
	assert_int_equal(nkeys(&paho, h), 0);
	mqtt_persist_destroy(p);
}

/* Cuts the file of `key` to `len` bytes, or flips its byte at -len. */
static void
damage(const char *key, long len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", qdir, key);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	if (len >= 0) {
		assert_int_equal(ftruncate(fd, len), 0);
	} else {
		unsigned char c;

		assert_int_equal(pread(fd, &c, 1, -len), 1);
		c ^= 0x40;
		assert_int_equal(pwrite(fd, &c, 1, -len), 1);
	}
	close(fd);
}

static void
test_damaged_set_aside(void **state)
{
	MQTTClient_persistence paho;
	void *h;
	struct mqtt_persist *p = open_store(&paho, &h);
	struct mqtt_persist_stats st;
	char path[512];
	FILE *f;

	(void)state;
	put(&paho, h, "c5-1", "alert", " one");
	put(&paho, h, "c5-2", "alert", " two");
	put(&paho, h, "c5-3", "alert", " three");
	put(&paho, h, "c5-4", "alert", " four");
	put(&paho, h, "s5-7", "in flight", "");
	mqtt_persist_destroy(p);

	damage("c5-2", 20);				    /* cut in the middle: a full disk */
	damage("c5-3", 0);				    /* empty: a power loss after rename */
	damage("c5-4", -18);				    /* one flipped byte in the data */
	snprintf(path, sizeof(path), "%s/.tmp-c5-5", qdir); /* an interrupted write */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("half", f);
	fclose(f);

	p = open_store(&paho, &h);
	mqtt_persist_get_stats(p, &st);
	assert_int_equal(st.set_aside, 3);
	assert_int_equal(nkeys(&paho, h), 2); /* c5-1 and s5-7 only */
	expect_entry(&paho, h, "c5-1", "alert one");
	expect_entry(&paho, h, "s5-7", "in flight");
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/broken/c5-2", qdir);
	assert_int_equal(access(path, F_OK), 0);
	mqtt_persist_destroy(p);
}

/* A write that fails (here: the file size limit, as a full disk would)
 * keeps the key's previous contents, leaves no file behind, and is
 * counted; the next write that fits succeeds. */
static void
test_failed_write(void **state)
{
	MQTTClient_persistence paho;
	void *h;
	struct mqtt_persist *p = open_store(&paho, &h);
	struct mqtt_persist_stats st;
	struct rlimit old, lim;
	char big[4096];
	char *bufs[1] = { big };
	int lens[1] = { sizeof(big) };

	(void)state;
	put(&paho, h, "c5-1", "small", "");
	memset(big, 'x', sizeof(big));
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1024;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(paho.pput(h, "c5-1", 1, bufs, lens), MQTTCLIENT_PERSISTENCE_ERROR);
	assert_int_equal(paho.pput(h, "c5-2", 1, bufs, lens), MQTTCLIENT_PERSISTENCE_ERROR);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	mqtt_persist_get_stats(p, &st);
	assert_int_equal(st.write_failed, 2);
	assert_true(st.last_errno == EFBIG || st.last_errno == ENOSPC);
	expect_entry(&paho, h, "c5-1", "small");
	assert_int_equal(nkeys(&paho, h), 1);
	assert_int_equal(paho.pput(h, "c5-2", 1, bufs, lens), 0);
	mqtt_persist_get_stats(p, &st);
	assert_int_equal(st.last_errno, 0);
	assert_int_equal(nkeys(&paho, h), 2);
	mqtt_persist_destroy(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_set_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_write, setup, teardown),
	};

	MQTTAsync client;
	int rc;

	/* MQTTAsync_malloc() goes through libpaho's heap tracking, which a
	 * client's creation sets up and its destruction (the last one's)
	 * frees: hold one for the length of the tests, as cordond does. */
	if (MQTTAsync_create(&client, "tcp://127.0.0.1:1", "test", MQTTCLIENT_PERSISTENCE_NONE,
			     NULL) != MQTTASYNC_SUCCESS)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	MQTTAsync_destroy(&client);
	return rc;
}
