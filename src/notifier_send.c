/* notifier_send.c - the receivers over libcurl (notifier_send.h).
 *
 * One call renders the message (notifier_render) and sends it with the
 * sender's one curl easy handle (reset before each use):
 *
 *   wecom     POST {"msgtype":"text"|"markdown", ...:{"content":...}} to the
 *             robot's url; it answers {"errcode":0,"errmsg":"ok"}. 45009
 *             (more than 20 a minute) is SEND_RATE_LIMITED for 60 s, any
 *             other errcode SEND_RETRY. Text holds 2048 bytes, markdown 4096.
 *   dingtalk  the same shape ({"markdown":{"title","text"}}); with a secret
 *             the url gets &timestamp=<ms>&sign=<signature>. 130101 and
 *             410100 (sent too fast) are SEND_RATE_LIMITED for 60 s.
 *   webhook   Alertmanager's webhook JSON (version 4), one alert per item,
 *             each rendered on its own for its summary and description.
 *   smtp      one mail to every address of r->to: text/plain UTF-8 in CRLF
 *             lines, base64; the Subject and the names of From and To in
 *             RFC 2047. STARTTLS when the server offers it (smtp://), TLS
 *             from the start with smtps://. Any refusal (a recipient too)
 *             is SEND_RETRY with the server's refusing reply.
 *   sms       one POST per number of r->to, of r->body_template filled in.
 *             Every number must be accepted: when one is not, the message
 *             is SEND_RETRY and the next attempt sends to all of them again,
 *             so the numbers before the failed one get the text twice (an
 *             SMS gateway has no idempotency key to prevent it; the
 *             X-Cordon-Notification header lets a gateway that looks drop it).
 *
 * Every HTTP request carries X-Cordon-Notification: <message id> and
 * User-Agent: cordon-notify/<version>. HTTP 429 is SEND_RATE_LIMITED after
 * its Retry-After (60 s without one); any other answer but 2xx, and every
 * network error, SEND_RETRY. The url holds the robot's key and is never
 * put into an answer: anything of its query string, user info or the
 * DingTalk secret that a server or curl echoes is masked as "***".
 *
 * No logging here: the caller logs what it records. */
#include "notifier_send.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notifier_send_internal.h"
#include "strbuf.h"
#include "notifier_text.h"

#ifndef CORDON_VERSION
#define CORDON_VERSION "0"
#endif

#define USER_AGENT "cordon-notify/" CORDON_VERSION
#define ANSWER_BODY_BYTES 400		 /* of a receiver's answer, in res->answer */
#define READ_CAP (64 * 1024)		 /* what is kept of a receiver's answer */
#define RATE_LIMIT_WAIT_MS 60000	 /* robots count messages per minute */
#define WECOM_TEXT_MAX 2048		 /* bytes of text.content */
#define WECOM_MARKDOWN_MAX 4096		 /* bytes of markdown.content */
#define DINGTALK_MAX 20000		 /* default (docs/notify.md) */
#define WEBHOOK_MAX 16384		 /* default, of each description */
#define SMS_MAX 300			 /* default */
#define MAIL_MAX 65536			 /* default */
#define DEFAULT_TIMEOUT_MS 10000	 /* when r->timeout is 0 */
#define ZERO_TIME "0001-01-01T00:00:00Z" /* Alertmanager's endsAt of a firing alert */

struct notifier_sender {
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
};

/* ------------------------------------------------------ the pure parts */

/* Length of the UTF-8 character at s (n bytes left), 0 when it is not one. */
static size_t
utf8_char(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return len;
}

static bool
is_utf8(const char *s)
{
	size_t n = strlen(s), k;

	for (size_t i = 0; i < n; i += k)
		if (!(k = utf8_char((const unsigned char *)s + i, n - i)))
			return false;
	return true;
}

void
notifier_send_excerpt(char *dst, size_t size, const char *src, size_t len, size_t max)
{
	size_t i = 0, o = 0, k, full = len;

	if (!size)
		return;
	if (len > max)
		len = max;
	while (i < len) {
		const unsigned char c = (unsigned char)src[i];

		k = utf8_char((const unsigned char *)src + i, len - i);
		if (k == 1 && (c < 0x20 || c == 0x7f)) {
			if (o + 1 >= size)
				break;
			dst[o++] = ' ';
		} else if (k == 0) {
			/* A character the cut at `max` split ends it; bytes
			 * that are not UTF-8 become '?'. */
			if (len < full && utf8_char((const unsigned char *)src + i, full - i))
				break;
			if (o + 1 >= size)
				break;
			dst[o++] = '?';
			k = 1;
		} else {
			if (o + k >= size)
				break;
			memcpy(dst + o, src + i, k);
			o += k;
		}
		i += k;
	}
	dst[o] = '\0';
}

