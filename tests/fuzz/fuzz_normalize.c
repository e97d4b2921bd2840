/* fuzz_normalize.c - libFuzzer target for the normalizer.
 *
 * Input: when it starts with a short line (at most 256 bytes before the
 * first '\n') that contains a '/', that line is the MQTT topic and the
 * rest is the payload; otherwise the topic is "cordon/s1/gate/G03/event"
 * and the whole input is the payload. So a seed file can be a bare JSON
 * payload, or "topic\npayload".
 *
 * Topic and payload are copied into buffers of exactly their size (not
 * NUL-terminated), so that ASan sees any read past either one. Besides
 * "no crash, no leak, no UB" the target checks a few invariants and
 * abort()s when one fails:
 *   - a result is either a reject (reason set, no events) or 1..max events
 *     with NUL-terminated strings;
 *   - every accepted event fits its table (sql/): a temperature within
 *     numeric(4,1), a device time within 1969-12-31T06:00Z..10000-01-01T18:00Z
 *     (timestamptz holds far more), a key never cut (no key_too_long), and
 *     a row (tables_row) whose text[] literal and temp_c are well formed;
 *   - normalize_parse_time_ctx() of the payload as a C string either fails or
 *     gives a time that normalize_format_time() prints and parses back to
 *     the same value (for times in 1970..9999). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "normalize.h"
#include "tables.h"

#define TOPIC_LINE_MAX 256
#define RECV_US 1581849120000000LL /* 2020-02-16T10:32:00Z */
#define YEAR_10000_US 253402300800000000LL
/* The earliest and latest device times the normalizer can give: 1970 at
 * +18:00, and 9999-12-31T23:59:60.999999 at -18:00. */
#define DEVICE_MIN_US (-64800LL * 1000000)
#define DEVICE_MAX_US ((253402300800LL + 64801) * 1000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct norm_context ctx = {
	.topic_root = "cordon",
	.max_clock_skew_us = 600LL * 1000000,
	.tz_offset_s = 8 * 3600,
};

static struct event events[NORM_MAX_EVENTS];

#define CHECK(cond)                                                                          \
	do {                                                                                 \
		if (!(cond)) {                                                               \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, \
				#cond);                                                      \
			abort();                                                             \
		}                                                                            \
	} while (0)

static void
check_str(const char *s, size_t size)
{
	CHECK(memchr(s, '\0', size) != NULL);
}

/* The row of `ev` as the store writes it: a temp_c that numeric(4,1)
 * takes, a text[] literal that is whole. */
static void
check_row(const struct event *ev)
{
	const struct table_desc *t = tables_for(ev->type);
	struct table_row row;

	CHECK(t != NULL);
	tables_row(ev, &row);
	if (ev->temp_dc != TEMP_NONE) {
		char *end;
		double v;

		check_str(row.temp, sizeof(row.temp));
		v = strtod(row.temp, &end);

		CHECK(*end == '\0' && v >= -999.9 && v <= 999.9);
		CHECK(strchr(row.temp, '.') && strlen(strchr(row.temp, '.')) == 2);
	}
	if (ev->type == EVENT_CHECK) {
		/* Read the literal back: it must give the symptoms whole. */
		size_t n, k = 0;
		char back[sizeof(row.list)];

		check_str(row.list, sizeof(row.list));
		n = strlen(row.list);
		CHECK(n >= 2 && row.list[0] == '{' && row.list[n - 1] == '}');
		if (n > 2) {
			CHECK(n >= 4 && row.list[1] == '"' && row.list[n - 2] == '"');
			for (size_t i = 2; i < n - 2; i++) {
				if (row.list[i] == '\\') {
					back[k++] = row.list[++i];
				} else if (row.list[i] == '"') {
					CHECK(row.list[i + 1] == ',' && row.list[i + 2] == '"');
					back[k++] = ',';
					i += 2;
				} else {
					back[k++] = row.list[i];
				}
			}
		}
		back[k] = '\0';
		CHECK(strcmp(back, ev->text) == 0);
	}
}

