/* notifier_send.h - the receivers (issue 17), over libcurl: a WeCom group
 * robot, a DingTalk robot (signed when it has a secret), a JSON webhook in
 * Alertmanager's format, e-mail over SMTP and an SMS gateway reached by an
 * HTTP template. One call sends one message and says what the receiver
 * answered; the caller (a sender thread per receiver) records it and
 * decides when to try again. */
#ifndef CORDON_NOTIFIER_SEND_H
#define CORDON_NOTIFIER_SEND_H

#include <stdint.h>

#include "notifier.h"

struct notifier_sender; /* one per thread: a curl easy handle */

enum send_outcome {
	SEND_OK,	   /* the receiver accepted it */
	SEND_RETRY,	   /* not accepted (network, HTTP 5xx/4xx, errcode): try again later */
	SEND_RATE_LIMITED, /* the receiver said too many: try again after retry_after_ms */
};

struct send_result {
	enum send_outcome outcome;
	int64_t retry_after_ms; /* for SEND_RATE_LIMITED (and a 429's Retry-After); else 0 */
	long http_status;	/* 0 without an HTTP answer (SMTP: the last reply code) */
	char answer[512];	/* the receiver's answer or curl's error, for notify_messages */
};

/* Returns 0, -ENOMEM. curl_global_init is the caller's, once. */
int notifier_sender_create(struct notifier_sender **ret) __attribute__((warn_unused_result));
void notifier_sender_free(struct notifier_sender *s);

/* Renders `m` (notifier_render, in r's language and style) and sends it to
 * `r`, blocking at most r->timeout (ms; each SMS recipient's request has
 * its own). Fills `res`; res->answer is "HTTP <status>: <first 400 bytes
 * of the answer>" (printable, UTF-8 whole), the SMTP server's reply, or
 * curl's error, never with the url's key, user info or secret (masked
 * "***"). *ret_body (malloc'ed; NULL on -ENOMEM or when nothing was
 * rendered) is what was sent, for the record: the JSON request of wecom,
 * dingtalk and webhook, the text of sms (before the template), and
 * "Subject: <title>\n\n<text>" of smtp. Returns 0 when `res` says what
 * happened (a receiver without url: SEND_RETRY), -ENOMEM, or the error of
 * notifier_render. Not thread-safe on one `s`. */
int notifier_send(struct notifier_sender *s, const struct receiver *r,
		  const struct notifier_message *m, notifier_zone_fn *zone, void *zarg,
		  struct send_result *res, char **ret_body) __attribute__((warn_unused_result));

#endif