static char *
base64(const unsigned char *in, size_t n)
{
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

static void
escape_form(struct strbuf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		const unsigned char c = (unsigned char)*s;

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			strbuf_add(b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };

			strbuf_add(b, e, 3);
		}
	}
}

/* Appends `s` escaped `how`; -EINVAL for JSON of bytes that are not UTF-8. */
static int
escape_into(struct strbuf *b, const char *s, enum send_escape how)
{
	switch (how) {
	case ESC_RAW: strbuf_puts(b, s); return 0;
	case ESC_FORM: escape_form(b, s); return 0;
	case ESC_JSON: {
		json_t *j = json_string(s); /* NULL: not UTF-8 (or no memory) */
		char *d;

		if (!j)
			return is_utf8(s) ? -ENOMEM : -EINVAL;
		d = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
		json_decref(j);
		if (!d)
			return -ENOMEM;
		strbuf_add(b, d + 1, strlen(d) - 2); /* without the quotes */
		free(d);
		return 0;
	}
	}
	return -EINVAL;
}

int
notifier_send_escape(const char *s, enum send_escape how, char **ret)
{
	struct strbuf b = { 0 };
	int err = escape_into(&b, s, how);

	if (err) {
		free(b.p);
		return err;
	}
	return strbuf_take(&b, ret);
}

enum send_escape
notifier_send_escape_for(const char *content_type)
{
	if (!content_type)
		return ESC_RAW;
	if (strcasestr(content_type, "json"))
		return ESC_JSON;
	if (strncasecmp(content_type, "application/x-www-form-urlencoded", 33) == 0)
		return ESC_FORM;
	return ESC_RAW;
}

int
notifier_send_fill(const char *tmpl, const char *to, const char *text, enum send_escape how,
		   char **ret)
{
	struct strbuf b = { 0 };
	const char *p = tmpl;
	int err = 0;

	while (*p && !err) {
		if (strncmp(p, "{to}", 4) == 0) {
			err = escape_into(&b, to, how);
			p += 4;
		} else if (strncmp(p, "{text}", 6) == 0) {
			err = escape_into(&b, text, how);
			p += 6;
		} else {
			size_t n = strcspn(p + 1, "{") + 1;

			strbuf_add(&b, p, n);
			p += n;
		}
	}
	if (err) {
		free(b.p);
		return err;
	}
	return strbuf_take(&b, ret);
}

int
notifier_send_sign(const char *secret, int64_t ts_ms, char **ret_sign)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *msg, *b64;
	int err;

	if (asprintf(&msg, "%" PRId64 "\n%s", ts_ms, secret) < 0)
		return -ENOMEM;
	if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg,
		  strlen(msg), mac, &maclen)) {
		free(msg);
		return -ENOMEM;
	}
	free(msg);
	b64 = base64(mac, maclen);
	if (!b64)
		return -ENOMEM;
	err = notifier_send_escape(b64, ESC_FORM, ret_sign);
	free(b64);
	return err;
}

int
notifier_send_subject(const char *s, char **ret)
{
	/* "=?UTF-8?B?" + 60 base64 characters + "?=" = 72 <= 75 (RFC 2047 2). */
	enum { WORD_BYTES = 45 };
	struct strbuf b = { 0 };
	size_t n = strlen(s), i = 0;
	bool plain = true;

	for (size_t j = 0; j < n; j++)
		if ((unsigned char)s[j] < 0x20 || (unsigned char)s[j] >= 0x7f)
			plain = false;
	/* Plain ASCII that looks like an encoded word is encoded too. */
	if (plain && n <= 900 && !strstr(s, "=?")) {
		strbuf_puts(&b, s);
		return strbuf_take(&b, ret);
	}
	while (i < n) {
		size_t end = i, k;
		char *w;

		while (end < n) {
			k = utf8_char((const unsigned char *)s + end, n - end);
			if (!k)
				k = 1; /* not UTF-8: sent as it is, inside the word */
			if (end + k - i > WORD_BYTES)
				break;
			end += k;
		}
		if (end == i)
			end = i + 1;
		w = base64((const unsigned char *)s + i, end - i);
		if (!w) {
			free(b.p);
			return -ENOMEM;
		}
		if (i)
			strbuf_puts(&b, "\r\n ");
		strbuf_printf(&b, "=?UTF-8?B?%s?=", w);
		free(w);
		i = end;
	}
	return strbuf_take(&b, ret);
}

/* --------------------------------------------------------- the sender */