static void
check_result(const struct norm_result *res)
{
	char buf[64];

	check_str(res->detail, sizeof(res->detail));
	check_str(res->site, sizeof(res->site));
	if (res->reason) {
		CHECK(res->reason[0] != '\0');
		CHECK(strcmp(res->reason, "key_too_long") != 0);
		CHECK(res->nevents == 0);
		return;
	}
	CHECK(res->nevents >= 1 && res->nevents <= NORM_MAX_EVENTS);
	for (size_t i = 0; i < res->nevents; i++) {
		const struct event *ev = &events[i];

		check_str(ev->key, sizeof(ev->key));
		CHECK(ev->key[0] != '\0');
		check_str(ev->site, sizeof(ev->site));
		check_str(ev->gate, sizeof(ev->gate));
		check_str(ev->card, sizeof(ev->card));
		check_str(ev->person, sizeof(ev->person));
		CHECK(ev->vendor != NULL);
		CHECK(ev->received_us == RECV_US);
		CHECK(ev->mask >= -1 && ev->mask <= 1);
		CHECK(ev->temp_dc == TEMP_NONE ||
		      (ev->temp_dc >= -TEMP_DC_MAX && ev->temp_dc <= TEMP_DC_MAX));
		CHECK(ev->device_us >= DEVICE_MIN_US && ev->device_us <= DEVICE_MAX_US);
		check_row(ev);
		normalize_format_time(ev->device_us, buf, sizeof(buf));
		normalize_format_time(ev->rule_us, buf, sizeof(buf));
		for (unsigned f = 1; f != 0; f <<= 1)
			if (ev->flags & f)
				(void)normalize_flag_name(f);
	}
}

static void
check_time(const uint8_t *p, size_t len)
{
	char *s = malloc(len + 1), buf[64];
	int64_t us, again;

	if (!s)
		return;
	memcpy(s, p, len);
	s[len] = '\0';
	if (normalize_parse_time_ctx(&ctx, "s1", s, &us, NULL) == 0 && us >= 0 &&
	    us < YEAR_10000_US) {
		normalize_format_time(us, buf, sizeof(buf));
		CHECK(normalize_parse_time_ctx(&ctx, "s1", buf, &again, NULL) == 0);
		CHECK(again == us);
	}
	free(s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char default_topic[] = "cordon/s1/gate/G03/event";
	const uint8_t *nl = memchr(data, '\n', size < TOPIC_LINE_MAX ? size : TOPIC_LINE_MAX);
	const uint8_t *topic = (const uint8_t *)default_topic, *payload = data;
	size_t topic_len = sizeof(default_topic) - 1, payload_len = size;
	struct norm_result res;
	struct norm_input in;
	char *tbuf;
	uint8_t *pbuf;
	char hex[33];

	if (nl && memchr(data, '/', (size_t)(nl - data))) {
		topic = data;
		topic_len = (size_t)(nl - data);
		payload = nl + 1;
		payload_len = size - topic_len - 1;
	}
	/* Exact-size copies; malloc(0) may return NULL, so allocate at least 1. */
	tbuf = malloc(topic_len ? topic_len : 1);
	pbuf = malloc(payload_len ? payload_len : 1);
	if (!tbuf || !pbuf)
		abort();
	memcpy(tbuf, topic, topic_len);
	if (payload_len)
		memcpy(pbuf, payload, payload_len);

	in = (struct norm_input){
		.topic = tbuf,
		.topic_len = topic_len,
		.payload = pbuf,
		.payload_len = payload_len,
		.orig_len = payload_len,
		.received_us = RECV_US,
	};
	CHECK(normalize_message(&ctx, &in, events, NORM_MAX_EVENTS, &res) == 0);
	check_result(&res);
	normalize_message_hash(&in, hex);
	CHECK(strlen(hex) == 32);

	check_time(pbuf, payload_len);
	free(tbuf);
	free(pbuf);
	return 0;
}
