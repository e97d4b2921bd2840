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
#include <strings.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <math.h>
#include <stdlib.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "normalize_internal.h"
#include "topics.h"

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
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += n + 1;
	}
	return 1;
}

void
norm_copy_level(char *dst, const struct norm_level *lv)
{
	memcpy(dst, lv->s, lv->len);
	dst[lv->len] = '\0';
}

void
normalize_mask_digits(char *s, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && s[j] >= '0' && s[j] <= '9')
			j++;
		if (j - i >= 7)
			memset(s + i + 3, '*', j - i - 7);
		i = j > i ? j : i + 1;
	}
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
	normalize_utf8_trim(ret->detail);
	/* Details quote the payload at times (jansson's "near '...'"): no
	 * phone or ID number may reach a log line or a reject notice. */
	normalize_mask_digits(ret->detail, strlen(ret->detail));
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

const struct norm_format *const norm_formats[] = {
#define X(name) &norm_format_##name,
	NORM_FORMATS
#undef X
};
const size_t norm_nformats = sizeof(norm_formats) / sizeof(norm_formats[0]);

const char *
normalize_format_name(enum gate_format f)
{
	if (f > FORMAT_AUTO && (size_t)f <= norm_nformats)
		return norm_formats[f - 1]->name;
	return "auto";
}

void
normalize_format_names(char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "auto");

	for (size_t i = 0; i < norm_nformats && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, " %s", norm_formats[i]->name);
}

int
normalize_format_from_name(const char *name)
{
	if (strcmp(name, "auto") == 0)
		return FORMAT_AUTO;
	for (size_t i = 0; i < norm_nformats; i++)
		if (strcmp(norm_formats[i]->name, name) == 0)
			return (int)i + 1;
	return -1;
}

const char *
normalize_type_name(enum event_type t)
{
	switch (t) {
	case EVENT_GATE: return "gate_event";
	case EVENT_STATUS: return "gate_status";
	case EVENT_DISINFECTION: return "disinfection";
	case EVENT_HOTLINE: return "hotline";
	case EVENT_CHECK: return "isolation_check";
	case EVENT_ACK: return "ack";
	case EVENT_NEED: return "need";
	case EVENT_CALL: return "call";
	case EVENT_DROPOFF: return "dropoff";
	}
	return "?";
}

const char *
normalize_state_name(enum gate_state st)
{
	static const char *const names[] = { "", "online", "offline", "open", "closed", "forced" };

	return st <= STATE_FORCED ? names[st] : "";
}

/* A gate event: the gate's pinned format, else the one format whose shape
 * matches; two matching shapes are ambiguous, none is unknown. */
static int
gate_event(struct norm_msg *msg, json_t *root, struct event *events, size_t max,
	   struct norm_result *ret)
{
	const struct norm_format *found = NULL;
	int nfound = 0;

	if (msg->ctx->gate_info &&
	    msg->ctx->gate_info(msg->ctx->arg, msg->site_id, msg->device_id, &msg->gate) == 0)
		msg->registered = 1;
	if (msg->gate.format != FORMAT_AUTO) {
		if ((size_t)msg->gate.format <= norm_nformats)
			return norm_formats[msg->gate.format - 1]->gate(msg, root, events, max,
									ret);
	} else {
		for (size_t i = 0; i < norm_nformats; i++) {
			if (norm_formats[i]->shape(root)) {
				found = norm_formats[i];
				nfound++;
			}
		}
	}
	if (nfound > 1)
		return norm_reject(ret, "ambiguous_format",
				   "the payload matches %d terminal formats; pin the gate's format",
				   nfound);
	if (nfound == 0)
		return norm_reject(ret, json_is_object(root) ? "unknown_format" : "not_object",
				   "no known terminal format has this shape");
	return found->gate(msg, root, events, max, ret);
}