int
notifier_sender_create(struct notifier_sender **ret)
{
	struct notifier_sender *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->curl = curl_easy_init();
	if (!s->curl) {
		free(s);
		return -ENOMEM;
	}
	*ret = s;
	return 0;
}

void
notifier_sender_free(struct notifier_sender *s)
{
	if (!s)
		return;
	if (s->curl)
		curl_easy_cleanup(s->curl);
	free(s);
}

static void __attribute__((format(printf, 2, 3)))
set_answer(struct send_result *res, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->answer, sizeof(res->answer), fmt, ap);
	va_end(ap);
}

/* Replaces each occurrence of the n bytes at `secret` in `answer` by "***". */
static void
mask(char *answer, const char *secret, size_t n)
{
	char *p;

	if (n < 3)
		return; /* shorter ones never grow back: "***" is as long */
	while ((p = memmem(answer, strlen(answer), secret, n))) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + n, strlen(p + n) + 1);
	}
}

/* Masks the url's query string, its user info and the DingTalk secret. */
static void
mask_secrets(struct send_result *res, const struct receiver *r)
{
	const char *u = r->url, *q, *at, *scheme;

	if (r->secret)
		mask(res->answer, r->secret, strlen(r->secret));
	if (!u)
		return;
	q = strchr(u, '?');
	if (q) {
		/* Each value of the query, and the whole of it. */
		mask(res->answer, q + 1, strlen(q + 1));
		for (const char *v = strchr(q, '='); v; v = strchr(v + 1, '=')) {
			size_t n = strcspn(v + 1, "&#");

			mask(res->answer, v + 1, n);
		}
	}
	scheme = strstr(u, "://");
	at = scheme ? strchr(scheme + 3, '@') : NULL;
	if (at && (!q || at < q)) {
		const char *ui = scheme + 3, *colon = memchr(ui, ':', (size_t)(at - ui));

		if (colon)
			mask(res->answer, colon + 1, (size_t)(at - colon - 1));
	}
}

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
	struct strbuf *b = arg;
	size_t len = size * n;

	if (b->len < READ_CAP)
		strbuf_add(b, data, len < READ_CAP - b->len ? len : READ_CAP - b->len);
	return len;
}

static long
timeout_ms(const struct receiver *r)
{
	return r->timeout > 0 ? (long)r->timeout : DEFAULT_TIMEOUT_MS;
}

/* The answer of a request curl could not finish. */
static void
curl_failed(struct notifier_sender *s, CURLcode rc, struct send_result *res)
{
	res->outcome = SEND_RETRY;
	set_answer(res, "%s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc));
}

/* POSTs `body` to `url` and fills res from the HTTP status: 2xx SEND_OK,
 * 429 SEND_RATE_LIMITED (Retry-After), else SEND_RETRY. The answer body
 * stays in *answer (NUL-terminated, at most READ_CAP bytes) for the robots'
 * errcode. Returns 0, -ENOMEM. */
static int
http_post(struct notifier_sender *s, const struct receiver *r, const struct notifier_message *m,
	  const char *url, const char *content_type, const char *body, struct strbuf *answer,
	  struct send_result *res)
{
	struct curl_slist *h = NULL;
	struct strbuf line = { 0 };
	CURLcode rc;
	long status = 0;
	curl_off_t retry_after = 0;
	char excerpt[ANSWER_BODY_BYTES * 2];

	curl_easy_reset(s->curl);
	s->errbuf[0] = '\0';
	/* Three header lines, NUL-separated in one buffer; "Expect:" spares the
	 * 100-continue round trip. */
	strbuf_printf(&line, "Content-Type: %s", content_type);
	strbuf_add(&line, "", 1);
	strbuf_printf(&line, "X-Cordon-Notification: %" PRId64, m->id);
	strbuf_add(&line, "", 1);
	strbuf_puts(&line, "Expect:");
	if (line.oom) {
		free(line.p);
		return -ENOMEM;
	}
	for (const char *p = line.p; p < line.p + line.len; p += strlen(p) + 1) {
		struct curl_slist *t = curl_slist_append(h, p);

		if (!t) {
			curl_slist_free_all(h);
			free(line.p);
			return -ENOMEM;
		}
		h = t;
	}
	free(line.p);
	curl_easy_setopt(s->curl, CURLOPT_URL, url);
	curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(s->curl, CURLOPT_USERAGENT, USER_AGENT);
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, timeout_ms(r));
	curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms(r));
	curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, answer);
	rc = curl_easy_perform(s->curl);
	curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (answer->oom)
		return -ENOMEM;
	if (rc != CURLE_OK) {
		curl_failed(s, rc, res);
		return 0;
	}
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	res->http_status = status;
	notifier_send_excerpt(excerpt, sizeof(excerpt), answer->p ? answer->p : "", answer->len,
			      ANSWER_BODY_BYTES);
	set_answer(res, "HTTP %ld: %s", status, excerpt);
	if (status >= 200 && status <= 299) {
		res->outcome = SEND_OK;
	} else if (status == 429) {
		res->outcome = SEND_RATE_LIMITED;
		if (curl_easy_getinfo(s->curl, CURLINFO_RETRY_AFTER, &retry_after) != CURLE_OK ||
		    retry_after <= 0)
			retry_after = RATE_LIMIT_WAIT_MS / 1000;
		res->retry_after_ms = (int64_t)retry_after * 1000;
	} else {
		res->outcome = SEND_RETRY;
	}
	return 0;
}

