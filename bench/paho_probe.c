/* paho_probe.c - the floor of cordond's receive thread: a bare Paho
 * MQTTAsync subscriber with cordond's options (MQTT v5, clean start off, a
 * session expiry, Receive Maximum and maxInflight 1000, file persistence)
 * whose callback does what cordond's must at the least: one writev() of the
 * message (a 16-byte header, the topic, the payload) into a file, then
 * return 1 (Paho sends the PUBACK after it). No replay check, no spool
 * framing, no checksum, no wake-up.
 *
 * usage: build/bench-paho-probe URI CLIENT_ID FILTER COUNT FILE
 *
 * Subscribes FILTER at QoS 1, prints "subscribed", then exits once COUNT
 * messages have arrived, printing the seconds from the first to the last
 * and its CPU time (user + system, whole process) per message. bench/peers
 * starts it; a benchmark, never part of the tests. */
#include <MQTTAsync.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static int fd = -1;
static long target;
static atomic_long received;
static atomic_int subscribed, failed;
static struct timespec first, last;

static double
seconds(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int
on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *m)
{
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	uint64_t hdr[2] = { ((uint64_t)tlen << 32) | (uint32_t)m->payloadlen, 0 };
	struct iovec iov[3] = { { hdr, sizeof(hdr) },
				{ topic, tlen },
				{ m->payload, (size_t)m->payloadlen } };
	long n;

	(void)ctx;
	if (writev(fd, iov, 3) < 0) {
		perror("writev");
		_exit(1);
	}
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	n = atomic_fetch_add(&received, 1) + 1;
	if (n == 1)
		clock_gettime(CLOCK_MONOTONIC, &first);
	if (n == target)
		clock_gettime(CLOCK_MONOTONIC, &last);
	return 1;
}

static void
on_lost(void *ctx, char *cause)
{
	(void)ctx;
	fprintf(stderr, "connection lost: %s\n", cause ? cause : "?");
	atomic_store(&failed, 1);
}

static void
on_suback(void *ctx, MQTTAsync_successData5 *r)
{
	(void)ctx;
	(void)r;
	atomic_store(&subscribed, 1);
}

static void
on_fail(void *ctx, MQTTAsync_failureData5 *r)
{
	(void)ctx;
	fprintf(stderr, "failed: %d %s\n", r->code, r->message ? r->message : "");
	atomic_store(&failed, 1);
}

static void
on_connect(void *ctx, MQTTAsync_successData5 *r)
{
	MQTTAsync client = ctx;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	const char *filter = getenv("PROBE_FILTER");

	(void)r;
	ro.onSuccess5 = on_suback;
	ro.onFailure5 = on_fail;
	ro.context = client;
	if (MQTTAsync_subscribe(client, filter, 1, &ro) != MQTTASYNC_SUCCESS)
		atomic_store(&failed, 1);
}

int
main(int argc, char **argv)
{
	MQTTAsync client;
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
	MQTTProperties props = MQTTProperties_initializer;
	MQTTProperty p;
	struct rusage ru;
	char dir[4096];
	double cpu;

	if (argc != 6) {
		fprintf(stderr, "usage: %s URI CLIENT_ID FILTER COUNT FILE\n", argv[0]);
		return 2;
	}
	target = atol(argv[4]);
	fd = open(argv[5], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0 || target <= 0) {
		perror(argv[5]);
		return 1;
	}
	setenv("PROBE_FILTER", argv[3], 1);
	snprintf(dir, sizeof(dir), "%s.paho", argv[5]);
	if (MQTTAsync_createWithOptions(&client, argv[1], argv[2], MQTTCLIENT_PERSISTENCE_DEFAULT,
					dir, &co) != MQTTASYNC_SUCCESS)
		return 1;
	MQTTAsync_setCallbacks(client, NULL, on_lost, on_message, NULL);
	p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
	p.value.integer4 = 3600;
	MQTTProperties_add(&props, &p);
	p.identifier = MQTTPROPERTY_CODE_RECEIVE_MAXIMUM;
	p.value.integer2 = 1000;
	MQTTProperties_add(&props, &p);
	conn.keepAliveInterval = 30;
	conn.cleanstart = 0;
	conn.connectProperties = &props;
	conn.maxInflight = 1000;
	conn.onSuccess5 = on_connect;
	conn.onFailure5 = on_fail;
	conn.context = client;
	if (MQTTAsync_connect(client, &conn) != MQTTASYNC_SUCCESS)
		return 1;
	while (!atomic_load(&subscribed) && !atomic_load(&failed))
		usleep(1000);
	if (atomic_load(&failed))
		return 1;
	printf("subscribed\n");
	fflush(stdout);
	while (atomic_load(&received) < target && !atomic_load(&failed))
		usleep(1000);
	if (atomic_load(&failed))
		return 1;
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		(double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	printf("received %ld in %.3f s, CPU %.2f us/message (whole process, connect included)\n",
	       target, seconds(&first, &last), cpu / (double)target * 1e6);
	fflush(stdout);
	MQTTAsync_disconnect(client, NULL);
	usleep(100000);
	MQTTAsync_destroy(&client);
	MQTTProperties_free(&props);
	close(fd);
	return 0;
}