int
normalize_message(const struct norm_context *ctx, const struct norm_input *in, struct event *events,
		  size_t max, struct norm_result *ret)
{
	struct topic_parts tp;
	struct norm_msg msg = { .ctx = ctx, .in = in };
	int (*handler)(const struct norm_msg *, json_t *, struct event *, size_t,
		       struct norm_result *) = NULL;
	int bare_ok = 0; /* a payload that is not JSON may be a bare word */
	json_error_t jerr;
	json_t *root;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = topics_parse(in->topic, in->topic_len, ctx->topic_root, &tp);
	if (rc == -ENOENT || !normalize_valid_id(tp.site, tp.site_len))
		return norm_reject(ret, "unknown_topic", "topic is not <root>/<site>/...");
	msg.site = (struct norm_level){ tp.site, tp.site_len };
	norm_copy_level(ret->site, &msg.site);
	norm_copy_level(msg.site_id, &msg.site);
	if (rc < 0 || tp.kind >= TOPIC_NINBOUND)
		return norm_reject(ret, "unknown_topic", "no inbound topic of this shape");
	msg.device = (struct norm_level){ tp.id, tp.id_len };
	switch (tp.kind) {
	case TOPIC_GATE_STATUS:
		handler = norm_status;
		bare_ok = 1;
		break;
	case TOPIC_DISINFECTION: handler = norm_disinfection; break;
	case TOPIC_HOTLINE: handler = norm_hotline; break;
	case TOPIC_CHECK: handler = norm_check; break;
	case TOPIC_ACK: handler = norm_ack; break;
	case TOPIC_NEED: handler = norm_need; break;
	case TOPIC_CALL: handler = norm_call; break;
	case TOPIC_DROPOFF: handler = norm_dropoff; break;
	default: break; /* TOPIC_GATE_EVENT: gate_event() */
	}
	if (msg.device.s) {
		if (!normalize_valid_id(msg.device.s, msg.device.len))
			return norm_reject(ret, "unknown_topic", "bad id level in the topic");
		norm_copy_level(msg.device_id, &msg.device);
	}

	if (in->payload_len == 0)
		return norm_reject(ret, "empty_payload", "zero-length payload");
	if (in->orig_len > in->payload_len)
		return norm_reject(ret, "payload_too_large", "%zu bytes", in->orig_len);
	if (!norm_valid_utf8(in->payload, in->payload_len))
		return norm_reject(ret, "invalid_utf8", "payload is not valid UTF-8");
	root = json_loadb((const char *)in->payload, in->payload_len,
			  JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!root && !bare_ok)
		return norm_reject(ret, "not_json", "%s at byte %d", jerr.text, jerr.position);
	if (handler)
		rc = handler(&msg, root, events, max, ret);
	else
		rc = gate_event(&msg, root, events, max, ret);
	json_decref(root);
	if (rc == 0 && ret->reason == NULL && ret->nevents == 0)
		return norm_reject(ret, "no_events", "the message holds no event");
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

/* Parses ISO 8601; *ret_us is UTC when the string has an offset, else
 * the local wall time as if it were UTC and *ret_naive is set. */
static int
parse_iso(const char *s, int64_t *ret_us, int *ret_naive)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec = 0, oh, om, naive = 1;
	int64_t us = 0, off = 0, t;
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
		naive = 0;
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
		/* -18:00..+18:00, as ISO 8601 zone offsets go (real ones stay
		 * within -12:00..+14:00). */
		if (om > 59 || oh * 60 + om > 18 * 60)
			return -EINVAL;
		off = sign * (oh * 3600 + om * 60);
		naive = 0;
	}
	if (*p)
		return -EINVAL;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) || h > 23 ||
	    mi > 59 || sec > 60)
		return -EINVAL;
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - off;
	*ret_us = t * 1000000 + us;
	*ret_naive = naive;
	return 0;
}

int
normalize_parse_time_ctx(const struct norm_context *ctx, const char *site, const char *s,
			 int64_t *ret_us, int *ret_naive)
{
	int64_t us;
	int naive, err = parse_iso(s, &us, &naive);

	if (err)
		return err;
	if (naive) {
		int64_t secs = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
		int64_t frac = us - secs * 1000000;

		secs = ctx->local_to_utc ? ctx->local_to_utc(ctx->arg, site, secs) :
					   secs - ctx->tz_offset_s;
		us = secs * 1000000 + frac;
	}
	*ret_us = us;
	if (ret_naive)
		*ret_naive = naive;
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
	snprintf(buf, len, "%04" PRId64 "-%02u-%02u %02d:%02d:%02d.%06" PRId64 "+00", y, m, d,
		 (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), frac);
}

void
norm_event_init(const struct norm_msg *msg, struct event *ev, enum event_type type,
		const char *vendor)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->vendor = vendor;
	ev->mask = -1;
	ev->urgent = -1;
	ev->temp_dc = TEMP_NONE;
	switch (type) {
	case EVENT_GATE:
	case EVENT_STATUS: snprintf(ev->gate, sizeof(ev->gate), "%s", msg->device_id); break;
	case EVENT_DISINFECTION: snprintf(ev->zone, sizeof(ev->zone), "%s", msg->device_id); break;
	case EVENT_CHECK:
		snprintf(ev->household, sizeof(ev->household), "%s", msg->device_id);
		break;
	default: break;
	}
}