/* ---------------------------------------------------------- the robots */

static size_t
max_or(size_t configured, size_t dflt, size_t limit)
{
	size_t n = configured ? configured : dflt;

	return limit && n > limit ? limit : n;
}

/* Reads a robot's {"errcode":N,"errmsg":...} into res: 0 keeps SEND_OK,
 * one of `limited` SEND_RATE_LIMITED for a minute, anything else (or no
 * errcode at all) SEND_RETRY. */
static void
robot_answer(const struct strbuf *answer, const long *limited, size_t nlimited,
	     struct send_result *res)
{
	json_t *j, *e;
	json_int_t code;

	if (res->outcome != SEND_OK)
		return;
	j = answer->p ? json_loadb(answer->p, answer->len, 0, NULL) : NULL;
	e = json_object_get(j, "errcode");
	if (!json_is_integer(e)) {
		res->outcome = SEND_RETRY;
		json_decref(j);
		return;
	}
	code = json_integer_value(e);
	json_decref(j);
	if (code == 0)
		return;
	res->outcome = SEND_RETRY;
	for (size_t i = 0; i < nlimited; i++)
		if (code == limited[i]) {
			res->outcome = SEND_RATE_LIMITED;
			res->retry_after_ms = RATE_LIMIT_WAIT_MS;
		}
}

/* The JSON text of `j` (a new reference, taken; NULL: no memory). */
static int
dump(json_t *j, char **ret)
{
	char *d;

	if (!j)
		return -ENOMEM;
	d = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!d)
		return -ENOMEM;
	*ret = d;
	return 0;
}

static int
send_robot(struct notifier_sender *s, const struct receiver *r, const struct notifier_message *m,
	   notifier_zone_fn *zone, void *zarg, struct send_result *res, char **ret_body)
{
	static const long wecom_limited[] = { 45009 };
	static const long dingtalk_limited[] = { 130101, 410100 };
	const bool md = r->style == STYLE_MARKDOWN;
	const bool wecom = r->type == RECEIVER_WECOM;
	size_t max = wecom ? max_or(r->max_bytes, md ? WECOM_MARKDOWN_MAX : WECOM_TEXT_MAX,
				    md ? WECOM_MARKDOWN_MAX : WECOM_TEXT_MAX) :
			     max_or(r->max_bytes, DINGTALK_MAX, 0);
	char *title = NULL, *text = NULL, *body = NULL, *url = NULL;
	struct strbuf answer = { 0 };
	json_t *j;
	int err;

	err = notifier_render(m, r->language, md ? STYLE_MARKDOWN : STYLE_TEXT, max, zone, zarg,
			      &title, &text);
	if (err)
		return err;
	if (!is_utf8(text) || !is_utf8(title)) {
		res->outcome = SEND_RETRY;
		set_answer(res, "the rendered message is not UTF-8");
		goto out;
	}
	if (!md)
		j = json_pack("{s:s, s:{s:s}}", "msgtype", "text", "text", "content", text);
	else if (wecom)
		j = json_pack("{s:s, s:{s:s}}", "msgtype", "markdown", "markdown", "content", text);
	else
		j = json_pack("{s:s, s:{s:s, s:s}}", "msgtype", "markdown", "markdown", "title",
			      title, "text", text);
	err = dump(j, &body);
	if (err)
		goto out;
	if (!wecom && r->secret && r->secret[0]) {
		struct timespec ts;
		int64_t ms;
		char *sign;

		clock_gettime(CLOCK_REALTIME, &ts);
		ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		err = notifier_send_sign(r->secret, ms, &sign);
		if (err)
			goto out;
		if (asprintf(&url, "%s%ctimestamp=%" PRId64 "&sign=%s", r->url,
			     strchr(r->url, '?') ? '&' : '?', ms, sign) < 0) {
			url = NULL;
			err = -ENOMEM;
		}
		free(sign);
		if (err)
			goto out;
	}
	err = http_post(s, r, m, url ? url : r->url, "application/json", body, &answer, res);
	if (err)
		goto out;
	if (wecom)
		robot_answer(&answer, wecom_limited, 1, res);
	else
		robot_answer(&answer, dingtalk_limited, 2, res);
out:
	if (!err) {
		*ret_body = body;
		body = NULL;
	}
	free(answer.p);
	free(url);
	free(body);
	free(title);
	free(text);
	return err;
}

