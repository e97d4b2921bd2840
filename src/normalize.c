/* normalize.c - topic routing, payload checks shared by every format,
 * time parsing, and the event key.
 *
 * Checks run in a fixed order so that each bad payload gets one clear
 * reason: topic shape, empty, too large, UTF-8, JSON, then the format's
 * own fields (norm_canonical.c and, later, one file per vendor). */
#include "normalize.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "normalize_internal.h"

const char *
normalize_flag_name(unsigned flag)
{
	switch (flag) {
	case FLAG_IMPLAUSIBLE: return "implausible";
	case FLAG_CLOCK_SKEW: return "clock_skew";
	case FLAG_DEVICE_ABNORMAL: return "device_abnormal";
	default: return NULL;
	}
}

/* Returns 1 if buf[0..len) is well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). */
int
norm_valid_utf8(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i <= n)
			return 0;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

/* An id level: [A-Za-z0-9_-]{1,64}. */
static int
valid_level(const char *s, size_t len)
{
	if (len == 0 || len > NORM_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Splits the topic into at most `max` levels; returns the count, or -1
 * when there are more. */
static int
split_topic(const char *t, size_t len, struct norm_level *lv, int max)
{
	int n = 0;
	size_t start = 0;

	for (size_t i = 0; i <= len; i++) {
		if (i < len && t[i] != '/')
			continue;
		if (n == max)
			return -1;
		lv[n].s = t + start;
		lv[n].len = i - start;
		n++;
		start = i + 1;
	}
	return n;
}

static int
level_is(const struct norm_level *lv, const char *word)
{
	return lv->len == strlen(word) && memcmp(lv->s, word, lv->len) == 0;
}

void
norm_copy_level(char *dst, const struct norm_level *lv)
{
	memcpy(dst, lv->s, lv->len);
	dst[lv->len] = '\0';
}

int
norm_reject(struct norm_result *ret, const char *reason, const char *fmt, ...)
{
	va_list ap;

	ret->nevents = 0;
	ret->reason = reason;
	va_start(ap, fmt);
	vsnprintf(ret->detail, sizeof(ret->detail), fmt, ap);
	va_end(ap);
	return 0;
}

void
normalize_message_hash(const struct norm_input *in, char ret_hex[33])
{
	XXH3_state_t st;
	XXH128_hash_t h;
	static const char nul = '\0';

	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, in->topic, in->topic_len);
	XXH3_128bits_update(&st, &nul, 1);
	XXH3_128bits_update(&st, in->payload, in->payload_len);
	h = XXH3_128bits_digest(&st);
	snprintf(ret_hex, 33, "%016" PRIx64 "%016" PRIx64, h.high64, h.low64);
}

int
normalize_message(const struct norm_context *ctx, const struct norm_input *in,
		  struct event *events, size_t max, struct norm_result *ret)
{
	struct norm_level lv[8];
	struct norm_msg msg = { .ctx = ctx, .in = in };
	json_error_t jerr;
	json_t *root;
	int n, rc;

	memset(ret, 0, sizeof(*ret));
	n = split_topic(in->topic, in->topic_len, lv, 8);
	if (n < 3 || !level_is(&lv[0], ctx->topic_root) || !valid_level(lv[1].s, lv[1].len))
		return norm_reject(ret, "unknown_topic", "topic is not <root>/<site>/...");
	norm_copy_level(ret->site, &lv[1]);
	if (n == 5 && level_is(&lv[2], "gate") && level_is(&lv[4], "event") &&
	    valid_level(lv[3].s, lv[3].len)) {
		msg.kind = MSG_GATE_EVENT;
		msg.site = lv[1];
		msg.device = lv[3];
	} else {
		return norm_reject(ret, "unknown_topic", "no inbound topic of this shape");
	}

	if (in->payload_len == 0)
		return norm_reject(ret, "empty_payload", "zero-length payload");
	if (in->orig_len > in->payload_len)
		return norm_reject(ret, "payload_too_large", "%zu bytes", in->orig_len);
	if (!norm_valid_utf8(in->payload, in->payload_len))
		return norm_reject(ret, "invalid_utf8", "payload is not valid UTF-8");
	root = json_loadb((const char *)in->payload, in->payload_len,
			  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return norm_reject(ret, "not_json", "%s at byte %d", jerr.text, jerr.position);
	if (!json_is_object(root)) {
		json_decref(root);
		return norm_reject(ret, "not_object", "the payload is JSON but not an object");
	}
	rc = norm_canonical_gate(&msg, root, events, max, ret);
	json_decref(root);
	return rc;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return 0;
}

int
normalize_parse_time(const char *s, int64_t tz_offset_s, int64_t *ret_us)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec = 0, oh, om;
	int64_t us = 0, off = tz_offset_s, t;
	const char *p = s;

	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
		return -EINVAL;
	if (*p == ':') {
		p++;
		if (digits(&p, 2, &sec))
			return -EINVAL;
		if (*p == '.' || *p == ',') {
			int64_t scale = 100000;

			p++;
			if (*p < '0' || *p > '9')
				return -EINVAL;
			for (; *p >= '0' && *p <= '9'; p++) {
				us += (*p - '0') * scale;
				scale /= 10;
			}
		}
	}
	if (*p == 'Z' || *p == 'z') {
		off = 0;
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1;

		if (digits(&p, 2, &oh))
			return -EINVAL;
		if (*p == ':')
			p++;
		om = 0;
		if (*p && digits(&p, 2, &om))
			return -EINVAL;
		if (oh > 18 || om > 59)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
	}
	if (*p)
		return -EINVAL;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) ||
	    h > 23 || mi > 59 || sec > 60)
		return -EINVAL;
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - off;
	*ret_us = t * 1000000 + us;
	return 0;
}