int
norm_epoch(const json_t *v, int64_t *ret_us)
{
	int64_t whole = -1; /* the value when it is a whole number */
	double x;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t len = strlen(s);
		char *end;

		if (!*s || len > 20)
			return -EINVAL;
		errno = 0;
		if (strspn(s, "0123456789") == len) {
			whole = strtoll(s, &end, 10);
			if (errno)
				return -ERANGE;
		}
		x = strtod(s, &end);
		if (*end)
			return -EINVAL;
	} else if (json_is_integer(v)) {
		whole = json_integer_value(v);
		if (whole < 0)
			return -ERANGE;
		x = (double)whole;
	} else if (json_is_number(v)) {
		x = json_number_value(v);
	} else {
		return -EINVAL;
	}
	/* Epoch seconds below 1e11 (year 5138), milliseconds from 1e11 to
	 * below 1e14: told apart by magnitude. Whole numbers are converted
	 * exactly (a double has no microseconds left near 1e17 us). */
	if (whole >= 0) {
		if (whole < 100000000000LL)
			*ret_us = whole * 1000000;
		else if (whole < 100000000000000LL)
			*ret_us = whole * 1000;
		else
			return -ERANGE;
		return 0;
	}
	if (x >= 1e11 && x < 1e14)
		x /= 1000.0;
	if (!(x >= 0 && x < 1e11))
		return -ERANGE;
	*ret_us = (int64_t)(x * 1e6 + 0.5);
	return 0;
}

int
norm_json_time(const struct norm_msg *msg, const json_t *v, int64_t *ret_us)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		/* "1581849120" is epoch time too. */
		if (*s >= '0' && *s <= '9' && strchr(s, '-') == NULL)
			return norm_epoch(v, ret_us);
		return normalize_parse_time_ctx(msg->ctx, msg->site_id, s, ret_us, NULL);
	}
	return norm_epoch(v, ret_us);
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
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return -EINVAL;
	memcpy(dst, s, len + 1);
	return 0;
}

int
norm_copy_text(char *dst, const json_t *v)
{
	const char *s;
	size_t len, n = 0;

	if (!json_is_string(v))
		return -EINVAL;
	s = json_string_value(v);
	len = json_string_length(v);
	for (size_t i = 0; i < len && n < NORM_TEXT_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		dst[n++] = (char)c;
	}
	/* Do not end inside a UTF-8 sequence. */
	while (n > 0 && n < len && ((unsigned char)dst[n] & 0xc0) == 0x80 &&
	       ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	dst[n] = '\0';
	return 0;
}

/* The plain decimal of a JSON string: -?[0-9]+, then (.[0-9]+) when
 * `fraction`, with spaces or tabs around it. Copies it without the blanks
 * into buf (33 bytes) and returns 0, or -EINVAL. */
static int
plain_decimal(const json_t *v, int fraction, char buf[33])
{
	const char *s = json_string_value(v), *p;
	size_t len = json_string_length(v), digits;

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len > 32)
		return -EINVAL;
	p = s;
	if (*p == '-')
		p++;
	digits = strspn(p, "0123456789");
	if (digits == 0)
		return -EINVAL;
	p += digits;
	if (fraction && *p == '.') {
		digits = strspn(p + 1, "0123456789");
		if (digits == 0)
			return -EINVAL;
		p += 1 + digits;
	}
	if ((size_t)(p - s) != len)
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return 0;
}

int
norm_json_number(const json_t *v, double *ret)
{
	char buf[33], *end;
	double x;

	if (json_is_number(v)) {
		*ret = json_number_value(v);
		return 0;
	}
	if (!json_is_string(v) || plain_decimal(v, 1, buf) < 0)
		return -EINVAL;
	errno = 0;
	x = strtod(buf, &end);
	if (*end || errno || !isfinite(x))
		return -EINVAL;
	*ret = x;
	return 0;
}

int
norm_json_int(const json_t *v, json_int_t *ret)
{
	char buf[33], *end;
	long long n;

	if (json_is_integer(v)) {
		*ret = json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v) || plain_decimal(v, 0, buf) < 0)
		return -EINVAL;
	errno = 0;
	n = strtoll(buf, &end, 10);
	if (*end || errno)
		return -EINVAL;
	*ret = (json_int_t)n;
	return 0;
}