/* ---------------------------------------------------------- the webhook */

/* "2020-02-16T10:32:00.123Z"; ZERO_TIME for 0. */
static void
rfc3339(char out[64], int64_t ms)
{
	struct tm tm;
	time_t t;

	if (ms <= 0) {
		snprintf(out, 64, "%s", ZERO_TIME);
		return;
	}
	t = (time_t)(ms / 1000);
	gmtime_r(&t, &tm);
	snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int
set_str(json_t *o, const char *k, const char *v)
{
	if (!v)
		return 0;
	return json_object_set_new(o, k, json_string(v)) ? -ENOMEM : 0;
}

/* The labels of one alert: alertname (its kind), site, severity, subject,
 * and the ids it has. */
static json_t *
alert_labels(const struct notifier_alert *a)
{
	json_t *l = json_object();
	int err = 0;

	if (!l)
		return NULL;
	err |= set_str(l, "alertname", a->kind);
	err |= set_str(l, "site", a->site);
	err |= set_str(l, "severity", a->severity);
	err |= set_str(l, "subject", a->subject);
	err |= set_str(l, "gate", a->gate);
	err |= set_str(l, "household", a->household);
	err |= set_str(l, "building", a->building);
	err |= set_str(l, "card", a->card);
	err |= set_str(l, "zone", a->zone);
	err |= set_str(l, "call_id", a->call_id);
	if (err) {
		json_decref(l);
		return NULL;
	}
	return l;
}

/* Keeps in `common` only the pairs `o` has too, with the same value. */
static void
intersect(json_t *common, const json_t *o)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(common, tmp, k, v)
	{
		if (!json_equal(v, json_object_get(o, k)))
			json_object_del(common, k);
	}
}

/* Alertmanager's groupKey shape: {}/{route="R"}:{alertname="K", site="S"}. */
static json_t *
group_key(const struct notifier_message *m, const json_t *group)
{
	struct strbuf b = { 0 };
	const char *k;
	json_t *v;
	bool first = true;
	char *s;

	strbuf_printf(&b, "{}/{route=\"%s\"}:{", m->route ? m->route : "");
	json_object_foreach((json_t *)group, k, v)
	{
		strbuf_printf(&b, "%s%s=\"%s\"", first ? "" : ", ", k, json_string_value(v));
		first = false;
	}
	strbuf_puts(&b, "}");
	if (strbuf_take(&b, &s))
		return NULL;
	v = json_string(s);
	free(s);
	return v;
}

