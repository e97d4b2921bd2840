/* notifier_send_internal.h - the pure parts of notifier_send.c, for its
 * unit tests (tests/unit/test_notifier_send.c): DingTalk's signature, the
 * RFC 2047 subject, the escapes of the SMS template, the answer excerpt. */
#ifndef CORDON_NOTIFIER_SEND_INTERNAL_H
#define CORDON_NOTIFIER_SEND_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

enum send_escape {
	ESC_RAW,  /* as it is */
	ESC_JSON, /* the inside of a JSON string: \" \\ \n \uXXXX */
	ESC_FORM, /* application/x-www-form-urlencoded: all but A-Za-z0-9-._~ as %XX */
};

/* DingTalk's signature of a request at `ts_ms` (UTC ms): HMAC-SHA256 keyed
 * with `secret` over "<ts_ms>\n<secret>", base64, then URL-encoded, as it
 * goes after "&sign=". *ret_sign malloc'ed. Returns 0, -ENOMEM. */
int notifier_send_sign(const char *secret, int64_t ts_ms, char **ret_sign)
	__attribute__((warn_unused_result));

/* `s` (UTF-8) as a Subject header's value: itself when it is printable
 * ASCII, else RFC 2047 "=?UTF-8?B?...?=" words of at most 75 characters,
 * each holding whole UTF-8 characters, folded with "\r\n ". A CR or LF in
 * `s` never reaches the header as one. *ret malloc'ed. 0, -ENOMEM. */
int notifier_send_subject(const char *s, char **ret) __attribute__((warn_unused_result));

/* `s` escaped `how`. *ret malloc'ed. 0, -ENOMEM, -EINVAL (ESC_JSON of
 * bytes that are not UTF-8). */
int notifier_send_escape(const char *s, enum send_escape how, char **ret)
	__attribute__((warn_unused_result));

/* How an SMS body of `content_type` escapes what it is given: ESC_JSON when
 * it names json, ESC_FORM for application/x-www-form-urlencoded, else
 * ESC_RAW. */
enum send_escape notifier_send_escape_for(const char *content_type);

/* `tmpl` with every "{to}" and "{text}" replaced by `to` and `text`, each
 * escaped `how`. *ret malloc'ed. 0, -ENOMEM, -EINVAL as above. */
int notifier_send_fill(const char *tmpl, const char *to, const char *text, enum send_escape how,
		       char **ret) __attribute__((warn_unused_result));

/* The first `max` bytes at most of `src` (`len` bytes, any bytes) into
 * `dst` (`size` bytes, NUL-terminated): control characters as spaces,
 * bytes that are not UTF-8 as '?', never a cut character. */
void notifier_send_excerpt(char *dst, size_t size, const char *src, size_t len, size_t max);

#endif
