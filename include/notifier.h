/* notifier.h - cordon-notify's shared shapes (issue 17): its receivers and
 * routes as configured, an alert as its MQTT message gives it, and one
 * message to one receiver. The parts:
 *
 *   notifier_config.c  [notify], [receiver.NAME], [route.NAME] (config.c
 *                      reads the rest of the same file)
 *   notifier_alert.c   an alert message (docs/alerts.md) -> struct notifier_alert;
 *                      route matching
 *   notifier_text.c    the templates, zh-CN and en, and the rendering of a message
 *   notifier_send.c    the receivers over libcurl: WeCom, DingTalk, webhook, SMTP, SMS
 *   notifier_db.c      the inbox, routing, timers and the queue in PostgreSQL
 *   cordon-notify.c    the daemon
 *
 * docs/notify.md is the user's side of all of it. */
#ifndef CORDON_NOTIFIER_H
#define CORDON_NOTIFIER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum receiver_type {
	RECEIVER_WECOM,	   /* WeCom (企业微信) group robot */
	RECEIVER_DINGTALK, /* DingTalk (钉钉) custom robot */
	RECEIVER_WEBHOOK,  /* JSON in Alertmanager's webhook format */
	RECEIVER_SMTP,	   /* e-mail over SMTP (libcurl) */
	RECEIVER_SMS,	   /* an SMS gateway reached by an HTTP template */
};

enum notifier_lang {
	LANG_ZH_CN, /* "zh-CN", the default */
	LANG_EN,    /* "en" */
};

/* How a receiver shows a message. */
enum notifier_style {
	STYLE_TEXT,	/* plain text (WeCom/DingTalk text, webhook annotations) */
	STYLE_MARKDOWN, /* WeCom/DingTalk markdown */
	STYLE_SMS,	/* one short paragraph */
	STYLE_MAIL,	/* subject line + plain text body */
};

struct receiver {
	char *name; /* NAME of [receiver.NAME] */
	enum receiver_type type;
	char *url; /* read from url_file at load: the secret key is in it */
	char *url_file;
	char *secret; /* dingtalk: the signing secret from secret_file, or NULL */
	char *secret_file;
	char **to;	     /* smtp: addresses; sms: phone numbers; NULL-terminated */
	char *from;	     /* smtp: the From address */
	char *body_template; /* sms: request body, {to} and {text} replaced */
	char *content_type;  /* sms: of the body (application/json escapes for JSON) */
	enum notifier_lang language;
	enum notifier_style style; /* wecom/dingtalk: text or markdown (default) */
	int64_t rate_limit;	   /* most messages per minute; 0: no limit */
	int64_t timeout;	   /* ms, one HTTP request or SMTP session */
	size_t max_bytes;	   /* longest message body the receiver takes */
};

struct route {
	char *name; /* NAME of [route.NAME]; "default" takes what no other route takes */
	/* Each a NULL-terminated list of patterns (* and ? globs); NULL means
	 * every value. */
	char **sites, **kinds, **severities, **subjects;
	size_t *receivers; /* indexes into notifier_config.receivers */
	size_t nreceivers;
	size_t *escalate_to; /* indexes; the next level */
	size_t nescalate_to;
	int64_t group_wait;	/* ms */
	int64_t remind_every;	/* ms; 0: no reminders */
	int64_t escalate_after; /* ms; 0: no escalation */
};

struct notifier_config {
	struct config base; /* [mqtt], [postgres], [site], [log]: read by config.c */
	char *client_id;
	char *username;	     /* [notify] username, "": [mqtt]'s (notifier_config_username) */
	char *password_file; /* [notify] password_file, with username */
	char *metrics_listen;
	int64_t fail_after;    /* ms a receiver may fail before notify_failed */
	int64_t give_up_after; /* ms after which a message is 'failed' */
	int64_t retry_max;     /* ms, the longest wait between attempts */
	/* ms: an alert transition in PostgreSQL not received on MQTT this
	 * long after it is taken from there (notifier_db_reconcile) */
	int64_t reconcile_after;
	struct receiver *receivers;
	size_t nreceivers;
	struct route *routes; /* in file order; "default" last */
	size_t nroutes;
};

/* An alert as its MQTT message gives it (docs/alerts.md, "The message").
 * The strings point into the json_t it was read from; NULL when the
 * field is absent or null. */
struct notifier_alert {
	const char *alert_id, *kind, *severity, *state, *transition, *site, *subject;
	const char *gate, *household, *building, *card, *zone, *call_id;
	const char *reason, *by, *text;
	double temp_c;
	bool has_temp;
	int64_t raised_at_ms;	/* UTC ms */
	int64_t resolved_at_ms; /* UTC ms; 0 while open */
	int64_t count;
	int64_t distinct; /* an aggregate's distinct subjects; 0 otherwise */
};

/* What a message tells about its alerts. */
enum notifier_transition {
	NTR_RAISED,   /* new alerts */
	NTR_UPDATED,  /* an open alert became critical */
	NTR_REMIND,   /* still not acknowledged after remind_every */
	NTR_ESCALATE, /* not acknowledged after escalate_after: the next level */
	NTR_RESOLVED, /* resolved: to those who were told */
	NTR_COUNT,
};

struct notifier_item {
	enum notifier_transition transition;
	struct notifier_alert alert;
};

/* One message to one receiver: 1 or more items of one transition. */
struct notifier_message {
	int64_t id; /* notify_messages.id; sent as the X-Cordon-Notification header */
	const char *route;
	enum notifier_transition transition;
	const struct notifier_item *items;
	size_t nitems;
	/* UTC ms the message is rendered for: how long a reminded or
	 * escalated alert has been open is counted to it; 0: now (the
	 * realtime clock). */
	int64_t now_ms;
};

/* The site's time zone for rendering times; NULL: UTC. */
struct tz;
typedef const struct tz *notifier_zone_fn(void *arg, const char *site);

/* notifier_alert.c */

/* Fills `a` from `msg`, a parsed alert message; the strings stay owned by
 * `msg`. Returns 0, or -EINVAL when alert_id, kind, site, subject,
 * severity, state or transition is missing or not a string. */
int notifier_alert_from_json(const json_t *msg, struct notifier_alert *a)
	__attribute__((warn_unused_result));
/* "raised", "updated", "remind", "escalate", "resolved". */
const char *notifier_transition_name(enum notifier_transition t);
/* The reverse; -EINVAL for another word. */
int notifier_transition_parse(const char *s, enum notifier_transition *ret)
	__attribute__((warn_unused_result));
/* Whether `r` takes an alert of this site, kind, severity and subject:
 * each list empty (NULL) or one of its globs matching. */
bool notifier_route_matches(const struct route *r, const char *site, const char *kind,
			    const char *severity, const char *subject);
/* "zh-CN" / "en"; and parsing them (case-insensitive; "zh" is zh-CN). */
const char *notifier_lang_name(enum notifier_lang l);
int notifier_lang_parse(const char *s, enum notifier_lang *ret) __attribute__((warn_unused_result));

#endif