static int
webhook_payload(const struct receiver *r, const struct notifier_message *m, notifier_zone_fn *zone,
		void *zarg, char **ret)
{
	const size_t max = max_or(r->max_bytes, WEBHOOK_MAX, 0);
	json_t *alerts = json_array(), *common = NULL, *annotations = NULL, *group = NULL, *top;
	int err = 0;

	if (!alerts)
		return -ENOMEM;
	for (size_t i = 0; i < m->nitems && !err; i++) {
		const struct notifier_alert *a = &m->items[i].alert;
		struct notifier_message one = *m;
		char *title = NULL, *text = NULL, starts[64], ends[64];
		json_t *labels, *ann, *alert;
		bool resolved = m->items[i].transition == NTR_RESOLVED || a->resolved_at_ms > 0;

		one.items = &m->items[i];
		one.nitems = 1;
		one.transition = m->items[i].transition;
		err = notifier_render(&one, r->language, STYLE_TEXT, max, zone, zarg, &title,
				      &text);
		if (err)
			break;
		labels = alert_labels(a);
		ann = is_utf8(title) && is_utf8(text) ?
			json_pack("{s:s, s:s}", "summary", title, "description", text) :
			NULL;
		free(title);
		free(text);
		rfc3339(starts, a->raised_at_ms);
		rfc3339(ends, resolved ? a->resolved_at_ms : 0);
		if (resolved && !a->resolved_at_ms)
			rfc3339(ends, a->raised_at_ms);
		alert = labels && ann ?
			json_pack("{s:s, s:O, s:O, s:s, s:s, s:s, s:s}", "status",
				  resolved ? "resolved" : "firing", "labels", labels, "annotations",
				  ann, "startsAt", starts, "endsAt", ends, "generatorURL", "",
				  "fingerprint", a->alert_id) :
			NULL;
		if (alert && !common) {
			common = json_deep_copy(labels);
			annotations = json_deep_copy(ann);
		} else if (alert) {
			intersect(common, labels);
			intersect(annotations, ann);
		}
		json_decref(labels);
		json_decref(ann);
		if (!alert || json_array_append_new(alerts, alert) || (i == 0 && !common) ||
		    (i == 0 && !annotations))
			err = -ENOMEM;
	}
	if (!err) {
		if (!common)
			common = json_object();
		if (!annotations)
			annotations = json_object();
		/* Grouped as the daemon groups: by kind and site when all share them. */
		group = json_object();
		if (common && group) {
			json_t *k = json_object_get(common, "alertname"),
			       *st = json_object_get(common, "site");

			if (k)
				json_object_set(group, "alertname", k);
			if (st)
				json_object_set(group, "site", st);
		}
	}
	if (err || !common || !annotations || !group) {
		json_decref(alerts);
		json_decref(common);
		json_decref(annotations);
		json_decref(group);
		return err ? err : -ENOMEM;
	}
	top = json_pack("{s:s, s:o, s:I, s:s, s:s, s:o, s:o, s:o, s:s, s:o}", "version", "4",
			"groupKey", group_key(m, group), "truncatedAlerts", (json_int_t)0, "status",
			m->transition == NTR_RESOLVED ? "resolved" : "firing", "receiver",
			r->name ? r->name : "", "groupLabels", group, "commonLabels", common,
			"commonAnnotations", annotations, "externalURL", "", "alerts", alerts);
	return dump(top, ret);
}

static int
send_webhook(struct notifier_sender *s, const struct receiver *r, const struct notifier_message *m,
	     notifier_zone_fn *zone, void *zarg, struct send_result *res, char **ret_body)
{
	struct strbuf answer = { 0 };
	char *body = NULL;
	int err;

	err = webhook_payload(r, m, zone, zarg, &body);
	if (err == -EINVAL) {
		res->outcome = SEND_RETRY;
		set_answer(res, "the rendered message is not UTF-8");
		return 0;
	}
	if (err)
		return err;
	err = http_post(s, r, m, r->url, "application/json", body, &answer, res);
	free(answer.p);
	if (err) {
		free(body);
		return err;
	}
	*ret_body = body;
	return 0;
}

/* ------------------------------------------------------------------ SMS */

/* "18012341999" -> "180****1999" (SPEC 3: phones never leave PostgreSQL
 * whole); other shapes keep their first 3 and last 4 characters. */
static void
mask_phone(char *out, size_t size, const char *to)
{
	size_t n = strlen(to);

	if (n <= 7)
		snprintf(out, size, "****");
	else
		snprintf(out, size, "%.3s****%s", to, to + n - 4);
}

static int
send_sms(struct notifier_sender *s, const struct receiver *r, const struct notifier_message *m,
	 notifier_zone_fn *zone, void *zarg, struct send_result *res, char **ret_body)
{
	const char *ctype = r->content_type ? r->content_type : "application/json";
	const enum send_escape how = notifier_send_escape_for(ctype);
	char *title = NULL, *text = NULL;
	size_t n = 0;
	int err;

	err = notifier_render(m, r->language, STYLE_SMS, max_or(r->max_bytes, SMS_MAX, 0), zone,
			      zarg, &title, &text);
	if (err)
		return err;
	free(title);
	res->outcome = SEND_RETRY;
	set_answer(res, "no recipients (to)");
	for (char **to = r->to; to && *to; to++, n++) {
		struct strbuf answer = { 0 };
		char *body, phone[32], answer1[sizeof(res->answer)];

		err = notifier_send_fill(r->body_template ? r->body_template : "{text}", *to, text,
					 how, &body);
		if (err == -EINVAL) {
			res->outcome = SEND_RETRY;
			set_answer(res, "the rendered message is not UTF-8");
			err = 0;
			break;
		}
		if (err)
			break;
		err = http_post(s, r, m, r->url, ctype, body, &answer, res);
		free(body);
		free(answer.p);
		if (err)
			break;
		if (res->outcome != SEND_OK) {
			/* Which one, masked; the ones before got the text. */
			mask_phone(phone, sizeof(phone), *to);
			memcpy(answer1, res->answer, sizeof(answer1));
			set_answer(res, "to %s (after %zu accepted): %s", phone, n, answer1);
			break;
		}
	}
	if (!err)
		*ret_body = text;
	else
		free(text);
	return err;
}