void
normalize_format_time(int64_t us, char *buf, size_t len)
{
	int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
	int64_t frac = us - secs * 1000000;
	int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
	int64_t rem = secs - days * 86400;
	/* civil_from_days (H. Hinnant) */
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t y = (int64_t)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	unsigned d = doy - (153 * mp + 2) / 5 + 1;
	unsigned m = mp < 10 ? mp + 3 : mp - 9;

	y += m <= 2;
	snprintf(buf, len, "%04" PRId64 "-%02u-%02u %02d:%02d:%02d.%06" PRId64 "+00",
		 y, m, d, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
}

int
norm_json_time(const json_t *v, int64_t tz_offset_s, int64_t *ret_us)
{
	if (json_is_string(v))
		return normalize_parse_time(json_string_value(v), tz_offset_s, ret_us);
	if (json_is_integer(v) || json_is_real(v)) {
		double x = json_number_value(v);

		/* Epoch seconds or milliseconds, told apart by magnitude. */
		if (x >= 1e11 && x < 1e14)
			x /= 1000.0;
		if (x < 0 || x >= 253402300800.0)
			return -ERANGE;
		*ret_us = (int64_t)(x * 1e6 + 0.5);
		return 0;
	}
	return -EINVAL;
}

int
norm_copy_id(char *dst, const json_t *v)
{
	const char *s;
	size_t len;

	if (json_is_integer(v)) {
		snprintf(dst, NORM_ID_MAX + 1, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return 0;
	}
	if (!json_is_string(v))
		return -EINVAL;
	s = json_string_value(v);
	len = json_string_length(v);
	if (len > NORM_ID_MAX || memchr(s, '\0', len))
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20)
			return -EINVAL;
	memcpy(dst, s, len + 1);
	return 0;
}

int
norm_set_temp(struct event *ev, double celsius)
{
	double r;

	if (!(celsius > -100.0 && celsius < 1000.0))
		return -ERANGE;
	/* Half away from zero on the decimal value: 36.65 (36.6499... in
	 * binary) is 36.7, as a person reading the display would round it. */
	r = celsius * 10.0;
	ev->temp_dc = (int16_t)(r < 0 ? r - 0.5 - 1e-6 : r + 0.5 + 1e-6);
	if (ev->temp_dc < 300 || ev->temp_dc > 450)
		ev->flags |= FLAG_IMPLAUSIBLE;
	return 0;
}

void
norm_finish_event(const struct norm_msg *msg, struct event *ev, const char *record_id,
		  size_t index)
{
	int64_t skew = ev->device_us - msg->in->received_us;

	norm_copy_level(ev->site, &msg->site);
	ev->received_us = msg->in->received_us;
	ev->rule_us = ev->device_us;
	if (skew < 0)
		skew = -skew;
	if (skew > msg->ctx->max_clock_skew_us) {
		ev->flags |= FLAG_CLOCK_SKEW;
		ev->rule_us = ev->received_us;
	}
	if (record_id && *record_id) {
		snprintf(ev->key, sizeof(ev->key), "%s/%.*s/%s", ev->site,
			 (int)msg->device.len, msg->device.s, record_id);
	} else {
		char hex[33];

		normalize_message_hash(msg->in, hex);
		snprintf(ev->key, sizeof(ev->key), "h:%s:%zu", hex, index);
	}
}