int
norm_word(const char *s, size_t len, const char *word)
{
	while (len > 0 && (s[0] == ' ' || s[0] == '\t' || s[0] == '\r' || s[0] == '\n')) {
		s++;
		len--;
	}
	while (len > 0 &&
	       (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r' ||
		s[len - 1] == '\n'))
		len--;
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

int
norm_json_word(const json_t *v, const char *word)
{
	return json_is_string(v) && norm_word(json_string_value(v), json_string_length(v), word);
}

int
norm_json_flag(const json_t *v)
{
	json_int_t n;

	if (json_is_boolean(v))
		return json_is_true(v);
	if (norm_json_word(v, "true"))
		return 1;
	return norm_json_int(v, &n) == 0 && n != 0;
}

int
norm_json_mask(const json_t *v)
{
	if (json_is_boolean(v))
		return json_is_true(v);
	if (norm_json_word(v, "yes"))
		return 1;
	if (norm_json_word(v, "no"))
		return 0;
	return -1;
}

int
norm_set_temp(struct event *ev, double celsius)
{
	int16_t dc;

	if (temp_round(celsius, &dc) < 0)
		return -ERANGE;
	ev->temp_dc = dc;
	if (ev->temp_dc < 300 || ev->temp_dc > 450)
		ev->flags |= FLAG_IMPLAUSIBLE;
	return 0;
}

int
norm_reject_temp(struct norm_result *ret, double value, const char *fmt, ...)
{
	char field[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(field, sizeof(field), fmt, ap);
	va_end(ap);
	return norm_reject(ret, "temperature_out_of_range",
			   "%s %.6g is beyond what temp_c holds (-999.9 to 999.9 \u00b0C"
			   " after conversion)",
			   field, value);
}

int
norm_set_temp_unit(struct event *ev, double value, enum temp_unit unit)
{
	switch (unit) {
	case UNIT_FAHRENHEIT: return norm_set_temp(ev, (value - 32.0) * 5.0 / 9.0);
	case UNIT_KELVIN: return norm_set_temp(ev, value - 273.15);
	default: return norm_set_temp(ev, value);
	}
}

int
norm_thermometry_unit(const json_t *v, enum temp_unit *ret)
{
	static const char *const words[] = { "celsius", "fahrenheit", "kelvin" };
	json_int_t n = -1;

	if (!v || json_is_null(v)) {
		*ret = UNIT_CELSIUS;
		return 0;
	}
	if (json_is_integer(v)) {
		n = json_integer_value(v);
	} else if (json_is_string(v)) {
		for (int i = 0; i < 3; i++)
			if (norm_json_word(v, words[i]))
				n = i;
		if (n < 0 && norm_json_int(v, &n) < 0)
			n = -1;
	}
	switch (n) {
	case 0: *ret = UNIT_CELSIUS; return 0;
	case 1: *ret = UNIT_FAHRENHEIT; return 0;
	case 2: *ret = UNIT_KELVIN; return 0;
	default: return -EINVAL;
	}
}

/* 17 digits and a check character (digit or X): a national ID number. */
static int
looks_like_id_number(const char *s)
{
	if (strlen(s) != 18)
		return 0;
	for (int i = 0; i < 17; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return (s[17] >= '0' && s[17] <= '9') || s[17] == 'X' || s[17] == 'x';
}

void
norm_set_person(const struct norm_msg *msg, struct event *ev, const char *id)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char hex[41];

	if (!looks_like_id_number(id)) {
		snprintf(ev->person, sizeof(ev->person), "%s", id);
		return;
	}
	/* Never stored as it is: an HMAC-SHA256 under the site's key; without
	 * a key the number is dropped. */
	ev->person[0] = '\0';
	if (!msg->ctx->id_key ||
	    !HMAC(EVP_sha256(), msg->ctx->id_key, (int)msg->ctx->id_key_len,
		  (const unsigned char *)id, 18, mac, &maclen))
		return;
	for (unsigned i = 0; i < 16 && i < maclen; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	snprintf(ev->person, sizeof(ev->person), "id:%s", hex);
}

int
norm_person_field(const struct norm_msg *msg, struct event *ev, const json_t *v)
{
	char person[NORM_ID_MAX + 1];

	if (!v || json_is_null(v))
		return 0;
	if (norm_copy_id(person, v) < 0)
		return -EINVAL;
	norm_set_person(msg, ev, person);
	return 0;
}

int
norm_names_someone(const json_t *v)
{
	return json_is_integer(v) || (json_is_string(v) && json_string_length(v) > 0);
}

int
norm_pass_without_reading(const struct event *ev, int who, int access, struct norm_result *ret,
			  const char *fmt, ...)
{
	char detail[sizeof(ret->detail)];
	va_list ap;

	if (ev->temp_dc != TEMP_NONE || (who && access))
		return 0;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return norm_reject(ret, "missing_temperature", "%s", detail) - 1;
}

_Static_assert(3 * NORM_ID_MAX + 2 < NORM_KEY_MAX, "a gate, zone or household key fits");
_Static_assert(sizeof("h:") - 1 + 32 + sizeof(":-9223372036854775808:255") - 1 < NORM_KEY_MAX,
	       "a hash key fits");
_Static_assert(NORM_MAX_EVENTS <= 256, "the index of a hash key has at most 3 digits");

/* Copies src into dst (room for dstlen bytes) with '%' and '/' written
 * as %25 and %2F; returns the length, or -ENAMETOOLONG when it would not
 * fit (dst is then unusable). */
static int
escape_key_part(char *dst, size_t dstlen, const char *src)
{
	size_t n = 0;

	for (const char *p = src; *p; p++) {
		const char *out = *p == '%' ? "%25" : *p == '/' ? "%2F" : NULL;
		size_t need = out ? 3 : 1;

		if (n + need >= dstlen)
			return -ENAMETOOLONG;
		if (out)
			memcpy(dst + n, out, 3);
		else
			dst[n] = *p;
		n += need;
	}
	dst[n] = '\0';
	return (int)n;
}

int
norm_hotline_record(char *dst, size_t len, const char *call_id, const char *id)
{
	int n = escape_key_part(dst, len, call_id);

	if (n < 0 || (size_t)snprintf(dst + n, len - (size_t)n, "/%s", id) >= len - (size_t)n)
		return -ENAMETOOLONG;
	return 0;
}

void
norm_time_received(const struct norm_msg *msg, struct event *ev)
{
	ev->device_us = msg->in->received_us;
	ev->flags |= FLAG_TS_RECEIVED;
}

int
norm_finish_event(const struct norm_msg *msg, struct event *ev, const char *record_id, size_t index,
		  struct norm_result *ret)
{
	int64_t skew = ev->device_us - msg->in->received_us;
	int n;

	snprintf(ev->site, sizeof(ev->site), "%s", msg->site_id);
	ev->received_us = msg->in->received_us;
	ev->rule_us = ev->device_us;
	/* A format that read a time of its own after norm_time_received()
	 * (and did not say so) has one. */
	if (ev->device_us != ev->received_us)
		ev->flags &= ~(unsigned)FLAG_TS_RECEIVED;
	if (skew < 0)
		skew = -skew;
	if (skew > msg->ctx->max_clock_skew_us) {
		ev->flags |= FLAG_CLOCK_SKEW;
		ev->rule_us = ev->received_us;
	}
	if (record_id && *record_id) {
		/* site/<gate, zone or household>/<record>, or site/<type>/<record>
		 * for the topics without a device level. */
		n = snprintf(ev->key, sizeof(ev->key), "%s/%s/%s", ev->site,
			     msg->device_id[0] ? msg->device_id : normalize_type_name(ev->type),
			     record_id);
	} else {
		char hex[33];

		/* No record id: the event is this delivery of the message. A
		 * replay of it (same topic and payload, sent again by the broker)
		 * never reaches us (replay.h); an identical message that is not a
		 * replay (a second "offline", a second 36.6) is another event.
		 * The receive time, read back from the spool, keeps the key the
		 * same each time the record is processed. */
		normalize_message_hash(msg->in, hex);
		n = snprintf(ev->key, sizeof(ev->key), "h:%s:%" PRId64 ":%zu", hex,
			     msg->in->received_us, index);
	}
	/* NORM_KEY_MAX holds every key the id limits allow; a cut key could
	 * equal another event's and drop it as a "redelivery". */
	if (n < 0 || (size_t)n >= sizeof(ev->key)) {
		ev->key[0] = '\0';
		return norm_reject(ret, "key_too_long",
				   "the event key would be %d bytes, at most %d", n,
				   (int)NORM_KEY_MAX - 1) -
			1;
	}
	return 0;
}