/* ----------------------------------------------------------------- SMTP */

struct upload {
	const char *p;
	size_t left;
};

static size_t
on_read(char *out, size_t size, size_t n, void *arg)
{
	struct upload *u = arg;
	size_t len = size * n < u->left ? size * n : u->left;

	memcpy(out, u->p, len);
	u->p += len;
	u->left -= len;
	return len;
}

/* The server's replies (libcurl gives an SMTP session's replies to the
 * header callback): the last one, and the last that refused something. */
struct replies {
	char last[256];
	char refused[256]; /* 4xx or 5xx */
};

static size_t
on_reply(char *data, size_t size, size_t n, void *arg)
{
	struct replies *rp = arg;
	size_t len = size * n;

	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (len) {
		notifier_send_excerpt(rp->last, sizeof(rp->last), data, len, 255);
		if (data[0] == '4' || data[0] == '5')
			memcpy(rp->refused, rp->last, sizeof(rp->refused));
	}
	return size * n;
}

/* The address inside "Name <a@b>", or the whole. */
static const char *
domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;

	return at && at[1] ? at + 1 : "cordon-notify";
}

/* Appends an address for From: or To:: "Name <a@b>" with the name in RFC
 * 2047 words when it is not printable ASCII, or "a@b" as it is. */
static int
address_header(struct strbuf *b, const char *addr)
{
	const char *lt = strchr(addr, '<');
	char *name, *word;
	size_t n;
	int err;

	if (!lt || lt == addr) {
		strbuf_puts(b, addr);
		return 0;
	}
	for (n = (size_t)(lt - addr); n && addr[n - 1] == ' '; n--)
		;
	name = strndup(addr, n);
	if (!name)
		return -ENOMEM;
	err = notifier_send_subject(name, &word);
	free(name);
	if (err)
		return err;
	strbuf_puts(b, word);
	strbuf_puts(b, " ");
	strbuf_puts(b, lt);
	free(word);
	return 0;
}

static int
mail_message(const struct receiver *r, const struct notifier_message *m, const char *title,
	     const char *text, char **ret)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct strbuf b = { 0 }, crlf = { 0 };
	struct timespec ts;
	struct tm tm;
	char *subject, *dom;
	size_t n;
	int err;

	err = notifier_send_subject(title, &subject);
	if (err)
		return err;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	dom = strdup(domain_of(r->from));
	if (!dom) {
		free(subject);
		return -ENOMEM;
	}
	dom[strcspn(dom, ">")] = '\0';
	strbuf_printf(&b, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday],
		      tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
		      tm.tm_sec);
	strbuf_puts(&b, "From: ");
	err = address_header(&b, r->from ? r->from : "cordon-notify@localhost");
	if (err) {
		free(b.p);
		free(subject);
		free(dom);
		return err;
	}
	strbuf_puts(&b, "\r\n");
	strbuf_puts(&b, "To: ");
	for (char **to = r->to; to && *to && !err; to++) {
		strbuf_puts(&b, to == r->to ? "" : ",\r\n ");
		err = address_header(&b, *to);
	}
	if (err) {
		free(b.p);
		free(subject);
		free(dom);
		return err;
	}
	strbuf_puts(&b, "\r\nSubject: ");
	strbuf_puts(&b, subject);
	strbuf_printf(&b, "\r\nMessage-ID: <cordon-notify.%" PRId64 ".%lld.%ld@%s>\r\n", m->id,
		      (long long)ts.tv_sec, ts.tv_nsec / 1000000, dom);
	strbuf_printf(&b, "X-Cordon-Notification: %" PRId64 "\r\n", m->id);
	strbuf_puts(&b,
		    "MIME-Version: 1.0\r\n"
		    "Content-Type: text/plain; charset=UTF-8\r\n"
		    "Content-Transfer-Encoding: base64\r\n"
		    "\r\n");
	/* Text in its canonical form (RFC 2046 4.1.1: lines end in CRLF), then
	 * base64 in lines of 76. */
	for (const char *p = text; *p; p++) {
		if (*p == '\n' && (p == text || p[-1] != '\r'))
			strbuf_add(&crlf, "\r", 1);
		strbuf_add(&crlf, p, 1);
	}
	if (crlf.oom || !crlf.p) {
		b.oom = b.oom || crlf.oom;
		n = 0;
	} else {
		n = crlf.len;
	}
	for (size_t i = 0; i < n; i += 57) {
		char *line = base64((const unsigned char *)crlf.p + i, n - i < 57 ? n - i : 57);

		if (!line) {
			b.oom = true;
			break;
		}
		strbuf_puts(&b, line);
		strbuf_puts(&b, "\r\n");
		free(line);
	}
	free(crlf.p);
	free(subject);
	free(dom);
	return strbuf_take(&b, ret);
}

/* The address of "Name <a@b>" for MAIL FROM / RCPT TO: "<a@b>". */
static char *
envelope(const char *addr)
{
	const char *lt = strchr(addr, '<');
	char *e;

	if (lt)
		return strdup(lt);
	if (asprintf(&e, "<%s>", addr) < 0)
		return NULL;
	return e;
}

static int
send_smtp(struct notifier_sender *s, const struct receiver *r, const struct notifier_message *m,
	  notifier_zone_fn *zone, void *zarg, struct send_result *res, char **ret_body)
{
	char *title = NULL, *text = NULL, *msg = NULL, *from = NULL;
	struct replies rp = { "", "" };
	struct curl_slist *rcpt = NULL;
	struct upload u;
	CURLcode rc;
	long code = 0;
	int err;

	err = notifier_render(m, r->language, STYLE_MAIL, max_or(r->max_bytes, MAIL_MAX, 0), zone,
			      zarg, &title, &text);
	if (err)
		return err;
	if (!r->to || !r->to[0]) {
		res->outcome = SEND_RETRY;
		set_answer(res, "no recipients (to)");
		goto record;
	}
	err = mail_message(r, m, title, text, &msg);
	if (err)
		goto out;
	from = envelope(r->from ? r->from : "cordon-notify@localhost");
	if (!from) {
		err = -ENOMEM;
		goto out;
	}
	for (char **to = r->to; *to; to++) {
		char *e = envelope(*to);
		struct curl_slist *t = e ? curl_slist_append(rcpt, e) : NULL;

		free(e);
		if (!t) {
			err = -ENOMEM;
			goto out;
		}
		rcpt = t;
	}
	u = (struct upload){ msg, strlen(msg) };
	curl_easy_reset(s->curl);
	s->errbuf[0] = '\0';
	curl_easy_setopt(s->curl, CURLOPT_URL, r->url);
	curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, s->errbuf);
	curl_easy_setopt(s->curl, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
	curl_easy_setopt(s->curl, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(s->curl, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(s->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(s->curl, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(s->curl, CURLOPT_READDATA, &u);
	curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_reply);
	curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, &rp);
	curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, timeout_ms(r));
	curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms(r));
	rc = curl_easy_perform(s->curl);
	curl_easy_setopt(s->curl, CURLOPT_MAIL_RCPT, NULL);
	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
	res->http_status = code;
	if (rc != CURLE_OK) {
		const char *why = rp.refused[0] ? rp.refused : rp.last;

		res->outcome = SEND_RETRY;
		if (why[0])
			set_answer(res, "%s: %s", s->errbuf[0] ? s->errbuf : curl_easy_strerror(rc),
				   why);
		else
			curl_failed(s, rc, res);
	} else {
		res->outcome = SEND_OK;
		set_answer(res, "%s", rp.last[0] ? rp.last : "250");
	}
record:
	if (asprintf(ret_body, "Subject: %s\n\n%s", title, text) < 0) {
		*ret_body = NULL;
		err = -ENOMEM;
	}
out:
	curl_slist_free_all(rcpt);
	free(from);
	free(msg);
	free(title);
	free(text);
	return err;
}

/* ------------------------------------------------------------- the call */

int
notifier_send(struct notifier_sender *s, const struct receiver *r, const struct notifier_message *m,
	      notifier_zone_fn *zone, void *zarg, struct send_result *res, char **ret_body)
{
	char *body = NULL;
	int err;

	memset(res, 0, sizeof(*res));
	res->outcome = SEND_RETRY;
	*ret_body = NULL;
	if (!r->url || !r->url[0]) {
		set_answer(res, "receiver %s has no url", r->name ? r->name : "?");
		return 0;
	}
	switch (r->type) {
	case RECEIVER_WECOM:
	case RECEIVER_DINGTALK: err = send_robot(s, r, m, zone, zarg, res, &body); break;
	case RECEIVER_WEBHOOK: err = send_webhook(s, r, m, zone, zarg, res, &body); break;
	case RECEIVER_SMTP: err = send_smtp(s, r, m, zone, zarg, res, &body); break;
	case RECEIVER_SMS: err = send_sms(s, r, m, zone, zarg, res, &body); break;
	default: set_answer(res, "unknown receiver type %d", (int)r->type); return 0;
	}
	if (err)
		return err;
	mask_secrets(res, r);
	*ret_body = body;
	return 0;
}
